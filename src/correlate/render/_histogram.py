"""Histogram rendering: the number of localizations per pixel.

Exact counting: each localization inside the grid lands in exactly one pixel, decided against
the pixel edges themselves (``origin + (k - 0.5) * px``), with the far edge closed. So N
localizations inside the extent sum to N, none is lost to a partial last bin, and a point on a
pixel edge goes to the pixel on its right/top (half-open pixels).
"""

from __future__ import annotations

import math

import numpy as np

from ._grid import Grid

__all__ = ["histogram_counts", "render_histogram"]


#: Most points rendered per pass: bounds the work arrays (8 bytes per point, 16 with weights)
#: whatever N. A pass holds at most max(MIN_BLOCK, pixels of the image) points, so the work arrays
#: stay about the size of the image itself, and an image is swept once for up to that many points.
BLOCK = 1 << 24
MIN_BLOCK = 1 << 22


def block_size(n: int, n_pixels: int) -> int:
    """Points per pass for ``n`` points on an image of ``n_pixels`` (see :data:`BLOCK`)."""
    return max(1, min(n, BLOCK, max(MIN_BLOCK, n_pixels)))
#: Pixels of the image tile one thread fills at a time (float64: 256 KiB, half an L2 cache).
TILE_PIXELS = 1 << 15


def tile_shape(shape: tuple[int, int], footprint_px: float = 1.0) -> tuple[int, int]:
    """log2 of the (rows, cols) of the tiles a render fills in parallel: about :data:`TILE_PIXELS`
    pixels, and at least four footprints (pixels one point touches along an axis) on a side, so
    that few points straddle tiles; powers of two, so that a shift finds a pixel's tile."""
    ny, nx = shape

    def log2_at_least(v: float) -> int:
        return max(0, int(math.ceil(math.log2(max(v, 1.0)))))

    side = log2_at_least(4.0 * min(footprint_px, float(max(ny, nx))))
    rows = min(log2_at_least(ny), max(5, side))
    cols = min(log2_at_least(nx), max(side, log2_at_least(TILE_PIXELS) - rows))
    return int(rows), int(cols)


def out_array(grid: Grid, out: np.ndarray | None) -> np.ndarray:
    """A zero (ny, nx) float64 image, or the caller's ``out`` after checking it can be added into."""
    from ..errors import ElementError

    if out is None:
        return np.zeros(grid.shape, dtype=np.float64)
    if out.shape != tuple(grid.shape) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ElementError(
            f"out must be a C-contiguous float64 array of shape {tuple(grid.shape)}, got {out.dtype} {out.shape}",
            field="out",
        )
    return out


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Weights as float64 (empty: count 1 each), checked against the number of points."""
    from ..errors import ElementError

    if weights is None:
        return np.empty(0)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ElementError(f"weights must have one value per point ({n}), got shape {w.shape}", field="weights")
    return w


def histogram_counts(
    x: np.ndarray,
    y: np.ndarray,
    grid: Grid,
    weights: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Count points per pixel of ``grid``.

    Parameters
    ----------
    x, y
        (N,) coordinates in nm.
    grid
        The pixel grid.
    weights
        Optional (N,) weight per point (default 1).
    out
        Optional (ny, nx) float64 array to add into.

    Returns
    -------
    counts : numpy.ndarray
        (ny, nx) float64, row ``j`` = y pixel ``j``, column ``i`` = x pixel ``i``.
    n_inside : int
        Number of points that fell inside the grid.

    Notes
    -----
    Runs on numba's threads (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``); every pixel adds
    its points in input order, so the result is bit-identical for any thread count.
    """
    from ._kernels import Scratch, hist_block

    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = out_array(grid, out)
    w = _weights(weights, x.size)
    ex, ey = grid.edges("x"), grid.edges("y")
    shifts = tile_shape(grid.shape)
    n = 0
    step = block_size(x.size, out.size)
    scratch = Scratch(step, out.shape, w.size > 0)
    for a in range(0, x.size, step):
        b = min(x.size, a + step)
        n += hist_block(x[a:b], y[a:b], w[a:b] if w.size else w, ex, ey, *shifts, out, scratch)
    return out, int(n)


def render_histogram(
    locs,
    *,
    like=None,
    pixel_size_nm=None,
    extent_nm=None,
    origin_nm=None,
    shape=None,
    convention: str = "center",
    split_by: str | None = None,
    weights: str | None = None,
    name: str | None = None,
):
    """Render localizations as counts per pixel.

    Parameters
    ----------
    locs
        A Localizations DataFrame (columns ``x``, ``y`` in nm), or a mapping ``name -> DataFrame``
        (one channel each).
    like
        An Image element whose (y, x) pixel grid to render on (for example an EM image, after the
        localizations were mapped into its space with ``scene.map_points``).
    pixel_size_nm
        Pixel size (nm, one value or ``(px, py)``) when there is no ``like``.
    extent_nm
        ``(x_lo, x_hi, y_lo, y_hi)`` nm; pixel 0 starts at ``x_lo`` and the last, partial pixel is
        kept. Default: the extent of the localizations.
    origin_nm, shape
        Alternatively the position of pixel ``(0, 0)`` and ``(ny, nx)``. ``origin_nm`` is the pixel
        *centre* (``convention="center"``, NGFF) or its low corner (``convention="corner"``).
    split_by
        Column whose values make the channels of one table (e.g. ``"channel"``).
    weights
        Optional column summed instead of counting (e.g. ``"photons"``).
    name
        Name of the returned element.

    Returns
    -------
    xarray.DataArray
        Image element, dims ``(y, x)`` or ``(c, y, x)``, modality ``"smlm"``, value unit
        ``"localizations per pixel"``; attrs ``n_localizations`` and ``n_inside`` per channel.
        Every localization inside the grid (far edges included) is counted once.
    """
    from ._common import render_channels, xy

    def one(df, n, grid):
        x, y = xy(df, n)
        w = None if weights is None else df[weights].to_numpy(np.float64)
        return histogram_counts(x, y, grid, weights=w)

    return render_channels(
        locs,
        split_by=split_by,
        grid_kwargs=dict(like=like, pixel_size_nm=pixel_size_nm, extent_nm=extent_nm, origin_nm=origin_nm, shape=shape, convention=convention),
        per_channel=one,
        method="histogram",
        name=name,
    )
