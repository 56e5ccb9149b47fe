"""The result of a particle segmentation (:class:`Segmentation`) and the label-image helpers
that the EM and AFM segmenters share (noise, watershed split, relabelling, the labels and signal
arrays on the image grid). Lengths nm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..elements import pixel_size as _pixel_size
from ..errors import ElementError

__all__ = ["Segmentation"]


@dataclass
class Segmentation:
    """Result of :func:`segment_particles`.

    Attributes
    ----------
    labels
        xarray.DataArray int32 on the image grid (same dims and nm coords); 0 background,
        1..N particles out to their (model) edge.
    signal
        xarray.DataArray float32: the flattened signal the particles were found in (EM: log
        contrast ``mu * t``; AFM: height above the substrate, nm), particles positive.
    core
        int32 numpy array: the threshold regions actually measured (EM: the ``edge_fraction``
        contour; AFM: same as labels).
    length_scale
        (N + 1,) factor per label from the measured core region to the model edge (index 0 unused).
    fiducials
        DataFrame fiducial_id, x, y (nm, image space), diameter_nm, reason ("position": at a given
        fiducial position; "contrast" (EM) or "shape" (AFM, opt-in): by appearance) of the objects
        taken for fiducials and left out of the labels.
    info
        Parameters and diagnostics (noise, thresholds, modality).
    peak
        (N + 1,) peak signal per label (index 0 unused).
    height
        AFM: xarray.DataArray float32, the levelled unsmoothed height (nm) heights are measured
        on; None for EM.
    """

    labels: Any
    signal: Any
    core: np.ndarray
    length_scale: np.ndarray
    fiducials: pd.DataFrame
    info: dict = field(default_factory=dict)
    peak: np.ndarray | None = None
    height: Any = None

    @property
    def n_particles(self) -> int:
        return int(self.labels.attrs.get("n_particles", 0))

    def measure(self, **kwargs) -> pd.DataFrame:
        """Per-particle morphology (nm) of these labels: see :func:`measure_particles`."""
        from ._morphology import measure_particles

        return measure_particles(self, **kwargs)


def _image_2d(image, name: str | None = None):
    import xarray as xr

    if not isinstance(image, xr.DataArray):
        raise ElementError(f"expected an Image (xarray.DataArray), got {type(image).__name__}", field=name)
    img = image
    for d in ("c", "z"):
        if d in img.dims:
            if img.sizes[d] != 1:
                raise ElementError(
                    f"segmentation needs a 2-D (y, x) image; dim {d!r} has {img.sizes[d]} entries: "
                    f"select one (image.isel({d}=0))",
                    field=name or img.name,
                )
            img = img.isel({d: 0})
    if tuple(img.dims) != ("y", "x"):
        raise ElementError(f"expected dims ('y', 'x'), got {img.dims}", field=name or img.name)
    return img


def _robust_sigma(v: np.ndarray) -> float:
    """Noise of a signal whose positive tail holds the particles: from the lower half only."""
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    med = np.median(v)
    lo = v[v <= med]
    return float(1.4826 * np.median(med - lo)) if lo.size else 0.0


def _watershed_split(mask: np.ndarray, min_sep_px: float, basin_mask: np.ndarray | None = None) -> np.ndarray:
    """Label a binary mask, splitting touching blobs by a watershed on the distance transform."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(mask)
    dist_s = ndi.gaussian_filter(dist, 1.0)
    size = 2 * int(max(1, round(float(min_sep_px)))) + 1
    peaks = (dist_s >= ndi.maximum_filter(dist_s, size=size)) & mask & (dist_s > 1.0)
    markers, _ = ndi.label(ndi.binary_dilation(peaks, iterations=1) & mask)
    # components without a marker keep one (tiny blobs)
    comp, ncomp = ndi.label(mask)
    if ncomp:
        has = np.zeros(ncomp + 1, bool)
        has[comp[markers > 0]] = True
        missing = ~has
        missing[0] = False
        if missing.any():
            cmax = _label_max(dist, comp, ncomp)
            extra = missing[comp] & (dist >= cmax[comp])
            ext_lab, _ = ndi.label(extra)
            start = markers.max()
            markers = np.where(extra, ext_lab + start, markers)
    region = mask if basin_mask is None else (basin_mask | mask)
    return watershed(-dist_s, markers, mask=region).astype(np.int32)


def _label_max(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) maximum of ``values`` per label (index = label; -inf where absent)."""
    out = np.full(n + 1, -np.inf)
    sel = labels > 0
    np.maximum.at(out, labels[sel], values[sel])
    return out


def _relabel(lab: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Keep labels where ``keep[label]`` and renumber them 1..N in order."""
    lut = np.zeros(keep.size, np.int32)
    idx = np.flatnonzero(keep)
    idx = idx[idx > 0]
    lut[idx] = np.arange(1, idx.size + 1, dtype=np.int32)
    return lut[lab]


def _as_labels_array(lab: np.ndarray, img, *, n: int, edge_ids, modality: str, extra: dict):
    import xarray as xr

    attrs = {
        "kind": "labels",
        "modality": modality,
        "pixel_size_nm": dict(_pixel_size(img)),
        "n_particles": int(n),
        "edge_labels": [int(i) for i in edge_ids],
        "source_image": str(img.name) if img.name is not None else "",
    }
    attrs.update(extra)
    return xr.DataArray(lab.astype(np.int32), dims=img.dims, coords={d: img.coords[d] for d in img.dims},
                        name="particles", attrs=attrs)


def _edge_ids(lab: np.ndarray) -> np.ndarray:
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    return np.unique(border[border > 0])


def _as_signal(arr, img, modality, unit):
    import xarray as xr

    return xr.DataArray(arr.astype(np.float32), dims=img.dims, coords={d: img.coords[d] for d in img.dims},
                        name="signal", attrs={"modality": modality, "value_unit": unit})


def _empty_segmentation(img, sm, info) -> Segmentation:
    lab = np.zeros(sm.shape, np.int32)
    return Segmentation(
        labels=_as_labels_array(lab, img, n=0, edge_ids=[], modality=info["modality"], extra={}),
        signal=_as_signal(sm, img, info["modality"], "nm" if info["modality"] == "afm" else "log-contrast"),
        core=lab.copy(),
        length_scale=np.ones(1),
        fiducials=pd.DataFrame({"fiducial_id": np.zeros(0, np.int64), "x": np.zeros(0), "y": np.zeros(0),
                                "diameter_nm": np.zeros(0), "reason": np.zeros(0, object)}),
        info=info,
        peak=np.zeros(1),
    )


def _fiducial_table(x0: dict, px: dict, cx: np.ndarray, cy: np.ndarray, d_nm: np.ndarray,
                    at_pos: np.ndarray, other: np.ndarray, other_reason: str = "shape") -> pd.DataFrame:
    """Fiducials found among the objects (pixel centroids): x, y, diameter_nm, reason."""
    sel = at_pos | other
    return pd.DataFrame({
        "fiducial_id": np.arange(int(sel.sum()), dtype=np.int64),
        "x": x0["x"] + cx[sel] * px["x"], "y": x0["y"] + cy[sel] * px["y"], "diameter_nm": d_nm[sel],
        "reason": np.where(at_pos[sel], "position", other_reason).astype(object),
    })
