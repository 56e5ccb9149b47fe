"""Containment radii of Gaussian position errors (nm): the radius holding a given probability."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["containment_radius"]


@lru_cache(maxsize=8)
def _normals(d: int, m: int = 16) -> np.ndarray:
    from scipy.stats import norm, qmc

    u = qmc.Sobol(d, scramble=True, seed=12345).random_base2(m)
    return norm.ppf(np.clip(u, 1e-12, 1 - 1e-12)) ** 2  # squared standard normals


@lru_cache(maxsize=8)
def _table(d: int, level: float):
    z2 = _normals(d)
    if d == 2:
        rho = np.linspace(0.0, 1.0, 201)
        q = np.quantile(np.sqrt(z2[:, :1] + rho[None, :] * z2[:, 1:2]), level, axis=0)
        return (rho,), q
    rho = np.linspace(0.0, 1.0, 41)
    q = np.empty((41, 41))
    for i, r2 in enumerate(rho):
        s = z2[:, :1] + r2 * z2[:, 1:2] + rho[None, :] * z2[:, 2:3]
        q[i] = np.quantile(np.sqrt(s), level, axis=0)
    return (rho, rho), q


def containment_radius(cov, level: float = 0.95) -> np.ndarray:
    """Radius ``R`` with ``P(|e| < R) = level`` for a zero-mean Gaussian error ``e ~ N(0, cov)``.

    Exact for any (anisotropic) 2x2 or 3x3 covariance up to the tabulation error (< 0.2 %):
    ``R = q(eigenvalue ratios) * sqrt(largest eigenvalue)`` with ``q`` tabulated once by
    quasi-Monte Carlo. For an isotropic 2-D covariance ``s^2 I``, ``R = s sqrt(chi2_2(level))``.

    Parameters
    ----------
    cov
        (M, D, D) or (D, D) covariances (nm^2), D = 1, 2 or 3.
    level
        Probability contained.

    Returns
    -------
    numpy.ndarray
        (M,) radii (nm); a float for a single (D, D) input.
    """
    c = np.asarray(cov, float)
    single = c.ndim == 2
    if single:
        c = c[None]
    d = c.shape[1]
    ev = np.clip(np.linalg.eigvalsh(c), 0, None)[:, ::-1]  # descending
    lmax = ev[:, 0]
    if d == 1:
        from scipy.stats import norm

        out = np.sqrt(lmax) * norm.ppf(0.5 + level / 2)
        return float(out[0]) if single else out
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(lmax[:, None] > 0, ev[:, 1:] / lmax[:, None], 0.0)
    grids, q = _table(d, float(level))
    if d == 2:
        qq = np.interp(ratios[:, 0], grids[0], q)
    else:
        from scipy.interpolate import RegularGridInterpolator

        qq = RegularGridInterpolator(grids, q)(np.clip(ratios, 0, 1))
    out = qq * np.sqrt(lmax)
    return float(out[0]) if single else out
