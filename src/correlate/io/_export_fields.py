"""A non-linear element transform exported as NGFF displacement fields other tools can apply.

An NGFF 0.6 (RFC-5) ``displacements`` transform holds, on a regular grid, the vector to add to
each point. Image resampling pulls (it needs world -> element), point mapping pushes (element ->
world), so the export writes both, each sampled over the region where it is used:

``OUT.zarr/forward``
    element -> world, over the element's extent (image grid or localization bounding box);
``OUT.zarr/inverse``
    world -> element, over the image of that extent in world.

The root ``zarr.json`` names both as ``coordinateTransformations`` (``input`` -> ``output``
coordinate systems) and records the largest interpolation error found at random points against
the exact transform (nm).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import CorrelateError
from ..transforms import DisplacementField, Transform
from ._store_transforms import write_displacement_group

__all__ = ["sample_field", "write_displacement_fields"]


def _extent(scene, name: str) -> tuple[np.ndarray, np.ndarray]:
    from ..elements import origin, pixel_size

    kind = scene.kind(name)
    if kind == "image":
        img = scene.get(name)
        px, org = pixel_size(img), origin(img)
        axes = [a for a in ("x", "y", "z") if a in px]
        lo = np.array([org[a] for a in axes])
        hi = np.array([org[a] + px[a] * (img.sizes[a] - 1) for a in axes])
        return lo, hi
    if kind == "localizations":
        df = scene.get(name)
        xyz = [c for c in ("x", "y", "z") if c in df.columns]
        return df[xyz].min().to_numpy(float), df[xyz].max().to_numpy(float)
    raise CorrelateError(f"{name!r} is {kind}; a displacement field needs an image or localizations", field="name")


def sample_field(t: Transform, lo: np.ndarray, hi: np.ndarray, spacing: float,
                 rng: np.random.Generator | None = None) -> tuple[DisplacementField, float]:
    """Sample ``t`` on a grid covering [lo, hi] (nm, x, y[, z]) at ``spacing`` nm; returns the
    field and the largest distance (nm) between field and ``t`` at 2000 random points inside."""
    if not spacing > 0:
        raise CorrelateError(f"spacing must be > 0 nm, got {spacing}", field="spacing")
    shape = np.maximum(2, np.ceil((hi - lo) / spacing).astype(int) + 1)
    if np.prod(shape) > 64e6:
        raise CorrelateError(f"a {' x '.join(map(str, shape))} grid is too large; pass a larger spacing",
                             field="spacing")
    field = DisplacementField.from_function(t.apply, lo, np.full(lo.size, float(spacing)), shape)
    rng = np.random.default_rng(0) if rng is None else rng
    p = lo + rng.random((2000, lo.size)) * (hi - lo)
    err = float(np.max(np.linalg.norm(field.apply(p) - t.apply(p), axis=1)))
    return field, err


def write_displacement_fields(scene, name: str, out: str | Path, *, spacing_nm: float | None = None) -> dict:
    """Write the element -> world transform of ``name`` as forward and inverse NGFF displacement
    fields in a new Zarr group ``out`` (see the module docstring).

    Parameters
    ----------
    spacing_nm
        Grid step (nm); default: the extent / 255 (a 256-point grid along the longer side).

    Returns
    -------
    dict
        ``spacing_nm``, ``shape`` and ``max_error_nm`` of each field, as written to the root.
    """
    out = Path(out)
    if out.exists():
        raise CorrelateError("exists; remove it first", path=out)
    t = scene.transform_to_world(name)
    lo, hi = _extent(scene, name)
    step = float(spacing_nm) if spacing_nm else float(np.max(hi - lo)) / 255.0 or 1.0
    fwd, err_f = sample_field(t, lo, hi, step)
    g = np.meshgrid(*[np.linspace(lo[i], hi[i], 33) for i in range(lo.size)], indexing="ij")
    world = t.apply(np.column_stack([a.ravel() for a in g]))
    wlo, whi = world.min(axis=0), world.max(axis=0)
    inv, err_i = sample_field(t.inverse(), wlo, whi, step)
    out.mkdir(parents=True)
    write_displacement_group(out / "forward", fwd, f"{name} -> world")
    write_displacement_group(out / "inverse", inv, f"world -> {name}")
    info = {
        "element": name, "transform": type(t).__name__, "units": "nm",
        "forward": {"spacing_nm": step, "shape": list(fwd.displacements.shape[1:]), "max_error_nm": err_f},
        "inverse": {"spacing_nm": step, "shape": list(inv.displacements.shape[1:]), "max_error_nm": err_i},
    }
    cts = [
        {"type": "displacements", "path": "forward", "interpolation": "linear", "input": name, "output": "world"},
        {"type": "displacements", "path": "inverse", "interpolation": "linear", "input": "world", "output": name},
    ]
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in ("z", "y", "x")[-lo.size:]]
    root = {"zarr_format": 3, "node_type": "group", "attributes": {
        "ome": {"version": "0.6", "coordinateSystems": [{"name": name, "axes": axes}, {"name": "world", "axes": axes}],
                "coordinateTransformations": cts},
        "correlate": {"kind": "displacement_fields", **info}}}
    with open(out / "zarr.json", "w", encoding="utf-8") as fh:
        json.dump(root, fh, indent=2)
    return info
