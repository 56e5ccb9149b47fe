"""The weighted linear fits: closed-form seed, Gauss-Newton refinement, the mirror check.

The estimate is the generalised (errors-in-variables, first-order) least-squares solution

    minimise  sum_i r_i^T C_i^-1 r_i,   r_i = y_i - T(x_i),   C_i = Sigma_y,i + A Sigma_x,i A^T

seeded by the closed form (weighted Umeyama / weighted LS) and refined by Gauss-Newton in the
local parameterisation of :mod:`correlate.registration._models`. The parameter covariance is
the inverse of the normal matrix at convergence.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ..transforms import Affine
from ._fit_result import Fit
from ._models import _update, model_jacobian, n_params

_COV_FLOOR = 1e-6  # nm^2, keeps weights finite for exact (noise-free) inputs


def _weighted_centroid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w[:, None] * x).sum(0) / w.sum()


def _closed_form(model: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, c: np.ndarray, reflection: bool | None = False):
    """Seed: weighted closed form with scalar weights. Returns (A, t, reflection_flag).

    ``reflection``: rigid/similarity only; False forces det A > 0, True det A < 0, None takes
    whichever handedness fits best (the unconstrained Procrustes solution).
    """
    d = x.shape[1]
    wn = w / w.sum()
    q = x - c
    my = (wn[:, None] * y).sum(0)
    if model == "translation":
        return np.eye(d), my, False
    qy = y - my
    if model == "affine":
        sw = np.sqrt(wn)[:, None]
        sol, *_ = np.linalg.lstsq(sw * q, sw * qy, rcond=None)
        return sol.T, my, False
    # Umeyama with the handedness guard.
    cov = (wn[:, None, None] * qy[:, :, None] * q[:, None, :]).sum(0)
    u, s, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sv = np.ones(d)
    if reflection is not None and (sign < 0) != bool(reflection):
        sv[-1] = -1
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt) * np.prod(sv))
    r = u @ np.diag(sv) @ vt
    scale = 1.0
    if model == "similarity":
        var = (wn * (q**2).sum(1)).sum()
        scale = float((s * sv).sum() / var) if var > 0 else 1.0
        if scale <= 0:
            scale = 1.0
    return scale * r, my, bool(sign < 0)


def _prepare(source, target, source_cov, target_cov):
    x = np.atleast_2d(np.asarray(source, float))
    y = np.atleast_2d(np.asarray(target, float))
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] not in (2, 3):
        raise RegistrationError(
            f"source {x.shape} and target {y.shape} fiducials must both be (N, 2) or (N, 3)", field="landmarks"
        )
    n, d = x.shape
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise RegistrationError("fiducial positions contain NaN or inf", field="landmarks")

    def cov_of(c):
        if c is None:
            return np.zeros((n, d, d))
        c = np.asarray(c, float)
        if c.ndim == 0:
            return np.broadcast_to(c * np.eye(d), (n, d, d)).copy()
        if c.ndim == 1:
            return c[:, None, None] * np.eye(d)[None]
        if c.shape == (d, d):
            return np.broadcast_to(c, (n, d, d)).copy()
        if c.shape != (n, d, d):
            raise RegistrationError(f"covariance must be (N, D, D) = ({n}, {d}, {d}), got {c.shape}", field="cov")
        return c

    cx, cy = cov_of(source_cov), cov_of(target_cov)
    known = bool(np.any(cx != 0) or np.any(cy != 0))
    return x, y, cx, cy, known


def _chi2_sf(chi2: float, dof: float) -> float:
    from scipy.stats import chi2 as _c2

    if not np.isfinite(chi2) or dof < 1:  # an (almost) interpolating spline: no test possible
        return float("nan")
    return float(_c2.sf(chi2, dof))


def _fit_linear(model, x, y, cx, cy, max_iter=30, reflection: bool | None = False) -> Fit:
    n, d = x.shape
    cyf = cy + _COV_FLOOR * np.eye(d)
    w = 1.0 / np.maximum(np.trace(cx + cyf, axis1=1, axis2=2) / d, 1e-12)
    c = _weighted_centroid(x, w)
    a, t, _ = _closed_form(model, x, y, w, c, reflection)
    p = n_params(model, d)
    for _ in range(max_iter):
        cres = cyf + np.einsum("ij,njk,lk->nil", a, cx, a)
        wm = np.linalg.inv(cres)
        r = y - ((x - c) @ a.T + t)
        j = model_jacobian(model, a, c, x)
        nm = np.einsum("nip,nij,njq->pq", j, wm, j)
        g = np.einsum("nip,nij,nj->p", j, wm, r)
        try:
            delta = np.linalg.solve(nm, g)
        except np.linalg.LinAlgError:
            delta = np.linalg.lstsq(nm, g, rcond=None)[0]
        if not np.all(np.isfinite(delta)):
            break
        if model in ("rigid", "similarity"):  # keep Gauss-Newton steps in the linear regime
            k = p - d
            delta[:k] = np.clip(delta[:k], -0.5, 0.5)
        a, t = _update(model, a, t, delta)
        scale = np.concatenate([np.full(p - d, 1.0), np.full(d, 1e-3)])
        if np.all(np.abs(delta) * scale < 1e-12):
            break
    cres = cyf + np.einsum("ij,njk,lk->nil", a, cx, a)
    wm = np.linalg.inv(cres)
    r = y - ((x - c) @ a.T + t)
    j = model_jacobian(model, a, c, x)
    nm = np.einsum("nip,nij,njq->pq", j, wm, j)
    dg = np.sqrt(np.abs(np.diag(nm)))
    if np.any(dg == 0):
        cond = np.inf
    else:
        cond = np.linalg.cond(nm / np.outer(dg, dg))
    if not np.isfinite(cond) or cond > 1e10:
        shape = "collinear" if d == 2 or model != "affine" else "coplanar"
        raise RegistrationError(
            f"the {d}-D {model} fit is undetermined: the {n} fiducials are {shape} or coincident "
            f"(condition number {cond:.3g})",
            field="landmarks",
        )
    pcov = np.linalg.inv(nm)
    pcov = 0.5 * (pcov + pcov.T)
    chi2 = float(np.einsum("ni,nij,nj->", r, wm, r))
    dof = n * d - p
    tr = Affine.from_parts(a, t - a @ c)
    return Fit(
        model=model,
        transform=tr,
        ndim=d,
        center=c,
        linear=a,
        param_cov=pcov,
        source=x,
        target=y,
        res_cov=cres,
        residuals=r,
        chi2=chi2,
        dof=float(dof),
        pvalue=_chi2_sf(chi2, dof),
    )


def _check_reflection(model, x, y, cx, cy, fit: Fit, max_iter: int) -> None:
    d = x.shape[1]
    if model == "affine":
        det = np.linalg.det(fit.linear)
        if det < 0:
            raise RegistrationError(
                f"the affine fit of {len(x)} fiducial pairs is a reflection (det A = {det:.3g} < 0): one "
                "image is mirrored relative to the other; flip it explicitly (e.g. a Scale(-1, 1) "
                "transform) before registering",
                field="landmarks",
            )
        return
    flip = np.ones(d)
    flip[0] = -1
    try:
        mirrored = _fit_linear(model, x * flip, y, cx * np.outer(flip, flip), cy, max_iter)
    except RegistrationError:
        return
    # A mirrored fit that explains the data much better than any proper rotation: a reflection.
    thresh = max(25.0, 0.5 * fit.chi2)
    if mirrored.chi2 + thresh < fit.chi2 and mirrored.chi2 < 0.1 * fit.chi2:
        raise RegistrationError(
            f"the {len(x)} fiducial pairs match only as a mirror image (chi-square {mirrored.chi2:.3g} "
            f"mirrored vs {fit.chi2:.3g} for the best proper {model} transform): one image is "
            "reflected; flip it explicitly before registering",
            field="landmarks",
        )
