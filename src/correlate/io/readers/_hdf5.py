"""HDF5 access for the readers: damaged structure as FormatError, declared sizes checked first.

h5py reports a damaged object header as ``KeyError``, a failed filter as ``OSError`` and a bad
attribute as ``RuntimeError``; :func:`hdf5_file` turns each into a :class:`FormatError` naming the
file. :func:`read_dataset` compares a dataset's declared size with the bytes the file can hold
before anything is allocated (a 20 kB file declaring 2**31 rows would otherwise allocate 16 GB).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CorrelateError, FormatError, short_exception

__all__ = ["hdf5_file", "read_dataset", "MAX_EXPANSION"]

#: Largest ratio of decompressed to stored bytes accepted for a chunked dataset (gzip's limit on
#: constant data is about 1032:1).
MAX_EXPANSION = 2000

_H5_ERRORS = (KeyError, OSError, RuntimeError, ValueError, TypeError, AttributeError, IndexError)


@contextmanager
def hdf5_file(path: Path, kind: str = "HDF5") -> Iterator[Any]:
    """Open ``path`` with h5py for reading; h5py errors inside the block become FormatError."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise FormatError(f"not a readable {kind} file ({short_exception(exc)}); the file may be truncated", path=path) from None
    try:
        yield f
    except CorrelateError:
        raise
    except _H5_ERRORS as exc:
        raise FormatError(f"damaged {kind} structure ({short_exception(exc)})", path=path) from None
    finally:
        try:
            f.close()
        except _H5_ERRORS:
            pass


def read_dataset(ds: Any, path: Path, name: str | None = None) -> np.ndarray:
    """The whole of an h5py dataset, after checking that the file can hold what it declares.

    Raises
    ------
    FormatError
        The declared size exceeds what the file stores (contiguous data past the end of the file,
        or chunked data expanding more than :data:`MAX_EXPANSION` times), or the read fails.
    """
    name = name or ds.name
    shape = ds.shape
    if shape is None:
        return np.asarray(ds[()])
    declared = int(np.prod(shape, dtype=np.float64)) * ds.dtype.itemsize
    size = os.path.getsize(path)
    layout = ds.id.get_create_plist().get_layout()
    import h5py

    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if declared and (offset is None or offset + declared > size):
            raise FormatError(
                f"dataset declares {declared} bytes but the file holds {size}; the file is truncated or damaged",
                path=path, field=name,
            )
    elif layout == h5py.h5d.CHUNKED:
        stored = int(ds.id.get_storage_size())
        if declared > MAX_EXPANSION * max(stored, 1) + (1 << 20):
            raise FormatError(
                f"dataset declares {declared} bytes from {stored} stored; refusing an expansion over {MAX_EXPANSION}x",
                path=path, field=name,
            )
    try:
        return np.asarray(ds[()])
    except _H5_ERRORS as exc:
        raise FormatError(f"cannot read the dataset ({short_exception(exc)}); the file may be damaged", path=path, field=name) from None
