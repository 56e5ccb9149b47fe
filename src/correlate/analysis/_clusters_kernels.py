"""numba kernels of the clustering (imported on first use, compiled once and cached on disk):
the grid DBSCAN of :mod:`._clusters_dbscan` and the radial density table of :mod:`._clusters_radius`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["borders", "cores", "join", "radial_density"]


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


@njit(cache=True, nogil=True)
def i0e(x):
    # exp(-x) I0(x), x >= 0 (Abramowitz & Stegun 9.8.1, 9.8.2; relative error < 2e-7)
    if x < 3.75:
        y = (x / 3.75) ** 2
        return math.exp(-x) * (1.0 + y * (3.5156229 + y * (3.0899424 + y * (1.2067492 + y * (
            0.2659732 + y * (0.0360768 + y * 0.0045813))))))
    y = 3.75 / x
    return (0.39894228 + y * (0.01328592 + y * (0.00225319 + y * (-0.00157565 + y * (0.00916281 + y * (
        -0.02057706 + y * (0.02635537 + y * (-0.01647633 + y * 0.00392377)))))))) / math.sqrt(x)

@njit(cache=True, nogil=True)
def radial_density(t, b, r, mw, dphi, out):
    n = r.shape[0]
    for j in range(b.shape[0]):
        bb = b[j]
        inv = 1.0 / (bb * bb)
        cut = 9.0 * bb
        # nodes a quarter of the blur apart in phi (r = sin phi moves at most as fast), at least 100
        stride = max(1, min(int(0.25 * bb / dphi), (n - 1) // 100))
        for i in range(t.shape[0]):
            acc = 0.0
            ti = t[i]
            for q in range(0, n, stride):
                d = ti - r[q]
                if d > cut or d < -cut:
                    continue
                acc += mw[q] * math.exp(-0.5 * d * d * inv) * i0e(ti * r[q] * inv)
            out[i, j] = acc * stride * inv / (2.0 * math.pi)



@njit(cache=True, nogil=True)
def big_components(row, col, n, m):
    """Single linkage of a tree's edges taken in the given order (increasing length): the number
    of components with at least ``m`` points after each edge."""
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    big = 0 if m > 1 else n
    out = np.empty(row.shape[0], np.int64)
    for e in range(row.shape[0]):
        a = find(parent, row[e])
        b = find(parent, col[e])
        if a != b:
            sa, sb = size[a], size[b]
            big += (sa + sb >= m) - (sa >= m) - (sb >= m)
            if sa < sb:
                a, b = b, a
            parent[b] = a
            size[a] = sa + sb
        out[e] = big
    return out
