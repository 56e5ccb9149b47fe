"""The pixel grid a rendering is made on.

Convention (NGFF, as everywhere in correlate): ``origin`` is the *centre* of pixel 0 and pixel
``i`` covers ``[origin + (i - 0.5) * px, origin + (i + 0.5) * px)``. A user whose numbers refer to
the *corner* of pixel 0 (the lower-left edge of the image, as in many SMLM programs) passes
``convention="corner"`` and the grid converts once, here.

The far edge of the grid is closed: a point exactly on it is counted in the last pixel, so that a
grid built from an extent ``[lo, hi]`` holds every point ``lo <= p <= hi``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ElementError

__all__ = ["Grid", "grid_from_image", "grid_from_extent", "as_grid"]

_CONVENTIONS = ("center", "corner")


@dataclass(frozen=True)
class Grid:
    """A regular 2-D pixel grid in nm.

    Attributes
    ----------
    origin
        ``(x0, y0)``: centre of pixel ``(0, 0)`` in nm.
    pixel_size
        ``(px, py)`` in nm.
    shape
        ``(ny, nx)`` pixels.
    """

    origin: tuple[float, float]
    pixel_size: tuple[float, float]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        px, py = self.pixel_size
        if not (np.isfinite(px) and np.isfinite(py) and px > 0 and py > 0):
            raise ElementError(f"pixel size must be positive finite nm, got {self.pixel_size}", field="pixel_size_nm")
        ny, nx = self.shape
        if ny < 1 or nx < 1:
            raise ElementError(f"a grid needs at least one pixel per axis, got shape {self.shape}", field="shape")

    # -- geometry ---------------------------------------------------------------------------------
    def edges(self, axis: str) -> np.ndarray:
        """Pixel edges along ``'x'`` or ``'y'`` (nm), length ``n + 1``: ``origin + (k - 0.5) * px``."""
        i = 0 if axis == "x" else 1
        n = self.shape[1 - i]
        return self.origin[i] + (np.arange(n + 1, dtype=float) - 0.5) * self.pixel_size[i]

    def centers(self, axis: str) -> np.ndarray:
        """Pixel centres along ``'x'`` or ``'y'`` (nm), length ``n``."""
        i = 0 if axis == "x" else 1
        n = self.shape[1 - i]
        return self.origin[i] + np.arange(n, dtype=float) * self.pixel_size[i]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_lo, x_hi, y_lo, y_hi)``: the outer pixel edges in nm (matplotlib ``extent`` order
        is ``(x_lo, x_hi, y_hi, y_lo)`` for an image drawn with row 0 at the top)."""
        ex, ey = self.edges("x"), self.edges("y")
        return float(ex[0]), float(ex[-1]), float(ey[0]), float(ey[-1])

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where ``(x, y)`` falls in the grid (far edges closed)."""
        x0, x1, y0, y1 = self.extent
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)

    def coords(self) -> dict[str, Any]:
        """``origin_nm`` / ``pixel_size_nm`` mappings for :func:`correlate.elements.make_image`."""
        return {
            "origin_nm": {"y": self.origin[1], "x": self.origin[0]},
            "pixel_size_nm": {"y": self.pixel_size[1], "x": self.pixel_size[0]},
        }

    def crop(self, region: Sequence[float]) -> "Grid":
        """The sub-grid of whole pixels that covers ``region = (x0, y0, x1, y1)`` (nm)."""
        x0, y0, x1, y1 = (float(v) for v in region)
        if x1 < x0:
            x0, x1 = x1, x0
        if y1 < y0:
            y0, y1 = y1, y0
        (ox, oy), (px, py), (ny, nx) = self.origin, self.pixel_size, self.shape
        i0 = max(0, int(math.floor((x0 - ox) / px + 0.5)))
        i1 = min(nx - 1, int(math.floor((x1 - ox) / px + 0.5)))
        j0 = max(0, int(math.floor((y0 - oy) / py + 0.5)))
        j1 = min(ny - 1, int(math.floor((y1 - oy) / py + 0.5)))
        if i1 < i0 or j1 < j0:
            raise ElementError(
                f"region {tuple(region)} does not overlap the grid (x {self.extent[:2]}, y {self.extent[2:]} nm)",
                field="region",
            )
        return Grid((ox + i0 * px, oy + j0 * py), (px, py), (j1 - j0 + 1, i1 - i0 + 1))

    def index_slices(self, sub: "Grid") -> tuple[slice, slice]:
        """Row and column slices of this grid that ``sub`` (made by :meth:`crop`) covers."""
        i0 = int(round((sub.origin[0] - self.origin[0]) / self.pixel_size[0]))
        j0 = int(round((sub.origin[1] - self.origin[1]) / self.pixel_size[1]))
        return slice(j0, j0 + sub.shape[0]), slice(i0, i0 + sub.shape[1])


def _pair(v, what: str) -> tuple[float, float]:
    """A number or an ``(x, y)`` pair / ``{"x":, "y":}`` mapping as ``(x, y)`` floats."""
    if isinstance(v, Mapping):
        try:
            return float(v["x"]), float(v["y"])
        except KeyError as exc:
            raise ElementError(f"{what} mapping needs keys 'x' and 'y', got {sorted(v)}", field=what) from exc
    if np.ndim(v) == 0:
        return float(v), float(v)
    seq = [float(a) for a in v]
    if len(seq) != 2:
        raise ElementError(f"{what} needs one value or (x, y), got {len(seq)} values", field=what)
    return seq[0], seq[1]


def _centre_of_first(corner: float, p: float) -> float:
    """Centre of the pixel whose low edge is ``corner``, such that the edge as :meth:`Grid.edges`
    computes it (``origin + (-0.5) * p``) is not above ``corner`` in floating point."""
    o = corner + 0.5 * p
    while o + (-0.5 * p) > corner:
        o = float(np.nextafter(o, -np.inf))
    return o


def grid_from_image(image) -> Grid:
    """The (y, x) pixel grid of an Image element (its nm coordinates at pixel centres)."""
    from ..elements import pixel_size, origin

    for d in ("y", "x"):
        if d not in image.dims:
            raise ElementError(
                f"image {image.name!r} has dims {tuple(image.dims)}; a render grid needs 'y' and 'x'",
                field=d,
            )
    px, org = pixel_size(image), origin(image)
    return Grid(
        origin=(org["x"], org["y"]),
        pixel_size=(px["x"], px["y"]),
        shape=(int(image.sizes["y"]), int(image.sizes["x"])),
    )


def grid_from_extent(
    pixel_size_nm: float | Sequence[float],
    extent_nm: Sequence[float],
) -> Grid:
    """A grid of square (or ``(px, py)``) pixels whose pixel 0 starts at the low edge of the extent.

    Parameters
    ----------
    pixel_size_nm
        Pixel size in nm (one value or ``(px, py)``).
    extent_nm
        ``(x_lo, x_hi, y_lo, y_hi)`` in nm. The grid has ``ceil((hi - lo) / px)`` pixels per axis
        (at least one), so the last, partial pixel is kept; its edge may then lie beyond ``hi``.
        A point exactly at ``hi`` is counted.
    """
    px, py = _pair(pixel_size_nm, "pixel_size_nm")
    if len(extent_nm) != 4:
        raise ElementError(f"extent_nm must be (x_lo, x_hi, y_lo, y_hi), got {tuple(extent_nm)}", field="extent_nm")
    x0, x1, y0, y1 = (float(v) for v in extent_nm)
    if not all(np.isfinite([x0, x1, y0, y1])) or x1 < x0 or y1 < y0:
        raise ElementError(f"extent_nm must be finite with lo <= hi, got {tuple(extent_nm)}", field="extent_nm")
    if px <= 0 or py <= 0 or not np.isfinite(px) or not np.isfinite(py):
        raise ElementError(f"pixel size must be positive finite nm, got {(px, py)}", field="pixel_size_nm")

    def axis(lo, hi, p):
        # choose origin and n so that, in floating point, the first edge is <= lo and the last >= hi
        o = _centre_of_first(lo, p)
        n = max(1, int(math.ceil((hi - lo) / p)))
        while o + (n - 0.5) * p < hi:
            n += 1
        return o, n

    ox, nx = axis(x0, x1, px)
    oy, ny = axis(y0, y1, py)
    return Grid(origin=(ox, oy), pixel_size=(px, py), shape=(ny, nx))


def as_grid(
    *,
    like=None,
    pixel_size_nm=None,
    extent_nm=None,
    origin_nm=None,
    shape=None,
    convention: str = "center",
    points: tuple[np.ndarray, np.ndarray] | None = None,
) -> Grid:
    """Resolve the ways a caller can name a grid into one :class:`Grid`.

    Exactly one of:

    * ``like``: an Image element (or a :class:`Grid`): its pixels.
    * ``pixel_size_nm`` + ``origin_nm`` + ``shape``: ``origin_nm`` is the centre of pixel 0
      (``convention="center"``, NGFF) or its low corner (``convention="corner"``).
    * ``pixel_size_nm`` + ``extent_nm``: ``(x_lo, x_hi, y_lo, y_hi)``, pixel edges start at ``x_lo``.
    * ``pixel_size_nm`` alone: the extent of ``points`` (the localizations).
    """
    if convention not in _CONVENTIONS:
        raise ElementError(f"convention must be one of {_CONVENTIONS}, got {convention!r}", field="convention")
    if like is not None:
        if isinstance(like, Grid):
            return like
        return grid_from_image(like)
    if pixel_size_nm is None:
        raise ElementError("give a grid: like=<Image>, or pixel_size_nm (with extent_nm or origin_nm+shape)", field="pixel_size_nm")
    px, py = _pair(pixel_size_nm, "pixel_size_nm")
    if origin_nm is not None:
        if shape is None:
            raise ElementError("origin_nm needs shape=(ny, nx) too (or give extent_nm)", field="shape")
        ox, oy = _pair(origin_nm, "origin_nm")
        if convention == "corner":
            ox, oy = _centre_of_first(ox, px), _centre_of_first(oy, py)
        return Grid((ox, oy), (px, py), (int(shape[0]), int(shape[1])))
    if extent_nm is None:
        if points is None or len(points[0]) == 0:
            raise ElementError("no extent_nm and no localizations to take it from", field="extent_nm")
        x, y = points
        extent_nm = (float(np.min(x)), float(np.max(x)), float(np.min(y)), float(np.max(y)))
    # an extent names pixel edges in either convention
    return grid_from_extent((px, py), extent_nm)
