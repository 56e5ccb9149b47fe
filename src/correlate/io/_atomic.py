"""Atomic file-system steps for the scene store.

* :func:`write_json_atomic` writes a temporary file in the same folder, fsyncs it and
  ``os.replace``-s it over the target (atomic on POSIX and Windows).
* :func:`_exchange` swaps two paths atomically where Linux offers ``renameat2(RENAME_EXCHANGE)``;
  :func:`_two_step_replace` is the two-rename fallback that puts the old content back if the
  second rename fails.
* :func:`to_jsonable` / :func:`from_jsonable`: JSON with the zarr v3 encoding of non-finite floats.

Transactions (staging, the one commit point, cleanup after a crash) are in
:mod:`correlate._store.writer`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "STAGING_DIR",
    "write_json_atomic",
    "read_json",
    "remove_tree",
    "to_jsonable",
    "from_jsonable",
]

#: Name of the folder (inside the store root) that holds half-written parts.
STAGING_DIR = ".correlate-staging"

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _fsync_dir(path: Path) -> None:
    if sys.platform.startswith("win"):  # pragma: no cover - no directory fsync on Windows
        return
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (numpy scalars/arrays, tuples, paths, datetimes,
    transforms). Non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
    (the zarr v3 convention), which :func:`from_jsonable` turns back into floats."""
    import numpy as np

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, os.PathLike):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "to_ngff") and callable(obj.to_ngff):
        return to_jsonable(obj.to_ngff())
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return to_jsonable(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)


_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def from_jsonable(obj: Any) -> Any:
    """Inverse of the non-finite float encoding of :func:`to_jsonable`."""
    if isinstance(obj, str):
        return _SPECIAL.get(obj, obj)
    if isinstance(obj, dict):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    text = json.dumps(data, indent=2, allow_nan=False)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder tree (ignoring one that is already gone)."""
    shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2). False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    res = fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _two_step_replace(new: Path, target: Path, old: Path) -> None:
    """``target`` -> ``old``, then ``new`` -> ``target``; if the second rename fails, the previous
    content goes back to ``target`` before the error propagates (it must never be left in a place
    that is deleted on cleanup)."""
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
