"""One entry per store operation that differs between local folders and object stores: the
:class:`~correlate.scene.Scene` facade asks here and gets the local or the remote piece."""

from __future__ import annotations

from typing import Any

from ..io._store_remote import RemotePath, as_store_path
from .create import create_store
from .lock import StoreLock
from .writer import Transaction, recover

__all__ = ["store_path", "lock_for", "transaction_for", "recover_store", "create_any"]


def store_path(path: Any, storage_options: dict | None = None):
    """A local :class:`pathlib.Path`, or a :class:`RemotePath` for a URL (``s3://...``)."""
    return as_store_path(path, storage_options)


def lock_for(path, timeout: float | None):
    """The writer lock of the store at ``path`` (a file lock, or a lock object remotely)."""
    if isinstance(path, RemotePath):
        from .remote_writer import RemoteLock

        return RemoteLock(path, timeout)
    return StoreLock(path, timeout)


def transaction_for(path, lock, what: str) -> Transaction:
    """A transaction on the store at ``path``."""
    if isinstance(path, RemotePath):
        from .remote_writer import RemoteTransaction

        return RemoteTransaction(path, lock, what)
    return Transaction(path, lock, what)


def recover_store(path) -> list[str]:
    """Clean what dead writers left (the caller holds the lock)."""
    if isinstance(path, RemotePath):
        from .remote_writer import recover_remote

        return recover_remote(path)
    return recover(path)


def create_any(path, *, overwrite: bool, lock_timeout: float | None) -> None:
    """Write a new, empty store at ``path`` (local or remote)."""
    if isinstance(path, RemotePath):
        from .remote_writer import create_remote

        return create_remote(path, overwrite=overwrite, lock_timeout=lock_timeout)
    return create_store(path, overwrite=overwrite, lock_timeout=lock_timeout)
