"""Fiducials in SMLM data: persistent emitters, on in a large fraction of the frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["Fiducials", "fiducial_mask", "find_fiducials"]


@dataclass
class Fiducials:
    """Persistent emitters found in a localization table.

    Attributes
    ----------
    centers
        (K, D) mean position of each fiducial, nm (x, y[, z]).
    occupancy
        (K,) fraction of the acquisition's frames in which the fiducial was localized.
    labels
        (N,) fiducial index per row of the table, -1 elsewhere; at most one row per fiducial and
        frame (the brightest within ``search_radius``).
    n_frames
        Number of frames of the acquisition (max - min + 1).
    search_radius
        Radius (nm) around each centre within which its localizations were taken.
    """

    centers: np.ndarray
    occupancy: np.ndarray
    labels: np.ndarray
    n_frames: int
    search_radius: float

    def __len__(self) -> int:
        return len(self.centers)


def _frame_occupancy(cells: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique cell ids and the number of distinct frames each appears in."""
    f = frame - frame.min()
    nf = int(f.max()) + 1
    key = np.unique(cells * nf + f)
    cell_of_key = key // nf
    ucell, count = np.unique(cell_of_key, return_counts=True)
    return ucell, count


def find_fiducials(
    df: pd.DataFrame,
    *,
    min_fraction: float = 0.5,
    search_radius: float = 150.0,
    max_step_sigma: float = 4.0,
) -> Fiducials:
    """Find fiducials: emitters localized within ``search_radius`` in >= ``min_fraction`` of frames.

    Frame occupancy is counted on a grid of cells ``2 * search_radius`` wide, and on the same grid
    shifted by half a cell along x, y and both, so a fiducial track (drift included) shorter than
    half a cell lies inside one cell of some grid. Candidates closer than a cell are merged.

    Parameters
    ----------
    df
        Localizations (x, y[, z] nm; frame). ``photons`` picks the brightest localization per
        fiducial and frame when several fall inside the search radius.
    min_fraction
        Smallest fraction of frames a fiducial must be on in.
    search_radius
        Radius (nm) around a fiducial's mean position that holds its whole track (drift range).
    max_step_sigma
        A candidate whose 80th percentile of frame-to-frame steps exceeds ``max_step_sigma`` x its
        median precision + 5 nm (15 nm without a precision column) is a cluster of blinking
        molecules, not a fiducial, and is rejected.

    Returns
    -------
    Fiducials
        Possibly empty (``len(result) == 0``).
    """
    from scipy.spatial import cKDTree

    if "frame" not in df.columns:
        raise CorrelateError("finding fiducials needs a 'frame' column", field="frame")
    n = len(df)
    cols = ["x", "y"] + (["z"] if "z" in df.columns else [])
    pos = df[cols].to_numpy(float)
    frame = df["frame"].to_numpy(np.int64)
    empty = Fiducials(np.zeros((0, len(cols))), np.zeros(0), np.full(n, -1, np.int64), 0, search_radius)
    if n == 0:
        return empty
    n_frames = int(frame.max() - frame.min() + 1)
    empty.n_frames = n_frames
    if n_frames < 10:
        return empty
    g = 2.0 * search_radius
    xy = pos[:, :2]
    lo = xy.min(0)
    cand_pos = []
    cand_occ = []
    for shift in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)):
        ij = np.floor((xy - lo) / g + np.asarray(shift)).astype(np.int64)
        ny = int(ij[:, 1].max()) + 1
        cells = ij[:, 0] * ny + ij[:, 1]
        ucell, count = _frame_occupancy(cells, frame)
        good = ucell[count >= min_fraction * n_frames]
        if good.size == 0:
            continue
        occ = count[count >= min_fraction * n_frames] / n_frames
        sel = np.isin(cells, good)
        # median position of each good cell
        c_sel = cells[sel]
        inv = np.searchsorted(good, c_sel)
        med = np.column_stack([
            pd.Series(xy[sel, k]).groupby(inv).median().to_numpy() for k in range(2)
        ])
        cand_pos.append(med)
        cand_occ.append(occ)
    if not cand_pos:
        return empty
    cp = np.vstack(cand_pos)
    co = np.concatenate(cand_occ)
    # merge duplicates: keep the highest occupancy within a cell width
    order = np.argsort(-co, kind="stable")
    cp, co = cp[order], co[order]
    keep = np.ones(len(cp), bool)
    tree = cKDTree(cp)
    for a, b in sorted(tree.query_pairs(g)):
        if keep[a] and keep[b]:
            keep[b] = False
    cp, co = cp[keep], co[keep]
    # refine centres and take one localization per fiducial and frame (the brightest)
    tree = cKDTree(cp)
    d, k = tree.query(xy, k=1, distance_upper_bound=search_radius)
    inside = np.isfinite(d)
    idx = np.flatnonzero(inside)
    fid = k[inside]
    bright = df["photons"].to_numpy(float)[idx] if "photons" in df.columns else -d[inside]
    order = np.lexsort((-bright, frame[idx], fid))
    fid_s, fr_s, idx_s = fid[order], frame[idx][order], idx[order]
    first = np.ones(len(order), bool)
    first[1:] = (fid_s[1:] != fid_s[:-1]) | (fr_s[1:] != fr_s[:-1])
    labels = np.full(n, -1, np.int64)
    labels[idx_s[first]] = fid_s[first]
    n_on = np.bincount(fid_s[first], minlength=len(cp))
    occupancy = n_on / n_frames
    ok = occupancy >= min_fraction
    # A fiducial is one point: its frame-to-frame steps are set by the localization precision
    # (Rayleigh, 80th percentile 2.5 sigma), whereas a dense cluster of blinking molecules jumps
    # between molecules. Reject candidates whose 80th-percentile step is too large.
    step80 = _step_percentile(pos[:, :2], frame, labels, len(cp), 80.0)
    if "precision" in df.columns:
        prec = df["precision"].to_numpy(float)
        m = labels >= 0
        exp_sigma = pd.Series(prec[m]).groupby(labels[m]).median().reindex(range(len(cp))).to_numpy()
        limit = max_step_sigma * np.nan_to_num(exp_sigma, nan=np.inf) + 5.0
    else:
        limit = np.full(len(cp), 15.0)
    ok &= ~(step80 > limit)
    remap = np.full(len(cp), -1, np.int64)
    remap[ok] = np.arange(ok.sum())
    labels = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
    labels = _drop_off_track(pos[:, :2], frame, labels)
    centers = np.zeros((int(ok.sum()), len(cols)))
    if ok.any():
        m = labels >= 0
        cnt = np.bincount(labels[m], minlength=len(centers))
        for c in range(len(cols)):
            centers[:, c] = np.bincount(labels[m], pos[m, c], minlength=len(centers)) / cnt
    return Fiducials(centers, occupancy[ok], labels, n_frames, float(search_radius))


def _drop_off_track(xy, frame, labels, window: int = 21, n_sigma: float = 5.0):
    """Unlabel localizations far from their fiducial's running-median track (frames where the
    fiducial was off and another emitter happened to be inside the search radius)."""
    m = np.flatnonzero(labels >= 0)
    if m.size == 0:
        return labels
    o = m[np.lexsort((frame[m], labels[m]))]
    lab = labels[o]
    df = pd.DataFrame({"lab": lab, "x": xy[o, 0], "y": xy[o, 1]})
    med = df.groupby("lab")[["x", "y"]].rolling(window, center=True, min_periods=1).median()
    r = np.hypot(df["x"].to_numpy() - med["x"].to_numpy(), df["y"].to_numpy() - med["y"].to_numpy())
    mad = pd.Series(r).groupby(lab).transform("median").to_numpy()
    # r is the distance of a 2-D point from the track: its median is ~1.18 sigma (Rayleigh)
    sigma = np.maximum(mad / 1.1774, 0.5)
    bad = r > n_sigma * sigma
    out = labels.copy()
    out[o[bad]] = -1
    return out


def _step_percentile(xy, frame, labels, k, q):
    """Per label, the q-th percentile of the distance between its localizations in consecutive frames."""
    m = np.flatnonzero(labels >= 0)
    out = np.full(k, np.nan)
    if m.size < 2:
        return out
    o = m[np.lexsort((frame[m], labels[m]))]
    lab = labels[o]
    same = (lab[1:] == lab[:-1]) & (np.diff(frame[o]) == 1)
    steps = np.linalg.norm(np.diff(xy[o], axis=0), axis=1)[same]
    if steps.size == 0:
        return out
    ser = pd.Series(steps).groupby(lab[1:][same]).quantile(q / 100.0)
    out[ser.index.to_numpy()] = ser.to_numpy()
    return out


def fiducial_mask(df: pd.DataFrame, fiducials: Fiducials | None = None, **kwargs) -> np.ndarray:
    """(N,) bool: localizations within the search radius of a fiducial (found if not given)."""
    from scipy.spatial import cKDTree

    if fiducials is None:
        fiducials = find_fiducials(df, **kwargs)
    if len(fiducials) == 0:
        return np.zeros(len(df), bool)
    tree = cKDTree(fiducials.centers[:, :2])
    d, _ = tree.query(df[["x", "y"]].to_numpy(float), k=1, distance_upper_bound=fiducials.search_radius)
    return np.isfinite(d)
