"""Creating a new, empty store: built in a temporary sibling folder, then swapped into place."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..errors import StoreError
from ..io._atomic import _exchange, _two_step_replace, remove_tree, write_json_atomic
from .lock import StoreLock
from .paths import EXT, LOCK_FILE
from .rootdoc import SCENE_SCHEMA_VERSION, empty_root, group_json

__all__ = ["create_store"]


def create_store(path: Path, *, overwrite: bool, lock_timeout: float | None) -> None:
    """Write an empty correlate store at ``path``.

    An existing correlate or zarr store is replaced atomically under its lock with
    ``overwrite``; a file or any other non-empty folder is never replaced.

    Raises
    ------
    StoreError
        ``path`` exists (without ``overwrite``), is a file, is a folder that is not a store, or
        another process created it meanwhile.
    """
    lock = None
    if path.exists():
        if not overwrite:
            raise StoreError("already exists; pass overwrite=True to replace it", path=path)
        if path.is_file():
            raise StoreError("is a file, not a store; refusing to replace it", path=path)
        if any(path.iterdir()) and not (path / "zarr.json").exists():
            raise StoreError("exists and is not a zarr store; refusing to replace a folder that is not a store",
                             path=path)
        if (path / "zarr.json").exists():
            lock = StoreLock(path, lock_timeout)
            lock.acquire()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.correlate-new-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write_json_atomic(tmp / "zarr.json", group_json(empty_root()))
        write_json_atomic(tmp / EXT / "zarr.json",
                          group_json({EXT: {"kind": "extension", "schema_version": SCENE_SCHEMA_VERSION}}))
        (tmp / LOCK_FILE).touch()
        if path.exists():
            # swap atomically where the OS can (the old store then sits at tmp, removed below)
            if not _exchange(tmp, path):
                old = path.parent / f".{path.name}.correlate-old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                _two_step_replace(tmp, path, old)
                remove_tree(old)
        else:
            try:
                os.rename(tmp, path)
            except OSError as exc:
                if path.exists():  # another process created it meanwhile
                    raise StoreError("already exists (created by another process meanwhile)", path=path) from exc
                raise
    finally:
        if lock is not None:
            lock.release()
        remove_tree(tmp)
