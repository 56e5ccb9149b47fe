"""Lazy image data whose read errors name the file.

A reader that returns a dask array defers the actual reads; a damaged block would otherwise raise
a library's own error (tifffile, zarr, liffile...) much later, when the user computes. The wrappers
here turn any such error into a :class:`FormatError` naming the file and the block.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import CorrelateError, FormatError, short_exception

__all__ = ["GuardedArray", "guarded_loader"]


class GuardedArray:
    """Array-like view of ``array`` (shape, dtype, basic indexing) for ``dask.array.from_array``."""

    def __init__(self, array: Any, path: Path) -> None:
        self._array = array
        self._path = Path(path)
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._array[key])
        except CorrelateError:
            raise
        except Exception as exc:
            raise FormatError(f"cannot read image block {key!r}: {short_exception(exc)}; the file may be damaged",
                              path=self._path) from None


def guarded_loader(func: Callable[..., Any], path: Path) -> Callable[..., Any]:
    """``func`` with its errors raised as FormatError naming ``path`` (for ``dask.delayed`` loaders)."""

    @functools.wraps(func)
    def load(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CorrelateError:
            raise
        except Exception as exc:
            raise FormatError(f"cannot read the image data: {short_exception(exc)}; the file may be damaged",
                              path=path) from None

    return load
