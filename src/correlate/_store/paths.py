"""Names and paths of a store: every path read from metadata stays inside the store.

A store is a folder the user may have received from anyone; its ``zarr.json`` can name any path.
Every relative path taken from metadata goes through :func:`check_rel` (shape: relative, no
``..``, no empty or dot segments, no reserved element names where an element name belongs) and,
before anything is opened, written or removed, through :func:`resolve_inside` (no symbolic link on
the way, the resolved path lies inside the resolved store root).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..io._atomic import STAGING_DIR
from ..io._store_remote import is_url

__all__ = [
    "STAGING_DIR",
    "LOCK_FILE",
    "WORLD",
    "EXT",
    "RESERVED_NAMES",
    "check_name",
    "check_rel",
    "check_element_path",
    "resolve_inside",
]

#: Lock file of the store (empty; locked with ``flock`` by the writer holding it).
LOCK_FILE = ".correlate-lock"
WORLD = "world"
EXT = "correlate"
#: Names an element may not take (NGFF, zarr and correlate use them), compared ignoring case.
RESERVED_NAMES = frozenset(
    {EXT, "coordinateTransformations", WORLD, "labels", "zarr.json", STAGING_DIR, LOCK_FILE}
)
_RESERVED_FOLDED = frozenset(n.casefold() for n in RESERVED_NAMES)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_name(name: Any, what: str = "element", *, path: str | os.PathLike | None = None) -> str:
    """Return ``name`` if it can be an element (or label) name and folder name, else raise.

    Raises
    ------
    StoreError
        Empty, containing ``/``, ``\\`` or ``..``, a reserved name (any case), starting with
        ``.`` or ``__``, or holding characters other than letters, digits, ``_ . -``.
    """
    if not isinstance(name, str) or not name:
        raise StoreError(f"{what} name must be a non-empty string, got {name!r}", path=path, field="name")
    if "/" in name or "\\" in name or ".." in name:
        raise StoreError(
            f"{what} name {name!r} must not contain '/', '\\' or '..' (it becomes a folder name)",
            path=path, field="name",
        )
    if name.casefold() in _RESERVED_FOLDED or name.startswith("__"):
        raise StoreError(
            f"{what} name {name!r} is reserved (reserved: {sorted(RESERVED_NAMES)} in any case, "
            "and names starting with '__')",
            path=path, field="name",
        )
    if not _NAME_RE.match(name):
        raise StoreError(
            f"{what} name {name!r} may hold only letters, digits, '_', '.', '-' and must start with a letter or digit",
            path=path, field="name",
        )
    return name


def check_rel(rel: Any, root: str | os.PathLike, what: str) -> str:
    """Check the shape of a relative path read from metadata (``a/b/c``, every segment a valid
    folder name). Returns it; raises StoreError naming ``rel`` otherwise."""
    if not isinstance(rel, str) or not rel:
        raise StoreError(f"{what}: path {rel!r} is not a non-empty string", path=root, field="path")
    if rel.startswith(("/", "\\")) or os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel):
        raise StoreError(f"{what}: path {rel!r} is absolute; a store refers only to paths inside itself",
                         path=root, field="path")
    for seg in rel.split("/"):
        if seg in ("", ".", "..") or "\\" in seg or not _NAME_RE.match(seg) or ".." in seg:
            raise StoreError(f"{what}: path {rel!r} has the segment {seg!r}; a store refers only to "
                             "plain folder names inside itself", path=root, field="path")
    return rel


#: Where the data of each kind may live: (prefix segments, number of segments after them).
_KIND_PREFIX = {
    "image": (),
    "localizations": (EXT, "localizations"),
    "table": (EXT, "tables"),
    "landmarks": (EXT, "landmarks"),
    "field": ("coordinateTransformations",),
}


def check_element_path(rel: Any, kind: str, root: str | os.PathLike, what: str, *, image_path: str | None = None) -> str:
    """Check that ``rel`` is a path where data of ``kind`` may live: images one top-level folder
    (not a reserved name), localizations ``correlate/localizations/<x>``, tables
    ``correlate/tables/<x>``, landmarks ``correlate/landmarks/<x>``, displacement fields
    ``coordinateTransformations/<x>``, labels ``<image path>/labels/<x>``."""
    rel = check_rel(rel, root, what)
    segs = rel.split("/")
    if kind == "labels":
        prefix: tuple[str, ...] = tuple((image_path or "").split("/")) + ("labels",)
    else:
        prefix = _KIND_PREFIX[kind]
    ok = len(segs) == len(prefix) + 1 and tuple(segs[:-1]) == prefix
    if ok and kind == "image":
        ok = segs[0].casefold() not in _RESERVED_FOLDED and not segs[0].startswith("__")
    if not ok:
        where = "/".join(prefix + ("<name>",))
        raise StoreError(f"{what}: path {rel!r} is not where {kind} data live ({where})", path=root, field="path")
    return rel


def resolve_inside(root: str | os.PathLike, rel: str, what: str) -> Path:
    """The absolute path of ``rel`` inside store ``root``, after checking that no component below
    the root is a symbolic link and that the resolved path lies inside the resolved root.

    Raises
    ------
    StoreError
        Naming ``rel`` when it is absolute, leaves the store or passes through a symlink.
    """
    rel = check_rel(rel, root, what)
    if is_url(root):  # object stores have no links: a checked relative key stays inside
        return root / rel
    base = Path(root)
    cur = base
    for seg in rel.split("/"):
        cur = cur / seg
        if os.path.islink(cur):
            raise StoreError(f"{what}: {rel!r} passes through the symbolic link {seg!r} "
                             f"(-> {os.readlink(cur)!r}); a store may not point outside itself",
                             path=base, field="path")
    real_root = os.path.realpath(base)
    real = os.path.realpath(cur)
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise StoreError(f"{what}: {rel!r} resolves to {real!r}, outside the store", path=base, field="path")
    return cur
