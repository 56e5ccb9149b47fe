"""Orientation / accessibility: the fraction of a particle's antibodies with an accessible binding
site (label B counted among all antibodies, label A), per particle with an exact interval, and its
dependence on particle size as a binomial GLM.

The model is ``logit p = b0 + b1 (d - d_ref)`` for ``k`` accessible among ``n`` antibodies on a
particle of diameter ``d`` (nm; ``d_ref`` the median diameter, so ``b0`` is the log-odds of a
typical particle), fitted by iteratively reweighted least squares. The counts are blink-corrected
molecule estimates, whose own error adds to the binomial sampling: the dispersion
``phi = X^2 / (N - 2)`` (Pearson) is estimated from the data and, where above 1, scales the
coefficients' covariance (quasi-binomial), each particle's interval (that of ``k / phi`` of
``n / phi`` antibodies) and the likelihood-ratio test, which then compares the deviance drop
divided by ``phi`` with an F(1, N - 2) distribution (chi^2(1) when ``phi <= 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._fractions import label_fractions

__all__ = ["AccessibilityFit", "accessibility", "fit_size_dependence"]


@dataclass
class AccessibilityFit:
    """Size dependence of the accessible fraction.

    Attributes
    ----------
    intercept, slope_per_nm
        ``b0`` (log-odds at ``d_ref_nm``) and ``b1`` (per nm of diameter), each with ``_lo``/``_hi``
        (95 % Wald, dispersion-scaled).
    p_value, lr_statistic
        Likelihood-ratio test of ``b1 = 0`` (see module docstring) and its statistic.
    dispersion
        Estimated ``phi`` (1 = binomial); ``dispersion_used`` what scaled the test.
    alpha, size_dependent
        The level and whether the test rejects "no dependence on size" at it.
    table
        Per particle: ``particle_id``, diameter, ``fraction_<b>`` with its interval, counts.
    """

    intercept: float
    intercept_lo: float
    intercept_hi: float
    slope_per_nm: float
    slope_lo: float
    slope_hi: float
    d_ref_nm: float
    p_value: float
    lr_statistic: float
    dispersion: float
    dispersion_used: float
    n_particles: int
    alpha: float
    size_dependent: bool
    cov: np.ndarray
    table: pd.DataFrame
    labels: tuple[str, str] = ("", "")
    diameter_column: str = "equivalent_diameter_nm"
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, d_nm, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fitted fraction at diameters ``d_nm`` with its pointwise interval (lo, hi)."""
        from scipy.stats import norm

        d = np.asarray(d_nm, float)
        x = np.column_stack([np.ones(d.size), d.ravel() - self.d_ref_nm])
        eta = x @ np.array([self.intercept, self.slope_per_nm])
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov, x))
        z = norm.ppf(0.5 + level / 2)
        f = lambda v: (1.0 / (1.0 + np.exp(-v))).reshape(d.shape)  # noqa: E731
        return f(eta), f(eta - z * se), f(eta + z * se)

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers of the fit."""
        keys = ("intercept", "intercept_lo", "intercept_hi", "slope_per_nm", "slope_lo", "slope_hi", "d_ref_nm",
                "p_value", "lr_statistic", "dispersion", "dispersion_used", "n_particles", "alpha", "size_dependent")
        return {k: getattr(self, k) for k in keys} | {"labels": list(self.labels),
                                                         "diameter_column": self.diameter_column}

    def plot(self):
        """Per-particle fraction (95 % intervals) against diameter, with the fit and its band (Figure)."""
        from ..plot._carriers import plot_accessibility

        return plot_accessibility(self)


def _irls(x: np.ndarray, k: np.ndarray, n: np.ndarray, iters: int = 50) -> tuple[np.ndarray, np.ndarray, float]:
    """Binomial logistic regression: coefficients, unscaled covariance, deviance."""
    beta = np.zeros(x.shape[1])
    p0 = np.clip(k.sum() / n.sum(), 1e-6, 1 - 1e-6)
    beta[0] = np.log(p0 / (1 - p0))
    for _ in range(iters):
        eta = x @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        w = np.maximum(n * p * (1 - p), 1e-12)
        z = eta + (k - n * p) / w
        xtw = x.T * w
        new = np.linalg.solve(xtw @ x, xtw @ z)
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
    p = np.clip(1.0 / (1.0 + np.exp(-(x @ beta))), 1e-12, 1 - 1e-12)
    cov = np.linalg.inv((x.T * (n * p * (1 - p))) @ x)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(k > 0, k * np.log(k / (n * p)), 0.0)
        t2 = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p))), 0.0)
    return beta, cov, float(2 * np.sum(t1 + t2))


def fit_size_dependence(k, n, diameter_nm, *, alpha: float = 0.05, dispersion: float | str = "estimate",
                        d_ref_nm: float | None = None) -> dict[str, Any]:
    """Binomial GLM of ``k`` of ``n`` against diameter (nm); see the module docstring.

    ``dispersion``: ``"estimate"`` (Pearson, at least 1), or a number (1: plain binomial).
    Returns the fields of :class:`AccessibilityFit` (without the table) as a dict.
    """
    from scipy.stats import chi2, f as fdist, norm

    k, n, d = (np.asarray(v, float) for v in (k, n, diameter_nm))
    ok = np.isfinite(k) & np.isfinite(n) & np.isfinite(d) & (n > 0)
    k, n, d = np.minimum(k[ok], n[ok]), n[ok], d[ok]
    if k.size < 4 or np.ptp(d) <= 0:
        raise CorrelateError(f"{k.size} particles with counts and a diameter (spread {np.ptp(d) if d.size else 0:.3g} "
                             f"nm): a size dependence needs at least 4 of different sizes", field="diameter")
    ref = float(np.median(d)) if d_ref_nm is None else float(d_ref_nm)
    x = np.column_stack([np.ones(k.size), d - ref])
    beta, cov, dev1 = _irls(x, k, n)
    _, _, dev0 = _irls(x[:, :1], k, n)
    p = 1.0 / (1.0 + np.exp(-(x @ beta)))
    pearson = float(np.sum((k - n * p) ** 2 / np.maximum(n * p * (1 - p), 1e-12)))
    phi_hat = pearson / max(k.size - 2, 1)
    phi = max(1.0, phi_hat) if dispersion == "estimate" else float(dispersion)
    lr = max(dev0 - dev1, 0.0)
    pval = float(fdist.sf(lr / phi, 1, k.size - 2)) if phi > 1.0 else float(chi2.sf(lr, 1))
    cov = cov * phi
    z = norm.ppf(1 - 0.025)
    se = np.sqrt(np.diag(cov))
    return {"intercept": float(beta[0]), "intercept_lo": float(beta[0] - z * se[0]),
            "intercept_hi": float(beta[0] + z * se[0]), "slope_per_nm": float(beta[1]),
            "slope_lo": float(beta[1] - z * se[1]), "slope_hi": float(beta[1] + z * se[1]), "d_ref_nm": ref,
            "p_value": pval, "lr_statistic": float(lr / phi), "dispersion": float(phi_hat), "dispersion_used": phi,
            "n_particles": int(k.size), "alpha": float(alpha), "size_dependent": bool(pval < alpha), "cov": cov}


def accessibility(table: pd.DataFrame, all_label: str, accessible_label: str, *,
                  diameter_column: str = "equivalent_diameter_nm", alpha: float = 0.05,
                  dispersion: float | str = "estimate", level: float = 0.95) -> AccessibilityFit:
    """Accessible fraction per particle and its dependence on size.

    Parameters
    ----------
    table
        Per-particle table with ``n_molecules_<all_label>``, ``n_molecules_<accessible_label>``
        and ``diameter_column`` (nm; EM/AFM equivalent diameter or a cluster's).
    all_label, accessible_label
        Label counting every antibody, and the label of those with an accessible site.
    alpha
        Level of the likelihood-ratio test of a size dependence.
    dispersion
        ``"estimate"`` (default) or a fixed value (1: binomial counts).
    """
    if diameter_column not in table.columns:
        raise CorrelateError(f"the table has no {diameter_column!r} column (size columns: "
                             f"{[c for c in table.columns if c.endswith('_nm')][:8]})", field="diameter_column")
    fr = label_fractions(table, all_label, accessible_label, mode="subset", level=level)
    fr.insert(1, diameter_column, table[diameter_column].to_numpy(float))
    fr[f"n_molecules_{all_label}"] = table[f"n_molecules_{all_label}"].to_numpy(float)
    fr[f"n_molecules_{accessible_label}"] = table[f"n_molecules_{accessible_label}"].to_numpy(float)
    k = np.round(fr[f"fraction_{accessible_label}"].to_numpy(float) * fr["n_total"].to_numpy(float))
    fit = fit_size_dependence(k, fr["n_total"].to_numpy(float), fr[diameter_column].to_numpy(float),
                              alpha=alpha, dispersion=dispersion)
    if fit["dispersion_used"] > 1.0:  # the counts' own error widens each particle's interval too
        wide = label_fractions(table, all_label, accessible_label, mode="subset", level=level,
                               dispersion=fit["dispersion_used"])
        for c in (f"fraction_lo_{accessible_label}", f"fraction_hi_{accessible_label}"):
            fr[c] = wide[c].to_numpy()
    return AccessibilityFit(**fit, table=fr, labels=(all_label, accessible_label), diameter_column=diameter_column)
