"""Smoothing thin-plate spline algebra: its system, smoother rows, kriging and leave-one-out errors.

The spline solves ``(K + lambda diag(1/w)) c + P d = Y``, ``P^T c = 0`` (penalised least squares),
so the fitted value anywhere is linear in the targets: ``f(p) = s(p)^T Y``. That row ``s(p)``
gives both the leave-one-out residuals exactly (``e_i = r_i / (1 - H_ii)``) and the first-order
predicted TRE (``Sigma(p) = sum_i s_i(p)^2 C_i``).

The linear algebra runs in centred, scaled coordinates ``u = (x - x0) / L`` (well conditioned);
the result is converted to an exact :class:`~correlate.transforms.ThinPlateSpline` in nm.
The fit itself, with the choice of the smoothing, is :func:`~correlate.registration._tps_fit.fit_tps`.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ..transforms import ThinPlateSpline

__all__ = [
    "tps_kriging_var",
    "tps_loo_error_model",
    "tps_loo_residuals",
    "tps_model_scale",
    "tps_smoother",
]


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


def tps_kriging_var(centers, smoothing: float, weights, points) -> tuple[np.ndarray, np.ndarray]:
    """Smoother rows and the spline's kriging variance at ``points``.

    The kriging variance ``kappa(p) = s(p)^T K s(p) - 2 s(p)^T k(p)`` (with ``K`` the kernel
    between the fiducials and ``k(p)`` the kernel from ``p`` to them, in the scaled coordinates
    ``u``) is the variance of ``g(p) - s(p)^T g(X)`` for a random deformation ``g`` whose
    generalised covariance is the spline kernel (``r^2 log r`` in 2-D, ``-r`` in 3-D): the
    interpolation error of the spline, up to one scale factor. It is ~0 at the fiducials (exactly
    0 for an interpolating spline), grows between them and further outside their hull.

    Returns
    -------
    (s, kappa)
        (M, N) smoother rows and (M,) kriging variance (dimensionless, >= 0).
    """
    c = np.asarray(centers, float)
    x0, L = _frame(c)
    n, d = c.shape
    uc = (c - x0) / L
    inv = _system_inverse(uc, _lam_u(smoothing, L, d), np.asarray(weights, float))
    kk = _kernel_u(np.linalg.norm(uc[:, None] - uc[None], axis=-1), d)
    pts = (np.atleast_2d(np.asarray(points, float)) - x0) / L
    s_out = np.empty((len(pts), n))
    kap = np.empty(len(pts))
    for a in range(0, len(pts), 4096):  # bounded memory for TRE maps
        b = _basis(pts[a : a + 4096], uc)
        s = b @ inv
        s_out[a : a + 4096] = s
        kap[a : a + 4096] = np.einsum("mn,mn->m", s, s @ kk) - 2 * np.einsum("mn,mn->m", s, b[:, :n])
    return s_out, np.clip(kap, 0.0, None)


def tps_loo_error_model(centers, smoothing: float, weights, res_cov) -> tuple[np.ndarray, np.ndarray]:
    """Noise covariance and kriging variance of each fiducial's exact leave-one-out error.

    For the spline fitted without fiducial ``i`` (same smoothing and weights), the leave-one-out
    error ``e_i = y_i - f_(-i)(x_i)`` has the noise covariance
    ``C_i + sum_(j != i) s_(-i),j(x_i)^2 C_j`` and the model (interpolation) part
    ``theta * kappa_(-i)(x_i)``; the reduced spline's smoother row ``s_(-i)`` and kriging
    variance ``kappa_(-i)`` come from the full system's inverse by a rank-one (Schur complement)
    downdate, O(N^2) per fiducial.

    Parameters
    ----------
    centers
        (N, D) fiducials (nm); ``smoothing``, ``weights`` as the fitted spline.
    res_cov
        (N, D, D) residual covariance of each fiducial (nm^2), already scaled.

    Returns
    -------
    (noise, kappa)
        (N, D, D) noise covariance (nm^2) and (N,) kriging variance of the leave-one-out errors.
    """
    c = np.asarray(centers, float)
    x0, L = _frame(c)
    n, d = c.shape
    uc = (c - x0) / L
    w = np.asarray(weights, float)
    lam = _lam_u(smoothing, L, d)
    kk = _kernel_u(np.linalg.norm(uc[:, None] - uc[None], axis=-1), d)
    m = np.zeros((n + d + 1, n + d + 1))
    m[:n, :n] = kk + np.diag(lam / w)
    p = np.hstack([uc, np.ones((n, 1))])
    m[:n, n:] = p
    m[n:, :n] = p.T
    minv = np.linalg.inv(m)
    rc = np.asarray(res_cov, float)
    noise = np.full((n, d, d), np.nan)
    kap = np.full(n, np.nan)
    allidx = np.arange(n + d + 1)
    for i in range(n):
        keep = allidx != i
        if minv[i, i] == 0:
            continue
        mi = minv[np.ix_(keep, keep)] - np.outer(minv[keep, i], minv[i, keep]) / minv[i, i]
        b = np.concatenate([np.delete(kk[i], i), uc[i], [1.0]])
        s = b @ mi[:, : n - 1]  # smoother row of the spline without i, at x_i
        kr = np.delete(np.delete(kk, i, 0), i, 1)
        kap[i] = s @ kr @ s - 2 * s @ b[: n - 1]
        noise[i] = rc[i] + np.einsum("j,jkl->kl", s**2, np.delete(rc, i, 0))
    return noise, np.clip(kap, 0.0, None)


def tps_model_scale(fit, loo) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale ``theta`` (nm^2) of the spline's interpolation error ``theta * kappa(p) * I``.

    Maximum likelihood from the exact leave-one-out errors of all fiducials: each
    ``e_i ~ N(0, N_i + theta * kappa_(-i)(x_i) I)`` with ``N_i`` its noise covariance and
    ``kappa_(-i)(x_i)`` the kriging variance of the spline fitted without it (see
    :func:`tps_loo_error_model`). A hull fiducial's leave-one-out error is an extrapolation, but
    its ``kappa_(-i)`` is large too, so it is weighed accordingly rather than inflating a constant.

    Returns
    -------
    (theta, noise, kappa)
        theta (nm^2, >= 0), the (N, D, D) leave-one-out noise covariances and (N,) kriging
        variances.
    """
    from scipy.optimize import minimize_scalar

    x = fit.source
    d = x.shape[1]
    noise, kap = tps_loo_error_model(x, fit.tps["smoothing"], fit.tps["weights"], fit.res_cov * fit.noise_scale)
    e = np.asarray(loo, float)
    use = np.all(np.isfinite(e), axis=1) & np.isfinite(kap) & np.all(np.isfinite(noise), axis=(1, 2))
    if not use.any() or not np.any(kap[use] > 0):
        return 0.0, noise, kap
    e, nn, kk = e[use], noise[use], kap[use]
    eye = np.eye(d)

    def nll(theta: float) -> float:
        c = nn + (theta * kk)[:, None, None] * eye
        _sign, logdet = np.linalg.slogdet(c)
        return 0.5 * float(np.sum(logdet + np.einsum("ni,nij,nj->n", e, np.linalg.inv(c), e)))

    s0 = float(np.sum(e**2) / (d * kk.sum()))  # moment estimate, sets the search range
    if not s0 > 0:
        return 0.0, noise, kap
    res = minimize_scalar(lambda lt: nll(np.exp(lt)), bounds=(np.log(s0) - 20, np.log(s0) + 5), method="bounded")
    theta = float(np.exp(res.x))
    if nll(0.0) <= nll(theta):  # noise alone explains the leave-one-out errors
        theta = 0.0
    return theta, noise, kap


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
