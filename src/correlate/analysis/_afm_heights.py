"""AFM particle heights from an apex fit on the levelled, unsmoothed height map.

The maximum of a smoothed map underestimates a sphere's apex (smoothing a cap of curvature
radius ``Rc`` by a Gaussian of sigma ``s`` lowers it by about ``s^2 / Rc``), and the maximum of
the raw map is biased upwards by the noise. A tip-dilated sphere of radius ``Rs`` is, near its top,
a sphere cap of radius ``Rs + r_tip`` whose apex is the sphere's top, so a least-squares
quadratic ``h = c0 + c1 dx + c2 dy + c3 dx^2 + c4 dx dy + c5 dy^2`` over the top of each particle
reads the height without either bias.

Window: a disc of radius ``window_fraction`` times the particle's equivalent radius ``r``
(at least enough for ``min_pixels`` pixels, at most the whole particle), centred on the apex and
re-centred on the fitted apex. Fitting a quadratic to a sphere cap over a disc of radius
``f Rc`` leaves an error of about ``f^4 Rc / 48`` on the apex (the quartic term of the cap): for
``f = 0.4`` that is 0.05 % of the cap radius (0.1 nm for a 150 nm sphere). Pixels are chosen by
position, not by height, so the noise does not bias which pixels take part.

Per particle the method is recorded: ``"apex"`` (concave fit, stationary point inside the
window: its value), ``"centre"`` (the fit is not concave or its stationary point lies outside the
window, as on a flat top: the fitted value at the window centre), ``"max"`` (fewer pixels than
the fit needs: the largest pixel height, biased upwards by the noise).
"""

from __future__ import annotations

import numpy as np

__all__ = ["apex_heights"]



def _label_argmax(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Flat index of the largest value of each label 1..n (first in raster order on ties; -1
    where absent)."""
    flat = lab.ravel()
    v = values.ravel()
    pix = np.flatnonzero(flat)
    mx = _label_max(v[pix], flat[pix], n)
    mx[0] = np.inf
    cand = pix[v[pix] >= mx[flat[pix]]]
    out = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(out, flat[cand], cand)
    out = out[1:]
    out[out == np.iinfo(np.int64).max] = -1
    return out


def _label_max(v: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) maximum of ``v`` per label value (-inf where absent)."""
    out = np.full(n + 1, -np.inf)
    np.maximum.at(out, lab, v)
    return out


def _design(u: np.ndarray, v: np.ndarray, quartic: bool) -> np.ndarray:
    """Columns 1, u, v, u^2, uv, v^2 (and (u^2 + v^2)^2) of window-normalised offsets."""
    cols = [np.ones_like(u), u, v, u * u, u * v, v * v]
    if quartic:
        cols.append((u * u + v * v) ** 2)
    return np.stack(cols)


def _normal_equations(X: np.ndarray, h: np.ndarray, lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-label X^T X (n, p, p) and X^T h (n, p) by bincount (label values 1..n)."""
    p = X.shape[0]
    M = np.zeros((n + 1, p, p))
    for i in range(p):  # p (p + 1) / 2 products, not a loop over pixels or particles
        for j in range(i, p):
            s = np.bincount(lab, weights=X[i] * X[j], minlength=n + 1)
            M[:, i, j] = s
            M[:, j, i] = s
    v = np.stack([np.bincount(lab, weights=X[i] * h, minlength=n + 1) for i in range(p)], axis=1)
    return M[1:], v[1:]


def _solve(M: np.ndarray, v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    beta = np.full(v.shape, np.nan)
    if ok.any():
        Mi = M[ok]
        cond_ok = np.linalg.cond(Mi) < 1e10
        idx = np.flatnonzero(ok)[cond_ok]
        if idx.size:
            beta[idx] = np.linalg.solve(M[idx], v[idx][..., None])[..., 0]
    return beta


def apex_heights(
    height: np.ndarray,
    labels: np.ndarray,
    *,
    locate: np.ndarray | None = None,
    window_fraction: float = 0.4,
    min_pixels: int = 12,
    n_iter: int = 3,
    quartic: bool = False,
) -> dict[str, np.ndarray]:
    """Apex height of every label of an AFM height map by a local quadratic fit.

    Parameters
    ----------
    height
        (H, W) levelled, unsmoothed height above the substrate (nm).
    labels
        (H, W) int label image (0 background, 1..N particles).
    locate
        (H, W) map whose per-label maximum gives the first window centre (e.g. a lightly
        smoothed height); default a Gaussian of 1 px of ``height``.
    window_fraction
        Fit window radius as a fraction of each particle's equivalent radius.
    min_pixels
        Least number of pixels in a window (it grows to reach it, up to the whole particle);
        below ``6`` pixels no fit is made.
    n_iter
        Re-centring iterations.
    quartic
        Add a radial quartic term ``c6 r^4`` (the leading deviation of a sphere cap or an
        ellipsoid top from a paraboloid) to the fit.

    Returns
    -------
    dict
        (N,) arrays indexed by label - 1: ``height_nm`` (apex height, nm), ``height_err_nm``
        (standard error of the fitted apex, nm; NaN where not fitted), ``x_px``, ``y_px``
        (apex position, pixel indices), ``n_pixels`` (pixels in the final window),
        ``method`` (``"apex"``, ``"centre"`` or ``"max"``).
    """
    from scipy import ndimage as ndi

    h = np.asarray(height, float)
    lab = np.asarray(labels).astype(np.int64, copy=False)
    n = int(lab.max()) if lab.size else 0
    empty = np.zeros(0)
    if n == 0:
        return {"height_nm": empty, "height_err_nm": empty, "x_px": empty, "y_px": empty,
                "n_pixels": np.zeros(0, np.int64), "method": np.zeros(0, "<U6")}
    loc = ndi.gaussian_filter(h, 1.0) if locate is None else np.asarray(locate, float)
    w = h.shape[1]
    pix = np.flatnonzero(lab.ravel())
    lp = lab.ravel()[pix]
    hp = h.ravel()[pix]
    py, px = np.divmod(pix, w)
    py = py.astype(float)
    px = px.astype(float)
    area = np.bincount(lp, minlength=n + 1)[1:].astype(float)
    r_eq = np.sqrt(area / np.pi)
    r_min = np.sqrt(float(min_pixels) / np.pi) + 0.5
    rho = np.minimum(np.maximum(float(window_fraction) * r_eq, r_min), r_eq + 1.0)
    am = _label_argmax(loc, lab, n)
    cy, cx = np.divmod(np.maximum(am, 0), w)
    cy = cy.astype(float)
    cx = cx.astype(float)
    pmax = _label_max(hp, lp, n)[1:]
    # the window may move by up to its radius per iteration: keep the pixels it can reach
    near = (px - cx[lp - 1]) ** 2 + (py - cy[lp - 1]) ** 2 <= (3.0 * rho[lp - 1]) ** 2
    lp, hp, px, py = lp[near], hp[near], px[near], py[near]
    n_par = 7 if quartic else 6
    rho_p = rho[lp - 1]
    for it in range(max(1, int(n_iter))):
        # offsets in units of the window radius (conditioning; the apex value is unchanged)
        u = (px - cx[lp - 1]) / rho_p
        v = (py - cy[lp - 1]) / rho_p
        sel = u * u + v * v <= 1.0
        ls, hs = lp[sel], hp[sel]
        X = _design(u[sel], v[sel], quartic)
        M, rhs = _normal_equations(X, hs, ls, n)
        n_pix = np.bincount(ls, minlength=n + 1)[1:]
        beta = _solve(M, rhs, n_pix >= n_par + 1)
        fitted = np.isfinite(beta).all(axis=1)
        # stationary point of the quadratic part: A s = -g with the Hessian A (window units)
        a11, a12, a22 = 2 * beta[:, 3], beta[:, 4], 2 * beta[:, 5]
        det = a11 * a22 - a12 * a12
        concave = fitted & (det > 0) & (a11 < 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            su = -(a22 * beta[:, 1] - a12 * beta[:, 2]) / det
            sv = -(-a12 * beta[:, 1] + a11 * beta[:, 2]) / det
        inside = concave & (su * su + sv * sv <= 1.0)
        su = np.where(inside, su, 0.0)
        sv = np.where(inside, sv, 0.0)
        val = beta[:, 0] + 0.5 * (beta[:, 1] * su + beta[:, 2] * sv)
        if quartic:
            val = val + beta[:, 6] * (su * su + sv * sv) ** 2
        apex = np.where(inside, val, np.where(fitted, beta[:, 0], pmax))
        method = np.where(inside, "apex", np.where(fitted, "centre", "max"))
        cx = cx + su * rho
        cy = cy + sv * rho
        if it == max(1, int(n_iter)) - 1 or np.all(su * su + sv * sv < (0.05 / np.maximum(rho, 1.0)) ** 2):
            break
    # standard error of the intercept of the last fit (its window centre is the apex to first order)
    pred = np.einsum("kp,pk->p", X, np.nan_to_num(beta[ls - 1]))
    rss = np.bincount(ls, weights=(hs - pred) ** 2, minlength=n + 1)[1:]
    s2 = rss / np.maximum(n_pix - n_par, 1)
    cov00 = np.full(n, np.nan)
    if fitted.any():
        cov00[fitted] = np.linalg.inv(M[fitted])[:, 0, 0]
    err = np.where(fitted, np.sqrt(s2 * cov00), np.nan)
    return {"height_nm": apex, "height_err_nm": err, "x_px": cx, "y_px": cy, "n_pixels": n_pix,
            "method": method}
