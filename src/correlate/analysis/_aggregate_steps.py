"""Functional imaging per particle: any localization column aggregated over each particle's
assigned localizations, and the rate of on-events per surface area and frame.

A spec is ``COLUMN:STAT``; the column it adds is ``<stat>_<column>_<label>``:

``mean``, ``median``, ``std``, ``min``, ``max``, ``sum``, ``count``
    over the finite values of the particle's assigned (unambiguous) localizations;
``wmean``
    the precision-weighted mean (weights 1 / precision^2; needs a ``precision`` column), with
    ``wmean_<column>_<label>_se`` its standard error;
``qNN``
    the NN-th percentile (``q10``, ``q90``);
``frac>V`` / ``frac<V``
    the fraction of values above (below) ``V`` (column ``frac_gt_V_<column>_<label>``).

A particle without an assigned localization gets NaN (never 0), ``count`` 0.

Event rate (``event_rate=True``, turn-on probes, catalytic reaction imaging):
``event_rate_L`` = blink-grouped on-events / (surface nm^2 x frames), with the exact (Garwood)
95 % Poisson interval ``event_rate_lo_L``, ``event_rate_hi_L``. The surface is that of a sphere of
the equivalent diameter (pi d^2); the frames are the label's frame span unless ``n_frames`` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["AggregateOptions", "aggregate_step", "parse_aggregate", "poisson_interval"]

_PLAIN = ("mean", "median", "std", "min", "max", "sum", "count", "wmean")
_FRAC = re.compile(r"^frac([<>])(-?[0-9.eE+-]+)$")
_QUANT = re.compile(r"^q([0-9]{1,2}(\.[0-9]+)?)$")


@dataclass(frozen=True)
class AggregateOptions:
    """Per-particle aggregation of localization columns (see the module docstring).

    Attributes
    ----------
    specs
        ``COLUMN:STAT`` strings, e.g. ``("spectral_centroid:mean", "photons:median")``.
    event_rate
        Add ``event_rate_L`` (events per nm^2 per frame) with its 95 % Poisson interval.
    n_frames
        Frames of the acquisition for the rate (default: the label's frame span).
    """

    specs: tuple[str, ...] = ()
    event_rate: bool = False
    n_frames: int | None = None


def parse_aggregate(spec: str) -> tuple[str, str, float | None, str]:
    """``COLUMN:STAT`` -> (column, stat kind, parameter, column-name stem)."""
    col, sep, stat = str(spec).rpartition(":")
    if not sep or not col or not stat:
        raise CorrelateError(f"aggregate {spec!r} is not COLUMN:STAT", field="aggregate")
    if stat in _PLAIN:
        return col, stat, None, stat
    if m := _QUANT.match(stat):
        return col, "quantile", float(m.group(1)), stat
    if m := _FRAC.match(stat):
        op = "gt" if m.group(1) == ">" else "lt"
        return col, f"frac_{op}", float(m.group(2)), f"frac_{op}_{m.group(2)}"
    raise CorrelateError(f"unknown statistic {stat!r} in {spec!r}; use one of {', '.join(_PLAIN)}, qNN, "
                         "frac>V, frac<V", field="aggregate")


def poisson_interval(k: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval of a Poisson mean from counts ``k``."""
    from scipy.stats import chi2

    k = np.asarray(k, float)
    a = 1.0 - level
    lo = np.where(k > 0, 0.5 * chi2.ppf(a / 2, 2 * np.maximum(k, 1e-300)), 0.0)
    hi = 0.5 * chi2.ppf(1 - a / 2, 2 * (k + 1))
    return lo, hi


def _grouped(values: np.ndarray, rows: np.ndarray, n_rows: int, kind: str, param: float | None,
             weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    ok = np.isfinite(values) & (rows >= 0)
    v, r = values[ok], rows[ok]
    cnt = np.bincount(r, minlength=n_rows).astype(float)
    if kind == "count":
        return cnt, None
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind in ("mean", "sum", "std"):
            s = np.bincount(r, v, n_rows)
            if kind == "sum":
                return np.where(cnt > 0, s, np.nan), None
            mean = s / cnt
            if kind == "mean":
                return mean, None
            ss = np.bincount(r, (v - mean[r]) ** 2, n_rows)
            return np.where(cnt > 1, np.sqrt(ss / (cnt - 1)), np.nan), None
        if kind == "wmean":
            w = weights[ok]
            sw = np.bincount(r, w, n_rows)
            return np.bincount(r, w * v, n_rows) / sw, np.sqrt(1.0 / sw)
        if kind.startswith("frac_"):
            hit = (v > param) if kind == "frac_gt" else (v < param)
            return np.bincount(r, hit.astype(float), n_rows) / cnt, None
    # order statistics: sort by (row, value) once, then index each row's block
    order = np.lexsort((v, r))
    v, r = v[order], r[order]
    start = np.searchsorted(r, np.arange(n_rows))
    out = np.full(n_rows, np.nan)
    has = cnt > 0
    n = cnt[has].astype(int)
    s0 = start[has]
    if kind == "min":
        out[has] = v[s0]
    elif kind == "max":
        out[has] = v[s0 + n - 1]
    else:
        q = 50.0 if kind == "median" else float(param)
        pos = (q / 100.0) * (n - 1)
        lo = np.floor(pos).astype(int)
        frac = pos - lo
        out[has] = v[s0 + lo] * (1 - frac) + v[s0 + np.minimum(lo + 1, n - 1)] * frac
    return out, None


def aggregate_step(state, lab) -> None:
    """Per-label step: the aggregate columns and the event rate of ``lab`` (see module docstring)."""
    opts: AggregateOptions = state.options.aggregate
    if not opts.specs and not opts.event_rate:
        return
    L, table, n_rows = lab.name, state.table, state.n_particles
    rows = np.where(lab.assigned, lab.particle, -1)
    for spec in opts.specs:
        col, kind, param, stem = parse_aggregate(spec)
        if col not in lab.locs.columns:
            raise CorrelateError(f"aggregate {spec!r}: {L!r} has no column {col!r} (columns: "
                                 f"{', '.join(map(str, lab.locs.columns))})", field="aggregate")
        values = pd.to_numeric(lab.locs[col], errors="coerce").to_numpy(float)
        w = None
        if kind == "wmean":
            if "precision" not in lab.locs.columns:
                raise CorrelateError(f"aggregate {spec!r}: a precision-weighted mean needs a 'precision' column in {L!r}",
                                     field="aggregate")
            w = 1.0 / lab.locs["precision"].to_numpy(float) ** 2
        out, se = _grouped(values, rows, n_rows, kind, param, w)
        table[f"{stem}_{col}_{L}"] = out
        if se is not None:
            table[f"{stem}_{col}_{L}_se"] = se
    if opts.event_rate:
        _event_rate(state, lab, opts, table)


def _event_rate(state, lab, opts: AggregateOptions, table: pd.DataFrame) -> None:
    L = lab.name
    size = next((c for c in ("equivalent_diameter_nm", "diameter_nm") if c in table.columns), None)
    if size is None or lab.n_events is None:
        raise CorrelateError("the event rate needs the particles' equivalent diameter and blink-grouped events",
                             field="event_rate")
    if opts.n_frames is not None:
        frames, src = int(opts.n_frames), "user"
    else:
        f = lab.locs["frame"].to_numpy()
        frames, src = (int(f.max() - f.min() + 1) if len(f) else 0), "frame span of the label"
    if frames <= 0:
        raise CorrelateError(f"no frames to divide by for {L!r}; pass n_frames", field="n_frames")
    surface = np.pi * table[size].to_numpy(float) ** 2
    k = np.asarray(lab.n_events, float)
    lo, hi = poisson_interval(k)
    exposure = surface * frames
    table[f"event_rate_{L}"] = k / exposure
    table[f"event_rate_lo_{L}"] = lo / exposure
    table[f"event_rate_hi_{L}"] = hi / exposure
    lab.info["event_rate"] = {"frames": frames, "frames_source": src, "surface": "pi * equivalent_diameter^2",
                              "unit": "events per nm^2 per frame"}
