"""Vectorised sub-pixel fit of a 2-D Gaussian + constant background to many windows at once.

All candidates are fitted together by Levenberg-Marquardt (one damping factor per window); the
position covariance is ``s^2 (J^T J)^-1`` with ``s^2`` the pixel noise of the window.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["fit_gaussians"]

_MAX_WINDOW_VALUES = 1 << 22  # values per chunk of windows (bounds memory of the Jacobians)


def _model_and_jac(p: np.ndarray, xx: np.ndarray, yy: np.ndarray):
    dx = xx[None] - p[:, 0:1]
    dy = yy[None] - p[:, 1:2]
    s2 = p[:, 3:4] ** 2
    r2 = dx * dx + dy * dy
    e = np.exp(-r2 / (2 * s2))
    a = p[:, 2:3]
    m = p[:, 4:5] + p[:, 5:6] * xx[None] + p[:, 6:7] * yy[None] + a * e
    j = np.empty(e.shape + (7,))
    ae = a * e / s2
    j[..., 0] = ae * dx
    j[..., 1] = ae * dy
    j[..., 2] = e
    j[..., 3] = ae * r2 / p[:, 3:4]
    j[..., 4] = 1.0
    j[..., 5] = xx[None]
    j[..., 6] = yy[None]
    return m, j


def _lm(win, wt, xx, yy, p, half, n_iter):
    """Levenberg-Marquardt on every window; windows that have converged drop out of the loop."""
    npar = p.shape[1]
    eye = np.eye(npar)[None]
    mu = np.full(len(win), 1e-3)
    m, j = _model_and_jac(p, xx, yy)
    cost = (wt * (win - m) ** 2).sum(1)
    act = np.arange(len(win))
    for _ in range(n_iter):
        if len(act) == 0:
            break
        wa, wta, pa, ma, ja = win[act], wt[act], p[act], m[act], j[act]
        r = wta * (wa - ma)
        jt = (ja * wta[..., None]).transpose(0, 2, 1)
        jtj = jt @ ja
        jtr = (jt @ r[..., None])[..., 0]
        dg = np.einsum("kii->ki", jtj)
        a = jtj + mu[act, None, None] * dg[:, :, None] * eye
        a += 1e-12 * eye * np.maximum(dg.max(1), 1e-300)[:, None, None]
        try:
            step = np.linalg.solve(a, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(pa)
        pn = pa + step
        pn[:, 3] = np.clip(np.abs(pn[:, 3]), 0.3, 4 * half)
        mn, jn = _model_and_jac(pn, xx, yy)
        cn = (wta * (wa - mn) ** 2).sum(1)
        better = cn < cost[act]
        bi = act[better]
        p[bi], m[bi], j[bi], cost[bi] = pn[better], mn[better], jn[better], cn[better]
        mu[act] = np.where(better, mu[act] * 0.3, mu[act] * 10)
        done = (better & (np.abs(step[:, :2]).max(1) < 1e-4)) | (mu[act] > 1e8) | ~np.isfinite(cn)
        act = act[~done]
    return p, m, j, cost


def _mask_weights(rows, cols, xx, yy, discs, self_radius):
    """0/1 pixel weights: 0 inside the discs (col, row, radius) of other blobs."""
    from scipy.spatial import cKDTree

    k = len(rows)
    wt = np.ones((k, len(xx)))
    if discs is None or len(discs) == 0:
        return wt
    discs = np.asarray(discs, float)
    half = float(np.abs(xx).max())
    tree = cKDTree(discs[:, :2])
    centre = np.column_stack([cols, rows]).astype(float)
    nb = tree.query_ball_point(centre, r=half * np.sqrt(2) + discs[:, 2].max(), return_sorted=False)
    lens = np.fromiter((len(v) for v in nb), dtype=np.int64, count=k)
    if lens.sum() == 0:
        return wt
    wi = np.repeat(np.arange(k), lens)
    di = np.concatenate([np.asarray(v, dtype=np.int64) for v in nb])
    dxy = discs[di, :2] - centre[wi]
    far = np.hypot(dxy[:, 0], dxy[:, 1]) > np.maximum(self_radius[wi], 1.0)  # not the blob itself
    wi, di, dxy = wi[far], di[far], dxy[far]
    inside = (xx[None] - dxy[:, 0:1]) ** 2 + (yy[None] - dxy[:, 1:2]) ** 2 < discs[di, 2:3] ** 2
    bad = np.zeros((k, len(xx)), bool)
    np.logical_or.at(bad, wi, inside)
    wt[bad] = 0.0
    return wt


def _fit_chunk(data, rows, cols, sigma0, half, n_iter, noise, sign, discs, own, init):
    k = len(rows)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    xx = xx.ravel().astype(float)
    yy = yy.ravel().astype(float)
    win = data[rows[:, None] + yy.astype(int)[None, :], cols[:, None] + xx.astype(int)[None, :]].astype(float)
    if sign != 1.0:
        win *= sign
    wt = _mask_weights(rows, cols, xx, yy, discs, own)
    border = (np.abs(xx) == half) | (np.abs(yy) == half)
    bw = np.where(wt[:, border] > 0, win[:, border], np.nan)
    bg0 = np.nanmedian(np.where(np.isfinite(bw).any(1)[:, None], bw, win[:, border]), axis=1)
    p = np.column_stack([np.zeros(k), np.zeros(k), win[:, (xx == 0) & (yy == 0)][:, 0] - bg0, sigma0, bg0,
                         np.zeros(k), np.zeros(k)])
    if init is not None:  # start from a previous fit (x0, y0 in data pixels, amp, sigma, bg)
        good = np.all(np.isfinite(init), axis=1)
        p[good, 0] = init[good, 0] - cols[good]
        p[good, 1] = init[good, 1] - rows[good]
        p[good, 2:5] = init[good, 2:5]
    p, m, j, cost = _lm(win, wt, xx, yy, p, half, n_iter)
    n_used = wt.sum(1)
    s2_resid = cost / np.maximum(n_used - p.shape[1], 1)
    # White-noise variance from a high-pass of the residuals (insensitive to the smooth misfit of a
    # Gaussian to a bead profile): h = r - mean(4 neighbours), var(h) = 1.25 sigma^2.
    w = 2 * half + 1
    r3 = (win - m).reshape(k, w, w)
    w3 = wt.reshape(k, w, w)
    hp = r3[:, 1:-1, 1:-1] - 0.25 * (r3[:, :-2, 1:-1] + r3[:, 2:, 1:-1] + r3[:, 1:-1, :-2] + r3[:, 1:-1, 2:])
    hw = w3[:, 1:-1, 1:-1] * w3[:, :-2, 1:-1] * w3[:, 2:, 1:-1] * w3[:, 1:-1, :-2] * w3[:, 1:-1, 2:]
    # Background noise: median over the window (the sharp edges of a flat-topped blob leave a few
    # large high-pass residuals that are misfit, not noise); median of chi2(1) = 0.4549.
    exc = (m - p[:, 4:5] - p[:, 5:6] * xx[None] - p[:, 6:7] * yy[None]).reshape(k, w, w)[:, 1:-1, 1:-1]
    bright = exc > 0.25 * np.abs(p[:, 2:3, None])
    hp2 = hp**2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s2_bg = np.nanmedian(np.where((hw > 0) & ~bright, hp2, np.nan).reshape(k, -1), axis=1) / 0.4549 / 1.25
        s2_all = np.nanmedian(np.where(hw > 0, hp2, np.nan).reshape(k, -1), axis=1) / 0.4549 / 1.25
        s2_bg = np.where(np.isfinite(s2_bg), s2_bg, s2_all)
        # shot noise of the blob itself: extra variance per unit of excess inside the blob (>= 0:
        # a dark blob in transmission has less noise, kept at the background's, conservative)
        # (medians again: the misfit at a flat top's edge is not shot noise). Dark blobs (sign < 0)
        # keep the background's noise.
        inside = (hw > 0) & bright
        nb = inside.sum(axis=(1, 2))
        v_in = np.nanmedian(np.where(inside, hp2, np.nan).reshape(k, -1), axis=1) / 0.4549 / 1.25
        e_in = np.nanmedian(np.where(inside, exc, np.nan).reshape(k, -1), axis=1)
        gain = np.clip((v_in - s2_bg) / np.where(e_in > 0, e_in, np.inf), 0, None)
        gain = np.where((nb >= 3) & np.isfinite(gain) & (sign > 0), gain, 0.0)
    exc_full = (m - p[:, 4:5] - p[:, 5:6] * xx[None] - p[:, 6:7] * yy[None])
    var_px = s2_bg[:, None] + gain[:, None] * np.clip(exc_full, 0, None)
    jw = j * wt[..., None]
    jtj = jw.transpose(0, 2, 1) @ jw
    inv = np.full_like(jtj, np.nan)
    good = np.isfinite(jtj).all(axis=(1, 2))
    if good.any():
        good[good] = np.linalg.cond(jtj[good]) < 1e14
    if good.any():
        inv[good] = np.linalg.inv(jtj[good])
    if noise == "white":  # sandwich with the per-pixel variance
        meat = (jw * var_px[..., None]).transpose(0, 2, 1) @ jw
        pcov = inv @ meat @ inv
        s2 = s2_bg
    else:
        s2 = s2_resid
        pcov = s2[:, None, None] * inv
    # measured central excess: mean of the pixels within ~half a width of the fitted centre
    rc = np.hypot(xx[None] - p[:, 0:1], yy[None] - p[:, 1:2])
    core = (rc <= np.maximum(0.5 * p[:, 3:4], 0.75)) & (wt > 0)
    n_core = np.maximum(core.sum(1), 1)
    base = p[:, 4:5] + p[:, 5:6] * xx[None] + p[:, 6:7] * yy[None]
    peak = ((win - base) * core).sum(1) / n_core
    peak_err = np.sqrt((var_px * core).sum(1) / n_core**2) if noise == "white" else np.sqrt(s2 / n_core)
    ok = (
        np.all(np.isfinite(p), axis=1)
        & (np.abs(p[:, 0]) < half * 0.6)
        & (np.abs(p[:, 1]) < half * 0.6)
        & (p[:, 2] > 0)
        & np.all(np.isfinite(pcov[:, :2, :2].reshape(k, -1)), axis=1)
        & (n_used > 0.5 * len(xx))
    )
    p = p.copy()
    p[:, 0] += cols
    p[:, 1] += rows
    return p, pcov, ok, np.sqrt(s2), peak, peak_err, n_used / len(xx)


def fit_gaussians(
    data: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    sigma_px: float | np.ndarray,
    half: int,
    n_iter: int = 40,
    noise: str = "white",
    return_full: bool = False,
    sign: float = 1.0,
    mask_discs: np.ndarray | None = None,
    own_radius: float | np.ndarray | None = None,
    init: np.ndarray | None = None,
):
    """Fit ``bg + amp exp(-r^2 / 2 s^2)`` around each (row, col) of a 2-D array, vectorised.

    ``noise="white"`` estimates the pixel noise from a high-pass of the residuals (the smooth misfit
    of a Gaussian to a bead profile does not count as noise; that misfit is symmetric and does not
    move the centre); ``noise="residual"`` uses the full residual variance (conservative).

    Parameters
    ----------
    data : 2-D array; rows, cols : integer window centres (pixels), each at least ``half`` pixels
        from the border; sigma_px : initial width (pixels), scalar or one per window; half : window
        half size (pixels).
    sign : the data are multiplied by this inside the windows (-1: fit dark blobs).
    mask_discs : (M, 3) discs (col, row, radius in pixels) of other blobs whose pixels are left out
        of each window's fit; a disc whose centre lies within ``own_radius`` (pixels, default
        ``2 sigma_px + 1``) of the window centre is part of the blob itself and stays.
    init : (K, 5) starting parameters as returned in ``params`` (rows with NaN start afresh).
    return_full : also return a dict with ``param_cov`` (K, 7, 7) (x0, y0, amp, sigma, bg, bg slope x, bg slope y), ``noise`` (K,) pixel noise,
        ``peak`` / ``peak_err`` (K,) the measured mean excess over the background near the centre.

    The background is a plane (its slopes in ``param_cov`` / ``plane`` of the full output).

    Returns
    -------
    params : (K, 5) x0 (col), y0 (row) in pixels, amp, sigma (px), bg (at the window centre)
    cov : (K, 2, 2) covariance of (x0, y0) in px^2
    ok : (K,) bool, converged with a sane result inside the window
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    k = len(rows)
    sig0 = np.broadcast_to(np.asarray(sigma_px, float), (k,)).astype(float)
    own = (2 * sig0 + 1) if own_radius is None else np.broadcast_to(np.asarray(own_radius, float), (k,)).astype(float)
    npx = (2 * half + 1) ** 2
    step = max(1, _MAX_WINDOW_VALUES // (npx * 7))
    parts = [
        _fit_chunk(data, rows[i : i + step], cols[i : i + step], sig0[i : i + step], half, n_iter, noise, float(sign),
                   mask_discs, own[i : i + step], None if init is None else np.asarray(init, float)[i : i + step])
        for i in range(0, k, step)
    ] or [(np.zeros((0, 7)), np.zeros((0, 7, 7)), np.zeros(0, bool), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))]
    params, pcov, ok, nse, peak, peak_err, used = (np.concatenate(c) for c in zip(*parts))
    cov = pcov[:, :2, :2].copy()
    if return_full:
        return params[:, :5], cov, ok, {"param_cov": pcov, "noise": nse, "peak": peak, "peak_err": peak_err,
                                        "plane": params[:, 5:7], "used_fraction": used}
    return params[:, :5], cov, ok
