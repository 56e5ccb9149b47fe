"""Molecule estimates from blinking localizations: blink grouping, counting and qPAINT.

Blink grouping (:func:`group_blinks`)
    Two localizations belong to the same on-event when they are within ``radius_nm`` of each other
    and their frames differ by 1 to ``max_dark_frames + 1``; events are the connected components of
    that graph (KD-tree pairs + sparse connected components: vectorised, no loop per
    localization). Typical ``radius_nm`` is 2-3x the localization precision; ``max_dark_frames``
    bridges missed detections inside one on-event (0-2 frames).

Counting (:func:`count_molecules`)
    ``n_molecules = n_events / (events_per_molecule * detection_efficiency)``. The mean number of
    events per detected molecule is a photophysical calibration: measure it on a sparse
    single-molecule sample of the same dye (:func:`calibrate_isolated`) and pass it - the
    accurate route - or let ``"auto"`` estimate it from the data
    (:func:`calibrate_blinking`): events of one molecule repeat at the same place, so the
    Rayleigh-shaped excess of close event pairs (distances in units of their localization errors)
    over the smooth distribution of pairs from different molecules counts the same-molecule pairs
    ``S``; with a geometric number of events per molecule ``S / E = mu - 1``. The estimate is
    biased where the distribution is not geometric (a run too short for the events of a molecule
    to complete, bleaching faster than geometric): on the simulator it comes out ~10-15 % low.
    ``detection_efficiency`` (fraction of molecules that blink at all) cannot be seen in
    localization data; it defaults to 1 (the estimate then counts detected molecules).
    Assumptions: events of different molecules are independent, the blinking statistics do not
    depend on the particle, and grouping neither merges nor splits events much (check the
    ``events`` against the frame gaps of your data).

Emitter sites (:func:`count_sites`, :func:`emitter_sites`) live in
:mod:`correlate.analysis._sites` and are importable from here too.

qPAINT (:func:`qpaint`)
    For DNA-PAINT-like reversible binding, the mean dark time of the ensemble of ``n`` binding
    sites is ``tau_d1 / n`` (Jungmann 2016). Dark times are the gaps between consecutive bright
    frames of a particle's localizations (longer than ``max_dark_frames``); ``tau_d1`` (single-site
    mean dark time, frames) is a calibration, given or estimated like ``events_per_molecule`` from
    isolated clusters. Valid when binding is stationary over the run (no photobleaching) and the
    run is long against ``tau_d1``; it is not for dSTORM-like dyes that bleach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._sites import count_sites, emitter_sites

__all__ = [
    "calibrate_blinking",
    "calibrate_isolated",
    "count_molecules",
    "count_sites",
    "emitter_sites",
    "group_blinks",
    "qpaint",
]


def _xy(df: pd.DataFrame) -> np.ndarray:
    return df[["x", "y"]].to_numpy(dtype=float)


def group_blinks(
    locs: pd.DataFrame,
    *,
    radius_nm: float | None = None,
    max_dark_frames: int = 1,
    groups=None,
    k_sigma: float = 2.0,
) -> np.ndarray:
    """On-event id (0..E-1) of every localization.

    Parameters
    ----------
    locs
        Localizations with x, y (nm) and frame.
    radius_nm
        Fixed linking distance (nm). Default: per pair, ``k_sigma * sqrt(p_i^2 + p_j^2)`` from the
        two localizations' precision (the ``precision`` column, else ``precision_x``,
        ``precision_y``, else one value estimated by NeNA).
    max_dark_frames
        Frames a molecule may be missed inside one on-event.
    groups
        Optional (N,) ids (e.g. particle); localizations in different groups are never linked.
    k_sigma
        Linking distance in pair sigmas. 2 (default) splits ~13 % of the frame-to-frame links of
        one event but rarely merges neighbouring molecules on a crowded particle; 3 keeps 99 % of
        links. Counting divides by a calibration made with the same grouping, so splitting
        cancels out while merging does not.

    Returns
    -------
    numpy.ndarray
        (N,) int64 event ids, numbered in order of first appearance.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(locs)
    if n == 0:
        return np.zeros(0, np.int64)
    if "frame" not in locs.columns:
        raise ValueError("blink grouping needs a 'frame' column")
    xy = _xy(locs)
    fr = locs["frame"].to_numpy(np.int64)
    prec = None
    if radius_nm is None:
        from ..smlm._precision import localization_precision

        pr = localization_precision(locs, what="localizations to group into blinks", flag="radius_nm")
        if not np.isfinite(pr.median_nm):
            raise CorrelateError("no finite localization precision to group blinks with: pass radius_nm",
                                 field="precision")
        prec = np.where(np.isfinite(pr.values), pr.values, pr.median_nm)
        pc = np.minimum(prec, np.percentile(prec, 99.5))  # a few wild precisions do not set the reach
        reach = float(k_sigma * np.sqrt(2.0) * pc.max())
    else:
        reach = float(radius_nm)
    # KD-tree in (x, y, frame * scale): only pairs close in space *and* time are enumerated, so a
    # fiducial bright in every frame costs O(frames), not O(frames^2)
    span = int(max_dark_frames) + 1
    scale = reach / span
    tree = cKDTree(np.column_stack([xy, fr.astype(float) * scale]))
    pairs = tree.query_pairs(reach * np.sqrt(2.0) * (1 + 1e-9), output_type="ndarray")
    if len(pairs):
        df = np.abs(fr[pairs[:, 0]] - fr[pairs[:, 1]])
        ok = (df >= 1) & (df <= span)
        ok &= ((xy[pairs[:, 0]] - xy[pairs[:, 1]]) ** 2).sum(axis=1) <= reach * reach
        if prec is not None:
            i, j = pairs[:, 0], pairs[:, 1]
            d2 = ((xy[i] - xy[j]) ** 2).sum(axis=1)
            ok &= d2 <= k_sigma**2 * (prec[i] ** 2 + prec[j] ** 2)
        if groups is not None:
            g = np.asarray(groups)
            ok &= g[pairs[:, 0]] == g[pairs[:, 1]]
        pairs = pairs[ok]
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # renumber in order of first appearance (stable ids)
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)
    lut = np.empty_like(order)
    lut[order] = np.arange(order.size)
    return lut[comp].astype(np.int64)


def _event_table(locs: pd.DataFrame, events: np.ndarray) -> pd.DataFrame:
    """Per event: x, y (mean), first/last frame, n_localizations."""
    e = np.asarray(events)
    ne = int(e.max()) + 1 if e.size else 0
    cnt = np.bincount(e, minlength=ne).astype(float)
    xy = _xy(locs)
    fr = locs["frame"].to_numpy(np.int64)
    # precision-weighted mean position (weights 1 / p^2), plain mean without a precision
    w = 1.0 / np.clip(locs["precision"].to_numpy(float), 1e-3, None) ** 2 if "precision" in locs.columns else np.ones(len(e))
    sw = np.bincount(e, weights=w, minlength=ne)
    first = np.full(ne, np.iinfo(np.int64).max)
    last = np.full(ne, -1, np.int64)
    np.minimum.at(first, e, fr)
    np.maximum.at(last, e, fr)
    return pd.DataFrame(
        {
            "x": np.bincount(e, weights=w * xy[:, 0], minlength=ne) / np.maximum(sw, 1e-300),
            "y": np.bincount(e, weights=w * xy[:, 1], minlength=ne) / np.maximum(sw, 1e-300),
            "first_frame": first,
            "last_frame": last,
            "n_localizations": cnt.astype(np.int64),
        }
    )


def _event_precision(locs: pd.DataFrame, events: np.ndarray) -> np.ndarray:
    """Precision (nm) of each event's mean position: 1 / sqrt(sum 1 / p_i^2)."""
    e = np.asarray(events)
    ne = int(e.max()) + 1 if e.size else 0
    if "precision" not in locs.columns:
        return np.full(ne, np.nan)
    p = np.clip(locs["precision"].to_numpy(float), 1e-3, None)
    w = np.bincount(e, weights=1.0 / p**2, minlength=ne)
    return 1.0 / np.sqrt(np.maximum(w, 1e-300))


def calibrate_blinking(
    locs: pd.DataFrame,
    events: np.ndarray | None = None,
    *,
    groups=None,
    exclude=None,
    z_max: float = 6.0,
    bin_width: float = 0.25,
    max_dark_frames: int = 1,
) -> dict:
    """Estimate the mean number of events per detected molecule from the data themselves.

    Two events of the same molecule differ only by their localization errors: their distance
    divided by ``sqrt(s_i^2 + s_j^2)`` (the events' position errors) follows a Rayleigh
    distribution of scale 1. Pairs of events of different molecules (same group, e.g. particle)
    have a smooth distance distribution that starts at zero. The histogram of normalised pair
    distances ``z`` over ``[0, z_max]`` is fitted (weighted least squares) with
    ``S * Rayleigh(z) + a z + b z^2``; ``S`` is the number of same-molecule pairs. For a geometric
    number of events per molecule (the usual model of photoswitching cycles), ``S / E = mu - 1``
    with ``E`` the number of events, so ``mu = 1 + S / E`` (pooled over all groups).

    Parameters
    ----------
    locs, events
        Localizations (with ``precision``) and their event ids (:func:`group_blinks`; computed
        if None).
    groups
        (N,) group id per localization (particle; negative = not used). Default: one group.
    exclude
        (N,) bool of localizations to leave out (fiducial tracks).
    z_max, bin_width
        Range and bin width of the normalised-distance histogram.

    Returns
    -------
    dict
        ``events_per_molecule``, ``same_molecule_pairs`` (S), ``n_events`` (E),
        ``dark_time_frames`` (median gap between consecutive events closer than 2 pair sigmas,
        mostly same-molecule; for qPAINT). NaN where there are too few events.
    """
    from scipy.spatial import cKDTree

    out = {"events_per_molecule": float("nan"), "same_molecule_pairs": float("nan"), "n_events": 0,
           "dark_time_frames": float("nan")}
    n = len(locs)
    if n == 0 or "precision" not in locs.columns:
        return out
    if events is None:
        events = group_blinks(locs, max_dark_frames=max_dark_frames, groups=groups)
    events = np.asarray(events)
    g = np.zeros(n, np.int64) if groups is None else np.asarray(groups, np.int64)
    use = g >= 0
    if exclude is not None:
        use &= ~np.asarray(exclude, bool)
    if not use.any():
        return out
    ev = _event_table(locs, events)
    sig = _event_precision(locs, events)
    eg = np.full(len(ev), -1, np.int64)
    eg[events[use]] = g[use]
    sel = np.flatnonzero((eg >= 0) & np.isfinite(sig))
    E = sel.size
    out["n_events"] = int(E)
    if E < 10:
        return out
    xy = ev[["x", "y"]].to_numpy(float)[sel]
    s = sig[sel]
    gg = eg[sel]
    reach = float(z_max * np.sqrt(2.0) * np.percentile(s, 99))
    pairs = cKDTree(xy).query_pairs(reach, output_type="ndarray")
    if len(pairs) == 0:
        out.update(events_per_molecule=1.0, same_molecule_pairs=0.0)
        return out
    i, j = pairs[:, 0], pairs[:, 1]
    same_g = gg[i] == gg[j]
    i, j = i[same_g], j[same_g]
    z = np.hypot(*(xy[i] - xy[j]).T) / np.sqrt(s[i] ** 2 + s[j] ** 2)
    edges = np.arange(0.0, z_max + 1e-9, bin_width)
    h, _ = np.histogram(z, bins=edges)
    zc = 0.5 * (edges[1:] + edges[:-1])
    ray = np.exp(-0.5 * edges[:-1] ** 2) - np.exp(-0.5 * edges[1:] ** 2)  # Rayleigh mass per bin
    A = np.column_stack([ray, zc * bin_width, zc**2 * bin_width])
    coef = np.zeros(3)
    w = 1.0 / np.sqrt(np.maximum(h, 1.0))
    for _ in range(3):  # reweight with the model (Poisson variance)
        coef, *_ = np.linalg.lstsq(A * w[:, None], h * w, rcond=None)
        w = 1.0 / np.sqrt(np.maximum(A @ coef, 1.0))
    S = max(0.0, float(coef[0]))
    out.update(events_per_molecule=1.0 + S / E, same_molecule_pairs=S)
    close = z <= 2.0
    if close.any():
        f0 = ev["first_frame"].to_numpy()[sel]
        f1 = ev["last_frame"].to_numpy()[sel]
        a, b = i[close], j[close]
        gap = np.where(f0[a] < f0[b], f0[b] - f1[a] - 1, f0[a] - f1[b] - 1)
        if (gap >= 0).any():
            out["dark_time_frames"] = float(np.median(gap[gap >= 0]))
    return out


def calibrate_isolated(
    locs: pd.DataFrame,
    events: np.ndarray | None = None,
    *,
    cluster_radius_nm: float | None = None,
    isolation_nm: float | None = None,
    exclude=None,
    max_dark_frames: int = 1,
    min_clusters: int = 10,
) -> dict:
    """Blinking statistics from a *sparse* calibration acquisition (same dye and imaging
    conditions, molecules far apart): events are clustered over the whole run within
    ``cluster_radius_nm`` (default 3 x sqrt(2) x the median event position error); each cluster
    with no event of another cluster within ``isolation_nm`` (default 4 x the cluster radius) is
    one molecule.

    Returns
    -------
    dict
        ``events_per_molecule`` (mean events per isolated cluster), ``dark_time_frames`` (mean gap
        between consecutive events of a molecule; qPAINT's single-site dark time),
        ``n_clusters``. NaN where fewer than ``min_clusters`` isolated clusters exist.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    out = {"events_per_molecule": float("nan"), "dark_time_frames": float("nan"), "n_clusters": 0}
    n = len(locs)
    if n == 0:
        return out
    if events is None:
        events = group_blinks(locs, max_dark_frames=max_dark_frames)
    events = np.asarray(events)
    ev = _event_table(locs, events)
    sig = _event_precision(locs, events)
    keep = np.ones(len(ev), bool)
    if exclude is not None:
        keep[np.unique(events[np.asarray(exclude, bool)])] = False
    idx = np.flatnonzero(keep)
    if idx.size < 2:
        return out
    xy = ev[["x", "y"]].to_numpy(float)[idx]
    s_med = float(np.nanmedian(sig[idx])) if np.isfinite(sig[idx]).any() else 10.0
    r = float(cluster_radius_nm) if cluster_radius_nm else 3.0 * np.sqrt(2.0) * s_med
    iso = float(isolation_nm) if isolation_nm else 4.0 * r
    tree = cKDTree(xy)
    pairs = tree.query_pairs(r, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(xy), len(xy)))
    nc, comp = connected_components(g, directed=False)
    pairs2 = tree.query_pairs(iso, output_type="ndarray")
    crowded = np.zeros(nc, bool)
    if len(pairs2):
        diff = comp[pairs2[:, 0]] != comp[pairs2[:, 1]]
        crowded[comp[pairs2[diff, 0]]] = True
        crowded[comp[pairs2[diff, 1]]] = True
    size = np.bincount(comp, minlength=nc)
    iso_c = ~crowded
    out["n_clusters"] = int(iso_c.sum())
    if iso_c.sum() < min_clusters:
        return out
    out["events_per_molecule"] = float(size[iso_c].mean())
    sel = iso_c[comp]
    c = comp[sel]
    f0 = ev["first_frame"].to_numpy()[idx][sel]
    f1 = ev["last_frame"].to_numpy()[idx][sel]
    o = np.lexsort((f0, c))
    c, f0, f1 = c[o], f0[o], f1[o]
    same = c[1:] == c[:-1]
    gaps = (f0[1:] - f1[:-1] - 1)[same]
    if gaps.size:
        out["dark_time_frames"] = float(gaps.mean())
    return out


def count_molecules(
    n_events,
    *,
    events_per_molecule: float,
    detection_efficiency: float = 1.0,
) -> np.ndarray:
    """Molecules from event counts: ``n_events / (events_per_molecule * detection_efficiency)``."""
    if not (events_per_molecule > 0):
        return np.full(np.shape(n_events), np.nan)
    return np.asarray(n_events, float) / (float(events_per_molecule) * float(detection_efficiency))


def qpaint(
    frames,
    groups,
    *,
    n_groups: int | None = None,
    max_dark_frames: int = 1,
    tau_d1_frames: float | None = None,
) -> pd.DataFrame:
    """qPAINT per group (particle) from the frames of its localizations.

    Parameters
    ----------
    frames, groups
        (N,) frame numbers and group ids (0..G-1; negative ids are ignored).
    max_dark_frames
        Gaps up to this many frames count as the same bright period.
    tau_d1_frames
        Single-site mean dark time (frames) for the absolute count; None leaves ``n_qpaint`` NaN.

    Returns
    -------
    pandas.DataFrame
        Per group: ``mean_dark_frames`` (mean of the dark gaps), ``n_dark`` (how many gaps),
        ``qpaint_index`` (1 / mean dark time) and ``n_qpaint`` (``tau_d1 / mean dark time``).
    """
    fr = np.asarray(frames, np.int64)
    g = np.asarray(groups, np.int64)
    ok = g >= 0
    fr, g = fr[ok], g[ok]
    G = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    # unique bright frames per group, sorted
    key = np.unique(g * (fr.max(initial=0) + 2) + fr) if g.size else np.zeros(0, np.int64)
    base = fr.max(initial=0) + 2
    gg = key // base
    ff = key % base
    same = gg[1:] == gg[:-1]
    gap = ff[1:] - ff[:-1] - 1
    dark = same & (gap > int(max_dark_frames))
    s = np.bincount(gg[1:][dark], weights=gap[dark], minlength=G)[:G] if G else np.zeros(0)
    c = np.bincount(gg[1:][dark], minlength=G)[:G] if G else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        idx = 1.0 / mean
        n = (float(tau_d1_frames) / mean) if tau_d1_frames else np.full(G, np.nan)
    return pd.DataFrame({"mean_dark_frames": mean, "n_dark": c.astype(np.int64), "qpaint_index": idx, "n_qpaint": n})
