"""Scale bars in nanometres."""

from __future__ import annotations

import math

__all__ = ["nice_length_nm", "format_length", "add_scale_bar"]


def nice_length_nm(width_nm: float, fraction: float = 0.2) -> float:
    """A round length (1, 2 or 5 x 10^k nm) close to ``fraction`` of ``width_nm``, not above it."""
    target = max(float(width_nm) * fraction, 1e-9)
    k = math.floor(math.log10(target))
    best = 10.0**k
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**k <= target:
            best = m * 10.0**k
    return best


def format_length(nm: float) -> str:
    """``'500 nm'``, ``'2 µm'``, ``'1.5 mm'``: the unit that keeps the number readable."""
    nm = float(nm)
    for unit, f in (("mm", 1e6), ("µm", 1e3)):
        if abs(nm) >= f:
            v = nm / f
            return f"{v:g} {unit}"
    return f"{nm:g} nm"


def add_scale_bar(
    ax,
    length_nm: float,
    *,
    color: str = "white",
    edgecolor: str | None = "black",
    height_px: float = 6.0,
    margin_px: float = 16.0,
    loc: str = "lower left",
    label: bool = True,
    fontsize: float = 10.0,
):
    """Draw a bar of ``length_nm`` in the data coordinates (nm) of an image axes.

    The bar is a rectangle exactly ``length_nm`` long in data units (no anti-aliasing, so its
    length in the saved PNG is ``length_nm`` / nm-per-display-pixel, to a pixel), with its label
    above it. Works for axes whose y axis is inverted (image row 0 at the top) or not.

    Returns
    -------
    matplotlib.patches.Rectangle
        The bar (its ``get_width()`` is ``length_nm``).
    """
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    bbox = ax.get_window_extent()
    nm_per_px_x = abs(x1 - x0) / bbox.width
    nm_per_px_y = abs(y1 - y0) / bbox.height
    xl, xr = min(x0, x1), max(x0, x1)
    yb = y0  # data y at the bottom of the axes (ylim is (bottom, top) on screen)
    up = -1.0 if y0 > y1 else 1.0  # data direction of "up" on screen
    h = height_px * nm_per_px_y
    m_x = margin_px * nm_per_px_x
    m_y = margin_px * nm_per_px_y
    if "right" in loc:
        bx = xr - m_x - length_nm
    else:
        bx = xl + m_x
    by = yb + up * m_y
    rect = Rectangle(
        (bx, by if up > 0 else by - h),
        length_nm,
        h,
        facecolor=color,
        edgecolor="none",
        antialiased=False,
        zorder=20,
        gid="scale_bar",
    )
    ax.add_patch(rect)
    if label:
        t = ax.text(
            bx + 0.5 * length_nm,
            by + up * (h + 3 * nm_per_px_y),
            format_length(length_nm),
            color=color,
            ha="center",
            va="bottom",
            fontsize=fontsize,
            zorder=21,
        )
        if edgecolor:
            t.set_path_effects([patheffects.withStroke(linewidth=2, foreground=edgecolor)])
    return rect
