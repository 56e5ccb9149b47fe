"""Asylum Research / Igor Pro binary waves (``.ibw``) through ``igor2`` (optional dependency).

* ``pip install igor2`` (LGPL; already pulled in by AFMReader); without it a ``.ibw`` raises a
  :class:`FormatError` telling you so.
* An Asylum image is one wave of shape ``(points, lines[, channels])`` stored column-major:
  dimension 0 is the fast scan axis (x), dimension 1 the slow axis (y), dimension 2 the channels,
  named by the dimension-2 labels (``HeightTrace``, ``AmplitudeTrace``, ``PhaseTrace``,
  ``ZSensorTrace``...). ``channel=`` picks one by label or index; the default is the first of
  ``HeightTrace``, ``Height``, ``ZSensorTrace``, then any label containing "height".
* Pixel size per axis = the wave scaling ``sfA[d]`` (step per point) in the dimension unit
  (``dimUnits``, usually ``m``) → nm, separately for x and y (non-square pixels are kept). If a
  dimension has no unit, the Asylum note's ``FastScanSize``/``SlowScanSize`` (m) over the point
  counts is used instead (noted). (AFMReader 0.0.7 divides ``SlowScanSize`` by the fast-axis
  count.)
* Values: a channel in a length unit (the wave's data unit, or metres assumed for
  height/ZSensor/amplitude/deflection channels when the wave has none, noted) → nm; phase
  channels without a unit are taken as degrees (noted); anything else keeps its unit.
* Orientation: transposed to ``(y, x)`` and flipped up-down, as AFMReader does (Igor draws row 0
  of an image at the bottom). The wave offsets ``sfB`` are recorded, not applied.
* :func:`ibw_image_from_wave` is the pure mapping from igor2's wave dict to values and
  calibration; tested on ``.ibw`` files the tests write from Igor's TN003 layout, not on files
  saved by an Asylum instrument (none was available).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from ...units import to_nm_factor
from ._afm_header import afm_reader, build_afm_image, values_in_nm
from ._image_common import optional_import, parse_overrides, pick_index, read_head, require_bytes

__all__ = ["READERS", "ibw_image_from_wave", "read_ibw"]

_DEFAULT_CHANNELS = ("HeightTrace", "Height", "ZSensorTrace", "ZSensor")
_LENGTH_LIKE = re.compile(r"height|zsensor|amplitude|deflection|^z", re.IGNORECASE)


def _can_open(path: Path, head: bytes) -> bool:
    # the first int16 is the IBW version (1, 2, 3 or 5) in the file's byte order: too weak a magic
    # to claim files with another suffix
    if len(head) < 2 or not path.name.lower().endswith(".ibw"):
        return False
    return struct.unpack("<h", head[:2])[0] in (1, 2, 3, 5) or struct.unpack(">h", head[:2])[0] in (1, 2, 3, 5)


def _chars(v: Any) -> str:
    if isinstance(v, bytes):
        return v.split(b"\x00")[0].decode("latin-1").strip()
    if isinstance(v, (np.ndarray, list, tuple)):
        return b"".join(bytes(x) if not isinstance(x, bytes) else x for x in np.ravel(v)).split(b"\x00")[0].decode(
            "latin-1").strip()
    return str(v or "").strip()


def _parse_note(note: Any) -> dict[str, str]:
    text = note.decode("latin-1", errors="replace") if isinstance(note, bytes) else str(note or "")
    out: dict[str, str] = {}
    for line in re.split(r"[\r\n]+", text):
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _unitless_channel(values: np.ndarray, name: str, notes: list[str]) -> tuple[np.ndarray, str]:
    """Values and unit of a channel whose wave has no data unit, guessed from its name (noted)."""
    if _LENGTH_LIKE.search(name):
        notes.append(f"channel {name!r} has no data unit; taken as metres (Asylum stores SI units)")
        return values * 1e9, "nm"
    if "phase" in name.lower():
        notes.append(f"channel {name!r} has no data unit; taken as degrees")
        return values, "deg"
    notes.append(f"channel {name!r} has no data unit; values kept as stored")
    return values, ""


def ibw_image_from_wave(wave: Mapping[str, Any], channel: Any = None, path: Path | str = "<ibw>") -> dict[str, Any]:
    """Map an igor2 wave (``igor2.binarywave.load(f)["wave"]``) onto one AFM image.

    Parameters
    ----------
    wave
        The ``"wave"`` dict: ``wave_header`` (``nDim``, ``sfA``, ``sfB``, ``dataUnits``,
        ``dimUnits``, ``bname``), ``wData``, ``labels``, ``note``, and optionally the extended
        ``data_units`` / ``dimension_units``.
    channel
        Label or index along dimension 2 (``None``: height first).
    path
        For error messages.

    Returns
    -------
    dict
        ``values`` (``(y, x)`` float64, row 0 at the top), ``pixel_size_nm`` (``{"y", "x"}`` or
        ``None``), ``value_unit``, ``channel``, ``channels``, ``notes``, ``raw``,
        ``uncalibrated_reason``.
    """
    try:
        wh = wave["wave_header"]
        data = np.asarray(wave["wData"])
    except KeyError as exc:
        raise FormatError(f"igor wave lacks {exc.args[0]!r}", path=path, field=exc.args[0]) from exc
    notes: list[str] = []
    if data.dtype.kind not in "fiu":
        raise FormatError(f"wave data of type {data.dtype} is not an image (text or complex wave)", path=path,
                          field="type")
    if data.ndim not in (2, 3) or min(data.shape[:2]) < 2:
        raise FormatError(f"wave of shape {data.shape} is not an image (expected points x lines [x channels])",
                          path=path, field="nDim")
    labels_all = wave.get("labels") or []
    layer_labels = [_chars(b) for b in (labels_all[2] if len(labels_all) > 2 else [])]
    nch = data.shape[2] if data.ndim == 3 else 1
    if len(layer_labels) == nch + 1:
        names = layer_labels[1:]
    elif len(layer_labels) == nch:
        names = layer_labels
    else:
        names = []
    if len(names) != nch or not all(names) or len(set(names)) != nch:
        names = [f"channel {i}" for i in range(nch)] if nch > 1 else [_chars(wh.get("bname", b"")) or "channel 0"]
        if nch > 1:
            notes.append("no usable channel labels in dimension 2; channels named by index")
    if channel is None:
        ci = next((names.index(c) for c in _DEFAULT_CHANNELS if c in names), None)
        if ci is None:
            ci = next((i for i, n in enumerate(names) if "height" in n.lower()), 0)
        if nch > 1:
            notes.append(f"channel {names[ci]!r} of {names} (channel= picks another)")
    else:
        ci = pick_index(Path(str(path)), channel, names, "channel")
    plane = data[:, :, ci] if data.ndim == 3 else data
    values = np.flipud(np.asarray(plane, dtype=np.float64).T)
    notes.append("transposed to (y, x) and flipped up-down (Igor draws row 0 at the bottom), as AFMReader does")

    sfa = [float(v) for v in np.ravel(wh.get("sfA", [np.nan] * 4))]
    sfb = [float(v) for v in np.ravel(wh.get("sfB", [0.0] * 4))]
    dim_units = [_chars(u) for u in wh.get("dimUnits", [b""] * 4)]
    ext_dim = _chars(wave.get("dimension_units", b""))
    data_unit = _chars(wave.get("data_units", b"")) or _chars(wh.get("dataUnits", b""))
    note = _parse_note(wave.get("note", b""))
    raw: dict[str, Any] = {"sfA": sfa[:3], "sfB": sfb[:3], "dimUnits": dim_units[:3], "dataUnits": data_unit,
                           "shape_points_lines_channels": list(data.shape), "channels": names}
    if ext_dim:
        raw["dimension_units_extended"] = ext_dim
    for k in ("ScanSize", "FastScanSize", "SlowScanSize", "ScanAngle", "ScanPoints", "ScanLines"):
        if k in note:
            raw[k] = note[k]
    px: dict[str, float] | None = {}
    why = None
    for d, axis, nkey in ((0, "x", "FastScanSize"), (1, "y", "SlowScanSize")):
        unit = dim_units[d] if d < len(dim_units) else ""
        step = sfa[d] if d < len(sfa) else float("nan")
        if unit and np.isfinite(step) and step != 0:
            f = to_nm_factor(unit, path=path, field=f"dimUnits[{d}]")
            px[axis] = abs(step) * f
            if step < 0:
                values = values[:, ::-1] if axis == "x" else values[::-1, :]
                notes.append(f"dimension {d} has a negative step {step:g} {unit}; flipped so that it increases")
            continue
        size_txt = note.get(nkey)
        try:
            size_m = float(size_txt) if size_txt is not None else float("nan")
        except ValueError:
            size_m = float("nan")
        if np.isfinite(size_m) and size_m > 0:
            px[axis] = size_m * 1e9 / data.shape[d]
            notes.append(f"dimension {d} has no unit/scaling; {axis} pixel size = note {nkey} (m) / {data.shape[d]}")
        else:
            px = None
            why = f"dimension {d} ({axis}) has no unit (dimUnits empty) and the note has no {nkey}"
            break

    name = names[ci]
    if data_unit:
        values, value_unit = values_in_nm(values, data_unit, path=path, field="dataUnits")
    else:
        values, value_unit = _unitless_channel(values, name, notes)
    return {"values": values, "pixel_size_nm": px, "value_unit": value_unit, "channel": name, "channels": names,
            "notes": notes, "raw": raw, "uncalibrated_reason": why}


def _import_igor2(path: Path):
    return optional_import("igor2.binarywave", path, what="Igor/Asylum .ibw", package="igor2", extra="ibw")


def read_ibw(path, **overrides):
    """Read one channel of an Asylum Research / Igor ``.ibw`` image as an AFM Image.

    Parameters
    ----------
    path
        ``.ibw`` file.
    **overrides
        ``channel=`` (label such as ``"HeightTrace"`` or index; default height),
        ``pixel_size_nm=``, ``modality=`` (default ``"afm"``), ``name=``.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size, head = read_head(path, 8, 8, "an IBW header")
    if not _can_open(path, head):
        raise FormatError("not an Igor binary wave (first int16 is not version 1, 2, 3 or 5)", path=path,
                          field="version")
    version = struct.unpack("<h", head[:2])[0]
    order = "<" if version in (1, 2, 3, 5) else ">"
    version = struct.unpack(f"{order}h", head[:2])[0]
    if version == 5:
        require_bytes(path, 64 + 320, "the IBW v5 binary and wave headers", size)
        wfm = struct.unpack(f"{order}i", head[4:8])[0]
        require_bytes(path, 64 + wfm, f"the wave (wfmSize {wfm} bytes)", size)
    binarywave = _import_igor2(path)
    try:
        loaded = binarywave.load(str(path))
    except Exception as exc:
        raise FormatError(f"igor2 cannot read it: {type(exc).__name__}: {exc}", path=path) from exc
    res = ibw_image_from_wave(loaded["wave"], channel=ov.channel, path=path)
    return build_afm_image(
        res["values"], path=path, ov=ov, source_format="ibw", pixel_size_nm=res["pixel_size_nm"],
        value_unit=res["value_unit"], channel=res["channel"], notes=res["notes"], raw_calibration=res["raw"],
        uncalibrated_reason=res["uncalibrated_reason"], attrs={"ibw_version": int(loaded.get("version", version))},
    )


READERS = [
    afm_reader(
        "ibw", (".ibw",), read_ibw, _can_open,
        "Asylum Research / Igor binary wave (igor2, optional); sfA per axis in m -> nm, height in nm",
    )
]
