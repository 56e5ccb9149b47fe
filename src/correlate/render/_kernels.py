"""numba kernels of the histogram renderer (imported on first use, compiled once, cached on disk).

Parallel and deterministic: the points of a block are cut into a fixed number of chunks and the
image into tiles of ``2**shift_rows`` x ``2**shift_cols`` pixels (a shift, not a division, finds a
pixel's tile), both independent of the thread count. A first parallel pass finds each point's
pixel (a packed row/column key) and counts, per chunk, the points of every tile; a stable
scatter then lists each tile's
points in their original order; the tiles are then filled in parallel, each by one thread, in a
piece of the image small enough to stay in cache. Every pixel therefore receives its points in
input order whatever the number of threads, so results are bit-identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["bin_index", "hist_block", "tile_layout", "tile_groups", "n_tiles", "key_layout", "Scratch", "N_CHUNKS"]

#: Chunks a block of points is cut into (fixed: the cut must not depend on the thread count).
N_CHUNKS = 64


@njit(cache=True, nogil=True, inline="always")
def bin_index(v, e, inv):
    """Exact bin of ``v`` against increasing edges ``e`` (len n+1); -1 outside (NaN too).

    ``inv`` is ``n / (e[n] - e[0])``; the guess it gives is corrected against the edges themselves,
    and the far edge is closed.
    """
    n = e.shape[0] - 1
    if not (v >= e[0]) or v > e[n]:
        return -1
    k = int((v - e[0]) * inv)
    if k > n - 1:
        k = n - 1
    while k > 0 and v < e[k]:
        k -= 1
    while k < n - 1 and v >= e[k + 1]:
        k += 1
    return k


@njit(cache=True, nogil=True, parallel=True)
def _hist_index(x, y, ex, ey, shift_rows, shift_cols, bits, n_chunks, key, counts):
    # key[i] = (row << bits) | column of point i's pixel (-1 outside); counts[c, t] = points of
    # chunk c in tile t. One packed key instead of a pixel and a tile index: less traffic.
    n = x.shape[0]
    nx = ex.shape[0] - 1
    invx = nx / (ex[nx] - ex[0])
    invy = (ey.shape[0] - 1) / (ey[ey.shape[0] - 1] - ey[0])
    n_tx = ((nx - 1) >> shift_cols) + 1
    for c in prange(n_chunks):
        a = c * n // n_chunks
        b = (c + 1) * n // n_chunks
        row = counts[c]
        for i in range(a, b):
            ix = bin_index(x[i], ex, invx)
            iy = bin_index(y[i], ey, invy) if ix >= 0 else -1
            if iy < 0:
                key[i] = -1
            else:
                key[i] = (iy << bits) | ix
                row[(iy >> shift_rows) * n_tx + (ix >> shift_cols)] += 1


@njit(cache=True, nogil=True, parallel=True)
def _hist_scatter(key, w, nx, shift_rows, shift_cols, bits, offsets, order, order_w):
    # stable counting sort of the points' flat pixels into tiles (chunk by chunk, in input order)
    n = key.shape[0]
    n_chunks = offsets.shape[0]
    use_w = w.shape[0] == n
    n_tx = ((nx - 1) >> shift_cols) + 1
    mask = (1 << bits) - 1
    for c in prange(n_chunks):
        cur = offsets[c].copy()
        a = c * n // n_chunks
        b = (c + 1) * n // n_chunks
        for i in range(a, b):
            k = key[i]
            if k < 0:
                continue
            iy = k >> bits
            ix = k & mask
            t = (iy >> shift_rows) * n_tx + (ix >> shift_cols)
            p = cur[t]
            order[p] = iy * nx + ix
            if use_w:
                order_w[p] = w[i]
            cur[t] = p + 1


@njit(cache=True, nogil=True, parallel=True)
def _hist_fill(order, order_w, tile_start, groups, out_flat):
    # groups: runs of whole tiles holding about equal numbers of points, so that the threads'
    # shares stay even on clustered data
    use_w = order_w.shape[0] == order.shape[0]
    for g in prange(groups.shape[0] - 1):
        for p in range(tile_start[groups[g]], tile_start[groups[g + 1]]):
            if use_w:
                out_flat[order[p]] += order_w[p]
            else:
                out_flat[order[p]] += 1.0


def tile_layout(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Write offsets ``(n_chunks, n_tiles)`` and tile starts ``(n_tiles + 1,)`` of a counting sort
    whose ``counts[c, t]`` are the points of chunk ``c`` in tile ``t`` (tile-major order)."""
    flat = counts.T.ravel()
    starts = np.zeros(flat.size + 1, np.int64)
    np.cumsum(flat, out=starts[1:])
    offsets = np.ascontiguousarray(starts[:-1].reshape(counts.shape[1], counts.shape[0]).T)
    tile_start = np.append(starts[:-1:counts.shape[0]], starts[-1])
    return offsets, tile_start


def tile_groups(tile_start: np.ndarray, n_groups: int = N_CHUNKS) -> np.ndarray:
    """Bounds ``(n_groups + 1,)`` of runs of consecutive tiles holding about equal numbers of
    entries (``tile_start`` as :func:`tile_layout` gives it); independent of the thread count."""
    n = tile_start.shape[0] - 1
    targets = np.linspace(0, tile_start[-1], n_groups + 1)
    groups = np.minimum(np.searchsorted(tile_start, targets, side="left"), n)
    groups[0], groups[-1] = 0, n
    return np.maximum.accumulate(groups).astype(np.int64)


def n_tiles(shape: tuple[int, int], shift_rows: int, shift_cols: int) -> int:
    """Number of tiles of ``2**shift_rows`` x ``2**shift_cols`` pixels covering an image of ``shape``."""
    return (((shape[0] - 1) >> shift_rows) + 1) * (((shape[1] - 1) >> shift_cols) + 1)


def key_layout(shape: tuple[int, int]) -> tuple[type, int]:
    """dtype and bit shift of the packed ``(row << bits) | column`` pixel keys of an image:
    int32 with 16 bits when rows < 2**15 and columns <= 2**16, else int64 with 32 bits."""
    ny, nx = shape
    return (np.int32, 16) if ny < (1 << 15) and nx <= (1 << 16) else (np.int64, 32)


class Scratch:
    """Work arrays of the histogram passes, allocated once per render and reused by every block
    (fresh pages cost a page fault each)."""

    def __init__(self, n: int, shape: tuple[int, int], weighted: bool):
        self.key_type, self.bits = key_layout(shape)
        self.itype = np.int32 if shape[0] * shape[1] < 2**31 else np.int64
        self.key = np.empty(n, self.key_type)
        self.order = np.empty(n, self.itype)
        self.order_w = np.empty(n if weighted else 0, np.float64)


def hist_block(x, y, w, ex, ey, shift_rows: int, shift_cols: int, out: np.ndarray, scratch: Scratch | None = None) -> int:
    """Add one block of points (weights ``w`` or none: ``w.size == 0``) to ``out``; return how
    many fell inside the edges. ``scratch`` (a :class:`Scratch` for at least ``x.size`` points)
    is reused when given."""
    n = x.shape[0]
    if scratch is None:
        scratch = Scratch(n, out.shape, w.shape[0] > 0)
    n_chunks = max(1, min(N_CHUNKS, n))
    key = scratch.key[:n]
    counts = np.zeros((n_chunks, n_tiles(out.shape, shift_rows, shift_cols)), np.int64)
    _hist_index(x, y, ex, ey, shift_rows, shift_cols, scratch.bits, n_chunks, key, counts)
    offsets, tile_start = tile_layout(counts)
    inside = int(tile_start[-1])
    order = scratch.order[:inside]
    order_w = scratch.order_w[:inside] if w.shape[0] else scratch.order_w[:0]
    _hist_scatter(key, w, out.shape[1], shift_rows, shift_cols, scratch.bits, offsets, order, order_w)
    _hist_fill(order, order_w, tile_start, tile_groups(tile_start), out.reshape(-1))
    return inside
