"""rapidSTORM localization files (``.txt`` with an XML field header).

Coordinate origin: rapidSTORM writes positions in the sample space in nm (``Position-0-0``,
``Position-1-0``); whether 0 is a pixel corner or centre is not stated in the file and was not
verified, so positions are kept as written.

Frame base: 0 (``ImageNumber-0-0`` is declared with ``min="0 fr"``); ``frame`` is returned
0-based. The header's ``min`` of the frame field is read to confirm the base.

The first line is ``# <localizations ...><field identifier=... unit=... min=.../>...``; the body
is whitespace-separated numbers, one localization per line. Tracked files (a nested
``<localizations>`` declaring the fields of each track's localizations) hold one track per line:
the track's own fields, the number of its localizations, then their fields; they are read as one
row per localization with a ``track_id``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError, UnitError
from ._smlm_columns import scale_columns
from ._smlm_common import check_options, finish, first_line, is_pixel_unit, length_factor, smlm_reader
from ._text import read_first_line, read_whitespace_table, require_terminated

__all__ = ["read_rapidstorm", "READERS"]

_CANONICAL = {
    "Position-0-0": "x",
    "Position-1-0": "y",
    "Position-2-0": "z",
    "ImageNumber-0-0": "frame",
    "Position-0-0-uncertainty": "precision_x",
    "Position-1-0-uncertainty": "precision_y",
    "Position-2-0-uncertainty": "precision_z",
}
_LENGTH_UNITS = {"nanometer": "nm", "nanometre": "nm", "micrometer": "um", "micrometre": "um", "meter": "m", "metre": "m"}


def can_open(path: Path, head: bytes) -> bool:
    line = first_line(head)
    return line.startswith("#") and "<localizations" in line and "<field" in line


def _fields(header: str, path: Path) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    xml = header.lstrip("#").strip()
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise FormatError("the XML header declares a DOCTYPE/ENTITY, which is not accepted", path=path)
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FormatError(f"malformed XML header: {exc}", path=path) from None
    if root.tag != "localizations":
        raise FormatError(f"expected a <localizations> header, found <{root.tag}>", path=path)
    fields = [dict(f.attrib) for f in root.findall("field")]
    if not fields:
        raise FormatError("the XML header declares no <field> columns", path=path)
    return fields


def _track_fields(header: str) -> list[dict[str, str]]:
    """The <field>s of the nested <localizations> of a tracked file (empty for a plain file)."""
    import xml.etree.ElementTree as ET

    inner = ET.fromstring(header.lstrip("#").strip()).find("localizations")
    return [] if inner is None else [dict(f.attrib) for f in inner.findall("field")]


def _columns(fields: list[dict[str, str]], path: Path, pixel_size_nm):
    """Canonical names, length factors, units, frame base and notes of rapidSTORM fields."""
    names, factors, units, notes = [], {}, {}, []
    frame_base = 0
    for f in fields:
        ident = f.get("identifier", "")
        unit = f.get("unit", "")
        target = _CANONICAL.get(ident, ident)
        if ident.startswith("Position") or ident.startswith("PSFWidth"):
            if unit in _LENGTH_UNITS:
                factors[target] = length_factor(_LENGTH_UNITS[unit], path=path, field=ident, pixel_size_nm=None)
            elif is_pixel_unit(unit):
                factors[target] = length_factor("px", path=path, field=ident, pixel_size_nm=pixel_size_nm)
            else:
                raise UnitError(f"unknown length unit {unit!r}; expected nanometer", path=path, field=ident)
            if target not in _CANONICAL.values():
                units[target] = "nm"
        elif target == "frame":
            m = re.match(r"^\s*(-?\d+)", f.get("min", "0"))
            frame_base = int(m.group(1)) if m else 0
            if frame_base not in (0, 1):
                notes.append(f"frame field declares min={f.get('min')!r}; frames counted from 0 anyway")
                frame_base = 0
        elif unit:
            units[target] = unit
        names.append(target)
    for req in ("x", "y"):
        if req not in names:
            raise FormatError(f"missing required field Position-{'01'[req == 'y']}-0", path=path, field=req)
    return names, factors, units, frame_base, notes


def _read_tracks(body: bytes, n_outer: int, names: list[str], path: Path) -> pd.DataFrame:
    """Localizations of a tracked file: each line is a track's own fields, the number of its
    localizations, then that many localizations' fields. One row per localization, ``track_id``
    numbering the lines from 0."""
    lines = [ln for ln in body.splitlines() if ln.strip()]
    m = len(names)
    try:
        tokens = [np.array(ln.split(), dtype=np.float64) for ln in lines]
    except ValueError as exc:
        raise FormatError(f"a track line holds a value that is not a number ({exc})", path=path) from None
    sizes = np.array([t.size for t in tokens], dtype=np.int64)
    counts = np.array([t[n_outer] if t.size > n_outer else -1 for t in tokens])
    bad = (counts < 0) | (counts != np.round(counts)) | (sizes != n_outer + 1 + counts * m)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(
            f"track line {i + 2} has {sizes[i]} values, which is not {n_outer} track fields + a count + count x {m} "
            "localization fields; the file may be truncated or damaged",
            path=path, field=f"line {i + 2}",
        )
    flat = np.concatenate([t[n_outer + 1 :] for t in tokens]) if tokens else np.zeros(0)
    df = pd.DataFrame(flat.reshape(-1, m), columns=names)
    df["track_id"] = np.repeat(np.arange(len(tokens), dtype=np.int64), counts.astype(np.int64))
    return df


def read_rapidstorm(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read a rapidSTORM ``.txt`` into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.txt`` file.
    pixel_size_nm
        Camera pixel size (nm), needed only if a position field is in pixels.
    channel
        A channel name for every row.
    """
    path = Path(path)
    check_options(path, options)
    header = read_first_line(path)
    if not header.strip():
        raise FormatError("empty file", path=path)
    fields = _fields(header, path)
    names, factors, units, frame_base, notes = _columns(fields, path, pixel_size_nm)
    inner = _track_fields(header)
    data = path.read_bytes()
    body = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    require_terminated(data, path)
    if inner:
        names, factors, units, frame_base, more = _columns(inner, path, pixel_size_nm)
        notes += more + ["tracked file: one row per localization of each track, track_id numbering the tracks"]
        df = _read_tracks(body, len(fields), names, path)
    else:
        lines = body.rstrip().rsplit(b"\n", 1)
        if lines and lines[-1].strip() and len(lines[-1].split()) != len(names):
            raise FormatError(
                f"the last line has {len(lines[-1].split())} values, expected {len(names)}; the file may be truncated",
                path=path,
            )
        df = read_whitespace_table(body, names, path=path)
    scale_columns(df, factors)
    return finish(
        df, path=path, source_format="rapidstorm", frame_base=frame_base,
        camera_pixel_size_nm=float(pixel_size_nm) if pixel_size_nm is not None else None, units=units, notes=notes,
        channel=channel,
        extra_attrs={"origin": "as written by rapidSTORM (pixel-corner/centre convention not verified)"},
    )


READERS = [
    smlm_reader(
        "rapidstorm", (".txt",), read_rapidstorm, can_open, 20,
        "rapidSTORM localization file (XML field header, ImageNumber 0-based)",
    )
]
