"""The one helper between table order (x, y[, z]) and NGFF axis order ((z,) y, x)."""

from __future__ import annotations

import numpy as np

__all__ = ["ngff_to_xyz", "xyz_to_ngff"]


def xyz_to_ngff(a: np.ndarray, *, points: bool = False) -> np.ndarray:
    """Reorder between table order x, y[, z] and NGFF order (z,) y, x.

    ``a`` is a vector, a square (D, D) linear part, a (D, D+1) augmented matrix, or, with
    ``points=True``, an (N, D) array of points. The reordering is its own inverse, so
    :func:`ngff_to_xyz` is the same function.
    """
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        return a[::-1].copy()
    if points:
        return a[:, ::-1].copy()
    d = a.shape[0]
    if a.shape == (d, d):
        return a[::-1, ::-1].copy()
    if a.shape == (d, d + 1):
        out = np.empty_like(a)
        out[:, :d] = a[::-1, :d][:, ::-1]
        out[:, d] = a[::-1, d]
        return out
    raise ValueError(f"cannot reorder an array of shape {a.shape}; pass points=True for (N, D) points")


ngff_to_xyz = xyz_to_ngff
