"""ThunderSTORM localization tables (CSV export of the ImageJ plug-in).

Coordinate origin: ThunderSTORM (ImageJ convention) puts 0 at the top-left *corner* of the
top-left camera pixel, so the centre of pixel ``i`` is at ``(i + 0.5) * pixel size``; x grows to
the right, y downwards. Positions are kept as written (converted to nm), no half-pixel shift.

Frame base: 1 (ThunderSTORM counts frames from 1); ``frame`` is returned 0-based.

Column labels are ``name [unit]`` with units ``nm``, ``um`` or ``px`` for lengths (``px`` needs
``pixel_size_nm=``) and ``photon`` or ``ADU`` for intensities. Precision is ``uncertainty [nm]``
in v1.3 and ``uncertainty_xy [nm]`` in later builds; both become ``precision``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError, UnitError
from .._registry import ReaderSpec
from ._smlm_common import (
    check_options,
    finish,
    first_line,
    is_length_unit,
    is_pixel_unit,
    length_factor,
    split_unit,
)
from ._text import parse_header_fields, read_first_line, read_numeric_csv

__all__ = ["read_thunderstorm", "READERS"]

FRAME_BASE = 1

# ThunderSTORM name -> canonical name, for columns with a length unit.
_LENGTH_NAMES = {
    "x": "x",
    "y": "y",
    "z": "z",
    "sigma": "sigma",
    "uncertainty": "precision",
    "uncertainty_xy": "precision",
    "uncertainty_z": "precision_z",
}
# Intensities: canonical only when the unit is photons.
_PHOTON_NAMES = {"intensity": "photons", "offset": "background"}


def _labels(path: Path) -> list[str]:
    return parse_header_fields(read_first_line(path))


def can_open(path: Path, head: bytes) -> bool:
    """A header whose labels include ``x [unit]``, ``y [unit]`` and ``frame``."""
    try:
        parsed = [split_unit(f) for f in parse_header_fields(first_line(head))]
    except Exception:  # noqa: BLE001
        return False
    named = {n: u for n, u in parsed}
    return (
        named.get("x") is not None
        and named.get("y") is not None
        and "frame" in named
    )


def read_thunderstorm(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read a ThunderSTORM CSV into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.csv`` file.
    pixel_size_nm
        Camera pixel size (nm); required only when lengths are written in ``px``.
    channel
        A channel name to give every localization.

    Returns
    -------
    pandas.DataFrame
        Canonical columns ``x, y[, z], frame, photons, background, precision[, precision_z],
        sigma`` in nm; other columns (``id``, ``bkgstd``, ``chi2``, ``detections``...) keep their
        names without the unit bracket (lengths converted to nm).
    """
    path = Path(path)
    check_options(path, options)
    labels = _labels(path)
    if not labels or labels == [""]:
        raise FormatError("empty file or empty header line", path=path)
    names: list[str] = []
    factors: dict[str, float] = {}
    units: dict[str, str] = {}
    notes: list[str] = []
    px_used = False
    for label in labels:
        base, unit = split_unit(label)
        lname = base.lower()
        if lname in _LENGTH_NAMES or (unit is not None and is_length_unit(unit)):
            target = _LENGTH_NAMES.get(lname, base)
            if unit is None:
                raise UnitError(
                    "length column without a unit; expected a label like 'x [nm]'", path=path, field=label
                )
            if not is_length_unit(unit):
                raise UnitError(
                    f"unknown length unit {unit!r}; expected nm, um or px", path=path, field=label
                )
            factors[target] = length_factor(unit, path=path, field=label, pixel_size_nm=pixel_size_nm)
            px_used |= is_pixel_unit(unit)
            if target not in _LENGTH_NAMES.values():
                units[target] = "nm"
        elif lname in _PHOTON_NAMES and (unit is None or unit.lower() in ("photon", "photons")):
            target = _PHOTON_NAMES[lname]
        elif lname == "frame":
            target = "frame"
        else:
            target = base
            if unit:
                units[target] = unit
        if target in names:
            raise FormatError(f"two columns map to '{target}' (second: {label!r})", path=path, field=label)
        names.append(target)
    for req in ("x", "y"):
        if req not in names:
            raise FormatError(
                f"missing required column '{req} [unit]'; header has {labels}", path=path, field=req
            )
    df = read_numeric_csv(path, names, skip_rows=1, path=path)
    for col, f in factors.items():
        if f != 1.0:
            df[col] = df[col].to_numpy() * f
    for col in ("id", "detections"):
        if col in df.columns and len(df):
            v = df[col].to_numpy()
            if np.isfinite(v).all() and (v == np.round(v)).all():
                df[col] = v.astype(np.int64)
    if px_used:
        notes.append(f"px lengths converted with pixel_size_nm={float(pixel_size_nm)} (given by the caller)")
    if len(df) == 0:
        notes.append("the file holds no localizations")
    return finish(
        df,
        path=path,
        source_format="thunderstorm",
        frame_base=FRAME_BASE,
        camera_pixel_size_nm=float(pixel_size_nm) if pixel_size_nm is not None else None,
        units=units,
        notes=notes,
        channel=channel,
        extra_attrs={"origin": "top-left corner of the first camera pixel (ImageJ convention)"},
    )


READERS = [
    ReaderSpec(
        name="thunderstorm",
        suffixes=(".csv",),
        modality="smlm",
        read=read_thunderstorm,
        can_open=can_open,
        priority=20,
        description="ThunderSTORM localization CSV (x [nm|um|px], frame 1-based)",
    )
]
