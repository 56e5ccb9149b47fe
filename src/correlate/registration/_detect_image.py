"""Fiducial beads / gold particles in images: blob detection + sub-pixel Gaussian fit.

1. Laplacian-of-Gaussian response at the expected bead size (on a binned copy when the bead
   spans many pixels), dark beads (EM gold) by inverting the image;
2. local maxima above a robust noise threshold;
3. a 2-D Gaussian + constant background fitted to a small window around each candidate by a
   vectorised Levenberg-Marquardt (all candidates at once); the position covariance is
   ``s^2 (J^T J)^-1`` with ``s^2`` the residual variance of the window;
4. beads are kept by size (fitted width near the expected one) and by contrast (the strong,
   compact spots: fiducials are much darker in EM, brighter in SIM/AFM than the sample).

Positions are in nm in the image's own frame (its coordinates), covariances in nm^2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RegistrationError
from ._fiducials import fiducial_table

__all__ = ["BEAD_DEFAULTS", "detect_beads", "fit_gaussians"]

#: Per-modality defaults: bead diameter (nm) and polarity.
BEAD_DEFAULTS: dict[str, dict] = {
    "em": {"diameter_nm": 40.0, "polarity": "dark"},
    "sim": {"diameter_nm": None, "polarity": "bright"},  # None: use the resolution (PSF)
    "sted": {"diameter_nm": None, "polarity": "bright"},
    "lm": {"diameter_nm": None, "polarity": "bright"},
    "afm": {"diameter_nm": 60.0, "polarity": "bright"},  # tip-broadened 40 nm gold
}


def fit_gaussians(data: np.ndarray, rows: np.ndarray, cols: np.ndarray, sigma_px: float, half: int, n_iter: int = 40, noise: str = "white"):
    """Fit ``bg + amp exp(-r^2 / 2 s^2)`` around each (row, col) of a 2-D array, vectorised.

    ``noise="white"`` estimates the pixel noise from a high-pass of the residuals (the smooth misfit
    of a Gaussian to a bead profile does not count as noise; that misfit is symmetric and does not
    move the centre); ``noise="residual"`` uses the full residual variance (conservative).

    Returns
    -------
    params : (K, 5) x0 (col), y0 (row) in pixels, amp, sigma (px), bg
    cov : (K, 2, 2) covariance of (x0, y0) in px^2
    ok : (K,) bool, converged with a sane result inside the window
    """
    k = len(rows)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    xx = xx.ravel().astype(float)
    yy = yy.ravel().astype(float)
    win = data[rows[:, None] + yy.astype(int)[None, :], cols[:, None] + xx.astype(int)[None, :]].astype(float)
    border = (np.abs(xx) == half) | (np.abs(yy) == half)
    bg0 = np.median(win[:, border], axis=1)
    p = np.column_stack([np.zeros(k), np.zeros(k), win[:, (xx == 0) & (yy == 0)][:, 0] - bg0, np.full(k, sigma_px), bg0])

    def model_and_jac(p):
        dx = xx[None] - p[:, 0:1]
        dy = yy[None] - p[:, 1:2]
        s2 = p[:, 3:4] ** 2
        r2 = dx * dx + dy * dy
        e = np.exp(-r2 / (2 * s2))
        a = p[:, 2:3]
        m = p[:, 4:5] + a * e
        j = np.stack([a * e * dx / s2, a * e * dy / s2, e, a * e * r2 / (s2 * p[:, 3:4]), np.ones_like(e)], -1)
        return m, j

    mu = np.full(k, 1e-3)
    m, j = model_and_jac(p)
    cost = ((win - m) ** 2).sum(1)
    for _ in range(n_iter):
        r = win - m
        jt = j.transpose(0, 2, 1)
        jtj = jt @ j
        jtr = (jt @ r[..., None])[..., 0]
        dg = np.einsum("kii->ki", jtj)
        a = jtj + mu[:, None, None] * dg[:, :, None] * np.eye(5)[None]
        try:
            step = np.linalg.solve(a, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(p)
        pn = p + step
        pn[:, 3] = np.clip(np.abs(pn[:, 3]), 0.3, 4 * half)
        mn, jn = model_and_jac(pn)
        cn = ((win - mn) ** 2).sum(1)
        better = cn < cost
        p = np.where(better[:, None], pn, p)
        m = np.where(better[:, None], mn, m)
        j = np.where(better[:, None, None], jn, j)
        cost = np.where(better, cn, cost)
        mu = np.where(better, mu * 0.3, mu * 10)
        if np.all(np.abs(step[:, :2]).max(1) < 1e-4):
            break
    npx = len(xx)
    s2_resid = cost / max(npx - 5, 1)
    # White-noise variance from a high-pass of the residuals (insensitive to the smooth misfit of a
    # Gaussian to a bead profile): h = r - mean(4 neighbours), var(h) = 1.25 sigma^2.
    w = 2 * half + 1
    r3 = (win - m).reshape(k, w, w)
    hp = r3[:, 1:-1, 1:-1] - 0.25 * (r3[:, :-2, 1:-1] + r3[:, 2:, 1:-1] + r3[:, 1:-1, :-2] + r3[:, 1:-1, 2:])
    s2_white = (hp**2).mean(axis=(1, 2)) / 1.25
    s2 = s2_white if noise == "white" else s2_resid
    jtj = j.transpose(0, 2, 1) @ j
    try:
        inv = np.linalg.inv(jtj)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(jtj)
    cov = s2[:, None, None] * inv[:, :2, :2]
    ok = (
        np.all(np.isfinite(p), axis=1)
        & (np.abs(p[:, 0]) < half * 0.6)
        & (np.abs(p[:, 1]) < half * 0.6)
        & (p[:, 2] > 0)
        & np.all(np.isfinite(cov.reshape(k, -1)), axis=1)
    )
    p = p.copy()
    p[:, 0] += cols
    p[:, 1] += rows
    return p, cov, ok


def _robust_sigma(a: np.ndarray) -> float:
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med))) or float(np.std(a)) or 1.0


def detect_beads(
    image,
    *,
    diameter_nm: float | None = None,
    polarity: str | None = None,
    threshold: float = 5.0,
    min_contrast: float | None = None,
    size_tolerance: float = 1.6,
    max_candidates: int = 5000,
    noise: str = "white",
    floor_nm: float | None = None,
) -> pd.DataFrame:
    """Detect fiducial beads (or gold particles) in a 2-D image, with sub-pixel positions.

    Parameters
    ----------
    image
        An Image element (xarray, dims ``(y, x)``, nm coordinates), or one with a ``c`` axis
        (the first channel is used).
    diameter_nm
        Expected bead diameter (nm); default per modality (:data:`BEAD_DEFAULTS`); for light
        microscopy the optical resolution (``attrs["resolution_nm"]``, else 250 nm) sets the size.
    polarity
        ``"dark"`` (EM gold), ``"bright"`` (fluorescent beads, AFM height) or ``"auto"``.
    threshold
        LoG response threshold in robust standard deviations of the response.
    min_contrast
        Keep beads whose fitted amplitude is at least this fraction of the third strongest;
        default 0.5 (fiducials are the strongest compact spots).
    size_tolerance
        Keep beads whose fitted width is within this factor of the expected width.
    noise
        ``"white"`` (pixel noise from a high-pass of the fit residuals) or ``"residual"``; see
        :func:`fit_gaussians`.
    floor_nm
        Systematic localisation floor (nm per axis) added in quadrature to each covariance;
        default 1 % of the resolution for light microscopy (neighbouring emitters, aberrations),
        0 for EM and AFM.

    Returns
    -------
    pandas.DataFrame
        One row per bead: ``x, y`` (nm, image frame), ``cov_xx, cov_xy, cov_yy`` (nm^2),
        ``amplitude`` (image units, sign-corrected), ``sigma_nm`` (fitted Gaussian width),
        ``background``, ``snr``. ``attrs`` record the parameters.
    """
    from scipy import ndimage as ndi

    img = image
    if "c" in img.dims:
        img = img.isel(c=0)
    if "z" in img.dims:
        raise RegistrationError("bead detection works on 2-D images; pick a z plane", field="z")
    modality = img.attrs.get("modality", "lm")
    dflt = BEAD_DEFAULTS.get(modality, BEAD_DEFAULTS["lm"])
    if polarity is None:
        polarity = dflt["polarity"]
    px_x = float(img.coords["x"].values[1] - img.coords["x"].values[0])
    px_y = float(img.coords["y"].values[1] - img.coords["y"].values[0])
    px = 0.5 * (px_x + px_y)
    x0 = float(img.coords["x"].values[0])
    y0 = float(img.coords["y"].values[0])
    if diameter_nm is None:
        diameter_nm = dflt["diameter_nm"]
    if diameter_nm is None:  # light microscopy: a point source at the resolution
        fwhm = float(img.attrs.get("resolution_nm", 250.0))
        sigma_nm = fwhm / 2.3548
    else:
        sigma_nm = np.sqrt((diameter_nm / 3.0) ** 2 + (0.5 * px) ** 2)  # Gaussian width of a projected bead
    data = np.asarray(img.values, dtype=np.float32)
    if polarity == "auto":
        med = np.median(data)
        polarity = "dark" if (med - data.min()) > (data.max() - med) else "bright"
    sgn = -1.0 if polarity == "dark" else 1.0
    work = sgn * data
    # Detection on a binned copy when beads span many pixels.
    sigma_px = sigma_nm / px
    b = max(1, int(sigma_px // 2.5))
    if b > 1:
        h, w = (work.shape[0] // b) * b, (work.shape[1] // b) * b
        small = work[:h, :w].reshape(h // b, b, w // b, b).mean((1, 3))
    else:
        small = work
    s_small = sigma_px / b
    resp = -(s_small**2) * ndi.gaussian_laplace(small.astype(np.float32), s_small)
    resp_noise = _robust_sigma(resp[:: max(1, resp.shape[0] // 256), :: max(1, resp.shape[1] // 256)])
    size = max(3, int(2 * s_small) | 1)
    peaks = (resp == ndi.maximum_filter(resp, size=size)) & (resp > np.median(resp) + threshold * resp_noise)
    rr, cc = np.nonzero(peaks)
    if len(rr) > max_candidates:
        top = np.argsort(resp[rr, cc])[::-1][:max_candidates]
        rr, cc = rr[top], cc[top]
    rr = rr * b + b // 2
    cc = cc * b + b // 2
    half = max(3, int(np.ceil(3.0 * sigma_px)))
    inside = (rr >= half) & (rr < work.shape[0] - half) & (cc >= half) & (cc < work.shape[1] - half)
    rr, cc = rr[inside], cc[inside]
    empty = fiducial_table(np.zeros((0, 2)), np.zeros((0, 2, 2)), amplitude=[], sigma_nm=[], background=[], snr=[])
    if len(rr) == 0:
        return empty
    # fiducials are the strongest spots: do not fit the weak tail of the response
    strongest = np.sort(resp[(rr - b // 2) // b, (cc - b // 2) // b])[::-1]
    keep_r = resp[(rr - b // 2) // b, (cc - b // 2) // b] >= 0.2 * strongest[min(2, len(strongest) - 1)]
    rr, cc = rr[keep_r], cc[keep_r]
    params, cov_px, ok = fit_gaussians(work, rr, cc, sigma_px, half, noise=noise)
    params, cov_px = params[ok], cov_px[ok]
    if len(params) == 0:
        return empty
    # one detection per bead
    from scipy.spatial import cKDTree

    order = np.argsort(-params[:, 2])
    params, cov_px = params[order], cov_px[order]
    tree = cKDTree(params[:, :2])
    drop = np.zeros(len(params), bool)
    for i, j in sorted(tree.query_pairs(max(1.0, sigma_px))):
        if not drop[i]:
            drop[j] = True
    params, cov_px = params[~drop], cov_px[~drop]
    size_ok = (params[:, 3] > sigma_px / size_tolerance) & (params[:, 3] < sigma_px * size_tolerance)
    params, cov_px = params[size_ok], cov_px[size_ok]
    if len(params) == 0:
        return empty
    mc = 0.5 if min_contrast is None else float(min_contrast)
    ref = np.sort(params[:, 2])[::-1][min(2, len(params) - 1)]  # 3rd strongest: robust to one artefact
    strong = params[:, 2] >= mc * ref
    params, cov_px = params[strong], cov_px[strong]
    scale = np.array([px_x, px_y])
    pos = np.column_stack([x0 + params[:, 0] * px_x, y0 + params[:, 1] * px_y])
    cov = cov_px * np.outer(scale, scale)[None]
    if floor_nm is None:
        floor_nm = 0.01 * 2.3548 * sigma_nm if diameter_nm is None or modality in ("sim", "sted", "lm") else 0.0
    cov = cov + float(floor_nm) ** 2 * np.eye(2)[None]
    df = fiducial_table(
        pos,
        cov,
        amplitude=params[:, 2],
        sigma_nm=params[:, 3] * px,
        background=sgn * params[:, 4],
        snr=params[:, 2] / max(resp_noise, 1e-12),
    )
    df.attrs.update(
        {
            "detector": "image-log-gaussian",
            "modality": modality,
            "polarity": polarity,
            "expected_sigma_nm": float(sigma_nm),
            "floor_nm": float(floor_nm),
            "frame": img.name or "",
        }
    )
    return df.sort_values(["y", "x"]).reset_index(drop=True)
