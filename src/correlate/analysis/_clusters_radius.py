"""Radius of a labelled sphere from its label positions: the projected shell (ball) density blurred
by each position's error, and its maximum-likelihood fit, vectorised over clusters.

The density of a unit shell (ball) seen in projection and blurred by a Gaussian of ``b`` per axis
is tabulated once per process (a numba kernel, cached on disk) as ``log g(t, log b)`` at distance
``t`` from the centre (both in units of the radius) and held as a bicubic spline, so that the fit
has derivatives. The fit first scans the radius on a grid around a moment estimate with the centre
fixed at the centroid, then refines centre and radius together (Newton steps; the outer-product
information where the Hessian is not negative definite): the centroid of few molecules is pulled towards them, and a radius fitted about it
reads small by about ``(1 - 1/M)`` in ``R^2``; fitting the centre removes that bias.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["fit_radius", "radial_table"]

_T_MAX = 3.0
_LOGB = (math.log(0.004), math.log(1.5))


@lru_cache(maxsize=4)
def radial_table(model: str):
    """Spline of ``log g(t, log b)``: the 2-D density (per unit area, integrating to 1) of a unit
    shell (``"shell"``) or ball (``"sphere"``) in projection, blurred by a Gaussian of ``b`` per
    axis, at distance ``t`` from its centre (``t``, ``b`` in units of the radius)."""
    from scipy.interpolate import RectBivariateSpline

    t = np.linspace(0.0, _T_MAX, 601)
    logb = np.linspace(*_LOGB, 44)
    phi = np.linspace(0.0, np.pi / 2, 4001)
    r = np.sin(phi)
    mass = np.sin(phi) if model == "shell" else 3.0 * np.sin(phi) * np.cos(phi) ** 2  # p(r) 2 pi r dr / dphi
    wq = np.gradient(phi)
    g = np.zeros((len(t), len(logb)))
    from ._clusters_kernels import radial_density

    radial_density(t, np.exp(logb), r, mass * wq, float(phi[1] - phi[0]), g)
    return RectBivariateSpline(t, logb, np.log(g + 1e-6), kx=3, ky=3)


def _loglik(spline, rho, blur, radius, *, dt: int = 0, db: int = 0):
    t = np.clip(rho / radius, 0.0, _T_MAX)
    lb = np.clip(np.log(np.maximum(blur, 1e-12) / radius), *_LOGB)
    return spline.ev(t, lb, dx=dt, dy=db), t, lb


def _grid_radius(spline, rho, blur, scl, w, n_clu, r0, n_grid: int = 15):
    """Grid scan of the radius (factor 0.6-1.6 of ``r0``) about fixed centres, parabola refined."""
    f = np.exp(np.linspace(np.log(0.6), np.log(1.6), n_grid))
    base = np.maximum(r0, 1.0)
    total = np.zeros((n_clu, n_grid))
    for k, fk in enumerate(f):  # a few dozen radii, each vectorised over every point
        rad = base[scl] * fk
        ll = _loglik(spline, rho, blur, rad)[0] - 2.0 * np.log(rad)
        total[:, k] = np.bincount(scl, weights=w * ll, minlength=n_clu)
    best = np.clip(np.argmax(total, axis=1), 1, n_grid - 2)
    i = np.arange(n_clu)
    y0, y1, y2 = total[i, best - 1], total[i, best], total[i, best + 1]
    den = y0 - 2 * y1 + y2
    shift = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    logf = np.log(f)
    return base * np.exp(logf[best] + np.clip(shift, -1, 1) * (logf[1] - logf[0]))


def _newton_step(spline, xy, blur, cl, w, n_clu, cx, cy, radius) -> np.ndarray:
    """(n_clu, 3) Newton step in (cx, cy, log R) of the summed log-likelihood; where its Hessian
    is not negative definite, the scoring step with the outer-product information instead."""
    dx, dy = xy[:, 0] - cx[cl], xy[:, 1] - cy[cl]
    rho = np.maximum(np.hypot(dx, dy), 1e-9)
    rad = radius[cl]
    d = {k: _loglik(spline, rho, blur, rad, dt=k[0], db=k[1])[0] for k in ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2))}
    gt, gb, gtt, gtb, gbb = d[(1, 0)], d[(0, 1)], d[(2, 0)], d[(1, 1)], d[(0, 2)]
    t = np.clip(rho / rad, 0.0, _T_MAX)
    inside = (t < _T_MAX) * w
    tc = np.stack([-dx / (rho * rad), -dy / (rho * rad)])  # dt/dc
    s = np.stack([gt * tc[0], gt * tc[1], -gt * t - gb - 2.0]) * inside  # score in (cx, cy, log R)
    h = np.empty((6, len(t)))
    ddc = [(1.0 - dx * dx / rho**2) / (rho * rad), -dx * dy / (rho**3 * rad), (1.0 - dy * dy / rho**2) / (rho * rad)]
    h[0] = gtt * tc[0] ** 2 + gt * ddc[0]
    h[1] = gtt * tc[0] * tc[1] + gt * ddc[1]
    h[2] = gtt * tc[1] ** 2 + gt * ddc[2]
    h[3] = -(gtt * t + gtb + gt) * tc[0]
    h[4] = -(gtt * t + gtb + gt) * tc[1]
    h[5] = gtt * t * t + 2.0 * gtb * t + gt * t + gbb
    h *= inside
    grad = np.stack([np.bincount(cl, weights=s[a], minlength=n_clu) for a in range(3)], axis=1)
    hs = [np.bincount(cl, weights=h[a], minlength=n_clu) for a in range(6)]
    hess = np.stack([np.stack([hs[0], hs[1], hs[3]], -1), np.stack([hs[1], hs[2], hs[4]], -1),
                     np.stack([hs[3], hs[4], hs[5]], -1)], 1)
    info = np.empty((n_clu, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            info[:, a, b] = info[:, b, a] = np.bincount(cl, weights=s[a] * s[b], minlength=n_clu)
    neg_def = np.all(np.linalg.eigvalsh(hess) < 0, axis=1)
    mat = np.where(neg_def[:, None, None], -hess, info)
    mat += np.eye(3) * 1e-9 * np.maximum(np.abs(np.trace(mat, axis1=1, axis2=2)), 1e-12)[:, None, None]
    return np.linalg.solve(mat, grad[..., None])[..., 0]


def fit_radius(xy: np.ndarray, var: np.ndarray, cl: np.ndarray, w: np.ndarray, n_clu: int, cx: np.ndarray,
               cy: np.ndarray, r0: np.ndarray, model: str, *, n_iter: int = 5) -> tuple[np.ndarray, ...]:
    """Maximum-likelihood centre and radius per cluster.

    Parameters
    ----------
    xy, var, cl, w
        (P, 2) label positions (nm), (P,) their variance per axis (nm^2), (P,) cluster index and
        (P,) weight (0 leaves a stray out).
    n_clu, cx, cy, r0
        Number of clusters, starting centres and radii (nm; a moment estimate).
    model
        ``"shell"`` or ``"sphere"``.

    Returns
    -------
    cx, cy, radius
        (n_clu,) each, nm.
    """
    spline = radial_table(model)
    blur = np.sqrt(var)
    cx, cy = cx.copy(), cy.copy()
    rho = np.hypot(xy[:, 0] - cx[cl], xy[:, 1] - cy[cl])
    radius = _grid_radius(spline, rho, blur, cl, w, n_clu, r0)
    for _ in range(n_iter):
        step = _newton_step(spline, xy, blur, cl, w, n_clu, cx, cy, radius)
        lim = 0.15 * radius
        cx += np.clip(step[:, 0], -lim, lim)
        cy += np.clip(step[:, 1], -lim, lim)
        radius = radius * np.exp(np.clip(step[:, 2], -0.15, 0.15))
    return cx, cy, radius
