"""Vectorised rendering of round objects into local windows of an image."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["splat", "chord", "shell_chord"]


def chord(rho2: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Projected thickness (nm) of a solid sphere of radius ``r`` at squared distance ``rho2``."""
    return 2.0 * np.sqrt(np.clip(r * r - rho2, 0.0, None))


def shell_chord(rho2: np.ndarray, r: np.ndarray, wall: float) -> np.ndarray:
    """Projected thickness of a hollow sphere (outer radius ``r``, wall thickness ``wall``)."""
    ri = np.clip(r - wall, 0.0, None)
    return chord(rho2, r) - chord(rho2, ri)


def splat(
    image: np.ndarray,
    origin: tuple[float, float],
    pixel: float,
    centers: np.ndarray,
    extent: np.ndarray,
    profile: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    params: np.ndarray,
    mode: str = "add",
    max_elements: int = 4_000_000,
) -> np.ndarray:
    """Evaluate ``profile(dx, dy, params)`` in a window around each centre and add it to (or take
    the maximum with) ``image`` in place.

    Parameters
    ----------
    image
        (H, W) float array; pixel (i, j) centre sits at ``origin + pixel * (j, i)`` (x, y).
    origin, pixel
        Position (nm, x, y) of pixel (0, 0) and pixel size (nm).
    centers
        (N, 2) object centres in the image frame (nm, x, y).
    extent
        (N,) radius (nm) beyond which the profile is zero.
    profile
        Vectorised: gets dx, dy (N, w, w) nm and ``params`` (N, k) broadcast as (N, 1, 1, k)... it
        receives ``params[:, None, None]`` per column; returns (N, w, w) values.
    params
        (N, k) per-object parameters.
    mode
        ``"add"`` or ``"max"``.
    """
    h, w = image.shape
    centers = np.asarray(centers, float).reshape(-1, 2)
    extent = np.asarray(extent, float).ravel()
    params = np.asarray(params, float).reshape(len(centers), -1)
    if not len(centers):
        return image
    # pixel index of each centre
    ci = (centers - np.asarray(origin, float)) / pixel  # fractional (col, row)
    half = np.ceil(extent / pixel).astype(int) + 1
    # skip objects wholly outside
    inside = (ci[:, 0] + half >= 0) & (ci[:, 0] - half < w) & (ci[:, 1] + half >= 0) & (ci[:, 1] - half < h)
    idx_all = np.flatnonzero(inside)
    if not len(idx_all):
        return image
    # group by window size (powers of ~1.25) so small objects do not pay for big ones
    order = idx_all[np.argsort(half[idx_all], kind="stable")]
    hsorted = half[order]
    flat = image.reshape(-1)
    start = 0
    while start < len(order):  # one pass per group of similar window sizes
        hw = hsorted[start]
        # take all objects whose half-width is within 25 % of this one, capped by memory
        hmax = int(np.ceil(hw * 1.25)) + 1
        stop = int(np.searchsorted(hsorted, hmax, side="right"))
        win = 2 * hmax + 1
        per = win * win
        nmax = max(1, max_elements // per)
        stop = min(stop, start + nmax)
        sel = order[start:stop]
        start = stop
        c0 = np.round(ci[sel]).astype(int)  # (n, 2) col,row of window centre
        off = np.arange(-hmax, hmax + 1)
        cols = c0[:, 0, None, None] + off[None, None, :]  # (n, 1, win)
        rows = c0[:, 1, None, None] + off[None, :, None]  # (n, win, 1)
        dx = origin[0] + cols * pixel - centers[sel, 0, None, None]
        dy = origin[1] + rows * pixel - centers[sel, 1, None, None]
        dx, dy = np.broadcast_arrays(dx, dy)
        vals = profile(dx, dy, params[sel][:, None, None, :])
        cols_b = np.broadcast_to(cols, vals.shape)
        rows_b = np.broadcast_to(rows, vals.shape)
        ok = (cols_b >= 0) & (cols_b < w) & (rows_b >= 0) & (rows_b < h) & (vals != 0)
        lin = rows_b[ok] * w + cols_b[ok]
        v = vals[ok].astype(image.dtype, copy=False)
        if mode == "add":
            np.add.at(flat, lin, v)
        elif mode == "max":
            np.maximum.at(flat, lin, v)
        else:  # pragma: no cover
            raise ValueError(mode)
    return image
