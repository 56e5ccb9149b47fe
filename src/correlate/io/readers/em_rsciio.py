"""Gatan DM3/DM4, FEI TIA SER/EMI and Velox/Berkeley EMD through rosettasciio (optional, GPL).

rosettasciio is GPL-3.0-or-later, so it is an optional extra (``pip install correlate[gpl]``) and is
imported only inside the read function. What this module adds on top of it:

* per-axis units: DM files mix units per axis (y in Å, x in nm): each axis gets its own nm size;
* spectra are refused: a file whose axes carry energy (eV) or reciprocal-space units (1/nm) is
  not an image (a :class:`FormatError` says what it is);
* uncalibrated files (scale 1, no unit) need ``pixel_size_nm=`` (a :class:`UnitError` otherwise);
* TIA: rosettasciio 0.15 reports the axis offset in metres while the unit says nm; an offset far
  smaller than one pixel is taken to be in metres (noted);
* a negative axis scale (coordinates decreasing along the stored axis) flips that axis, so that
  coordinates increase and every pixel keeps its physical position (noted);
* several datasets (EMD) or a frame stack: ``series=`` and ``frame=`` pick one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FormatError, UnitError
from ...units import to_nm_factor
from .._registry import ReaderSpec
from ._image_common import build_image, file_size, parse_overrides, pick_index, require_bytes, to_py

__all__ = ["read_rsciio", "READERS"]

_ENERGY_UNITS = {"ev", "kev", "mev", "j"}
_UNCAL = {"", "<undefined>", "<auto>", "none", "px", "pixel", "pixels"}


def _import(module: str, path: Path):
    import importlib

    try:
        return importlib.import_module(f"rsciio.{module}")
    except ImportError as exc:
        raise FormatError(
            "reading this format needs rosettasciio (GPL-3.0, an optional extra): "
            "pip install correlate[gpl]",
            path=path,
        ) from exc


def _dm_can_open(path: Path, head: bytes) -> bool:
    return len(head) >= 4 and int.from_bytes(head[:4], "big") in (3, 4)


def _ser_can_open(path: Path, head: bytes) -> bool:
    return head[:2] == b"II" and int.from_bytes(head[2:4], "little") == 0x0197


def _emi_can_open(path: Path, head: bytes) -> bool:
    return len(head) > 16 and path.suffix.lower() == ".emi"


def _emd_can_open(path: Path, head: bytes) -> bool:
    # HDF5 is shared by many formats: only files named .emd
    return head[:8] == b"\x89HDF\r\n\x1a\n" and path.name.lower().endswith(".emd")


def _axis_kind(ax: dict) -> str:
    """'length', 'uncalibrated', 'energy', 'reciprocal' or 'other'."""
    unit = ax.get("units")
    u = "" if unit is None else str(unit).strip()
    if u.lower() in _UNCAL:
        return "uncalibrated"
    if u.lower() in _ENERGY_UNITS:
        return "energy"
    c = u.replace(" ", "").lower()
    if c.startswith("1/") or c.endswith("^-1") or c.endswith("**-1") or c.endswith("⁻¹") or "rad" in c:
        return "reciprocal"
    try:
        to_nm_factor(u)
        return "length"
    except UnitError:
        return "other"


def _title(d: dict, i: int) -> str:
    try:
        t = d["metadata"]["General"]["title"]
        return str(t) if t else f"dataset{i}"
    except (KeyError, TypeError):
        return f"dataset{i}"


def _describe(axes) -> str:
    return ", ".join(f"{a.get('name')}[{a.get('size')}] {a.get('scale')} {a.get('units') or 'no unit'}" for a in axes)


def _is_image(d: dict) -> bool:
    axes = [a for a in d["axes"] if int(a.get("size", 2)) > 1]
    kinds = [_axis_kind(a) for a in axes]
    return len(axes) >= 2 and all(k in ("length", "uncalibrated") for k in kinds[-2:]) and not any(
        k in ("energy", "reciprocal") for k in kinds
    )


def _file_reader(path: Path, module: str) -> list[dict]:
    """The datasets rosettasciio's ``module`` reads from the file (lazily), at least one."""
    mod = _import(module, path)
    kwargs = {"lazy": True}
    try:
        try:
            if module == "emd":
                out = mod.file_reader(str(path), select_type="image", **kwargs)
            else:
                out = mod.file_reader(str(path), **kwargs)
        except TypeError:
            out = mod.file_reader(str(path), **kwargs)
    except (FormatError, UnitError):
        raise
    except Exception as exc:
        raise FormatError(
            f"rosettasciio {module} reader failed (truncated or damaged file?): {type(exc).__name__}: {exc}", path=path
        ) from exc
    if not out:
        raise FormatError("rosettasciio found no dataset in the file", path=path)
    return out


def _pick_dataset(path: Path, out: list[dict], titles: list[str], series, notes: list[str]) -> int:
    """Index of the dataset to read: ``series=`` (index or title), else the first image."""
    if series is not None:
        return pick_index(path, series, titles, "series")
    images = [i for i, d in enumerate(out) if _is_image(d)]
    if not images:
        return 0
    idx = images[0]
    if len(out) > 1:
        notes.append(f"file holds {len(out)} datasets {titles}; read #{idx} {titles[idx]!r} (series= picks another)")
    return idx


def _refuse_non_image(path: Path, d: dict, axes: list, kinds: list[str]) -> None:
    """A FormatError for a spectrum (energy axis, EELS/EDS signal) or a reciprocal-space dataset."""
    signal_type = ""
    try:
        signal_type = str(d["metadata"]["Signal"].get("signal_type", ""))
    except (KeyError, TypeError, AttributeError):
        pass
    if any(k == "energy" for k in kinds) or "EELS" in signal_type or "EDS" in signal_type:
        raise FormatError(
            f"not an image: a spectrum ({signal_type or 'energy axis'}; axes: {_describe(axes)}). "
            "correlate reads images with spatial axes only",
            path=path,
        )
    if any(k == "reciprocal" for k in kinds):
        raise FormatError(
            f"not a real-space image: reciprocal-space axes (diffraction pattern or FFT; axes: {_describe(axes)})",
            path=path,
        )


def _axis_calibration(path: Path, module: str, dims, axes: list, kinds: list[str], shape, notes: list[str]):
    """(pixel size nm per dim or None, origin nm or None, data axes to flip, why uncalibrated)."""
    px: dict | None = {}
    origin: dict = {}
    flips: list[int] = []
    why = None
    for dim, a, k in zip(dims, axes, kinds):
        scale = float(a.get("scale", 1.0) or 1.0)
        offset = float(a.get("offset", 0.0) or 0.0)
        if k == "uncalibrated":
            px = None
            why = f"axis {a.get('name')!r} has scale {scale} and no length unit ({a.get('units')!r})"
            break
        f = to_nm_factor(str(a["units"]), path=path, field=f"axis {a.get('name')} units")
        px[dim] = abs(scale) * f
        if module == "tia" and offset != 0 and abs(offset) < 1e-3 * abs(scale):
            origin[dim] = offset * 1e9
            notes.append(f"axis {dim}: offset {offset:g} taken as metres (rosettasciio TIA quirk; unit says {a['units']})")
        else:
            origin[dim] = offset * f
        if scale < 0:
            # coordinates decrease along the stored axis: flip it so that they increase, and put
            # the origin at the (new) first pixel, the stored last one
            flips.append(dims.index(dim))
            origin[dim] += scale * f * (shape[dims.index(dim)] - 1)
            notes.append(f"axis {dim}: negative scale {scale}; data flipped so that coordinates increase")
    if px is None or not any(origin.values()):
        return px, None, flips, why  # offsets of an uncalibrated file are in unknown units
    return px, origin, flips, why


def read_rsciio(path, *, _module: str = "digitalmicrograph", _fmt: str = "dm", **overrides):
    """Read a DM3/DM4, SER/EMI or EMD file as an EM Image through rosettasciio.

    Parameters
    ----------
    path
        The file. For TIA, either the ``.emi`` (metadata) or its ``_1.ser`` (pixels).
    **overrides
        ``pixel_size_nm=`` (required for uncalibrated files), ``modality=`` (default ``"em"``),
        ``series=`` (dataset index or title, EMD), ``frame=`` (index into a stack), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)`` or ``(z, y, x)``, nm coordinates; the raw per-axis scale, unit and offset
        in ``attrs["raw_calibration"]``.

    Raises
    ------
    FormatError
        Spectra, diffraction patterns, truncated files, or rosettasciio missing.
    UnitError
        Uncalibrated file without ``pixel_size_nm=``, or an unknown axis unit.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size = file_size(path)
    require_bytes(path, 16, "a header", size)
    out = _file_reader(path, _module)
    titles = [_title(d, i) for i, d in enumerate(out)]
    notes: list[str] = []
    idx = _pick_dataset(path, out, titles, ov.series, notes)
    d = out[idx]
    axes = list(d["axes"])
    data = d["data"]
    if not hasattr(data, "dask") and not isinstance(data, np.ndarray):
        data = np.asarray(data)
    if len(axes) != data.ndim:
        raise FormatError(f"rosettasciio returned {len(axes)} axes for a {data.ndim}-D array", path=path)
    kinds = [_axis_kind(a) for a in axes]
    _refuse_non_image(path, d, axes, kinds)
    # drop length-1 axes
    keep = [i for i, a in enumerate(axes) if data.shape[i] > 1]
    if len(keep) < data.ndim:
        data = data.reshape([data.shape[i] for i in keep])
        axes = [axes[i] for i in keep]
        kinds = [kinds[i] for i in keep]
    spatial_idx = [i for i, k in enumerate(kinds) if k in ("length", "uncalibrated")]
    other_idx = [i for i, k in enumerate(kinds) if k not in ("length", "uncalibrated")]
    # a stack: one leading non-spatial axis (time, frame)
    if other_idx or len(spatial_idx) > 3:
        stack_axis = other_idx[0] if other_idx else 0
        if len(other_idx) > 1 or (not other_idx and len(spatial_idx) > 3):
            raise FormatError(f"cannot map axes ({_describe(axes)}) onto (z, y, x)", path=path)
        n = data.shape[stack_axis]
        if ov.frame is None:
            raise FormatError(
                f"stack of {n} images along {axes[stack_axis].get('name')!r} ({axes[stack_axis].get('units') or 'no unit'}); "
                "pass frame=<index> to pick one",
                path=path,
                field="frame",
            )
        fi = pick_index(path, ov.frame, [str(i) for i in range(n)], "frame")
        stack_name = axes[stack_axis].get("name")
        data = data[(slice(None),) * stack_axis + (fi,)]
        axes = axes[:stack_axis] + axes[stack_axis + 1 :]
        kinds = kinds[:stack_axis] + kinds[stack_axis + 1 :]
        notes.append(f"frame {fi} of {n} along axis {stack_name!r}")
    if data.ndim not in (2, 3):
        raise FormatError(f"expected a 2-D or 3-D image, got axes {_describe(axes)}", path=path)
    dims = ("y", "x") if data.ndim == 2 else ("z", "y", "x")
    raw = {
        dim: {"name": a.get("name"), "scale": a.get("scale"), "units": a.get("units"), "offset": a.get("offset"), "size": a.get("size")}
        for dim, a in zip(dims, axes)
    }
    px, origin, flips, why = _axis_calibration(path, _module, dims, axes, kinds, data.shape, notes)
    import dask.array as da

    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks="auto")
    for axis in flips:
        data = da.flip(data, axis=axis)
    attrs = {"series": idx, "title": titles[idx]}
    try:
        md = d.get("original_metadata") or {}
        if _module == "digitalmicrograph":
            attrs["microscope"] = to_py(
                {k: v for k, v in (md.get("ImageList", {}).get("TagGroup0", {}).get("ImageTags", {}).get("Microscope Info", {}) or {}).items()
                 if not isinstance(v, dict)}
            )
    except Exception:
        pass
    return build_image(
        data, path=path, ov=ov, dims=dims, pixel_size_nm=px, default_modality="em", source_format=_fmt,
        origin_nm=origin, value_unit="counts", notes=notes, raw_calibration=raw, uncalibrated_reason=why, attrs=attrs,
    )


def _reader(module: str, fmt: str):
    def read(path, **overrides):
        return read_rsciio(path, _module=module, _fmt=fmt, **overrides)

    read.__doc__ = read_rsciio.__doc__
    read.__name__ = f"read_{fmt}"
    return read


READERS = [
    ReaderSpec(
        name="dm",
        suffixes=(".dm3", ".dm4"),
        modality="em",
        read=_reader("digitalmicrograph", "dm"),
        can_open=_dm_can_open,
        priority=10,
        description="Gatan DigitalMicrograph DM3/DM4 (rosettasciio, optional GPL extra)",
    ),
    ReaderSpec(
        name="tia",
        suffixes=(".ser", ".emi"),
        modality="em",
        read=_reader("tia", "tia"),
        can_open=lambda p, h: _ser_can_open(p, h) or _emi_can_open(p, h),
        priority=10,
        description="FEI TIA ES Vision SER/EMI (rosettasciio, optional GPL extra)",
    ),
    ReaderSpec(
        name="emd",
        suffixes=(".emd",),
        modality="em",
        read=_reader("emd", "emd"),
        can_open=_emd_can_open,
        priority=10,
        description="Velox / Berkeley EMD (HDF5; rosettasciio, optional GPL extra); images only",
    ),
]
