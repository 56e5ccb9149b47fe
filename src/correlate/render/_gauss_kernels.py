"""numba kernels of the Gaussian renderer, tiled like the histogram ones (see ``_kernels``).

A point whose truncated footprint spans several tiles is listed in each, and each tile adds only
its own pixels, so threads never write the same pixel and every pixel sums its points in input
order: the image is bit-identical whatever the thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._kernels import N_CHUNKS, n_tiles, tile_groups, tile_layout

__all__ = ["gauss_block", "erf_fast", "erf_table", "Entries"]


@njit(cache=True, nogil=True, inline="always")
def _span(v, s, e0, p, n, n_sigma):
    # first and last cell (clipped to 0..n-1) of v +- n_sigma*s on a grid starting at e0, step p
    lo = np.floor((v - n_sigma * s - e0) / p)
    hi = np.floor((v + n_sigma * s - e0) / p)
    lo = min(max(lo, 0.0), float(n))
    hi = max(min(hi, n - 1.0), -1.0)
    return int(lo), int(hi)


#: erf is tabulated on [-ERF_MAX, ERF_MAX] (|erf| = 1 to 1e-20 beyond) every ERF_STEP as one
#: quintic per interval (the Hermite interpolant of erf and its first two derivatives at both
#: ends): accurate to ~5e-16 absolute for five multiply-adds instead of a libm erf.
ERF_MAX = 6.5
ERF_STEP = 1.0 / 128


def erf_table() -> np.ndarray:
    """(n_intervals, 8) polynomial coefficients c0..c5 (in ``u`` = position in the interval,
    0..1) per interval of ``-ERF_MAX + k * ERF_STEP``; rows padded to one 64-byte cache line."""
    z = -ERF_MAX + ERF_STEP * np.arange(int(round(2 * ERF_MAX / ERF_STEP)) + 1)
    g = 2.0 / math.sqrt(math.pi) * np.exp(-z * z)
    f = np.array([math.erf(v) for v in z])  # table setup, not a hot path
    d = g * ERF_STEP
    s2 = -2.0 * z * g * ERF_STEP**2
    f0, f1, d0, d1, s0, s1 = f[:-1], f[1:], d[:-1], d[1:], s2[:-1], s2[1:]
    big = f1 - f0 - d0 - 0.5 * s0
    dd = d1 - d0 - s0
    ds = s1 - s0
    tab = np.zeros((z.size - 1, 8))
    tab[:, 0], tab[:, 1], tab[:, 2] = f0, d0, 0.5 * s0
    tab[:, 3] = 10.0 * big - 4.0 * dd + 0.5 * ds
    tab[:, 4] = -15.0 * big + 7.0 * dd - ds
    tab[:, 5] = 6.0 * big - 3.0 * dd + 0.5 * ds
    return tab


@njit(cache=True, nogil=True, inline="always")
def erf_fast(z, tab):
    """erf(z) from :func:`erf_table`."""
    t = (z + ERF_MAX) * (1.0 / ERF_STEP)
    if t <= 0.0:
        return -1.0
    if t >= tab.shape[0]:
        return 1.0
    k = int(t)
    u = t - k
    return tab[k, 0] + u * (tab[k, 1] + u * (tab[k, 2] + u * (tab[k, 3] + u * (tab[k, 4] + u * tab[k, 5]))))


@njit(cache=True, nogil=True, inline="always")
def _weights(v, s, e, lo, hi, buf, tab):
    # pixel integrals of N(v, s^2) over cells lo..hi of edges e, into buf[:hi - lo + 1]
    inv = 1.0 / (math.sqrt(2.0) * s)
    prev = erf_fast((e[lo] - v) * inv, tab)
    for k in range(lo, hi + 1):
        cur = erf_fast((e[k + 1] - v) * inv, tab)
        buf[k - lo] = 0.5 * (cur - prev)
        prev = cur


@njit(cache=True, nogil=True, inline="always")
def _spans(i, x, y, sx, sy, ex, ey, n_sigma):
    nx = ex.shape[0] - 1
    ny = ey.shape[0] - 1
    i0, i1 = _span(x[i], sx[i], ex[0], (ex[nx] - ex[0]) / nx, nx, n_sigma)
    j0, j1 = _span(y[i], sy[i], ey[0], (ey[ny] - ey[0]) / ny, ny, n_sigma)
    return i0, i1, j0, j1


@njit(cache=True, nogil=True, parallel=True)
def _gauss_count(x, y, sx, sy, ex, ey, n_sigma, shift_rows, shift_cols, counts):
    # counts[c, t]: points of chunk c whose footprint touches tile t
    n = x.shape[0]
    n_chunks = counts.shape[0]
    n_tx = ((ex.shape[0] - 2) >> shift_cols) + 1
    for c in prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            i0, i1, j0, j1 = _spans(i, x, y, sx, sy, ex, ey, n_sigma)
            if i1 < i0 or j1 < j0:
                continue
            for ty in range(j0 >> shift_rows, (j1 >> shift_rows) + 1):
                for tx in range(i0 >> shift_cols, (i1 >> shift_cols) + 1):
                    counts[c, ty * n_tx + tx] += 1


@njit(cache=True, nogil=True, parallel=True)
def _gauss_scatter(x, y, sx, sy, w, ex, ey, n_sigma, shift_rows, shift_cols, offsets, pts):
    # stable scatter of the points into tile order: row k of pts is entry k, (x, y, sx, sy[, w])
    n = x.shape[0]
    n_chunks = offsets.shape[0]
    n_tx = ((ex.shape[0] - 2) >> shift_cols) + 1
    use_w = pts.shape[1] == 5
    for c in prange(n_chunks):
        cur = offsets[c].copy()
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            i0, i1, j0, j1 = _spans(i, x, y, sx, sy, ex, ey, n_sigma)
            if i1 < i0 or j1 < j0:
                continue
            for ty in range(j0 >> shift_rows, (j1 >> shift_rows) + 1):
                for tx in range(i0 >> shift_cols, (i1 >> shift_cols) + 1):
                    t = ty * n_tx + tx
                    k = cur[t]
                    pts[k, 0] = x[i]
                    pts[k, 1] = y[i]
                    pts[k, 2] = sx[i]
                    pts[k, 3] = sy[i]
                    if use_w:
                        pts[k, 4] = w[i]
                    cur[t] = k + 1


@njit(cache=True, nogil=True, inline="always")
def _add_rows(out, j0, h, i0, width, by, bx, wi):
    # out[j0:j0+h, i0:i0+width] += wi * outer(by[:h], bx[:width]); a constant width unrolls
    for a in range(h):
        wy = by[a] * wi
        orow = out[j0 + a, i0 : i0 + width]
        for b in range(width):
            orow[b] += wy * bx[b]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _gauss_fill(pts, ex, ey, n_sigma, shift_rows, shift_cols, tile_start, groups, tab, out):
    ny, nx = out.shape
    n_tx = ((nx - 1) >> shift_cols) + 1
    tile_rows = 1 << shift_rows
    tile_cols = 1 << shift_cols
    px = (ex[nx] - ex[0]) / nx
    py = (ey[ny] - ey[0]) / ny
    use_w = pts.shape[1] == 5
    for g in prange(groups.shape[0] - 1):
        bx = np.zeros(tile_cols + 16, np.float64)
        by = np.empty(tile_rows, np.float64)
        for t in range(groups[g], groups[g + 1]):
            _fill_tile(pts, ex, ey, n_sigma, t, n_tx, tile_rows, tile_cols, px, py, use_w, tile_start, tab, out, bx, by)


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_tile(pts, ex, ey, n_sigma, t, n_tx, tile_rows, tile_cols, px, py, use_w, tile_start, tab, out, bx, by):
    # the entries of tile t, in input order, onto its own pixels of out
    ny, nx = out.shape
    r0 = (t // n_tx) * tile_rows
    r1 = min(ny, r0 + tile_rows) - 1
    c0 = (t % n_tx) * tile_cols
    c1 = min(nx, c0 + tile_cols) - 1
    for k in range(tile_start[t], tile_start[t + 1]):
        x, y, sx, sy = pts[k, 0], pts[k, 1], pts[k, 2], pts[k, 3]
        wi = pts[k, 4] if use_w else 1.0
        i0, i1 = _span(x, sx, ex[0], px, nx, n_sigma)
        j0, j1 = _span(y, sy, ey[0], py, ny, n_sigma)
        i0 = max(i0, c0)
        i1 = min(i1, c1)
        j0 = max(j0, r0)
        j1 = min(j1, r1)
        _weights(x, sx, ex, i0, i1, bx, tab)
        _weights(y, sy, ey, j0, j1, by, tab)
        m = i1 - i0 + 1
        h = j1 - j0 + 1
        # narrow footprints: rows padded with zero weights to a fixed width inside the tile
        # (adding 0.0 leaves a pixel unchanged), so that the row loop is unrolled
        if m <= 8 and i0 + 8 <= c1 + 1 and math.isfinite(wi):
            bx[m:8] = 0.0
            _add_rows(out, j0, h, i0, 8, by, bx, wi)
        elif m <= 16 and i0 + 16 <= c1 + 1 and math.isfinite(wi):
            bx[m:16] = 0.0
            _add_rows(out, j0, h, i0, 16, by, bx, wi)
        else:
            _add_rows(out, j0, h, i0, m, by, bx, wi)


class Entries:
    """The tile-ordered point entries of the Gaussian passes, reused by every block of a render
    (grown when a block needs more)."""

    def __init__(self, weighted: bool):
        self.width = 5 if weighted else 4
        self.buf = np.empty(0, np.float64)

    def take(self, n: int) -> np.ndarray:
        if self.buf.size < n * self.width:
            self.buf = np.empty(int(n * 1.25) * self.width + 64, np.float64)
        return self.buf[: n * self.width].reshape(n, self.width)


def gauss_block(x, y, sx, sy, w, ex, ey, n_sigma: float, shift_rows: int, shift_cols: int, out: np.ndarray,
                entries: Entries | None = None) -> None:
    """Add the pixel-integrated Gaussians of one block of finite points to ``out`` (``entries``:
    an :class:`Entries` to reuse across blocks)."""
    n_chunks = max(1, min(N_CHUNKS, x.shape[0]))
    if entries is None:
        entries = Entries(w.shape[0] > 0)
    counts = np.zeros((n_chunks, n_tiles(out.shape, shift_rows, shift_cols)), np.int64)
    _gauss_count(x, y, sx, sy, ex, ey, n_sigma, shift_rows, shift_cols, counts)
    offsets, tile_start = tile_layout(counts)
    pts = entries.take(int(tile_start[-1]))
    _gauss_scatter(x, y, sx, sy, w, ex, ey, n_sigma, shift_rows, shift_cols, offsets, pts)
    _gauss_fill(pts, ex, ey, n_sigma, shift_rows, shift_cols, tile_start, tile_groups(tile_start), _TABLE, out)


_TABLE = erf_table()
