"""Transforms in the store: NGFF JSON for linear edges, the ``correlate`` key for non-linear ones.

* Linear element -> world transforms are ``ome.scene.coordinateTransformations`` edges (standard
  NGFF 0.6, what viewers use).
* A non-linear transform (thin-plate spline, displacement field, or a sequence holding one) is
  written as NGFF-shaped JSON into the root key ``correlate.nonlinear_transforms``; its
  ``ome.scene`` edge carries the best linear approximation, flagged ``approximate``.
* Displacement field data live under ``coordinateTransformations/<field>/`` as an NGFF
  displacements multiscale: one level ``s0`` with axes ``(d: displacement, (z,) y, x)``, values in
  nm; the transform JSON references it by ``path``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import StoreError
from ..transforms import (
    Affine,
    DisplacementField,
    Identity,
    Sequence,
    ThinPlateSpline,
    Transform,
    _NewtonInverse,
    from_ngff,
    ngff_to_xyz,
    xyz_to_ngff,
)

__all__ = [
    "FIELDS_GROUP",
    "serialize_transform",
    "deserialize_transform",
    "linear_approximation",
    "write_displacement_group",
    "read_displacement_group",
    "short_description",
]

FIELDS_GROUP = "coordinateTransformations"


def serialize_transform(t: Transform, field_name: Callable[[], str]) -> tuple[dict, dict[str, DisplacementField]]:
    """NGFF JSON of ``t`` plus the displacement fields it references (``{path: field}``).

    ``field_name()`` returns a fresh group name for each displacement field.
    """
    fields: dict[str, DisplacementField] = {}

    def rec(t: Transform) -> dict:
        if isinstance(t, DisplacementField):
            path = f"{FIELDS_GROUP}/{field_name()}"
            fields[path] = t
            return {"type": "displacements", "path": path, "interpolation": "linear"}
        if isinstance(t, Sequence):
            return {"type": "sequence", "transformations": [rec(s) for s in t.transforms]}
        if isinstance(t, _NewtonInverse):
            return {"type": "correlate:inverse", "transformation": rec(t.forward)}
        return t.to_ngff()

    return rec(t), fields


def deserialize_transform(d: dict, ndim: int, load_field: Callable[[str], DisplacementField]) -> Transform:
    """Inverse of :func:`serialize_transform` (``load_field(path)`` reads a displacement field)."""
    kind = d.get("type")
    if kind == "displacements":
        return load_field(d["path"])
    if kind == "sequence":
        return Sequence([deserialize_transform(s, ndim, load_field) for s in d["transformations"]])
    if kind == "correlate:inverse":
        return deserialize_transform(d["transformation"], ndim, load_field).inverse()
    return from_ngff(d, ndim=ndim)


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> Affine:
    d = src.shape[1]
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)  # (d+1, d)
    return Affine(np.hstack([sol[:d].T, sol[d][:, None]]))


def linear_approximation(t: Transform) -> Transform:
    """Best linear stand-in for ``t`` (itself if linear).

    Thin-plate spline: the least-squares affine over its control points' box. Displacement field: the least-squares affine over its
    grid. Sequences and inverses: composed / inverted approximations of their parts.
    """
    if t.is_linear:
        return t
    if isinstance(t, ThinPlateSpline):
        # least squares over the control points' bounding box (padded by 10 %), not the spline's
        # own affine part: with bending the kernel sum carries a linear trend of its own
        lo, hi = t.centers.min(axis=0), t.centers.max(axis=0)
        pad = 0.1 * np.maximum(hi - lo, 1e-9)
        n = 24 if t.ndim == 2 else 10
        axes = [np.linspace(lo[i] - pad[i], hi[i] + pad[i], n) for i in range(t.ndim)]
        grid = np.column_stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")])
        pts = np.vstack([grid, t.centers])
        return _fit_affine(pts, t.apply(pts))
    if isinstance(t, DisplacementField):
        shape = t.displacements.shape[1:][::-1]  # x, y[, z]
        # subsample the grid (at most ~32 per axis) for the fit
        axes = [t.origin[i] + t.spacing[i] * np.linspace(0, n - 1, min(n, 32)) for i, n in enumerate(shape)]
        grids = np.meshgrid(*axes, indexing="ij")
        pts = np.column_stack([g.ravel() for g in grids])
        if len(pts) < t.ndim + 1:
            return Identity(t.ndim)
        return _fit_affine(pts, t.apply(pts))
    if isinstance(t, Sequence):
        m = Identity(t.ndim)
        for s in t.transforms:
            m = m.then(linear_approximation(s))
        return m
    if isinstance(t, _NewtonInverse):
        return linear_approximation(t.forward).inverse()
    raise StoreError(f"no linear approximation for {type(t).__name__}")


def write_displacement_group(path: Path, field: DisplacementField, name: str) -> None:
    """Write a displacement field as an NGFF 0.6 displacements multiscale at ``path`` (new)."""
    import zarr

    nd = field.ndim
    sp = ["z", "y", "x"][-nd:]
    data = np.asarray(field.displacements, dtype=np.float64)
    path.mkdir(parents=True)
    zarr.create_array(
        store=str(path / "s0"),
        shape=data.shape,
        chunks=data.shape if data.size <= 4_000_000 else (1,) + tuple(min(n, 512) for n in data.shape[1:]),
        dtype=data.dtype,
        compressors=zarr.codecs.ZstdCodec(level=3),
        dimension_names=("d", *sp),
        zarr_format=3,
    )[...] = data
    scale = [1.0] + xyz_to_ngff(field.spacing).tolist()
    trans = [0.0] + xyz_to_ngff(field.origin).tolist()
    axes = [{"name": "d", "type": "displacement", "discrete": True}] + [
        {"name": a, "type": "space", "unit": "nanometer"} for a in sp
    ]
    ome = {
        "version": "0.6",
        "multiscales": [
            {
                "name": name,
                "coordinateSystems": [{"name": "physical", "axes": axes}],
                "datasets": [
                    {
                        "path": "s0",
                        "coordinateTransformations": [
                            {
                                "type": "sequence",
                                "input": {"path": "s0"},
                                "output": {"name": "physical"},
                                "transformations": [
                                    {"type": "scale", "scale": scale},
                                    {"type": "translation", "translation": trans},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    meta = {"kind": "displacement_field", "schema_version": 1, "value_unit": "nm", "component_order": sp}
    with open(path / "zarr.json", "w", encoding="utf-8") as fh:
        json.dump({"zarr_format": 3, "node_type": "group", "attributes": {"ome": ome, "correlate": meta}}, fh, indent=2)


def read_displacement_group(path: Path) -> DisplacementField:
    """Read a displacement field written by :func:`write_displacement_group`."""
    import zarr

    from ._store_remote import read_json_any, zarr_store

    try:
        ms = read_json_any(path / "zarr.json")["attributes"]["ome"]["multiscales"][0]
    except (FileNotFoundError, KeyError, IndexError) as exc:
        raise StoreError("displacement field group is missing or malformed", path=path) from exc
    ds = ms["datasets"][0]
    seq = ds["coordinateTransformations"][0]
    parts = seq["transformations"] if seq["type"] == "sequence" else [seq]
    scale = next(p["scale"] for p in parts if p["type"] == "scale")
    trans = next((p["translation"] for p in parts if p["type"] == "translation"), [0.0] * len(scale))
    data = zarr.open_array(zarr_store(path / ds["path"]), mode="r")[...]
    return DisplacementField(ngff_to_xyz(np.asarray(trans[1:], float)), ngff_to_xyz(np.asarray(scale[1:], float)), data)


def short_description(d: dict) -> str:
    """One-line summary of an NGFF transform JSON, for ``correlate info``."""
    kind = d.get("type", "?")

    def fmt(v):
        return "[" + ", ".join(f"{x:.6g}" for x in np.ravel(v)) + "]"

    if kind == "identity":
        return "identity"
    if kind == "translation":
        return f"translation {fmt(d['translation'])} nm (zyx)"
    if kind == "scale":
        return f"scale {fmt(d['scale'])} (zyx)"
    if kind == "affine":
        m = np.asarray(d["affine"], float)
        nd = m.shape[1] - 1
        lin = m[:, :nd]
        sv = np.linalg.svd(lin, compute_uv=False)
        rot = ""
        if nd == 2:
            rot = f", rotation {np.degrees(np.arctan2(lin[0, 1] - lin[1, 0], lin[0, 0] + lin[1, 1])):.3f} deg"
        return f"affine {nd}-D, scale {fmt(sv)}{rot}, offset {fmt(m[:, nd])} nm (zyx)"
    if kind == "sequence":
        return "sequence[" + "; ".join(short_description(s) for s in d["transformations"]) + "]"
    if kind == "displacements":
        return f"displacement field at {d.get('path')}"
    if kind == "correlate:thin_plate_spline":
        return f"thin-plate spline, {len(d.get('centers', []))} control points, smoothing {d.get('smoothing', 0):.3g}"
    if kind == "correlate:inverse":
        return f"inverse of ({short_description(d['transformation'])})"
    return kind
