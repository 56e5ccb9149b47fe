"""The localization precision of a table: its own columns, a value the user gives, or NeNA."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["Precision", "localization_precision"]


@dataclass(frozen=True)
class Precision:
    """Per-localization precision and where it came from.

    Attributes
    ----------
    values
        (N,) precision sigma per axis (nm).
    median_nm
        Their median (nm; NaN for an empty table).
    source
        ``"column 'precision'"``, ``"columns ['precision_x', 'precision_y']"``, ``"given"`` or
        ``"estimated (NeNA)"``.
    """

    values: np.ndarray
    median_nm: float
    source: str


def localization_precision(locs: pd.DataFrame, precision_nm: float | None = None, *,
                           what: str = "localizations", flag: str = "precision_nm") -> Precision:
    """The precision (nm, sigma per axis) of each localization of ``locs``.

    A given ``precision_nm`` wins; else the ``precision`` column, else the root mean square of
    ``precision_x`` and ``precision_y``; else one value estimated by NeNA from adjacent frames.

    Raises
    ------
    CorrelateError
        No precision column, no ``frame`` column for NeNA, or a NeNA fit that fails; the message
        names ``what`` and the option (``flag``) that would supply the value.
    """
    n = len(locs)
    if precision_nm is not None:
        v = float(precision_nm)
        if not (np.isfinite(v) and v > 0):
            raise CorrelateError(f"{flag} must be a positive number of nm, got {precision_nm!r}", field=flag)
        return Precision(np.full(n, v), v, "given")
    if "precision" in locs.columns:
        p = locs["precision"].to_numpy(float)
        return Precision(p, _median(p), "column 'precision'")
    cols = [c for c in ("precision_x", "precision_y") if c in locs.columns]
    if cols:
        p = np.sqrt(np.mean(locs[cols].to_numpy(float) ** 2, axis=1))
        return Precision(p, _median(p), f"columns {cols}")
    if n == 0:
        return Precision(np.zeros(0), float("nan"), "none (no localizations)")
    if "frame" not in locs.columns:
        raise CorrelateError(
            f"{what} have no precision column and no frame column to estimate it from (NeNA): "
            f"pass {flag}", field="precision")
    from ._nena import nena

    try:
        s = float(nena(locs).precision_nm)
    except CorrelateError as e:
        raise CorrelateError(f"{what} have no precision column and NeNA could not estimate it ({e}): "
                             f"pass {flag}", field="precision") from e
    return Precision(np.full(n, s), s, "estimated (NeNA)")


def _median(p: np.ndarray) -> float:
    ok = np.isfinite(p)
    return float(np.median(p[ok])) if ok.any() else float("nan")
