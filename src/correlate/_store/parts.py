"""Writing each kind of part (image, localizations, table, labels, landmarks, transform) inside
a :class:`~correlate._store.writer.Transaction`: write into staging, move to a fresh path,
then change the pending metadata; superseded paths go after the commit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import pandas as pd

from .. import elements as _el
from ..errors import CorrelateError, ElementError, StoreError, UnitError
from ..transforms import Identity, Transform
from ..units import normalize_length_unit
from .catalogue import entry, field_paths, label_path
from .graph import lift, prepare_transform
from .paths import EXT, WORLD, check_name, resolve_inside
from .rootdoc import now

if TYPE_CHECKING:  # pragma: no cover
    from .writer import Transaction

__all__ = ["add_element", "add_image", "add_localizations", "add_localizations_stream", "add_table", "set_transform", "remove_element", "add_labels",
           "remove_label", "add_landmarks"]


def _write_staged(txn: "Transaction", name: str, write: Callable[[Path], object], what: str = "element") -> Path:
    st = txn.staged(name)
    try:
        write(st)
    except CorrelateError:
        raise
    except Exception as exc:
        raise StoreError(f"writing {what} {name!r} failed ({type(exc).__name__}: {exc}); the store is unchanged",
                         path=txn.path) from exc
    return st


def _place_fields(txn: "Transaction", fields: list[tuple[Path, str]]) -> None:
    for staged, rel in fields:
        txn.ensure_group("coordinateTransformations")
        txn.place(staged, rel)


def _put_element(txn: "Transaction", name: str, e: dict, write: Callable[[Path], object], parent: str,
                 transform: Transform | None) -> None:
    st = _write_staged(txn, name, write)
    tinfo, fields = prepare_transform(name, transform, txn) if transform is not None else (None, [])
    meta = txn.meta
    old = meta["elements"].get(name)
    rel = txn.fresh(parent, name)
    e["path"] = rel
    if "path" in e["coordinate_system"]:
        e["coordinate_system"]["path"] = rel
    if parent:
        txn.ensure_group(parent)
    txn.place(st, rel)
    _place_fields(txn, fields)
    if old is not None:
        txn.supersede(old["path"])
        for p in field_paths(meta["transforms"].get(name)):
            txn.supersede(p)
    meta["elements"][name] = e
    if tinfo is not None:
        meta["transforms"][name] = tinfo
    else:
        meta["transforms"].pop(name, None)


def validate_image(name: str, img) -> None:
    """Image checks before writing: element rules, coordinates in nm, value unit normalised."""
    _el.validate_image(img, name=name)
    for d in img.dims:
        if d == "c":
            continue
        u = img.coords[d].attrs.get("units")
        if u is not None and normalize_length_unit(str(u), path=name, field=f"coords.{d}.units") != "nm":
            raise UnitError(f"coordinate {d!r} is in {u!r}; image coordinates must be nm (see correlate.units.to_nm)",
                            path=name, field=f"coords.{d}.units")
    vu = img.attrs.get("value_unit")
    if vu:
        try:
            img.attrs["value_unit"] = normalize_length_unit(str(vu))
        except UnitError:
            pass  # not a length (counts, a.u. ...): kept as written


def add_image(txn: "Transaction", name: str, img, transform: Transform | None) -> None:
    """Stage, place and catalogue an image (NGFF multiscales at a fresh top-level folder)."""
    from ..io._store_images import write_image_group

    validate_image(name, img)
    ndim = sum(d in _el.SPATIAL_DIMS for d in img.dims)
    if ndim not in (2, 3):
        raise ElementError(f"an image needs 2 or 3 spatial dims, got dims {tuple(img.dims)}", path=name, field="dims")
    t = lift(transform if transform is not None else Identity(ndim), ndim, name)
    e = {"kind": "image", "path": name, "coordinate_system": {"name": "physical", "path": name}, "ndim": ndim,
         "labels": [], "added": now()}
    _put_element(txn, name, e, lambda p: e.update(write_image_group(p, img, name)), "", t)


def _check_length_units(name: str, df: pd.DataFrame) -> None:
    units = dict(df.attrs.get("units", {}) or {})
    for col in ("x", "y", "z", "precision", "precision_x", "precision_y", "precision_z", "sigma"):
        if col in df.columns and units.get(col):
            if normalize_length_unit(str(units[col]), path=name, field=f"units.{col}") != "nm":
                raise UnitError(f"column {col!r} is in {units[col]!r}; localizations must be in nm",
                                path=name, field=f"units.{col}")


def _localizations_entry(name: str, df: pd.DataFrame) -> tuple[int, dict, dict, dict]:
    """(ndim, catalogue entry, group metadata, coordinate system) of a localization element like ``df``."""
    ndim = 3 if "z" in df.columns else 2
    cs = {"name": f"{WORLD}_{name}"}
    e = {"kind": "localizations", "path": "", "coordinate_system": cs, "ndim": ndim, "n_rows": int(len(df)),
         "modality": str(df.attrs.get("modality", "smlm")), "source_format": str(df.attrs.get("source_format", "")),
         "added": now()}
    return ndim, e, {"coordinate_system": cs, "ndim": ndim, "element": name}, cs


def add_localizations(txn: "Transaction", name: str, df: pd.DataFrame, transform: Transform | None) -> None:
    """Stage, place and catalogue a localization table under ``correlate/localizations/``."""
    from ..io._store_tables import write_table_group

    _el.validate_localizations(df, name=name)
    _check_length_units(name, df)
    ndim, e, extra, cs = _localizations_entry(name, df)
    t = lift(transform if transform is not None else Identity(ndim), ndim, name)
    df = df.copy(deep=False)  # the table names the system the store gives it (a reader's name would differ)
    df.attrs = {**df.attrs, "coordinate_system": cs["name"]}
    _put_element(txn, name, e, lambda p: write_table_group(p, df, kind="localizations", extra_meta=extra),
                 f"{EXT}/localizations", t)


def add_localizations_stream(txn: "Transaction", name: str, batches: Callable[[Path], Iterable[pd.DataFrame]],
                             transform: Transform | None, *, bucket_rows: int, rows_given: bool = False) -> dict:
    """Stage, place and catalogue a localization table that arrives in batches (bounded memory).

    ``batches(workdir)`` yields the table's rows in input order as DataFrames (each checked like
    a whole element); ``workdir`` lies in the transaction's staging folder, as do the sort's
    spills, so a killed import leaves the store as it was. With ``rows_given`` the batches carry
    each row's input-order number in ``__correlate_row`` (see ``write_table_stream``). Returns the
    group metadata.
    """
    from ..io._stream_tables import write_table_stream

    work = txn.staged("work")
    it = iter(batches(work))
    first = next(it)

    def checked():
        yield first
        for df in it:
            _el.validate_localizations(df, name=name)
            yield df

    _el.validate_localizations(first, name=name)
    _check_length_units(name, first)
    ndim, e, extra, cs = _localizations_entry(name, first)
    t = lift(transform if transform is not None else Identity(ndim), ndim, name)
    out: dict = {}

    def write(p: Path) -> None:
        out.update(write_table_stream(p, checked(), kind="localizations", workdir=work, bucket_rows=bucket_rows,
                                      extra_meta=extra, attrs_update={"coordinate_system": cs["name"]},
                                      rows_given=rows_given))
        e["n_rows"] = int(out["n_rows"])

    _put_element(txn, name, e, write, f"{EXT}/localizations", t)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return out


def add_table(txn: "Transaction", name: str, df: pd.DataFrame) -> None:
    """Stage, place and catalogue a per-particle table under ``correlate/tables/``."""
    from ..io._store_tables import write_table_group

    _el.validate_table(df, name=name)
    label_image = df.attrs.get("label_image")
    cs = {"name": str(df.attrs.get("coordinate_system") or WORLD)}
    e = {"kind": "table", "path": "", "n_rows": int(len(df)), "label_image": label_image, "coordinate_system": cs,
         "ndim": 2, "added": now()}
    extra = {"label_image": label_image, "regions": [{"path": label_image}] if label_image else [],
             "coordinate_system": dict(cs)}
    _put_element(txn, name, e, lambda p: write_table_group(p, df, kind="table", extra_meta=extra, spatial=False),
                 f"{EXT}/tables", None)


def add_element(txn: "Transaction", kind: str, name: str, element, transform: Transform | None) -> None:
    """Write an image, localizations or table element (``kind``) inside a transaction."""
    if kind == "image":
        add_image(txn, name, element, transform)
    elif kind == "localizations":
        add_localizations(txn, name, element, transform)
    else:
        add_table(txn, name, element)


def set_transform(txn: "Transaction", name: str, transform: Transform) -> None:
    """Replace element ``name``'s transform to world (fields at fresh paths, old ones superseded)."""
    meta = txn.meta
    e = entry(meta, name, txn.path)
    if e["kind"] not in ("image", "localizations"):
        raise ElementError(f"{name!r} is a {e['kind']}; only images and localizations have transforms", path=name)
    t = lift(transform, int(e.get("ndim", 2)), name)
    tinfo, fields = prepare_transform(name, t, txn)
    _place_fields(txn, fields)
    for p in field_paths(meta["transforms"].get(name)):
        txn.supersede(p)
    meta["transforms"][name] = tinfo


def remove_element(txn: "Transaction", name: str) -> None:
    """Drop element ``name`` (with its labels, transform and history) from the pending metadata."""
    meta = txn.meta
    e = entry(meta, name, txn.path)
    del meta["elements"][name]
    txn.supersede(e["path"])
    for p in field_paths(meta["transforms"].pop(name, None)):
        txn.supersede(p)
    meta.get("history", {}).pop(name, None)


def add_labels(txn: "Transaction", image_name: str, label_name: str, labels, overwrite: bool) -> None:
    """Stage and place a label image of ``image_name``; its labels index follows the commit."""
    from ..io._store_images import image_group_info, write_label_group

    check_name(label_name, "label")
    meta = txn.meta
    e = entry(meta, image_name, txn.path)
    if e["kind"] != "image":
        raise ElementError(f"labels belong to an image; {image_name!r} is {e['kind']}", path=image_name)
    if label_name in e.get("labels", []) and not overwrite:
        raise StoreError(f"image {image_name!r} already has labels {label_name!r}; pass overwrite=True to replace them",
                         path=txn.path, field="label_name")
    img_meta = dict(e)
    img_meta["level_factors"] = image_group_info(resolve_inside(txn.path, e["path"], f"image {image_name!r}"))[EXT]["level_factors"]
    st = _write_staged(txn, label_name, lambda p: write_label_group(p, labels, img_meta, label_name, image_name), "labels")
    rel = txn.fresh(f"{e['path']}/labels", label_name)
    txn.touch_labels(image_name)
    txn.place(st, rel)
    if label_name in e.get("labels", []):
        txn.supersede(label_path(e, label_name))
    e["labels"] = sorted(set(e.get("labels", [])) | {label_name})
    e.setdefault("label_paths", {})[label_name] = rel


def remove_label(txn: "Transaction", image_name: str, label_name: str) -> None:
    """Drop label image ``<image>/labels/<label>`` from the pending metadata."""
    e = entry(txn.meta, image_name, txn.path)
    txn.supersede(label_path(e, label_name))
    txn.touch_labels(image_name)
    e["labels"] = [n for n in e.get("labels", []) if n != label_name]
    (e.get("label_paths") or {}).pop(label_name, None)


def add_landmarks(txn: "Transaction", landmarks: "_el.Landmarks", overwrite: bool) -> None:
    """Stage and place landmark pairs under ``correlate/landmarks/<source>__<target>``."""
    from ..io._store_tables import write_table_group

    if not isinstance(landmarks, _el.Landmarks):
        raise ElementError(f"expected Landmarks, got {type(landmarks).__name__}", field="landmarks")
    a = check_name(landmarks.source_system, "landmark source system") if landmarks.source_system != WORLD else WORLD
    b = check_name(landmarks.target_system, "landmark target system") if landmarks.target_system != WORLD else WORLD
    key = f"{a}__{b}"
    cat = txn.meta["landmarks"]
    if key in cat and not overwrite:
        raise StoreError(f"landmarks {a} -> {b} already stored; pass overwrite=True", path=txn.path / cat[key]["path"])
    df = landmarks.to_dataframe()
    extra = {"source_system": a, "target_system": b, "ndim": landmarks.ndim, "n_pairs": len(landmarks)}
    st = _write_staged(txn, key, lambda p: write_table_group(p, df, kind="landmarks", spatial=False, extra_meta=extra),
                       "landmarks")
    txn.ensure_group(f"{EXT}/landmarks")
    rel = txn.fresh(f"{EXT}/landmarks", key)
    txn.place(st, rel)
    if key in cat:
        txn.supersede(cat[key]["path"])
    cat[key] = {"path": rel, **extra}
