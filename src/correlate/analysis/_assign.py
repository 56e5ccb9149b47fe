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
    min_frames: int = 50,
    max_dark_frames: int = 1,
    k_sigma: float = 3.0,
    max_step_z: float | None = 1.5,
    events=None,
) -> np.ndarray:
    """Flag localizations of fiducial-like sources: spots that stay bright over many consecutive
    frames (beads, gold), unlike molecules, whose on-events last a few frames.

    Localizations are grouped into on-events (:func:`~correlate.analysis.group_blinks` with
    ``k_sigma`` pair sigmas, across up to ``max_dark_frames`` missed frames). Every localization
    of an event that spans more than ``min_frames`` frames and whose frame-to-frame steps are
    those of one emitter (mean step below ``max_step_z`` pair sigmas; a chain hopping between
    neighbouring molecules of a crowded particle has larger steps) is flagged. Frame-to-frame
    linking follows slow drift, so a drifting fiducial stays one track. Returns (N,) bool.
    """
    from ._molecules import group_blinks

    n = len(locs)
    if n == 0 or "frame" not in locs.columns:
        return np.zeros(n, bool)
    ev = group_blinks(locs, max_dark_frames=max_dark_frames, k_sigma=k_sigma) if events is None else np.asarray(events)
    fr = locs["frame"].to_numpy(np.int64)
    ne = int(ev.max()) + 1
    first = np.full(ne, np.iinfo(np.int64).max)
    last = np.full(ne, np.iinfo(np.int64).min)
    np.minimum.at(first, ev, fr)
    np.maximum.at(last, ev, fr)
    long_ev = (last - first + 1) > int(min_frames)
    if max_step_z is not None and "precision" in locs.columns and long_ev.any():
        # one emitter: steps between consecutive localizations are Rayleigh in units of their pair
        # sigma (mean 1.25); a chain hopping between neighbouring molecules has larger steps
        sel = np.flatnonzero(long_ev[ev])
        o = sel[np.lexsort((fr[sel], ev[sel]))]
        e_o = ev[o]
        xy = locs[["x", "y"]].to_numpy(float)[o]
        p = locs["precision"].to_numpy(float)[o]
        same = e_o[1:] == e_o[:-1]
        z = np.hypot(*(xy[1:] - xy[:-1]).T) / np.sqrt(p[1:] ** 2 + p[:-1] ** 2)
        zs = np.bincount(e_o[1:][same], weights=z[same], minlength=ne)
        zc = np.bincount(e_o[1:][same], minlength=ne)
        mean_z = np.where(zc > 0, zs / np.maximum(zc, 1), np.inf)
        long_ev &= mean_z < float(max_step_z)
    flag = long_ev[ev]
    if flag.any() and (~flag).any():
        # short fragments of the same tracks (broken by a few missed frames): localizations
        # within their own linking distance of a flagged one
        from scipy.spatial import cKDTree

        xy_all = locs[["x", "y"]].to_numpy(float)
        p_all = locs["precision"].to_numpy(float) if "precision" in locs.columns else np.full(n, 5.0)
        d, _ = cKDTree(xy_all[flag]).query(xy_all[~flag], k=1)
        near = d <= k_sigma * np.sqrt(2.0) * np.nan_to_num(p_all[~flag], nan=5.0)
        idx = np.flatnonzero(~flag)[near]
        flag[idx] = True
    return flag
