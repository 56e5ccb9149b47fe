"""The root ``zarr.json`` of a store: reading it (checked), an empty one, and the ``ome.scene``
part rebuilt from the correlate metadata before every commit."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from ..errors import StoreError
from ..io._atomic import from_jsonable, read_json, to_jsonable
from ..io._store_remote import is_url, read_json_any
from .paths import EXT, WORLD

__all__ = ["SCENE_SCHEMA_VERSION", "now", "software_version", "group_json", "axes", "empty_root",
           "read_root", "with_ome_scene", "copy_root"]

SCENE_SCHEMA_VERSION = 1


def now() -> str:
    """The current UTC time, ISO 8601 to the microsecond (fixed width: strings order as times)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def software_version() -> str:
    from .. import __version__

    return __version__


def group_json(attrs: dict | None = None) -> dict:
    """A zarr v3 group document with ``attrs`` as attributes."""
    return {"zarr_format": 3, "node_type": "group", "attributes": to_jsonable(attrs or {})}


def axes(ndim: int) -> list[dict]:
    return [{"name": a, "type": "space", "unit": "nanometer"} for a in ("z", "y", "x")[-ndim:]]


def copy_root(root: dict) -> dict:
    """A deep, JSON-faithful copy of a root attributes dict."""
    return from_jsonable(to_jsonable(root))


def empty_root() -> dict:
    """The attributes of a new, empty scene."""
    return {
        "ome": {
            "version": "0.6",
            "scene": {"coordinateSystems": [{"name": WORLD, "axes": axes(2)}], "coordinateTransformations": []},
        },
        EXT: {
            "kind": "scene",
            "schema_version": SCENE_SCHEMA_VERSION,
            "software": {"name": "correlate", "version": software_version()},
            "created": now(),
            "world": {"name": WORLD, "unit": "nanometer"},
            "elements": {},
            "transforms": {},
            "nonlinear_transforms": [],
            "landmarks": {},
            "registrations": [],
            "history": {},
        },
    }


def read_root(path: Path) -> dict:
    """The attributes of the root ``zarr.json`` of the store at ``path`` (not yet checked for
    paths; see :func:`correlate._store.catalogue.validate_meta`).

    Raises
    ------
    StoreError
        Missing store, a file, no or invalid zarr.json, not a correlate scene, newer schema.
    """
    if is_url(path):
        return _remote_root(path)
    zj = path / "zarr.json"
    if not path.exists():
        raise StoreError("store does not exist", path=path)
    if not path.is_dir():
        raise StoreError("is a file, not a correlate store (a folder such as sample.ome.zarr)", path=path)
    if os.path.islink(zj):
        raise StoreError(f"the root zarr.json is a symbolic link (-> {os.readlink(zj)!r}); a store may not point "
                         "outside itself", path=path, field="path")
    try:
        doc = read_json(zj)
    except FileNotFoundError as exc:
        raise StoreError("not a correlate store (no zarr.json at its root)", path=path) from exc
    except ValueError as exc:
        raise StoreError(f"root zarr.json is not valid JSON: {exc}", path=zj) from exc
    return _root_attrs(doc, path, zj)


def _remote_root(path) -> dict:
    zj = path / "zarr.json"
    path.invalidate()
    try:
        doc = read_json_any(zj)
    except FileNotFoundError as exc:
        raise StoreError("not a correlate store (no zarr.json at its root) or it does not exist", path=path) from exc
    except ValueError as exc:
        raise StoreError(f"root zarr.json is not valid JSON: {exc}", path=zj) from exc
    except OSError as exc:
        raise StoreError(f"cannot read the store ({type(exc).__name__}: {exc}); check the endpoint and credentials "
                         "(storage_options, or fsspec/AWS configuration)", path=path, field="storage_options") from exc
    return _root_attrs(doc, path, zj)


def _root_attrs(doc, path, zj) -> dict:
    attrs = doc.get("attributes", {}) if isinstance(doc, dict) else {}
    meta = attrs.get(EXT) if isinstance(attrs, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != "scene":
        raise StoreError("not a correlate store (root zarr.json has no 'correlate' key of kind 'scene')",
                         path=path, field="attributes.correlate")
    try:
        version = int(meta.get("schema_version", 0))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"schema_version {meta.get('schema_version')!r} is not an integer", path=zj,
                         field="attributes.correlate.schema_version") from exc
    if version > SCENE_SCHEMA_VERSION:
        raise StoreError(f"store schema version {version} is newer than this correlate understands "
                         f"({SCENE_SCHEMA_VERSION}); update correlate", path=path)
    for key, typ in (("elements", dict), ("transforms", dict)):
        if not isinstance(meta.get(key, {}), typ):
            raise StoreError(f"'correlate.{key}' must be an object", path=zj, field=f"attributes.correlate.{key}")
    meta.setdefault("elements", {})
    meta.setdefault("transforms", {})
    return from_jsonable(attrs)


def with_ome_scene(root: dict) -> dict:
    """Rebuild ``ome.scene`` (world first, then the other systems sorted; linear element -> world
    edges) and ``correlate.nonlinear_transforms`` from the correlate metadata, in place."""
    meta = root[EXT]
    meta["modified"] = now()
    world_nd = max([2] + [int(e.get("ndim", 2)) for e in meta["elements"].values()])
    systems = [{"name": WORLD, "axes": axes(world_nd)}]
    edges = []
    for name in sorted(meta["elements"]):
        e = meta["elements"][name]
        if e["kind"] not in ("image", "localizations"):
            continue
        cs = e["coordinate_system"]
        if "path" not in cs:
            systems.append({"name": cs["name"], "axes": axes(int(e.get("ndim", 2)))})
        tinfo = meta["transforms"].get(name)
        if tinfo is None:
            continue
        edge = dict(tinfo["linear"])
        edge["name"] = f"{name}_to_{WORLD}"
        edge["input"] = dict(cs)
        edge["output"] = {"name": WORLD}
        edges.append(edge)
    systems[1:] = sorted(systems[1:], key=lambda s: s["name"])
    root["ome"] = {"version": "0.6", "scene": {"coordinateSystems": systems, "coordinateTransformations": edges}}
    meta["nonlinear_transforms"] = [
        dict(meta["transforms"][n]["exact"], name=f"{n}_to_{WORLD}",
             input=dict(meta["elements"][n]["coordinate_system"]), output={"name": WORLD})
        for n in sorted(meta["transforms"])
        if meta["transforms"][n].get("exact") is not None
    ]
    return root
