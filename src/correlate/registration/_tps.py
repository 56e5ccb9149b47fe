"""Smoothing thin-plate spline fit, its smoother matrix and the choice of the smoothing.

The spline solves ``(K + lambda diag(1/w)) c + P d = Y``, ``P^T c = 0`` (penalised least squares),
so the fitted value anywhere is linear in the targets: ``f(p) = s(p)^T Y``. That row ``s(p)``
gives both the leave-one-out residuals exactly (``e_i = r_i / (1 - H_ii)``) and the first-order
predicted TRE (``Sigma(p) = sum_i s_i(p)^2 C_i``).

The linear algebra runs in centred, scaled coordinates ``u = (x - x0) / L`` (well conditioned);
the result is converted to an exact :class:`~correlate.transforms.ThinPlateSpline` in nm.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ..transforms import ThinPlateSpline

__all__ = ["fit_tps", "tps_loo_residuals", "tps_smoother"]


def _frame(centers: np.ndarray):
    x0 = centers.mean(0)
    L = float(np.sqrt(np.mean(np.sum((centers - x0) ** 2, axis=1))))
    return x0, (L if L > 0 else 1.0)


def _kernel_u(r: np.ndarray, d: int) -> np.ndarray:
    return ThinPlateSpline._kernel(r, d)


def _lam_u(smoothing_nm: float, L: float, d: int) -> float:
    return smoothing_nm / (L * L if d == 2 else L)


def _system_inverse(u: np.ndarray, lam_u: float, w: np.ndarray) -> np.ndarray:
    n, d = u.shape
    k = _kernel_u(np.linalg.norm(u[:, None] - u[None], axis=-1), d)
    m = np.zeros((n + d + 1, n + d + 1))
    m[:n, :n] = k + np.diag(lam_u / w)
    p = np.hstack([u, np.ones((n, 1))])
    m[:n, n:] = p
    m[n:, :n] = p.T
    try:
        return np.linalg.inv(m)[:, :n]
    except np.linalg.LinAlgError as exc:
        raise RegistrationError(
            f"thin-plate spline system is singular for {n} fiducials (collinear or repeated points)",
            field="landmarks",
        ) from exc


def _basis(u_pts: np.ndarray, u_ctr: np.ndarray) -> np.ndarray:
    d = u_ctr.shape[1]
    k = _kernel_u(np.linalg.norm(u_pts[:, None] - u_ctr[None], axis=-1), d)
    return np.hstack([k, u_pts, np.ones((len(u_pts), 1))])


def tps_smoother(centers, smoothing: float, weights, points) -> np.ndarray:
    """Rows ``s(p)`` of the spline's smoother: ``f(p) = s(p) @ Y``.

    Parameters
    ----------
    centers
        (N, D) fiducial positions in the moving frame (nm).
    smoothing
        The spline's ``lambda`` in nm units (as stored on :class:`ThinPlateSpline`).
    weights
        (N,) relative weights (mean 1).
    points
        (M, D) evaluation positions (nm).

    Returns
    -------
    numpy.ndarray
        (M, N) smoother rows.
    """
    c = np.asarray(centers, float)
    x0, L = _frame(c)
    d = c.shape[1]
    inv = _system_inverse((c - x0) / L, _lam_u(smoothing, L, d), np.asarray(weights, float))
    pts = (np.atleast_2d(np.asarray(points, float)) - x0) / L
    out = np.empty((len(pts), len(c)))
    for s in range(0, len(pts), 4096):  # bounded memory for TRE maps
        out[s : s + 4096] = _basis(pts[s : s + 4096], (c - x0) / L) @ inv
    return out


def tps_loo_residuals(x, y, smoothing: float, weights) -> tuple[np.ndarray, np.ndarray]:
    """Exact leave-one-out residual vectors (N, D) and the hat matrix (N, N) of a smoothing TPS."""
    h = tps_smoother(x, smoothing, weights, x)
    r = y - h @ y
    hii = np.clip(np.diag(h), None, 1 - 1e-12)
    return r / (1 - hii)[:, None], h


def _to_spline(x, y, lam_u, w) -> ThinPlateSpline:
    n, d = x.shape
    x0, L = _frame(x)
    u = (x - x0) / L
    inv = _system_inverse(u, lam_u, w)
    sol = inv @ y  # (n + d + 1, D): c, then A_u rows (x, y[, z]), then b_u
    c = sol[:n]
    a_u = sol[n : n + d].T  # (D, D): output k, input j
    b_u = sol[n + d]
    if d == 2:
        wts = c / L**2
        kappa = (c * np.sum(x**2, axis=1)[:, None]).sum(0)
        t = b_u - a_u @ x0 / L - np.log(L) / L**2 * kappa
        smoothing = lam_u * L**2
    else:
        wts = c / L
        t = b_u - a_u @ x0 / L
        smoothing = lam_u * L
    aff = np.hstack([a_u / L, t[:, None]])
    return ThinPlateSpline(x, wts, aff, smoothing)


def fit_tps(x, y, cx, cy, *, smoothing="loo", noise_known=True, noise_scale=None):
    """Fit a smoothing thin-plate spline (see :func:`~correlate.registration.fit_model`)."""
    from ._fit import _COV_FLOOR, Fit, _chi2_sf, _fit_linear

    n, d = x.shape
    lin = _fit_linear("affine", x, y, cx, cy)
    a = lin.linear
    cres = cy + _COV_FLOOR * np.eye(d) + np.einsum("ij,njk,lk->nil", a, cx, a)
    var = np.trace(cres, axis1=1, axis2=2) / d
    w = (1.0 / var) / np.mean(1.0 / var)
    x0, L = _frame(x)
    u = (x - x0) / L
    notes = []
    if isinstance(smoothing, str):
        if smoothing not in ("loo", "gcv"):
            raise RegistrationError(f"smoothing must be 'loo', 'gcv' or a number, got {smoothing!r}", field="smoothing")
        grid = np.logspace(-7, 3, 41)
        wm = np.linalg.inv(cres)
        best = (np.inf, None)
        for lam in grid:
            inv = _system_inverse(u, lam, w)
            h = _basis(u, u) @ inv
            r = y - h @ y
            if smoothing == "loo":
                hii = np.diag(h)
                if np.any(hii > 1 - 1e-9):
                    continue
                e = r / (1 - hii)[:, None]
                score = float(np.einsum("ni,nij,nj->", e, wm, e))
            else:
                tr = np.trace(h)
                score = n * float(np.einsum("ni,nij,nj->", r, wm, r)) / max(n - tr, 1e-9) ** 2
            if score < best[0]:
                best = (score, lam)
        if best[1] is None:
            raise RegistrationError("could not choose a TPS smoothing (every fold degenerate)", field="smoothing")
        lam_u = best[1]
        notes.append(f"TPS smoothing chosen by {smoothing} (lambda_u = {lam_u:.3g})")
    else:
        lam_u = _lam_u(float(smoothing), L, d)
    tps = _to_spline(x, y, lam_u, w)
    h = tps_smoother(x, tps.smoothing, w, x)
    r = y - tps.apply(x)
    wm = np.linalg.inv(cres)
    chi2 = float(np.einsum("ni,nij,nj->", r, wm, r))
    dof = float(n * d - d * np.trace(h))
    fit = Fit(
        model="tps",
        transform=tps,
        ndim=d,
        center=lin.center,
        linear=tps.affine[:, :d].copy(),
        param_cov=None,
        source=x,
        target=y,
        res_cov=cres,
        residuals=r,
        chi2=chi2,
        dof=dof,
        pvalue=_chi2_sf(chi2, dof),
        tps={"smoothing": tps.smoothing, "weights": w},
        notes=notes,
        noise_known=noise_known,
    )
    if not noise_known and noise_scale is None:
        noise_scale = chi2 / dof if dof > 0 else float("nan")
    if noise_scale is not None:
        fit.noise_scale = float(noise_scale)
    return fit
