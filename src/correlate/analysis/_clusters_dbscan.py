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

import numpy as np

__all__ = ["dbscan"]


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
    from ._clusters_kernels import borders as borders_k, cores as cores_k, join as join_k

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
