"""Per-particle morphology in nm, and size-distribution summaries.

Pixel geometry: a pixel is the square of side ``px`` centred on its coordinate (NGFF pixel
centre); areas count pixel squares, Feret diameters are those of the convex hull of the pixel
squares (rotating calipers on the hull of the pixel corners), centroids are means of pixel
centres mapped to nm (``origin + px * index``).

For a :class:`~correlate.analysis.Segmentation` made with ``shape_model="sphere"``, lengths
measured on the ``edge_fraction`` contour are scaled by the per-particle factor to the model edge
(areas by its square); circularity and eccentricity are scale-free and unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..elements import origin as _origin
from ..elements import pixel_size as _pixel_size

__all__ = ["feret_diameters", "measure_particles", "size_summary"]


def _numba():
    import numba

    return numba


_FERET_KERNEL = None


def _feret_kernel():
    global _FERET_KERNEL
    if _FERET_KERNEL is not None:
        return _FERET_KERNEL
    nb = _numba()

    @nb.njit(cache=True)
    def kernel(px, py, starts, ends, out_min, out_max, out_angle):
        for g in range(starts.size):
            s, e = starts[g], ends[g]
            m = e - s
            if m == 0:
                out_min[g] = np.nan
                out_max[g] = np.nan
                continue
            # points of this group, sorted by (x, y) (monotone chain needs lexicographic order)
            xs = px[s:e].copy()
            ys = py[s:e].copy()
            order = np.argsort(xs * 1e6 + ys)
            xs = xs[order]
            ys = ys[order]
            hx = np.empty(2 * m + 1)
            hy = np.empty(2 * m + 1)
            k = 0
            for i in range(m):  # lower hull
                while k >= 2 and (hx[k - 1] - hx[k - 2]) * (ys[i] - hy[k - 2]) - (hy[k - 1] - hy[k - 2]) * (xs[i] - hx[k - 2]) <= 0:
                    k -= 1
                hx[k] = xs[i]
                hy[k] = ys[i]
                k += 1
            t = k + 1
            for i in range(m - 2, -1, -1):  # upper hull
                while k >= t and (hx[k - 1] - hx[k - 2]) * (ys[i] - hy[k - 2]) - (hy[k - 1] - hy[k - 2]) * (xs[i] - hx[k - 2]) <= 0:
                    k -= 1
                hx[k] = xs[i]
                hy[k] = ys[i]
                k += 1
            h = k - 1 if k > 1 else 1
            # max: largest vertex-vertex distance; min: for each edge, the farthest vertex
            dmax = 0.0
            for i in range(h):
                for j in range(i + 1, h):
                    d = (hx[i] - hx[j]) ** 2 + (hy[i] - hy[j]) ** 2
                    dmax = max(dmax, d)
            dmin = np.inf
            amin = 0.0
            for i in range(h):
                j = (i + 1) % h
                ex = hx[j] - hx[i]
                ey = hy[j] - hy[i]
                L = np.sqrt(ex * ex + ey * ey)
                if L == 0:
                    continue
                w = 0.0
                for q in range(h):
                    dd = abs((hx[q] - hx[i]) * ey - (hy[q] - hy[i]) * ex) / L
                    w = max(w, dd)
                if w < dmin:
                    dmin = w
                    amin = np.arctan2(ey, ex)
            out_max[g] = np.sqrt(dmax)
            out_min[g] = dmin if h >= 3 else 0.0
            out_angle[g] = amin

    _FERET_KERNEL = kernel
    return kernel


def feret_diameters(labels: np.ndarray, n_labels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Min and max Feret diameters (pixels) of each label 1..N of a 2-D label array, from the
    convex hull of the pixel squares' corners. Returns two (N,) arrays (NaN for absent labels)."""
    from scipy import ndimage as ndi

    lab = np.asarray(labels)
    n = int(lab.max()) if n_labels is None else int(n_labels)
    if n == 0:
        return np.empty(0), np.empty(0)
    # boundary pixels only (the hull of all pixel squares is the hull of the boundary ones)
    er = ndi.grey_erosion(lab, size=(3, 3), mode="constant", cval=0)
    boundary = (lab > 0) & (er != lab)
    iy, ix = np.nonzero(boundary)
    l = lab[iy, ix]
    order = np.argsort(l, kind="stable")
    iy, ix, l = iy[order], ix[order], l[order]
    # four corners per pixel
    cx = np.concatenate([ix - 0.5, ix + 0.5, ix + 0.5, ix - 0.5]).astype(float)
    cy = np.concatenate([iy - 0.5, iy - 0.5, iy + 0.5, iy + 0.5]).astype(float)
    cl = np.concatenate([l, l, l, l])
    o = np.argsort(cl, kind="stable")
    cx, cy, cl = cx[o], cy[o], cl[o]
    starts = np.searchsorted(cl, np.arange(1, n + 1), side="left")
    ends = np.searchsorted(cl, np.arange(1, n + 1), side="right")
    fmin = np.empty(n)
    fmax = np.empty(n)
    ang = np.empty(n)
    _feret_kernel()(cx, cy, starts.astype(np.int64), ends.astype(np.int64), fmin, fmax, ang)
    return fmin, fmax


def _is_segmentation(obj) -> bool:
    """A :class:`~correlate.analysis.Segmentation` (told by its fields, so that this module does not
    import the one that imports it)."""
    return not hasattr(obj, "dims") and all(hasattr(obj, a) for a in ("labels", "core", "length_scale", "signal"))


def measure_particles(
    labels,
    *,
    intensity=None,
    pixel_size_nm: float | None = None,
    origin_nm: tuple[float, float] | None = None,
    modality: str | None = None,
    length_scale: np.ndarray | None = None,
    height_method: str = "apex",
    apex_window: float = 0.4,
    apex_min_pixels: int = 12,
) -> pd.DataFrame:
    """Morphology of every labelled particle, in nm.

    Parameters
    ----------
    labels
        A :class:`Segmentation`, a label DataArray (y, x) with nm coordinates, or a 2-D int array
        (then give ``pixel_size_nm`` and ``origin_nm`` = (x0, y0) of pixel (0, 0)'s centre).
    intensity
        Levelled, unsmoothed height map (nm) for AFM measures; default the Segmentation's
        ``height`` (its ``signal`` for a Segmentation without one).
    length_scale
        (N + 1,) per-label factor from the measured region to the physical edge (index = label).
    height_method
        AFM ``height_max_nm``: ``"apex"`` (a quadratic fit to the top of each particle, see
        :func:`~correlate.analysis._afm_heights.apex_heights`) or ``"max"`` (the largest pixel,
        biased upwards by the noise).
    apex_window, apex_min_pixels
        Apex fit window: radius as a fraction of the equivalent radius, least number of pixels.

    Returns
    -------
    pandas.DataFrame
        One row per label: ``particle_id`` (= label value), ``x``, ``y`` (centroid, nm),
        ``area_nm2``, ``equivalent_diameter_nm``, ``feret_min_nm``, ``feret_max_nm``,
        ``circularity`` (4 pi A / P^2, Crofton perimeter, capped at 1), ``eccentricity``,
        ``edge`` (touches the image border); for AFM also ``height_max_nm``, ``height_mean_nm``
        and ``volume_nm3`` (sum of heights above the substrate times pixel area), and with
        ``height_method="apex"`` ``height_err_nm`` (standard error of the apex fit, NaN where no
        fit was possible). ``df.attrs["height_fit"]`` records the method, window and how many
        particles each apex rule measured.
    """
    from scipy import ndimage as ndi
    from skimage.measure import regionprops_table

    edge_lab = None
    locate = None
    if _is_segmentation(labels):
        seg = labels
        meas = seg.core
        full = np.asarray(seg.labels.values)
        px_d = _pixel_size(seg.labels)
        x0 = _origin(seg.labels)
        modality = modality or seg.labels.attrs.get("modality")
        length_scale = seg.length_scale if length_scale is None else length_scale
        if intensity is None and modality == "afm":
            src = seg.height if seg.height is not None else seg.signal
            intensity = np.asarray(src.values, float)
            locate = np.asarray(seg.signal.values, float)
        edge_lab = full
    elif hasattr(labels, "dims"):
        meas = np.asarray(labels.values)
        px_d = _pixel_size(labels)
        x0 = _origin(labels)
        modality = modality or labels.attrs.get("modality")
    else:
        meas = np.asarray(labels)
        if pixel_size_nm is None:
            raise ValueError("give pixel_size_nm (and origin_nm) for a plain label array")
        px_d = {"x": float(pixel_size_nm), "y": float(pixel_size_nm)}
        o = (0.0, 0.0) if origin_nm is None else origin_nm
        x0 = {"x": float(o[0]), "y": float(o[1])}
    if edge_lab is None:
        edge_lab = meas
    px = float(np.sqrt(px_d["x"] * px_d["y"]))
    meas = meas.astype(np.int32, copy=False)
    n = int(meas.max()) if meas.size else 0
    cols = ["particle_id", "x", "y", "area_nm2", "equivalent_diameter_nm", "feret_min_nm", "feret_max_nm",
            "circularity", "eccentricity", "edge"]
    if modality == "afm":
        cols += ["height_max_nm", "height_mean_nm", "volume_nm3"]
        if height_method == "apex":
            cols += ["height_err_nm"]
    if height_method not in ("apex", "max"):
        raise ValueError(f"height_method must be 'apex' or 'max', got {height_method!r}")
    if n == 0:
        out = pd.DataFrame({c: pd.Series(dtype="int64" if c == "particle_id" else ("bool" if c == "edge" else "float64"))
                            for c in cols})
        if modality == "afm":
            out.attrs["height_fit"] = {"method": height_method, "n_particles": 0}
        return out
    props = regionprops_table(meas, properties=("label", "area", "centroid", "eccentricity", "perimeter_crofton"))
    lab_ids = np.asarray(props["label"], np.int64)
    scale = np.ones(n + 1) if length_scale is None else np.asarray(length_scale, float)
    k = scale[lab_ids]
    area_px = np.asarray(props["area"], float)
    per = np.asarray(props["perimeter_crofton"], float)
    fmin, fmax = feret_diameters(meas, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        circ = np.minimum(1.0, 4 * np.pi * area_px / per**2)
    area_nm2 = area_px * px * px * k**2
    edge_ids = np.unique(np.concatenate([edge_lab[0], edge_lab[-1], edge_lab[:, 0], edge_lab[:, -1]]))
    df = pd.DataFrame(
        {
            "particle_id": lab_ids,
            "x": x0["x"] + np.asarray(props["centroid-1"], float) * px_d["x"],
            "y": x0["y"] + np.asarray(props["centroid-0"], float) * px_d["y"],
            "area_nm2": area_nm2,
            "equivalent_diameter_nm": 2 * np.sqrt(area_nm2 / np.pi),
            "feret_min_nm": fmin[lab_ids - 1] * px * k,
            "feret_max_nm": fmax[lab_ids - 1] * px * k,
            "circularity": circ,
            "eccentricity": np.asarray(props["eccentricity"], float),
            "edge": np.isin(lab_ids, edge_ids[edge_ids > 0]),
        }
    )
    if modality == "afm":
        if intensity is None:
            raise ValueError("AFM morphology needs the levelled height map (intensity=)")
        h = np.asarray(getattr(intensity, "values", intensity), float)
        idx = lab_ids
        if height_method == "apex":
            from ._afm_heights import apex_heights

            ap = apex_heights(h, meas, locate=locate, window_fraction=apex_window, min_pixels=apex_min_pixels)
            df["height_max_nm"] = ap["height_nm"][idx - 1]
            err = ap["height_err_nm"][idx - 1]
            meth = ap["method"][idx - 1]
            df.attrs["height_fit"] = {
                "method": "apex", "window_fraction": float(apex_window), "min_pixels": int(apex_min_pixels),
                **{f"n_{m}": int((meth == m).sum()) for m in ("apex", "centre", "max")},
                "median_window_pixels": float(np.median(ap["n_pixels"][idx - 1])) if idx.size else float("nan"),
            }
        else:
            df["height_max_nm"] = np.asarray(ndi.maximum(h, meas, idx), float)
            df.attrs["height_fit"] = {"method": "max"}
        df["height_mean_nm"] = np.asarray(ndi.mean(h, meas, idx), float)
        df["volume_nm3"] = np.asarray(ndi.sum_labels(np.clip(h, 0, None), meas, idx), float) * px_d["x"] * px_d["y"]
        if height_method == "apex":
            df["height_err_nm"] = err
    return df


def size_summary(diameters_nm) -> dict[str, float]:
    """Number-weighted size distribution summary of diameters (nm).

    Returns
    -------
    dict
        ``n``, ``mean_nm``, ``std_nm``, ``D10_nm``, ``D50_nm``, ``D90_nm`` (percentiles), ``CV``
        (std / mean) and ``PDI`` ((std / mean)^2, the number-distribution analogue of the DLS
        polydispersity index).
    """
    d = np.asarray(diameters_nm, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        nan = float("nan")
        return {"n": 0, "mean_nm": nan, "std_nm": nan, "D10_nm": nan, "D50_nm": nan, "D90_nm": nan, "CV": nan, "PDI": nan}
    m = float(d.mean())
    s = float(d.std(ddof=1)) if d.size > 1 else 0.0
    p10, p50, p90 = np.percentile(d, [10, 50, 90])
    return {"n": int(d.size), "mean_nm": m, "std_nm": s, "D10_nm": float(p10), "D50_nm": float(p50),
            "D90_nm": float(p90), "CV": s / m if m else float("nan"), "PDI": (s / m) ** 2 if m else float("nan")}
