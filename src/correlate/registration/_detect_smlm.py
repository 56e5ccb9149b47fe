"""Fiducials in SMLM localization tables: bright emitters that recur over most frames.

1. Localizations are binned on a grid of ``radius_nm``; per bin the number of *distinct frames*
   is counted (one ``np.unique`` over bin-frame codes) and summed over each 3 x 3 neighbourhood.
   Bins whose neighbourhood covers at least ``min_frame_fraction`` of the frames are candidates.
2. Around each candidate (cKDTree ball query) the localizations within ``radius_nm`` of the
   median position are kept, iterated twice; the cluster is a fiducial if it spans at least
   ``min_frame_fraction`` of the frames and its median photons reach ``min_photons`` (default:
   twice the median photons of the whole table).
3. Position = precision-weighted mean; covariance = the standard error of that mean from the
   cluster's own scatter (weighted sample covariance / effective N), so drift and other
   frame-to-frame wander are included. No Python loop over localizations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RegistrationError
from ._fiducials import fiducial_table

__all__ = ["detect_smlm_fiducials"]


def detect_smlm_fiducials(
    locs: pd.DataFrame,
    *,
    radius_nm: float = 100.0,
    min_frame_fraction: float = 0.5,
    min_photons: float | None = None,
) -> pd.DataFrame:
    """Find persistent bright emitters (fiducials) in a localization table.

    Parameters
    ----------
    locs
        Localizations (``x, y[, z]`` nm, ``frame``; ``photons`` and ``precision`` used if present).
    radius_nm
        Cluster radius (nm): larger than the fiducial's scatter (precision + residual drift).
    min_frame_fraction
        Fraction of all frames in which a fiducial must be localized.
    min_photons
        Minimum median photons of a fiducial cluster; default twice the median photons of the
        localizations outside the persistent clusters.

    Returns
    -------
    pandas.DataFrame
        One row per fiducial: ``x, y[, z]`` (nm, the table's frame), ``cov_*`` (nm^2, standard
        error of the mean), ``n_localizations``, ``frame_fraction``, ``photons`` (median),
        ``scatter_nm`` (RMS distance of the localizations from the mean).
    """
    from scipy.spatial import cKDTree

    if "frame" not in locs.columns:
        raise RegistrationError("SMLM fiducial detection needs a 'frame' column", field="frame")
    d = 3 if "z" in locs.columns else 2
    axes = "xyz"[:d]
    xy = locs[["x", "y"]].to_numpy(float)
    pos = locs[list(axes)].to_numpy(float)
    frame = locs["frame"].to_numpy(np.int64)
    n_frames = int(frame.max() - frame.min() + 1) if len(frame) else 0
    extra_cols = ["n_localizations", "frame_fraction", "photons", "scatter_nm"]
    empty = fiducial_table(np.zeros((0, d)), np.zeros((0, d, d)), **{c: [] for c in extra_cols})
    if n_frames < 2:
        return empty
    photons = locs["photons"].to_numpy(float) if "photons" in locs.columns else np.ones(len(locs))
    prec = _precision(locs, d)
    # 1. candidate bins by distinct frames
    lo = xy.min(0)
    ij = np.floor((xy - lo) / radius_nm).astype(np.int64)
    nx, ny = ij[:, 0].max() + 3, ij[:, 1].max() + 3
    ij += 1
    code = (ij[:, 1] * nx + ij[:, 0]) * (n_frames + 1) + (frame - frame.min())
    ucode = np.unique(code)
    bins = ucode // (n_frames + 1)
    counts = np.bincount(bins, minlength=nx * ny).reshape(ny, nx).astype(float)
    from scipy.ndimage import maximum_filter, uniform_filter

    hood = uniform_filter(counts, size=3, mode="constant") * 9
    cand = (hood >= min_frame_fraction * n_frames) & (counts == maximum_filter(counts, size=3))
    cy, cx = np.nonzero(cand)
    if len(cy) == 0:
        return empty
    centres = np.column_stack([lo[0] + (cx - 0.5) * radius_nm, lo[1] + (cy - 0.5) * radius_nm])
    tree = cKDTree(xy)
    rows = []
    members: list[np.ndarray] = []
    for c in centres:  # one iteration per candidate fiducial (few), not per localization
        centre = c
        idx = np.asarray(tree.query_ball_point(centre, 1.5 * radius_nm), dtype=np.int64)
        for _ in range(3):
            if len(idx) == 0:
                break
            centre = np.median(xy[idx], axis=0)
            idx = np.asarray(tree.query_ball_point(centre, radius_nm), dtype=np.int64)
        if len(idx) < 3:
            continue
        fr = np.unique(frame[idx])
        frac = len(fr) / n_frames
        ph = float(np.median(photons[idx]))
        if frac < min_frame_fraction:
            continue
        members.append(idx)
        # keep the brightest localization per frame (a stray blink in the same frame is dropped)
        order = np.lexsort((-photons[idx], frame[idx]))
        idx = idx[order]
        first = np.r_[True, frame[idx][1:] != frame[idx][:-1]]
        idx = idx[first]
        w = 1.0 / np.maximum(prec[idx], 1e-3) ** 2
        w = w / w.sum()
        mean = (w[:, None] * pos[idx]).sum(0)
        dev = pos[idx] - mean
        scov = np.einsum("n,ni,nj->ij", w, dev, dev) / max(1 - (w**2).sum(), 1e-12)
        n_eff = 1.0 / (w**2).sum()
        cov = scov / n_eff
        rows.append((mean, cov, len(idx), frac, ph, float(np.sqrt(np.mean(np.sum(dev**2, axis=1))))))
    if not rows:
        return empty
    if min_photons is None:  # twice the median of the other localizations
        inside = np.zeros(len(locs), bool)
        for m in members:
            inside[m] = True
        rest = photons[~inside]
        min_photons = 2.0 * float(np.median(rest)) if "photons" in locs.columns and rest.size >= 20 else 0.0
    bright = [i for i, r in enumerate(rows) if r[4] >= min_photons]
    rows = [rows[i] for i in bright]
    if not rows:
        return empty
    means = np.array([r[0] for r in rows])
    covs = np.array([r[1] for r in rows])
    # merge duplicates (the same emitter reached from neighbouring bins)
    keep = np.ones(len(means), bool)
    t = cKDTree(means[:, :2])
    for i, j in sorted(t.query_pairs(radius_nm)):
        if keep[i] and keep[j]:
            keep[j if rows[j][2] <= rows[i][2] else i] = False
    sel = np.flatnonzero(keep)
    df = fiducial_table(
        means[sel],
        covs[sel],
        n_localizations=[rows[i][2] for i in sel],
        frame_fraction=[rows[i][3] for i in sel],
        photons=[rows[i][4] for i in sel],
        scatter_nm=[rows[i][5] for i in sel],
    )
    df.attrs.update({"detector": "smlm-persistent", "n_frames": n_frames, "radius_nm": radius_nm})
    return df.sort_values(["y", "x"]).reset_index(drop=True)


def _precision(locs: pd.DataFrame, d: int) -> np.ndarray:
    if "precision" in locs.columns:
        return locs["precision"].to_numpy(float)
    cols = [c for c in ("precision_x", "precision_y") if c in locs.columns]
    if cols:
        return np.sqrt(np.mean(locs[cols].to_numpy(float) ** 2, axis=1))
    return np.ones(len(locs))
