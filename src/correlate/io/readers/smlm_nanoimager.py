"""ONI Nanoimager localization CSV (NimOS export).

Coordinate origin: as exported by NimOS, in nm in the camera field of view; whether 0 is a
pixel corner or a pixel centre is not documented by ONI and was not verified here, so positions
are kept as written.

Frame base: 0 (the ``Frame`` column counts from 0; frame 0 occurs in real exports).
Columns are labelled ``Name (unit)``: ``Channel, Frame, X (nm), Y (nm), Z (nm), Photons,
Background`` and, in fuller exports, precision and PSF-width columns. Multi-colour files keep
their ``Channel`` values in ``channel``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import FormatError
from ._smlm_columns import map_labels, require_labels, scale_columns
from ._smlm_common import check_options, finish, first_line, smlm_reader, split_unit
from ._text import parse_header_fields, read_first_line, read_numeric_csv

__all__ = ["read_nanoimager", "READERS"]

FRAME_BASE = 0

_CANONICAL = {
    "x": "x", "y": "y", "z": "z", "frame": "frame", "channel": "channel", "photons": "photons",
    "background": "background", "x precision": "precision_x", "y precision": "precision_y", "z precision": "precision_z",
}


def can_open(path: Path, head: bytes) -> bool:
    """A header with ``X (nm)``-style labels, ``Frame`` and ``Channel``."""
    try:
        parsed = dict(split_unit(f) for f in parse_header_fields(first_line(head)))
    except Exception:  # noqa: BLE001
        return False
    return "X" in parsed and "Y" in parsed and "Frame" in parsed and "Channel" in parsed


def read_nanoimager(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read an ONI Nanoimager CSV into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.csv`` file.
    pixel_size_nm
        Camera pixel size (nm), only used if a length column is in pixels.
    channel
        A channel name to give every row (replaces the file's ``Channel``).
    """
    path = Path(path)
    check_options(path, options)
    labels = parse_header_fields(read_first_line(path))
    if not labels or labels == [""]:
        raise FormatError("empty file or empty header line", path=path)
    names, factors, units = map_labels(
        labels, _CANONICAL, path=path, pixel_size_nm=pixel_size_nm, length_columns=("x", "y", "z"), other_units=True
    )
    require_labels(names, labels, {"x": "X (nm)", "y": "Y (nm)"}, path=path)
    df = read_numeric_csv(path, names, skip_rows=1, path=path)
    scale_columns(df, factors)
    notes = []
    if "z" in df.columns and len(df) and (df["z"] == 0).all():
        notes.append("Z (nm) is 0 for every row: a 2-D acquisition; z kept as 0")
    return finish(
        df, path=path, source_format="nanoimager", frame_base=FRAME_BASE,
        camera_pixel_size_nm=float(pixel_size_nm) if pixel_size_nm is not None else None, units=units, notes=notes,
        channel=channel,
        extra_attrs={"origin": "as exported by NimOS (pixel-corner/centre convention not documented)"},
    )


READERS = [
    smlm_reader(
        "nanoimager", (".csv",), read_nanoimager, can_open, 15,
        "ONI Nanoimager localization CSV (X (nm), Frame 0-based, Channel)",
    )
]
