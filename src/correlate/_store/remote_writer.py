"""Writing stores on object stores (S3 and other fsspec file systems): no rename, no file lock.

The local writer's design carries over with one PUT in place of each rename
(``docs/remote-stores.md`` states what is guaranteed):

1. Lock: the object ``.correlate-lock`` holds ``{token, pid, host, what, since, expires}``. It is
   created with a conditional PUT (``If-None-Match: *``) where the server honours it, so of two
   writers exactly one gets it; elsewhere the lock is advisory (written, then read back). A lock
   whose lease has run out (``CORRELATE_LOCK_LEASE`` seconds, default 600, renewed at every
   journal write) belongs to a dead writer and is taken over; so is one whose holder ran on this
   host under a process id that no longer exists (a killed writer need not wait for its lease).
2. Parts are written into a local staging folder by the same code as local stores, then uploaded
   key by key under a fresh prefix no committed metadata refers to (copy-on-write); the journal
   ``.correlate-staging/<token>/journal.json`` lists each prefix before its upload starts.
3. Commit: one PUT of the root ``zarr.json``. A reader sees the previous root or the new one; the
   previous root refers only to prefixes that no writer changes.
4. After the commit, and in the next writer's recovery after a crash, whatever a journal lists
   that the committed root does not refer to is deleted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
import warnings
from pathlib import Path

from ..errors import StoreError
from ..io._store_remote import RemotePath
from .lock import lock_timeout_default
from .paths import EXT, LOCK_FILE, STAGING_DIR, resolve_inside
from .rootdoc import SCENE_SCHEMA_VERSION, empty_root, group_json, with_ome_scene
from .writer import Transaction, fault_point, read_checked_root, settle

__all__ = ["RemoteLock", "RemoteTransaction", "recover_remote", "create_remote", "DEFAULT_LEASE"]

#: Seconds a remote lock stays valid without renewal (override: CORRELATE_LOCK_LEASE).
DEFAULT_LEASE = 600.0


def _lease() -> float:
    env = os.environ.get("CORRELATE_LOCK_LEASE")
    try:
        return float(env) if env else DEFAULT_LEASE
    except ValueError as exc:
        raise StoreError(f"CORRELATE_LOCK_LEASE must be a number of seconds, got {env!r}",
                         field="CORRELATE_LOCK_LEASE") from exc


def _holder_is_dead(h: dict) -> bool:
    """Whether a lock holder ran on this host as a process that no longer exists."""
    if h.get("host") != socket.gethostname():
        return False
    try:
        pid = int(h.get("pid", 0))
    except (TypeError, ValueError):
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):  # alive (another user's) or not ours to judge
        return False
    return False


def _put_json(p: RemotePath, doc: dict) -> None:
    p.write_bytes(json.dumps(doc, indent=2, allow_nan=False).encode())


class RemoteLock:
    """Writer lock of a store on an object store (see the module docstring).

    ``conditional`` tells, after the first acquisition, whether the server honoured the
    conditional PUT (True) or the lock was only advisory (False).
    """

    def __init__(self, root: RemotePath, timeout: float | None = None) -> None:
        self.root = root
        self.obj = root / LOCK_FILE
        self.timeout = lock_timeout_default() if timeout is None else float(timeout)
        self.token: str | None = None
        self.conditional: bool | None = None
        self._depth = 0
        self._what = "writing"

    @property
    def held(self) -> bool:
        return self.token is not None

    def holder(self) -> dict:
        """The lock object's content ({} when there is none or it is unreadable)."""
        try:
            doc = json.loads(self.obj.fs.cat_file(self.obj.path))
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _doc(self, token: str) -> bytes:
        t = time.time()
        return json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname(), "what": self._what,
                           "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "expires": t + _lease()}).encode()

    def _try_create(self, token: str) -> bool:
        fs = self.obj.fs
        if self.conditional is not False:
            try:
                fs.pipe_file(self.obj.path, self._doc(token), mode="create")
                self.conditional = True
            except FileExistsError:
                return False
            except (TypeError, NotImplementedError, ValueError) as exc:  # the backend has no exclusive create
                self.conditional = False
                warnings.warn(f"{self.root}: {type(fs).__name__} cannot create objects conditionally ({exc}); "
                              "the store lock is advisory (see docs/remote-stores.md)", stacklevel=3)
        if not self.conditional:
            if self.obj.exists():
                return False
            fs.pipe_file(self.obj.path, self._doc(token))
        # read back: a server that ignores If-None-Match overwrote silently
        return self.holder().get("token") == token

    def acquire(self, timeout: float | None = None, *, quiet: bool = False) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; False on timeout with ``quiet``.

        Raises
        ------
        StoreError
            On timeout, naming the holder (pid, host, since, lease end).
        """
        if self.token is not None:
            self._depth += 1
            return True
        wait = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        delay = 0.02
        while True:
            token = uuid.uuid4().hex
            if self._try_create(token):
                self.token, self._depth = token, 1
                return True
            h = self.holder()
            if h and (float(h.get("expires", 0)) < time.time() or _holder_is_dead(h)):
                if self.holder().get("token") == h.get("token"):  # not taken over meanwhile
                    self.obj.fs.rm(self.obj.path)  # a dead writer: its lease ran out, or its process is gone
                continue
            if time.monotonic() >= deadline:
                if quiet:
                    return False
                who = (f"pid {h.get('pid')} on host {h.get('host')} since {h.get('since')} ({h.get('what')}), "
                       f"lease until {_dt.datetime.fromtimestamp(float(h.get('expires', 0)), _dt.timezone.utc):%H:%M:%S} UTC"
                       if h else "another writer")
                raise StoreError(f"the store is locked by {who}; waited {wait:.3g} s. Wait for it to finish, raise "
                                 "the lock timeout (lock_timeout=, CORRELATE_LOCK_TIMEOUT), or delete "
                                 f"{self.obj} if that writer is known to be dead", path=self.root, field="lock")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def write_holder(self, what: str) -> None:
        """Renew the lease and record what the holder does (raises if the lock was lost)."""
        self._what = what
        if self.token is None:
            return
        if self.holder().get("token") != self.token:
            raise StoreError("lost the store lock (its lease ran out and another writer took it); nothing was "
                             "committed. Raise CORRELATE_LOCK_LEASE for long writes", path=self.root, field="lock")
        self.obj.fs.pipe_file(self.obj.path, self._doc(self.token))

    def release(self) -> None:
        """Drop one level; the last one deletes the lock object if it is still ours."""
        if self.token is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        token, self.token = self.token, None
        if self.holder().get("token") == token:
            self.obj.fs.rm(self.obj.path)


class RemoteTransaction(Transaction):
    """:class:`~correlate._store.writer.Transaction` for an object store: parts are written to a
    local temporary folder and uploaded to fresh prefixes; the root ``zarr.json`` PUT commits."""

    def __init__(self, path: RemotePath, lock: RemoteLock, what: str = "writing") -> None:
        super().__init__(Path("."), lock, what)
        self.path = path
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.remote_staging = path / STAGING_DIR / self.token
        self.staging = None  # local, made in begin()

    def begin(self) -> dict:
        self.lock.acquire()
        try:
            self.lock.write_holder(self.what)
            self.staging = Path(tempfile.mkdtemp(prefix="correlate-upload-"))
            recover_remote(self.path, own=self.token)
            self._start_from_committed()
        except BaseException:
            self._drop_local()
            self.lock.release()
            raise
        self._open = True
        fault_point("begin")
        return self.root

    def _write_journal(self) -> None:
        self.lock.write_holder(self.what)
        _put_json(self.remote_staging / "journal.json", self.journal)

    def ensure_group(self, rel: str, attrs: dict | None = None) -> None:
        zj = resolve_inside(self.path, rel, "group") / "zarr.json"
        if not zj.exists():
            _put_json(zj, group_json(attrs))

    def place(self, staged: Path, rel: str) -> RemotePath:
        """Upload the finished local folder ``staged`` to the fresh prefix ``rel`` (journaled
        first): the data objects, then the zarr.json documents that describe them."""
        dst = resolve_inside(self.path, rel, "new part")
        self.journal["created"].append(rel)
        self._write_journal()
        fault_point(f"journal {rel}")
        files = [p for p in Path(staged).rglob("*") if p.is_file()]
        for batch in ([f for f in files if f.name != "zarr.json"], [f for f in files if f.name == "zarr.json"]):
            if batch:  # one call: fsspec uploads concurrently where the file system is async
                dst.fs.put([str(f) for f in batch], [f"{dst.path}/{f.relative_to(staged).as_posix()}" for f in batch])
            fault_point(f"uploading {rel}")
        dst.invalidate()
        shutil.rmtree(staged, ignore_errors=True)
        fault_point(f"placed {rel}")
        return dst

    def commit_point(self) -> None:
        self._write_journal()
        fault_point("pre-commit")
        _put_json(self.path / "zarr.json", group_json(with_ome_scene(self.root)))
        fault_point("committed")

    def finish(self) -> None:
        try:
            settle(self.path, self.journal, self.meta)
            self._drop_remote_staging()
            fault_point("done")
        finally:
            self._close()

    def _drop_remote_staging(self) -> None:
        if self.remote_staging.exists():
            self.path.fs.rm(self.remote_staging.path, recursive=True)

    def _drop_local(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _close(self) -> None:
        self._drop_local()
        try:
            self._drop_remote_staging()
        finally:
            self._open = False
            self.lock.release()


def recover_remote(path: RemotePath, own: str | None = None) -> list[str]:
    """Settle the journals of dead writers against the committed root; the caller holds the lock."""
    base = path / STAGING_DIR
    base.invalidate()
    if not base.exists():
        return []
    meta = read_checked_root(path)[EXT]
    removed: list[str] = []
    for entry in sorted(base.iterdir(), key=str):
        if entry.name == own:
            continue
        try:
            journal = json.loads(entry.fs.cat_file((entry / "journal.json").path))
        except (OSError, ValueError):
            journal = None
        if isinstance(journal, dict):
            removed += settle(path, journal, meta)
        entry.fs.rm(entry.path, recursive=True)
        removed.append(f"{STAGING_DIR}/{entry.name}")
    base.invalidate()
    return removed


def create_remote(path: RemotePath, *, overwrite: bool, lock_timeout: float | None) -> None:
    """Write an empty store at ``path`` on an object store; ``overwrite`` replaces a previous
    zarr store (the new root's PUT is the switch; the old keys are deleted after it).

    Raises
    ------
    StoreError
        ``path`` holds a store (without ``overwrite``) or objects that are not a zarr store.
    """
    try:
        _create_remote(path, overwrite=overwrite, lock_timeout=lock_timeout)
    except OSError as exc:
        raise StoreError(f"cannot write the store ({type(exc).__name__}: {exc}); check that the bucket exists and "
                         "the endpoint and credentials (storage_options, or fsspec/AWS configuration)",
                         path=path, field="storage_options") from exc


def _create_remote(path: RemotePath, *, overwrite: bool, lock_timeout: float | None) -> None:
    path.invalidate()
    has_root = (path / "zarr.json").exists()
    if has_root and not overwrite:
        raise StoreError("already exists; pass overwrite=True to replace it", path=path)
    if not has_root and path.exists():
        raise StoreError("holds objects but is not a zarr store; refusing to replace it", path=path)
    lock = RemoteLock(path, lock_timeout)
    lock.acquire()
    try:
        ext = group_json({EXT: {"kind": "extension", "schema_version": SCENE_SCHEMA_VERSION}})
        _put_json(path / EXT / "zarr.json", ext)
        _put_json(path / "zarr.json", group_json(empty_root()))
        if has_root:
            keep = {f"{path.path}/zarr.json", f"{path.path}/{EXT}/zarr.json", lock.obj.path}
            old = [k for k in path.fs.find(path.path) if k.rstrip("/") not in keep]
            if old:
                path.fs.rm(old)
            path.invalidate()
    finally:
        lock.release()
