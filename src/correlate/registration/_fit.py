"""Point-based fits (translation, rigid, similarity, affine, TPS): :func:`fit_model`.

Every linear model is written ``T(x) = A (x - c) + t`` with ``c`` the weighted centroid of the
moving (source) fiducials, which decouples the translation from the linear part and keeps the
normal equations well conditioned in nm. The estimate is the generalised (errors-in-variables,
first-order) least-squares solution

    minimise  sum_i r_i^T C_i^-1 r_i,   r_i = y_i - T(x_i),   C_i = Sigma_y,i + A Sigma_x,i A^T

seeded by the closed form (weighted Umeyama / weighted LS) and refined by Gauss-Newton with a
local parameterisation (left rotation increment, log-scale, affine increment, translation). The
parameter covariance is the inverse of the normal matrix at convergence.

The pieces live beside this entry point: the models and their parameterisation in
:mod:`~correlate.registration._models`, the linear solver in
:mod:`~correlate.registration._linear_fit`, the spline in
:mod:`~correlate.registration._tps_fit`, the result in :mod:`~correlate.registration._fit_result`.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ._excess import add_excess, excess_arg, paule_mandel
from ._fit_result import Fit
from ._linear_fit import _check_reflection, _fit_linear, _prepare
from ._models import LINEAR_MODELS, MODELS, min_pairs, model_jacobian, n_params
from ._tps_fit import fit_tps

__all__ = [
    "LINEAR_MODELS",
    "MODELS",
    "Fit",
    "fit_model",
    "min_pairs",
    "model_jacobian",
    "n_params",
]


def fit_model(
    source,
    target,
    model: str = "similarity",
    source_cov=None,
    target_cov=None,
    *,
    smoothing: float | str = "loo",
    noise_scale: float | None = None,
    check_reflection: bool = True,
    reflection: bool = False,
    max_iter: int = 30,
    excess_fle_nm: float | str = 0.0,
) -> Fit:
    """Fit ``model`` mapping moving ``source`` fiducials onto fixed ``target`` fiducials.

    Parameters
    ----------
    source, target
        (N, D) corresponding fiducial positions (nm), x, y[, z], D = 2 or 3.
    model
        ``"translation"``, ``"rigid"``, ``"similarity"``, ``"affine"`` or ``"tps"``.
    source_cov, target_cov
        Localisation covariance of each fiducial (nm^2): (N, D, D), (D, D), (N,) variances or a
        scalar. Both default to unknown: then unit weights are used and the noise level is
        estimated from the residuals (``noise_known=False``).
    smoothing
        TPS only: ``"loo"`` (leave-one-out choice, default), ``"gcv"`` or a number.
    noise_scale
        Multiply the stated covariances by this factor in the TRE prediction; default 1 (or the
        residual-based estimate when the covariances are unknown).
    check_reflection
        With ``reflection=False``: raise :class:`~correlate.errors.RegistrationError` if the pairs
        fit a mirror image (significantly better than any proper rotation); never silently fixed.
        ``check_reflection=False`` (refits of an already decided fit: leave-one-out, outlier
        flags) neither checks nor constrains: rigid/similarity take the handedness that fits best.
    reflection
        True when pairing found the frames mirrored: rigid/similarity are fitted as improper
        transforms (weighted Umeyama with det -1, then Gauss-Newton, which keeps the sign) and an
        affine fit may have det A < 0.
    excess_fle_nm
        Systematic per-fiducial error (per-axis standard deviation, nm, both sides combined)
        added as ``excess_fle_nm^2 I`` to every pair's covariance; ``"estimate"`` solves
        ``chi2/dof = 1`` on this model's own residuals (linear models; see
        :func:`~correlate.registration._excess.paule_mandel`). Default 0: the stated
        covariances as they are. With unknown covariances a number makes ``excess_fle_nm^2 I``
        the (known) noise.

    Returns
    -------
    Fit

    Raises
    ------
    RegistrationError
        Too few pairs, degenerate (collinear / coplanar) geometry, or a reflection.
    """
    x, y, cx, cy, known = _prepare(source, target, source_cov, target_cov)
    n, d = x.shape
    need = min_pairs(model, d)
    if n < need:
        raise RegistrationError(
            f"a {d}-D {model} fit needs at least {need} fiducial pairs, got {n}", field="landmarks"
        )
    s2, estimate = excess_arg(excess_fle_nm, model, known)
    if not known and s2 > 0:
        cx, cy, known = np.zeros((n, d, d)), np.zeros((n, d, d)), True
    if not known:
        cx = np.zeros((n, d, d))
        cy = np.broadcast_to(np.eye(d), (n, d, d)).copy()
    if model == "tps":
        fit = fit_tps(x, y, cx, add_excess(cy, s2), smoothing=smoothing, noise_known=known, noise_scale=noise_scale)
        fit.excess_fle_nm = float(np.sqrt(s2))
        return fit
    handed = True if reflection else (False if check_reflection else None)
    if estimate:
        s2, fit = paule_mandel(model, x, y, cx, cy, max_iter=max_iter, reflection=handed)
        fit.notes.append(f"excess fiducial error {np.sqrt(s2):.3g} nm per axis (chi2/dof = 1 on the {model} residuals)")
    else:
        fit = _fit_linear(model, x, y, cx, add_excess(cy, s2), max_iter=max_iter, reflection=handed)
    fit.excess_fle_nm = float(np.sqrt(s2))
    cy = cy + s2 * np.eye(d)
    if reflection and model in ("rigid", "similarity"):
        fit.notes.append(f"{model} fitted as a reflection (det A < 0): pairing found the frames mirrored")
    if check_reflection and not reflection and model in ("rigid", "similarity", "affine"):
        _check_reflection(model, x, y, cx, cy, fit, max_iter)
    if not known:
        s2 = fit.chi2 / fit.dof if fit.dof > 0 else float("nan")
        fit.noise_known = False
        fit.notes.append("fiducial covariances unknown: noise estimated from the residuals")
        if noise_scale is None:
            if not np.isfinite(s2):
                fit.notes.append("no residual degrees of freedom: TRE prediction not available")
                s2 = float("nan")
            noise_scale = s2
    if noise_scale is not None:
        fit.noise_scale = float(noise_scale)
        fit.param_cov = fit.param_cov * fit.noise_scale
    return fit
