"""Blink merging: join localizations of one on-event seen in consecutive frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["link_events", "merge_blinks"]


def _precision(df: pd.DataFrame) -> np.ndarray | None:
    if "precision" in df.columns:
        return df["precision"].to_numpy(float)
    if "precision_x" in df.columns and "precision_y" in df.columns:
        return np.sqrt(0.5 * (df["precision_x"].to_numpy(float) ** 2 + df["precision_y"].to_numpy(float) ** 2))
    return None


def link_events(
    xy: np.ndarray,
    frame: np.ndarray,
    radius: float,
    max_dark_frames: int = 1,
    *,
    sigma: np.ndarray | None = None,
    n_sigma: float = 3.5,
    rounds: int = 4,
) -> np.ndarray:
    """Group localizations into on-events (0-based event label per localization).

    Each localization is linked to at most one successor and one predecessor: the candidate in a
    later frame (gap 1 .. ``max_dark_frames + 1``) within ``radius`` with the smallest frame gap,
    then the smallest distance; conflicts are resolved by that order (a greedy one-to-one
    matching, in a few vectorised rounds). Chains of links are one event. Two molecules on in the
    same frame are never merged with each other.

    Parameters
    ----------
    xy
        (N, D) positions, nm.
    frame
        (N,) integer frames.
    radius
        Largest distance (nm) between successive localizations of one event.
    max_dark_frames
        Frames an event may be missed (dark) and still continue (0: strictly consecutive frames).
    sigma
        (N,) localization precision (nm). When given, a link also needs
        ``d <= n_sigma * sqrt(sigma_i^2 + sigma_j^2)`` (the distance two localizations of one
        emitter scatter by), so ``radius`` is only the upper bound of the search.

    Returns
    -------
    numpy.ndarray
        (N,) int64 labels 0 .. n_events-1, numbered by first appearance.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, float)
    frame = np.asarray(frame, np.int64)
    n = len(frame)
    if n == 0:
        return np.zeros(0, np.int64)
    if not radius > 0:
        raise CorrelateError(f"merge radius must be > 0 nm, got {radius!r}", field="radius")
    if max_dark_frames < 0:
        raise CorrelateError(f"max_dark_frames must be >= 0, got {max_dark_frames}", field="max_dark_frames")
    gmax = int(max_dark_frames) + 1
    # Embed frames as an extra axis scaled so that a sphere of radius r*sqrt(2) holds every pair
    # with |dxy| <= r and |dframe| <= gmax; exact conditions are applied afterwards.
    scale = radius / gmax
    pts = np.column_stack([xy, (frame - frame.min()).astype(float) * scale])
    tree = cKDTree(pts)
    pairs = tree.query_pairs(radius * np.sqrt(2.0) * (1 + 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n, dtype=np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    swap = frame[i] > frame[j]
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    gap = frame[j] - frame[i]
    d2 = ((xy[i] - xy[j]) ** 2).sum(1)
    ok = (gap >= 1) & (gap <= gmax) & (d2 <= radius * radius)
    if sigma is not None:
        sg = np.asarray(sigma, float)
        ok &= d2 <= n_sigma**2 * (sg[i] ** 2 + sg[j] ** 2)
    i, j, gap, d2 = i[ok], j[ok], gap[ok], d2[ok]
    order = np.lexsort((d2, gap))
    i, j = i[order], j[order]
    has_next = np.zeros(n, bool)
    has_prev = np.zeros(n, bool)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for _ in range(rounds):
        free = ~has_next[i] & ~has_prev[j]
        if not free.any():
            break
        ci, cj = i[free], j[free]
        # best remaining candidate of each source, then of each target (order = priority)
        _, first_i = np.unique(ci, return_index=True)
        mask = np.zeros(len(ci), bool)
        mask[first_i] = True
        ci2, cj2 = ci[mask], cj[mask]
        _, first_j = np.unique(cj2, return_index=True)
        ci3, cj3 = ci2[first_j], cj2[first_j]
        has_next[ci3] = True
        has_prev[cj3] = True
        src.append(ci3)
        dst.append(cj3)
        i, j = i[free], j[free]
    s = np.concatenate(src)
    t = np.concatenate(dst)
    graph = coo_matrix((np.ones(len(s), np.int8), (s, t)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber by first appearance in (frame, row) order
    first = np.full(labels.max() + 1, n, np.int64)
    order = np.lexsort((np.arange(n), frame))
    np.minimum.at(first, labels[order], np.arange(n))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels].astype(np.int64)


def merge_blinks(
    df: pd.DataFrame,
    radius: float | None = None,
    max_dark_frames: int = 1,
    *,
    n_sigma: float = 3.5,
    by_channel: bool = True,
) -> pd.DataFrame:
    """Merge localizations of one on-event (a blink seen over consecutive frames) into one.

    Parameters
    ----------
    df
        Localizations (x, y[, z] nm, frame; ``precision`` nm used for weights when present).
    radius
        Largest step (nm) between successive localizations of one event. Default (None) with a
        ``precision`` column: an adaptive gate per pair, ``n_sigma * sqrt(p_i^2 + p_j^2)`` (3.5
        sigma: 0.2 % of true links are missed), searched up to ``n_sigma * sqrt(2) * p99``
        (10-200 nm); without precision, 30 nm.
    max_dark_frames
        Frames an event may be missed and still continue.
    by_channel
        Link within each ``channel`` separately (when the column exists).

    Returns
    -------
    pandas.DataFrame
        One row per event: positions are precision-weighted means (weights 1/precision^2; plain
        means without precision), ``precision`` the combined precision
        ``(sum 1/precision_i^2)^-1/2``, ``photons`` summed, ``background`` averaged, ``frame`` the
        first frame, plus ``first_frame``, ``last_frame``, ``n_merged``; other columns keep the
        value of the event's first localization.
    """
    if "frame" not in df.columns:
        raise CorrelateError("blink merging needs a 'frame' column", field="frame")
    n = len(df)
    prec = _precision(df)
    adaptive = radius is None and prec is not None and n > 0
    if radius is None:
        if adaptive:
            p99 = float(np.nanquantile(prec, 0.99))
            radius = float(np.clip(n_sigma * np.sqrt(2.0) * p99, 10.0, 200.0))
        else:
            radius = 30.0
    sig = np.nan_to_num(prec, nan=0.0) if adaptive else None
    cols = ["x", "y"] + (["z"] if "z" in df.columns else [])
    xy = df[cols].to_numpy(float)
    frame = df["frame"].to_numpy(np.int64)
    if by_channel and "channel" in df.columns and df["channel"].nunique() > 1:
        labels = np.empty(n, np.int64)
        offset = 0
        for idx in df.groupby("channel", sort=False).indices.values():
            lab = link_events(xy[idx], frame[idx], radius, max_dark_frames, sigma=None if sig is None else sig[idx], n_sigma=n_sigma)
            labels[idx] = lab + offset
            offset += int(lab.max()) + 1 if len(lab) else 0
    else:
        labels = link_events(xy, frame, radius, max_dark_frames, sigma=sig, n_sigma=n_sigma)
    n_ev = int(labels.max()) + 1 if n else 0
    if prec is not None:
        p = np.where(np.isfinite(prec) & (prec > 0), prec, np.nan)
        w = 1.0 / p**2
        w = np.where(np.isfinite(w), w, 0.0)
        wsum = np.bincount(labels, w, n_ev)
        use_w = wsum > 0
    else:
        w = np.ones(n)
        wsum = np.bincount(labels, w, n_ev)
        use_w = np.ones(n_ev, bool)
    cnt = np.bincount(labels, minlength=n_ev).astype(float)
    # index of the first localization (earliest frame, then row) of each event
    order = np.lexsort((np.arange(n), frame))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    min_rank = np.full(n_ev, n, np.int64)
    np.minimum.at(min_rank, labels, rank)
    first_idx = order[min_rank]
    out = df.iloc[first_idx].reset_index(drop=True).copy()
    for c in cols:
        v = df[c].to_numpy(float)
        mw = np.bincount(labels, w * v, n_ev) / np.where(use_w, wsum, 1.0)
        m = np.bincount(labels, v, n_ev) / cnt
        out[c] = np.where(use_w, mw, m)
    if prec is not None:
        out["precision"] = np.where(use_w, 1.0 / np.sqrt(np.where(use_w, wsum, 1.0)), np.nan)
        for c in ("precision_x", "precision_y", "precision_z"):
            if c in df.columns:
                pc = df[c].to_numpy(float)
                wc = np.where(pc > 0, 1.0 / pc**2, 0.0)
                s = np.bincount(labels, wc, n_ev)
                out[c] = np.where(s > 0, 1.0 / np.sqrt(np.where(s > 0, s, 1.0)), np.nan)
    if "photons" in df.columns:
        out["photons"] = np.bincount(labels, df["photons"].to_numpy(float), n_ev)
    if "background" in df.columns:
        out["background"] = np.bincount(labels, df["background"].to_numpy(float), n_ev) / cnt
    fmin = np.full(n_ev, np.iinfo(np.int64).max)
    fmax = np.full(n_ev, np.iinfo(np.int64).min)
    np.minimum.at(fmin, labels, frame)
    np.maximum.at(fmax, labels, frame)
    out["frame"] = fmin
    out["first_frame"] = fmin
    out["last_frame"] = fmax
    out["n_merged"] = cnt.astype(np.int64)
    out.attrs = dict(df.attrs)
    notes = list(out.attrs.get("notes", []))
    gate = f"{n_sigma:g} sigma (<= {radius:.3g} nm)" if adaptive else f"{radius:.3g} nm"
    notes.append(f"blink-merged: gate {gate}, max {max_dark_frames} dark frames")
    out.attrs["notes"] = notes
    out.attrs["merge_radius_nm"] = float(radius)
    out.attrs["merge_gate"] = gate
    return out
