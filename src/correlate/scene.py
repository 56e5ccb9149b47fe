"""The Scene: one OME-Zarr 0.6 store holding every element of a sample in one physical space.

Layout (Zarr v3)::

    sample.ome.zarr/
      zarr.json        ome: {version "0.6", scene: {coordinateSystems: [world (first, sorts
                       first), world_<localization set>...], coordinateTransformations: linear
                       element -> world edges}}; correlate: {kind "scene", schema_version,
                       elements (name -> kind, path, ...), transforms, nonlinear_transforms
                       (NGFF-shaped JSON), landmarks (catalogue), registrations (records),
                       history (processing steps per element)}
      <image>/         NGFF 0.6 multiscales in nm, intrinsic system "physical" (labels/ inside)
      coordinateTransformations/<field>/   displacement fields (NGFF displacements multiscale)
      correlate/localizations/<name>/      Parquet + zarr.json {correlate: {kind, columns, units,
                                           coordinate_system, attrs}}
      correlate/tables/<name>/             per-particle tables (Parquet)
      correlate/landmarks/<a>__<b>/        landmark pairs with covariances (Parquet)
      .correlate-lock                      the writers' lock file

Every path in the metadata is checked to lie inside the store before it is used. Writes are
transactions (:meth:`Scene.transaction`): new data go to fresh folders, the atomic replacement
of the root ``zarr.json`` is the one commit point, and superseded folders are removed after it
(see :mod:`correlate._store.writer`). A replaced element may therefore live at ``<name>.<token>``;
its path is in the metadata. Non-linear transforms live in ``correlate.nonlinear_transforms``
(the ``ome.scene`` edge then holds their best linear approximation, flagged ``approximate``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import pandas as pd

from . import elements as _el
from ._store import catalogue as _cat
from ._store import graph as _graph
from ._store import parts as _parts
from ._store import records as _records
from ._store.backends import create_any, lock_for, recover_store, store_path, transaction_for
from ._store.paths import EXT as _EXT
from ._store.paths import RESERVED_NAMES, WORLD, check_name, resolve_inside
from ._store.rootdoc import SCENE_SCHEMA_VERSION, copy_root
from ._store.writer import Transaction, read_checked_root
from .errors import ElementError, StoreError
from .io._store_remote import exists
from .transforms import Identity, Transform

__all__ = ["Scene", "open_scene", "SCENE_SCHEMA_VERSION", "WORLD", "RESERVED_NAMES"]


class Scene:
    """An open correlate store: named elements, coordinate systems and the transform graph.

    Create with :meth:`Scene.create`, open with :meth:`Scene.open`. Every element has its own
    coordinate system and a transform to ``"world"`` (nm). Writers (``mode="r+"``) take the store
    lock for each change, waiting up to ``lock_timeout`` seconds (default 120, or
    ``CORRELATE_LOCK_TIMEOUT``). ``path`` may be a URL (``s3://bucket/x.ome.zarr``) opened with
    fsspec and ``storage_options`` (see docs/remote-stores.md).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r", *, _root: dict | None = None,
                 lock_timeout: float | None = None, storage_options: dict | None = None) -> None:
        self.path = store_path(path, storage_options)
        if mode not in ("r", "r+"):
            raise StoreError(f"mode must be 'r' or 'r+', got {mode!r}", path=self.path, field="mode")
        self.mode = mode
        self._txn: Transaction | None = None
        self._lock = lock_for(self.path, lock_timeout) if mode == "r+" else None
        self._root = _root if _root is not None else self._read_root()

    # -- opening and creating ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, *, overwrite: bool = False, lock_timeout: float | None = None,
               storage_options: dict | None = None) -> "Scene":
        """Create a new, empty store at ``path``.

        Raises
        ------
        StoreError
            If ``path`` exists (unless ``overwrite=True``, which replaces a previous correlate or
            zarr store atomically, under its lock; any other existing non-empty folder is never
            replaced).
        """
        path = store_path(path, storage_options)
        create_any(path, overwrite=overwrite, lock_timeout=lock_timeout)
        return cls(path, "r+", lock_timeout=lock_timeout)

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *, lock_timeout: float | None = None,
             storage_options: dict | None = None) -> "Scene":
        """Open an existing store (``mode`` ``"r"`` or ``"r+"``).

        Opening for writing cleans what a killed writer left (when no other writer holds the
        lock; otherwise the next change does it).

        Raises
        ------
        StoreError
            If ``path`` is missing, not a correlate store, or its metadata names a path outside
            it, a symbolic link or a reserved name.
        """
        scene = cls(path, mode, lock_timeout=lock_timeout, storage_options=storage_options)
        if mode == "r+" and scene._lock.acquire(0, quiet=True):
            try:
                recover_store(scene.path)
            finally:
                scene._lock.release()
            scene.reload()
        return scene

    def _read_root(self) -> dict:
        return read_checked_root(self.path)

    def reload(self) -> "Scene":
        """Re-read the root metadata from disk (after another process changed the store)."""
        if self._txn is None:
            self._root = self._read_root()
        return self

    @property
    def _meta(self) -> dict:
        return self._root[_EXT]

    def _check_writable(self) -> None:
        if self.mode != "r+":
            raise StoreError("store is open read-only; open it with mode='r+' to change it", path=self.path)

    @contextlib.contextmanager
    def transaction(self, what: str = "writing") -> Iterator["Scene"]:
        """Group changes into one all-or-nothing commit::

            with scene.transaction():
                scene.add("a", ...)
                scene.add("b", ...)

        The store lock is held throughout; inside, the Scene shows the pending state. On an
        exception nothing of the block reaches the store. Nested calls join the outer one.
        """
        self._check_writable()
        if self._txn is not None:
            yield self
            return
        txn = transaction_for(self.path, self._lock, what)
        self._root = txn.begin()
        self._txn = txn
        try:
            yield self
            self._txn = None
            self._root = txn.commit()
        except BaseException:
            self._txn = None
            try:
                txn.abort()
            finally:
                with contextlib.suppress(StoreError, OSError):
                    self._root = self._read_root()
            raise

    @contextlib.contextmanager
    def _change(self, what: str) -> Iterator[Transaction]:
        with self.transaction(what):
            yield self._txn

    # -- listing -------------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        """Element names, optionally only of one kind (``"image"``, ``"localizations"``,
        ``"table"``, ``"labels"``; labels are named ``"<image>/labels/<label>"``)."""
        return _cat.names(self._meta, kind)

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
        return _cat.label_parts(self._meta, name)

    def _entry(self, name: str) -> dict:
        return _cat.entry(self._meta, name, self.path)

    def _abs(self, rel: str, what: str, *, must_exist: bool = False):
        p = resolve_inside(self.path, rel, what)
        if must_exist and not exists(p):
            raise StoreError(f"{what} is not at {rel!r} any more: another writer replaced or removed it after "
                             "this Scene read the store's metadata; call reload()", path=self.path, field="path")
        return p

    def kind(self, name: str) -> str:
        """``"image"``, ``"localizations"``, ``"table"`` or ``"labels"``."""
        if self._label_parts(name) is not None:
            return "labels"
        return self._entry(name)["kind"]

    # -- adding, reading, removing elements ----------------------------------------------------
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
            completely written and committed.

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
        if kind == "table" and transform is not None and not isinstance(transform, Identity):
            raise ElementError("a table takes no transform; set its 'coordinate_system' attr instead",
                               path=name, field="transform")
        if kind not in ("image", "localizations", "table"):  # pragma: no cover
            raise ElementError(f"cannot store an element of kind {kind!r}", path=name)
        check_name(name)
        with self._change(f"adding {name!r}") as txn:
            _cat.check_new_name(self._meta, name, overwrite, self.path)
            _parts.add_element(txn, kind, name, element, transform)
            if transform is not None and kind in ("image", "localizations"):
                self.declare_aligned(name, note="transform given to Scene.add", _implicit=True)

    def add_table(self, name: str, df: pd.DataFrame, label_image: str | None = None, overwrite: bool = False) -> None:
        """Store a per-particle table (keyed by ``particle_id``) under ``correlate/tables/<name>/``.

        ``label_image`` is the label image it describes, e.g. ``"em/labels/particles"``.
        """
        self._check_writable()
        check_name(name)
        df = _el.make_table(df, label_image=label_image) if label_image is not None else df
        with self._change(f"adding table {name!r}") as txn:
            _cat.check_new_name(self._meta, name, overwrite, self.path)
            _parts.add_table(txn, name, df)

    def get(self, name: str, *, level: int = 0, columns: Sequence[str] | None = None, bbox: Sequence[float] | None = None):
        """Read an element.

        Parameters
        ----------
        name
            Element name, or ``"<image>/labels/<label>"`` for a label image.
        level
            Pyramid level of an image (0 = full resolution; -1 = coarsest).
        columns, bbox
            Localizations and tables: only these columns; ``bbox=(x0, y0, x1, y1)`` (nm, the order of
            ``--roi`` and ``--region``): only rows with ``x0 <= x <= x1 and y0 <= y <= y1``; images and
            labels: only the pixels whose centres lie in the box (the element's own frame).

        Returns
        -------
        xarray.DataArray (lazy, dask) for images and labels; pandas.DataFrame for the others.
        """
        from .io._store_images import read_image_group
        from .io._store_tables import read_table_group

        lab = self._label_parts(name)
        if lab is not None:
            rel = _cat.label_path(self._entry(lab[0]), lab[1])
            return _el.crop_image(read_image_group(self._abs(rel, f"labels {name!r}", must_exist=True), lab[1], level,
                                                   labels=True), bbox)
        e = self._entry(name)
        p = self._abs(e["path"], f"element {name!r}", must_exist=True)
        if e["kind"] == "image":
            return _el.crop_image(read_image_group(p, name, level), bbox)
        return read_table_group(p, columns=columns, bbox=bbox)

    def levels(self, name: str) -> list[dict]:
        """The pyramid of an image or label image: per level ``{"level", "path", "shape",
        "pixel_size_nm", "origin_nm"}`` (sizes in nm, per spatial dim), finest first. Use it to
        pick the coarsest level a job can work at, then ``get(name, level=...)``."""
        from .io._store_images import image_levels

        lab = self._label_parts(name)
        if lab is not None:
            rel = _cat.label_path(self._entry(lab[0]), lab[1])
        else:
            e = self._entry(name)
            if e["kind"] != "image":
                raise ElementError(f"{name!r} is {e['kind']}, not an image; it has no pyramid", path=name)
            rel = e["path"]
        return image_levels(self._abs(rel, f"element {name!r}", must_exist=True))

    def remove(self, name: str) -> None:
        """Remove an element (and its labels, transform and history)."""
        self._check_writable()
        with self._change(f"removing {name!r}") as txn:
            lab = self._label_parts(name)
            if lab is not None:
                _parts.remove_label(txn, *lab)
            else:
                _parts.remove_element(txn, name)

    # -- labels --------------------------------------------------------------------------------
    def add_labels(self, image_name: str, label_name: str, labels, overwrite: bool = False) -> None:
        """Store an integer label image (same spatial grid as the image) as an NGFF image-label
        under ``<image>/labels/<label_name>``; read it back with :meth:`get_labels`."""
        self._check_writable()
        with self._change(f"adding labels {image_name}/labels/{label_name}") as txn:
            _parts.add_labels(txn, image_name, label_name, labels, overwrite)

    def get_labels(self, image_name: str, label_name: str, *, level: int = 0):
        """The label image ``<image>/labels/<label>`` as a lazy DataArray (dims (z,) y, x)."""
        return self.get(f"{image_name}/labels/{label_name}", level=level)

    # -- transforms ----------------------------------------------------------------------------
    def world_ndim(self) -> int:
        """Number of axes of the ``world`` coordinate system (2 or 3)."""
        return _graph.world_ndim(self._root)

    def transform_to_world(self, name: str) -> Transform:
        """The transform from element ``name``'s own coordinates (nm) to ``"world"``."""
        return _graph.transform_to_world(self._root, self._meta, self.path, name)

    def is_transform_approximate(self, name: str) -> bool:
        """True where the ``ome.scene`` edge of ``name`` is a linear stand-in for a non-linear
        transform (viewers then show an approximate overlay)."""
        t = self._meta["transforms"].get(name)
        return bool(t and t.get("approximate"))

    def set_transform(self, name: str, transform: Transform) -> None:
        """Set element ``name``'s transform to world (linear or non-linear)."""
        self._check_writable()
        with self._change(f"setting the transform of {name!r}") as txn:
            _parts.set_transform(txn, name, transform)

    def transform(self, src: str, dst: str) -> Transform:
        """The transform from ``src``'s coordinates to ``dst``'s (either may be ``"world"``),
        going through world: ``to_world(src)`` then ``to_world(dst).inverse()``."""
        return _graph.transform_between(self._root, self._meta, self.path, src, dst)

    def map_points(self, points, src: str, dst: str = WORLD, *, assume_aligned: bool = False):
        """Map points from ``src`` to ``dst`` coordinates: an (N, D) array (x, y[, z], nm), a
        single point, or a DataFrame with columns x, y[, z] (other columns kept).

        Between two elements (neither ``"world"``) both must be placed in one frame
        (:meth:`require_joinable`) unless ``assume_aligned``; raises UnplacedError otherwise."""
        if src != dst and WORLD not in (src, dst):
            self.require_joinable(src, dst, assume_aligned=assume_aligned, action="map points between")
        return self.transform(src, dst).apply(points)

    # -- placement (see correlate._placement) --------------------------------------------------
    def declarations(self) -> list[dict]:
        """Every stored declaration that an element's transform places it (oldest first)."""
        recs = self._meta.get("declarations")
        return copy_root({"r": recs})["r"] if isinstance(recs, list) else []

    def declare_aligned(self, name: str, reference: str = WORLD, *, tre_nm: float | None = None, note: str = "",
                        _implicit: bool = False) -> dict:
        """Declare that element ``name``'s stored transform places it in ``reference``'s frame
        (default world), so that joins with it need no registration. ``tre_nm``: the RMS error of
        that placement in nm when known (0 for true transforms); None leaves it unknown (NaN)."""
        self._check_writable()
        with self._change(f"declaring {name!r} aligned") as txn:
            rec = _records.declaration_record(name, self._entry(name), reference=reference, tre_nm=tre_nm, note=note,
                                              implicit=_implicit, n_registrations=len(self.registrations()))
            txn.meta.setdefault("declarations", []).append(rec)
        return _records.jsonable_copy(rec)

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

    # -- landmarks, registrations, history -----------------------------------------------------
    def add_landmarks(self, landmarks: "_el.Landmarks", overwrite: bool = True) -> None:
        """Store landmark pairs under ``correlate/landmarks/<source>__<target>/`` (replacing an
        earlier set for the same pair of systems unless ``overwrite=False``)."""
        self._check_writable()
        if not isinstance(landmarks, _el.Landmarks):
            raise ElementError(f"expected Landmarks, got {type(landmarks).__name__}", field="landmarks")
        with self._change("adding landmarks") as txn:
            _parts.add_landmarks(txn, landmarks, overwrite)

    def _landmarks(self) -> dict:
        return _cat.landmarks_catalogue(self._meta, self.path)

    def landmark_pairs(self) -> list[tuple[str, str]]:
        """(source_system, target_system) of every stored landmark set."""
        return [(v["source_system"], v["target_system"]) for _, v in sorted(self._landmarks().items())]

    def get_landmarks(self, source_system: str, target_system: str) -> "_el.Landmarks":
        """The landmark pairs stored for ``source_system -> target_system``."""
        from .io._store_tables import read_table_group

        v = self._landmarks().get(f"{source_system}__{target_system}")
        if v is None:
            raise ElementError(
                f"no landmarks stored for {source_system} -> {target_system}; stored: {self.landmark_pairs()}",
                path=self.path,
            )
        return _el.Landmarks.from_dataframe(read_table_group(self._abs(v["path"], "landmarks")))

    def add_registration(self, record: dict) -> dict:
        """Append a registration record (model, parameters, FRE, predicted TRE, ...) to the
        store's records; ``id``, ``created`` and ``software`` are filled in if missing. Returns
        the stored record."""
        self._check_writable()
        rec = _records.registration_record(record)
        with self._change("adding a registration record") as txn:
            txn.meta["registrations"].append(rec)
        return _records.jsonable_copy(rec)

    def registrations(self) -> list[dict]:
        """Every stored registration record, oldest first."""
        recs = self._meta.get("registrations")
        if not isinstance(recs, list):
            recs = _cat.legacy_registrations(self.path)
        return copy_root({"r": recs})["r"]

    def _history_doc(self) -> dict:
        doc = self._meta.get("history")
        return copy_root(doc) if isinstance(doc, dict) else _cat.legacy_history(self.path)

    def add_history(self, element_name: str, step: dict) -> None:
        """Record a processing step (``{"step": "drift_correction", "params": {...}, ...}``) for
        an element; ``time`` and ``software`` are filled in if missing."""
        self._check_writable()
        if element_name != WORLD and element_name not in self:
            self._entry(element_name)
        s = _records.history_step(step)
        with self._change(f"recording history of {element_name!r}") as txn:
            if element_name != WORLD and element_name not in self:
                self._entry(element_name)
            txn.meta["history"].setdefault(element_name, []).append(s)

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
        from ._store.summary import validate_ngff

        validate_ngff(self)

    def info(self) -> str:
        """A human-readable summary: elements, coordinate systems, transforms, extensions."""
        from ._store.summary import scene_summary

        return scene_summary(self)

    def _repr_html_(self) -> str:
        from ._repr import scene_html
        return scene_html(self)


def open_scene(path: str | os.PathLike, mode: str = "r", *, lock_timeout: float | None = None,
               storage_options: dict | None = None) -> Scene:
    """Open an existing correlate store (see :meth:`Scene.open`)."""
    return Scene.open(path, mode, lock_timeout=lock_timeout, storage_options=storage_options)
