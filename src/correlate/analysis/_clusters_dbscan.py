"""DBSCAN in 2-D without neighbour lists: a grid of ``eps`` cells, numba kernels, O(N) memory.

scikit-learn's ``DBSCAN`` first stores every point's neighbours within ``eps``; inside dense
clusters (hundreds of localizations within ``eps`` of each other) that is hundreds of integers per
localization, gigabytes for a million. Here the points are sorted by grid cell, so the 3 x 3
cells around a point are three contiguous runs of the sorted array, and

1. a point is a core when at least ``min_samples`` points (itself included) lie within ``eps``
   (the count stops there);
2. cores within ``eps`` of each other are joined by a union-find;
3. a border point (not a core, within ``eps`` of one) takes the cluster of its nearest core.

Cores and their clusters are exactly scikit-learn's, numbered the same way (in the order of each
cluster's first core); a border point within ``eps`` of cores of two clusters may land in the
other one (scikit-learn gives it to whichever cluster reached it first).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["dbscan"]


@lru_cache(maxsize=1)
def _kernels():
    from numba import njit

    @njit(cache=True, nogil=True)
    def runs(key, ncx, i):
        # the [lo, hi) ranges of the sorted points in the 3 x 3 cells around point i
        out = np.empty((3, 2), np.int64)
        k = key[i]
        for r in range(3):
            c = k + (r - 1) * ncx
            out[r, 0] = np.searchsorted(key, c - 1, side="left")
            out[r, 1] = np.searchsorted(key, c + 1, side="right")
        return out

    @njit(cache=True, nogil=True)
    def cores(x, y, key, ncx, eps2, min_samples):
        n = x.shape[0]
        core = np.zeros(n, np.bool_)
        for i in range(n):
            rr = runs(key, ncx, i)
            cnt = 0
            for r in range(3):
                for j in range(rr[r, 0], rr[r, 1]):
                    dx = x[j] - x[i]
                    dy = y[j] - y[i]
                    if dx * dx + dy * dy <= eps2:
                        cnt += 1
                        if cnt >= min_samples:
                            break
                if cnt >= min_samples:
                    core[i] = True
                    break
        return core

    @njit(cache=True, nogil=True)
    def find(parent, i):
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            nxt = parent[i]
            parent[i] = root
            i = nxt
        return root

    @njit(cache=True, nogil=True)
    def join(x, y, key, ncx, eps2, core):
        n = x.shape[0]
        parent = np.arange(n)
        for i in range(n):
            if not core[i]:
                continue
            rr = runs(key, ncx, i)
            for r in range(3):
                for j in range(rr[r, 0], rr[r, 1]):
                    if j <= i or not core[j]:
                        continue
                    a = find(parent, i)
                    b = find(parent, j)
                    if a == b:
                        continue
                    dx = x[j] - x[i]
                    dy = y[j] - y[i]
                    if dx * dx + dy * dy <= eps2:
                        if a < b:
                            parent[b] = a
                        else:
                            parent[a] = b
        root = np.full(n, -1, np.int64)
        for i in range(n):
            if core[i]:
                root[i] = find(parent, i)
        return root

    @njit(cache=True, nogil=True)
    def borders(x, y, key, ncx, eps2, core, root):
        n = x.shape[0]
        out = root.copy()
        for i in range(n):
            if core[i]:
                continue
            rr = runs(key, ncx, i)
            best = eps2
            bj = -1
            for r in range(3):
                for j in range(rr[r, 0], rr[r, 1]):
                    if not core[j]:
                        continue
                    dx = x[j] - x[i]
                    dy = y[j] - y[i]
                    d = dx * dx + dy * dy
                    if d <= best:
                        best = d
                        bj = j
            if bj >= 0:
                out[i] = root[bj]
        return out

    return cores, join, borders


def dbscan(xy: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """DBSCAN labels of 2-D points.

    Parameters
    ----------
    xy
        (N, 2) positions (nm).
    eps
        Neighbourhood radius (nm).
    min_samples
        Points within ``eps`` (the point itself included) that make a core.

    Returns
    -------
    labels, core
        (N,) cluster id (0..K-1 in the order of each cluster's first core; -1 noise) and (N,) bool.
    """
    xy = np.asarray(xy, float)
    n = len(xy)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if not np.isfinite(xy).all():
        from ..errors import CorrelateError

        raise CorrelateError(f"{int((~np.isfinite(xy)).any(1).sum())} localizations have no finite x, y",
                             field="x")
    cores_k, join_k, borders_k = _kernels()
    lo = xy.min(axis=0)
    cell = np.floor((xy - lo) / eps).astype(np.int64) + 1  # one empty column either side
    ncx = int(cell[:, 0].max()) + 3
    key = cell[:, 1] * ncx + cell[:, 0]
    order = np.argsort(key, kind="stable")
    xs, ys, ks = np.ascontiguousarray(xy[order, 0]), np.ascontiguousarray(xy[order, 1]), key[order]
    eps2 = float(eps) ** 2
    core = cores_k(xs, ys, ks, ncx, eps2, int(min_samples))
    root = join_k(xs, ys, ks, ncx, eps2, core)
    lab_sorted = borders_k(xs, ys, ks, ncx, eps2, core, root)
    lab = np.empty(n, np.int64)
    lab[order] = lab_sorted
    core_out = np.empty(n, bool)
    core_out[order] = core
    # renumber roots (indices into the sorted array) by each cluster's first core in input order
    first = np.full(n, n, np.int64)
    ci = np.flatnonzero(core_out)
    np.minimum.at(first, lab[ci], ci)
    roots = np.flatnonzero(first < n)
    new = np.full(n, -1, np.int64)
    new[roots[np.argsort(first[roots])]] = np.arange(len(roots))
    return np.where(lab >= 0, new[np.maximum(lab, 0)], -1), core_out
