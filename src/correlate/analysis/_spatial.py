"""Point-pattern statistics: nearest-neighbour distances, Ripley's K/L/H, pair correlation.

Edge correction: the *translation* correction of Ohser (1983) for a rectangular window
``W = [x0, x1] x [y0, y1]``: a pair (i, j) at offset (dx, dy) is weighted by
``|W| / ((Wx - |dx|) (Wy - |dy|))``, the inverse of the fraction of translates of W that contain
both points. With ``edge_correction="none"`` the estimator is biased low near ``r ~ window``.

``K(r) = |W| / (n (n - 1)) * sum_{i != j} w_ij 1[d_ij <= r]``, ``L(r) = sqrt(K / pi)``,
``H(r) = L(r) - r`` and ``g(r) = (dK/dr) / (2 pi r)`` estimated on annuli. For complete spatial
randomness K = pi r^2, L = r, H = 0, g = 1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["nearest_neighbor_distances", "pair_correlation", "ripley"]


def _xy(points) -> np.ndarray:
    if isinstance(points, pd.DataFrame):
        return points[[c for c in ("x", "y") if c in points.columns]].to_numpy(dtype=float)
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"points must be (N, 2) x, y in nm, got shape {p.shape}")
    return p[:, :2]


def nearest_neighbor_distances(points_a, points_b=None, *, k: int = 1) -> np.ndarray:
    """Distance (nm) from every point of A to its k-th nearest neighbour in B (in A if B is None,
    the point itself excluded). Returns (N,) float; inf where there are fewer than k neighbours."""
    from scipy.spatial import cKDTree

    a = _xy(points_a)
    same = points_b is None
    b = a if same else _xy(points_b)
    if len(a) == 0:
        return np.empty(0)
    kk = k + 1 if same else k
    if len(b) < kk:
        return np.full(len(a), np.inf)
    d, _ = cKDTree(b).query(a, k=kk)
    d = np.atleast_2d(d.T).T if d.ndim == 1 else d
    return d[:, -1] if d.ndim == 2 else d


def _window(p: np.ndarray, window) -> tuple[float, float, float, float]:
    if window is None:
        x0, y0 = p.min(axis=0)
        x1, y1 = p.max(axis=0)
    else:
        x0, y0, x1, y1 = map(float, window)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"window {(x0, y0, x1, y1)} (x0, y0, x1, y1 in nm) has no area")
    return x0, y0, x1, y1


def _weighted_pairs(p, rmax, window, edge_correction):
    from scipy.spatial import cKDTree

    x0, y0, x1, y1 = _window(p, window)
    wx, wy = x1 - x0, y1 - y0
    inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
    p = p[inside]
    pairs = cKDTree(p).query_pairs(rmax, output_type="ndarray")
    dxy = p[pairs[:, 0]] - p[pairs[:, 1]]
    d = np.hypot(dxy[:, 0], dxy[:, 1])
    if edge_correction == "translation":
        w = (wx * wy) / ((wx - np.abs(dxy[:, 0])) * (wy - np.abs(dxy[:, 1])))
    elif edge_correction == "none":
        w = np.ones(len(d))
    else:
        raise ValueError(f"edge_correction must be 'translation' or 'none', got {edge_correction!r}")
    return len(p), wx * wy, d, 2.0 * w  # each unordered pair counts for (i, j) and (j, i)


def ripley(
    points,
    radii,
    *,
    window=None,
    edge_correction: Literal["translation", "none"] = "translation",
) -> pd.DataFrame:
    """Ripley's K, L and H functions of a 2-D point pattern.

    Parameters
    ----------
    points
        (N, 2) x, y in nm or a DataFrame with x, y.
    radii
        (R,) increasing radii in nm (each < half the window side for the translation correction
        to stay well conditioned).
    window
        ``(x0, y0, x1, y1)`` observation rectangle in nm; default the bounding box of the points
        (which slightly overestimates the intensity: give the true field when known).
    edge_correction
        ``"translation"`` (Ohser) or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``r`` (nm), ``K`` (nm^2), ``L`` (nm), ``H`` (nm).
    """
    p = _xy(points)
    r = np.asarray(radii, dtype=float)
    if r.ndim != 1 or r.size == 0 or np.any(np.diff(r) <= 0) or r[0] < 0:
        raise ValueError("radii must be a 1-D increasing array of non-negative nm")
    n, area, d, w = _weighted_pairs(p, r[-1], window, edge_correction)
    if n < 2:
        k = np.full(r.size, np.nan)
    else:
        order = np.argsort(d)
        cw = np.concatenate([[0.0], np.cumsum(w[order])])
        idx = np.searchsorted(d[order], r, side="right")
        k = area / (n * (n - 1)) * cw[idx]
    l = np.sqrt(k / np.pi)
    return pd.DataFrame({"r": r, "K": k, "L": l, "H": l - r})


def pair_correlation(
    points,
    radii,
    *,
    window=None,
    edge_correction: Literal["translation", "none"] = "translation",
) -> pd.DataFrame:
    """Pair correlation function g(r) on the annuli between consecutive ``radii`` (nm).

    Returns a DataFrame with ``r`` (annulus centre, nm), ``r_inner``, ``r_outer`` and ``g``
    (1 for complete spatial randomness).
    """
    p = _xy(points)
    edges = np.asarray(radii, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError("radii must be a 1-D increasing array of >= 2 annulus edges in nm")
    n, area, d, w = _weighted_pairs(p, edges[-1], window, edge_correction)
    h, _ = np.histogram(d, bins=edges, weights=w)
    ring = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    g = area / (n * (n - 1)) * h / ring if n >= 2 else np.full(ring.size, np.nan)
    return pd.DataFrame(
        {"r": 0.5 * (edges[1:] + edges[:-1]), "r_inner": edges[:-1], "r_outer": edges[1:], "g": g}
    )
