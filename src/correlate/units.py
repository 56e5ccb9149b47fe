"""Length units: one normaliser for every unit string a reader meets.

Everything inside correlate is in nanometres. An unknown unit raises :class:`UnitError`; it is
never guessed.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import UnitError

__all__ = ["NM_PER", "normalize_length_unit", "to_nm_factor", "to_nm", "UDUNITS_NAME"]

#: Nanometres per one of each canonical length unit.
NM_PER: dict[str, float] = {
    "km": 1e12,
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "nm": 1.0,
    "A": 0.1,
    "pm": 1e-3,
}

#: UDUNITS-2 names used in NGFF axis metadata.
UDUNITS_NAME: dict[str, str] = {
    "km": "kilometer",
    "m": "meter",
    "cm": "centimeter",
    "mm": "millimeter",
    "um": "micrometer",
    "nm": "nanometer",
    "A": "angstrom",
    "pm": "picometer",
}

_ALIASES: dict[str, str] = {
    # metre
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "km": "km", "kilometer": "km", "kilometre": "km",
    "cm": "cm", "centimeter": "cm", "centimetre": "cm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "millimeters": "mm",
    # micrometre (µ as micro sign U+00B5 or Greek mu U+03BC; Bruker writes '~m')
    "um": "um", "µm": "um", "μm": "um", "micron": "um", "microns": "um",
    "micrometer": "um", "micrometre": "um", "micrometers": "um", "micrometres": "um",
    "~m": "um",
    # nanometre (some files write 'n_m' or 'nanometer')
    "nm": "nm", "n_m": "nm", "nanometer": "nm", "nanometre": "nm", "nanometers": "nm",
    "nanometres": "nm",
    # angstrom
    "a": "A", "å": "A", "Å": "A", "ang": "A", "angstrom": "A", "angstroms": "A",
    "ångström": "A", "ångstrom": "A",
    "pm": "pm", "picometer": "pm", "picometre": "pm",
}


def normalize_length_unit(unit: str, *, path: str | None = None, field: str | None = None) -> str:
    """Return the canonical name (``'m'``, ``'um'``, ``'nm'``, ``'A'``...) of a length unit string.

    Parameters
    ----------
    unit
        Unit as written in a file (``'µm'``, ``'micron'``, ``'n_m'``, ``'Å'``, ``'nanometer'``...).
    path, field
        Where the unit came from, for the error message.

    Raises
    ------
    UnitError
        If the unit is not a length unit correlate knows.
    """
    if not isinstance(unit, str):
        raise UnitError(f"expected a length unit string, got {unit!r}", path=path, field=field)
    raw = unit
    u = unicodedata.normalize("NFC", unit).strip().strip("[]()").strip()
    if u in _ALIASES:
        return _ALIASES[u]
    key = re.sub(r"\s+", "", u).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnitError(
        f"unknown length unit {raw!r}; expected one of m, mm, um/µm/micron, nm, A/Å/angstrom, pm",
        path=path,
        field=field,
    )


def to_nm_factor(unit: str, *, path: str | None = None, field: str | None = None) -> float:
    """Nanometres per one ``unit`` (e.g. ``to_nm_factor('µm') == 1000.0``)."""
    return NM_PER[normalize_length_unit(unit, path=path, field=field)]


def to_nm(value, unit: str, *, path: str | None = None, field: str | None = None):
    """Convert ``value`` (scalar or array) given in ``unit`` to nanometres."""
    return value * to_nm_factor(unit, path=path, field=field)
