"""Label fractions per particle (two-colour exchange, orientation / accessibility) and the
kinetics of exchange over a series of samples.

- ``mode="exchange"``: two batches labelled in two colours A, B and mixed; per structure the
  fraction of B among A + B molecules (``fraction_B``); a structure's *mixing* is its minority
  fraction ``min(f, 1 - f)``.
- ``mode="subset"``: B is a subset of A (all antibodies A, those with an accessible binding site
  B); per particle ``fraction_B = B / A``.

Intervals are Clopper-Pearson (exact binomial, 95 %) on the molecule counts rounded to whole
molecules: they cover the sampling of which molecules carry which label. The blink-corrected
counts carry an error of their own (molecules split into two sites or merged into one), which
makes the fractions scatter more than binomially; ``dispersion`` (``phi``) widens the interval to
that of ``k / phi`` of ``n / phi`` molecules. :func:`exchange_dispersion` estimates ``phi`` for an
exchange sample (its structures share the mixing of their batch), the accessibility fit its own
(:mod:`._accessibility`). Particles with no molecule get NaN.

:func:`fit_exchange` fits ``m(t) = m_inf (1 - exp(-k t))`` (or with ``m0``) to the mean mixing of
each sample, weighted by its standard error, and gives ``k`` with a 95 % interval (profile of the
weighted residual sum of squares).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["label_fractions", "fit_exchange", "ExchangeFit", "exchange_dispersion"]


def _counts(table: pd.DataFrame, label: str) -> np.ndarray:
    for c in (f"n_molecules_{label}", f"n_sites_{label}"):
        if c in table.columns:
            return np.round(np.clip(table[c].to_numpy(float), 0, None))
    raise CorrelateError(f"the table has no n_molecules_{label} column (labels counted: "
                         f"{[c[12:] for c in table.columns if c.startswith('n_molecules_')]})", field="labels")


def exchange_dispersion(table: pd.DataFrame, a: str, b: str) -> float:
    """Over-dispersion ``phi`` (>= 1) of the colour counts of one exchange sample.

    Its structures of batch A (``b`` the minority) share one fraction of ``b``, those of batch B
    another; the Pearson statistic of the counts about each group's pooled fraction, over its
    degrees of freedom (structures - 2), is ``phi``. Assumes the sample's structures exchanged
    alike (one time, one kinetics) and the mixing is below 1/2 (the batches are told apart by
    their majority colour). NaN with fewer than 3 structures.
    """
    na, nb = _counts(table, a), _counts(table, b)
    n = na + nb
    ok = n > 0
    na, nb, n = na[ok], nb[ok], n[ok]
    if n.size < 3:
        return float("nan")
    grp = (nb > na).astype(int)
    chi2 = 0.0
    for g in (0, 1):  # the two batches
        sel = grp == g
        if sel.any():
            p = np.clip(nb[sel].sum() / n[sel].sum(), 1e-9, 1 - 1e-9)
            chi2 += float(np.sum((nb[sel] - n[sel] * p) ** 2 / (n[sel] * p * (1 - p))))
    return float(max(1.0, chi2 / max(n.size - 2, 1)))


def label_fractions(table: pd.DataFrame, a: str, b: str, mode: str = "exchange", level: float = 0.95, *,
                    dispersion: float = 1.0) -> pd.DataFrame:
    """Per particle: ``fraction_<b>`` with ``fraction_lo_<b>``, ``fraction_hi_<b>`` and, for
    ``exchange``, ``mixing`` (see the module docstring).

    ``dispersion``: the counts' over-dispersion ``phi`` (1: binomial counts); the interval is that
    of ``k / phi`` of ``n / phi`` molecules (:func:`exchange_dispersion` estimates it).
    """
    from scipy.stats import beta

    if mode not in ("exchange", "subset"):
        raise CorrelateError(f"mode must be 'exchange' or 'subset', got {mode!r}", field="mode")
    phi = float(dispersion)
    if not (np.isfinite(phi) and phi >= 1.0):
        raise CorrelateError(f"dispersion must be a number >= 1, got {dispersion!r}", field="dispersion")
    na, nb = _counts(table, a), _counts(table, b)
    k, n = (nb, na + nb) if mode == "exchange" else (np.minimum(nb, na), na)
    alpha = 1.0 - level
    ke, ne = k / phi, n / phi
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(n > 0, k / n, np.nan)
        lo = np.where(k > 0, beta.ppf(alpha / 2, ke, ne - ke + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - alpha / 2, ke + 1, ne - ke), 1.0)
    lo, hi = np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)
    out = pd.DataFrame({"particle_id": table["particle_id"].to_numpy(), f"fraction_{b}": f,
                        f"fraction_lo_{b}": lo, f"fraction_hi_{b}": hi, "n_total": n})
    if mode == "exchange":
        out["mixing"] = np.minimum(f, 1 - f)
    out.attrs["dispersion"] = phi
    return out


@dataclass
class ExchangeFit:
    """Single-exponential exchange kinetics: ``rate`` (1 / time unit) with ``rate_lo``,
    ``rate_hi``; ``m_inf`` (plateau mixing), ``m0`` (mixing at t = 0), and the data."""

    rate: float
    rate_lo: float
    rate_hi: float
    m_inf: float
    m0: float
    t: np.ndarray
    m: np.ndarray
    m_se: np.ndarray

    def model(self, t) -> np.ndarray:
        """Mixing predicted at times ``t``."""
        t = np.asarray(t, float)
        return self.m_inf - (self.m_inf - self.m0) * np.exp(-self.rate * t)

    def plot(self):
        """Mixing against time with the fit (Figure)."""
        from ..plot._figure import new_figure

        fig = new_figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
        ax = fig.subplots()
        ax.errorbar(self.t, self.m, yerr=1.96 * self.m_se, fmt="o", label="samples (95 %)")
        tt = np.linspace(0, self.t.max() * 1.05, 200)
        ax.plot(tt, self.model(tt), label=f"k = {self.rate:.3g} [{self.rate_lo:.3g}, {self.rate_hi:.3g}]")
        ax.set_xlabel("time")
        ax.set_ylabel("mixing (minority fraction)")
        ax.legend()
        return fig


def _fit_fixed_k(k, t, m, w, free_m0):
    e = np.exp(-k * t)
    cols = [1 - e] if not free_m0 else [1 - e, e]
    a = np.column_stack(cols) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(a, m * np.sqrt(w), rcond=None)
    r = m * np.sqrt(w) - a @ coef
    m_inf = coef[0]
    m0 = coef[1] if free_m0 else 0.0
    return float(r @ r), float(m_inf), float(m0)


def fit_exchange(t, m, m_se, *, free_m0: bool = False, level: float = 0.95) -> ExchangeFit:
    """Fit single-exponential exchange kinetics to per-sample mixing ``m`` at times ``t``.

    Parameters
    ----------
    t, m, m_se
        Sample times (any unit), mean mixing and its standard error per sample.
    free_m0
        Fit the mixing at t = 0 too (default: 0, separate batches at the start).
    """
    from scipy.optimize import minimize_scalar
    from scipy.stats import chi2

    t, m, se = (np.asarray(v, float) for v in (t, m, m_se))
    ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(se) & (se > 0)
    t, m, se = t[ok], m[ok], se[ok]
    n_par = 3 if free_m0 else 2
    if t.size <= n_par:
        raise CorrelateError(f"{t.size} samples with a mixing value; the fit needs more than {n_par}", field="times")
    w = 1.0 / se ** 2
    span = t.max() - t[t > 0].min() if (t > 0).any() else 1.0
    ks = np.geomspace(1e-3 / t.max(), 1e3 / max(span, 1e-12), 400)
    rss = np.array([_fit_fixed_k(k, t, m, w, free_m0)[0] for k in ks])
    i = int(np.argmin(rss))
    res = minimize_scalar(lambda lk: _fit_fixed_k(np.exp(lk), t, m, w, free_m0)[0],
                          bracket=(np.log(ks[max(i - 1, 0)]), np.log(ks[i]), np.log(ks[min(i + 1, len(ks) - 1)])))
    k = float(np.exp(res.x))
    best, m_inf, m0 = _fit_fixed_k(k, t, m, w, free_m0)
    scale = max(1.0, best / (t.size - n_par))  # over-dispersion beyond the standard errors
    cut = best + chi2.ppf(level, 1) * scale
    inside = ks[rss <= cut]
    lo = float(inside.min()) if inside.size else float("nan")
    hi = float(inside.max()) if inside.size else float("nan")
    if inside.size and (inside.max() >= ks[-1] or inside.min() <= ks[0]):
        hi = float("inf") if inside.max() >= ks[-1] else hi
        lo = 0.0 if inside.min() <= ks[0] else lo
    return ExchangeFit(k, min(lo, k), max(hi, k), m_inf, m0, t, m, se)
