"""The per-particle edge of an EM segmentation: the blurred projected-sphere model, the
``edge_fraction`` contour of each particle's own peak, the model radius and the growth of each
measured core out to its model edge. Every per-particle quantity depends on that particle's
pixels alone (each iteration stops per particle), so a particle gets the same result whatever
else the image holds: the tiled and the whole-image segmentations agree exactly. Lengths px.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._segmentation import _label_max


@lru_cache(maxsize=8)
def _sphere_blur_model(f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a projected sphere (peak 1, radius 1) blurred by a Gaussian of sigma s (in radii):
    c(s) = mean of the blurred profile over the disc rho < 0.5 (peak estimator);
    q(s) = radius where the blurred profile equals f (contour at f x the unblurred peak).
    Computed numerically on a fine grid once; returns (s, c, q)."""
    from scipy import ndimage as ndi

    R = 40.0
    n = 161
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    rho = np.hypot(xx, yy) / R
    prof = np.sqrt(np.clip(1.0 - rho**2, 0, None))
    s_grid = np.linspace(0.0, 0.6, 31)
    c = np.empty_like(s_grid)
    q = np.empty_like(s_grid)
    row = n // 2
    xline = (np.arange(n) - (n - 1) / 2.0) / R
    inner = rho < 0.5
    for i, s in enumerate(s_grid):  # 31 small model blurs, cached
        b = ndi.gaussian_filter(prof, s * R, mode="constant") if s > 0 else prof
        c[i] = b[inner].mean()
        line = b[row, (n - 1) // 2 :]
        xs = xline[(n - 1) // 2 :]
        k = np.flatnonzero(line < f)  # first crossing below f going outwards
        if k.size == 0 or k[0] == 0:
            q[i] = np.nan
        else:
            j = k[0]
            t = (line[j - 1] - f) / (line[j - 1] - line[j])
            q[i] = xs[j - 1] + t * (xs[j] - xs[j - 1])
    return s_grid, c, q


def _converged(new: np.ndarray, old: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Per element: ``np.allclose``'s rule."""
    with np.errstate(invalid="ignore"):
        return np.abs(new - old) <= atol + rtol * np.abs(old)


def _invert_contour(r_f, blur_px, s_grid, q_grid, q0):
    """Solve r_f = R q(blur / R) for R (fixed point per element; q from the blurred-sphere model)."""
    r_f = np.asarray(r_f, float)
    R = r_f / q0
    active = np.ones(R.shape, bool)
    for _ in range(20):
        if not active.any():
            break
        s = np.clip(blur_px / np.maximum(R[active], 1e-9), 0, s_grid[-1])
        q = np.interp(s, s_grid, q_grid)
        R_new = r_f[active] / np.maximum(q, 1e-3)
        done = _converged(R_new, R[active], 1e-6, 1e-6)
        R[active] = R_new
        idx = np.flatnonzero(active)
        active[idx[done]] = False
    return R


def _model_radius(r_f, edge_fraction: float, shape_model: str, blur_px: float):
    """Model edge radius (px) from the radius of the edge_fraction contour."""
    if shape_model != "sphere":
        return r_f
    s_grid, _, q_grid = _sphere_blur_model(edge_fraction)
    return _invert_contour(r_f, blur_px, s_grid, q_grid, float(np.sqrt(1.0 - edge_fraction**2)))


def _edge_contour(sm, basins, n0: int, edge_fraction: float, shape_model: str, blur_px: float,
                  offset: tuple[int, int] = (0, 0)):
    """Per-particle peak and edge_fraction contour, iterated per particle until its own peak
    settles (vectorised over labels; only the pixels of the basins take part). ``offset`` (y, x)
    is the index of ``sm[0, 0]`` in the whole image: centroids are whole-image pixel indices.
    Returns (peak (n0,), core labels, cx, cy (px))."""
    s_grid, c_grid, q_grid = _sphere_blur_model(edge_fraction)
    q0 = float(np.sqrt(1.0 - edge_fraction**2))
    pix = np.flatnonzero(basins.ravel())
    lab_p = basins.ravel()[pix]
    sm_p = sm.ravel()[pix]
    py, px_i = np.divmod(pix, sm.shape[1])
    py = py.astype(float) + float(offset[0])
    px_i = px_i.astype(float) + float(offset[1])
    peak = _label_max(sm, basins, n0)[1:]
    cx = np.zeros(n0)
    cy = np.zeros(n0)
    active = np.ones(n0, bool)
    for _ in range(4):
        thr_l = np.concatenate([[np.inf], edge_fraction * peak])
        in_core = sm_p >= thr_l[lab_p]
        lc = lab_p[in_core]
        area = np.bincount(lc, minlength=n0 + 1)[1:].astype(float)
        cnt = np.maximum(area, 1)
        cy_n = np.bincount(lc, weights=py[in_core], minlength=n0 + 1)[1:] / cnt
        cx_n = np.bincount(lc, weights=px_i[in_core], minlength=n0 + 1)[1:] / cnt
        cx[active], cy[active] = cx_n[active], cy_n[active]
        r_f = np.sqrt(area / np.pi)
        if shape_model == "sphere":
            R = _invert_contour(r_f, blur_px, s_grid, q_grid, q0)
            cfac = np.interp(np.clip(blur_px / np.maximum(R, 1e-9), 0, s_grid[-1]), s_grid, c_grid)
        else:
            R = r_f
            cfac = np.ones_like(R)
        # mean signal over the inner disc rho < 0.5 of each particle -> unblurred peak
        cyl = np.concatenate([[0.0], cy_n])
        cxl = np.concatenate([[0.0], cx_n])
        Rl = np.concatenate([[0.0], R])
        rho2 = ((py - cyl[lab_p]) ** 2 + (px_i - cxl[lab_p]) ** 2) / np.maximum(Rl[lab_p], 1e-9) ** 2
        inner = rho2 < 0.25
        s_in = np.bincount(lab_p[inner], weights=sm_p[inner], minlength=n0 + 1)[1:]
        n_in = np.bincount(lab_p[inner], minlength=n0 + 1)[1:]
        new_peak = np.where(n_in >= 3, s_in / np.maximum(n_in, 1) / cfac, peak)
        done = _converged(new_peak, peak, 1e-4, 1e-8)
        peak = np.where(active, new_peak, peak)
        active &= ~done
        if not active.any():
            break
    thr_l = np.concatenate([[np.inf], edge_fraction * peak])
    core = np.zeros(sm.size, np.int32)
    core[pix] = np.where(sm_p >= thr_l[lab_p], lab_p, 0)
    return peak, core.reshape(sm.shape), cx, cy


def _grow(core: np.ndarray, grow_px: np.ndarray, limit: np.ndarray | None = None) -> np.ndarray:
    """Grow each label of ``core`` by its own distance ``grow_px[label]`` (nearest-label rule)."""
    from scipy import ndimage as ndi

    if core.max() == 0:
        return core.copy()
    dist, idx = ndi.distance_transform_edt(core == 0, return_indices=True)
    nearest = core[idx[0], idx[1]]
    del idx
    out = np.where(dist <= grow_px[nearest], nearest, 0).astype(np.int32)
    out[core > 0] = core[core > 0]
    if limit is not None:
        out[~limit] = 0
        out[core > 0] = core[core > 0]
    return out
