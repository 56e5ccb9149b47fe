"""Zeiss ZEN / Elyra localization tables (tab-separated ``.txt`` export).

Coordinate origin: as exported by ZEN, in nm; whether 0 is a pixel corner or centre is not
documented and was not verified, so positions are kept as written.

Frame base: 1 (``First Frame`` counts from 1); ``frame`` is returned 0-based.

The table is tab-separated with CRLF line ends and ends at a line holding a NUL byte; a metadata
trailer follows (``VoxelSizeX : 0.097 µm`` in latin-1, ``SizeX``, ``ROI List``), from which the
camera pixel size is taken. ``Z Slice`` is a slice *index*, not a z position: it is kept under
its own name, and only ``Position Z [nm]`` becomes ``z``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import FormatError, UnitError
from ._smlm_columns import map_labels, require_labels, scale_columns
from ._smlm_common import check_options, finish, head_text, length_factor, smlm_reader
from ._text import parse_header_fields, read_numeric_csv

__all__ = ["read_elyra", "READERS"]

FRAME_BASE = 1

_CANONICAL = {
    "position x": "x", "position y": "y", "position z": "z", "first frame": "frame", "precision": "precision",
    "number photons": "photons", "channel": "channel",
}


def can_open(path: Path, head: bytes) -> bool:
    """Tab-separated header with ``First Frame`` and ``Position X [...]``."""
    line = head_text(head).split("\n", 1)[0]
    return "\t" in line and "First Frame" in line and "Position X" in line


def _trailer_pixel_size(trailer: bytes, path: Path) -> tuple[float | None, dict[str, str]]:
    meta: dict[str, str] = {}
    for raw in trailer.decode("latin-1").splitlines():
        if ":" in raw:
            k, v = raw.split(":", 1)
            if k.strip():
                meta[k.strip()] = v.strip()
    size = None
    if "VoxelSizeX" in meta:
        m = re.match(r"^\s*([-+0-9.eE]+)\s*(\S+)\s*$", meta["VoxelSizeX"])
        if m:
            try:
                size = float(m.group(1)) * length_factor(m.group(2), path=path, field="VoxelSizeX", pixel_size_nm=None)
            except UnitError:
                size = None
    return size, meta


def read_elyra(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read a Zeiss Elyra/ZEN localization ``.txt`` into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.txt`` file.
    pixel_size_nm
        Camera pixel size (nm), overriding the trailer's ``VoxelSizeX`` in the attrs.
    channel
        A channel name for every row (replaces the file's ``Channel``).
    """
    path = Path(path)
    check_options(path, options)
    data = path.read_bytes()
    if not data.strip():
        raise FormatError("file is empty", path=path)
    nul = data.find(b"\x00")
    notes: list[str] = []
    if nul >= 0:
        cut = data.rfind(b"\n", 0, nul) + 1
        table, trailer = data[:cut], data[nul + 1 :]
    else:
        table, trailer = data, b""
        notes.append("no NUL line / metadata trailer found (file may be truncated); camera pixel size unknown")
    header_end = table.find(b"\n")
    header = table[: header_end if header_end >= 0 else len(table)].decode("latin-1").rstrip("\r")
    labels = parse_header_fields(header, sep="\t")
    names, factors, units = map_labels(
        labels, _CANONICAL, path=path, pixel_size_nm=pixel_size_nm, length_columns=("x", "y", "z", "precision"),
        other_units=False,
    )
    require_labels(names, labels, {"x": "Position X [nm]", "y": "Position Y [nm]"}, path=path)
    # CRLF: pyarrow keeps a trailing CR out of numbers, but strip it to be safe.
    body = table[header_end + 1 :] if header_end >= 0 else b""
    df = read_numeric_csv(body.replace(b"\r", b""), names, skip_rows=0, sep="\t", path=path)
    scale_columns(df, factors)
    cam, meta = _trailer_pixel_size(trailer, path)
    if pixel_size_nm is not None:
        cam = float(pixel_size_nm)
    if "Z Slice" in df.columns:
        notes.append("'Z Slice' is a slice index, not a z position; kept as a column")
    return finish(
        df, path=path, source_format="elyra", frame_base=FRAME_BASE, camera_pixel_size_nm=cam, units=units,
        notes=notes, channel=channel,
        extra_attrs={
            "origin": "as exported by ZEN (pixel-corner/centre convention not documented)",
            "file_metadata": meta,
        },
    )


READERS = [
    smlm_reader(
        "elyra", (".txt", ".csv"), read_elyra, can_open, 20,
        "Zeiss Elyra/ZEN localization table (tab-separated, First Frame 1-based)",
    )
]
