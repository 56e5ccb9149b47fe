"""HDF5 access for the readers: damaged structure as FormatError, declared sizes checked first,
and a preflight in a child process for what the HDF5 C library itself cannot survive.

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

__all__ = ["hdf5_file", "preflight", "read_dataset", "MAX_EXPANSION"]

#: Largest ratio of decompressed to stored bytes accepted for a chunked dataset (gzip's limit on
#: constant data is about 1032:1).
MAX_EXPANSION = 2000

_H5_ERRORS = (KeyError, OSError, RuntimeError, ValueError, TypeError, AttributeError, IndexError)


#: Files up to this size are read whole by the preflight; larger ones: metadata, first and last rows.
PREFLIGHT_FULL_BYTES = 64 << 20
#: Seconds the preflight may take (plus one per 16 MiB it reads) before the file counts as one
#: the HDF5 library hangs on.
PREFLIGHT_TIMEOUT_S = 5.0


#: How deep and how many objects the preflight visits (the readers use the first levels only).
PREFLIGHT_DEPTH = 3
PREFLIGHT_MAX_OBJECTS = 2000


def _walk(path: Path, full: bool) -> None:
    """Read the root's attributes, and down to :data:`PREFLIGHT_DEPTH` levels the attributes of
    groups and the data of datasets (whole, or first and last rows when not ``full``)."""
    import h5py

    with h5py.File(path, "r") as f:
        for k in f.attrs.keys():
            f.attrs[k]
        todo, seen = [(f, 0)], 0
        while todo and seen < PREFLIGHT_MAX_OBJECTS:
            group, depth = todo.pop()
            for name in group.keys():
                seen += 1
                obj = group.get(name)
                if isinstance(obj, h5py.Group):
                    if depth + 1 < PREFLIGHT_DEPTH:
                        for k in obj.attrs.keys():
                            obj.attrs[k]
                        todo.append((obj, depth + 1))
                elif isinstance(obj, h5py.Dataset) and obj.shape:
                    try:
                        check_declared_size(obj, path, obj.name)
                    except FormatError:
                        continue  # the reader refuses it before reading anything
                    if full:
                        obj[()]
                    elif obj.shape[0]:
                        obj[:1]
                        obj[-1:]


def preflight(path: Path, kind: str = "HDF5") -> None:
    """Walk the file's first levels (attributes and data) in a forked child process first.

    A damaged HDF5 file can make the HDF5 C library abort the process or loop for ever in places
    no Python exception or alarm reaches (a corrupt attribute heap, a damaged chunk index); the
    child takes that risk. Python errors in the child are left to the reader, which reports them
    in context. Where ``os.fork`` does not exist the preflight is skipped.

    Raises
    ------
    FormatError
        The child crashed or did not finish in time.
    """
    import time

    if not hasattr(os, "fork"):
        return
    size = os.path.getsize(path)
    full = size <= PREFLIGHT_FULL_BYTES
    timeout = PREFLIGHT_TIMEOUT_S + (size if full else 0) / (16 << 20)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child only reads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            _walk(path, full)
        except BaseException:  # noqa: BLE001 - reported by the reader itself, in context
            code = 1
        os._exit(code)
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise FormatError(f"the HDF5 library did not finish reading this {kind} file in {timeout:.3g} s; "
                              "its structure is damaged", path=path)
        time.sleep(0.002)
    if os.WIFSIGNALED(status) or (os.WIFEXITED(status) and os.WEXITSTATUS(status) > 1):
        raise FormatError(f"the HDF5 library crashed reading this {kind} file (status {status}); "
                          "its structure is damaged", path=path)


@contextmanager
def hdf5_file(path: Path, kind: str = "HDF5") -> Iterator[Any]:
    """Open ``path`` with h5py for reading, after :func:`preflight`; h5py errors inside the block
    become FormatError."""
    import h5py

    preflight(path, kind)
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
    if ds.shape is None:
        return np.asarray(ds[()])
    check_declared_size(ds, path, name)
    try:
        return np.asarray(ds[()])
    except _H5_ERRORS as exc:
        raise FormatError(f"cannot read the dataset ({short_exception(exc)}); the file may be damaged", path=path, field=name) from None


def check_declared_size(ds: Any, path: Path, name: str | None = None) -> None:
    """Raise FormatError when a dataset declares more bytes than the file can back (see
    :func:`read_dataset`)."""
    name = name or ds.name
    shape = ds.shape
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
