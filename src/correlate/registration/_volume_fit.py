"""Least-squares 3-D Gaussian fits of bead windows in a volume, all beads at once.

Model per bead: ``b + A exp(-1/2 sum_a ((x_a - c_a) / w_a)^2)`` on the voxel centres of a box
around the bead (axes x, y, z, nm), eight parameters (centre, three widths, amplitude,
background), fitted by Levenberg-Marquardt on the unsmoothed contrast, whose noise is white; the
covariance of the centre is ``noise^2 (J^T J)^-1`` at the solution. A smoothed bead is symmetric,
so the model's misfit of its shape (a blurred ball, not a Gaussian) does not move the centre,
where a three-point vertex is off by a few % of a voxel when the bead spans few voxels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_gaussians_3d"]

_NP = 8


def _model(p: np.ndarray, g: np.ndarray):
    """Values (K, M) and Jacobian (K, M, 8) at grid offsets ``g`` (K, M, 3) nm."""
    c, w, a, b = p[:, None, 0:3], p[:, None, 3:6], p[:, None, 6], p[:, None, 7]
    u = (g - c) / w
    e = np.exp(-0.5 * np.sum(u**2, axis=2))
    f = b + a * e
    jac = np.empty(g.shape[:2] + (_NP,))
    jac[..., 0:3] = (a * e)[..., None] * u / w
    jac[..., 3:6] = (a * e)[..., None] * u**2 / w
    jac[..., 6] = e
    jac[..., 7] = 1.0
    return f, jac


def fit_gaussians_3d(c: np.ndarray, centre_vox: np.ndarray, width_nm: float, v: np.ndarray, noise: float,
                     n_iter: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a 3-D Gaussian to each bead of a (z, y, x) contrast volume.

    Parameters
    ----------
    c
        Background-subtracted contrast, dense material positive.
    centre_vox
        (K, 3) starting centres in voxels, (z, y, x) order.
    width_nm
        Starting Gaussian width (nm, all axes); the window reaches 3 widths (at least 2 voxels).
    v
        (3,) voxel size (x, y, z) nm.
    noise
        Standard deviation of the voxel noise (contrast units).

    Returns
    -------
    (centres (K, 3) voxels (z, y, x), covariances (K, 3, 3) nm^2 in x, y, z, ok (K,) bool)
        ``ok`` is False where the fit did not converge to a bead inside its window.
    """
    k = len(centre_vox)
    v = np.asarray(v, float)
    half = np.maximum(np.ceil(3.0 * width_nm / v), 2).astype(int)  # x, y, z
    axes = [np.arange(-h, h + 1) for h in half[::-1]]  # z, y, x
    off = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)  # (M, 3) z, y, x voxels
    base = np.round(centre_vox).astype(int)
    vox = base[:, None, :] + off[None]  # (K, M, 3)
    shape = np.array(c.shape)
    inside = np.all((vox >= 0) & (vox < shape), axis=2)
    vals = c[tuple(np.clip(vox, 0, shape - 1).transpose(2, 0, 1))].astype(float)
    wt = inside.astype(float)
    g = (vox[..., ::-1] - base[:, None, ::-1]) * v  # nm offsets, x, y, z order, relative to base
    p = np.zeros((k, _NP))
    p[:, 0:3] = (centre_vox[:, ::-1] - base[:, ::-1]) * v
    p[:, 3:6] = width_nm
    p[:, 7] = np.sum(vals * wt * (np.sum((off / half[::-1]) ** 2, 1) > 0.8), 1) / np.maximum(
        np.sum(wt * (np.sum((off / half[::-1]) ** 2, 1) > 0.8), 1), 1)
    p[:, 6] = np.max(np.where(inside, vals, -np.inf), axis=1) - p[:, 7]
    lam = np.full(k, 1e-3)
    f, jac = _model(p, g)
    cost = np.sum(wt * (vals - f) ** 2, 1)
    for _ in range(n_iter):  # Levenberg-Marquardt, every bead in one array
        r = wt * (vals - f)
        jw = jac * wt[..., None]
        h = np.einsum("kmi,kmj->kij", jw, jac)
        grad = np.einsum("kmi,km->ki", jw, r)
        damp = h + lam[:, None, None] * np.einsum("kii->ki", h)[:, :, None] * np.eye(_NP)
        try:
            step = np.linalg.solve(damp, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = p + step
        trial[:, 3:6] = np.abs(trial[:, 3:6])
        f2, j2 = _model(trial, g)
        c2 = np.sum(wt * (vals - f2) ** 2, 1)
        better = c2 < cost
        p[better], f[better], jac[better], cost[better] = trial[better], f2[better], j2[better], c2[better]
        lam = np.where(better, lam / 3, lam * 4)
        if np.all(np.abs(step[:, 0:3]).max(1) < 1e-4 * v.min()):
            break
    h = np.einsum("kmi,kmj->kij", jac * wt[..., None], jac)
    cov = np.full((k, 3, 3), np.nan)
    okh = np.linalg.cond(h) < 1e12
    cov[okh] = noise**2 * np.linalg.inv(h[okh])[:, 0:3, 0:3]
    ok = okh & (p[:, 6] > 0) & np.all(np.abs(p[:, 0:3]) <= half * v, axis=1) & np.all(p[:, 3:6] < 3 * half * v, axis=1)
    cen = base + p[:, 2::-1] / v[::-1]
    return cen, cov, ok
