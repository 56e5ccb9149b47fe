"""The ``info --json`` documents: what a store holds, or what one data file contains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_IMAGE_KEYS = ("modality", "dims", "shape", "dtype", "pixel_size_nm", "origin_nm", "n_levels", "value_unit",
               "channel_names")
_ROW_KEYS = ("modality", "n_rows", "ndim", "source_format", "label_image")


def quality(df) -> dict[str, Any]:
    """The localization quality figures of ``correlate.smlm.summary`` (nm; errors as ``*_error``)."""
    from ..smlm import summary

    return dict(summary(df))


def _placement(scene, names: list[str]) -> dict[str, dict]:
    places = {n: scene.placement(n) for n in names}
    anchors = {p.anchor for n, p in places.items() if p.anchor != n}
    out = {}
    for name, p in places.items():
        d = p.to_dict()
        d["state"] = "placed" if p.placed else ("reference" if name in anchors else "unplaced")
        out[name] = d
    return out


def _transform(t: dict | None) -> dict | None:
    from ..io._store_transforms import short_description

    if not t:
        return None
    exact = t.get("exact")
    return {
        "type": t.get("type"), "linear": exact is None, "description": short_description(exact or t["linear"]),
        "approximation": short_description(t["linear"]) if exact is not None else None,
        "ngff": t["linear"],
    }


def _registration(r: dict) -> dict[str, Any]:
    tf = r.get("predicted_tre_field") or {}
    return {
        "id": r.get("id"), "created": r.get("created"), "moving": r.get("moving", r.get("source")),
        "fixed": r.get("fixed", r.get("target")), "kind": r.get("kind"), "model": r.get("model"),
        "n_pairs": r.get("n_pairs"), "mirrored": r.get("mirrored"), "fre_rms_nm": r.get("fre_rms_nm", r.get("fre_nm")),
        "loo_rms_nm": r.get("loo_rms_nm"), "tre_rms_median_nm": tf.get("tre_rms_median_nm", r.get("tre_nm")),
        "tre_r95_median_nm": tf.get("tre_r95_median_nm"),
    }


def store_document(scene, *, with_quality: bool = False) -> dict[str, Any]:
    """Elements (kind, coordinate system, transform to world, placement), coordinate systems,
    landmarks, registrations, tables and history of a store, as plain JSON types."""
    meta = scene._meta
    placed = _placement(scene, scene.names("image") + scene.names("localizations"))
    elements = []
    for name in sorted(meta["elements"]):
        e = meta["elements"][name]
        keys = _IMAGE_KEYS if e["kind"] == "image" else _ROW_KEYS
        d = {"name": name, "kind": e["kind"], **{k: e.get(k) for k in keys if k in e},
             "coordinate_system": dict(e.get("coordinate_system") or {}) or None,
             "transform_to_world": _transform(meta["transforms"].get(name)),
             "placement": placed.get(name), "added": e.get("added")}
        elements.append(d)
        for lab in e.get("labels", []) or []:
            elements.append({"name": f"{name}/labels/{lab}", "kind": "labels", "image": name})
    cat = scene._landmarks()
    landmarks = [{"moving": a, "fixed": b, "n_pairs": cat[f"{a}__{b}"].get("n_pairs", cat[f"{a}__{b}"].get("n_rows"))}
                 for a, b in scene.landmark_pairs()]
    hist = scene._history_doc()
    doc: dict[str, Any] = {
        "store": str(scene.path), "ome_version": "0.6", "schema_version": meta.get("schema_version"),
        "elements": elements,
        "coordinate_systems": [{"name": cs["name"], "axes": [a["name"] for a in cs["axes"]], "unit": "nm"}
                               for cs in scene._root["ome"]["scene"]["coordinateSystems"]],
        "landmarks": landmarks,
        "registrations": [_registration(r) for r in scene.registrations()],
        "tables": scene.names("table"),
        "history": {n: [str(s.get("step", s.get("name", "?"))) for s in hist[n]] for n in sorted(hist)},
    }
    if with_quality:
        doc["quality"] = {n: quality(scene.get(n)) for n in scene.names("localizations")}
    return doc


def file_document(path: Path, el, *, with_quality: bool = False) -> dict[str, Any]:
    """What one data file holds, as read: kind, shape and pixel size (nm) or rows and columns."""
    from ..elements import element_kind, pixel_size

    kind = element_kind(el)
    doc: dict[str, Any] = {"file": str(path), "kind": kind}
    if kind == "image":
        doc.update(dims=list(el.dims), shape=list(el.shape), dtype=str(el.dtype), pixel_size_nm=pixel_size(el),
                   modality=el.attrs.get("modality"), value_unit=el.attrs.get("value_unit"))
    else:
        doc.update(n_rows=len(el), columns=[str(c) for c in el.columns])
        for k in ("source_format", "frame_base", "camera_pixel_size_nm", "units"):
            if k in el.attrs:
                doc[k] = el.attrs[k]
    doc["source_format"] = el.attrs.get("source_format")
    doc["assumptions"] = [str(n) for n in el.attrs.get("notes") or []]
    if with_quality and kind == "localizations":
        doc["quality"] = quality(el)
    return doc
