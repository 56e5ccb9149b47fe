"""Assignment of localizations to particles.

A localization at distance ``d`` from the centroid of particle ``j`` (equivalent radius ``r_j``)
falls in that particle when ``d - r_j <= shell``, with

``shell = linker_nm + n_sigma * sqrt(tre^2 + precision^2)``

(``tre``: predicted registration error at that place, nm; ``precision``: the localization's own
precision, nm). A localization within the shell of exactly one particle is assigned to it; within
the shells of two or more it goes to the particle whose edge is nearer by more than
``sqrt(tre^2 + precision^2)`` (``resolve_nm``), and is otherwise
*ambiguous* (flagged, not counted); outside every shell it is unassigned
(background, fiducials). Localizations flagged as fiducial (``exclude``) are never assigned.
Candidates come from one KD-tree query over particle centroids (k nearest within the largest
possible reach), so the cost is O(N log M), no loop over localizations or particles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["assign_localizations", "persistent_clusters"]


def assign_localizations(
    points,
    centroids,
    radii_nm,
    *,
    linker_nm: float = 10.0,
    n_sigma: float = 2.0,
    precision_nm=None,
    tre_nm=0.0,
    exclude=None,
    max_candidates: int = 8,
    resolve_nm: float | None = None,
) -> pd.DataFrame:
    """Assign points (nm, the particles' space) to particles.

    Parameters
    ----------
    points
        (N, 2) x, y in nm, in the same space as ``centroids``.
    centroids, radii_nm
        (M, 2) particle centroids and (M,) radii (nm; e.g. equivalent diameter / 2).
    linker_nm
        Distance (nm) a label sits outside the particle edge (antibody linker, corona thickness).
    n_sigma
        Multiple of the combined registration and localization uncertainty added to the shell.
    precision_nm
        Scalar or (N,) localization precision (nm); None = 0.
    tre_nm
        Scalar, (N,) per point, or a callable ``tre(points) -> (N,)`` (predicted TRE, nm).
    exclude
        (N,) bool: points never assigned (e.g. fiducial tracks).
    max_candidates
        Nearest particles examined per point.
    resolve_nm
        A point inside two shells still goes to the particle whose edge is nearer by more than
        this (default: the point's combined uncertainty ``sqrt(tre^2 + precision^2)``, one
        sigma); otherwise ambiguous.

    Returns
    -------
    pandas.DataFrame
        Per point: ``particle`` (row index into centroids, -1 if none), ``ambiguous`` (bool),
        ``distance_nm`` (to the assigned/nearest particle centroid), ``shell_nm``.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points, float).reshape(-1, 2)
    c = np.asarray(centroids, float).reshape(-1, 2)
    r = np.asarray(radii_nm, float).reshape(-1)
    n, m = len(p), len(c)
    prec = np.zeros(n) if precision_nm is None else np.broadcast_to(np.asarray(precision_nm, float), (n,))
    tre = tre_nm(p) if callable(tre_nm) else tre_nm
    tre = np.broadcast_to(np.asarray(tre, float), (n,))
    sig = np.sqrt(np.nan_to_num(tre) ** 2 + np.nan_to_num(prec) ** 2)
    shell = float(linker_nm) + float(n_sigma) * sig
    out = pd.DataFrame(
        {"particle": np.full(n, -1, np.int64), "ambiguous": np.zeros(n, bool),
         "distance_nm": np.full(n, np.inf), "shell_nm": shell}
    )
    if n == 0 or m == 0:
        return out
    k = int(min(max_candidates, m))
    reach = float(np.nanmax(r)) + float(np.nanmax(shell))
    d, idx = cKDTree(c).query(p, k=k, distance_upper_bound=reach)
    d = d.reshape(n, k)
    idx = idx.reshape(n, k)
    valid = idx < m
    idx_s = np.where(valid, idx, 0)
    margin = d - r[idx_s]  # distance outside the particle edge
    inside = valid & (margin <= shell[:, None])
    n_in = inside.sum(axis=1)
    if exclude is not None:
        ex = np.asarray(exclude, bool)
        n_in = np.where(ex, 0, n_in)
    rows = np.arange(n)
    # best and second-best candidate by margin outside the edge
    mm = np.where(inside, margin, np.inf)
    order = np.argsort(mm, axis=1)
    best = order[:, 0]
    m1 = mm[rows, best]
    m2 = mm[rows, order[:, 1]] if k > 1 else np.full(n, np.inf)
    tol = sig if resolve_nm is None else np.broadcast_to(float(resolve_nm), (n,))
    with np.errstate(invalid="ignore"):
        clear = (m2 - m1) > tol  # clearly nearer one particle's surface than any other's
    one = (n_in == 1) | ((n_in >= 2) & clear)
    part = np.where(one, idx_s[rows, best], -1)
    dist = np.where(valid[:, 0], d[:, 0], np.inf)
    dist = np.where(one, d[rows, best], dist)
    out["particle"] = part.astype(np.int64)
    out["ambiguous"] = (n_in >= 2) & ~clear
    out["distance_nm"] = dist
    return out


def persistent_clusters(
    locs: pd.DataFrame,
    *,
    min_persistence: float | None = None,
    radius_nm: float | None = None,
    min_photons: float | None = None,
    **kwargs,
) -> np.ndarray:
    """Flag localizations of fiducial tracks (beads, gold): (N,) bool.

    The fiducials are those of the one persistent-emitter detector
    (:func:`~correlate.registration._persistent.find_persistent_emitters`, parameters estimated
    from the data unless given; ``**kwargs`` are its further parameters), so the particle
    analysis excludes the same fiducials that drift correction and registration use. Flagged:
    every localization on a fiducial's track in space and time (a drifting fiducial stays one
    track), including other emitters sharing its place and time.
    """
    from ..registration._persistent import find_persistent_emitters

    n = len(locs)
    if n == 0 or "frame" not in locs.columns:
        return np.zeros(n, bool)
    res = find_persistent_emitters(locs, min_persistence=min_persistence, radius_nm=radius_nm,
                                   min_photons=min_photons, **kwargs)
    return res.members | (res.labels >= 0)
