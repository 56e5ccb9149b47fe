"""Stores on fsspec file systems (S3 and friends): a small path object over fsspec.

:class:`RemotePath` offers the part of :class:`pathlib.Path` the store's readers use
(``/``, ``name``, ``parent``, ``exists``, ``is_dir``, ``is_file``, ``open``, ``iterdir``) on any
fsspec file system, so one reader serves local and remote stores. Object stores have no folders,
no rename and no symbolic links: a "folder" exists when a key lies below it. The writer for such
stores is :mod:`correlate._store.remote_writer`; the consistency model is in
``docs/remote-stores.md``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

from ..errors import StoreError

__all__ = ["RemotePath", "is_url", "as_store_path", "zarr_store", "parquet_source", "exists", "read_json_any"]

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(path: Any) -> bool:
    """True for a URL with a protocol other than ``file://`` (``s3://bucket/x.ome.zarr``)."""
    if isinstance(path, RemotePath):
        return True
    return isinstance(path, str) and bool(_URL_RE.match(path)) and not path.startswith("file://")


class RemotePath:
    """A path on an fsspec file system.

    Parameters
    ----------
    fs
        The fsspec file system.
    path
        The path on it without protocol (``bucket/x.ome.zarr``).
    protocol
        The protocol the user wrote (``s3``), used in :func:`str`.
    """

    def __init__(self, fs, path: str, protocol: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/")
        self.protocol = protocol

    @classmethod
    def from_url(cls, url: str, storage_options: dict | None = None) -> "RemotePath":
        """Open ``url`` (``s3://bucket/key``) with fsspec and ``storage_options``."""
        import fsspec

        protocol = url.split("://", 1)[0]
        try:
            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open {protocol}:// stores ({exc}); install the fsspec backend "
                             f"(for s3: pip install 'correlate[s3]')", path=url, field="storage_options") from exc
        return cls(fs, path, protocol)

    def __truediv__(self, other: str) -> "RemotePath":
        return RemotePath(self.fs, f"{self.path}/{str(other).strip('/')}", self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}://{self.path}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and (other.fs, other.path) == (self.fs, self.path)

    def __hash__(self) -> int:
        return hash((self.protocol, self.path))

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "RemotePath":
        return RemotePath(self.fs, self.path.rsplit("/", 1)[0], self.protocol)

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def iterdir(self) -> Iterator["RemotePath"]:
        for p in self.fs.ls(self.path, detail=False, refresh=True):
            yield RemotePath(self.fs, p, self.protocol)

    def open(self, mode: str = "rb", **kwargs):
        return self.fs.open(self.path, mode, **kwargs)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.fs.cat_file(self.path).decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """One PUT of ``data`` (atomic on S3: readers see the old or the new object)."""
        self.fs.pipe_file(self.path, data)

    def invalidate(self) -> None:
        """Forget fsspec's listing cache for this path (another writer may have changed it)."""
        self.fs.invalidate_cache(self.path)


def as_store_path(path: Any, storage_options: dict | None = None):
    """A :class:`pathlib.Path` for a local store, a :class:`RemotePath` for a URL."""
    from pathlib import Path

    if isinstance(path, RemotePath):
        return path
    if is_url(path):
        return RemotePath.from_url(str(path), storage_options)
    if storage_options:
        raise StoreError("storage_options apply only to URLs (s3://...), not to a local path", path=path,
                         field="storage_options")
    s = os.fspath(path)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


def exists(p: Any) -> bool:
    """``os.path.lexists`` for local paths, key-or-prefix existence for remote ones."""
    return p.exists() if isinstance(p, RemotePath) else os.path.lexists(p)


def zarr_store(p: Any, *, read_only: bool = True):
    """What ``zarr.open_array`` / ``da.from_zarr`` take for the array at ``p``."""
    if not isinstance(p, RemotePath):
        return str(p)
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(str(p), storage_options=dict(p.fs.storage_options), read_only=read_only)


def parquet_source(p: Any) -> tuple[str, Any]:
    """(path, filesystem) for ``pyarrow.parquet.read_table``."""
    if not isinstance(p, RemotePath):
        return str(p), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return p.path, PyFileSystem(FSSpecHandler(p.fs))


def read_json_any(p: Any) -> Any:
    """Read a JSON document from a local or remote path."""
    if isinstance(p, RemotePath):
        return json.loads(p.fs.cat_file(p.path))
    with open(p, encoding="utf-8") as fh:
        return json.load(fh)
