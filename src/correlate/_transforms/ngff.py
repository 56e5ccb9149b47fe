"""NGFF axis order and NGFF JSON: the one reorder helper and :func:`from_ngff`.

Points and matrices are held in table order (x, y[, z]); NGFF stores axes as (z,) y, x. Each
transform type registers a reader for its NGFF ``type`` with :func:`ngff_reader`;
:func:`from_ngff` dispatches on it (the types register when :mod:`correlate.transforms` is
imported).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import CorrelateError

__all__ = ["from_ngff", "ngff_reader", "ngff_to_xyz", "xyz_to_ngff"]

_READERS: dict[str, Callable[[dict, int | None], Any]] = {}


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


def ngff_reader(*kinds: str) -> Callable:
    """Register ``reader(d, ndim) -> Transform`` for the NGFF transform ``type`` values ``kinds``."""

    def register(reader: Callable[[dict, int | None], Any]) -> Callable[[dict, int | None], Any]:
        for kind in kinds:
            _READERS[kind] = reader
        return reader

    return register


def from_ngff(d: dict, ndim: int | None = None) -> Any:
    """Build a transform from NGFF 0.6 coordinateTransformation JSON.

    Supports identity, translation, scale, affine (inline, M x (N+1) or (N+1) x (N+1)),
    rotation, sequence, and correlate's thin-plate spline. ``ndim`` is needed for identity only.
    """
    kind = d.get("type")
    reader = _READERS.get(kind)
    if reader is None:
        raise CorrelateError(f"unsupported NGFF transform type {kind!r}", field="type")
    return reader(d, ndim)
