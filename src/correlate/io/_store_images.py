"""Images and label images as NGFF 0.6 multiscales (Zarr v3), written from dask chunk by chunk.

Layout of one image group (``<store>/<name>/``)::

    zarr.json   ome: {version: "0.6", multiscales: [{name, coordinateSystems: [physical],
                                                      datasets: [{path: s0..sN, scale+translation}]}]}
                correlate: {kind: "image", schema_version, modality, value_unit, channel_names, attrs}
    s0/ s1/ ... Zarr v3 arrays (zstd), dimension_names = dims, chunks 1024^2 (2-D) / 256^3 (3-D),
                sharded (4 x 4 chunks per shard) where an array is larger than one shard
    labels/     NGFF labels group (ome.version present), labels/<name>/ image-label multiscales

Level ``l`` has scale ``s_l = s_0 * f_l`` and translation ``t_0 + (f_l - 1) * s_0 / 2`` (the
centre of the block of level-0 pixels it averages), so pixel centres stay pixel centres.
Each level is computed from the previous one *read back from disk* (label levels: level 0's
pixel nearest each block centre, read back from disk too), so no level needs the whole array in
memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..elements import SPATIAL_DIMS
from ..errors import ElementError, StoreError
from ._atomic import from_jsonable, to_jsonable

__all__ = [
    "IMAGE_SCHEMA_VERSION",
    "pyramid_factors",
    "write_image_group",
    "write_label_group",
    "read_image_group",
    "image_group_info",
    "image_levels",
]

IMAGE_SCHEMA_VERSION = 1
MIN_SIDE = 256
CHUNK_2D = 1024
CHUNK_3D = 256
#: Spatial chunks per shard side for big arrays (a 2-D shard is up to 4096^2 px, at most 128 MiB).
SHARD_FACTOR = 4
SHARD_BYTES = 128 * 2**20


def pyramid_factors(shape: Mapping[str, int], min_side: int = MIN_SIDE, max_levels: int = 12) -> list[dict[str, int]]:
    """Downsampling factor per spatial axis for each pyramid level (level 0 is all ones).

    Each further level halves every spatial axis still longer than ``min_side`` pixels; the
    pyramid stops when none is.
    """
    cur = dict(shape)
    fac = {d: 1 for d in shape}
    out = [dict(fac)]
    while len(out) < max_levels:
        grow = [d for d in cur if cur[d] > min_side and cur[d] >= 2]
        if not grow:
            break
        for d in grow:
            cur[d] //= 2
            fac[d] *= 2
        out.append(dict(fac))
    return out


def _chunks_for(dims: Sequence[str], shape: Sequence[int]) -> tuple[int, ...]:
    n_sp = sum(d in SPATIAL_DIMS for d in dims)
    side = CHUNK_2D if n_sp <= 2 else CHUNK_3D
    out = []
    for d, n in zip(dims, shape):
        if d in SPATIAL_DIMS:
            out.append(max(1, min(int(n), side)))
        else:
            out.append(1)
    return tuple(out)


def _shards_for(dims: Sequence[str], shape: Sequence[int], chunks: Sequence[int], itemsize: int) -> tuple[int, ...] | None:
    """Shard shape (up to ``SHARD_FACTOR`` chunks per spatial axis, at most ``SHARD_BYTES``) for
    arrays with a spatial side longer than a shard; None (no sharding) where it would not save
    files. A shard is what one dask task holds in memory while writing."""
    for f in range(SHARD_FACTOR, 1, -1):
        if not any(d in SPATIAL_DIMS and n > f * c for d, n, c in zip(dims, shape, chunks)):
            continue
        shard = tuple(
            int(min(-(-n // c), f) * c) if d in SPATIAL_DIMS and n > c else int(c) for d, n, c in zip(dims, shape, chunks)
        )
        if int(np.prod(shard)) * itemsize <= SHARD_BYTES:
            return shard
    return None


def _axis_json(d: str) -> dict:
    if d == "c":
        return {"name": "c", "type": "channel"}
    return {"name": d, "type": "space", "unit": "nanometer"}


def _level_transform(path: str, dims, scale0: Mapping[str, float], origin0: Mapping[str, float], factors: Mapping[str, int]) -> dict:
    scale = [float(scale0[d] * factors[d]) if d in scale0 else 1.0 for d in dims]
    trans = [float(origin0[d] + (factors[d] - 1) * scale0[d] / 2.0) if d in scale0 else 0.0 for d in dims]
    return {
        "type": "sequence",
        "input": {"path": path},
        "output": {"name": "physical"},
        "transformations": [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": trans},
        ],
    }


def _downsample(arr, dims, factors_step: Mapping[str, int], method: str):
    """Halve the axes in ``factors_step`` (value 2) by block mean; result keeps the dtype.
    (Labels are not averaged: see :func:`_subsample_centres`.)"""
    import dask.array as da

    if method != "mean":
        raise ValueError(f"unknown downsampling method {method!r}")
    axes = {i: 2 for i, d in enumerate(dims) if factors_step.get(d, 1) == 2}
    if not axes:
        return arr
    # even chunks along downsampled axes so blocks never straddle chunk borders
    chunks = {}
    for i in axes:
        c = arr.chunks[i][0]
        chunks[i] = max(2, c - (c % 2))
    arr = arr.rechunk(chunks)
    dtype = arr.dtype
    out = da.coarsen(np.mean, arr.astype(np.float64), axes, trim_excess=True)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = da.clip(da.round(out), info.min, info.max)
    elif dtype == bool:
        out = out >= 0.5
    return out.astype(dtype)


def _subsample_centres(arr, dims, factors: Mapping[str, int]):
    """Level-0 pixels ``f*j + f//2`` along each axis with factor ``f`` (labels: no averaging).

    Keeps ``n // f`` pixels, the shape the block mean gives, and each lies within half a level-0
    pixel of its block centre ``f*j + (f - 1)/2``.
    """
    sl = tuple(
        slice(f // 2, (n // f) * f, f) if (f := int(factors.get(d, 1))) > 1 else slice(None)
        for d, n in zip(dims, arr.shape)
    )
    return arr[sl]


def _write_progress(desc: str, n_tasks: int):
    """A tqdm bar over the dask tasks of a big level write, on a terminal only."""
    import contextlib
    import sys

    if n_tasks < 16 or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from tqdm.dask import TqdmCallback

    return TqdmCallback(desc=f"writing {desc}", leave=False)


def _write_levels(group_path: Path, data, dims, scale0, origin0, method: str, min_side: int, level_factors=None):
    """Write s0..sN under ``group_path`` and return (datasets JSON, factors per level)."""
    import dask.array as da
    import zarr

    spatial_shape = {d: int(n) for d, n in zip(dims, data.shape) if d in SPATIAL_DIMS}
    factors = level_factors or pyramid_factors(spatial_shape, min_side=min_side)
    datasets = []
    prev = None
    base = None
    compressor = zarr.codecs.ZstdCodec(level=3)
    for lev, fac in enumerate(factors):
        path = f"s{lev}"
        if lev == 0:
            arr = data
        elif method == "nearest":
            # from level 0, the pixel nearest the centre of each f x f block (index f*j + f//2):
            # striding level by level would pick the block's first pixel, (f - 1)/2 level-0 pixels
            # away from the centre the level's translation states
            arr = _subsample_centres(base, dims, fac)
        else:
            step = {d: fac[d] // factors[lev - 1][d] for d in fac}
            arr = _downsample(prev, dims, step, method)
        chunks = _chunks_for(dims, arr.shape)
        shards = _shards_for(dims, arr.shape, chunks, arr.dtype.itemsize)
        z = zarr.create_array(
            store=str(group_path / path),
            shape=tuple(int(n) for n in arr.shape),
            chunks=chunks,
            shards=shards,
            dtype=arr.dtype,
            compressors=compressor,
            dimension_names=tuple(dims),
            fill_value=0 if arr.dtype != bool else False,
            zarr_format=3,
        )
        # one dask task per stored unit (shard or chunk): no two tasks write the same file
        arr = arr.rechunk(shards or chunks)
        with _write_progress(f"{group_path.name}/{path}", arr.npartitions):
            da.store(arr, z, lock=False, compute=True)
        # the next level reads this one back lazily: never more than a few chunks in memory
        prev = da.from_zarr(z)
        if lev == 0:
            base = prev
        datasets.append({"path": path, "coordinateTransformations": [_level_transform(path, dims, scale0, origin0, fac)]})
    return datasets, factors


def _group_json(attrs: dict) -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": attrs}


def _write_group_json(path: Path, attrs: dict) -> None:
    import json

    path.mkdir(parents=True, exist_ok=True)
    with open(path / "zarr.json", "w", encoding="utf-8") as fh:
        json.dump(_group_json(to_jsonable(attrs)), fh, indent=2, allow_nan=False)


def _image_parts(img, name: str):
    """dims, dask data, scale0, origin0 from an Image DataArray (already validated)."""
    import dask.array as da

    from ..elements import origin, pixel_size

    dims = tuple(img.dims)
    data = img.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=_chunks_for(dims, img.shape))
    n_sp = sum(d in SPATIAL_DIMS for d in dims)
    if n_sp not in (2, 3):
        raise ElementError(
            f"an OME-Zarr image needs 2 or 3 spatial dims, got dims {dims}", path=name, field="dims"
        )
    return dims, data, pixel_size(img), origin(img)


def write_image_group(path: Path, img, name: str, *, min_side: int = MIN_SIDE) -> dict:
    """Write an Image DataArray as an NGFF 0.6 multiscale group at ``path`` (a new folder).

    Returns the summary stored in the scene's root metadata (kind, ndim, shape, pixel size...).
    """
    dims, data, scale0, origin0 = _image_parts(img, name)
    if data.dtype == object or data.dtype.kind not in "biuf":
        raise ElementError(f"unsupported pixel dtype {data.dtype}", path=name, field="dtype")
    path.mkdir(parents=True)
    datasets, factors = _write_levels(path, data, dims, scale0, origin0, "mean", min_side)
    channel_names = [str(c) for c in img.coords["c"].values] if "c" in dims and "c" in img.coords else None
    attrs = dict(img.attrs)
    for k in ("pixel_size_nm",):
        attrs.pop(k, None)
    meta = {
        "kind": "image",
        "schema_version": IMAGE_SCHEMA_VERSION,
        "modality": str(img.attrs.get("modality", "lm")),
        "value_unit": str(img.attrs.get("value_unit", "") or ""),
        "channel_names": channel_names,
        "dims": list(dims),
        "level_factors": factors,
        "downsampling": "mean",
        "attrs": attrs,
    }
    ome = {
        "version": "0.6",
        "multiscales": [
            {
                "name": name,
                "coordinateSystems": [{"name": "physical", "axes": [_axis_json(d) for d in dims]}],
                "datasets": datasets,
                "type": "mean",
                "metadata": {"method": "block mean (correlate)", "kwargs": {}},
            }
        ],
    }
    _write_group_json(path, {"ome": ome, "correlate": meta})
    return {
        "dims": list(dims),
        "shape": [int(n) for n in data.shape],
        "dtype": str(data.dtype),
        "pixel_size_nm": {d: float(v) for d, v in scale0.items()},
        "origin_nm": {d: float(v) for d, v in origin0.items()},
        "n_levels": len(factors),
        "modality": meta["modality"],
        "value_unit": meta["value_unit"],
        "channel_names": channel_names,
        "ndim": sum(d in SPATIAL_DIMS for d in dims),
    }


def write_label_group(path: Path, labels, image_meta: dict, label_name: str, image_name: str) -> dict:
    """Write a label image (integer array on the image's spatial grid) as an NGFF 0.6
    image-label multiscale at ``path`` (a new folder), with the image's pyramid factors."""
    import dask.array as da

    sp_dims = [d for d in image_meta["dims"] if d in SPATIAL_DIMS]
    sp_shape = [n for d, n in zip(image_meta["dims"], image_meta["shape"]) if d in SPATIAL_DIMS]
    xr_like = hasattr(labels, "dims") and hasattr(labels, "coords")
    if xr_like:
        if tuple(labels.dims) != tuple(sp_dims):
            raise ElementError(
                f"label dims {tuple(labels.dims)} do not match the image's spatial dims {tuple(sp_dims)}",
                path=f"{image_name}/labels/{label_name}",
                field="dims",
            )
        data = labels.data
    else:
        data = labels
    if not isinstance(data, da.Array):
        data = np.asarray(data)
        data = da.from_array(data, chunks=_chunks_for(sp_dims, data.shape))
    if list(data.shape) != list(sp_shape):
        raise ElementError(
            f"label array shape {tuple(data.shape)} does not match the image's spatial shape {tuple(sp_shape)}",
            path=f"{image_name}/labels/{label_name}",
            field="shape",
        )
    if data.dtype.kind not in "iu":
        if data.dtype.kind == "b":
            data = data.astype(np.uint8)
        else:
            raise ElementError(
                f"labels must be integers, got dtype {data.dtype}", path=f"{image_name}/labels/{label_name}", field="dtype"
            )
    scale0 = image_meta["pixel_size_nm"]
    origin0 = image_meta["origin_nm"]
    factors = [{d: f[d] for d in sp_dims} for f in image_meta["level_factors"]]
    path.mkdir(parents=True)
    datasets, _ = _write_levels(path, data, sp_dims, scale0, origin0, "nearest", MIN_SIDE, level_factors=factors)
    ome = {
        "version": "0.6",
        "image-label": {"version": "0.6", "source": {"image": "../../"}},
        "multiscales": [
            {
                "name": label_name,
                "coordinateSystems": [{"name": "physical", "axes": [_axis_json(d) for d in sp_dims]}],
                "datasets": datasets,
                "type": "nearest",
            }
        ],
    }
    meta = {"kind": "labels", "schema_version": IMAGE_SCHEMA_VERSION, "image": image_name, "level_factors": factors}
    _write_group_json(path, {"ome": ome, "correlate": meta})
    return {"dtype": str(data.dtype), "shape": [int(n) for n in data.shape]}


def write_labels_index(path: Path, names: list[str]) -> None:
    """The ``labels/zarr.json`` listing the label images (with ``ome.version``)."""
    _write_group_json(path, {"ome": {"version": "0.6", "labels": list(names)}})


def _read_group_attrs(path: Path) -> dict:
    from ._store_remote import read_json_any

    try:
        return from_jsonable(read_json_any(path / "zarr.json").get("attributes", {}))
    except FileNotFoundError as exc:
        raise StoreError("image group has no zarr.json", path=path) from exc


def image_group_info(path: Path) -> dict:
    """The ``ome`` and ``correlate`` attributes of an image or label group."""
    return _read_group_attrs(path)


def read_image_group(path: Path, name: str, level: int = 0, *, labels: bool = False):
    """Open level ``level`` of an image (or label) group lazily as an Image DataArray."""
    import dask.array as da
    import xarray as xr

    attrs = _read_group_attrs(path)
    try:
        ms = attrs["ome"]["multiscales"][0]
    except (KeyError, IndexError) as exc:
        raise StoreError("no ome.multiscales metadata", path=path, field="ome.multiscales") from exc
    datasets = ms["datasets"]
    if not -len(datasets) <= level < len(datasets):
        raise StoreError(
            f"level {level} does not exist; the pyramid has levels 0..{len(datasets) - 1}", path=path, field="level"
        )
    ds = datasets[level]
    axes = [a["name"] for a in ms["coordinateSystems"][0]["axes"]]
    scale, trans = _scale_translation(ds["coordinateTransformations"][0], len(axes))
    from ._store_remote import zarr_store

    data = da.from_zarr(zarr_store(path / ds["path"]))
    meta = attrs.get("correlate", {})
    coords: dict[str, Any] = {}
    for i, d in enumerate(axes):
        if d in SPATIAL_DIMS:
            coords[d] = (d, trans[i] + scale[i] * np.arange(data.shape[i], dtype=float), {"units": "nm"})
    if "c" in axes and meta.get("channel_names"):
        coords["c"] = ("c", list(meta["channel_names"]))
    out_attrs = dict(meta.get("attrs", {})) if not labels else {}
    if not labels:
        out_attrs["modality"] = meta.get("modality", out_attrs.get("modality", "lm"))
        out_attrs["value_unit"] = meta.get("value_unit", out_attrs.get("value_unit", ""))
    else:
        out_attrs["kind"] = "labels"
        out_attrs["modality"] = "labels"
    out_attrs["pixel_size_nm"] = {d: float(scale[i]) for i, d in enumerate(axes) if d in SPATIAL_DIMS}
    if level:
        out_attrs["pyramid_level"] = int(level if level >= 0 else len(datasets) + level)
    return xr.DataArray(data, dims=tuple(axes), coords=coords, name=name, attrs=out_attrs)


def _scale_translation(t: dict, n: int) -> tuple[list[float], list[float]]:
    scale = [1.0] * n
    trans = [0.0] * n
    parts = t["transformations"] if t.get("type") == "sequence" else [t]
    for p in parts:
        if p["type"] == "scale":
            scale = [float(v) for v in p["scale"]]
        elif p["type"] == "translation":
            trans = [float(v) for v in p["translation"]]
    return scale, trans


def image_levels(path: Path) -> list[dict]:
    """The pyramid of the image group at ``path``: per level ``{"level", "path", "shape",
    "pixel_size_nm", "origin_nm"}`` (nm, per spatial dim), finest first."""
    from ._store_remote import read_json_any

    attrs = _read_group_attrs(path)
    ms = attrs["ome"]["multiscales"][0]
    axes = [a["name"] for a in ms["coordinateSystems"][0]["axes"]]
    out = []
    for i, ds in enumerate(ms["datasets"]):
        if not isinstance(ds.get("path"), str) or "/" in ds["path"] or ds["path"] in ("", ".", ".."):
            raise StoreError(f"dataset path {ds.get('path')!r} is not a plain folder name", path=path,
                             field="ome.multiscales.datasets")
        scale, trans = _scale_translation(ds["coordinateTransformations"][0], len(axes))
        shape = read_json_any(path / ds["path"] / "zarr.json")["shape"]
        out.append({
            "level": i,
            "path": ds["path"],
            "shape": dict(zip(axes, shape)),
            "pixel_size_nm": {d: scale[k] for k, d in enumerate(axes) if d in SPATIAL_DIMS},
            "origin_nm": {d: trans[k] for k, d in enumerate(axes) if d in SPATIAL_DIMS},
        })
    return out
