"""The excess (systematic) fiducial localisation error and its estimators.

Every real fiducial has, on top of the standard error of its mean position (what detection
states as its covariance), an error of its own that averaging does not remove: a dye shell
that is not centred on the gold core, a chromatic offset, residual drift, a label's linker.
Across beads that error is modelled as independent, zero-mean and isotropic with a common
per-axis variance ``s^2`` (the *excess FLE*), the same for every bead and both sides combined,
so each residual has the covariance

    C_i(s) = Sigma_fixed,i + A Sigma_moving,i A^T + s^2 I          (nm^2).

Assumptions: the excess is isotropic (in 3-D also along z), common to all beads, and white in
space (uncorrelated between beads); a smooth deformation is what correlates neighbouring
residuals. The excess lives on the fiducials only: a control point (a particle, a target) is
not a bead, so the predicted TRE carries ``s^2`` only through the fitted parameters.

Estimators
----------
- Linear models (:func:`paule_mandel`): ``s^2`` solves ``chi2(s)/dof = 1`` with the model
  refitted at every ``s`` and ``dof = N D - p`` the residual degrees of freedom (the
  Paule-Mandel moment estimator of a variance component; REML-like in that the ``p`` fitted
  parameters are not counted as residual freedom); ``s = 0`` when the stated noise explains the
  residuals already (``chi2(0)/dof <= 1``).
- Robust start for outlier flagging (:func:`robust_excess`): the same equation on the median of
  the per-pair statistics, so that a few gross outliers do not set ``s``.
- Smooth deformation (:func:`~correlate.registration._deformation.deformation_reml`): REML
  with a thin-plate deformation term; its ``s^2`` is the excess that remains once the
  deformation is modelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RegistrationError
from ._linear_fit import _fit_linear

__all__ = ["add_excess", "excess_arg", "paule_mandel", "robust_excess"]


def add_excess(cov: np.ndarray, s2: float) -> np.ndarray:
    """``cov + s2 * I`` for an (N, D, D) covariance stack (nm^2)."""
    d = cov.shape[-1]
    return cov + float(s2) * np.eye(d)


def excess_arg(value, model: str, known: bool) -> tuple[float, bool]:
    """(excess variance nm^2, estimate?) from ``fit_model``'s ``excess_fle_nm``."""
    if isinstance(value, str):
        if value != "estimate":
            raise RegistrationError(f"excess_fle_nm must be a number (nm) or 'estimate', got {value!r}", field="excess_fle_nm")
        if model == "tps":
            raise RegistrationError(
                "excess_fle_nm='estimate' needs a linear model; for a spline the excess comes from "
                "select_model / fit_landmarks (the deformation test), or give a number",
                field="excess_fle_nm", stage="fit", hint="excess_fle_nm=<nm>",
            )
        if not known:
            raise RegistrationError(
                "excess_fle_nm='estimate' needs stated fiducial covariances: without them the residuals "
                "set the whole noise level and no excess can be told apart",
                field="excess_fle_nm", stage="fit", hint="excess_fle_nm=<nm>",
            )
        return 0.0, True
    v = float(value)
    if not (np.isfinite(v) and v >= 0):
        raise RegistrationError(f"excess_fle_nm must be finite and >= 0 nm, got {value!r}", field="excess_fle_nm")
    return v * v, False


def _solve_decreasing(f, hi: float, rtol: float = 1e-3) -> float:
    """Root in (0, hi] of a decreasing ``f`` with ``f(0) > 0``; extends ``hi`` if needed."""
    from scipy.optimize import brentq

    for _ in range(60):
        if f(hi) <= 0:
            break
        hi *= 4.0
    else:
        raise RegistrationError(
            "could not bracket the excess fiducial error (the residual statistic does not fall with it)",
            stage="fit",
            diagnostics={"upper_nm2": hi},
        )
    return float(brentq(f, 0.0, hi, rtol=rtol, xtol=1e-12 * max(hi, 1.0)))


def paule_mandel(model: str, x, y, cx, cy, *, max_iter: int = 30, reflection: bool | None = False) -> tuple[float, Any]:
    """Excess per-axis variance ``s^2`` (nm^2) of a linear ``model``: ``chi2(s)/dof = 1``.

    Parameters
    ----------
    model
        One of the linear models.
    x, y
        (N, D) moving and fixed fiducials (nm).
    cx, cy
        (N, D, D) their stated covariances (nm^2); ``s^2 I`` is added to the fixed side
        (both sides combined: the residual covariance gets ``s^2 I``).
    reflection
        Handedness of rigid/similarity fits, as ``_fit_linear`` takes it (True: improper).

    Returns
    -------
    (s2, fit)
        The estimate (nm^2, >= 0) and the linear fit at it (a :class:`Fit` whose ``res_cov``
        includes ``s^2``).
    """
    fit0 = _fit_linear(model, x, y, cx, cy, max_iter=max_iter, reflection=reflection)
    dof = fit0.dof
    if not dof > 0 or fit0.chi2 <= dof:
        return 0.0, fit0
    cache: dict[float, Any] = {}

    def f(s2: float) -> float:
        fit = _fit_linear(model, x, y, cx, add_excess(cy, s2), max_iter=max_iter, reflection=reflection)
        cache[s2] = fit
        return fit.chi2 / dof - 1.0

    # chi2(s) <= sum |r0|^2 / s^2 for the residuals r0 of any fixed parameters: a bracket.
    hi = float(np.sum(fit0.residuals**2) / dof)
    s2 = _solve_decreasing(f, hi)
    fit = cache.get(s2) or _fit_linear(model, x, y, cx, add_excess(cy, s2), max_iter=max_iter, reflection=reflection)
    return s2, fit


def robust_excess(model: str, x, y, cx, cy) -> float:
    """Outlier-resistant excess ``s^2`` (nm^2): the median per-pair statistic
    ``r_i^T C_i(s)^-1 r_i`` equals its expectation ``median(chi2_D) * dof / (N D)``."""
    from scipy.stats import chi2

    n, d = x.shape
    fit0 = _fit_linear(model, x, y, cx, cy, reflection=None)
    if not fit0.dof > 0:
        return 0.0
    target = chi2.median(d) * fit0.dof / (n * d)

    def stat(fit) -> float:
        return float(np.median(np.einsum("ni,nij,nj->n", fit.residuals, np.linalg.inv(fit.res_cov), fit.residuals)))

    if stat(fit0) <= target:
        return 0.0

    def f(s2: float) -> float:
        return stat(_fit_linear(model, x, y, cx, add_excess(cy, s2), reflection=None)) / target - 1.0

    hi = float(np.median(np.sum(fit0.residuals**2, axis=1)) / (d * target) + 1e-9)
    return _solve_decreasing(f, hi, rtol=1e-2)
