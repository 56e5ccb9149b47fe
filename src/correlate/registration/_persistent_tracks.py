"""Space-time tracks of persistent emitters, on a grid, without a loop over localizations.

The acquisition is cut into blocks of ``block`` frames and the plane into square cells of
``cell`` nm. Per block and per window of 2 x 2 cells, the number of *distinct frames* with a
localization is counted; in each block the windows that are local maxima of that count (over the
8 neighbouring windows) are *spots*: one per emitter and block, since an emitter's scatter fits in
a window. A spot links to the strongest spot at most one cell away in the next block that holds
one (up to ``max_gap`` blocks ahead), each spot keeping only its strongest predecessor: a slowly
drifting emitter becomes one chain of spots (a track), whatever its total drift. Windows of
spots of the same block are disjoint; a localization belongs to the track whose window holds it,
or else to the strongest track whose window is one cell away (so an emitter straddling a window
edge stays whole).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpotTracks", "spot_tracks"]


@dataclass
class SpotTracks:
    """Spots (one per emitter and block) linked into tracks.

    Attributes
    ----------
    block, ax, ay
        (S,) block index and window anchor cell of each spot (the window covers cells
        ``ax..ax+1``, ``ay..ay+1``).
    count
        (S,) distinct frames with a localization in the spot's window during its block.
    track
        (S,) track index of each spot.
    codes
        (N,) (block, cell) code of each localization, for :meth:`locate`.
    n_tracks
        Number of tracks.
    event_frames_q90
        90th percentile of the lengths (frames) of runs of consecutive frames with a
        localization in one cell: the on-event length of the table's blinking.
    """

    block: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    count: np.ndarray
    track: np.ndarray
    codes: np.ndarray
    n_tracks: int
    event_frames_q90: float = float("nan")
    spot_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ny: int = 0

    def locate(self, wanted: np.ndarray) -> np.ndarray:
        """(N,) track of each localization among the ``wanted`` (bool per track) ones, -1 else.

        A localization belongs to the spot of its block whose window holds its cell, else to
        the strongest spot whose window is one cell away (an emitter straddling the edge).
        """
        n = self.codes.size
        keep = np.asarray(wanted, bool)[self.track] if self.track.size else np.zeros(0, bool)
        if not keep.any():
            return np.full(n, -1, np.int64)
        sk, sc, st = self.spot_keys[keep], self.count[keep], self.track[keep]
        codes, pri, cnt, trk = [], [], [], []
        for dx in (-1, 0, 1, 2):
            for dy in (-1, 0, 1, 2):
                inner = dx in (0, 1) and dy in (0, 1)
                codes.append(sk + dx * self.ny + dy)
                pri.append(np.full(sk.size, 1 if inner else 0))
                cnt.append(sc)
                trk.append(st)
        codes, pri, cnt, trk = (np.concatenate(a) for a in (codes, pri, cnt, trk))
        order = np.lexsort((-cnt, -pri, codes))
        codes, trk = codes[order], trk[order]
        first = np.r_[True, codes[1:] != codes[:-1]]
        return _lookup(codes[first], trk[first], self.codes, default=-1)


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values (a sort: faster than numpy's hash-based unique on large int64)."""
    a = np.sort(a, kind="stable")
    return a[np.r_[True, a[1:] != a[:-1]]] if a.size else a


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, default=0) -> np.ndarray:
    """values[keys == query] for sorted unique ``keys``; ``default`` where absent."""
    if keys.size == 0:
        return np.full(query.shape, default, dtype=values.dtype)
    i = np.searchsorted(keys, query)
    i = np.minimum(i, keys.size - 1)
    hit = keys[i] == query
    return np.where(hit, values[i], default)


def spot_tracks(
    ix: np.ndarray,
    iy: np.ndarray,
    frame: np.ndarray,
    block: int,
    *,
    max_gap: int = 2,
    min_count: int = 2,
    min_frames: int = 10,
) -> SpotTracks:
    """Link per-block window maxima into tracks.

    Parameters
    ----------
    ix, iy
        (N,) integer cell indices of the localizations (>= 0).
    frame
        (N,) frame numbers starting at 0.
    block
        Frames per block.
    max_gap
        A track bridges up to ``max_gap - 1`` blocks without a spot.
    min_count
        Smallest number of distinct frames in a window for it to be a spot.
    min_frames
        Cells whose 3 x 3 neighbourhood holds fewer distinct frames over the run are left out.

    Returns
    -------
    SpotTracks
    """
    n = ix.size
    empty = SpotTracks(*(np.zeros(0, np.int64) for _ in range(5)), np.zeros(n, np.int64), 0)
    if n == 0:
        return empty
    # one spare cell on each side keeps window neighbours inside the index space
    gx = ix.astype(np.int64) + 2
    gy = iy.astype(np.int64) + 2
    nx = int(gx.max()) + 3
    ny = int(gy.max()) + 3
    ncell = nx * ny
    nf = int(frame.max()) + 1
    b_loc = frame.astype(np.int64) // int(block)
    cell = gx * ny + gy
    # distinct (cell, frame) pairs, then their number per (block, cell)
    ucf = _unique(cell * nf + frame)
    c_u = ucf // nf
    f_u = ucf % nf
    b_u = f_u // int(block)
    new_run = np.r_[True, (c_u[1:] != c_u[:-1]) | (np.diff(f_u) != 1)]
    event_q90 = float(np.quantile(np.bincount(np.cumsum(new_run) - 1), 0.9))
    # only cells whose 3 x 3 neighbourhood holds >= min_frames distinct frames over the run can
    # belong to a track that long: the rest is dropped before the per-block work
    starts = np.flatnonzero(np.r_[True, c_u[1:] != c_u[:-1]])
    cells_u = c_u[starts]
    per_cell = np.diff(np.r_[starts, c_u.size])
    hood = np.zeros(cells_u.size, np.int64)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            hood += _lookup(cells_u, per_cell, cells_u + dx * ny + dy)
    live = np.repeat(hood >= int(min_frames), per_cell)
    c_u, b_u = c_u[live], b_u[live]
    bc_keys, bc_count = np.unique(b_u * ncell + c_u, return_counts=True)
    if bc_keys.size == 0:
        empty.event_frames_q90 = event_q90
        return empty
    # 2 x 2 windows anchored at (cx - dx, cy - dy) for every occupied cell
    anchors = _unique(np.concatenate([bc_keys - dx * ny - dy for dx in (0, 1) for dy in (0, 1)]))
    win = np.zeros(anchors.size, np.int64)
    for dx in (0, 1):
        for dy in (0, 1):
            win += _lookup(bc_keys, bc_count, anchors + dx * ny + dy)
    keep = win >= int(min_count)
    anchors, win = anchors[keep], win[keep]
    # non-maximum suppression over the 8 neighbouring windows of the same block (ties: lower key)
    is_max = np.ones(anchors.size, bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx == 0 and dy == 0:
                continue
            off = dx * ny + dy
            other = _lookup(anchors, win, anchors + off)
            is_max &= (win > other) | ((win == other) & (off > 0))
    spots, count = anchors[is_max], win[is_max]
    if spots.size == 0:
        empty.event_frames_q90 = event_q90
        return empty
    s_block = spots // ncell
    s_cell = spots % ncell
    s_ax, s_ay = s_cell // ny, s_cell % ny
    n_tracks, track = _link(spots, count, ncell, ny, int(max_gap))
    return SpotTracks(s_block, s_ax - 2, s_ay - 2, count, track, b_loc * ncell + cell, int(n_tracks), event_q90,
                      spots, ny)


def _link(spots: np.ndarray, count: np.ndarray, ncell: int, ny: int, max_gap: int) -> tuple[int, np.ndarray]:
    """Tracks of spots: each links to the strongest spot one cell away in the next block that
    has one (<= max_gap blocks ahead) and keeps only its strongest predecessor."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ns = spots.size
    idx = np.arange(ns)
    # successor: the first later block (<= max_gap ahead) with a spot within one cell; the strongest
    succ = np.full(ns, -1, np.int64)
    succ_count = np.full(ns, -1, np.int64)
    for gap in range(1, max_gap + 1):
        todo = succ < 0
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                q = spots + gap * ncell + dx * ny + dy
                j = _lookup(spots, idx, q, default=-1)
                cj = np.where(j >= 0, count[np.maximum(j, 0)], -1)
                better = todo & (cj > succ_count)
                succ = np.where(better, j, succ)
                succ_count = np.where(better, cj, succ_count)
    src = np.flatnonzero(succ >= 0)
    dst = succ[src]
    # one predecessor per spot: the strongest
    order = np.lexsort((-count[src], dst))
    src, dst = src[order], dst[order]
    first = np.r_[True, dst[1:] != dst[:-1]] if dst.size else np.zeros(0, bool)
    src, dst = src[first], dst[first]
    graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(ns, ns))
    n_tracks, track = connected_components(graph, directed=False)
    track = track.astype(np.int64)
    return int(n_tracks), track

