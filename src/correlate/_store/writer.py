"""The store writer: staging, the one commit point, copy-on-write, cleanup after a crash.

Design (one transaction = one user action: an import of several files, a registration with its
landmarks and record, a particle analysis with its labels and table):

1. Take the store lock (:class:`~correlate._store.lock.StoreLock`), clean what dead writers left
   (:func:`recover`), re-read the committed root metadata and work on a private copy of it.
2. Write new data into a private staging folder ``.correlate-staging/<pid>-<token>/`` and move
   each finished folder to a *fresh* path, one no committed metadata refers to and nothing on
   disk occupies (``em`` if free, else ``em.<token>``). Committed folders are never written,
   replaced or removed before the commit (copy-on-write). Before a folder is moved into place,
   its path is recorded in the transaction's journal (``journal.json`` in the staging folder).
3. Commit: replace the root ``zarr.json`` atomically (temporary file, fsync, ``os.replace``).
   That rename is the only commit point: before it every reader and every later open sees the
   previous state, after it the new one, complete.
4. After the commit remove what the new metadata no longer refers to (superseded folders, and
   placed folders left unreferenced), rewrite the NGFF labels indexes of the images whose labels
   changed (they are derived from the root metadata), then remove the staging folder.

Debris is anything a journal of a dead writer lists that the committed metadata does not refer
to, plus staging folders and temporary ``.zarr.json.<pid>-<token>.tmp`` files. Under the lock no
other writer is alive, so :func:`recover` settles every journal it finds: the same step as 4 and
as an abort. Readers never lock: every path the root they read refers to is complete and stays
unchanged until a later commit stops referring to it.

Fault injection: with ``CORRELATE_STORE_FAULT_AT=k`` the process SIGKILLs itself at the k-th
step (1-based) of its store writes; ``CORRELATE_STORE_FAULT_TRACE=<file>`` appends each step
("<n>\\t<label>") to a file. Tests use them to kill a writer at every step in turn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import uuid
import warnings
from pathlib import Path
from typing import Iterable

from ..errors import StoreError
from ..io._atomic import read_json, write_json_atomic
from ..io._store_remote import RemotePath, exists
from .catalogue import (
    LEGACY_HISTORY,
    LEGACY_REGISTRATIONS,
    label_path,
    landmarks_catalogue,
    legacy_history,
    legacy_registrations,
    referenced_paths,
    validate_meta,
)
from .lock import StoreLock
from .paths import EXT, STAGING_DIR, resolve_inside
from .rootdoc import copy_root, group_json, now, read_root, with_ome_scene

__all__ = ["Transaction", "recover", "read_checked_root", "fault_point", "settle"]

_TMP_RE = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")
_FAULT = {"n": 0}


def fault_point(label: str) -> None:
    """A numbered step of a store write (see the module docstring for the two variables)."""
    at = os.environ.get("CORRELATE_STORE_FAULT_AT")
    trace = os.environ.get("CORRELATE_STORE_FAULT_TRACE")
    if not at and not trace:
        return
    _FAULT["n"] += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{_FAULT['n']}\t{label}\n")
    if at and int(at) == _FAULT["n"]:
        os.kill(os.getpid(), signal.SIGKILL)


def read_checked_root(path: Path) -> dict:
    """The root attributes of the store at ``path`` with every name and path checked."""
    root = read_root(path)
    validate_meta(root[EXT], path)
    return root


def _removable(rel: str, refs: set[str]) -> bool:
    r = rel.casefold()
    return not any(x.casefold() == r or x.casefold().startswith(r + "/") for x in refs)


def _rm(p: Path) -> None:
    if isinstance(p, RemotePath):
        p.fs.rm(p.path, recursive=True)
        p.invalidate()
    elif os.path.islink(p) or p.is_file():
        p.unlink()
    elif p.exists():
        shutil.rmtree(p)


def write_labels_index(path: Path, meta: dict, image: str) -> None:
    """Rewrite the NGFF labels index of ``image`` from the metadata (remove it when no labels)."""
    from ..io._store_images import write_labels_index as _write_index

    e = meta["elements"].get(image)
    if e is None or e.get("kind") != "image":
        return
    labels_dir = resolve_inside(path, f"{e['path']}/labels", f"labels of {image!r}")
    paths = [label_path(e, lab) for lab in e.get("labels", [])]
    if isinstance(labels_dir, RemotePath):  # one PUT replaces the index; nothing to rename
        if paths:
            doc = group_json({"ome": {"version": "0.6", "labels": [p.rsplit("/", 1)[-1] for p in paths]}})
            (labels_dir / "zarr.json").write_bytes(json.dumps(doc, indent=2).encode())
        elif labels_dir.exists() and _removable(f"{e['path']}/labels", referenced_paths(meta, path)):
            _rm(labels_dir)
        return
    if not paths:
        if labels_dir.exists() and _removable(f"{e['path']}/labels", referenced_paths(meta, path)):
            shutil.rmtree(labels_dir)
        return
    tmp = labels_dir / f".index-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    _write_index(tmp, [p.rsplit("/", 1)[-1] for p in paths])
    os.replace(tmp / "zarr.json", labels_dir / "zarr.json")
    tmp.rmdir()


def settle(path: Path, journal: dict, meta: dict) -> list[str]:
    """Make the store agree with committed metadata ``meta`` after the writer of ``journal``
    (committed, aborted or killed): remove what it created or superseded that ``meta`` does not
    refer to, rewrite the labels indexes it touched. Returns the removed paths."""
    refs = referenced_paths(meta, path)
    # indexes first: until a label folder is gone, an index naming it stays valid
    for image in journal.get("labels", []):
        write_labels_index(path, meta, image)
        fault_point(f"labels-index {image}")
    removed = []
    for rel in list(journal.get("superseded", [])) + list(journal.get("created", [])):
        if not _removable(rel, refs):
            continue
        p = resolve_inside(path, rel, "a part a writer left")
        if exists(p):
            _rm(p)
            removed.append(rel)
            fault_point(f"removed {rel}")
    return removed


def _sweep_tmp(path: Path, meta: dict) -> list[str]:
    rels = [EXT] + [f"{EXT}/{d}" for d in ("localizations", "tables", "landmarks")] + ["coordinateTransformations"]
    rels += [f"{e['path']}/labels" for e in meta["elements"].values() if e.get("kind") == "image"]
    dirs = [path]
    for rel in rels:
        try:
            dirs.append(resolve_inside(path, rel, "folder"))
        except StoreError:
            continue  # a link out of the store: never looked into (element checks refuse it)
    out = []
    for d in dirs:
        if not d.is_dir() or os.path.islink(d):
            continue
        for f in d.iterdir():
            if _TMP_RE.match(f.name) or (f.name.startswith(".index-") and f.is_dir()):
                _rm(f)
                out.append(str(f.relative_to(path)))
    return out


def recover(path: Path, own: Path | None = None) -> list[str]:
    """Clean what dead writers left in the store at ``path``; the caller holds the lock.

    Every journal found is settled against the committed metadata, then its staging folder is
    removed; stray temporary files are deleted. Returns what was removed (relative paths).
    """
    base = check_staging(path)
    meta = read_checked_root(path)[EXT]
    removed: list[str] = []
    if base.is_dir():
        for entry in sorted(base.iterdir()):
            if (own is not None and entry == own) or entry.name == "holder.json":
                continue
            if entry.is_dir() and not os.path.islink(entry):
                try:
                    journal = read_json(entry / "journal.json")
                except (OSError, ValueError):
                    journal = None
                if isinstance(journal, dict):
                    try:
                        removed += settle(path, journal, meta)
                    except StoreError as exc:
                        raise StoreError(f"the writer's journal {entry / 'journal.json'} names a path outside the "
                                         f"store ({exc}); nothing was removed. Delete {entry} by hand if you trust "
                                         "the rest of the store", path=path, field="journal") from exc
            _rm(entry)
            removed.append(f"{STAGING_DIR}/{entry.name}")
    removed += _sweep_tmp(path, meta)
    return removed


def check_staging(path: Path) -> Path:
    """The staging folder of the store (which may not exist); refused when it is a link."""
    base = path / STAGING_DIR
    if os.path.islink(base):
        raise StoreError(f"{STAGING_DIR} is a symbolic link (-> {os.readlink(base)!r}); a store may not point "
                         "outside itself", path=path, field="path")
    return base


class Transaction:
    """One all-or-nothing change of the store at ``path`` (see the module docstring).

    ``root`` is the pending root attributes; :meth:`place` moves finished folders to fresh
    paths, :meth:`supersede` marks committed paths the change stops using, :meth:`commit`
    replaces the root ``zarr.json``; :meth:`abort` leaves the committed store as it was.
    """

    def __init__(self, path: Path, lock: StoreLock, what: str = "writing") -> None:
        self.path = Path(path)
        self.lock = lock
        self.what = what
        self.root: dict = {}
        self.staging = self.path / STAGING_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.journal: dict = {}
        self._committed_refs: set[str] = set()
        self._open = False

    @property
    def meta(self) -> dict:
        return self.root[EXT]

    def begin(self) -> dict:
        """Lock, recover, read the committed root; returns the pending root to modify."""
        self.lock.acquire()
        try:
            check_staging(self.path)
            self.staging.mkdir(parents=True)
            self.lock.write_holder(self.what)
            recover(self.path, own=self.staging)
            self._start_from_committed()
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.lock.release()
            raise
        self._open = True
        fault_point("begin")
        return self.root

    def _start_from_committed(self) -> None:
        """Read the committed root, start the pending copy and the journal (under the lock)."""
        committed = read_checked_root(self.path)
        self._committed_refs = referenced_paths(committed[EXT], self.path)
        self.root = copy_root(committed)
        self.journal = {"pid": os.getpid(), "host": socket.gethostname(), "since": now(), "what": self.what,
                        "created": [], "superseded": [], "labels": []}
        self._write_journal()
        self._migrate_legacy()

    def _migrate_legacy(self) -> None:
        """Stores written before the root held landmarks, records and history: take them in."""
        meta = self.meta
        if not isinstance(meta.get("landmarks"), dict):
            meta["landmarks"] = landmarks_catalogue(meta, self.path)
        if not isinstance(meta.get("registrations"), list):
            meta["registrations"] = legacy_registrations(self.path)
            self.supersede(LEGACY_REGISTRATIONS)
        if not isinstance(meta.get("history"), dict):
            meta["history"] = legacy_history(self.path)
            self.supersede(LEGACY_HISTORY)

    def _write_journal(self) -> None:
        write_json_atomic(self.staging / "journal.json", self.journal)

    # -- building the change -----------------------------------------------------------------
    def staged(self, name: str) -> Path:
        """A fresh, not yet existing path inside this transaction's staging folder."""
        return self.staging / f"{uuid.uuid4().hex[:8]}-{name}"

    def fresh(self, parent: str, name: str) -> str:
        """A relative path ``<parent>/<name>`` (or ``<parent>/<name>.<token>``) that no committed
        or pending metadata refers to and nothing on disk occupies."""
        taken = {p.casefold() for p in self._committed_refs | referenced_paths(self.meta)}
        taken |= {p.casefold() for p in self.journal["created"]}
        base = f"{parent}/{name}" if parent else name
        cand = base
        while cand.casefold() in taken or exists(self.path / cand):
            cand = f"{base}.{uuid.uuid4().hex[:6]}"
        return cand

    def ensure_group(self, rel: str, attrs: dict | None = None) -> None:
        """Create the structural group ``rel`` (``correlate/tables`` ...) if missing."""
        zj = resolve_inside(self.path, rel, "group") / "zarr.json"
        if not zj.exists():
            write_json_atomic(zj, group_json(attrs))

    def place(self, staged: Path, rel: str) -> Path:
        """Move the finished folder ``staged`` to the fresh path ``rel`` (journaled first)."""
        dst = resolve_inside(self.path, rel, "new part")
        self.journal["created"].append(rel)
        self._write_journal()
        fault_point(f"journal {rel}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, dst)
        fault_point(f"placed {rel}")
        return dst

    def supersede(self, rel: str) -> None:
        """Mark committed path ``rel`` for removal once the commit no longer refers to it."""
        if rel not in self.journal["superseded"]:
            self.journal["superseded"].append(rel)

    def touch_labels(self, image: str) -> None:
        """The labels of ``image`` change: its NGFF labels index is rewritten after the commit."""
        if image not in self.journal["labels"]:
            self.journal["labels"].append(image)
            self._write_journal()

    # -- ending it ----------------------------------------------------------------------------
    def commit_point(self) -> None:
        """Replace the root zarr.json: the change is committed when this returns."""
        self._write_journal()
        fault_point("pre-commit")
        write_json_atomic(self.path / "zarr.json", group_json(with_ome_scene(self.root)))
        fault_point("committed")

    def finish(self) -> None:
        """After :meth:`commit_point`: remove what the new metadata no longer refers to, rewrite
        touched labels indexes, drop the staging folder, release the lock."""
        try:
            settle(self.path, self.journal, self.meta)
            shutil.rmtree(self.staging, ignore_errors=True)
            fault_point("done")
        finally:
            self._close()

    def commit(self) -> dict:
        """:meth:`commit_point` (the change is undone if it fails), then :meth:`finish` (a
        failure there leaves debris for the next writer, with a warning). Returns the new root."""
        try:
            self.commit_point()
        except BaseException:
            self.abort()
            raise
        try:
            self.finish()
        except OSError as exc:
            warnings.warn(f"{self.path}: committed, but cleaning up afterwards failed ({exc}); the next "
                          "writer removes what is left", stacklevel=4)
        return copy_root(self.root)

    def abort(self) -> None:
        """Forget the change: remove what it placed; the committed store stays as it was."""
        if not self._open:
            return
        try:
            meta = read_checked_root(self.path)[EXT]
            settle(self.path, self.journal, meta)
        finally:
            self._close()

    def _close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._open = False
        self.lock.release()


def paths_on_disk(path: Path) -> Iterable[str]:  # pragma: no cover - debugging aid
    for p in sorted(path.rglob("*")):
        yield str(p.relative_to(path))
