"""The Scene: one OME-Zarr 0.6 store holding every element of a sample in one physical space.

Layout (Zarr v3)::

    sample.ome.zarr/
      zarr.json        ome: {version "0.6", scene: {coordinateSystems: [world (first, sorts
                       first), world_<localization set>...], coordinateTransformations: linear
                       element -> world edges}}; correlate: {kind "scene", schema_version,
                       elements, transforms, nonlinear_transforms (NGFF-shaped JSON)}
      <image>/         NGFF 0.6 multiscales in nm, intrinsic system "physical" (labels/ inside)
      coordinateTransformations/<field>/   displacement fields (NGFF displacements multiscale)
      correlate/localizations/<name>/      Parquet + zarr.json {correlate: {kind, columns, units,
                                           coordinate_system, attrs}}
      correlate/tables/<name>/             per-particle tables (Parquet)
      correlate/landmarks/<a>__<b>/        landmark pairs with covariances (Parquet)
      correlate/registrations/             registration records (zarr.json attributes)
      correlate/history/                   processing history per element (zarr.json attributes)

Every modification writes the new part beside (``.correlate-staging/``), renames it into place
and then replaces the root ``zarr.json`` atomically: an exception or a killed process leaves the
previous store readable. Non-linear transforms live in ``correlate.nonlinear_transforms`` (the
``ome.scene`` edge then holds their best linear approximation, flagged ``approximate``).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from . import elements as _el
from .errors import CorrelateError, ElementError, StoreError, UnitError
from .io._atomic import (
    STAGING_DIR,
    _exchange,
    _two_step_replace,
    Staging,
    clean_stale_staging,
    from_jsonable,
    read_json,
    remove_tree,
    restore,
    swap_into_place,
    to_jsonable,
    write_json_atomic,
)
from .transforms import Affine, Identity, Transform, _embed, compose
from .units import normalize_length_unit

__all__ = ["Scene", "open_scene", "SCENE_SCHEMA_VERSION", "WORLD", "RESERVED_NAMES"]

SCENE_SCHEMA_VERSION = 1
WORLD = "world"
#: Names an element may not take (NGFF and correlate use them).
RESERVED_NAMES = frozenset({"correlate", "coordinateTransformations", WORLD, "labels", STAGING_DIR})
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_KINDS = ("image", "localizations", "table", "labels")
_EXT = "correlate"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from . import __version__

    return __version__


def _check_name(name: Any, what: str = "element") -> str:
    if not isinstance(name, str) or not name:
        raise StoreError(f"{what} name must be a non-empty string, got {name!r}", field="name")
    if "/" in name or "\\" in name or ".." in name:
        raise StoreError(
            f"{what} name {name!r} must not contain '/', '\\' or '..' (it becomes a folder name)",
            field="name",
        )
    if name in RESERVED_NAMES or name.startswith("__"):
        raise StoreError(
            f"{what} name {name!r} is reserved (reserved: {sorted(RESERVED_NAMES)} and names starting with '__')",
            field="name",
        )
    if not _NAME_RE.match(name):
        raise StoreError(
            f"{what} name {name!r} may hold only letters, digits, '_', '.', '-' and must start with a letter or digit",
            field="name",
        )
    return name


def _group_json(attrs: dict | None = None) -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": to_jsonable(attrs or {})}


def _axes(ndim: int) -> list[dict]:
    return [{"name": a, "type": "space", "unit": "nanometer"} for a in ("z", "y", "x")[-ndim:]]


def _lift(t: Transform, ndim: int, name: str) -> Transform:
    """A transform of the element's dimensionality (2-D linear ones embed into 3-D)."""
    if not isinstance(t, Transform):
        raise ElementError(
            f"transform must be a correlate Transform, got {type(t).__name__}", path=name, field="transform"
        )
    if t.ndim == ndim:
        return t
    if t.ndim < ndim and t.is_linear:
        return Affine(_embed(t.matrix, ndim))
    raise ElementError(
        f"the transform is {t.ndim}-D but element {name!r} is {ndim}-D", path=name, field="transform"
    )


class Scene:
    """An open correlate store: named elements, coordinate systems and the transform graph.

    Create with :meth:`Scene.create`, open with :meth:`Scene.open`. Every element has its own
    coordinate system and a transform to ``"world"`` (nm).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r", *, _root: dict | None = None) -> None:
        self.path = Path(path)
        if mode not in ("r", "r+"):
            raise StoreError(f"mode must be 'r' or 'r+', got {mode!r}", path=self.path, field="mode")
        self.mode = mode
        self._root = _root if _root is not None else self._read_root()

    # ------------------------------------------------------------------------------------------
    # opening and creating
    # ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, *, overwrite: bool = False) -> "Scene":
        """Create a new, empty store at ``path``.

        Raises
        ------
        StoreError
            If ``path`` exists (unless ``overwrite=True``, which replaces a previous correlate or
            zarr store atomically; any other existing non-empty folder is never replaced).
        """
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise StoreError("already exists; pass overwrite=True to replace it", path=path)
            if path.is_file():
                raise StoreError("is a file, not a store; refusing to replace it", path=path)
            if any(path.iterdir()) and not (path / "zarr.json").exists():
                raise StoreError(
                    "exists and is not a zarr store; refusing to replace a folder that is not a store",
                    path=path,
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.correlate-new-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            root = cls._empty_root()
            write_json_atomic(tmp / "zarr.json", _group_json(root))
            write_json_atomic(tmp / _EXT / "zarr.json", _group_json({_EXT: {"kind": "extension", "schema_version": SCENE_SCHEMA_VERSION}}))
            if path.exists():
                # swap atomically where the OS can (the old store then sits at tmp, removed below)
                if not _exchange(tmp, path):
                    old = path.parent / f".{path.name}.correlate-old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                    _two_step_replace(tmp, path, old)
                    remove_tree(old)
            else:
                os.rename(tmp, path)
        finally:
            remove_tree(tmp)
        return cls(path, "r+")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> "Scene":
        """Open an existing store (``mode`` ``"r"`` or ``"r+"``).

        Raises
        ------
        StoreError
            If ``path`` is missing or not a correlate store.
        """
        scene = cls(path, mode)
        if mode == "r+":
            clean_stale_staging(scene.path)
        return scene

    @staticmethod
    def _empty_root() -> dict:
        return {
            "ome": {
                "version": "0.6",
                "scene": {
                    "coordinateSystems": [{"name": WORLD, "axes": _axes(2)}],
                    "coordinateTransformations": [],
                },
            },
            _EXT: {
                "kind": "scene",
                "schema_version": SCENE_SCHEMA_VERSION,
                "software": {"name": "correlate", "version": _version()},
                "created": _now(),
                "world": {"name": WORLD, "unit": "nanometer"},
                "elements": {},
                "transforms": {},
                "nonlinear_transforms": [],
            },
        }

    def _read_root(self) -> dict:
        zj = self.path / "zarr.json"
        if not self.path.exists():
            raise StoreError("store does not exist", path=self.path)
        if not self.path.is_dir():
            raise StoreError("is a file, not a correlate store (a folder such as sample.ome.zarr)", path=self.path)
        try:
            doc = read_json(zj)
        except FileNotFoundError as exc:
            raise StoreError("not a correlate store (no zarr.json at its root)", path=self.path) from exc
        except ValueError as exc:
            raise StoreError(f"root zarr.json is not valid JSON: {exc}", path=zj) from exc
        attrs = doc.get("attributes", {}) if isinstance(doc, dict) else {}
        meta = attrs.get(_EXT)
        if not isinstance(meta, dict) or meta.get("kind") != "scene":
            raise StoreError(
                "not a correlate store (root zarr.json has no 'correlate' key of kind 'scene')",
                path=self.path,
                field="attributes.correlate",
            )
        if int(meta.get("schema_version", 0)) > SCENE_SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {meta.get('schema_version')} is newer than this correlate "
                f"understands ({SCENE_SCHEMA_VERSION}); update correlate",
                path=self.path,
            )
        return from_jsonable(attrs)

    def reload(self) -> "Scene":
        """Re-read the root metadata from disk (after another process changed the store)."""
        self._root = self._read_root()
        return self

    @property
    def _meta(self) -> dict:
        return self._root[_EXT]

    def _check_writable(self) -> None:
        if self.mode != "r+":
            raise StoreError("store is open read-only; open it with mode='r+' to change it", path=self.path)

    def _commit(self, root: dict) -> None:
        """Rebuild ``ome.scene`` from the correlate metadata and replace the root zarr.json."""
        meta = root[_EXT]
        meta["modified"] = _now()
        world_nd = max([2] + [int(e.get("ndim", 2)) for e in meta["elements"].values()])
        systems = [{"name": WORLD, "axes": _axes(world_nd)}]
        edges = []
        for name in sorted(meta["elements"]):
            e = meta["elements"][name]
            if e["kind"] not in ("image", "localizations"):
                continue
            cs = e["coordinate_system"]
            if "path" not in cs:
                systems.append({"name": cs["name"], "axes": _axes(int(e.get("ndim", 2)))})
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
            dict(meta["transforms"][n]["exact"], name=f"{n}_to_{WORLD}", input=dict(meta["elements"][n]["coordinate_system"]), output={"name": WORLD})
            for n in sorted(meta["transforms"])
            if meta["transforms"][n].get("exact") is not None
        ]
        write_json_atomic(self.path / "zarr.json", _group_json(root))
        self._root = from_jsonable(to_jsonable(root))

    def _fresh_root(self) -> dict:
        """A private copy of the on-disk root metadata to modify and commit."""
        self._root = self._read_root()
        return from_jsonable(to_jsonable(self._root))

    def _ensure_group(self, rel: str, attrs: dict | None = None) -> None:
        zj = self.path / rel / "zarr.json"
        if not zj.exists():
            write_json_atomic(zj, _group_json(attrs))

    # ------------------------------------------------------------------------------------------
    # listing
    # ------------------------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        """Element names, optionally only of one kind (``"image"``, ``"localizations"``,
        ``"table"``, ``"labels"``; labels are named ``"<image>/labels/<label>"``)."""
        if kind is not None and kind not in _KINDS:
            raise StoreError(f"unknown element kind {kind!r}; expected one of {_KINDS}", field="kind")
        out = []
        for name in sorted(self._meta["elements"]):
            e = self._meta["elements"][name]
            if kind is None or e["kind"] == kind:
                out.append(name)
            if e["kind"] == "image" and kind in (None, "labels"):
                out.extend(f"{name}/labels/{lab}" for lab in e.get("labels", []))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._meta["elements"] or self._label_parts(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str):
        return self.get(name)

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __repr__(self) -> str:
        return f"Scene({str(self.path)!r}, mode={self.mode!r}, elements={self.names()})"

    def _label_parts(self, name: str) -> tuple[str, str] | None:
        parts = name.split("/")
        if len(parts) == 3 and parts[1] == "labels":
            e = self._meta["elements"].get(parts[0])
            if e is not None and e["kind"] == "image" and parts[2] in e.get("labels", []):
                return parts[0], parts[2]
        return None

    def _entry(self, name: str) -> dict:
        e = self._meta["elements"].get(name)
        if e is None:
            raise ElementError(
                f"no element named {name!r} in the store; it has {self.names()}", path=self.path, field="name"
            )
        return e

    def kind(self, name: str) -> str:
        """``"image"``, ``"localizations"``, ``"table"`` or ``"labels"``."""
        if self._label_parts(name) is not None:
            return "labels"
        return self._entry(name)["kind"]

    # ------------------------------------------------------------------------------------------
    # adding, reading, removing elements
    # ------------------------------------------------------------------------------------------
    def add(self, name: str, element, transform: Transform | None = None, overwrite: bool = False) -> None:
        """Add an element (Image DataArray, Localizations or Table DataFrame, or Landmarks).

        Parameters
        ----------
        name
            Element name (a folder name: letters, digits, ``_ . -``; not a reserved name).
        element
            The element.
        transform
            Map from the element's own coordinates (nm) to ``"world"``; default identity, and the
            element stays unplaced until registered. A transform given here is the caller's
            declaration that it places the element in world (recorded, error unknown; an
            element derived from another follows its source instead). Tables take no
            transform (their ``coordinate_system`` attr names their frame).
        overwrite
            Replace an element of that name. The old one stays intact until the new one is
            completely written.

        Raises
        ------
        StoreError
            Bad or existing name, read-only store, failed write (the store is left as it was).
        ElementError, UnitError
            Malformed element or transform.
        """
        self._check_writable()
        kind = _el.element_kind(element)
        if kind == "landmarks":  # a Landmarks object or its to_dataframe() form
            if not isinstance(element, _el.Landmarks):
                element = _el.Landmarks.from_dataframe(element)
            return self.add_landmarks(element, overwrite=overwrite)
        self._check_new_name(name, overwrite)
        if kind == "image":
            self._add_image(name, element, transform)
        elif kind == "localizations":
            self._add_localizations(name, element, transform)
        elif kind == "table":
            if transform is not None and not isinstance(transform, Identity):
                raise ElementError(
                    "a table takes no transform; set its 'coordinate_system' attr instead", path=name, field="transform"
                )
            self._add_table(name, element)
        else:  # pragma: no cover
            raise ElementError(f"cannot store an element of kind {kind!r}", path=name)
        if transform is not None and kind in ("image", "localizations"):
            self.declare_aligned(name, note="transform given to Scene.add", _implicit=True)

    def _check_new_name(self, name: str, overwrite: bool) -> None:
        """A valid name, not taken (unless ``overwrite``), and not differing from another element
        only in case: on case-insensitive file systems (macOS, Windows) both would be one folder,
        and writing one would replace the other's data."""
        _check_name(name)
        if name in self._meta["elements"] and not overwrite:
            raise StoreError(
                f"an element named {name!r} already exists; pass overwrite=True to replace it",
                path=self.path,
                field="name",
            )
        twin = [n for n in self._meta["elements"] if n != name and n.lower() == name.lower()]
        if twin:
            raise StoreError(
                f"element name {name!r} differs from the existing {twin[0]!r} only in case; on "
                "case-insensitive file systems they would share one folder. Choose another name",
                path=self.path,
                field="name",
            )

    # -- images -------------------------------------------------------------------------------
    def _validate_image(self, name: str, img):
        _el.validate_image(img, name=name)
        for d in img.dims:
            if d == "c":
                continue
            u = img.coords[d].attrs.get("units")
            if u is not None and normalize_length_unit(str(u), path=name, field=f"coords.{d}.units") != "nm":
                raise UnitError(
                    f"coordinate {d!r} is in {u!r}; image coordinates must be nm (see correlate.units.to_nm)",
                    path=name,
                    field=f"coords.{d}.units",
                )
        vu = img.attrs.get("value_unit")
        if vu:
            try:
                img.attrs["value_unit"] = normalize_length_unit(str(vu))
            except UnitError:
                pass  # not a length (counts, a.u. ...): kept as written

    def _add_image(self, name: str, img, transform: Transform | None) -> None:
        from .io._store_images import write_image_group

        self._validate_image(name, img)
        ndim = sum(d in _el.SPATIAL_DIMS for d in img.dims)
        if ndim not in (2, 3):
            raise ElementError(f"an image needs 2 or 3 spatial dims, got dims {tuple(img.dims)}", path=name, field="dims")
        t = _lift(transform if transform is not None else Identity(ndim), ndim, name)
        entry = {
            "kind": "image",
            "path": name,
            "coordinate_system": {"name": "physical", "path": name},
            "ndim": ndim,
            "labels": [],
            "added": _now(),
        }
        self._write_element(name, entry, lambda p: entry.update(write_image_group(p, img, name)), t)

    # -- localizations ------------------------------------------------------------------------
    def _add_localizations(self, name: str, df: pd.DataFrame, transform: Transform | None) -> None:
        from .io._store_tables import write_table_group

        _el.validate_localizations(df, name=name)
        units = dict(df.attrs.get("units", {}) or {})
        for col in ("x", "y", "z", "precision", "precision_x", "precision_y", "precision_z", "sigma"):
            if col in df.columns and units.get(col):
                if normalize_length_unit(str(units[col]), path=name, field=f"units.{col}") != "nm":
                    raise UnitError(
                        f"column {col!r} is in {units[col]!r}; localizations must be in nm",
                        path=name,
                        field=f"units.{col}",
                    )
        ndim = 3 if "z" in df.columns else 2
        t = _lift(transform if transform is not None else Identity(ndim), ndim, name)
        cs = {"name": f"{WORLD}_{name}"}
        entry = {
            "kind": "localizations",
            "path": f"{_EXT}/localizations/{name}",
            "coordinate_system": cs,
            "ndim": ndim,
            "n_rows": int(len(df)),
            "modality": str(df.attrs.get("modality", "smlm")),
            "source_format": str(df.attrs.get("source_format", "")),
            "added": _now(),
        }
        extra = {"coordinate_system": cs, "ndim": ndim, "element": name}
        self._ensure_group(f"{_EXT}/localizations")
        self._write_element(
            name, entry, lambda p: write_table_group(p, df, kind="localizations", extra_meta=extra), t
        )

    # -- tables -------------------------------------------------------------------------------
    def add_table(self, name: str, df: pd.DataFrame, label_image: str | None = None, overwrite: bool = False) -> None:
        """Store a per-particle table (keyed by ``particle_id``) under ``correlate/tables/<name>/``.

        ``label_image`` is the label image it describes, e.g. ``"em/labels/particles"``.
        """
        self._check_writable()
        self._check_new_name(name, overwrite)
        df = _el.make_table(df, label_image=label_image) if label_image is not None else df
        self._add_table(name, df)

    def _add_table(self, name: str, df: pd.DataFrame) -> None:
        from .io._store_tables import write_table_group

        _el.validate_table(df, name=name)
        label_image = df.attrs.get("label_image")
        cs = df.attrs.get("coordinate_system") or WORLD
        entry = {
            "kind": "table",
            "path": f"{_EXT}/tables/{name}",
            "n_rows": int(len(df)),
            "label_image": label_image,
            "coordinate_system": {"name": str(cs)},
            "ndim": 2,
            "added": _now(),
        }
        extra = {"label_image": label_image, "regions": [{"path": label_image}] if label_image else [], "coordinate_system": {"name": str(cs)}}
        self._ensure_group(f"{_EXT}/tables")
        self._write_element(
            name, entry, lambda p: write_table_group(p, df, kind="table", extra_meta=extra, spatial=False), None
        )

    # -- the one write path -------------------------------------------------------------------
    def _write_element(self, name: str, entry: dict, write, transform: Transform | None) -> None:
        target = self.path / entry["path"]
        with Staging(self.path) as st:
            tmp = st.new(name)
            try:
                write(tmp)
            except CorrelateError:
                raise
            except Exception as exc:
                raise StoreError(
                    f"writing element {name!r} failed ({type(exc).__name__}: {exc}); the store is unchanged",
                    path=self.path,
                ) from exc
            root = self._fresh_root()
            meta = root[_EXT]
            old_entry = meta["elements"].get(name)
            new_fields: list[tuple[Path, Path]] = []
            tinfo = None
            if transform is not None:
                tinfo, fields = self._prepare_transform(name, transform, st)
                new_fields = fields
            old_moved: Path | None = None
            swapped = False  # restore() only after the swap happened: a failed swap left target as it was
            moved_fields: list[Path] = []
            stale_fields: list[str] = []
            try:
                old_moved = swap_into_place(tmp, target, st)
                swapped = True
                for src, dst in new_fields:
                    self._ensure_group("coordinateTransformations")
                    os.rename(src, dst)
                    moved_fields.append(dst)
                if old_entry is not None:
                    stale_fields = self._field_paths(meta["transforms"].get(name))
                    if old_entry["kind"] == "image" and entry["kind"] == "image":
                        entry["labels"] = []  # the old labels went with the old image folder
                meta["elements"][name] = entry
                if tinfo is not None:
                    meta["transforms"][name] = tinfo
                else:
                    meta["transforms"].pop(name, None)
                self._commit(root)
            except BaseException:
                if swapped:
                    restore(old_moved, target, st)
                for p in moved_fields:
                    os.rename(p, st.new("undo-field"))
                raise
            # committed: now drop what the new metadata no longer references
            if old_entry is not None and old_entry["path"] != entry["path"]:
                self._discard(old_entry["path"], st)
            for p in stale_fields:
                self._discard(p, st)

    def _discard(self, rel: str, st: Staging) -> None:
        p = self.path / rel
        if p.exists():
            os.rename(p, st.new("discard"))

    @staticmethod
    def _field_paths(tinfo: dict | None) -> list[str]:
        out: list[str] = []
        if not tinfo or tinfo.get("exact") is None:
            return out

        def rec(d):
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

    def _prepare_transform(self, name: str, t: Transform, st: Staging) -> tuple[dict, list[tuple[Path, Path]]]:
        """Serialise ``t``; write its displacement fields into staging. Returns the transform
        record and the (staged, final) folder pairs of the fields."""
        from .io._store_transforms import linear_approximation, serialize_transform, write_displacement_group

        if not isinstance(t, Transform):
            raise ElementError(f"transform must be a correlate Transform, got {type(t).__name__}", path=name, field="transform")
        if t.is_linear:
            lin = t
            return {"linear": lin.to_ngff(), "approximate": False, "exact": None, "type": type(t).__name__}, []
        counter = iter(range(1_000_000))
        token = uuid.uuid4().hex[:8]

        def field_name():
            return f"{name}_{token}_{next(counter)}"

        exact, fields = serialize_transform(t, field_name)
        pairs = []
        for rel, field in fields.items():
            staged = st.new("field")
            write_displacement_group(staged, field, rel.rsplit("/", 1)[-1])
            pairs.append((staged, self.path / rel))
        approx = linear_approximation(t)
        return {"linear": approx.to_ngff(), "approximate": True, "exact": exact, "type": type(t).__name__}, pairs

    def get(self, name: str, *, level: int = 0, columns: Sequence[str] | None = None, bbox: Sequence[float] | None = None):
        """Read an element.

        Parameters
        ----------
        name
            Element name, or ``"<image>/labels/<label>"`` for a label image.
        level
            Pyramid level of an image (0 = full resolution; -1 = coarsest).
        columns, bbox
            For localizations and tables: only these columns; only rows with
            ``x0 <= x <= x1 and y0 <= y <= y1`` (``bbox=(x0, y0, x1, y1)``, nm: the order of ``--roi``
            and ``--region`` on the command line).

        Returns
        -------
        xarray.DataArray (lazy, dask) for images and labels; pandas.DataFrame (attrs restored)
        for localizations and tables.
        """
        from .io._store_images import read_image_group
        from .io._store_tables import read_table_group

        lab = self._label_parts(name)
        if lab is not None:
            return read_image_group(self.path / lab[0] / "labels" / lab[1], lab[1], level, labels=True)
        e = self._entry(name)
        if e["kind"] == "image":
            return read_image_group(self.path / e["path"], name, level)
        return read_table_group(self.path / e["path"], columns=columns, bbox=bbox)

    def levels(self, name: str) -> list[dict]:
        """The pyramid of an image or label image: per level ``{"level", "path", "shape",
        "pixel_size_nm", "origin_nm"}`` (sizes in nm, per spatial dim), finest first. Use it to
        pick the coarsest level a job can work at, then ``get(name, level=...)``."""
        import json as _json

        lab = self._label_parts(name)
        if lab is not None:
            path = self.path / self._entry(lab[0])["path"] / "labels" / lab[1]
        else:
            e = self._entry(name)
            if e["kind"] != "image":
                raise ElementError(f"{name!r} is {e['kind']}, not an image; it has no pyramid", path=name)
            path = self.path / e["path"]
        from .io._store_images import _scale_translation

        ms = read_json(path / "zarr.json")["attributes"]["ome"]["multiscales"][0]
        axes = [a["name"] for a in ms["coordinateSystems"][0]["axes"]]
        out = []
        for i, ds in enumerate(ms["datasets"]):
            scale, trans = _scale_translation(ds["coordinateTransformations"][0], len(axes))
            shape = _json.loads((path / ds["path"] / "zarr.json").read_text())["shape"]
            out.append(
                {
                    "level": i,
                    "path": ds["path"],
                    "shape": dict(zip(axes, shape)),
                    "pixel_size_nm": {d: scale[k] for k, d in enumerate(axes) if d in _el.SPATIAL_DIMS},
                    "origin_nm": {d: trans[k] for k, d in enumerate(axes) if d in _el.SPATIAL_DIMS},
                }
            )
        return out

    def remove(self, name: str) -> None:
        """Remove an element (and its labels, transform and history)."""
        self._check_writable()
        lab = self._label_parts(name)
        if lab is not None:
            return self._remove_label(*lab)
        root = self._fresh_root()
        meta = root[_EXT]
        if name not in meta["elements"]:
            self._entry(name)
        entry = meta["elements"].pop(name)
        stale = self._field_paths(meta["transforms"].pop(name, None))
        self._commit(root)
        with Staging(self.path) as st:
            self._discard(entry["path"], st)
            for p in stale:
                self._discard(p, st)
        if name in self._history_doc():
            doc = self._history_doc()
            doc.pop(name, None)
            self._write_history_doc(doc)

    # ------------------------------------------------------------------------------------------
    # labels
    # ------------------------------------------------------------------------------------------
    def add_labels(self, image_name: str, label_name: str, labels, overwrite: bool = False) -> None:
        """Store an integer label image (same spatial grid as the image) as an NGFF image-label
        under ``<image>/labels/<label_name>``; read it back with :meth:`get_labels`."""
        from .io._store_images import write_label_group, write_labels_index

        self._check_writable()
        _check_name(label_name, "label")
        e = self._entry(image_name)
        if e["kind"] != "image":
            raise ElementError(f"labels belong to an image; {image_name!r} is {e['kind']}", path=image_name)
        if label_name in e.get("labels", []) and not overwrite:
            raise StoreError(
                f"image {image_name!r} already has labels {label_name!r}; pass overwrite=True to replace them",
                path=self.path,
                field="label_name",
            )
        from .io._store_images import image_group_info

        img_meta = dict(e)
        img_meta["level_factors"] = image_group_info(self.path / e["path"])[_EXT]["level_factors"]
        labels_dir = self.path / e["path"] / "labels"
        target = labels_dir / label_name
        with Staging(self.path) as st:
            tmp = st.new(label_name)
            try:
                write_label_group(tmp, labels, img_meta, label_name, image_name)
            except CorrelateError:
                raise
            except Exception as exc:
                raise StoreError(f"writing labels {label_name!r} failed ({type(exc).__name__}: {exc})", path=self.path) from exc
            root = self._fresh_root()
            entry = root[_EXT]["elements"][image_name]
            names = sorted(set(entry.get("labels", [])) | {label_name})
            old = None
            swapped = False
            index_existed = (labels_dir / "zarr.json").exists()
            old_index = (labels_dir / "zarr.json").read_bytes() if index_existed else None
            try:
                labels_dir.mkdir(exist_ok=True)
                old = swap_into_place(tmp, target, st)
                swapped = True
                write_labels_index(st.path / "labels-index", names)
                os.replace(st.path / "labels-index" / "zarr.json", labels_dir / "zarr.json")
                entry["labels"] = names
                self._commit(root)
            except BaseException:
                if swapped:
                    restore(old, target, st)
                if old_index is not None:
                    keep = st.path / "labels-index-old.json"
                    keep.write_bytes(old_index)
                    os.replace(keep, labels_dir / "zarr.json")
                else:
                    (labels_dir / "zarr.json").unlink(missing_ok=True)
                    try:
                        labels_dir.rmdir()
                    except OSError:
                        pass
                raise

    def get_labels(self, image_name: str, label_name: str, *, level: int = 0):
        """The label image ``<image>/labels/<label>`` as a lazy DataArray (dims (z,) y, x)."""
        return self.get(f"{image_name}/labels/{label_name}", level=level)

    def _remove_label(self, image_name: str, label_name: str) -> None:
        from .io._store_images import write_labels_index

        root = self._fresh_root()
        entry = root[_EXT]["elements"][image_name]
        entry["labels"] = [n for n in entry.get("labels", []) if n != label_name]
        labels_dir = self.path / entry["path"] / "labels"
        with Staging(self.path) as st:
            if entry["labels"]:
                write_labels_index(st.path / "labels-index", entry["labels"])
                os.replace(st.path / "labels-index" / "zarr.json", labels_dir / "zarr.json")
                self._commit(root)
                self._discard(f"{entry['path']}/labels/{label_name}", st)
            else:
                self._commit(root)
                self._discard(f"{entry['path']}/labels", st)

    # ------------------------------------------------------------------------------------------
    # transforms
    # ------------------------------------------------------------------------------------------
    def _load_field(self, rel: str):
        from .io._store_transforms import read_displacement_group

        return read_displacement_group(self.path / rel)

    def world_ndim(self) -> int:
        """Number of axes of the ``world`` coordinate system (2 or 3)."""
        return len(self._root["ome"]["scene"]["coordinateSystems"][0]["axes"])

    def transform_to_world(self, name: str) -> Transform:
        """The transform from element ``name``'s own coordinates (nm) to ``"world"``."""
        from .io._store_transforms import deserialize_transform

        if name == WORLD:
            return Identity(self.world_ndim())
        lab = self._label_parts(name)
        if lab is not None:
            name = lab[0]
        e = self._entry(name)
        if e["kind"] == "table":
            cs = e["coordinate_system"]["name"]
            return Identity(self.world_ndim()) if cs in (WORLD, None) else self.transform_to_world(cs)
        tinfo = self._meta["transforms"].get(name)
        nd = int(e.get("ndim", 2))
        if tinfo is None:
            return Identity(nd)
        if tinfo.get("exact") is not None:
            return deserialize_transform(tinfo["exact"], nd, self._load_field)
        return deserialize_transform(tinfo["linear"], nd, self._load_field)

    def is_transform_approximate(self, name: str) -> bool:
        """True where the ``ome.scene`` edge of ``name`` is a linear stand-in for a non-linear
        transform (viewers then show an approximate overlay)."""
        t = self._meta["transforms"].get(name)
        return bool(t and t.get("approximate"))

    def set_transform(self, name: str, transform: Transform) -> None:
        """Set element ``name``'s transform to world (linear or non-linear)."""
        self._check_writable()
        e = self._entry(name)
        if e["kind"] not in ("image", "localizations"):
            raise ElementError(f"{name!r} is a {e['kind']}; only images and localizations have transforms", path=name)
        t = _lift(transform, int(e.get("ndim", 2)), name)
        with Staging(self.path) as st:
            tinfo, pairs = self._prepare_transform(name, t, st)
            root = self._fresh_root()
            meta = root[_EXT]
            stale = self._field_paths(meta["transforms"].get(name))
            moved = []
            try:
                for src, dst in pairs:
                    self._ensure_group("coordinateTransformations")
                    os.rename(src, dst)
                    moved.append(dst)
                meta["transforms"][name] = tinfo
                self._commit(root)
            except BaseException:
                for p in moved:
                    os.rename(p, st.new("undo-field"))
                raise
            for p in stale:
                self._discard(p, st)

    def transform(self, src: str, dst: str) -> Transform:
        """The transform from ``src``'s coordinates to ``dst``'s (either may be ``"world"``),
        going through world: ``to_world(src)`` then ``to_world(dst).inverse()``."""
        a = self.transform_to_world(src)
        b = self.transform_to_world(dst)
        if src == dst:
            return Identity(a.ndim)
        return compose(a, b.inverse())

    def map_points(self, points, src: str, dst: str = WORLD, *, assume_aligned: bool = False):
        """Map points from ``src`` to ``dst`` coordinates: an (N, D) array (x, y[, z], nm), a
        single point, or a DataFrame with columns x, y[, z] (other columns kept).

        Between two elements (neither ``"world"``) both must be placed in one frame
        (:meth:`require_joinable`) unless ``assume_aligned``; raises UnplacedError otherwise."""
        if src != dst and WORLD not in (src, dst):
            self.require_joinable(src, dst, assume_aligned=assume_aligned, action="map points between")
        return self.transform(src, dst).apply(points)

    # -- placement (see correlate._placement) --------------------------------------------------
    def _declarations_path(self) -> Path:
        return self.path / _EXT / "placements" / "zarr.json"

    def declarations(self) -> list[dict]:
        """Every stored declaration that an element's transform places it (oldest first)."""
        p = self._declarations_path()
        return from_jsonable(read_json(p)["attributes"][_EXT]["records"]) if p.exists() else []

    def declare_aligned(self, name: str, reference: str = WORLD, *, tre_nm: float | None = None, note: str = "",
                        _implicit: bool = False) -> dict:
        """Declare that element ``name``'s stored transform places it in ``reference``'s frame
        (default world), so that joins with it need no registration. ``tre_nm``: the RMS error of
        that placement in nm when known (0 for true transforms); None leaves it unknown (NaN)."""
        from ._placement import declaration_record

        self._check_writable()
        rec = declaration_record(name, self._entry(name), reference=reference, tre_nm=tre_nm, note=note)
        rec.update(id=uuid.uuid4().hex[:12], created=_now(), implicit=bool(_implicit),
                   n_registrations=len(self.registrations()))
        write_json_atomic(self._declarations_path(), _group_json(
            {_EXT: {"kind": "declarations", "schema_version": SCENE_SCHEMA_VERSION, "records": self.declarations() + [rec]}}))
        return rec

    def placement(self, name: str):
        """The :class:`correlate._placement.Placement` of ``name``: placed or not, its anchor, the
        records that place it."""
        from ._placement import placement

        return placement(name, entries=self._meta["elements"], registrations=self.registrations(),
                         declarations=self.declarations(), history=self.history)

    def require_joinable(self, a: str, b: str, assume_aligned: bool = False, *, action: str = "join") -> None:
        """Raise UnplacedError unless elements ``a`` and ``b`` are placed in one frame (same
        anchor) or ``assume_aligned``; the message names the command that would place them."""
        from ._placement import require_joinable

        if assume_aligned:
            return
        require_joinable(self.placement(a), self.placement(b), action=action, store=str(self.path))

    # ------------------------------------------------------------------------------------------
    # landmarks, registrations, history
    # ------------------------------------------------------------------------------------------
    def add_landmarks(self, landmarks: "_el.Landmarks", overwrite: bool = True) -> None:
        """Store landmark pairs under ``correlate/landmarks/<source>__<target>/`` (replacing an
        earlier set for the same pair of systems unless ``overwrite=False``)."""
        from .io._store_tables import write_table_group

        self._check_writable()
        if not isinstance(landmarks, _el.Landmarks):
            raise ElementError(f"expected Landmarks, got {type(landmarks).__name__}", field="landmarks")
        a = _check_name(landmarks.source_system, "landmark source system") if landmarks.source_system != WORLD else WORLD
        b = _check_name(landmarks.target_system, "landmark target system") if landmarks.target_system != WORLD else WORLD
        key = f"{a}__{b}"
        target = self.path / _EXT / "landmarks" / key
        if target.exists() and not overwrite:
            raise StoreError(f"landmarks {a} -> {b} already stored; pass overwrite=True", path=target)
        df = landmarks.to_dataframe()
        self._ensure_group(f"{_EXT}/landmarks")
        with Staging(self.path) as st:
            tmp = st.new(key)
            write_table_group(
                tmp, df, kind="landmarks", spatial=False,
                extra_meta={"source_system": a, "target_system": b, "ndim": landmarks.ndim, "n_pairs": len(landmarks)},
            )
            swap_into_place(tmp, target, st)

    def landmark_pairs(self) -> list[tuple[str, str]]:
        """(source_system, target_system) of every stored landmark set."""
        from .io._store_tables import table_group_meta

        base = self.path / _EXT / "landmarks"
        out = []
        if base.is_dir():
            for p in sorted(base.iterdir()):
                if (p / "zarr.json").exists():
                    m = table_group_meta(p)
                    out.append((m["source_system"], m["target_system"]))
        return out

    def get_landmarks(self, source_system: str, target_system: str) -> "_el.Landmarks":
        """The landmark pairs stored for ``source_system -> target_system``."""
        from .io._store_tables import read_table_group

        p = self.path / _EXT / "landmarks" / f"{source_system}__{target_system}"
        if not (p / "zarr.json").exists():
            raise ElementError(
                f"no landmarks stored for {source_system} -> {target_system}; stored: {self.landmark_pairs()}",
                path=self.path,
            )
        return _el.Landmarks.from_dataframe(read_table_group(p))

    def _records_path(self) -> Path:
        return self.path / _EXT / "registrations" / "zarr.json"

    def add_registration(self, record: dict) -> dict:
        """Append a registration record (model, parameters, FRE, predicted TRE, ...) to
        ``correlate/registrations/``; ``id``, ``created`` and ``software`` are filled in if
        missing. Returns the stored record."""
        self._check_writable()
        if not isinstance(record, dict):
            raise ElementError(f"a registration record is a dict, got {type(record).__name__}", field="record")
        rec = dict(record)
        rec.setdefault("id", uuid.uuid4().hex[:12])
        rec.setdefault("created", _now())
        rec.setdefault("software", {"name": "correlate", "version": _version()})
        records = self.registrations()
        records.append(rec)
        write_json_atomic(
            self._records_path(),
            _group_json({_EXT: {"kind": "registrations", "schema_version": SCENE_SCHEMA_VERSION, "records": records}}),
        )
        return from_jsonable(to_jsonable(rec))

    def registrations(self) -> list[dict]:
        """Every stored registration record, oldest first."""
        p = self._records_path()
        if not p.exists():
            return []
        return from_jsonable(read_json(p)["attributes"][_EXT]["records"])

    def _history_doc(self) -> dict:
        p = self.path / _EXT / "history" / "zarr.json"
        if not p.exists():
            return {}
        return from_jsonable(read_json(p)["attributes"][_EXT]["elements"])

    def _write_history_doc(self, doc: dict) -> None:
        write_json_atomic(
            self.path / _EXT / "history" / "zarr.json",
            _group_json({_EXT: {"kind": "history", "schema_version": SCENE_SCHEMA_VERSION, "elements": doc}}),
        )

    def add_history(self, element_name: str, step: dict) -> None:
        """Record a processing step (``{"step": "drift_correction", "params": {...}, ...}``) for
        an element; ``time`` and ``software`` are filled in if missing."""
        self._check_writable()
        if element_name != WORLD and element_name not in self:
            self._entry(element_name)
        if not isinstance(step, dict):
            raise ElementError(f"a history step is a dict, got {type(step).__name__}", field="step")
        s = dict(step)
        s.setdefault("time", _now())
        s.setdefault("software", f"correlate {_version()}")
        doc = self._history_doc()
        doc.setdefault(element_name, []).append(s)
        self._write_history_doc(doc)

    def history(self, name: str) -> list[dict]:
        """Processing steps recorded for ``name``, oldest first."""
        return list(self._history_doc().get(name, []))

    def validate(self) -> None:
        """Check the store against the NGFF 0.6 models of ``ome-zarr-models``: the scene, every
        image (with its labels) and every displacement field.

        Raises
        ------
        StoreError
            Naming the part that does not validate and why.
        """
        import zarr
        from ome_zarr_models.v06.image import Image
        from ome_zarr_models.v06.scene import Scene as NgffScene

        parts = [("scene", "", NgffScene)]
        parts += [(f"image {n!r}", self._entry(n)["path"], Image) for n in self.names("image")]
        fields = self.path / "coordinateTransformations"
        if fields.is_dir():
            parts += [(f"displacement field {p.name!r}", f"coordinateTransformations/{p.name}", Image)
                      for p in sorted(fields.iterdir()) if (p / "zarr.json").exists()]
        for what, rel, model in parts:
            try:
                model.from_zarr(zarr.open_group(str(self.path / rel) if rel else str(self.path), mode="r"))
            except Exception as exc:  # pydantic ValidationError, missing arrays...
                raise StoreError(f"{what} does not validate as NGFF 0.6: {exc}", path=self.path / rel) from exc

    # ------------------------------------------------------------------------------------------
    # summary
    # ------------------------------------------------------------------------------------------
    def info(self) -> str:
        """A human-readable summary: elements, coordinate systems, transforms, extensions."""
        from .io._store_transforms import short_description

        meta = self._meta
        lines = [f"correlate scene {self.path}  (OME-Zarr 0.6, correlate schema {meta.get('schema_version')})"]
        lines.append("")
        lines.append("elements:")
        if not meta["elements"]:
            lines.append("  (none)")
        for name in sorted(meta["elements"]):
            e = meta["elements"][name]
            k = e["kind"]
            if k == "image":
                dims = e.get("dims", [])
                shape = "x".join(str(n) for n in e.get("shape", []))
                px = e.get("pixel_size_nm", {})
                pxs = ", ".join(f"{d} {v:.4g}" for d, v in px.items())
                extra = f", values in {e['value_unit']}" if e.get("value_unit") else ""
                chn = e.get("channel_names") or []
                ch = f", {len(chn)} channels {chn if len(chn) <= 6 else chn[:3] + ['...'] + chn[-2:]}" if chn else ""
                lines.append(
                    f"  {name:<16} image  {e.get('modality', '?'):<5} {'(' + ','.join(dims) + ')'} {shape} {e.get('dtype', '')}, "
                    f"pixel {pxs} nm, {e.get('n_levels', 1)} level{'s' if e.get('n_levels', 1) != 1 else ''}{ch}{extra}"
                )
                for lab in e.get("labels", []):
                    lines.append(f"  {name + '/labels/' + lab:<16} labels")
            elif k == "localizations":
                lines.append(
                    f"  {name:<16} localizations {e.get('modality', 'smlm')}, {e.get('n_rows', 0)} rows, "
                    f"{e.get('ndim', 2)}-D, system {e['coordinate_system']['name']}"
                    + (f", from {e['source_format']}" if e.get("source_format") else "")
                )
            else:
                lines.append(
                    f"  {name:<16} table, {e.get('n_rows', 0)} rows"
                    + (f", describes {e['label_image']}" if e.get("label_image") else "")
                )
        lines.append("")
        lines.append("coordinate systems:")
        for cs in self._root["ome"]["scene"]["coordinateSystems"]:
            axes = ",".join(a["name"] for a in cs["axes"])
            lines.append(f"  {cs['name']} ({axes}; nm)")
        for name in sorted(meta["elements"]):
            e = meta["elements"][name]
            if "path" in e.get("coordinate_system", {}):
                lines.append(f"  {name}/{e['coordinate_system']['name']} (image)")
        lines.append("")
        lines.append("transforms (element -> world):")
        if not meta["transforms"]:
            lines.append("  (none)")
        for name in sorted(meta["transforms"]):
            t = meta["transforms"][name]
            if t.get("exact") is not None:
                lines.append(f"  {name:<16} non-linear: {short_description(t['exact'])}")
                lines.append(f"  {'':<16} (ome.scene holds an approximation: {short_description(t['linear'])})")
            else:
                lines.append(f"  {name:<16} {short_description(t['linear'])}")
        lines.append("")
        lines.append("correlate/:")
        pairs = self.landmark_pairs()
        lines.append(f"  landmarks: {', '.join(f'{a} -> {b}' for a, b in pairs) if pairs else '(none)'}")
        if pairs:
            from .io._store_tables import table_group_meta

            for a, b in pairs:
                m = table_group_meta(self.path / _EXT / "landmarks" / f"{a}__{b}")
                lines.append(f"    {a} -> {b}: {m.get('n_pairs', m.get('n_rows'))} pairs")
        regs = self.registrations()
        lines.append(f"  registrations: {len(regs)}")
        for r in regs[-5:]:
            # register_scene writes moving/fixed/fre_rms_nm/loo_rms_nm/predicted_tre_field;
            # hand-made records may use source/target/fre_nm/tre_nm
            src, dst = r.get("moving", r.get("source")), r.get("fixed", r.get("target"))
            figures = {
                "model": r.get("model"),
                "FRE": r.get("fre_rms_nm", r.get("fre_nm")),
                "LOO": r.get("loo_rms_nm"),
                "TRE": (r.get("predicted_tre_field") or {}).get("tre_rms_median_nm", r.get("tre_nm")),
            }
            desc = ", ".join(
                f"{k} {v:.3g} nm" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items() if v is not None
            )
            pair = f"{src} -> {dst}: " if src is not None and dst is not None else ""
            lines.append(f"    {r.get('created', '')} {pair}{desc}")
        tables = self.names("table")
        lines.append(f"  tables: {', '.join(tables) if tables else '(none)'}")
        hist = self._history_doc()
        lines.append(f"  history: {sum(len(v) for v in hist.values())} steps")
        for n in sorted(hist):
            steps = [str(s.get("step", s.get("name", "?"))) for s in hist[n]]
            lines.append(f"    {n}: {' -> '.join(steps)}")
        return "\n".join(lines)


def open_scene(path: str | os.PathLike, mode: str = "r") -> Scene:
    """Open an existing correlate store (see :meth:`Scene.open`)."""
    return Scene.open(path, mode)
