"""Nano-bio proximity: each particle's distance to the nearest object of another segmentation or
element, with the registration error carried, against particles placed at random.

Targets:

- a label image (``"em/labels/organelles"``): signed distance from the particle centre to the
  nearest object boundary (negative inside an object), from Euclidean distance transforms of the
  object mask, minus half a pixel (the boundary lies between pixel centres), interpolated at the
  particle position;
- an image channel (SIM/STED endosome marker): segmented at a threshold (Otsu's by default,
  estimated from the image and reported), then as a label image;
- localizations or a per-particle table (another colour's clusters): distance to the nearest
  point.

``gap_nm`` is the distance minus the particle's radius (equivalent diameter / 2): edge to
boundary. The error of a distance, ``distance_sd_nm``, is the predicted registration error between
the two frames (per axis, RMS / sqrt(2), from the stored registrations or declarations; NaN where
unknown) combined with the pixel quantisation of the target (pixel / sqrt(12)).

The control: ``n_control`` positions drawn uniformly at random over the area where particles
could sit (a mask element, or the particles' structure image), measured the same way; the
two-sample Kolmogorov-Smirnov test says whether the particles sit nearer (or farther) than chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError, ElementError

__all__ = ["ProximityOptions", "ProximityResult", "proximity", "signed_distance_map"]


@dataclass(frozen=True)
class ProximityOptions:
    """Options of :func:`proximity`.

    Attributes
    ----------
    channel
        Image targets: the channel to segment (default: the only one).
    threshold
        Image targets: intensity threshold (default: Otsu's, estimated from the image).
    area
        Where particles could sit, for the random control: a label or image element (its nonzero
        pixels, or its whole extent for an image); default: the particles' structure image.
    n_control
        Random positions in the control.
    seed
        Seed of the control (None: fresh randomness).
    assume_aligned
        Measure even when no registration places the two frames together.
    """

    channel: str | int | None = None
    threshold: float | None = None
    area: str | None = None
    n_control: int = 2000
    seed: int | None = None
    assume_aligned: bool = False


@dataclass
class ProximityResult:
    """What :func:`proximity` measured.

    Attributes
    ----------
    table
        Per particle: ``particle_id``, ``distance_nm``, ``gap_nm``, ``distance_sd_nm``,
        ``nearest_id`` (target object or point index).
    control
        Distances (nm) of the random control positions.
    summary
        Target, kind, estimated threshold, medians, the KS statistic and p-value.
    """

    table: pd.DataFrame
    control: np.ndarray
    summary: dict = field(default_factory=dict)

    def plot(self):
        """Cumulative distributions of the particles' distances and of the control (Figure)."""
        from ..plot._figure import new_figure

        fig = new_figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
        ax = fig.subplots()
        for data, label in ((self.table["distance_nm"].to_numpy(float), "particles"), (self.control, "random control")):
            d = np.sort(data[np.isfinite(data)])
            ax.step(d, np.arange(1, d.size + 1) / max(d.size, 1), where="post", label=f"{label} (n={d.size})")
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_xlabel(f"distance to nearest {self.summary.get('target', 'object')} (nm; < 0 inside)")
        ax.set_ylabel("cumulative fraction")
        ax.set_title(f"KS D = {self.summary.get('ks_statistic', np.nan):.3f}, p = {self.summary.get('ks_pvalue', np.nan):.2g}")
        ax.legend()
        return fig


def signed_distance_map(mask: np.ndarray, pixel_nm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (nm) from each pixel centre to the boundary of ``mask`` (negative inside),
    and for each pixel the flat index of the nearest object pixel."""
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ElementError("the target has no object (an empty mask)", field="target")
    half = 0.5 * min(pixel_nm)
    out_d, idx = distance_transform_edt(~mask, sampling=pixel_nm, return_indices=True)
    in_d = distance_transform_edt(mask, sampling=pixel_nm)
    signed = np.where(mask, -(in_d - half), out_d - half)
    nearest = np.ravel_multi_index(tuple(idx), mask.shape)
    return signed, nearest


def _grid(img) -> tuple[np.ndarray, np.ndarray]:
    from ..elements import origin, pixel_size

    px, org = pixel_size(img), origin(img)
    return np.array([org["x"], org["y"]]), np.array([px["x"], px["y"]])


def _sample(values: np.ndarray, org, px, xy: np.ndarray, order: int) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    rc = np.vstack([(xy[:, 1] - org[1]) / px[1], (xy[:, 0] - org[0]) / px[0]])
    inside = (rc[0] >= -0.5) & (rc[0] <= values.shape[0] - 0.5) & (rc[1] >= -0.5) & (rc[1] <= values.shape[1] - 0.5)
    out = map_coordinates(values, rc, order=order, mode="nearest").astype(float)
    out[~inside] = np.nan
    return out


class _Target:
    """A target measured at points given in its own frame."""

    def __init__(self, scene, name: str, opts: ProximityOptions, summary: dict):
        self.name = name
        kind = scene.kind(name)
        self.kind = kind
        if kind in ("labels", "image"):
            self._raster(scene, name, kind, opts, summary)
        elif kind in ("localizations", "table"):
            from scipy.spatial import cKDTree

            df = scene.get(name)
            self.tree = cKDTree(df[["x", "y"]].to_numpy(float))
            self.quant = 0.0
        else:
            raise ElementError(f"{name!r} is {kind}; a proximity target is a label image, an image, "
                               "localizations or a table", field="target")

    def _raster(self, scene, name, kind, opts, summary):
        if kind == "labels":
            parent, label = name.split("/labels/", 1)
            lab = np.asarray(scene.get_labels(parent, label).values)
            img = scene.get(parent)
            self.frame = parent
        else:
            img = scene.get(name)
            self.frame = name
            data = img
            if "c" in img.dims:
                if opts.channel is None and img.sizes["c"] > 1:
                    raise ElementError(f"{name!r} has channels {list(img.coords['c'].values)}; choose one "
                                       "(--channel)", field="channel")
                data = img.isel(c=0) if opts.channel is None else (
                    img.isel(c=opts.channel) if isinstance(opts.channel, int) else img.sel(c=opts.channel))
            values = np.asarray(data.values, float)
            if opts.threshold is None:
                from skimage.filters import threshold_otsu

                thr, src = float(threshold_otsu(values[np.isfinite(values)])), "estimated (Otsu)"
            else:
                thr, src = float(opts.threshold), "user"
            summary.update(threshold=thr, threshold_source=src)
            lab = values > thr
        self.labels = np.asarray(lab)
        self.org, self.px = _grid(img)
        self.signed, self.nearest = signed_distance_map(self.labels > 0, (self.px[1], self.px[0]))
        self.quant = float(np.max(self.px)) / np.sqrt(12.0)

    def measure(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance nm, nearest object id or point index) at points in the target's frame."""
        if self.kind in ("localizations", "table"):
            d, i = self.tree.query(xy)
            return d, i.astype(float)
        d = _sample(self.signed, self.org, self.px, xy, order=1)
        near = _sample(self.nearest.astype(float), self.org, self.px, xy, order=0)
        ids = np.full(len(xy), np.nan)
        ok = np.isfinite(near)
        ids[ok] = self.labels.ravel()[near[ok].astype(np.int64)]
        return d, ids


def _control_positions(scene, area: str, n: int, rng) -> tuple[np.ndarray, Any]:
    kind = scene.kind(area)
    if kind == "labels":
        parent, label = area.split("/labels/", 1)
        mask = np.asarray(scene.get_labels(parent, label).values) > 0
        img = scene.get(parent)
    elif kind == "image":
        img = scene.get(area)
        mask = np.ones([img.sizes[d] for d in ("y", "x")], bool)
    else:
        raise ElementError(f"the control area {area!r} is {kind}; give a label image or an image", field="area")
    org, px = _grid(img)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ElementError(f"the control area {area!r} is empty", field="area")
    pick = rng.integers(0, rows.size, n)
    jitter = rng.random((n, 2)) - 0.5
    return np.column_stack([org[0] + px[0] * (cols[pick] + jitter[:, 0]), org[1] + px[1] * (rows[pick] + jitter[:, 1])]), img


def proximity(scene, target: str, particles: str = "particles", options: ProximityOptions | None = None,
              **kwargs: Any) -> ProximityResult:
    """Distance of every particle of table ``particles`` to the nearest object of ``target``.

    Parameters
    ----------
    scene
        An open Scene.
    target
        A label image, image, localization table or per-particle table (see the module docstring).
    particles
        The per-particle table (its ``label_image`` names the structure frame of ``x, y``).
    options, **kwargs
        :class:`ProximityOptions` (or its fields as keywords).

    Raises
    ------
    UnplacedError
        When no registration relates the particles' frame and the target's (unless
        ``assume_aligned``).
    """
    from scipy.stats import ks_2samp

    from ..registration._map import predicted_tre_between

    opts = options or ProximityOptions(**kwargs)
    table = scene.get(particles)
    label_image = table.attrs.get("label_image") or scene._entry(particles).get("label_image")
    if not label_image:
        raise ElementError(f"{particles!r} is not a per-particle table (no label image)", field="particles")
    frame = label_image.split("/labels/")[0]
    summary: dict[str, Any] = {"target": target, "particles": particles, "structure": frame}
    tgt = _Target(scene, target, opts, summary)
    tgt_frame = getattr(tgt, "frame", target)
    summary["target_kind"] = tgt.kind
    xy = table[["x", "y"]].to_numpy(float)
    if frame != tgt_frame:
        scene.require_joinable(frame, tgt_frame, opts.assume_aligned, action="measure distances between")
    into = scene.transform(frame, tgt_frame) if frame != tgt_frame else None
    d, ids = tgt.measure(into.apply(xy) if into is not None else xy)
    tre = predicted_tre_between(scene, frame, tgt_frame, xy)[0] if frame != tgt_frame else np.zeros(len(xy))
    sd = np.sqrt(tre ** 2 / 2.0 + tgt.quant ** 2)
    size = next((c for c in ("equivalent_diameter_nm", "diameter_nm") if c in table.columns), None)
    radius = 0.5 * table[size].to_numpy(float) if size else np.full(len(xy), np.nan)
    out = pd.DataFrame({"particle_id": table["particle_id"].to_numpy(), "distance_nm": d, "gap_nm": d - radius,
                        "distance_sd_nm": sd, "nearest_id": ids})
    rng = np.random.default_rng(opts.seed)
    cpos, _ = _control_positions(scene, opts.area or frame, int(opts.n_control), rng)
    area_frame = (opts.area or frame).split("/labels/")[0]
    if area_frame != tgt_frame:
        scene.require_joinable(area_frame, tgt_frame, opts.assume_aligned, action="measure distances between")
        cpos = scene.transform(area_frame, tgt_frame).apply(cpos)
    control, _ = tgt.measure(cpos)
    obs = d[np.isfinite(d)]
    ctl = control[np.isfinite(control)]
    if obs.size == 0:
        raise CorrelateError(f"no particle of {particles!r} lies inside {target!r}'s field", field="target")
    ks = ks_2samp(obs, ctl) if ctl.size else None
    summary.update(
        n_particles=int(obs.size), n_control=int(ctl.size), median_distance_nm=float(np.median(obs)),
        median_control_nm=float(np.median(ctl)) if ctl.size else float("nan"),
        ks_statistic=float(ks.statistic) if ks else float("nan"), ks_pvalue=float(ks.pvalue) if ks else float("nan"),
        median_distance_sd_nm=float(np.nanmedian(sd)) if np.isfinite(sd).any() else float("nan"),
    )
    return ProximityResult(out, control, summary)
