"""The excess (systematic) fiducial localisation error, and the test for a smooth deformation.

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
- Smooth deformation (:func:`deformation_reml`): restricted maximum likelihood on the affine
  contrasts of the targets, with the covariance
  ``theta * (Phi (x) I_D) + blockdiag(C_i(0)) + s^2 I``, where ``Phi`` is the thin-plate kernel
  (``r^2 log r`` in 2-D, ``-r`` in 3-D) in the spline's scaled coordinates: the generalised
  covariance of a random smooth deformation whose best predictor is the thin-plate spline.
  ``theta`` and ``s^2`` are both free; the likelihood ratio against ``theta = 0`` (a boundary
  value, so ``p = 0.5 P(chi2_1 > LR)``) says whether the residuals of the best affine model
  are spatially correlated beyond the noise, i.e. whether a non-linear model is needed; its
  ``s^2`` is the excess that remains once the deformation is modelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RegistrationError

__all__ = ["add_excess", "affine_kriging_var", "deformation_reml", "paule_mandel", "robust_excess"]


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
    from ._fit import _fit_linear

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

    from ._fit import _fit_linear

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


def _contrasts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis Q (N, N-D-1) of the vectors orthogonal to every affine function of
    the fiducial positions, and the thin-plate kernel Phi (N, N) in scaled coordinates."""
    from ._tps import _frame, _kernel_u

    n, d = x.shape
    x0, L = _frame(x)
    u = (x - x0) / L
    p = np.hstack([u, np.ones((n, 1))])
    q, _ = np.linalg.qr(p, mode="complete")
    phi = _kernel_u(np.linalg.norm(u[:, None] - u[None], axis=-1), d)
    return q[:, d + 1 :], phi


def deformation_reml(x, y, res_cov, *, s2_fixed: float | None = None) -> dict[str, float]:
    """REML test for a smooth deformation beyond noise + excess, and the excess under it.

    Parameters
    ----------
    x, y
        (N, D) moving and fixed fiducials (nm).
    res_cov
        (N, D, D) stated residual covariance of each pair (nm^2), without the excess.
    s2_fixed
        Hold the excess at this value (nm^2) instead of estimating it.

    Returns
    -------
    dict
        ``theta`` (nm^2 per unit of the scaled kernel), ``s2`` (excess with the deformation,
        nm^2), ``s2_null`` (excess without it), ``lr`` (likelihood-ratio statistic) and
        ``pvalue`` (of ``theta = 0``); NaN entries when N is too small (fewer than 2
        contrasts per axis).
    """
    from scipy.stats import chi2

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n, d = x.shape
    nan = {"theta": float("nan"), "s2": float("nan"), "s2_null": float("nan"), "lr": float("nan"), "pvalue": float("nan")}
    if n - d - 1 < 2:
        return nan
    q, phi = _contrasts(x)
    m = q.shape[1]
    z = (q.T @ y).reshape(-1)  # contrast a, axis k at a * d + k
    kz = np.kron(q.T @ phi @ q, np.eye(d))
    vz = np.einsum("ia,ib,ikl->akbl", q, q, np.asarray(res_cov, float)).reshape(m * d, m * d)
    scale = float(z @ z / (m * d)) or 1.0  # nm^2: the search runs in units of the data variance
    kscale = float(np.trace(kz) / (m * d)) or 1.0
    zs, vs, ks = z / np.sqrt(scale), vz / scale, kz / kscale
    eye = np.eye(m * d)

    thetas = np.concatenate([[0.0], np.exp(np.linspace(-16.0, 16.0, 321))])

    def profile(s2: float) -> tuple[float, float, float]:
        """(nll at theta = 0, min nll over theta, its theta) at excess ``s2``: with
        B = vs + s2 I = L L^T and L^-1 ks L^-T = U diag(lam) U^T, C = theta ks + B has
        logdet C = logdet B + sum log(1 + theta lam) and z^T C^-1 z = sum w^2 / (1 + theta lam)."""
        lb = np.linalg.cholesky(vs + s2 * eye)
        li = np.linalg.inv(lb)
        lam, u = np.linalg.eigh(li @ ks @ li.T)
        lam = np.clip(lam, 0.0, None)
        w2 = (u.T @ (li @ zs)) ** 2
        den = 1.0 + thetas[:, None] * lam[None]
        v = np.sum(np.log(np.diag(lb))) + 0.5 * np.sum(np.log(den) + w2[None] / den, axis=1)
        i = int(np.argmin(v))
        return float(v[0]), float(v[i]), float(thetas[i])

    coarse = np.concatenate([[0.0], np.exp(np.linspace(-14.0, 4.0, 19))])
    coarse_vals = [profile(g) for g in coarse] if s2_fixed is None else []

    def search(col: int) -> tuple[float, float, float]:
        """Minimum over the excess of the profile's column ``col`` (0: theta = 0, 1: theta free)."""
        if s2_fixed is not None:
            pr = profile(float(s2_fixed) / scale)
            return pr[col], pr[2] if col else 0.0, float(s2_fixed) / scale
        grid, vals, step = coarse, coarse_vals, 1.0
        best = (np.inf, 0.0, 0.0)
        for _ in range(3):
            i = int(np.argmin([v[col] for v in vals]))
            best = min(best, (vals[i][col], vals[i][2] if col else 0.0, float(grid[i])))
            c = np.log(grid[i]) if grid[i] > 0 else np.log(coarse[1])
            step /= 4.0
            grid = np.exp(c + step * np.arange(-4, 5))
            vals = [profile(g) for g in grid]
        i = int(np.argmin([v[col] for v in vals]))
        return min(best, (vals[i][col], vals[i][2] if col else 0.0, float(grid[i])))

    n0, _, s0 = search(0)
    best = search(1)
    if best[0] > n0:
        best = (n0, 0.0, s0)
    lr = max(0.0, 2.0 * (n0 - best[0]))
    return {
        "theta": best[1] * scale / kscale,
        "s2": best[2] * scale,
        "s2_null": s0 * scale,
        "lr": lr,
        "pvalue": float(0.5 * chi2.sf(lr, 1)) if lr > 0 else 1.0,
    }


def affine_kriging_var(centers, weights, points) -> np.ndarray:
    """Variance factor of a smooth deformation that an affine fit does not follow, at ``points``.

    For a random deformation ``g`` with the thin-plate generalised covariance (as in
    :func:`deformation_reml`), the error that a weighted affine fit to ``g(X)`` leaves at ``p``,
    ``g(p) - l(p)^T g(X)`` with ``l(p)`` the affine smoother row, has variance
    ``theta * kappa(p)``, ``kappa(p) = l^T Phi l - 2 l^T phi(p)`` (``l`` reproduces affine
    functions, so the generalised covariance applies). Small near the fiducials' centroid and
    growing outside their hull.

    Parameters
    ----------
    centers
        (N, D) fiducials (nm); ``weights`` (N,) their relative weights.
    points
        (M, D) positions (nm) in the moving frame.

    Returns
    -------
    numpy.ndarray
        (M,) ``kappa`` (dimensionless, >= 0).
    """
    from ._tps import _frame, _kernel_u

    c = np.asarray(centers, float)
    n, d = c.shape
    x0, L = _frame(c)
    u = (c - x0) / L
    w = np.asarray(weights, float)
    p = np.hstack([u, np.ones((n, 1))])
    g = np.linalg.solve(p.T @ (w[:, None] * p), (w[:, None] * p).T)  # (D+1, N)
    phi = _kernel_u(np.linalg.norm(u[:, None] - u[None], axis=-1), d)
    pts = (np.atleast_2d(np.asarray(points, float)) - x0) / L
    out = np.empty(len(pts))
    for a in range(0, len(pts), 4096):  # bounded memory for TRE maps
        q = pts[a : a + 4096]
        lp = np.hstack([q, np.ones((len(q), 1))]) @ g
        k = _kernel_u(np.linalg.norm(q[:, None] - u[None], axis=-1), d)
        out[a : a + 4096] = np.einsum("mn,mn->m", lp, lp @ phi) - 2 * np.einsum("mn,mn->m", lp, k)
    return np.clip(out, 0.0, None)
