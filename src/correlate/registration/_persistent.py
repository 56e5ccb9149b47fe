"""The persistent-emitter (fiducial) detector of SMLM localization tables.

One detector for registration, drift correction, NeNA/FRC, colour alignment and the particle
analysis. Fiducials are persistence outliers among the table's clusters:

1. Tracks. Localizations are grouped into space-time tracks on a grid (cells of ``radius_nm``,
   blocks of ``block_frames`` frames, see :mod:`._persistent_tracks`): a drifting bead is one
   track, a blinking molecule or a cluster of molecules one track per burst of activity.
2. Per track, one localization per frame (the brightest; ones off the track's per-block median
   or 4 x dimmer than its median photons dropped) gives: the frames it is on (``n_on``), its
   active span (1 %..99 % quantiles of its frames), the *persistence* ``n_on / span``
   (fraction of frames on within its own span, so a bead that bleaches half-way keeps its
   persistence), median photons, the scatter about the per-block track (jitter) and about the
   mean (includes drift), and the 80th-percentile frame-to-frame step in units of the
   localization precision (``step_z``; one emitter: ~1.79; a chain hopping between molecules:
   larger).
3. Fiducials are the long-lived single-emitter tracks (``n_on >= min_frames``,
   ``span >= min_span_frames``, ``step_z <= max_step_z``, on-frames spread over the span:
   ``coverage >= 0.5``, the blocks of the span holding a frame over the number a persistent
   emitter of that persistence fills) that form the outlier mode in photon flux (persistence
   x photons) or persistence against the blinking population: ``min_persistence`` if given,
   else estimated from the data (:func:`._persistent_stats.persistence_threshold`).

Every estimated parameter is returned in ``estimated`` with its ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import RegistrationError
from ._persistent_stats import BEAD_CHANNEL_SPAN, GAP_DEX, persistence_threshold, track_statistics

__all__ = ["PersistentEmitters", "find_persistent_emitters"]

MIN_COVERAGE = 0.5  # blocks of the span with a frame on, over the number a persistent emitter fills
MAX_STEP_Z = 3.0  # 80th-percentile step / pair sigma; one emitter: 1.79 (Rayleigh), slack for precision misestimates


@dataclass
class PersistentEmitters:
    """Persistent emitters (fiducials) of a localization table.

    Attributes
    ----------
    centers
        (K, D) precision-weighted mean position per fiducial, nm (x, y[, z]).
    cov
        (K, D, D) standard error of that mean from the fiducial's own scatter, nm^2.
    labels
        (N,) fiducial index per row, -1 elsewhere; at most one row per fiducial and frame.
    members
        (N,) bool: rows inside a fiducial's track windows (its localizations and anything
        sharing its place and time), for masking.
    stats
        One row per fiducial: ``n_localizations, n_frames_on, first_frame, last_frame,
        persistence, frame_fraction, photons, scatter_nm, jitter_nm, track_extent_nm, step_z``.
    n_frames
        Frames of the acquisition (max - min + 1).
    radius_nm
        Grid cell (nm); a fiducial's localizations lie within about this of its track.
    estimated, source, diagnostics
        Parameters used, where each came from ("estimated" | "user"), and what the detector saw (track population, best candidates).
    """

    centers: np.ndarray
    cov: np.ndarray
    labels: np.ndarray
    members: np.ndarray
    stats: pd.DataFrame
    n_frames: int
    radius_nm: float
    estimated: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.centers)


def _precision(locs: pd.DataFrame) -> np.ndarray | None:
    if "precision" in locs.columns:
        return locs["precision"].to_numpy(float)
    cols = [c for c in ("precision_x", "precision_y") if c in locs.columns]
    if cols:
        return np.sqrt(np.mean(locs[cols].to_numpy(float) ** 2, axis=1))
    return None


def _sigma_from_steps(xy: np.ndarray, frame: np.ndarray) -> float:
    """Localization sigma (nm) from distances between localizations in consecutive frames in the
    same 100 nm cell: the lower quartile of a Rayleigh(sqrt(2) sigma) is 1.073 sigma."""
    ij = np.floor((xy - xy.min(0)) / 100.0).astype(np.int64)
    cell = ij[:, 0] * (int(ij[:, 1].max()) + 1) + ij[:, 1]
    o = np.lexsort((frame, cell))
    same = (cell[o][1:] == cell[o][:-1]) & (np.diff(frame[o]) == 1)
    d = np.hypot(*(xy[o][1:] - xy[o][:-1]).T)[same]
    if d.size < 20:
        return float("nan")
    return float(np.quantile(d, 0.25) / 1.073)


def find_persistent_emitters(
    locs: pd.DataFrame,
    *,
    min_persistence: float | None = None,
    radius_nm: float | None = None,
    min_photons: float | None = None,
    min_frames: int | None = None,
    min_span_frames: int | None = None,
    block_frames: int | None = None,
    max_step_z: float | None = None,
) -> PersistentEmitters:
    """Find persistent emitters (fiducials) in a localization table.

    Parameters
    ----------
    locs
        Localizations: ``x, y[, z]`` (nm), ``frame``; ``photons`` and ``precision`` (or
        ``precision_x/_y``, nm) are used when present.
    min_persistence
        Fraction of frames within its own active span a fiducial is on in; None: estimated.
    radius_nm
        Grid cell (nm): larger than a fiducial's localization scatter over one block of frames;
        None: 4 x the median precision (or the precision measured from consecutive frames),
        at least 20 nm.
    min_photons
        Minimum median photons of a fiducial; None: no photon criterion.
    min_frames
        Minimum frames a fiducial is on in; None: 5 x the 90th percentile of the on-event
        lengths seen on the grid, within [10, max(10, 2 % of the frames)].
    min_span_frames
        Minimum active span (frames); None: max(5 x min_frames, 10 % of the frames).
    block_frames
        Frames per block of the track linking; None: max(20, frames / 50).
    max_step_z
        Largest 80th-percentile frame-to-frame step (in pair sigmas) of one emitter; None: 3.

    Returns
    -------
    PersistentEmitters
        Possibly empty; ``estimated``/``source``/``diagnostics`` say what was used and seen.
    """
    from ._persistent_tracks import spot_tracks

    if "frame" not in locs.columns:
        raise RegistrationError("persistent-emitter detection needs a 'frame' column", field="frame",
                                stage="detection")
    n = len(locs)
    d = 3 if "z" in locs.columns else 2
    axes = list("xyz"[:d])
    pos = locs[axes].to_numpy(float) if n else np.zeros((0, d))
    frame = locs["frame"].to_numpy(np.int64) if n else np.zeros(0, np.int64)
    n_frames = int(frame.max() - frame.min() + 1) if n else 0
    source = {k: ("user" if v is not None else "estimated") for k, v in (
        ("min_persistence", min_persistence), ("radius_nm", radius_nm), ("min_photons", min_photons),
        ("min_frames", min_frames), ("min_span_frames", min_span_frames), ("block_frames", block_frames),
        ("max_step_z", max_step_z))}
    est: dict = {"n_localizations": n, "n_frames": n_frames}

    def result() -> PersistentEmitters:
        return PersistentEmitters(
            np.zeros((0, d)), np.zeros((0, d, d)), np.full(n, -1, np.int64), np.zeros(n, bool), pd.DataFrame(),
            n_frames, float(est.get("radius_nm", np.nan)), est, source, diag)

    diag: dict = {}
    if n < 3 or n_frames < 2:
        return result()
    f0 = frame - frame.min()
    prec = _precision(locs)
    if prec is not None and np.isfinite(prec).any():
        sigma = float(np.nanmedian(prec))
        est["sigma_from"] = "median of the precision column"
    else:
        sigma = _sigma_from_steps(pos[:, :2], f0)
        est["sigma_from"] = "distances between consecutive frames"
    source["sigma_nm"] = "estimated"
    est["sigma_nm"] = sigma
    if radius_nm is None:
        radius_nm = max(4.0 * sigma, 20.0) if np.isfinite(sigma) else 50.0
    est["radius_nm"] = float(radius_nm)
    if block_frames is None:
        block_frames = max(20, int(np.ceil(n_frames / 50)))
    block_frames = int(block_frames)
    max_gap = max(2, int(np.ceil(100 / block_frames)))
    est.update(block_frames=block_frames, max_gap_blocks=max_gap,
               max_drift_nm_per_frame=float(radius_nm) / block_frames)
    ij = np.floor((pos[:, :2] - pos[:, :2].min(0)) / float(radius_nm)).astype(np.int64)
    tr = spot_tracks(ij[:, 0], ij[:, 1], f0, block_frames, max_gap=max_gap,
                     min_frames=10 if min_frames is None else min(int(min_frames), 10))
    if min_frames is None:
        q90 = tr.event_frames_q90
        min_frames = int(np.clip(np.ceil(5 * q90), 10, max(10, 0.02 * n_frames)))
    if min_span_frames is None:
        min_span_frames = int(max(5 * min_frames, np.ceil(0.1 * n_frames)))
    max_step_z = MAX_STEP_Z if max_step_z is None else float(max_step_z)
    est.update(event_frames_q90=float(tr.event_frames_q90), min_frames=int(min_frames),
               min_span_frames=int(min_span_frames), max_step_z=max_step_z, min_coverage=MIN_COVERAGE,
               split_gap_dex=GAP_DEX, fiducial_channel_min_span=BEAD_CHANNEL_SPAN, n_tracks=int(tr.n_tracks))
    photons = locs["photons"].to_numpy(float) if "photons" in locs.columns else None
    st, lab, loc_track = track_statistics(pos, f0, tr, prec=prec, sigma=sigma, photons=photons,
                                          min_frames=int(min_frames), block_frames=block_frames,
                                          min_span_frames=int(min_span_frames))
    ok, long_lived, eligible = _select(st, est, n_frames=n_frames, has_photons=photons is not None,
                                       min_persistence=min_persistence, min_photons=min_photons)
    if photons is not None:
        est["photons_median_all"] = float(np.nanmedian(photons))
    diag.update(_diagnostics(st, long_lived, eligible))
    sel = np.flatnonzero(ok)
    est["n_selected"] = int(sel.size)
    if sel.size == 0:
        return result()
    fs = st.iloc[sel].reset_index(drop=True)
    track_of_row = st["track"].to_numpy()
    to_fid = np.full(tr.n_tracks, -1, np.int64)
    to_fid[track_of_row[sel]] = np.arange(sel.size)
    labels = np.where(lab >= 0, to_fid[np.maximum(lab, 0)], -1)
    members = (loc_track >= 0) & (to_fid[np.maximum(loc_track, 0)] >= 0)
    centers = fs[[f"mean_{a}" for a in axes]].to_numpy(float)
    cov = np.zeros((sel.size, d, d))
    for i, a in enumerate(axes):
        for j, b in enumerate(axes):
            cov[:, i, j] = fs[f"cov_{min(a, b)}{max(a, b)}"].to_numpy(float)
    drift_seen = bool(np.nanmedian(fs["track_extent_nm"]) > 3.0 * np.nanmedian(fs["jitter_nm"]))
    est["track_extent_nm_max"] = float(np.nanmax(fs["track_extent_nm"]))
    est["scatter_includes_drift"] = drift_seen
    keep = ["n_localizations", "n_frames_on", "first_frame", "last_frame", "persistence", "frame_fraction",
            "photons", "scatter_nm", "jitter_nm", "track_extent_nm", "step_z"]
    out = PersistentEmitters(centers, cov, labels, members, fs[keep].copy(), n_frames, float(radius_nm),
                             est, source, diag)
    out.stats["first_frame"] += int(frame.min())
    out.stats["last_frame"] += int(frame.min())
    return out


def _select(st: pd.DataFrame, est: dict, *, n_frames: int, has_photons: bool, min_persistence, min_photons):
    """(ok, long_lived, eligible) bool per measured track; the threshold and its rule go to ``est``."""
    long_lived = ((st["n_frames_on"] >= est["min_frames"]) & (st["span_frames"] >= est["min_span_frames"])).to_numpy()
    single = (st["step_z"] <= est["max_step_z"]).to_numpy()
    spread = (st["coverage"] >= MIN_COVERAGE).to_numpy()
    eligible = long_lived & single & spread
    est["n_long_lived"] = int(long_lived.sum())
    est["n_candidates"] = int(eligible.sum())
    p = st["persistence"].to_numpy()
    ok = eligible.copy()
    if min_persistence is None:
        sel, info = persistence_threshold(p[eligible], p[long_lived & ~single],
                                          st["photons"].to_numpy()[eligible] if has_photons else None,
                                          st["span_frames"].to_numpy()[eligible] / n_frames)
        ok[eligible] = sel
        est["threshold_rule"] = info.pop("rule")
        est.update(info)
    else:
        ok &= p >= float(min_persistence)
        est["min_persistence"] = float(min_persistence)
    if min_photons is not None:
        ok &= st["photons"].to_numpy() >= float(min_photons)
    est["min_photons"] = None if min_photons is None else float(min_photons)
    return ok, long_lived, eligible


def _diagnostics(st: pd.DataFrame, long_lived: np.ndarray, eligible: np.ndarray) -> dict:
    """What the detector saw: persistence distribution of long-lived tracks, best candidates."""
    p = st["persistence"].to_numpy()
    out: dict = {"n_tracks_measured": int(len(st)), "n_long_lived": int(long_lived.sum()),
                 "n_single_emitter_long_lived": int(eligible.sum())}
    if long_lived.any():
        q = np.quantile(p[long_lived], [0.1, 0.5, 0.9, 1.0])
        out["persistence_quantiles_long_lived"] = {"q10": q[0], "q50": q[1], "q90": q[2], "max": q[3]}
    cols = ["mean_x", "mean_y", "n_frames_on", "span_frames", "persistence", "photons", "step_z"]
    best = st.sort_values(["n_frames_on"], ascending=False).head(5)
    out["best_tracks"] = [{k: float(v) for k, v in r.items()} for r in best[cols].to_dict("records")]
    return out
