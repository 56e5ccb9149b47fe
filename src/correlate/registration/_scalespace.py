"""Blob candidates across scales: scale-normalised difference of Gaussians (~LoG) on a 2x pyramid.

The widths form a geometric series (``per_octave`` per doubling). A width ``s`` (pixels of the
full image) is filtered on the pyramid level ``2^l`` where ``s / 2^l`` lies in [1.25, 2.5) pixels
(level 0 below that), so every filter is a few pixels wide and large blobs cost no more than small
ones. On each level the blurs are made one from the previous (small kernels) and adjacent ones
subtracted (DoG, ``(G(k s) - G(s)) / (k - 1) ~ s^2 LoG``). Levels are processed in row strips, so the filters never hold more than a strip of a level
in memory beside the pyramid itself (4/3 of the image).

Each scale gives local maxima (bright blobs) and minima (dark blobs) of the response above a
robust noise threshold; candidates of all scales are then thinned by non-maximum suppression
across position and scale, each survivor keeping its best scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Candidates", "build_pyramid", "level_for_sigma", "log_candidates", "sigma_series", "suppress"]

_STRIP_PIXELS = 1 << 24  # pixels per strip of a level (64 MiB of float32 per temporary)
_LEVEL_LO = 1.25  # smallest filter width on a binned level (pixels of that level)


@dataclass
class Candidates:
    """Blob candidates in full-image pixel units: ``y, x`` (pixel centres), ``sigma`` (LoG width),
    ``strength`` (|normalised response|)."""

    y: np.ndarray
    x: np.ndarray
    sigma: np.ndarray
    strength: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx) -> Candidates:
        return Candidates(self.y[idx], self.x[idx], self.sigma[idx], self.strength[idx])

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        if not parts:
            z = np.zeros(0)
            return Candidates(z, z, z, z)
        return Candidates(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("y", "x", "sigma", "strength")))


def build_pyramid(data: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """``[data, 2x2-mean binned, 4x4, ...]`` (float32), at most ``n_levels`` levels, each >= 16 px."""
    levels = [data]
    for _ in range(1, n_levels):
        prev = levels[-1]
        h, w = (prev.shape[0] // 2) * 2, (prev.shape[1] // 2) * 2
        if min(h, w) < 32:
            break
        levels.append(prev[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32))
    return levels


def sigma_series(lo_px: float, hi_px: float, per_octave: int = 3) -> np.ndarray:
    """Geometric series of LoG widths (pixels) covering [lo_px, hi_px]."""
    n = max(1, int(np.ceil(per_octave * np.log2(max(hi_px, lo_px) / lo_px))) + 1)
    return lo_px * 2.0 ** (np.arange(n) / per_octave)


def level_for_sigma(sigma_px: np.ndarray | float, lo: float = _LEVEL_LO, n_levels: int = 64) -> np.ndarray:
    """Pyramid level on which a width ``sigma_px`` (full-image pixels) is ``lo`` to ``2 lo`` pixels."""
    lv = np.floor(np.log2(np.maximum(np.asarray(sigma_px, float), 1e-9) / lo))
    return np.clip(lv, 0, n_levels - 1).astype(int)


def _robust_level(a: np.ndarray) -> tuple[float, float]:
    step = max(1, int(np.sqrt(a.size / 250_000)))
    s = a[::step, ::step].ravel()
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med)))
    return med, 1.4826 * mad if mad > 0 else float(np.std(s))


def _extrema(resp: np.ndarray, core_rows: slice, r0: int, h: int, w: int, threshold: float, margin: int):
    """3 x 3 extrema of one response strip above ``threshold`` robust sigmas, both signs."""
    core = resp[core_rows]
    med, sd = _robust_level(core)
    hh, ww = resp.shape
    out = []
    for sign in (1.0, -1.0):
        rr, cc = np.nonzero(core > med + threshold * sd) if sign > 0 else np.nonzero(core < med - threshold * sd)
        ok = (rr + r0 >= margin) & (rr + r0 < h - margin) & (cc >= margin) & (cc < w - margin)
        rr, cc = rr[ok], cc[ok]
        ra = rr + core_rows.start  # rows in resp
        v = sign * resp[ra, cc]
        is_ext = np.ones(len(rr), bool)
        for di in (-1, 0, 1):  # the 8 neighbours, only at pixels above threshold
            for dj in (-1, 0, 1):
                if di or dj:
                    is_ext &= v >= sign * resp[np.clip(ra + di, 0, hh - 1), np.clip(cc + dj, 0, ww - 1)]
        rr, cc = rr[is_ext], cc[is_ext]
        out.append((rr + r0, cc, np.abs(core[rr, cc] - med), np.full(len(rr), sign)))
    rows, cols, val, sgn = (np.concatenate(c) for c in zip(*out))
    return rows, cols, val, sgn, sd


def _level_extrema(level: np.ndarray, sig: np.ndarray, ratio: float, threshold: float):
    """Extrema of the scale-normalised difference of Gaussians at widths ``sig`` (pixels of this
    level): ``(G(k s) - G(s)) / (k - 1) ~ s^2 LoG``, each blur made from the previous one.
    Yields (scale index, rows, cols, |response|, sign, noise) per scale and strip."""
    from scipy import ndimage as ndi

    h, w = level.shape
    rows_per = max(64, _STRIP_PIXELS // max(w, 1))
    chain = np.concatenate([sig, [sig[-1] * ratio]])
    pad = int(np.ceil(4 * chain[-1])) + 2
    for r0 in range(0, h, rows_per):
        r1 = min(h, r0 + rows_per)
        a0, a1 = max(0, r0 - pad), min(h, r1 + pad)
        core_rows = slice(r0 - a0, r1 - a0)
        g_prev = ndi.gaussian_filter(level[a0:a1], chain[0], mode="nearest", truncate=4.0)
        for i in range(len(sig)):
            inc = float(np.sqrt(chain[i + 1] ** 2 - chain[i] ** 2))
            g_next = ndi.gaussian_filter(g_prev, inc, mode="nearest", truncate=4.0)
            resp = g_prev - g_next  # bright blob > 0
            resp *= np.float32(1.0 / (ratio - 1.0))
            rows, cols, val, sgn, sd = _extrema(resp, core_rows, r0, h, w, threshold, int(np.ceil(sig[i])) + 1)
            del resp
            yield i, rows, cols, val, sgn, sd
            g_prev = g_next


def log_candidates(
    levels: list[np.ndarray],
    sigmas: np.ndarray,
    threshold: float | np.ndarray,
    max_per_scale: int = 20000,
) -> tuple[dict[str, Candidates], dict]:
    """Scale-space extrema of every width in ``sigmas`` (full-image pixels, a geometric series).

    ``threshold`` is in robust standard deviations of each scale's response (scalar or one per
    level). Returns ``{"bright": Candidates, "dark": Candidates}`` before suppression and a dict
    with the response noise per scale.
    """
    sigmas = np.asarray(sigmas, float)
    ratio = float(sigmas[1] / sigmas[0]) if len(sigmas) > 1 else 2.0 ** (1 / 3)
    lv = level_for_sigma(sigmas, n_levels=len(levels))
    thr = np.broadcast_to(np.asarray(threshold, float), (len(levels),))
    parts: dict[str, list[Candidates]] = {"bright": [], "dark": []}
    noise: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    for level_idx in np.unique(lv):
        b = 2**int(level_idx)
        idx = np.nonzero(lv == level_idx)[0]
        for i, rows, cols, val, sgn, sd in _level_extrema(levels[level_idx], sigmas[idx] / b, ratio, float(thr[level_idx])):
            k = int(idx[i])
            noise.setdefault(k, []).append(sd)
            counts[k] = counts.get(k, 0) + len(rows)
            for name, sign in (("bright", 1.0), ("dark", -1.0)):
                m = sgn == sign
                r, c, v = rows[m], cols[m], val[m]
                if len(v) > max_per_scale:
                    top = np.argpartition(-v, max_per_scale)[:max_per_scale]
                    r, c, v = r[top], c[top], v[top]
                parts[name].append(Candidates(r * b + 0.5 * (b - 1), c * b + 0.5 * (b - 1), np.full(len(r), sigmas[k]), v))
    info = {
        "sigma_px": sigmas.tolist(),
        "level": lv.tolist(),
        "response_noise": [float(np.median(noise.get(k, [np.nan]))) for k in range(len(sigmas))],
        "n_extrema": [counts.get(k, 0) for k in range(len(sigmas))],
    }
    return {k: Candidates.concat(v) for k, v in parts.items()}, info


def suppress(y: np.ndarray, x: np.ndarray, radius: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Greedy non-maximum suppression, vectorised: a candidate is dropped when a stronger kept one
    lies closer than the larger of the two radii. Returns the keep mask."""
    from scipy.spatial import cKDTree

    n = len(y)
    if n <= 1:
        return np.ones(n, bool)
    pts = np.column_stack([x, y])
    tree = cKDTree(pts)
    nb = tree.query_ball_point(pts, r=np.asarray(radius, float), return_sorted=False)
    lens = np.fromiter((len(v) for v in nb), dtype=np.int64, count=n)
    i = np.repeat(np.arange(n), lens)
    j = np.concatenate([np.asarray(v, dtype=np.int64) for v in nb]) if lens.sum() else np.zeros(0, np.int64)
    sel = i != j
    i, j = i[sel], j[sel]
    # rank: stronger first, ties by index
    order = np.lexsort((np.arange(n), -np.asarray(strength, float)))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    stronger = np.where(rank[i] < rank[j], i, j)
    weaker = np.where(rank[i] < rank[j], j, i)
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, -1 dropped
    while True:
        und = state == 0
        if not und.any():
            break
        live = und[stronger] & und[weaker]
        has_stronger = np.zeros(n, bool)
        has_stronger[weaker[live]] = True
        kings = und & ~has_stronger
        state[kings] = 1
        hit = kings[stronger] & (state[weaker] == 0)
        state[weaker[hit]] = -1
    return state == 1
