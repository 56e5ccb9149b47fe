"""Per-track measurements of the persistent-emitter detector and its persistence threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["persistence_threshold", "track_statistics"]

GAP_DEX = 0.3  # a split between two persistence populations needs a factor-2 empty interval
BEAD_CHANNEL_SPAN = 0.25  # without blinking to compare with, fiducials span >= this fraction of the run


def track_statistics(
    pos: np.ndarray,
    frame: np.ndarray,
    tracks,
    *,
    prec: np.ndarray | None,
    sigma: float,
    photons: np.ndarray | None,
    min_frames: int,
    block_frames: int,
    min_span_frames: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Measure the tracks that hold at least ``min_frames`` distinct frames over blocks that
    span at least ``min_span_frames``.

    Per track one localization per frame is kept (the brightest; without photons the one
    nearest the block median); localizations farther than 5 robust sigmas from the track's
    per-block median, or 4 x dimmer than its median, are dropped (other emitters inside the
    window).

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray, numpy.ndarray)
        One row per measured track (columns ``track, n_localizations, n_frames_on, first_frame,
        last_frame, span_frames, coverage, persistence, frame_fraction, photons, scatter_nm, jitter_nm,
        track_extent_nm, step_z, mean_*, cov_**``), (N,) the track of each kept row (one per
        track and frame, -1 elsewhere) and (N,) the measured track whose windows hold each row
        (-1 elsewhere). ``frame`` starts at 0.
    """
    n, d = pos.shape
    axes = "xyz"[:d]
    n_frames = int(frame.max()) + 1 if n else 0
    lab = np.full(n, -1, np.int64)
    cols = ["track", "n_localizations", "n_frames_on", "first_frame", "last_frame", "span_frames", "coverage",
            "persistence", "frame_fraction", "photons", "scatter_nm", "jitter_nm", "track_extent_nm", "step_z"]
    cols += [f"mean_{a}" for a in axes] + [f"cov_{a}{b}" for i, a in enumerate(axes) for b in axes[i:]]
    empty = pd.DataFrame({c: np.zeros(0) for c in cols})
    if tracks.n_tracks == 0:
        return empty, lab, np.full(n, -1, np.int64)
    # distinct frames per track from the spot counts, to skip the short tracks early
    approx = np.bincount(tracks.track, tracks.count, minlength=tracks.n_tracks)
    first_block = np.full(tracks.n_tracks, np.iinfo(np.int64).max)
    last_block = np.full(tracks.n_tracks, -1)
    np.minimum.at(first_block, tracks.track, tracks.block)
    np.maximum.at(last_block, tracks.track, tracks.block)
    big = (approx >= min_frames) & ((last_block - first_block + 1) * int(block_frames) >= min_span_frames)
    loc_track = tracks.locate(big)
    rows = np.flatnonzero(loc_track >= 0)
    if rows.size == 0:
        return empty, lab, loc_track
    t = loc_track[rows]
    f = frame[rows]
    p = pos[rows]
    blk = f // int(block_frames)
    # per-(track, block) median position, residuals, robust sigma per track
    g = pd.DataFrame({"t": t, "b": blk})
    for i, a in enumerate(axes[:2]):
        g[a] = p[:, i]
    med = g.groupby(["t", "b"])[["x", "y"]].transform("median").to_numpy()
    r = np.hypot(p[:, 0] - med[:, 0], p[:, 1] - med[:, 1])
    r_med = pd.Series(r).groupby(t).transform("median").to_numpy()
    on_track = r <= 5.0 * np.maximum(r_med / 1.1774, 1e-3)
    bright = photons[rows] if photons is not None else -r
    order = np.lexsort((-bright, f, t))
    order = order[on_track[order]]
    t_o, f_o = t[order], f[order]
    first = np.r_[True, (t_o[1:] != t_o[:-1]) | (f_o[1:] != f_o[:-1])]
    keep = order[first]
    if photons is not None:
        # one emitter's brightness: rows 4x dimmer than the track's median are other emitters
        # in the frames where it was off
        ph = photons[rows[keep]]
        med_ph = pd.Series(ph).groupby(t[keep]).transform("median").to_numpy()
        keep = keep[~(ph < 0.25 * med_ph)]
    kt, kf, kp = t[keep], f[keep], p[keep]
    lab[rows[keep]] = kt
    ut, start, cnt = np.unique(kt, return_index=True, return_counts=True)
    k = ut.size
    ti = np.searchsorted(ut, kt)
    f01 = kf[start + np.floor(0.01 * (cnt - 1)).astype(np.int64)]
    f99 = kf[start + np.ceil(0.99 * (cnt - 1)).astype(np.int64)]
    span = (f99 - f01) / 0.98 + 1.0
    persistence = np.minimum(cnt / span, 1.0)
    # fraction of the blocks of the active span holding a kept frame, over what a persistent
    # emitter of this persistence gives (1 - (1 - p)^block): low for a short flash linked to strays
    kb = kf // int(block_frames)
    inside = (kf >= f01[ti]) & (kf <= f99[ti])
    tb = np.unique(ti[inside] * (int(kb.max()) + 1) + kb[inside])
    n_blocks = np.bincount(tb // (int(kb.max()) + 1), minlength=k)
    span_blocks = f99 // int(block_frames) - f01 // int(block_frames) + 1
    expected = 1.0 - (1.0 - persistence) ** int(block_frames)
    coverage = np.minimum(n_blocks / span_blocks / np.maximum(expected, 1e-12), 1.0)
    # precision-weighted mean and standard error of the mean from the own scatter
    if prec is not None:
        pr = np.nan_to_num(prec[rows[keep]], nan=sigma)
    else:
        pr = np.full(keep.size, sigma if np.isfinite(sigma) else 1.0)
    w = 1.0 / np.maximum(pr, 1e-3) ** 2
    sw = np.bincount(ti, w, k)
    sw2 = np.bincount(ti, w * w, k)
    mean = np.column_stack([np.bincount(ti, w * kp[:, c], k) / sw for c in range(d)])
    dev = kp - mean[ti]
    n_eff = sw**2 / sw2
    denom = np.maximum(1.0 - sw2 / sw**2, 1e-12)
    out = {"track": ut, "n_localizations": np.bincount(t, minlength=tracks.n_tracks)[ut], "n_frames_on": cnt,
           "first_frame": kf[start], "last_frame": kf[start + cnt - 1], "span_frames": span,
           "coverage": coverage,
           "persistence": persistence, "frame_fraction": cnt / max(n_frames, 1)}
    out["photons"] = (pd.Series(photons[rows[keep]]).groupby(ti).median().to_numpy()
                      if photons is not None else np.full(k, np.nan))
    out["scatter_nm"] = np.sqrt(np.bincount(ti, np.sum(dev**2, axis=1), k) / cnt)
    rk = r[keep]
    out["jitter_nm"] = np.sqrt(np.bincount(ti, rk**2, k) / cnt)
    bm = pd.DataFrame({"t": ti, "b": kf // int(block_frames), "x": kp[:, 0], "y": kp[:, 1]})
    bm = bm.groupby(["t", "b"])[["x", "y"]].median().groupby(level=0).agg(["min", "max"])
    out["track_extent_nm"] = np.hypot(bm[("x", "max")] - bm[("x", "min")],
                                      bm[("y", "max")] - bm[("y", "min")]).to_numpy()
    out["step_z"] = _step_z(kp[:, :2], ti, pr, k)
    for c, a in enumerate(axes):
        out[f"mean_{a}"] = mean[:, c]
    for i, a in enumerate(axes):
        for j in range(i, d):
            scov = np.bincount(ti, w * dev[:, i] * dev[:, j], k) / sw / denom
            out[f"cov_{a}{axes[j]}"] = scov / n_eff
    return pd.DataFrame(out, columns=cols), lab, loc_track


def _step_z(xy: np.ndarray, ti: np.ndarray, pr: np.ndarray, k: int) -> np.ndarray:
    """Per track, the 80th percentile of the distance between consecutive kept localizations in
    pair sigmas (one emitter: Rayleigh, 1.79; a chain hopping between molecules: larger)."""
    out = np.full(k, np.inf)
    if ti.size < 2:
        return out
    same = ti[1:] == ti[:-1]
    z = np.hypot(*(xy[1:] - xy[:-1]).T) / np.sqrt(pr[1:] ** 2 + pr[:-1] ** 2)
    s = pd.Series(z[same]).groupby(ti[1:][same]).quantile(0.8)
    out[s.index.to_numpy()] = s.to_numpy()
    return out


def _gap_split(score, ps, ph, ref, *, min_above: int = 1, photons_only: bool = False):
    """The lowest empty interval (>= GAP_DEX) of ``score`` with the outlier mode above it (see
    :func:`persistence_threshold`); returns (selection, gap in dex, rule) or None."""
    order = np.argsort(score, kind="stable")
    x = score[order]
    for i in np.flatnonzero(np.diff(x) >= GAP_DEX) if x.size >= 2 else []:
        below, above = order[: i + 1], order[i + 1:]
        if len(above) < min_above:
            continue
        edge = above[:1]  # the lowest track above the interval must differ from those below
        brighter = ph is not None and bool(np.median(ph[edge]) >= 2.0 * np.median(ph[below]))
        if photons_only:
            ok = brighter and bool(np.median(ps[above]) >= 0.8 * np.median(ps[below]))
        else:
            more_persistent = bool(np.median(ps[edge]) >= 2.0 * np.median(ps[below]))
            beyond_blinking = ref is not None and np.median(ps[below]) <= ref < np.median(ps[edge])
            ok = brighter or (beyond_blinking and more_persistent)
        if ok:
            sel = np.zeros(ps.size, bool)
            sel[above] = True
            rule = "gap in photons per localization" if photons_only else (
                "gap in photon flux" if ph is not None else "gap in persistence")
            return sel, float(x[i + 1] - x[i]), rule
    return None


def persistence_threshold(
    p_single: np.ndarray,
    p_multi: np.ndarray,
    photons_single: np.ndarray | None = None,
    span_fraction: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Which long-lived single-emitter tracks are fiducials: the outlier mode in persistence
    (and brightness).

    ``p_single``: persistences of the long-lived single-emitter tracks (fiducials and repeatedly
    blinking single molecules), ``photons_single`` their median photons; ``p_multi``: those of
    long-lived multi-emitter tracks (the sample's clusters of blinking molecules), whose 90th
    percentile is the persistence a blinking population reaches (``ref``).

    The score is log10 of the photon flux over the active span (persistence x median photons,
    photons per frame), or of the persistence without photons. Rules: (1) a split at the lowest
    empty interval of the score of at least 0.3 dex (a factor 2) where the lowest track
    above it is twice as bright as the median track below, or twice as persistent and above the
    blinking clusters while those below are not (median below <= ref < the lowest above); everything above is the outlier mode. (1b) With photons, the same split on the photons per
    localization alone (at least 3 tracks above, persisting at least 0.8 x as much as those
    below): beads much brighter than the dye at a like persistence. (2) Otherwise one population: all of
    it when its median persistence is above ``ref``, or, without blinking clusters to compare
    with, when its tracks span at least a quarter of the run (median of ``span_fraction``,
    active span over frames: a fiducial channel); else none (bursts of blinking look alike;
    ``min_persistence`` decides).

    Returns
    -------
    (numpy.ndarray, dict)
        (K,) bool selection and what decided it: ``rule``, ``min_persistence`` (the lowest
        persistence selected, or the threshold), ``min_flux_photons_per_frame`` for a split on
        the flux, ``blinking_reference_persistence`` (ref).
    """
    ps = np.asarray(p_single, float)
    ph = None if photons_single is None else np.asarray(photons_single, float)
    if ph is not None and not np.isfinite(ph).all():
        ph = None
    pm = np.asarray(p_multi, float)
    ref = float(np.quantile(pm, 0.9)) if pm.size else None
    info: dict = {"blinking_reference_persistence": ref}
    if ps.size == 0:
        info.update(rule="no long-lived single-emitter track", min_persistence=float("inf"))
        return np.zeros(0, bool), info
    score = np.log10(np.maximum(ps * (ph if ph is not None else 1.0), 1e-12))
    found = _gap_split(score, ps, ph, ref)
    if found is None and ph is not None:
        # beads far brighter per localization than the dye, at a persistence like the blinking
        # molecules': the flux gap is then diluted, the photon gap is not
        found = _gap_split(np.log10(np.maximum(ph, 1e-12)), ps, ph, ref, min_above=3, photons_only=True)
    if found is not None:
        sel, gap, rule = found
        info.update(rule=rule, min_persistence=float(ps[sel].min()), gap_dex=gap)
        if ph is not None and rule == "gap in photon flux":
            x = np.sort(score)
            i = int(np.searchsorted(x, score[sel].min())) - 1
            info["min_flux_photons_per_frame"] = float(10 ** (0.5 * (x[i] + x[i + 1])))
        return sel, info
    if ref is None:
        if span_fraction is not None and np.median(span_fraction) >= BEAD_CHANNEL_SPAN:
            info.update(rule="one population spanning the run (a fiducial channel)", min_persistence=float(ps.min()))
            return np.ones(ps.size, bool), info
        info.update(rule="one population of short-lived tracks and nothing to compare it with: none",
                    min_persistence=float("inf"))
        return np.zeros(ps.size, bool), info
    if np.median(ps) > ref:
        info.update(rule="one population above the blinking clusters", min_persistence=float(ps.min()))
        return np.ones(ps.size, bool), info
    info.update(rule="one population at or below the blinking clusters: none", min_persistence=float("inf"))
    return np.zeros(ps.size, bool), info
