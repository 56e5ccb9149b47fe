"""Coordinate-based colocalization (CBC) of two localization sets.

Malkusch S, Endesfelder U, Mondry J, Gelléri M, Verveer PJ, Heilemann M. Coordinate-based
colocalization analysis of single-molecule localization microscopy data. Histochem Cell Biol
2012, 137(1):1-10. doi:10.1007/s00418-011-0880-5

For each point ``A_i`` and radii ``r_k = k R / n_steps`` (k = 1..n_steps):

* ``N_AA(r_k)``: points of A (other than ``A_i`` itself) within ``r_k`` of ``A_i``;
  ``N_AB(r_k)``: points of B within ``r_k``.
* Density normalised to the density within the largest radius:
  ``D_AA(r_k) = N_AA(r_k) / N_AA(R) * R^2 / r_k^2`` (same for AB).
* ``rho_i`` = Spearman rank correlation of ``D_AA`` and ``D_AB`` over k (average ranks for ties);
  NaN when A_i has no A or no B neighbour within R, or when either profile is constant.
* ``C_i = rho_i * exp(-E_i / R)``, with ``E_i`` the distance from ``A_i`` to its nearest B
  neighbour (Malkusch 2012, ThunderSTORM). ``weighting="locan"`` uses instead the largest A->B
  distance within R, which is what locan's ``CoordinateBasedColocalization`` computes
  (its docstring says nearest neighbour); ``weighting="none"`` returns ``rho_i``.

Counting convention (matching locan's histogram binning): a neighbour at distance ``d`` is counted
at radius index ``k`` (1-based) if ``r_{k-1} <= d < r_k``, the last bin including ``R``; a neighbour
at ``d = 0`` (a duplicate position) counts from the first radius on. Cumulative counts then give
``N(r_k)``. The computation is vectorised: one KD-tree sparse distance query within R for each of
AA and AB, a bincount over (point, bin), and row-wise ranks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["cbc"]


def _pairs_within(tree_points: np.ndarray, query_points: np.ndarray, radius: float, *, same: bool):
    """(row, col, dist) of all pairs with dist <= radius (zero distances included); rows index
    ``query_points``. ``same``: both sets are the same points and self pairs are dropped."""
    from scipy.spatial import cKDTree

    tq = cKDTree(query_points)
    tt = tq if same else cKDTree(tree_points)
    m = tq.sparse_distance_matrix(tt, radius, output_type="ndarray")
    rows = m["i"].astype(np.int64)
    cols = m["j"].astype(np.int64)
    d = m["v"].astype(float)
    if same:
        keep = rows != cols
        rows, cols, d = rows[keep], cols[keep], d[keep]
    return rows, cols, d


def _row_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties averaged) along the last axis of a (N, K) array."""
    less = (v[:, None, :] < v[:, :, None]).sum(axis=2)
    equal = (v[:, None, :] == v[:, :, None]).sum(axis=2)
    return less + (equal + 1) / 2.0


def _row_spearman(a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(a))
    for s in range(0, len(a), chunk):  # chunks bound the (chunk, K, K) temporaries
        ra = _row_ranks(a[s : s + chunk])
        rb = _row_ranks(b[s : s + chunk])
        ra = ra - ra.mean(axis=1, keepdims=True)
        rb = rb - rb.mean(axis=1, keepdims=True)
        num = (ra * rb).sum(axis=1)
        den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def cbc(
    points_a,
    points_b=None,
    *,
    radius: float = 100.0,
    n_steps: int = 10,
    weighting: Literal["nearest", "locan", "none"] = "nearest",
    return_details: bool = False,
):
    """Coordinate-based colocalization index of every point of A with respect to B.

    Parameters
    ----------
    points_a
        (N, D) positions in nm (x, y[, z]), or a DataFrame with columns x, y[, z].
    points_b
        (M, D) positions of the other set; None compares A with a copy of itself (each point is
        then its own B neighbour at distance 0, as in locan).
    radius
        Largest radius R (nm) of the neighbourhood.
    n_steps
        Number of radii ``R/n_steps, 2R/n_steps, ..., R``.
    weighting
        ``"nearest"`` (Malkusch 2012): ``exp(-nearest B distance / R)``; ``"locan"``:
        ``exp(-largest B distance within R / R)`` as locan computes it; ``"none"``: Spearman only.
    return_details
        Also return a dict with ``rho``, ``nn_distance`` (nm, inf where B is empty) and the
        density profiles ``d_aa``, ``d_ab`` of shape (N, n_steps).

    Returns
    -------
    numpy.ndarray
        (N,) CBC values in [-1, 1]; NaN where undefined (no A or no B neighbour within R, or a
        constant density profile).
    """
    from scipy.spatial import cKDTree

    a = _as_xy(points_a)
    # B = None: A compared with a copy of itself (A_i counts as its own B neighbour at d = 0),
    # as locan does.
    b = a if points_b is None else _as_xy(points_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"points_a has {a.shape[1]} coordinates, points_b {b.shape[1]}")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number of nm, got {radius!r}")
    if int(n_steps) < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps!r}")
    if weighting not in ("nearest", "locan", "none"):
        raise ValueError(f"weighting must be 'nearest', 'locan' or 'none', got {weighting!r}")
    n_steps = int(n_steps)
    n = len(a)
    radii = np.linspace(0, radius, n_steps + 1)

    def counts(rows, d):
        k = np.searchsorted(radii, d, side="right") - 1
        k = np.clip(k, 0, n_steps - 1)  # d == R goes to the last (closed) bin
        h = np.bincount(rows * n_steps + k, minlength=n * n_steps).reshape(n, n_steps)
        return np.cumsum(h, axis=1)

    ra, _, da = _pairs_within(a, a, radius, same=True)
    rb, _, db = _pairs_within(b, a, radius, same=False)
    c_aa = counts(ra, da)
    c_ab = counts(rb, db)
    n_aa = c_aa[:, -1]
    n_ab = c_ab[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        # same floating-point order as locan: cumsum * R**2 / r_k**2 / N(R)
        d_aa = c_aa * radius**2 / radii[1:] ** 2 / n_aa[:, None]
        d_ab = c_ab * radius**2 / radii[1:] ** 2 / n_ab[:, None]
    valid = (n_aa > 0) & (n_ab > 0)
    rho = np.full(n, np.nan)
    if valid.any():
        rho[valid] = _row_spearman(d_aa[valid], d_ab[valid])

    if weighting == "nearest":
        if len(b):
            e, _ = cKDTree(b).query(a, k=1)
        else:
            e = np.full(n, np.inf)
        w = np.exp(-e / radius)
    elif weighting == "locan":
        dmax = np.zeros(n)
        if len(db):
            np.maximum.at(dmax, rb, db)
        w = np.exp(-1 * dmax / radius)
    else:
        w = np.ones(n)
    out = rho * w
    if return_details:
        nn = cKDTree(b).query(a, k=1)[0] if len(b) else np.full(n, np.inf)
        return out, {"rho": rho, "nn_distance": nn, "d_aa": d_aa, "d_ab": d_ab, "weight": w}
    return out


def _as_xy(points) -> np.ndarray:
    import pandas as pd

    if isinstance(points, pd.DataFrame):
        cols = [c for c in ("x", "y", "z") if c in points.columns]
        return points[cols].to_numpy(dtype=float)
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"points must be (N, D), got shape {p.shape}")
    return p
