"""The element catalogue: names, kinds and data paths of everything a store's metadata lists.

Every name and path read from ``zarr.json`` is checked here when the root is read
(:func:`validate_meta`): names against the reserved ones, paths for their shape per kind, for
uniqueness (two elements sharing a folder would delete each other's data) and on disk for
symbolic links and escapes out of the store. :func:`referenced_paths` is what the committed
metadata keeps alive; the writer's garbage collection never removes anything in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import ElementError, StoreError
from ..io._atomic import from_jsonable, read_json
from .paths import EXT, check_element_path, check_name, resolve_inside

__all__ = ["KINDS", "validate_meta", "referenced_paths", "label_path", "label_parts", "names",
           "entry", "check_new_name", "field_paths", "landmarks_catalogue", "legacy_registrations",
           "legacy_history", "LEGACY_REGISTRATIONS", "LEGACY_HISTORY"]

KINDS = ("image", "localizations", "table", "labels")
LEGACY_REGISTRATIONS = f"{EXT}/registrations"
LEGACY_HISTORY = f"{EXT}/history"


def field_paths(tinfo: dict | None) -> list[str]:
    """Relative paths of the displacement fields a transform record refers to."""
    out: list[str] = []
    if not tinfo or tinfo.get("exact") is None:
        return out

    def rec(d: Any) -> None:
        if isinstance(d, dict):
            if d.get("type") == "displacements" and "path" in d:
                out.append(d["path"])
            for v in d.values():
                rec(v)
        elif isinstance(d, list):
            for v in d:
                rec(v)

    rec(tinfo["exact"])
    return out


def label_path(e: dict, label: str) -> str:
    """Relative path of label image ``label`` of image entry ``e``."""
    return (e.get("label_paths") or {}).get(label, f"{e['path']}/labels/{label}")


def _landmark_items(meta: dict) -> Iterable[tuple[str, dict]]:
    lm = meta.get("landmarks")
    return lm.items() if isinstance(lm, dict) else ()


def referenced_paths(meta: dict, root: Path | None = None) -> set[str]:
    """Every data path the metadata ``meta`` refers to (elements, labels, fields, landmarks, and
    for stores written before the root held them, the legacy record, history and landmark
    folders; those on disk only when ``root`` is given)."""
    out: set[str] = set()
    if not isinstance(meta.get("registrations"), list):
        out.add(LEGACY_REGISTRATIONS)
    if not isinstance(meta.get("history"), dict):
        out.add(LEGACY_HISTORY)
    if not isinstance(meta.get("landmarks"), dict) and root is not None:
        out.update(v["path"] for v in landmarks_catalogue(meta, root).values())
    for e in meta.get("elements", {}).values():
        out.add(e["path"])
        if e.get("kind") == "image":
            out.update(label_path(e, lab) for lab in e.get("labels", []))
    for t in meta.get("transforms", {}).values():
        out.update(field_paths(t))
    out.update(v["path"] for _, v in _landmark_items(meta))
    return out


def _fail(root: Path, msg: str, rel: Any = None) -> StoreError:
    return StoreError(f"refusing a store whose metadata {msg}", path=root if rel is None else f"{root}/{rel}",
                      field="attributes.correlate")


def validate_meta(meta: dict, root: Path, *, on_disk: bool = True) -> None:
    """Check every name and path of the correlate metadata of the store at ``root``.

    Raises
    ------
    StoreError
        Naming the offending element and path: a reserved or malformed name, a path that is
        absolute, holds ``..``, is not where data of its kind live, is shared by two parts, or
        (``on_disk``) passes through a symbolic link or resolves outside the store.
    """
    seen: dict[str, str] = {}

    def claim(rel: str, what: str) -> None:
        seen.setdefault(rel.casefold(), what)
        if seen[rel.casefold()] != what:
            raise _fail(root, f"gives {what} the path {rel!r}, which {seen[rel.casefold()]} uses too", rel)
        if on_disk:
            resolve_inside(root, rel, what)

    for name, e in meta["elements"].items():
        what = f"element {name!r}"
        check_name(name, path=root)
        if not isinstance(e, dict) or e.get("kind") not in ("image", "localizations", "table"):
            raise _fail(root, f"gives {what} the unknown kind {e.get('kind') if isinstance(e, dict) else e!r}")
        rel = check_element_path(e.get("path"), e["kind"], root, what)
        claim(rel, what)
        cs = e.get("coordinate_system")
        if not isinstance(cs, dict) or not isinstance(cs.get("name"), str):
            raise _fail(root, f"gives {what} no coordinate_system name", rel)
        if "path" in cs and cs["path"] != rel:
            raise _fail(root, f"gives {what} the coordinate-system path {cs['path']!r}, not its own {rel!r}", rel)
        if e["kind"] == "image":
            labels = e.get("labels", [])
            if not isinstance(labels, list) or not isinstance(e.get("label_paths", {}), dict):
                raise _fail(root, f"gives {what} labels that are not a list (or label paths not an object)", rel)
            for lab in labels:
                check_name(lab, "label", path=root)
                lrel = check_element_path(label_path(e, lab), "labels", root, f"labels {name}/labels/{lab}",
                                          image_path=rel)
                claim(lrel, f"labels {name}/labels/{lab}")
    for name, t in meta["transforms"].items():
        if not isinstance(t, dict) or not isinstance(t.get("linear"), dict):
            raise _fail(root, f"has a transform for {name!r} that is not an object with a 'linear' part")
        if name not in meta["elements"]:
            raise _fail(root, f"has a transform for {name!r}, which is not an element")
        for rel in field_paths(t):
            claim(check_element_path(rel, "field", root, f"displacement field of {name!r}"),
                  f"displacement field of {name!r}")
    for key, v in _landmark_items(meta):
        what = f"landmarks {key!r}"
        check_name(key, "landmark set", path=root)
        if not isinstance(v, dict):
            raise _fail(root, f"gives {what} an entry that is not an object")
        claim(check_element_path(v.get("path"), "landmarks", root, what), what)
    for key, what in seen.items():  # a part inside another's folder (labels inside their image are fine)
        segs = key.split("/")
        for i in range(1, len(segs)):
            owner = seen.get("/".join(segs[:i]))
            if owner is not None and not (len(segs) - i == 2 and segs[i] == "labels"):
                raise _fail(root, f"puts {what} at {key!r}, inside the folder of {owner}", key)


def label_parts(meta: dict, name: str) -> tuple[str, str] | None:
    """(image, label) for a name ``"<image>/labels/<label>"`` of a stored label image."""
    parts = name.split("/")
    if len(parts) == 3 and parts[1] == "labels":
        e = meta["elements"].get(parts[0])
        if e is not None and e["kind"] == "image" and parts[2] in e.get("labels", []):
            return parts[0], parts[2]
    return None


def names(meta: dict, kind: str | None = None) -> list[str]:
    """Element names, optionally of one kind (labels are ``"<image>/labels/<label>"``)."""
    if kind is not None and kind not in KINDS:
        raise StoreError(f"unknown element kind {kind!r}; expected one of {KINDS}", field="kind")
    out = []
    for name in sorted(meta["elements"]):
        e = meta["elements"][name]
        if kind is None or e["kind"] == kind:
            out.append(name)
        if e["kind"] == "image" and kind in (None, "labels"):
            out.extend(f"{name}/labels/{lab}" for lab in e.get("labels", []))
    return out


def entry(meta: dict, name: str, root: Path) -> dict:
    """The catalogue entry of element ``name``; ElementError naming what exists otherwise."""
    e = meta["elements"].get(name)
    if e is None:
        raise ElementError(f"no element named {name!r} in the store; it has {names(meta)}", path=root, field="name")
    return e


def check_new_name(meta: dict, name: str, overwrite: bool, root: Path) -> None:
    """A valid name, not taken (unless ``overwrite``), and not differing from another element
    only in case: on case-insensitive file systems (macOS, Windows) both would be one folder."""
    check_name(name)
    if name in meta["elements"] and not overwrite:
        raise StoreError(f"an element named {name!r} already exists; pass overwrite=True to replace it",
                         path=root, field="name")
    twin = [n for n in meta["elements"] if n != name and n.lower() == name.lower()]
    if twin:
        raise StoreError(
            f"element name {name!r} differs from the existing {twin[0]!r} only in case; on "
            "case-insensitive file systems they would share one folder. Choose another name",
            path=root, field="name",
        )


def landmarks_catalogue(meta: dict, root: Path) -> dict:
    """The landmark sets: from the metadata, or (stores written before the catalogue held them)
    from the folders under ``correlate/landmarks/``, each checked to lie inside the store."""
    if isinstance(meta.get("landmarks"), dict):
        return meta["landmarks"]
    from ..io._store_tables import table_group_meta

    out: dict = {}
    base = root / EXT / "landmarks"
    if base.is_dir() and not os.path.islink(base):
        for p in sorted(base.iterdir()):
            rel = f"{EXT}/landmarks/{p.name}"
            try:
                check_element_path(rel, "landmarks", root, "landmarks folder")
            except StoreError:
                continue  # not a landmark set this store wrote (a stray file or temporary)
            resolve_inside(root, rel, "landmarks folder")
            if (p / "zarr.json").exists():
                m = table_group_meta(p)
                out[p.name] = {"path": rel, "source_system": m["source_system"], "target_system": m["target_system"],
                               "ndim": m.get("ndim"), "n_pairs": m.get("n_pairs", m.get("n_rows"))}
    return out


def _legacy_doc(root: Path, rel: str, key: str, default: Any) -> Any:
    p = resolve_inside(root, rel, "legacy document") / "zarr.json"
    if not p.exists():
        return default
    return from_jsonable(read_json(p)["attributes"][EXT][key])


def legacy_registrations(root: Path) -> list:
    """Registration records of a store written before the root metadata held them."""
    return _legacy_doc(root, LEGACY_REGISTRATIONS, "records", [])


def legacy_history(root: Path) -> dict:
    """Processing history of a store written before the root metadata held it."""
    return _legacy_doc(root, LEGACY_HISTORY, "elements", {})
