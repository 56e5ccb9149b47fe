"""Element types: images, localizations, landmarks and per-particle tables.

Pure data and validation rules; no file I/O.

* **Image**: a dask-backed :class:`xarray.DataArray` with dims a subset of ``(c, z, y, x)`` and
  coordinates in nm at pixel centres (``coord[i] = origin + pixel_size * i``).
* **Localizations**: a :class:`pandas.DataFrame` with canonical columns ``x, y[, z]`` (nm),
  ``frame`` (int, 0-based), ``channel``, ``photons``, ``background``, ``precision`` (or
  ``precision_x/_y/_z``, nm) and ``sigma`` (nm); other source columns keep their names.
* **Landmarks**: paired fiducial positions in two coordinate systems with per-point covariances.
* **Table**: a per-particle DataFrame keyed by ``particle_id``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._landmarks import Landmarks
from .errors import ElementError

__all__ = [
    "crop_image",
    "MODALITIES",
    "SPATIAL_DIMS",
    "IMAGE_DIMS",
    "LOCALIZATION_COLUMNS",
    "make_image",
    "validate_image",
    "pixel_size",
    "origin",
    "make_localizations",
    "validate_localizations",
    "spatial_columns",
    "Landmarks",
    "make_table",
    "validate_table",
    "element_kind",
]

MODALITIES: tuple[str, ...] = ("smlm", "sim", "sted", "lm", "em", "afm")
SPATIAL_DIMS: tuple[str, ...] = ("z", "y", "x")
IMAGE_DIMS: tuple[str, ...] = ("c", "z", "y", "x")

#: Canonical localization columns, their dtype kind and unit.
LOCALIZATION_COLUMNS: dict[str, tuple[str, str]] = {
    "x": ("f", "nm"),
    "y": ("f", "nm"),
    "z": ("f", "nm"),
    "frame": ("i", "frame (0-based)"),
    "channel": ("any", ""),
    "photons": ("f", "photon"),
    "background": ("f", "photon"),
    "precision": ("f", "nm"),
    "precision_x": ("f", "nm"),
    "precision_y": ("f", "nm"),
    "precision_z": ("f", "nm"),
    "sigma": ("f", "nm"),
}


def _import_xarray():
    import xarray as xr

    return xr


def make_image(
    data: Any,
    *,
    pixel_size_nm: float | Sequence[float] | Mapping[str, float],
    dims: Sequence[str] | str | None = None,
    origin_nm: float | Sequence[float] | Mapping[str, float] | None = None,
    modality: str = "lm",
    channel_names: Sequence[str] | None = None,
    value_unit: str | None = None,
    name: str | None = None,
    source: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunks: Any = "auto",
):
    """Build an Image element.

    Parameters
    ----------
    data
        numpy or dask array.
    pixel_size_nm
        Pixel size in nm: one number for every spatial axis, a sequence in the order of the spatial
        dims of ``dims``, or a mapping ``{"y": .., "x": ..}``.
    dims
        Dimension names, a subset of ``("c", "z", "y", "x")`` in that order. Default: the last
        ``data.ndim`` of ``("c", "z", "y", "x")`` for 2-D/3-D data (``("y", "x")`` for 2-D).
    origin_nm
        Position (nm) of pixel index 0 (its centre) along each spatial dim; default 0.
    modality
        One of :data:`MODALITIES`.
    channel_names
        Names of the ``c`` axis entries.
    value_unit
        Unit of the pixel values (``"nm"`` for AFM heights, ``"counts"``...).

    Returns
    -------
    xarray.DataArray
        Dask-backed, with coordinates in nm at pixel centres.
    """
    import dask.array as da

    xr = _import_xarray()
    if isinstance(dims, str):
        dims = tuple(dims)
    ndim = np.ndim(data) if not hasattr(data, "ndim") else data.ndim
    if dims is None:
        if ndim == 2:
            dims = ("y", "x")
        elif ndim == 3:
            dims = ("z", "y", "x")
        elif ndim == 4:
            dims = ("c", "z", "y", "x")
        else:
            raise ElementError(f"cannot infer dims for a {ndim}-D array; pass dims=", field=name)
    dims = tuple(dims)
    if len(dims) != ndim:
        raise ElementError(
            f"dims {dims} do not match the array's {ndim} dimensions (shape {tuple(data.shape)})",
            field=name,
        )
    order = [IMAGE_DIMS.index(d) if d in IMAGE_DIMS else -1 for d in dims]
    if -1 in order or order != sorted(order) or len(set(dims)) != len(dims):
        raise ElementError(
            f"dims {dims} must be a subset of ('c', 'z', 'y', 'x') in that order", field=name
        )
    spatial = [d for d in dims if d in SPATIAL_DIMS]
    if not spatial:
        raise ElementError("an image needs at least one spatial dim (z, y or x)", field=name)
    px = _per_axis(pixel_size_nm, spatial, "pixel_size_nm", name)
    org = _per_axis(0.0 if origin_nm is None else origin_nm, spatial, "origin_nm", name)
    for d in spatial:
        if not np.isfinite(px[d]) or px[d] <= 0:
            raise ElementError(
                f"pixel size along {d} must be a positive finite number of nm, got {px[d]!r}",
                field=name,
            )
        if not np.isfinite(org[d]):
            raise ElementError(f"origin along {d} must be finite, got {org[d]!r}", field=name)
    if modality not in MODALITIES:
        raise ElementError(f"unknown modality {modality!r}; expected one of {MODALITIES}", field=name)
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=chunks)
    coords: dict[str, Any] = {}
    for axis, d in enumerate(dims):
        n = data.shape[axis]
        if d in SPATIAL_DIMS:
            coords[d] = (d, org[d] + px[d] * np.arange(n, dtype=float), {"units": "nm"})
    if "c" in dims:
        n = data.shape[dims.index("c")]
        if channel_names is None:
            channel_names = [f"c{i}" for i in range(n)]
        if len(channel_names) != n:
            raise ElementError(
                f"{len(channel_names)} channel names for a c axis of length {n}", field=name
            )
        coords["c"] = ("c", [str(c) for c in channel_names])
    a: dict[str, Any] = {
        "modality": modality,
        "pixel_size_nm": {d: float(px[d]) for d in spatial},
        "value_unit": value_unit or "",
    }
    if source is not None:
        a["source"] = str(source)
    if attrs:
        a.update(dict(attrs))
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs=a)


def _per_axis(value, spatial: list[str], what: str, name: str | None) -> dict[str, float]:
    if isinstance(value, Mapping):
        missing = [d for d in spatial if d not in value]
        if missing:
            raise ElementError(f"{what} lacks axes {missing}", field=name)
        return {d: float(value[d]) for d in spatial}
    if np.ndim(value) == 0:
        return {d: float(value) for d in spatial}
    seq = [float(v) for v in value]
    if len(seq) != len(spatial):
        raise ElementError(
            f"{what} has {len(seq)} values for spatial axes {spatial}", field=name
        )
    return dict(zip(spatial, seq))


def validate_image(img, *, name: str | None = None):
    """Check that ``img`` is a well-formed Image element; return it unchanged.

    Raises
    ------
    ElementError
        If it is not a DataArray with nm coordinates on (z, y, x) dims at a regular spacing.
    """
    xr = _import_xarray()
    if not isinstance(img, xr.DataArray):
        raise ElementError(f"expected an xarray.DataArray image, got {type(img).__name__}", field=name)
    dims = tuple(img.dims)
    order = [IMAGE_DIMS.index(d) if d in IMAGE_DIMS else -1 for d in dims]
    if -1 in order or order != sorted(order):
        raise ElementError(f"dims {dims} must be a subset of ('c','z','y','x') in order", field=name)
    for d in dims:
        if d == "c":
            continue
        if d not in img.coords:
            raise ElementError(f"spatial dim {d!r} has no nm coordinate", field=name)
        c = np.asarray(img.coords[d].values, dtype=float)
        if not np.all(np.isfinite(c)):
            raise ElementError(f"coordinate {d!r} has non-finite values", field=name)
        if c.size > 1:
            step = np.diff(c)
            if not np.allclose(step, step[0], rtol=1e-6, atol=1e-9) or step[0] <= 0:
                raise ElementError(f"coordinate {d!r} is not regular and increasing", field=name)
    modality = img.attrs.get("modality")
    if modality not in MODALITIES:
        raise ElementError(f"attrs['modality'] is {modality!r}; expected one of {MODALITIES}", field=name)
    return img


def pixel_size(img) -> dict[str, float]:
    """Pixel size (nm) per spatial dim of an Image, from its coordinates (or attrs if length 1)."""
    out = {}
    for d in img.dims:
        if d == "c":
            continue
        c = np.asarray(img.coords[d].values, dtype=float)
        if c.size > 1:
            out[d] = float(c[1] - c[0])
        else:
            out[d] = float(img.attrs.get("pixel_size_nm", {}).get(d, 1.0))
    return out


def origin(img) -> dict[str, float]:
    """Position (nm) of the centre of pixel index 0 per spatial dim of an Image."""
    return {d: float(img.coords[d].values[0]) for d in img.dims if d != "c"}


def crop_image(img, bbox: Sequence[float] | None):
    """The pixels of an Image whose centres lie in ``bbox = (x0, y0, x1, y1)`` (nm, the image's
    own frame; lazy, a view); ``None``: the image. A box that misses the image raises."""
    if bbox is None:
        return img
    if len(bbox) != 4 or not all(np.isfinite(np.asarray(bbox, float))):
        raise ElementError(f"bbox must be four finite numbers (x0, y0, x1, y1) nm, got {bbox!r}", field="bbox")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    sel = {}
    for d, lo, hi in (("x", min(x0, x1), max(x0, x1)), ("y", min(y0, y1), max(y0, y1))):
        c = np.asarray(img.coords[d].values, float)
        idx = np.nonzero((c >= lo) & (c <= hi))[0]
        if idx.size == 0:
            raise ElementError(f"bbox {tuple(bbox)} holds no pixel of the image ({d} from {c.min():g} to "
                               f"{c.max():g} nm)", field="bbox")
        sel[d] = slice(int(idx[0]), int(idx[-1]) + 1)
    return img.isel(sel)


def spatial_columns(df: pd.DataFrame) -> list[str]:
    """The coordinate columns of a localization table: ``['x', 'y']`` or ``['x', 'y', 'z']``."""
    return ["x", "y", "z"] if "z" in df.columns else ["x", "y"]


def make_localizations(
    df: pd.DataFrame,
    *,
    source_format: str = "unknown",
    source: str | None = None,
    camera_pixel_size_nm: float | Sequence[float] | None = None,
    frame_base: int | None = None,
    coordinate_system: str | None = None,
    units: Mapping[str, str] | None = None,
    notes: Iterable[str] = (),
    name: str | None = None,
) -> pd.DataFrame:
    """Build a Localizations element from a DataFrame already in canonical columns and nm.

    Parameters
    ----------
    df
        Table with at least ``x`` and ``y`` in nm; ``frame`` must already be 0-based.
    source_format
        Name of the format or software that wrote the data (``"thunderstorm"``, ``"simulated"``).
    camera_pixel_size_nm
        Camera pixel size (nm) used to convert pixel coordinates, if any.
    frame_base
        Frame numbering of the *source file* (0 or 1); ``frame`` in ``df`` is always 0-based.
    units
        Units of columns beyond the canonical ones.
    notes
        Assumptions the reader made, to show the user.

    Returns
    -------
    pandas.DataFrame
        The validated table with ``attrs`` recording its provenance.
    """
    out = df.reset_index(drop=True)
    if "frame" in out.columns:
        fr = out["frame"]
        numeric = pd.api.types.is_numeric_dtype(fr) and not pd.api.types.is_bool_dtype(fr)
        values = fr.to_numpy(dtype=float, na_value=np.nan) if numeric else None
        bad = None if values is None else ~np.isfinite(values) | (values != np.round(values))
        if values is None or bad.any():
            where = "" if values is None else f"; first bad value {values[np.flatnonzero(bad)[0]]!r}"
            raise ElementError(
                f"frame numbers must be finite whole numbers, found dtype {fr.dtype}{where}",
                path=source if source is not None else name,
                field="frame",
            )
        out["frame"] = values.astype(np.int64)
    attrs: dict[str, Any] = {
        "kind": "localizations",
        "source_format": source_format,
        "units": {c: LOCALIZATION_COLUMNS[c][1] for c in out.columns if c in LOCALIZATION_COLUMNS}
        | dict(units or {}),
        "notes": list(notes),
    }
    if source is not None:
        attrs["source"] = str(source)
    if camera_pixel_size_nm is not None:
        attrs["camera_pixel_size_nm"] = (
            float(camera_pixel_size_nm)
            if np.ndim(camera_pixel_size_nm) == 0
            else [float(v) for v in camera_pixel_size_nm]
        )
    if frame_base is not None:
        attrs["frame_base"] = int(frame_base)
    if coordinate_system is not None:
        attrs["coordinate_system"] = coordinate_system
    out.attrs = attrs
    return validate_localizations(out, path=source, name=name)


def validate_localizations(
    df: pd.DataFrame, *, path: str | None = None, name: str | None = None
) -> pd.DataFrame:
    """Check a Localizations table: x, y (and z) present, numeric and finite; frame integer >= 0.

    Raises
    ------
    ElementError
        Naming the column and the problem (and ``path`` if given).
    """
    where = path if path is not None else name
    if not isinstance(df, pd.DataFrame):
        raise ElementError(f"expected a pandas DataFrame, got {type(df).__name__}", path=where)
    for col in ("x", "y"):
        if col not in df.columns:
            raise ElementError(
                f"missing required column; expected x and y in nm, found {list(df.columns)}",
                path=where,
                field=col,
            )
    for col in spatial_columns(df) + [c for c in ("precision", "precision_x", "precision_y", "precision_z", "sigma") if c in df.columns]:
        values = df[col]
        if not pd.api.types.is_numeric_dtype(values):
            raise ElementError(f"must be numeric (nm), found dtype {values.dtype}", path=where, field=col)
    for col in spatial_columns(df):
        arr = df[col].to_numpy(dtype=float)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ElementError(
                f"{int(bad.sum())} non-finite coordinate(s), first at row {i} ({arr[i]!r}); "
                "expected finite nm values",
                path=where,
                field=col,
            )
    if "frame" in df.columns:
        fr = df["frame"]
        if not pd.api.types.is_integer_dtype(fr):
            raise ElementError(f"must be integer, found dtype {fr.dtype}", path=where, field="frame")
        if len(fr) and fr.min() < 0:
            raise ElementError("frames must be 0-based (>= 0)", path=where, field="frame")
    return df


def make_table(df: pd.DataFrame, *, label_image: str | None = None, coordinate_system: str | None = None) -> pd.DataFrame:
    """Build a per-particle Table keyed by ``particle_id`` (unique integers)."""
    out = df.reset_index(drop=True)
    out.attrs = dict(df.attrs) | {"kind": "table"}
    if label_image is not None:
        out.attrs["label_image"] = label_image
    if coordinate_system is not None:
        out.attrs["coordinate_system"] = coordinate_system
    return validate_table(out)


def validate_table(df: pd.DataFrame, *, name: str | None = None) -> pd.DataFrame:
    """Check a per-particle table: a unique integer ``particle_id`` column."""
    if "particle_id" not in df.columns:
        raise ElementError("a particle table needs a 'particle_id' column", field=name)
    if not pd.api.types.is_integer_dtype(df["particle_id"]):
        raise ElementError("particle_id must be integer", field=name)
    if df["particle_id"].duplicated().any():
        raise ElementError("particle_id values must be unique", field=name)
    return df


def element_kind(obj) -> str:
    """``'image'``, ``'localizations'``, ``'landmarks'`` or ``'table'`` for an element object."""
    xr = _import_xarray()
    if isinstance(obj, xr.DataArray):
        return "image"
    if isinstance(obj, Landmarks):
        return "landmarks"
    if isinstance(obj, pd.DataFrame):
        kind = obj.attrs.get("kind")
        if kind in ("localizations", "table", "landmarks"):
            return kind
        if "particle_id" in obj.columns and "x" in obj.columns and "frame" not in obj.columns:
            return "table"
        return "localizations"
    raise ElementError(f"not an element: {type(obj).__name__}")
