"""numba kernels of the renderers (imported on first use, compiled once and cached on disk)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["hist_kernel", "gauss_kernel"]


@njit(cache=True, nogil=True)
def _bin_index(v, e):
    # Exact bin of v against edges e (len n+1, increasing); -1 outside. Far edge closed.
    n = e.shape[0] - 1
    if not (v >= e[0]) or v > e[n]:  # also rejects NaN
        return -1
    if v == e[n]:
        return n - 1
    k = int((v - e[0]) / (e[n] - e[0]) * n)
    if k > n - 1:
        k = n - 1
    while k > 0 and v < e[k]:
        k -= 1
    while k < n - 1 and v >= e[k + 1]:
        k += 1
    return k


@njit(cache=True, nogil=True)
def hist_kernel(x, y, w, ex, ey, out):
    """Add 1 (or w[i]) to out[row, col] of each point inside the edges; return how many were."""
    inside = 0
    use_w = w.shape[0] == x.shape[0]
    for i in range(x.shape[0]):
        ix = _bin_index(x[i], ex)
        if ix < 0:
            continue
        iy = _bin_index(y[i], ey)
        if iy < 0:
            continue
        if use_w:
            out[iy, ix] += w[i]
        else:
            out[iy, ix] += 1.0
        inside += 1
    return inside


@njit(cache=True, nogil=True)
def _axis_weights(v, s, e, n_sigma, buf):
    # pixel integrals of N(v, s^2) over the cells of edges e that lie within v +- n_sigma*s.
    # Returns (first index, count) and fills buf[:count].
    n = e.shape[0] - 1
    p = (e[n] - e[0]) / n
    lo = int(math.floor((v - n_sigma * s - e[0]) / p))
    hi = int(math.floor((v + n_sigma * s - e[0]) / p))
    if lo < 0:
        lo = 0
    if hi > n - 1:
        hi = n - 1
    if hi < lo:
        return 0, 0
    inv = 1.0 / (math.sqrt(2.0) * s)
    prev = math.erf((e[lo] - v) * inv)
    for k in range(lo, hi + 1):
        cur = math.erf((e[k + 1] - v) * inv)
        buf[k - lo] = 0.5 * (cur - prev)
        prev = cur
    return lo, hi - lo + 1


@njit(cache=True, nogil=True)
def gauss_kernel(x, y, sx, sy, w, ex, ey, n_sigma, out):
    """Add each point's pixel-integrated Gaussian (sx, sy nm) to out; truncated at n_sigma."""
    nx = ex.shape[0] - 1
    ny = ey.shape[0] - 1
    bx = np.empty(nx, np.float64)
    by = np.empty(ny, np.float64)
    use_w = w.shape[0] == x.shape[0]
    for i in range(x.shape[0]):
        i0, ni = _axis_weights(x[i], sx[i], ex, n_sigma, bx)
        if ni == 0:
            continue
        j0, nj = _axis_weights(y[i], sy[i], ey, n_sigma, by)
        if nj == 0:
            continue
        wi = w[i] if use_w else 1.0
        for a in range(nj):
            wy = by[a] * wi
            for b in range(ni):
                out[j0 + a, i0 + b] += wy * bx[b]
    return 0

