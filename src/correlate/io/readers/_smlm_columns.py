"""Header labels to canonical columns in nm, shared by the labelled-table SMLM readers.

A table reader splits each header label into a name and a unit (``X (nm)``, ``Position X [nm]``),
maps the name onto a canonical column (``x``, ``frame``, ``precision``...), checks that the
position columns carry a length unit and scales every length column to nm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...errors import FormatError, UnitError
from ._smlm_common import is_length_unit, length_factor, split_unit

__all__ = ["map_labels", "require_labels", "scale_columns"]


def map_labels(
    labels: Sequence[str],
    canonical: Mapping[str, str],
    *,
    path: Path,
    pixel_size_nm: float | None,
    length_columns: Sequence[str],
    other_units: bool,
) -> tuple[list[str], dict[str, float], dict[str, str]]:
    """Canonical column names, nm factors of the length columns and units of the others.

    Parameters
    ----------
    labels
        Header labels as written (``name (unit)`` or ``name [unit]``).
    canonical
        Lower-case label name -> canonical column; other names are kept as written.
    pixel_size_nm
        Camera pixel size (nm) for columns in camera pixels.
    length_columns
        Canonical columns that must carry a length unit (a column in any length unit is scaled too).
    other_units
        Record the unit of non-length columns in the returned units.

    Returns
    -------
    names, factors, units
        One name per label; nm per file unit for every length column; units of length columns
        outside ``canonical`` (``"nm"``) and, with ``other_units``, of the other columns.

    Raises
    ------
    UnitError
        A position column without a length unit, or a px column without ``pixel_size_nm``.
    """
    names: list[str] = []
    factors: dict[str, float] = {}
    units: dict[str, str] = {}
    known = set(canonical.values())
    for label in labels:
        base, unit = split_unit(label)
        target = canonical.get(base.lower(), base)
        if target in length_columns or (unit is not None and is_length_unit(unit)):
            if unit is None or not is_length_unit(unit):
                raise UnitError(f"unknown or missing length unit {unit!r}; expected nm", path=path, field=label)
            factors[target] = length_factor(unit, path=path, field=label, pixel_size_nm=pixel_size_nm)
            if target not in known:
                units[target] = "nm"
        elif other_units and unit:
            units[target] = unit
        names.append(target)
    return names, factors, units


def require_labels(names: Sequence[str], labels: Sequence[str], expected: Mapping[str, str], *, path: Path) -> None:
    """Raise a FormatError for the first canonical column of ``expected`` (column -> the label a
    file should have) that ``names`` lacks."""
    for req, label in expected.items():
        if req not in names:
            raise FormatError(f"missing required column {label!r}; header has {list(labels)}", path=path, field=req)


def scale_columns(df: pd.DataFrame, factors: Mapping[str, float]) -> None:
    """Multiply each column of ``factors`` by its factor in place (to nm); factors of 1 are skipped."""
    for col, f in factors.items():
        if f != 1.0:
            df[col] = df[col].to_numpy() * f
