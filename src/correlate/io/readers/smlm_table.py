"""Generic localization tables: CSV/TSV/whitespace text or Parquet, with a column mapping.

Coordinate origin: unknown for a generic table; positions are kept as written (converted to nm).

Frame base: 0 unless the caller says otherwise with ``frame_base=``.

Columns are recognised by name (``x``, ``x [nm]``, ``x (nm)``, ``x_nm``, ``position_x``,
``X (nm)``...; ``frame``, ``channel``, ``photons``, ``background``, ``precision``/``uncertainty``,
``sigma``) or given explicitly with ``columns={"x": "Xc", "y": "Yc", ...}`` (canonical name ->
file column). The length unit comes from the column labels or from ``unit=`` (``"nm"``,
``"um"``, ``"px"`` with ``pixel_size_nm=``); a table without any unit is an error, never a
guess. This reader is asked last among the ``.csv``/``.txt`` readers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...errors import FormatError, UnitError
from .._registry import ReaderSpec
from ._smlm_common import check_options, finish, first_line, is_length_unit, length_factor, split_unit
from ._text import parse_header_fields, read_first_line, read_numeric_csv

__all__ = ["read_table", "READERS"]

_ALIASES = {
    "x": "x", "position_x": "x", "pos_x": "x", "xc": "x", "x_position": "x",
    "y": "y", "position_y": "y", "pos_y": "y", "yc": "y", "y_position": "y",
    "z": "z", "position_z": "z", "pos_z": "z", "zc": "z", "z_position": "z",
    "frame": "frame", "frames": "frame", "frame_ix": "frame",
    "channel": "channel", "photons": "photons", "photon": "photons",
    "background": "background", "bg": "background",
    "precision": "precision", "uncertainty": "precision", "uncertainty_xy": "precision", "locprec": "precision",
    "precision_x": "precision_x", "uncertainty_x": "precision_x", "x_precision": "precision_x",
    "precision_y": "precision_y", "uncertainty_y": "precision_y", "y_precision": "precision_y",
    "precision_z": "precision_z", "uncertainty_z": "precision_z", "z_precision": "precision_z",
    "sigma": "sigma", "psf_sigma": "sigma",
}
_LENGTH = {"x", "y", "z", "precision", "precision_x", "precision_y", "precision_z", "sigma"}
_SUFFIX_UNIT = re.compile(r"^(?P<name>.+?)_(?P<unit>nm|um|µm|px|pix|pixel|pixels|mm|m)$", re.IGNORECASE)


def _sep_of(line: str) -> str:
    for sep in ("\t", ",", ";"):
        if sep in line:
            return sep
    return r"\s+"


def _parse_label(label: str) -> tuple[str, str | None]:
    base, unit = split_unit(label)
    if unit is None:
        m = _SUFFIX_UNIT.match(base)
        if m and m.group("name").lower() in _ALIASES:
            return m.group("name"), m.group("unit")
    return base, unit


def can_open(path: Path, head: bytes) -> bool:
    """Parquet magic, or delimited text whose first line is a header of two or more labels.

    This reader is the fallback for ``.csv``/``.tsv``/``.txt``: it accepts any such table and
    lets :func:`read_table` explain which columns or unit it is missing.
    """
    if path.suffix.lower() == ".parquet":
        return head.startswith(b"PAR1")
    if b"\x00" in head[:1024]:
        return False
    line = first_line(head)
    if not line.strip():
        return False
    sep = _sep_of(line)
    labels = line.split() if sep == r"\s+" else parse_header_fields(line, sep)
    if len(labels) < 2:
        return False
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        # Content sniffing of an unexpected suffix: only claim tables that name x and y.
        canon = {_ALIASES.get(_parse_label(lab)[0].lower()) for lab in labels}
        return {"x", "y"} <= canon

    def _is_number(s: str) -> bool:
        try:
            float(s)
        except ValueError:
            return False
        return True

    return not all(_is_number(lab) for lab in labels)


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    unit: str | None = None,
    pixel_size_nm: float | None = None,
    frame_base: int = 0,
    channel: Any = None,
    sep: str | None = None,
    **options: Any,
):
    """Read a generic localization table into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        ``.csv``, ``.tsv``, ``.txt`` (delimited, one header line) or ``.parquet``.
    columns
        Canonical name -> file column (``{"x": "X_pos", "frame": "T"}``); other file columns
        are still recognised by name and kept.
    unit
        Length unit of the position/precision columns (``"nm"``, ``"um"``, ``"px"``...),
        overriding units in the labels.
    pixel_size_nm
        Camera pixel size (nm) when ``unit="px"`` or labels say px.
    frame_base
        Number of the first frame in the file (0 or 1).
    channel
        A channel name for every row.
    sep
        Field separator (detected from the header when not given).
    """
    path = Path(path)
    check_options(path, options)
    if frame_base not in (0, 1):
        raise FormatError(f"frame_base must be 0 or 1, got {frame_base!r}", path=path, field="frame_base")
    if path.suffix.lower() == ".parquet":
        try:
            raw = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds
            raise FormatError(f"cannot read Parquet: {exc}", path=path) from None
        labels = [str(c) for c in raw.columns]
    else:
        header = read_first_line(path)
        if not header.strip():
            raise FormatError("empty file or empty header line", path=path)
        sep = sep or _sep_of(header)
        labels = header.split() if sep == r"\s+" else parse_header_fields(header, sep)
        raw = None
    explicit = {v: k for k, v in (columns or {}).items()}
    for canon, col in (columns or {}).items():
        if col not in labels:
            raise FormatError(f"columns maps {canon!r} to {col!r}, which is not in the table {labels}", path=path, field=col)
    names, factors, units, notes = [], {}, {}, []
    # Canonical names given in ``columns=`` win over columns recognised by name, wherever those sit.
    reserved = set(explicit.values())
    for label in labels:
        base, lab_unit = _parse_label(label)
        if label in explicit:
            target = explicit[label]
        else:
            target = _ALIASES.get(base.lower()) or base
            taken = reserved | set(names)
            if target in taken:
                target = next(c for c in (base, label, f"{label}_unmapped") if c not in taken)
                notes.append(f"column {label!r} kept as {target!r} (its name is taken by columns= or another column)")
        if target in names:
            target = base if base not in names else label
        if target in _LENGTH:
            u = unit if unit is not None else lab_unit
            if u is None:
                raise UnitError(
                    "no length unit in the column label and none given; pass unit='nm' (or 'um', 'px' "
                    "with pixel_size_nm=)",
                    path=path,
                    field=label,
                )
            if not is_length_unit(u):
                raise UnitError(f"unknown length unit {u!r}; expected nm, um, px...", path=path, field=label)
            factors[target] = length_factor(u, path=path, field=label, pixel_size_nm=pixel_size_nm)
        elif lab_unit:
            units[target] = lab_unit
        names.append(target)
    for req in ("x", "y"):
        if req not in names:
            raise FormatError(
                f"no column for '{req}'; header has {labels}; pass columns={{'{req}': '<column>'}}", path=path, field=req
            )
    if raw is None:
        if sep == r"\s+":
            from ._text import read_whitespace_table

            data = path.read_bytes()
            df = read_whitespace_table(data[data.find(b"\n") + 1 :], names, path=path)
        else:
            text_cols = {n: "string" for n in names if n == "channel"}
            df = read_numeric_csv(path, names, skip_rows=1, sep=sep, path=path, types=text_cols)
            if "channel" in df.columns:
                ch = pd.to_numeric(df["channel"], errors="coerce")
                if ch.notna().all():
                    df["channel"] = ch.to_numpy()
    else:
        df = raw.set_axis(names, axis=1)
    for col, f in factors.items():
        df[col] = df[col].to_numpy(dtype=np.float64) * f
    if not ("frame" in df.columns) or frame_base == 0:
        notes.append("generic table: frame base 0 assumed (pass frame_base=1 for 1-based files)")
    return finish(
        df,
        path=path,
        source_format="table",
        frame_base=frame_base,
        camera_pixel_size_nm=float(pixel_size_nm) if pixel_size_nm is not None else None,
        units=units,
        notes=notes,
        channel=channel,
        extra_attrs={"origin": "unknown (generic table; positions kept as written)"},
    )


READERS = [
    ReaderSpec(
        name="table",
        suffixes=(".csv", ".tsv", ".txt", ".parquet"),
        modality="smlm",
        read=read_table,
        can_open=can_open,
        priority=-10,
        description="generic localization table (CSV/TSV/text/Parquet; columns= mapping, unit=)",
    )
]
