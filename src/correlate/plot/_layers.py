"""The layers an overlay draws on its axes, in the base image's space (nm): localizations,
particle outlines, predicted-TRE contours, fiducials with residual vectors; and the figure
laid out in PNG pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ElementError
from ._raster import base_plane, boundaries, render_labels, sample_labels, tile

__all__ = ["Fiducials", "choose_pixel_scale", "figure_layout", "draw_labels", "draw_particles", "draw_tre", "draw_fiducials"]

#: Narrowest caption (characters) before the figure is made wider than the image.
_MIN_CAPTION_CHARS = 60
#: Colours of successive fiducial sets (circles and their residual arrows).
_FIDUCIAL_COLORS = ("yellow", "#ff8c00", "#00bfff", "#ff69b4", "white")


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


def _show(ax, rgba, pixel_scale: int, extent) -> None:
    ax.imshow(tile(rgba, pixel_scale), extent=extent, interpolation="nearest", origin="upper", resample=False)


def choose_pixel_scale(nx: int, pixel_scale: int | None) -> int:
    """PNG pixels per displayed pixel: the given one, or so the view is 600-1600 pixels wide."""
    if pixel_scale is None:
        pixel_scale = max(1, int(math.ceil(600.0 / nx))) if nx < 600 else 1
        while pixel_scale > 1 and nx * pixel_scale > 1600:
            pixel_scale -= 1
    pixel_scale = int(pixel_scale)
    if pixel_scale < 1:
        raise ElementError(f"pixel_scale must be a positive integer, got {pixel_scale}", field="pixel_scale")
    return pixel_scale


def figure_layout(W: int, H: int, caption: str | None, title: str | None, dpi: int) -> dict[str, Any]:
    """A Figure whose image axes spans exactly ``W`` x ``H`` PNG pixels, with room for the title
    above and the (wrapped, monospace) caption below. Returns fig, ax, fw, fh, pad, cap_h and
    the wrapped caption."""
    from ._figure import new_figure

    pad = 12
    shown_caption = None
    fw = W + 2 * pad
    if caption:
        import textwrap

        char_px = 0.61 * 8 * dpi / 72  # one character of 8 pt monospace
        width = max(int(W / char_px) - 2, 1)
        if width < _MIN_CAPTION_CHARS:  # a narrow view: the figure widens to hold the caption
            width = _MIN_CAPTION_CHARS
            fw = max(fw, int(math.ceil((width + 2) * char_px)) + 2 * pad)
        shown_caption = "\n".join(
            textwrap.fill(line, width=width, subsequent_indent="    ", break_on_hyphens=False) if line else line
            for line in caption.split("\n")
        )
    cap_lines = shown_caption.count("\n") + 1 if caption else 0
    cap_h = 8 + 15 * cap_lines if caption else 0
    title_h = 24 if title else 0
    fh = H + 2 * pad + cap_h + title_h
    fig = new_figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # text metrics (contour labels) from a renderer, not by drawing the whole figure
    ax = fig.add_axes((pad / fw, (pad + cap_h) / fh, W / fw, H / fh))
    ax.set_axis_off()
    return {"fig": fig, "ax": ax, "fw": fw, "fh": fh, "pad": pad, "cap_h": cap_h, "caption": shown_caption}


def draw_labels(ax, labels: Mapping[str, pd.DataFrame], grid, method: str, colors, pixel_scale: int, extent,
                handles: list) -> None:
    """Rendered localizations composited in colour, one legend entry per label."""
    from matplotlib.patches import Patch

    from ..render import channel_colors, composite

    rendered = render_labels(labels, grid, method)
    cols = channel_colors(list(labels), colors)
    rgba = composite(rendered, cols, percentile=98.0, gamma=1.5, alpha=True)
    _show(ax, rgba, pixel_scale, extent)
    for name in labels:
        n = int(rendered.attrs["n_inside"].get(name, 0))
        handles.append(Patch(facecolor=cols[name], edgecolor="none", label=f"{name} ({n:,} loc.)"))


def draw_particles(ax, particles, base, grid, pixel_scale: int, extent, handles: list) -> None:
    """Particle outlines of a label image on the base's full grid or on the displayed grid."""
    from matplotlib.patches import Patch

    lab = np.asarray(particles)
    if lab.shape != grid.shape:
        from ..render import grid_from_image

        full = grid_from_image(base_plane(base))
        if lab.shape != full.shape:
            raise ElementError(
                f"particle label image has shape {lab.shape}; expected the base's {full.shape} "
                f"or the displayed {grid.shape}",
                field="particles",
            )
        lab = sample_labels(lab, full, grid)
    b = boundaries(lab)
    over = np.zeros(b.shape + (4,))
    over[b] = (1.0, 0.85, 0.0, 0.9)
    _show(ax, over, pixel_scale, extent)
    handles.append(Patch(facecolor="none", edgecolor=(1.0, 0.85, 0.0), label=f"particles ({len(np.unique(lab[lab > 0]))})"))


def draw_tre(ax, tre: tuple, tre_levels: Sequence[float] | None, handles: list) -> None:
    """Contours of a predicted-TRE map ``(x_nm, y_nm, tre_nm[, legend])`` at ``tre_levels``
    (default: round levels over its 2-98 % range)."""
    from matplotlib.lines import Line2D

    tx, ty, tv = tre[:3]
    tre_label = tre[3] if len(tre) > 3 else "predicted TRE (nm)"
    tv = np.asarray(tv, float)
    if not np.isfinite(tv).any():
        return
    if tre_levels is None:
        from matplotlib.ticker import MaxNLocator

        vmin, vmax = np.nanpercentile(tv, [2, 98])
        tre_levels = [v for v in MaxNLocator(nbins=5).tick_values(vmin, vmax) if vmin < v < vmax] or [
            float(np.nanmedian(tv))]
    cs = ax.contour(tx, ty, tv, levels=sorted(tre_levels), colors="cyan", linewidths=1.0, zorder=10)
    ax.clabel(cs, fmt=lambda v: f"{v:g} nm", fontsize=8)
    handles.append(Line2D([], [], color="cyan", label=tre_label))


def draw_fiducials(ax, fids: list[Fiducials], view: tuple[float, float, float, float],
                   residual_scale: float | None, handles: list) -> None:
    """Fiducial circles (outliers as red crosses) and residual arrows ``residual_scale`` times
    longer (default: the median residual spans ~5 % of the view width); ``view`` is
    (x_lo, x_hi, y_lo, y_hi) nm."""
    from matplotlib.lines import Line2D

    from ._scalebar import nice_length_nm

    x_lo, x_hi, y_lo, y_hi = view
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
