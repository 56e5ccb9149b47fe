"""Atomic file-system steps for the scene store: write beside, then rename into place.

Nothing here deletes a user's data before its replacement is complete:

* :func:`write_json_atomic` writes a temporary file in the same folder, fsyncs it and
  ``os.replace``-s it over the target (atomic on POSIX and Windows).
* :class:`Staging` hands out private folders under ``<store>/.correlate-staging/<pid>-<token>/``
  (same file system as the store, so a rename never copies); a killed process leaves only its
  staging folder behind, which the next writer removes.
* :func:`swap_into_place` moves a fully written folder to its final path. If the path exists it
  is exchanged atomically (Linux ``renameat2(RENAME_EXCHANGE)``), or, where that is not available,
  with two renames; the old content ends up inside the staging folder and is deleted only after
  the caller has committed the new metadata.
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
    "Staging",
    "swap_into_place",
    "remove_tree",
    "clean_stale_staging",
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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    except OSError:  # pragma: no cover
        return False
    return True


def clean_stale_staging(root: str | os.PathLike) -> list[str]:
    """Remove staging folders left by processes that no longer run; return what was removed."""
    base = Path(root) / STAGING_DIR
    removed = []
    if not base.is_dir():
        return removed
    for entry in base.iterdir():
        pid_txt = entry.name.split("-", 1)[0]
        try:
            pid = int(pid_txt)
        except ValueError:
            pid = -1
        if pid < 0 or not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    try:
        base.rmdir()
    except OSError:
        pass
    return removed


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder tree (ignoring one that is already gone)."""
    shutil.rmtree(path, ignore_errors=True)


class Staging:
    """A private scratch folder inside the store for one write operation.

    Use as a context manager; on exit (success or failure) the folder and anything moved into it
    (old versions of replaced parts) is deleted.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.path = self.root / STAGING_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> "Staging":
        self.path.mkdir(parents=True)
        return self

    def new(self, name: str) -> Path:
        """A fresh (non-existing) path inside the staging folder."""
        p = self.path / f"{uuid.uuid4().hex[:8]}-{name}"
        return p

    def __exit__(self, *exc) -> None:
        remove_tree(self.path)
        try:
            (self.root / STAGING_DIR).rmdir()
        except OSError:
            pass


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


def swap_into_place(new: Path, target: Path, staging: Staging) -> Path | None:
    """Move the finished folder ``new`` to ``target``.

    Returns the path (inside ``staging``) where the previous content of ``target`` now lives, or
    None if ``target`` did not exist. The caller deletes it (by leaving the staging context) after
    committing metadata, or moves it back with :func:`restore` if the commit fails.
    """
    new, target = Path(new), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(new, target)
        _fsync_dir(target.parent)
        return None
    if _exchange(new, target):
        _fsync_dir(target.parent)
        return new  # now holds the old content
    old = staging.new("old-" + target.name)
    _two_step_replace(new, target, old)
    _fsync_dir(target.parent)
    return old


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


def restore(old: Path | None, target: Path, staging: Staging) -> None:
    """Undo :func:`swap_into_place`: put ``old`` back at ``target`` (or remove ``target``)."""
    target = Path(target)
    if old is None:
        if target.exists():
            os.rename(target, staging.new("undo-" + target.name))
        return
    if not _exchange(Path(old), target):
        tmp = staging.new("undo-" + target.name)
        os.rename(target, tmp)
        os.rename(old, target)
