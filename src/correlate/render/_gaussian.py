"""Gaussian rendering: each localization as a normalised 2-D Gaussian of its own precision.

The value of pixel ``(j, i)`` is the integral of the Gaussian over that pixel, computed exactly
as a product of erf differences along x and y (the Gaussian is axis-aligned). A localization well
inside the grid therefore adds 1 to the image sum (up to the truncation at ``n_sigma`` standard
deviations, 5 by default: < 1e-6), one near an edge adds only the part that falls inside.
"""

from __future__ import annotations

import numpy as np

from ._grid import Grid
from ._histogram import _weights, out_array, tile_shape

__all__ = ["gaussian_counts", "render_gaussian"]

#: Most points per pass: each carries 32 bytes (40 with weights) per tile it touches into the pass
#: that fills the tiles. A pass holds max(MIN_BLOCK, pixels / 4) points, so that its entries stay
#: about the size of the image while the image is swept as few times as that allows.
BLOCK = 1 << 22
MIN_BLOCK = 1 << 20


def gaussian_counts(
    x: np.ndarray,
    y: np.ndarray,
    sigma_x: np.ndarray,
    sigma_y: np.ndarray,
    grid: Grid,
    *,
    weights: np.ndarray | None = None,
    n_sigma: float = 5.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of pixel-integrated Gaussians, one per point.

    Parameters
    ----------
    x, y
        (N,) positions in nm.
    sigma_x, sigma_y
        (N,) standard deviations in nm (> 0; tiny values make a near-delta that still lands in
        the right pixel).
    grid
        Pixel grid.
    weights
        Optional (N,) weight per point.
    n_sigma
        Truncation radius in standard deviations.
    out
        Optional (ny, nx) float64 array to add into.

    Returns
    -------
    numpy.ndarray
        (ny, nx) float64 image (expected number of localizations per pixel).

    Notes
    -----
    Runs on numba's threads; bit-identical for any thread count (see :func:`histogram_counts`).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    floor = 1e-6 * min(grid.pixel_size)
    sx = np.ascontiguousarray(np.maximum(np.broadcast_to(sigma_x, x.shape), floor), dtype=np.float64)
    sy = np.ascontiguousarray(np.maximum(np.broadcast_to(sigma_y, y.shape), floor), dtype=np.float64)
    bad = ~(np.isfinite(sx) & np.isfinite(sy))
    if bad.any():
        from ..errors import ElementError

        raise ElementError(
            f"{int(bad.sum())} standard deviation(s) are not finite (first at point {int(np.flatnonzero(bad)[0])})",
            field="sigma",
        )
    out = out_array(grid, out)
    w = _weights(weights, x.size)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        x, y, sx, sy = x[ok], y[ok], sx[ok], sy[ok]
        if w.size:
            w = w[ok]
    if x.size == 0:
        return out
    from ._gauss_kernels import Entries, gauss_block

    ex, ey = grid.edges("x"), grid.edges("y")
    n_sigma = float(n_sigma)
    # footprint of a typical point, in pixels along the finer axis
    sub = slice(None, None, max(1, x.size // 10_000))
    s_typ = min(float(np.median(sx[sub])) / grid.pixel_size[0], float(np.median(sy[sub])) / grid.pixel_size[1])
    shifts = tile_shape(grid.shape, 2.0 * n_sigma * s_typ + 1.0)
    step = max(1, min(BLOCK, max(MIN_BLOCK, out.size // 4)))
    entries = Entries(w.size > 0)
    for a in range(0, x.size, step):
        b = min(x.size, a + step)
        gauss_block(x[a:b], y[a:b], sx[a:b], sy[a:b], w[a:b] if w.size else w, ex, ey, n_sigma, *shifts, out, entries)
    return out


def _sigmas(df, name: str, precision, min_precision_nm: float) -> tuple[np.ndarray, np.ndarray]:
    from ..errors import ElementError

    n = len(df)
    if precision is None:
        if "precision_x" in df.columns and "precision_y" in df.columns:
            sx, sy = df["precision_x"].to_numpy(np.float64), df["precision_y"].to_numpy(np.float64)
        elif "precision" in df.columns:
            sx = sy = df["precision"].to_numpy(np.float64)
        else:
            raise ElementError(
                f"localizations {name!r} have no 'precision' (or precision_x/precision_y) column; "
                "pass precision=<nm> or precision=<column name>",
                field="precision",
            )
    elif isinstance(precision, str):
        if precision not in df.columns:
            raise ElementError(f"localizations {name!r} have no column {precision!r}", field=precision)
        sx = sy = df[precision].to_numpy(np.float64)
    else:
        sx = sy = np.full(n, float(precision))
    bad = ~(np.isfinite(sx) & np.isfinite(sy)) | (sx < 0) | (sy < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ElementError(
            f"localizations {name!r}: {int(bad.sum())} precision value(s) are not finite non-negative nm "
            f"(first at row {i}); filter them or pass precision=<nm>",
            field="precision",
        )
    return np.maximum(sx, min_precision_nm), np.maximum(sy, min_precision_nm)


def render_gaussian(
    locs,
    *,
    like=None,
    pixel_size_nm=None,
    extent_nm=None,
    origin_nm=None,
    shape=None,
    convention: str = "center",
    split_by: str | None = None,
    precision=None,
    min_precision_nm: float = 0.0,
    n_sigma: float = 5.0,
    weights: str | None = None,
    name: str | None = None,
):
    """Render each localization as a 2-D Gaussian of its own localization precision.

    Each pixel holds the exact integral of each Gaussian over the pixel (erf differences), so the
    image sums to the number of localizations well inside the grid (to < 1e-6 relative at
    ``n_sigma=5``); localizations near the edge contribute only their part inside.

    Parameters
    ----------
    locs, like, pixel_size_nm, extent_nm, origin_nm, shape, convention, split_by, weights, name
        As in :func:`render_histogram`.
    precision
        Standard deviation used per localization: ``None`` (columns ``precision_x``/``precision_y``
        or ``precision``, nm), a column name, or one number in nm for all.
    min_precision_nm
        Lower bound on the standard deviation (nm), e.g. to make a smoother picture.
    n_sigma
        Truncation radius of each Gaussian, in standard deviations.

    Returns
    -------
    xarray.DataArray
        Image element as in :func:`render_histogram` (value unit ``"localizations per pixel"``,
        expected count per pixel).
    """
    from ._common import render_channels, xy

    def one(df, n, grid):
        x, y = xy(df, n)
        sx, sy = _sigmas(df, n, precision, min_precision_nm)
        w = None if weights is None else df[weights].to_numpy(np.float64)
        img = gaussian_counts(x, y, sx, sy, grid, weights=w, n_sigma=n_sigma)
        return img, int(grid.contains(x, y).sum())

    return render_channels(
        locs,
        split_by=split_by,
        grid_kwargs=dict(like=like, pixel_size_nm=pixel_size_nm, extent_nm=extent_nm, origin_nm=origin_nm, shape=shape, convention=convention),
        per_channel=one,
        method="gaussian",
        name=name,
        extra_attrs={"n_sigma": float(n_sigma), "min_precision_nm": float(min_precision_nm)},
    )
