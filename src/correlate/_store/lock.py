"""The store-level advisory lock: one writer at a time.

The lock is ``flock(LOCK_EX)`` on the empty file ``<store>/.correlate-lock``. The kernel drops it
when the holding process dies, so a killed writer never leaves a stale lock; what it leaves (its
staging folder) is cleaned by the next writer. While held, ``<store>/.correlate-staging/holder.json``
says who holds it (pid, host, since) so that a writer that times out can name the holder.
Where ``fcntl`` is missing (Windows) ``msvcrt.locking`` on the first byte plays the same role.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import StoreError
from .paths import LOCK_FILE, STAGING_DIR

__all__ = ["StoreLock", "DEFAULT_LOCK_TIMEOUT", "lock_timeout_default"]

#: Seconds a writer waits for the lock (override: ``lock_timeout=`` or CORRELATE_LOCK_TIMEOUT).
DEFAULT_LOCK_TIMEOUT = 120.0


def lock_timeout_default() -> float:
    """The lock timeout in seconds: ``CORRELATE_LOCK_TIMEOUT`` if set, else 120."""
    env = os.environ.get("CORRELATE_LOCK_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError as exc:
            raise StoreError(f"CORRELATE_LOCK_TIMEOUT must be a number of seconds, got {env!r}",
                             field="CORRELATE_LOCK_TIMEOUT") from exc
    return DEFAULT_LOCK_TIMEOUT


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


class StoreLock:
    """Exclusive writer lock of the store at ``root`` (re-entrant within one object).

    Parameters
    ----------
    root
        The store folder.
    timeout
        Seconds to wait for a lock another process holds (0: do not wait); None: the default
        (:func:`lock_timeout_default`).
    """

    def __init__(self, root: str | os.PathLike, timeout: float | None = None) -> None:
        self.root = Path(root)
        self.timeout = lock_timeout_default() if timeout is None else float(timeout)
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict:
        """What the current holder wrote about itself ({} when unknown)."""
        try:
            with open(self.root / STAGING_DIR / "holder.json", encoding="utf-8") as fh:
                doc = json.load(fh)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self, timeout: float | None = None, *, quiet: bool = False) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (default: the object's).

        Returns True when held. With ``quiet=True`` returns False on timeout instead of raising.

        Raises
        ------
        StoreError
            On timeout, naming the holder's pid and host and since when it holds the lock.
        """
        if self._fd is not None:
            self._depth += 1
            return True
        wait = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        delay = 0.005
        fd = self._open()
        while True:
            if _try_lock(fd):
                if self._same_file(fd):
                    break
                os.close(fd)  # the store was replaced while we waited: lock the new one
                fd = self._open()
            if time.monotonic() >= deadline:
                os.close(fd)
                if quiet:
                    return False
                h = self.holder()
                who = (f"pid {h.get('pid')} on host {h.get('host')} since {h.get('since')}"
                       f" ({h.get('what', 'writing')})" if h else "another process (it wrote no holder information yet)")
                raise StoreError(
                    f"the store is locked by {who}; waited {wait:.3g} s. Wait for it to finish, or raise "
                    "the lock timeout (lock_timeout=, CORRELATE_LOCK_TIMEOUT)",
                    path=self.root, field="lock",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._fd = fd
        self._depth = 1
        return True

    def _open(self) -> int:
        try:
            return os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {LOCK_FILE} ({exc}); it must be a plain file inside "
                             "the store", path=self.root, field="lock") from exc

    def _same_file(self, fd: int) -> bool:
        """Whether ``fd`` still is the store's lock file (``Scene.create(overwrite=True)`` swaps
        the whole store, lock file included)."""
        try:
            a, b = os.fstat(fd), os.stat(self.root / LOCK_FILE, follow_symlinks=False)
        except OSError:
            return False
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)

    def write_holder(self, what: str) -> None:
        """Record who holds the lock (called by the holder once the staging folder exists)."""
        import datetime as _dt

        doc = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
               "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        p = self.root / STAGING_DIR / "holder.json"
        tmp = p.with_name(f".holder.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, p)

    def release(self) -> None:
        """Drop one level of the lock; the last one removes the holder note and unlocks."""
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        try:
            (self.root / STAGING_DIR / "holder.json").unlink()
        except OSError:
            pass
        try:
            (self.root / STAGING_DIR).rmdir()
        except OSError:
            pass
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)
