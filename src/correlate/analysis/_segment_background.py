"""Image-wide statistics of an EM segmentation that hold in bounded memory, shared by the
whole-image and the tiled paths: the deterministic pixel sample that robust statistics
(polarity, percentiles, noise, Otsu) are taken on, and the smooth background (masked medians in
windows on a fixed grid, interpolated by a cubic spline) whose window values can be gathered
window by window and whose spline can be evaluated on any block. Lengths px.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

STAT_PIXELS = 1 << 22
"""Robust statistics look at no more than about this many pixels (a regular sub-grid): all of an
image up to 2048^2, every s-th pixel along each axis above."""


def stat_stride(shape: tuple[int, int]) -> int:
    """Stride s of the statistics sub-grid (pixels ``[::s, ::s]`` of the whole image)."""
    h, w = int(shape[0]), int(shape[1])
    return max(1, int(np.ceil(np.sqrt(h * w / STAT_PIXELS))))


def grid_part(arr: np.ndarray, y0: int, x0: int, s: int) -> np.ndarray:
    """The pixels of ``arr`` (whose [0, 0] is whole-image pixel (y0, x0)) on the whole-image
    sub-grid of stride s, flattened."""
    return np.asarray(arr[(-y0) % s :: s, (-x0) % s :: s]).ravel()


def robust_sigma(v: np.ndarray) -> float:
    """Noise of a signal whose positive tail holds the particles: from the lower half only."""
    v = np.asarray(v).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    med = np.median(v)
    lo = v[v <= med]
    return float(1.4826 * np.median(med - lo)) if lo.size else 0.0


def smooth_radius(smooth_px: float) -> int:
    """Support (px) of the Gaussian smoothing (scipy's truncate 4)."""
    return int(4.0 * float(smooth_px) + 0.5) if smooth_px > 0 else 0


@dataclass(frozen=True)
class BackgroundGrid:
    """Window centres (px) of the background estimate and the window half width."""

    shape: tuple[int, int]
    block: int
    yc: np.ndarray
    xc: np.ndarray

    @property
    def half(self) -> int:
        return self.block // 2

    def window(self, i: int, j: int) -> tuple[slice, slice]:
        h, w = self.shape
        y, x, half = int(self.yc[i]), int(self.xc[j]), self.half
        return (slice(max(0, y - half), min(h, y + half + 1)), slice(max(0, x - half), min(w, x + half + 1)))


def background_grid(shape: tuple[int, int], block: int) -> BackgroundGrid:
    """Windows of ``block`` px centred on a grid that includes the image borders."""
    h, w = int(shape[0]), int(shape[1])
    block = int(max(8, min(block, max(h, w))))
    ny = max(2, int(np.ceil(h / block)) + 1)
    nx = max(2, int(np.ceil(w / block)) + 1)
    return BackgroundGrid((h, w), block, np.linspace(0, h - 1, ny), np.linspace(0, w - 1, nx))


def window_median(win: np.ndarray) -> float:
    """Median of the unmasked (finite) pixels of one window; NaN when fewer than 20 % are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(win)) if np.isfinite(win).mean() >= 0.2 else float("nan")


class Background:
    """The spline through the window medians (or a constant where no window had enough
    background); ``block(ys, xs)`` evaluates it on a block of whole-image pixel ranges."""

    def __init__(self, grid: BackgroundGrid, vals: np.ndarray, fill: float):
        from scipy import ndimage as ndi
        from scipy.interpolate import RectBivariateSpline

        self.constant: float | None = None
        bad = ~np.isfinite(vals)
        if bad.all():
            self.constant = float(fill)
            return
        if bad.any():
            idx = ndi.distance_transform_edt(bad, return_distances=False, return_indices=True)
            vals = vals[tuple(idx)]
        ny, nx = len(grid.yc), len(grid.xc)
        ky, kx = min(3, ny - 1), min(3, nx - 1)
        self.spline = RectBivariateSpline(grid.yc, grid.xc, vals, kx=ky, ky=kx, s=0)

    def block(self, ys: slice, xs: slice) -> np.ndarray:
        """float32 background on pixels ``[ys, xs]`` of the whole image."""
        if self.constant is not None:
            return np.full((ys.stop - ys.start, xs.stop - xs.start), self.constant, np.float32)
        return self.spline(np.arange(ys.start, ys.stop), np.arange(xs.start, xs.stop)).astype(np.float32)


def gather_background(grid: BackgroundGrid, window: Callable[[slice, slice], np.ndarray], fill: float) -> Background:
    """The background from ``window(ys, xs)`` (the base signal of those pixels, masked pixels
    NaN), one window at a time (a few thousand windows, not pixels)."""
    vals = np.full((len(grid.yc), len(grid.xc)), np.nan)
    for i in range(len(grid.yc)):
        for j in range(len(grid.xc)):
            vals[i, j] = window_median(window(*grid.window(i, j)))
    return Background(grid, vals, fill)


def flattened(base: np.ndarray, bg: np.ndarray, sign: float, contrast: str) -> np.ndarray:
    """Background-flattened signal, particles positive."""
    if contrast == "log":
        return sign * (base - bg)
    return sign * (base - bg) / np.where(bg != 0, np.abs(bg), 1)


def smoothed(sig: np.ndarray, smooth_px: float) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(sig, smooth_px) if smooth_px > 0 else sig


def particle_mask(sm: np.ndarray, noise: float) -> np.ndarray:
    """Pixels left out of the second background estimate (3 px around the signal above 2.5 sigma)."""
    from scipy import ndimage as ndi

    return ndi.binary_dilation(sm > 2.5 * noise, iterations=3)


MASK_HALO = 3
"""Reach (px) of :func:`particle_mask` beyond the smoothed signal."""
