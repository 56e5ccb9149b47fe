"""Overlay: a base image (EM or any) with rendered localizations, fiducials and their residuals,
particle outlines, predicted-TRE contours, a scale bar and a caption with the registration figures.

Two levels:

* :func:`draw_overlay` draws from plain inputs already in the base image's space (nm).
* :func:`plot_overlay` gathers them from a :class:`~correlate.scene.Scene`: localizations mapped
  into the base with ``scene.transform``, landmarks and registration records, label images.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot state), laid out in
pixels so that one base-image pixel spans exactly ``pixel_scale`` pixels of the saved PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import CorrelateError, ElementError

__all__ = ["draw_overlay", "plot_overlay", "save_figure", "Fiducials", "registration_summary"]


@dataclass
class Fiducials:
    """Fiducial positions in the base image's space (nm) and their residual vectors.

    Attributes
    ----------
    x, y
        (N,) positions (nm).
    dx, dy
        (N,) residual vectors (nm): where the registration puts the fiducial minus where it was
        found; NaN when unknown.
    used
        (N,) False for outliers / held-out fiducials.
    label
        Legend text.
    """

    x: np.ndarray
    y: np.ndarray
    dx: np.ndarray | None = None
    dy: np.ndarray | None = None
    used: np.ndarray | None = None
    label: str = "fiducials"

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, float)
        self.y = np.asarray(self.y, float)
        n = self.x.size
        self.dx = np.full(n, np.nan) if self.dx is None else np.asarray(self.dx, float)
        self.dy = np.full(n, np.nan) if self.dy is None else np.asarray(self.dy, float)
        self.used = np.ones(n, bool) if self.used is None else np.asarray(self.used, bool)


# ---------------------------------------------------------------------------------------------
# base image preparation
# ---------------------------------------------------------------------------------------------
#: Colours of successive fiducial sets (circles and their residual arrows).
_FIDUCIAL_COLORS = ("yellow", "#ff8c00", "#00bfff", "#ff69b4", "white")


def _base_plane(image):
    """(y, x) plane of an Image: first channel, maximum over z."""
    img = image
    if "c" in img.dims:
        img = img.isel(c=0)
    if "z" in img.dims:
        img = img.max("z")
    return img.transpose("y", "x")


def _display_grid(base, region, max_pixels, load: bool = True):
    """Grid of the (cropped, maybe coarsened) base and its (ny, nx) float pixel values."""
    from ..render import grid_from_image

    plane = _base_plane(base)
    grid = grid_from_image(plane)
    if region is not None:
        sub = grid.crop(region)
        rows, cols = grid.index_slices(sub)
        plane = plane.isel(y=rows, x=cols)
        grid = sub
    factor = max(1, int(math.ceil(max(grid.shape) / float(max_pixels)))) if max_pixels else 1
    if factor > 1:
        ny, nx = (grid.shape[0] // factor) * factor, (grid.shape[1] // factor) * factor
        plane = plane.isel(y=slice(0, ny), x=slice(0, nx)).coarsen(y=factor, x=factor).mean()
        grid = grid_from_image(plane)
    values = np.asarray(plane.values, dtype=float) if load else None
    return grid, values, factor


def _render_labels(labels, grid, method):
    from scipy import ndimage

    from ..render import render_gaussian, render_histogram

    if not labels:
        return None
    if method == "gaussian":
        return render_gaussian(dict(labels), like=grid, min_precision_nm=min(grid.pixel_size))
    img = render_histogram(dict(labels), like=grid)
    if method == "histogram":
        return img
    if method != "blur":
        raise ElementError(f"unknown render method {method!r}; expected 'blur', 'histogram' or 'gaussian'", field="method")
    planes = []
    for df, plane in zip(labels.values(), np.asarray(img.values)):
        prec = None
        for c in ("precision", "precision_x"):
            if c in df.columns and len(df):
                v = df[c].to_numpy(float)
                v = v[np.isfinite(v)]
                if v.size:
                    prec = float(np.median(v))
                    break
        s = (prec if prec else 10.0) / np.asarray(grid.pixel_size[::-1])
        planes.append(ndimage.gaussian_filter(plane, sigma=np.maximum(s, 1.0)))
    return img.copy(data=np.stack(planes))


def _tile(values, pixel_scale):
    """Nearest-neighbour upscaling by an integer factor (so a base pixel is a square of PNG pixels)."""
    if pixel_scale == 1:
        return values
    return np.repeat(np.repeat(values, pixel_scale, axis=0), pixel_scale, axis=1)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels on the outline of each labelled particle (label differs from a 4-neighbour)."""
    lab = np.asarray(labels)
    b = np.zeros(lab.shape, bool)
    dv = lab[1:, :] != lab[:-1, :]
    dh = lab[:, 1:] != lab[:, :-1]
    b[1:, :] |= dv & (lab[1:, :] > 0)
    b[:-1, :] |= dv & (lab[:-1, :] > 0)
    b[:, 1:] |= dh & (lab[:, 1:] > 0)
    b[:, :-1] |= dh & (lab[:, :-1] > 0)
    return b


# ---------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------
def draw_overlay(
    base,
    labels: Mapping[str, pd.DataFrame] | None = None,
    *,
    region: Sequence[float] | None = None,
    method: str = "gaussian",
    colors: Sequence[Any] | Mapping[str, Any] | None = None,
    fiducials: Fiducials | Sequence[Fiducials] | None = None,
    residual_scale: float | None = None,
    particles: np.ndarray | None = None,
    tre: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    tre_levels: Sequence[float] | None = None,
    scale_bar_nm: float | None = None,
    caption: str | None = None,
    title: str | None = None,
    pixel_scale: int | None = None,
    max_pixels: int = 2048,
    dpi: int = 100,
    base_limits: tuple[float, float] | None = None,
    base_cmap: str = "gray",
):
    """Draw a base image with localizations and annotations in its own space.

    Parameters
    ----------
    base
        Image element (dims with y, x; nm coordinates).
    labels
        ``name -> Localizations`` already in the base's space (x, y nm). Rendered on the display
        grid (``method``: ``"gaussian"`` = each localization with its own precision, at least one
        display pixel; ``"blur"`` = histogram blurred by the median precision, faster for millions
        of localizations; ``"histogram"``) and composited in colour.
    region
        ``(x0, y0, x1, y1)`` nm crop of the base.
    colors
        Per-label colours (list or mapping name -> colour).
    fiducials
        One or more :class:`Fiducials` (base space); residual vectors drawn ``residual_scale``
        times longer (default: scaled so the median residual spans ~5 % of the view).
    particles
        Label image (0 = background) on the base's full (y, x) pixel grid or on the displayed
        (cropped / coarsened) grid: particle outlines are drawn.
    tre
        ``(x_nm, y_nm, tre_nm[, legend])``: grid coordinates (1-D) and a 2-D map of predicted TRE
        (nm) to contour at ``tre_levels`` (default: round levels over its range).
    scale_bar_nm
        Length of the scale bar (default: a round number near a fifth of the view width).
    caption
        Text under the image (registration model and error figures).
    pixel_scale
        PNG pixels per displayed base pixel (integer; default chosen so the view is 600-1600
        pixels wide).
    max_pixels
        Larger crops are block-averaged to at most this many pixels per side.

    Returns
    -------
    matplotlib.figure.Figure
        With attributes ``correlate_scale_bar_nm``, ``correlate_nm_per_png_pixel`` and
        ``correlate_caption``.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..render import channel_colors, composite
    from ._scalebar import add_scale_bar, nice_length_nm

    grid, values, factor = _display_grid(base, region, max_pixels)
    ny, nx = grid.shape
    if pixel_scale is None:
        pixel_scale = max(1, int(math.ceil(600.0 / nx))) if nx < 600 else 1
        while pixel_scale > 1 and nx * pixel_scale > 1600:
            pixel_scale -= 1
    pixel_scale = int(pixel_scale)
    if pixel_scale < 1:
        raise ElementError(f"pixel_scale must be a positive integer, got {pixel_scale}", field="pixel_scale")

    # layout in PNG pixels: the axes spans exactly nx*s by ny*s pixels
    W, H = nx * pixel_scale, ny * pixel_scale
    pad = 12
    shown_caption = None
    if caption:
        import textwrap

        width = max(40, int(W / (0.61 * 8 * dpi / 72)) - 2)  # characters of 8 pt monospace
        shown_caption = "\n".join(
            textwrap.fill(line, width=width, subsequent_indent="    ") if line else line for line in caption.split("\n")
        )
    cap_lines = shown_caption.count("\n") + 1 if caption else 0
    cap_h = 8 + 15 * cap_lines if caption else 0
    title_h = 24 if title else 0
    fw, fh = W + 2 * pad, H + 2 * pad + cap_h + title_h
    fig = Figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    ax = fig.add_axes((pad / fw, (pad + cap_h) / fh, W / fw, H / fh))
    ax.set_axis_off()
    x_lo, x_hi, y_lo, y_hi = grid.extent
    extent = (x_lo, x_hi, y_hi, y_lo)  # row 0 at the top

    finite = values[np.isfinite(values)]
    if base_limits is None:
        lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
        if hi <= lo:
            hi = lo + 1.0
    else:
        lo, hi = base_limits
    ax.imshow(_tile(values, pixel_scale), cmap=base_cmap, vmin=lo, vmax=hi, extent=extent,
              interpolation="nearest", origin="upper", resample=False)

    handles = []
    if labels:
        rendered = _render_labels(labels, grid, method)
        cols = channel_colors(list(labels), colors)
        rgba = composite(rendered, cols, percentile=98.0, gamma=1.5, alpha=True)
        ax.imshow(_tile(rgba, pixel_scale), extent=extent, interpolation="nearest", origin="upper", resample=False)
        for name in labels:
            n = int(rendered.attrs["n_inside"].get(name, 0))
            handles.append(Patch(facecolor=cols[name], edgecolor="none", label=f"{name} ({n:,} loc.)"))

    if particles is not None:
        lab = np.asarray(particles)
        if lab.shape != grid.shape:
            from ..render import grid_from_image

            full = grid_from_image(_base_plane(base))
            if lab.shape != full.shape:
                raise ElementError(
                    f"particle label image has shape {lab.shape}; expected the base's {full.shape} "
                    f"or the displayed {grid.shape}",
                    field="particles",
                )
            lab = _sample_labels(lab, full, grid)
        b = _boundaries(lab)
        over = np.zeros(b.shape + (4,))
        over[b] = (1.0, 0.85, 0.0, 0.9)
        ax.imshow(_tile(over, pixel_scale), extent=extent, interpolation="nearest", origin="upper", resample=False)
        handles.append(Patch(facecolor="none", edgecolor=(1.0, 0.85, 0.0), label=f"particles ({len(np.unique(lab[lab > 0]))})"))

    if tre is not None:
        tx, ty, tv = tre[:3]
        tre_label = tre[3] if len(tre) > 3 else "predicted TRE (nm)"
        tv = np.asarray(tv, float)
        if np.isfinite(tv).any():
            if tre_levels is None:
                from matplotlib.ticker import MaxNLocator

                vmin, vmax = np.nanpercentile(tv, [2, 98])
                tre_levels = [v for v in MaxNLocator(nbins=5).tick_values(vmin, vmax) if vmin < v < vmax] or [
                    float(np.nanmedian(tv))]
            cs = ax.contour(tx, ty, tv, levels=sorted(tre_levels), colors="cyan", linewidths=1.0, zorder=10)
            ax.clabel(cs, fmt=lambda v: f"{v:g} nm", fontsize=8)
            handles.append(Line2D([], [], color="cyan", label=tre_label))

    fids = [] if fiducials is None else ([fiducials] if isinstance(fiducials, Fiducials) else list(fiducials))
    if fids:
        inside = [((f.x >= x_lo) & (f.x <= x_hi) & (f.y >= y_lo) & (f.y <= y_hi)) for f in fids]
        res = np.concatenate([np.hypot(f.dx, f.dy)[m] for f, m in zip(fids, inside)]) if fids else np.array([])
        res = res[np.isfinite(res) & (res > 0)]
        if residual_scale is None and res.size:
            residual_scale = 0.05 * (x_hi - x_lo) / float(np.median(res))
            residual_scale = float(nice_length_nm(residual_scale, 1.0)) if residual_scale >= 1 else 1.0
            residual_scale = min(residual_scale, 200.0)  # residuals far below a pixel stay invisible
        for k, (f, m) in enumerate(zip(fids, inside)):
            col = _FIDUCIAL_COLORS[k % len(_FIDUCIAL_COLORS)]
            for used, mk, txt in ((True, "o", ""), (False, "x", " (outliers)")):
                sel = m & (f.used == used)
                if not sel.any():
                    continue
                if used:
                    ax.scatter(f.x[sel], f.y[sel], s=60, marker="o", facecolors="none", edgecolors=col,
                               linewidths=1.5, zorder=15)
                else:
                    ax.scatter(f.x[sel], f.y[sel], s=60, marker="x", c="red", linewidths=1.5, zorder=15)
                handles.append(Line2D([], [], ls="none", marker=mk, mfc="none" if mk == "o" else "red",
                                      mec=col if used else "red", label=f"{f.label}{txt}"))
            ok = m & np.isfinite(f.dx) & np.isfinite(f.dy)
            if ok.any() and residual_scale:
                ax.quiver(f.x[ok], f.y[ok], f.dx[ok] * residual_scale, f.dy[ok] * residual_scale,
                          angles="xy", scale_units="xy", scale=1.0, color=col, width=0.004, zorder=16)
        if residual_scale and res.size:
            handles.append(Line2D([], [], color="0.8", marker=">", label=f"residuals × {residual_scale:g}"))

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_hi, y_lo)
    if scale_bar_nm is None:
        scale_bar_nm = nice_length_nm(x_hi - x_lo)
    add_scale_bar(ax, float(scale_bar_nm))
    if handles:
        leg = ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.7)
        leg.set_zorder(30)
    if title:
        fig.text(0.5, 1 - 6 / fh, title, ha="center", va="top", fontsize=11)
    if caption:
        fig.text(pad / fw, (cap_h - 6) / fh, shown_caption, ha="left", va="top", fontsize=8, family="monospace")
    fig.correlate_scale_bar_nm = float(scale_bar_nm)
    fig.correlate_nm_per_png_pixel = (grid.pixel_size[0] / pixel_scale, grid.pixel_size[1] / pixel_scale)
    fig.correlate_caption = caption or ""
    return fig


def save_figure(fig, path, *, dpi: int | None = None) -> Path:
    """Save a Figure as PNG or PDF (by the suffix) with the Agg/PDF backends; returns the path.

    Overlay figures keep their pixel layout (no tight bounding box)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".pdf", ".svg"):
        raise CorrelateError(f"cannot save a figure as {suffix or 'no suffix'}; use .png, .pdf or .svg", path=path)
    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi or fig.dpi, format=suffix[1:])
    return path


# ---------------------------------------------------------------------------------------------
# from a scene
# ---------------------------------------------------------------------------------------------
def _fmt_nm(v) -> str | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(f):
        return None
    if abs(f) < 10:
        return f"{f:.2f} nm"
    return f"{f:.1f} nm" if abs(f) < 1000 else f"{f:.0f} nm"


def _pick(rec: Mapping[str, Any], *keys):
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    errs = rec.get("errors") or rec.get("error") or {}
    if isinstance(errs, Mapping):
        for k in keys:
            if k in errs and errs[k] is not None:
                return errs[k]
    return None


def registration_summary(record: Mapping[str, Any]) -> str:
    """One line with a registration record's model and error figures (nm).

    Reads the keys of the records :func:`correlate.registration.registration_record` writes
    (``moving``, ``fixed``, ``model``, ``n_pairs``, ``n_used``, ``n_outliers``, ``fre_rms_nm``,
    ``predicted_tre_hull`` / ``predicted_tre_field``, ``loo_rms_nm``, ``chi2``, ``dof``,
    ``pvalue``) and a few common aliases, skipping any that is absent.
    """
    src = _pick(record, "moving", "source", "source_system")
    dst = _pick(record, "fixed", "target", "target_system")
    model = _pick(record, "model", "type") or "?"
    head = f"{src} -> {dst}: " if src or dst else ""
    parts = [f"model {model}"]
    n = _pick(record, "n_pairs", "n_fiducials", "n_landmarks", "n")
    nu = _pick(record, "n_used", "n_inliers")
    if n is not None:
        txt = f"{nu}/{n} fiducials used" if nu is not None else f"{n} fiducials"
        no = _pick(record, "n_outliers")
        if no:
            txt += f" ({no} outlier{'s' if no != 1 else ''})"
        parts.append(txt)
    s = _fmt_nm(_pick(record, "fre_rms_nm", "fre_nm", "fre"))
    if s:
        parts.append(f"FRE {s}")
    tre = None
    for key, where in (("predicted_tre_hull", "inside fiducials"), ("predicted_tre_field", "over the field")):
        d = record.get(key)
        if isinstance(d, Mapping) and d:
            med = _fmt_nm(d.get("tre_rms_median_nm"))
            r95 = _fmt_nm(d.get("tre_r95_p95_nm"))
            if med:
                tre = f"predicted TRE {med} (median {where}" + (f"; 95 % radius up to {r95})" if r95 else ")")
                break
    if tre is None:
        v = _fmt_nm(_pick(record, "tre_rms_nm", "predicted_tre_nm", "tre_nm"))
        if v:
            tre = f"predicted TRE {v}"
    if tre:
        parts.append(tre)
    s = _fmt_nm(_pick(record, "loo_rms_nm", "loo_nm", "loo"))
    if s:
        parts.append(f"leave-one-out {s}")
    chi, dof, pv = _pick(record, "chi2"), _pick(record, "dof"), _pick(record, "pvalue")
    try:
        if chi is not None:
            t = f"chi² {float(chi):.3g}"
            if dof is not None:
                t += f"/{float(dof):.3g} dof"
            if pv is not None:
                t += f" (p {float(pv):.2g})"
            parts.append(t)
    except (TypeError, ValueError):
        pass
    return head + ", ".join(parts)


def _world_or(scene, system: str, base: str):
    """Transform from a coordinate system (an element name or 'world') to the base's space."""
    if system == base:
        from ..transforms import Identity

        return Identity()
    if system == "world":
        return scene.transform_to_world(base).inverse()
    return scene.transform(system, base)


def _records_for(scene, names: Sequence[str]) -> list[Mapping[str, Any]]:
    try:
        recs = list(scene.registrations())
    except Exception:  # noqa: BLE001 - a scene without registrations
        return []
    out = {}
    for r in recs:
        src = _pick(r, "moving", "source", "source_system")
        dst = _pick(r, "fixed", "target", "target_system")
        if src in names or dst in names or not names:
            out[(src, dst)] = r  # the latest record per pair wins
    return list(out.values())


def _landmark_sets(scene, names: Sequence[str], base: str, records):
    """Landmarks relevant to the overlay, as (source_system, target_system, Landmarks)."""
    pairs = []
    for r in records:
        src = _pick(r, "moving", "source", "source_system")
        dst = _pick(r, "fixed", "target", "target_system")
        if src and dst:
            pairs.append((src, dst))
    lister = getattr(scene, "landmark_pairs", None) or getattr(scene, "list_landmarks", None)
    if callable(lister):
        try:
            for p in lister():
                pairs.append(tuple(p)[:2])
        except Exception:  # noqa: BLE001
            pass
    for n in names:
        pairs += [(n, base), (base, n), (n, "world")]
    seen, out = set(), []
    for a, b in pairs:
        if (a, b) in seen:
            continue
        seen.add((a, b))
        if a not in names and b not in names and a != base and b != base:
            continue
        try:
            lm = scene.get_landmarks(a, b)
        except Exception:  # noqa: BLE001 - no landmarks for this pair
            continue
        if lm is not None and len(lm):
            out.append((a, b, lm))
    # the labels' own fiducials when there are any; else those of the base's registrations
    own = [s for s in out if s[0] in names or s[1] in names]
    return own or out


def _fiducials_in_base(scene, base: str, sets) -> list[Fiducials]:
    out = []
    for a, b, lm in sets:
        try:
            to_base = _world_or(scene, b, base)
            found = to_base.apply(lm.target[:, :2])
            placed = to_base.apply(_world_or(scene, a, b).apply(lm.source[:, :2])) if a != b else found
        except Exception:  # noqa: BLE001 - an unmappable set is left out of the picture, not fatal
            continue
        d = placed - found
        out.append(Fiducials(found[:, 0], found[:, 1], d[:, 0], d[:, 1], lm.used, label=f"fiducials {a}→{b}"))
    return out


def _particles_on_grid(scene, base: str, grid, particles: str | None):
    """The label image named ``particles`` ('image/labels/name', or a name under the base)
    sampled (nearest) at the display grid's pixel centres."""
    if particles is None:
        return None
    if "/labels/" in particles:
        parent, lname = particles.split("/labels/", 1)
    else:
        parent, lname = base, particles
    lab = scene.get_labels(parent, lname)
    from ..render import grid_from_image

    if hasattr(lab, "dims"):
        lgrid = grid_from_image(lab if lab.dims[-2:] == ("y", "x") else lab.transpose(..., "y", "x"))
        arr = np.asarray(lab.values)
    else:
        parent_img = scene.get(parent)
        lgrid = grid_from_image(_base_plane(parent_img))
        arr = np.asarray(lab)
    while arr.ndim > 2:
        arr = arr.max(axis=0)
    to_parent = None if parent == base else scene.transform(base, parent)
    return _sample_labels(arr, lgrid, grid, to_parent)


def _sample_labels(arr, lgrid, grid, transform=None):
    """Nearest-neighbour sample of a label image (on ``lgrid``) at the pixel centres of ``grid``
    (optionally mapped by ``transform`` from grid space to label space first)."""
    X, Y = np.meshgrid(grid.centers("x"), grid.centers("y"))
    pts = np.column_stack([X.ravel(), Y.ravel()])
    if transform is not None:
        pts = transform.apply(pts)
    i = np.floor((pts[:, 0] - lgrid.origin[0]) / lgrid.pixel_size[0] + 0.5).astype(np.int64)
    j = np.floor((pts[:, 1] - lgrid.origin[1]) / lgrid.pixel_size[1] + 0.5).astype(np.int64)
    ok = (i >= 0) & (i < arr.shape[1]) & (j >= 0) & (j < arr.shape[0])
    out = np.zeros(pts.shape[0], dtype=arr.dtype)
    out[ok] = arr[j[ok], i[ok]]
    return out.reshape(grid.shape)


def _tre_on_grid(scene, base: str, grid, records, labels=(), n: int = 64) -> tuple | None:
    """Predicted RMS TRE (nm) on an n x n grid over the view, from the latest registration record
    of one of ``labels`` (else the latest of any) that carries an error model
    (``correlate.registration.Fit.from_error_model``); None if there is none."""
    withmodel = [r for r in records if isinstance(r.get("error_model"), Mapping)]
    mine = [r for r in withmodel if _pick(r, "moving", "source", "source_system") in set(labels)]
    rec = (mine or withmodel or [None])[-1]
    if rec is None:
        return None
    try:
        from ..registration import Fit

        fit = Fit.from_error_model(rec["error_model"])
        fixed = _pick(rec, "fixed", "target", "target_system") or base
        xs = np.linspace(grid.centers("x")[0], grid.centers("x")[-1], n)
        ys = np.linspace(grid.centers("y")[0], grid.centers("y")[-1], n)
        X, Y = np.meshgrid(xs, ys)
        pts = np.column_stack([X.ravel(), Y.ravel()])
        if fixed != base:
            pts = _world_or(scene, base, fixed).apply(pts) if base != "world" else pts
        if fit.ndim == 3:
            pts = np.column_stack([pts, np.full(len(pts), fit.center[2])])
        moving_pts = fit.transform.inverse().apply(pts)
        tre = np.asarray(fit.tre_rms(moving_pts), dtype=float)
    except Exception:  # noqa: BLE001 - the overlay says the map is unavailable instead
        return None
    if tre.size != X.size:
        return None
    label = f"predicted TRE {_pick(rec, 'moving', 'source') or ''}→{_pick(rec, 'fixed', 'target') or ''} (nm)"
    return xs, ys, tre.reshape(X.shape), label


def placed_labels(scene, labels: Sequence[str], base: str, *, explicit: bool = True,
                  assume_aligned: bool = False) -> tuple[list[str], list[str]]:
    """(labels that may be joined with ``base``, labels left out). A label the user named
    (``explicit``) that no registration placed raises UnplacedError; with the default label
    list such labels are left out, and the caller says so."""
    from ..errors import UnplacedError

    if assume_aligned or not hasattr(scene, "require_joinable"):
        return list(labels), []
    keep, out = [], []
    for n in labels:
        try:
            scene.require_joinable(n, base, action="overlay")
        except UnplacedError:
            if explicit:
                raise
            out.append(n)
            continue
        keep.append(n)
    return keep, out


def plot_overlay(
    scene,
    base: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    region: Sequence[float] | None = None,
    method: str = "gaussian",
    colors=None,
    show_fiducials: bool = True,
    show_particles: bool = False,
    particles: str | None = None,
    show_tre: bool = False,
    tre_levels: Sequence[float] | None = None,
    caption: bool | str = True,
    assume_aligned: bool = False,
    **kwargs,
):
    """Overlay of a scene's localizations (and annotations) on one of its images.

    Parameters
    ----------
    scene
        An open :class:`~correlate.scene.Scene`.
    base
        Name of the base image (default: the first EM image, else the first image).
    labels
        Localization element names to draw (default: all).
    region
        ``(x0, y0, x1, y1)`` crop in the base image's space (nm).
    method
        How localizations are rendered: ``"gaussian"``, ``"blur"`` or ``"histogram"``.
    show_fiducials
        Draw the landmarks of the relevant registrations and their residual vectors.
    show_particles, particles
        Draw particle outlines from a label image (``particles``: ``"<image>/labels/<name>"`` or
        a label name under the base; default: the first label image found under the base).
    show_tre
        Contour the predicted target registration error, when the registration package offers a
        map for the scene's latest registration record (the caption says when it cannot).
    caption
        True for the automatic caption (base, labels, registration figures), a string, or False.
    assume_aligned
        Draw labels that no registration placed in the base's frame. Otherwise a label named in
        ``labels`` raises :class:`~correlate.errors.UnplacedError`, and with the default (all
        labels) such labels are left out and the caption names them.
    **kwargs
        Passed to :func:`draw_overlay` (``scale_bar_nm``, ``pixel_scale``, ``title``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..render import grid_from_image

    images = [n for n in scene.names() if scene.kind(n) == "image"]
    if base is None:
        ems = [n for n in images if scene.get(n).attrs.get("modality") == "em"]
        if not ems and not images:
            raise ElementError("the scene has no image to use as the base of an overlay", field="base")
        base = (ems or images)[0]
    elif base not in scene.names():
        raise ElementError(f"no element {base!r} in the scene (images: {images})", field="base")
    locs_all = [n for n in scene.names() if scene.kind(n) == "localizations"]
    explicit = labels is not None
    if labels is None:
        labels = locs_all
    for n in labels:
        if n not in locs_all:
            raise ElementError(f"no localizations {n!r} in the scene (localizations: {locs_all})", field="labels")
    labels, left_out = placed_labels(scene, labels, base, explicit=explicit, assume_aligned=assume_aligned)
    base_img = scene.get(base)
    mapped = {}
    for n in labels:
        df = scene.get(n)
        mapped[n] = scene.map_points(df[[c for c in ("x", "y", "precision", "precision_x", "precision_y") if c in df.columns]],
                                     n, base, assume_aligned=assume_aligned)

    records = _records_for(scene, list(labels) + [base])
    lines = [f"base {base} ({grid_from_image(_base_plane(base_img)).pixel_size[0]:.3g} nm/px)" + (
        f"; labels {', '.join(labels)}" if labels else "")]
    for r in records:
        lines.append(registration_summary(r))
    if not records and labels:
        lines.append("no registration record in the scene: labels placed by the stored transforms")
    if left_out:
        lines.append(f"not drawn (no registration places them in {base}'s frame): {', '.join(left_out)}")

    fids = None
    if show_fiducials:
        fids = _fiducials_in_base(scene, base, _landmark_sets(scene, list(labels), base, records)) or None

    grid, _, factor = _display_grid(base_img, region, kwargs.get("max_pixels", 2048), load=False)
    lab_img = None
    if show_particles:
        if particles is None:
            found = [n for n in scene.names(kind="labels") if n.startswith(f"{base}/labels/")]
            if not found:
                found = scene.names(kind="labels")
            particles = found[0] if found else f"{base}/labels/particles"
        try:
            lab_img = _particles_on_grid(scene, base, grid, particles)
        except Exception as exc:  # noqa: BLE001 - an overlay without outlines is still useful
            lines.append(f"particle outlines unavailable ({exc})")
    tre = None
    if show_tre:
        tre = _tre_on_grid(scene, base, grid, records, labels)
        if tre is None:
            lines.append("predicted-TRE map unavailable for this registration")
    if isinstance(caption, str):
        text = caption
    else:
        text = "\n".join(lines) if caption else None

    return draw_overlay(base_img, mapped, region=region, method=method, colors=colors, fiducials=fids,
                        particles=lab_img, tre=tre, tre_levels=tre_levels, caption=text, **kwargs)
