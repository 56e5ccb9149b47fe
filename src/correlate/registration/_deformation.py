"""The test for a smooth deformation beyond the noise, and what an affine fit leaves of one.

- :func:`deformation_reml`: restricted maximum likelihood on the affine contrasts of the
  targets, with the covariance ``theta * (Phi (x) I_D) + blockdiag(C_i(0)) + s^2 I``, where
  ``Phi`` is the thin-plate kernel (``r^2 log r`` in 2-D, ``-r`` in 3-D) in the spline's scaled
  coordinates: the generalised covariance of a random smooth deformation whose best predictor
  is the thin-plate spline. ``theta`` and the excess ``s^2`` (see
  :mod:`correlate.registration._excess`) are both free; the likelihood ratio against
  ``theta = 0`` (a boundary value, so ``p = 0.5 P(chi2_1 > LR)``) says whether the residuals of
  the best affine model are spatially correlated beyond the noise, i.e. whether a non-linear
  model is needed; its ``s^2`` is the excess that remains once the deformation is modelled.
- :func:`affine_kriging_var`: the variance factor of such a deformation that an affine fit does
  not follow, at any point (carried into the predicted TRE of linear models).
"""

from __future__ import annotations

import numpy as np

from ._tps import _frame, _kernel_u

__all__ = ["affine_kriging_var", "deformation_reml"]


def _contrasts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis Q (N, N-D-1) of the vectors orthogonal to every affine function of
    the fiducial positions, and the thin-plate kernel Phi (N, N) in scaled coordinates."""
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
