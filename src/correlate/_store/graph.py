"""The transform graph of a store: element -> world edges, their serialisation, and chains.

Every image and localization set has one edge to ``world`` (identity when none is stored);
tables live in the frame their ``coordinate_system`` names. A transform between two elements
goes through world: ``to_world(src)`` then ``to_world(dst).inverse()``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ElementError
from ..transforms import Affine, Identity, Transform, _embed, compose
from .catalogue import entry, label_parts
from .paths import WORLD, resolve_inside

if TYPE_CHECKING:  # pragma: no cover
    from .writer import Transaction

__all__ = ["lift", "prepare_transform", "transform_to_world", "transform_between", "world_ndim"]


def lift(t: Transform, ndim: int, name: str) -> Transform:
    """A transform of the element's dimensionality (2-D linear ones embed into 3-D)."""
    if not isinstance(t, Transform):
        raise ElementError(f"transform must be a correlate Transform, got {type(t).__name__}", path=name, field="transform")
    if t.ndim == ndim:
        return t
    if t.ndim < ndim and t.is_linear:
        return Affine(_embed(t.matrix, ndim))
    raise ElementError(f"the transform is {t.ndim}-D but element {name!r} is {ndim}-D", path=name, field="transform")


def prepare_transform(name: str, t: Transform, txn: "Transaction") -> tuple[dict, list[tuple[Path, str]]]:
    """Serialise ``t``; write its displacement fields into the transaction's staging folder.

    Returns the transform record and the (staged folder, fresh relative path) of each field.
    """
    from ..io._store_transforms import linear_approximation, serialize_transform, write_displacement_group

    if not isinstance(t, Transform):
        raise ElementError(f"transform must be a correlate Transform, got {type(t).__name__}", path=name, field="transform")
    if t.is_linear:
        return {"linear": t.to_ngff(), "approximate": False, "exact": None, "type": type(t).__name__}, []
    counter = iter(range(1_000_000))
    token = uuid.uuid4().hex[:8]

    def field_name() -> str:
        return f"{name}_{token}_{next(counter)}"

    exact, fields = serialize_transform(t, field_name)
    pairs = []
    for rel, field in fields.items():
        staged = txn.staged("field")
        write_displacement_group(staged, field, rel.rsplit("/", 1)[-1])
        pairs.append((staged, rel))
    approx = linear_approximation(t)
    return {"linear": approx.to_ngff(), "approximate": True, "exact": exact, "type": type(t).__name__}, pairs


def world_ndim(root: dict) -> int:
    """Number of axes of the ``world`` coordinate system (2 or 3)."""
    return len(root["ome"]["scene"]["coordinateSystems"][0]["axes"])


def transform_to_world(root: dict, meta: dict, path: Path, name: str) -> Transform:
    """The transform from element ``name``'s own coordinates (nm) to ``world``."""
    from ..io._store_transforms import deserialize_transform, read_displacement_group

    if name == WORLD:
        return Identity(world_ndim(root))
    lab = label_parts(meta, name)
    if lab is not None:
        name = lab[0]
    e = entry(meta, name, path)
    if e["kind"] == "table":
        cs = e["coordinate_system"]["name"]
        return Identity(world_ndim(root)) if cs in (WORLD, None) else transform_to_world(root, meta, path, cs)
    tinfo = meta["transforms"].get(name)
    nd = int(e.get("ndim", 2))
    if tinfo is None:
        return Identity(nd)

    def load_field(rel: str):
        return read_displacement_group(resolve_inside(path, rel, f"displacement field of {name!r}"))

    return deserialize_transform(tinfo["exact"] if tinfo.get("exact") is not None else tinfo["linear"], nd, load_field)


def transform_between(root: dict, meta: dict, path: Path, src: str, dst: str) -> Transform:
    """The transform from ``src``'s coordinates to ``dst``'s through world."""
    a = transform_to_world(root, meta, path, src)
    b = transform_to_world(root, meta, path, dst)
    if src == dst:
        return Identity(a.ndim)
    return compose(a, b.inverse())
