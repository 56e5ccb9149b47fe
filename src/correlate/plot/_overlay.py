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

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import CorrelateError, ElementError
from ._from_scene import fiducials_in_base, landmark_sets, particles_on_grid, placed_labels
from ._layers import (
    Fiducials,
    choose_pixel_scale,
    draw_fiducials,
    draw_labels,
    draw_particles,
    draw_tre,
    figure_layout,
)
from ._raster import base_plane, display_grid, tile
from ._records import records_for, registration_summary

__all__ = ["draw_overlay", "plot_overlay", "save_figure", "Fiducials", "registration_summary"]


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
    image_layers: Sequence[Any] | None = None,
    image_alpha: float = 0.45,
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
    image_layers, image_alpha
        Other images already on the display grid (:class:`~correlate.plot._image_layers.ImageLayer`,
        NaN outside them), drawn over the base ``image_alpha`` opaque, under the localizations.
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
    from ._scalebar import add_scale_bar, nice_length_nm

    grid, values, factor = display_grid(base, region, max_pixels)
    ny, nx = grid.shape
    pixel_scale = choose_pixel_scale(nx, pixel_scale)
    lay = figure_layout(nx * pixel_scale, ny * pixel_scale, caption, title, dpi)
    fig, ax, fw, fh, pad, cap_h = (lay[k] for k in ("fig", "ax", "fw", "fh", "pad", "cap_h"))
    x_lo, x_hi, y_lo, y_hi = grid.extent
    extent = (x_lo, x_hi, y_hi, y_lo)  # row 0 at the top

    finite = values[np.isfinite(values)]
    if base_limits is None:
        lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
        if hi <= lo:
            hi = lo + 1.0
    else:
        lo, hi = base_limits
    ax.imshow(tile(values, pixel_scale), cmap=base_cmap, vmin=lo, vmax=hi, extent=extent,
              interpolation="nearest", origin="upper", resample=False)

    handles: list = []
    if image_layers:
        from ._image_layers import draw_image_layers

        draw_image_layers(ax, image_layers, pixel_scale, extent, image_alpha, handles)
    if labels:
        draw_labels(ax, labels, grid, method, colors, pixel_scale, extent, handles)
    if particles is not None:
        draw_particles(ax, particles, base, grid, pixel_scale, extent, handles)
    if tre is not None:
        draw_tre(ax, tre, tre_levels, handles)
    fids = [] if fiducials is None else ([fiducials] if isinstance(fiducials, Fiducials) else list(fiducials))
    if fids:
        draw_fiducials(ax, fids, (x_lo, x_hi, y_lo, y_hi), residual_scale, handles)

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
        fig.text(pad / fw, (cap_h - 6) / fh, lay["caption"], ha="left", va="top", fontsize=8, family="monospace")
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



def plot_overlay(
    scene,
    base: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    region: Sequence[float] | None = None,
    method: str = "gaussian",
    colors=None,
    images: Sequence[str] | None = None,
    image_alpha: float = 0.45,
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
    images, image_alpha
        Other image elements (SIM channels, AFM heights, ...) drawn as semi-transparent layers
        (``image_alpha`` opaque at their brightest) resampled into the base's space; default:
        every image placed in the base's frame that covers part of the view; ``[]`` for none. A named image that no
        registration placed raises :class:`~correlate.errors.UnplacedError` (unless
        ``assume_aligned``). Each layer is named in the legend and the caption.
    show_fiducials
        Draw the landmarks of the relevant registrations and their residual vectors.
    show_particles, particles
        Draw particle outlines from a label image (``particles``: ``"<image>/labels/<name>"`` or
        a label name under the base; default: the first label image found under the base).
    show_tre
        Contour the predicted target registration error of the registration that places the
        drawn localizations on the base (along the placement chain, the one with the largest
        median error over the view); the legend and caption name that record.
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
        As :func:`draw_overlay`, plus ``correlate_tre_record`` (the record whose TRE is
        contoured, or None), ``correlate_images`` (names of the image layers drawn),
        ``correlate_image_layers`` (their values on ``correlate_display_grid``, NaN outside).
    """
    from ..render import grid_from_image

    base = _choose_base(scene, base)
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

    records = records_for(scene, list(labels) + [base])
    lines = [f"base {base} ({grid_from_image(base_plane(base_img)).pixel_size[0]:.3g} nm/px)" + (
        f"; labels {', '.join(labels)}" if labels else "")]
    for r in records:
        lines.append(registration_summary(r))
    if not records and labels:
        lines.append("no registration record in the scene: labels placed by the stored transforms")
    if left_out:
        lines.append(f"not drawn (no registration places them in {base}'s frame): {', '.join(left_out)}")

    fids = None
    if show_fiducials:
        fids = fiducials_in_base(scene, base, landmark_sets(scene, list(labels), base, records)) or None

    grid, _, factor = display_grid(base_img, region, kwargs.get("max_pixels", 2048), load=False)
    layers = _image_layers(scene, base, grid, images, assume_aligned, lines)
    lab_img = None
    if show_particles:
        if particles is None:
            found = [n for n in scene.names(kind="labels") if n.startswith(f"{base}/labels/")]
            if not found:
                found = scene.names(kind="labels")
            particles = found[0] if found else f"{base}/labels/particles"
        try:
            lab_img = particles_on_grid(scene, base, grid, particles)
        except Exception as exc:  # noqa: BLE001 - an overlay without outlines is still useful
            lines.append(f"particle outlines unavailable ({exc})")
    tre, tre_rec = None, None
    if show_tre:
        tre, tre_rec = _tre_layer(scene, base, grid, records, labels, lines)
    if isinstance(caption, str):
        text = caption
    else:
        text = "\n".join(lines) if caption else None

    fig = draw_overlay(base_img, mapped, region=region, method=method, colors=colors, fiducials=fids,
                       particles=lab_img, tre=tre, tre_levels=tre_levels, caption=text, image_layers=layers,
                       image_alpha=image_alpha, **kwargs)
    fig.correlate_tre_record = tre_rec
    fig.correlate_images = [layer.name for layer in layers]
    fig.correlate_image_layers = layers
    fig.correlate_display_grid = grid
    return fig


def _choose_base(scene, base: str | None) -> str:
    images = [n for n in scene.names() if scene.kind(n) == "image"]
    if base is None:
        ems = [n for n in images if scene.get(n).attrs.get("modality") == "em"]
        if not ems and not images:
            raise ElementError("the scene has no image to use as the base of an overlay", field="base")
        return (ems or images)[0]
    if base not in scene.names():
        raise ElementError(f"no element {base!r} in the scene (images: {images})", field="base")
    return base


def _image_layers(scene, base: str, grid, images, assume_aligned: bool, lines: list[str]) -> list:
    """The image layers to draw; the caption lines name them and those left out."""
    from ._image_layers import default_images, image_layers_on_grid

    if images is not None:
        layers = image_layers_on_grid(scene, base, grid, list(images), assume_aligned=assume_aligned)
        unplaced, outside = [], [la.name for la in layers if la.coverage == 0.0]
    else:
        names, unplaced = default_images(scene, base, assume_aligned=assume_aligned)
        layers = image_layers_on_grid(scene, base, grid, names, assume_aligned=True)
        outside = [la.name for la in layers if la.coverage == 0.0]
        layers = [la for la in layers if la.coverage > 0.0]
    if layers:
        lines.append("image layers: " + ", ".join(
            f"{la.name} ({_modality(la)}{100 * la.coverage:.0f} % of the view)"
            for la in layers))
    if outside:
        lines.append(f"image layers outside the view: {', '.join(outside)}")
    if unplaced:
        lines.append(f"images not drawn (no registration places them in {base}'s frame): {', '.join(unplaced)}")
    return layers


def _modality(layer) -> str:
    m = layer.modality
    return f"{m}, " if m and m.lower() not in layer.name.lower() else ""


def _tre_layer(scene, base: str, grid, records, labels, lines: list[str]):
    """(``(x, y, tre, legend)`` for draw_overlay or None, the record used or None)."""
    from ._records import registration_summary as _summary
    from ._tre_chain import tre_on_grid

    res = tre_on_grid(scene, base, grid, records, labels)
    if res is None:
        lines.append(f"no predicted-TRE map: no registration record places the labels on {base} "
                     "(stored or declared transforms only)")
        return None, None
    if res["record"] is None:
        lines.append(f"no predicted-TRE map: {'; '.join(res['missing'])}")
        return None, None
    rec = res["record"]
    others = [f"{name} {med:.3g} nm" for name, med in res["candidates"] if name != res["name"]]
    lines.append(f"TRE contours: {res['name']}, the largest error placing "
                 "the labels on " + base + (f" (others, median over the view: {', '.join(others)})" if others else "")
                 + (f"; without error model: {', '.join(res['missing'])}" if res["missing"] else ""))
    if rec.get("id") not in {r.get("id") for r in records}:
        lines.append(_summary(rec))
    return (res["x"], res["y"], res["tre"], res["legend"]), rec
