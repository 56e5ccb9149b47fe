"""Shared pieces of the SMLM localization readers (``smlm_*.py``).

Every reader turns its file into a DataFrame of canonical columns in nm and then calls
:func:`finish`, which converts frames to 0-based, checks coordinates, applies the ``channel=``
override and builds the element with :func:`correlate.elements.make_localizations`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from ...elements import make_localizations
from ...errors import CorrelateError, FormatError, UnitError
from ...units import normalize_length_unit, to_nm_factor
from .._registry import ReaderSpec

__all__ = [
    "HDF5_SIGNATURE",
    "check_options",
    "finish",
    "frames_to_zero_based",
    "head_text",
    "first_line",
    "length_factor",
    "is_length_unit",
    "is_pixel_unit",
    "split_unit",
    "require_pixel_size",
    "hdf5_has",
    "smlm_reader",
]

#: The 8-byte signature of an HDF5 file (at offset 0, 512, 1024... when a user block precedes it).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

_PIXEL_UNITS = {"px", "pix", "pixel", "pixels", "camera px", "camera pixel", "camera pixels"}

#: Options every SMLM reader accepts (``modality`` comes from ``correlate.io.read``).
COMMON_OPTIONS = frozenset({"pixel_size_nm", "channel", "modality"})


def check_options(path: Path, options: Mapping[str, Any], allowed: Iterable[str] = ()) -> None:
    """Raise :class:`CorrelateError` naming any option this reader does not understand."""
    ok = COMMON_OPTIONS | set(allowed)
    unknown = sorted(set(options) - ok)
    if unknown:
        raise CorrelateError(
            f"unexpected option(s) {', '.join(unknown)}; this reader accepts {', '.join(sorted(ok))}",
            path=path,
        )


def head_text(head: bytes) -> str:
    """The first bytes of a file as text (UTF-8, falling back to latin-1), BOM removed."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is not a decoding failure.
        if exc.start >= len(head) - 4:
            return head[: exc.start].decode("utf-8", errors="replace")
        return head.decode("latin-1")


def first_line(head: bytes) -> str:
    """The first line of ``head`` (without its line end)."""
    text = head_text(head)
    return text.splitlines()[0] if text else ""


def is_pixel_unit(unit: str | None) -> bool:
    return unit is not None and unit.strip().lower() in _PIXEL_UNITS


def is_length_unit(unit: str | None) -> bool:
    """True for a length unit correlate knows (nm, um, µm, m...) or a camera-pixel unit."""
    if unit is None:
        return False
    if is_pixel_unit(unit):
        return True
    try:
        normalize_length_unit(unit)
    except UnitError:
        return False
    return True


def length_factor(
    unit: str | None,
    *,
    path: Path,
    field: str,
    pixel_size_nm: float | None,
    default: str | None = None,
) -> float:
    """Nanometres per one ``unit`` (camera px use ``pixel_size_nm``).

    Raises
    ------
    UnitError
        For an unknown unit, or a px unit without a pixel size.
    """
    if unit is None or unit.strip() == "":
        if default is None:
            raise UnitError("no unit given for a length column", path=path, field=field)
        unit = default
    if is_pixel_unit(unit):
        return require_pixel_size(pixel_size_nm, path=path, field=field)
    return to_nm_factor(unit, path=path, field=field)


def require_pixel_size(pixel_size_nm: Any, *, path: Path, field: str) -> float:
    """The camera pixel size in nm, or a UnitError asking for ``pixel_size_nm=``."""
    if pixel_size_nm is None:
        raise UnitError(
            "values are in camera pixels but the file gives no pixel size; "
            "pass pixel_size_nm=<camera pixel size in nm>",
            path=path,
            field=field,
        )
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise UnitError(f"pixel_size_nm must be a number (nm), got {pixel_size_nm!r}", path=path, field=field) from None
    if not np.isfinite(value) or value <= 0:
        raise UnitError(f"pixel_size_nm must be a positive number (nm), got {value!r}", path=path, field=field)
    return value


_BRACKET = re.compile(r"^\s*(?P<name>.*?)\s*[\[(](?P<unit>[^\[\]()]*)[\])]\s*$")


def split_unit(label: str) -> tuple[str, str | None]:
    """Split ``'x [nm]'`` or ``'X (nm)'`` into ``('x', 'nm')``; ``('chi2', None)`` without a unit."""
    label = label.strip().strip('"').strip()
    m = _BRACKET.match(label)
    if m and m.group("name"):
        return m.group("name"), m.group("unit").strip()
    return label, None


def frames_to_zero_based(values: Any, base: int, *, path: Path, field: str) -> np.ndarray:
    """Integer 0-based frames from the file's ``values`` counted from ``base``.

    Raises
    ------
    FormatError
        For non-finite or non-integer frame numbers, or frames below ``base``.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64, copy=False)
    else:
        arr = arr.astype(np.float64, copy=False)
        if arr.size:
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FormatError(
                    f"{int(bad.sum())} non-finite frame number(s), first at row {i}", path=path, field=field
                )
            frac = arr != np.floor(arr)
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise FormatError(
                    f"frame numbers must be integers; row {i} has {arr[i]!r}", path=path, field=field
                )
        out = arr.astype(np.int64)
    if base:
        out = out - base
    if out.size and out.min() < 0:
        i = int(np.argmin(out))
        raise FormatError(
            f"frame {int(out[i]) + base} at row {i} is below the format's first frame {base} "
            f"(frames are {base}-based)",
            path=path,
            field=field,
        )
    return out


def _check_finite(df: pd.DataFrame, path: Path) -> None:
    for col in ("x", "y", "z"):
        if col not in df.columns:
            continue
        arr = df[col].to_numpy()
        if arr.dtype.kind not in "fiu":
            raise FormatError(f"coordinates must be numeric, found dtype {arr.dtype}", path=path, field=col)
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FormatError(
                    f"{int(bad.sum())} non-finite coordinate(s) (NaN/inf or missing values), first at "
                    f"row {i}; expected finite positions",
                    path=path,
                    field=col,
                )


def finish(
    df: pd.DataFrame,
    *,
    path: Path,
    source_format: str,
    frame_base: int | None,
    camera_pixel_size_nm: float | list[float] | None = None,
    units: Mapping[str, str] | None = None,
    notes: Iterable[str] = (),
    channel: Any = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Check, convert frames and build the Localizations element.

    ``df`` holds canonical columns in nm, with ``frame`` still as written in the file
    (``frame_base``-based). ``channel`` (the user's ``channel=`` option) sets one channel name for
    every row.
    """
    notes = list(notes)
    for col in ("x", "y"):
        if col not in df.columns:
            raise FormatError(f"missing required coordinate column '{col}'", path=path, field=col)
    _check_finite(df, path)
    if "frame" in df.columns:
        df["frame"] = frames_to_zero_based(df["frame"].to_numpy(), frame_base or 0, path=path, field="frame")
        if frame_base:
            notes.append(f"frames converted from {frame_base}-based (file) to 0-based")
    if channel is not None:
        if "channel" in df.columns:
            notes.append(f"channel column of the file replaced by channel={channel!r}")
        df["channel"] = channel
    elif "channel" in df.columns:
        ch = df["channel"].to_numpy()
        if ch.dtype.kind == "f" and ch.size and np.all(np.isfinite(ch)) and np.all(ch == np.floor(ch)):
            df["channel"] = ch.astype(np.int64)
    out = make_localizations(
        df,
        source_format=source_format,
        source=str(path),
        camera_pixel_size_nm=camera_pixel_size_nm,
        frame_base=frame_base,
        units=units,
        notes=notes,
    )
    if extra_attrs:
        out.attrs.update(extra_attrs)
    return out


def hdf5_has(path: Path, head: bytes, *required: str) -> bool:
    """Cheap check: an HDF5 file (signature at 0 or after a 512*2^k user block) holding ``required``."""
    # MATLAB v7.3 files have a 512-byte user block; the signature then sits at offset 512.
    if not any(head[o : o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024, 2048)):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return all(name in f for name in required)
    except Exception:  # noqa: BLE001 - a sniff never raises
        return False


def smlm_reader(
    name: str,
    suffixes: tuple[str, ...],
    read: Callable[..., Any],
    can_open: Callable[[Path, bytes], bool],
    priority: int,
    description: str,
) -> ReaderSpec:
    """The registry entry of an SMLM localization format (modality ``"smlm"``)."""
    return ReaderSpec(
        name=name, suffixes=suffixes, modality="smlm", read=read, can_open=can_open, priority=priority,
        description=description,
    )
