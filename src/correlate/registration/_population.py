"""Which of the blobs are the fiducials: the compact population whose contrast per size stands
clear of the rest.

Fiducials are far stronger per nm of their size than the sample: gold absorbs far more per nm of
thickness than organic material (dark in transmission EM), fluorescent beads outshine labelled
particles, hard gold stands tall in AFM. Each blob gets the score

    z = log(contrast) - log(width)

with contrast the optical density ``-log(1 - depth / background)`` for dark blobs on a positive
(transmission) background, else the measured central excess. Sorted by z, the fiducials are the
top group above the widest gap, measured against the spread inside that group (a 1-D
two-component split); then the size mode of that group (beads are monodisperse) is kept.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contrast_score", "gap_split", "size_mode"]

_MIN_SPREAD = 0.05  # log units: bead-to-bead scatter below this is not resolvable by a gap test


def contrast_score(peak, peak_err, background, noise, sigma_nm, dark: bool):
    """Contrast (optical density or central excess), the score ``z`` and its standard error."""
    peak = np.asarray(peak, float)
    peak_err = np.asarray(peak_err, float)
    bg = np.asarray(background, float)
    sigma_nm = np.asarray(sigma_nm, float)
    # One contrast kind for the whole image (optical density when most candidates sit on a
    # background well above the noise): mixing optical densities with raw depths across
    # candidates whose local noise is near the limit splits one gold population in two.
    lit = bg > 10 * np.asarray(noise, float)
    transmission = np.broadcast_to(bool(dark) and lit.size > 0 and bool(np.mean(lit) >= 0.5), bg.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        # an opaque blob's depth is known only down to the noise: transmission below 2 % (OD 3.9)
        # counts as 2 %, so saturated gold reads alike whatever the local noise
        floor = np.clip(np.maximum(peak_err, 1e-12) / np.abs(bg), 0.02, 0.5)
        rel = np.clip(peak / bg, 0.0, 1.0 - floor)
        od = -np.log1p(-rel)
        contrast = np.where(transmission, od, peak)
        z = np.log(contrast) - np.log(sigma_nm)
        # relative error of the measured depth / excess (the optical density of a nearly opaque
        # blob is clipped, so its own error would overstate the scatter of the score)
        z_err = peak_err / np.abs(peak)
    z = np.where(np.isfinite(z), z, -np.inf)
    return contrast, z, np.where(np.isfinite(z_err), z_err, np.inf), transmission


def _group_spread(zs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Robust standard deviation (IQR / 1.349) of zs[lo:hi] for each (lo, hi), zs sorted descending."""
    n = hi - lo
    q1 = zs[lo + np.floor(0.25 * (n - 1)).astype(int)]
    q3 = zs[lo + np.ceil(0.75 * (n - 1)).astype(int)]
    return np.abs(q1 - q3) / 1.349


def gap_split(z: np.ndarray, z_err: np.ndarray, min_members: int = 3, min_rest: float = 0.5) -> dict:
    """Best split of ``z`` into a top group (>= ``min_members``) and the rest.

    For each split after the k-th largest, the gap to the next value is measured in units of the
    top group's spread (robust, at least its median measurement error and ``_MIN_SPREAD``) and of
    the rest's spread; splits whose gap is under ``min_rest`` spreads of the rest are not
    considered (they cut a population in two). Returns ``{"k", "ratio", "ratio_rest", "gap", "spread_top", "threshold"}``
    for the best k (``k = 0`` when there is nothing to split).
    """
    z = np.asarray(z, float)
    fin = np.isfinite(z)
    order = np.argsort(-np.where(fin, z, -np.inf))
    zs = z[order][: int(fin.sum())]
    es = np.asarray(z_err, float)[order][: len(zs)]
    n = len(zs)
    out = {"k": 0, "ratio": 0.0, "ratio_rest": 0.0, "gap": 0.0, "spread_top": float("nan"), "threshold": float("nan")}
    if n < min_members + 1:
        return out
    k = np.arange(min_members, n)  # top group zs[:k], rest zs[k:]
    gap = zs[k - 1] - zs[k]
    s_top = _group_spread(zs, np.zeros_like(k), k)
    # mean measurement error of the top group (errors capped: one failed estimate must not dominate)
    err_mean = np.cumsum(np.minimum(np.where(np.isfinite(es), es, 1.0), 1.0))[k - 1] / k
    s_top = np.maximum.reduce([s_top, err_mean, np.full(len(k), _MIN_SPREAD)])
    s_rest = np.maximum(_group_spread(zs, k, np.full_like(k, n)), _MIN_SPREAD)
    s_rest = np.where(n - k < 5, np.maximum(s_rest, s_top), s_rest)  # a rest of a few is no spread
    ratio = gap / s_top
    ratio_rest = gap / s_rest
    ratio_ok = np.where(ratio_rest >= min_rest, ratio, -np.inf)
    best = int(np.argmax(ratio_ok)) if np.isfinite(ratio_ok).any() else int(np.argmax(ratio))
    kb = int(k[best])
    out.update(
        k=kb,
        ratio=float(ratio[best]),
        ratio_rest=float(gap[best] / s_rest[best]),
        gap=float(gap[best]),
        spread_top=float(s_top[best]),
        threshold=float(0.5 * (zs[kb - 1] + zs[kb])),
    )
    return out


def size_mode(log_sigma: np.ndarray, members: np.ndarray, tolerance: float) -> tuple[np.ndarray, float, float]:
    """Members of the size mode of ``members``: within 4 robust spreads (at least 15 %, at most a
    factor ``tolerance``) of the median log width. Returns (mask, median log width, spread)."""
    ls = np.asarray(log_sigma, float)
    sel = np.asarray(members, bool)
    med = float(np.median(ls[sel]))
    spread = float(1.4826 * np.median(np.abs(ls[sel] - med)))
    width = min(max(4.0 * spread, np.log(1.15)), np.log(tolerance))
    return sel & (np.abs(ls - med) <= width), med, spread
