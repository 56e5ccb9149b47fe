"""Helpers shared by the image readers (EM, LM, AFM): overrides, size checks, building the Image.

Private: the reader modules ``em_*``, ``lm_*`` and ``afm_*`` use these so that every image reader
treats ``pixel_size_nm=``, ``modality=``, ``channel=``, ``series=`` and ``frame=`` the same way and
records what it assumed in ``attrs["notes"]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...elements import MODALITIES, make_image
from ...errors import CorrelateError, FormatError, UnitError

__all__ = [
    "ImageOverrides",
    "parse_overrides",
    "require_bytes",
    "file_size",
    "build_image",
    "uncalibrated_error",
    "pick_index",
    "to_py",
    "read_head",
    "optional_import",
    "AxisLayout",
]

#: Overrides every image reader accepts.
_KNOWN = ("pixel_size_nm", "modality", "channel", "series", "frame", "name")


class ImageOverrides:
    """User overrides for one read, validated once.

    Attributes
    ----------
    pixel_size_nm
        ``None``, a number (every spatial axis), a sequence in (z,) y, x order or a mapping.
    modality
        ``None`` or one of :data:`correlate.elements.MODALITIES`.
    channel, series, frame
        Selection of one image / channel / time point where a file holds several; ``None`` or an
        int index or a name.
    """

    def __init__(self, path: Path, values: Mapping[str, Any], extra: Sequence[str] = ()):
        unknown = sorted(set(values) - set(_KNOWN) - set(extra))
        if unknown:
            raise CorrelateError(
                f"unknown reader option(s) {unknown}; image readers accept "
                + ", ".join(list(_KNOWN) + list(extra)),
                path=path,
            )
        self.path = path
        self.pixel_size_nm = values.get("pixel_size_nm")
        self.modality = values.get("modality")
        self.channel = values.get("channel")
        self.series = values.get("series")
        self.frame = values.get("frame")
        self.name = values.get("name")
        self.extra = {k: values[k] for k in extra if k in values}
        if self.modality is not None and self.modality not in MODALITIES:
            raise CorrelateError(
                f"unknown modality {self.modality!r}; expected one of {MODALITIES}",
                path=path,
                field="modality",
            )
        if self.pixel_size_nm is not None:
            try:
                vals = [
                    float(v)
                    for v in (
                        self.pixel_size_nm.values()
                        if isinstance(self.pixel_size_nm, Mapping)
                        else np.ravel(np.asarray(self.pixel_size_nm, dtype=float))
                    )
                ]
            except (TypeError, ValueError):
                vals = []
            if not vals or not all(np.isfinite(v) and v > 0 for v in vals):
                raise UnitError(
                    f"pixel_size_nm override must be positive finite nm, got {self.pixel_size_nm!r}",
                    path=path,
                    field="pixel_size_nm",
                )


def parse_overrides(path: Path, overrides: Mapping[str, Any], extra: Sequence[str] = ()) -> ImageOverrides:
    """Validate the ``**overrides`` a reader got; unknown keys raise :class:`CorrelateError`."""
    return ImageOverrides(Path(path), overrides, extra)


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes; :class:`FormatError` if it is empty."""
    n = os.path.getsize(path)
    if n == 0:
        raise FormatError("file is empty (0 bytes)", path=path)
    return n


def require_bytes(path: Path, needed: int, what: str, size: int | None = None) -> None:
    """Raise :class:`FormatError` unless ``path`` holds at least ``needed`` bytes for ``what``."""
    size = file_size(path) if size is None else size
    if needed > size:
        raise FormatError(
            f"file is truncated: {what} needs {needed} bytes but the file has {size}",
            path=path,
        )


def read_head(path: Path, n: int, needed: int = 0, what: str = "the header") -> tuple[int, bytes]:
    """File size and its first ``n`` bytes (at least ``needed`` bytes must exist: ``what``)."""
    size = file_size(path)
    if needed:
        require_bytes(path, needed, what, size)
    with open(path, "rb") as fh:
        return size, fh.read(min(size, n))


@dataclass
class AxisLayout:
    """How a vendor file's array axes map onto an Image (ND2, OBF/MSR readers).

    Attributes
    ----------
    index
        One entry per file axis (in ``sizes`` order): ``slice(None)`` to keep, an int to select.
    dims
        Our dims of the kept axes, in file order (``c``, ``z``, ``y``, ``x``).
    order
        Transpose of the kept axes into ``(c, z, y, x)`` order.
    pixel_size_nm
        Per spatial dim in nm (calibrated axes only).
    origin_nm
        Position (nm) of the first pixel centre per spatial dim, where the file gives one.
    channel_names
        Names along ``c`` (``None`` when there is no ``c`` dim).
    notes, raw, uncalibrated_reason
        For ``build_image``.
    """

    index: list = field(default_factory=list)
    dims: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    pixel_size_nm: dict[str, float] = field(default_factory=dict)
    origin_nm: dict[str, float] = field(default_factory=dict)
    channel_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    uncalibrated_reason: str | None = None

    @property
    def out_dims(self) -> tuple[str, ...]:
        return tuple(self.dims[i] for i in self.order)


def optional_import(module: str, path: Path, *, what: str, package: str, extra: str):
    """Import an optional reader dependency, or raise a FormatError naming the file and the
    exact install command (``pip install PACKAGE`` or ``pip install correlate[EXTRA]``)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FormatError(
            f"reading {what} needs the optional package {package}; install it with `pip install {package}` "
            f"(or `pip install correlate[{extra}]`)",
            path=path,
        ) from exc


def uncalibrated_error(path: Path, why: str) -> UnitError:
    """The error for a file without a usable pixel size when no override was given."""
    return UnitError(
        f"{why}; the pixel size is unknown. Pass it explicitly: "
        "pixel_size_nm=<nm> (Python) or --pixel-size <nm> (command line)",
        path=path,
        field="pixel_size",
    )


def pick_index(path: Path, value: Any, names: Sequence[str], what: str) -> int:
    """Resolve a ``series=``/``channel=``/``frame=`` override (index or name) to an index."""
    n = len(names)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        i = int(value)
        if -n <= i < n:
            return i % n
        raise CorrelateError(f"{what} index {i} out of range; the file has {n}: {list(names)}", path=path, field=what)
    if isinstance(value, str):
        if value in names:
            return list(names).index(value)
        if value.lstrip("-").isdigit():
            return pick_index(path, int(value), names, what)
        raise CorrelateError(f"no {what} named {value!r}; the file has {list(names)}", path=path, field=what)
    raise CorrelateError(f"{what} must be an index or a name, got {value!r}", path=path, field=what)


def dask_name(prefix: str, path: Path, *extra: Any) -> str:
    """A dask array name unique to this file's path, size and modification time (and ``extra``).

    Two different files must never share a name: dask would treat their chunks as the same.
    """
    from dask.base import tokenize

    st = os.stat(path)
    return f"{prefix}-{Path(path).name}-{tokenize(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, *extra)}"


def to_py(value: Any) -> Any:
    """Make ``value`` JSON-friendly (numpy scalars/arrays, bytes, tuples) for attrs."""
    if isinstance(value, Mapping):
        return {str(k): to_py(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_py(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_py(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace").rstrip("\x00")
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def build_image(
    data: Any,
    *,
    path: Path,
    ov: ImageOverrides,
    dims: Sequence[str],
    pixel_size_nm: Mapping[str, float] | None,
    default_modality: str,
    source_format: str,
    origin_nm: Mapping[str, float] | None = None,
    origin_px: Mapping[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    value_unit: str = "",
    notes: Sequence[str] = (),
    raw_calibration: Mapping[str, Any] | None = None,
    uncalibrated_reason: str | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """Apply the overrides and build the Image element.

    ``pixel_size_nm`` is the file's calibration per spatial dim (``None`` if the file has none; then
    ``uncalibrated_reason`` explains why and the ``pixel_size_nm=`` override is required).
    ``origin_px`` gives the origin in pixels (e.g. MRC ``nxstart``): it is scaled by the pixel size
    finally used, so an override moves it consistently. ``origin_nm`` wins where both are given.
    """
    notes = list(notes)
    spatial = [d for d in dims if d in ("z", "y", "x")]
    if ov.pixel_size_nm is not None:
        user = ov.pixel_size_nm
        if isinstance(user, Mapping):
            px = {d: float(user[d]) if d in user else None for d in spatial}
        elif np.ndim(user) == 0:
            px = {d: float(user) for d in spatial}
        else:
            seq = [float(v) for v in user]
            if len(seq) == len(spatial):
                px = dict(zip(spatial, seq))
            elif len(seq) == 2 and len(spatial) == 3:
                px = {"z": None, "y": seq[0], "x": seq[1]}
            else:
                raise UnitError(
                    f"pixel_size_nm has {len(seq)} values for spatial axes {spatial}",
                    path=path,
                    field="pixel_size_nm",
                )
        for d, v in list(px.items()):
            if v is None:
                if pixel_size_nm is not None and d in pixel_size_nm:
                    px[d] = float(pixel_size_nm[d])
                else:
                    raise uncalibrated_error(path, f"no pixel size for axis {d!r} in the override or the file")
        if pixel_size_nm:
            notes.append(
                "pixel size from the pixel_size_nm override "
                f"{ {d: round(v, 6) for d, v in px.items()} } nm, replacing the file's "
                f"{ {d: round(float(v), 6) for d, v in pixel_size_nm.items()} } nm"
                + ("" if all(d in pixel_size_nm for d in spatial) else f" ({uncalibrated_reason})")
            )
        else:
            notes.append(f"pixel size from the pixel_size_nm override ({uncalibrated_reason or 'file uncalibrated'})")
    else:
        missing = [d for d in spatial if not pixel_size_nm or d not in pixel_size_nm]
        if missing:
            raise uncalibrated_error(
                path, uncalibrated_reason or f"the file has no spatial calibration for axes {missing}"
            )
        px = {d: float(pixel_size_nm[d]) for d in spatial}
    if origin_px:
        origin_nm = {**{d: float(origin_px[d]) * px[d] for d in spatial if d in origin_px}, **dict(origin_nm or {})}
    _check_calibration(path, data.shape, tuple(dims), px, origin_nm)
    modality = ov.modality or default_modality
    a: dict[str, Any] = {
        "source_format": source_format,
        "notes": notes,
        "raw_calibration": to_py(dict(raw_calibration or {})),
    }
    if attrs:
        a.update(to_py(dict(attrs)))
    return make_image(
        data,
        pixel_size_nm=px,
        dims=tuple(dims),
        origin_nm=None if origin_nm is None else {d: float(origin_nm.get(d, 0.0)) for d in spatial},
        modality=modality,
        channel_names=channel_names,
        value_unit=value_unit,
        name=ov.name,
        source=str(path),
        attrs=a,
    )


#: Largest image extent accepted (nm): one metre; a calibration beyond it is a damaged header.
MAX_EXTENT_NM = 1e9


def _check_calibration(path: Path, shape, dims, px: Mapping[str, float], origin_nm) -> None:
    """Refuse non-finite, non-positive or absurd pixel sizes and origins (nm)."""
    for d, v in px.items():
        n = shape[dims.index(d)] if d in dims else 1
        if v is None or not np.isfinite(v) or v <= 0 or v * n > MAX_EXTENT_NM:
            raise UnitError(
                f"pixel size along {d} is {v!r} nm over {n} pixels: not a positive, finite calibration "
                f"of at most {MAX_EXTENT_NM:g} nm in all; pass pixel_size_nm= if the file's is wrong",
                path=path, field=f"pixel size {d}",
            )
    for d, v in dict(origin_nm or {}).items():
        if not np.isfinite(float(v)) or abs(float(v)) > MAX_EXTENT_NM:
            raise UnitError(f"origin along {d} is {v!r} nm: not finite or beyond {MAX_EXTENT_NM:g} nm",
                            path=path, field=f"origin {d}")


def check_tiff_complete(path: Path, tif) -> None:
    """Raise :class:`FormatError` if the TIFF's page chain points past the end of the file.

    tifffile logs and stops at an invalid page offset, which would silently hide the missing
    pages of a truncated file; this follows the last page's next-IFD pointer itself.
    """
    import struct

    size = os.path.getsize(path)
    n = len(tif.pages)
    if n == 0:
        raise FormatError("TIFF without any page", path=path)
    last = tif.pages[n - 1]
    t = tif.tiff
    fh = tif.filehandle
    try:
        fh.seek(last.offset)
        ntags = struct.unpack(t.tagnoformat, fh.read(t.tagnosize))[0]
        fh.seek(last.offset + t.tagnosize + ntags * t.tagsize)
        raw = fh.read(t.offsetsize)
    except Exception as exc:  # pragma: no cover - defensive
        raise FormatError(f"cannot follow the TIFF page chain: {exc}", path=path) from exc
    if len(raw) < t.offsetsize:
        raise FormatError("file is truncated inside the last TIFF page directory", path=path)
    nxt = struct.unpack(t.offsetformat, raw)[0]
    if nxt >= size:
        raise FormatError(
            f"file is truncated: page {n} of the TIFF starts at byte {nxt}, past the end ({size} bytes)",
            path=path,
        )
    for page in (tif.pages[0], last):
        end = max((int(o) + int(c) for o, c in zip(getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ()))), default=0)
        if end > size:
            require_bytes(path, end, f"TIFF page {page.index} data", size)


def _check_tiff_extent(path: Path, tif, s) -> None:
    """Raise :class:`FormatError` if the series' pixel data run past the end of the file."""
    size = os.path.getsize(path)
    off = getattr(s, "dataoffset", None)
    if off is not None:
        require_bytes(path, int(off) + int(s.nbytes), f"TIFF series of shape {s.shape}", size)
        return
    end = 0
    for page in s.pages:
        if page is None or not hasattr(page, "dataoffsets"):
            continue
        for o, n in zip(page.dataoffsets, page.databytecounts):
            end = max(end, int(o) + int(n))
    if end > size:
        require_bytes(path, end, f"TIFF strips/tiles of series shape {s.shape}", size)


def tiff_series_dask(path: Path, series: int = 0, level: int = 0):
    """A TIFF series as a lazy dask array through tifffile's zarr interface.

    The :class:`tifffile.TiffFile` stays open for the life of the returned array (it is referenced
    from the dask graph), so chunks are read only when computed. Returns ``(dask_array, axes)``.
    """
    import dask.array as da
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    try:
        s = tif.series[series]
        axes = s.axes
        check_tiff_complete(Path(path), tif)
        _check_tiff_extent(Path(path), tif, s)
        store = s.aszarr(level=level)
        z = zarr.open_array(store, mode="r")
        from ._lazy import GuardedArray

        arr = da.from_array(GuardedArray(z, Path(path)), chunks=z.chunks, name=dask_name("tiff", Path(path), series, level))
    except FormatError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise FormatError(f"tifffile cannot read series {series}: {type(exc).__name__}: {exc}", path=path) from exc
    arr._correlate_tiff_handle = tif  # type: ignore[attr-defined]  # keep the file open
    return arr, axes
