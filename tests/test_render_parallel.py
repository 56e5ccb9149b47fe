"""The tiled parallel render kernels: same image for any thread count, equal to plain references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.special import erf

from correlate.render import gaussian_counts, grid_from_extent, histogram_counts
from correlate.render._histogram import tile_shape

TWO_THREADS = numba.config.NUMBA_NUM_THREADS >= 2


def _with_threads(n, f):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return f()
    finally:
        numba.set_num_threads(old)


def _grid(rng):
    # wide and tall enough for several tiles in both directions, pixel sizes labs use
    px = float(10 ** rng.uniform(0, 1.5))
    nx, ny = int(rng.integers(1100, 2600)), int(rng.integers(40, 140))
    x0, y0 = rng.uniform(-5e3, 5e3, 2)
    return grid_from_extent(px, (x0, x0 + nx * px, y0, y0 + ny * px))


@pytest.mark.parametrize("seed", range(3))
def test_histogram_equals_reference_for_any_thread_count(seed):
    rng = np.random.default_rng(seed)
    g = _grid(rng)
    lo_x, hi_x, lo_y, hi_y = g.extent
    n = int(rng.integers(20_000, 60_000))
    # some outside, some NaN, some on the closed far edges
    x = rng.uniform(lo_x - 50 * g.pixel_size[0], hi_x + 50 * g.pixel_size[0], n)
    y = rng.uniform(lo_y - 5 * g.pixel_size[1], hi_y + 5 * g.pixel_size[1], n)
    x[:7], y[7:14] = np.nan, hi_y
    w = rng.lognormal(0, 1, n)
    ex, ey = g.edges("x"), g.edges("y")
    ref, _, _ = np.histogram2d(y, x, bins=[ey, ex])
    one, k1 = _with_threads(1, lambda: histogram_counts(x, y, g))
    assert np.array_equal(one, ref) and k1 == int(ref.sum())
    # weighted: the reference adds the weights pixel by pixel in input order
    ok = (x >= ex[0]) & (x <= ex[-1]) & (y >= ey[0]) & (y <= ey[-1])
    ix = np.clip(np.searchsorted(ex, x[ok], side="right") - 1, 0, ex.size - 2)
    iy = np.clip(np.searchsorted(ey, y[ok], side="right") - 1, 0, ey.size - 2)
    wref = np.zeros(g.shape)
    np.add.at(wref, (iy, ix), w[ok])
    w1, _ = _with_threads(1, lambda: histogram_counts(x, y, g, weights=w))
    assert np.array_equal(w1, wref)
    if TWO_THREADS:
        two, k2 = _with_threads(2, lambda: histogram_counts(x, y, g))
        w2, _ = _with_threads(2, lambda: histogram_counts(x, y, g, weights=w))
        assert np.array_equal(two, one) and k2 == k1
        assert np.array_equal(w2, w1)  # bit-identical, not merely close


def _gauss_reference(x, y, sx, sy, w, g, n_sigma):
    ex, ey = g.edges("x"), g.edges("y")
    out = np.zeros(g.shape)
    px, py = g.pixel_size
    for xi, yi, si, ti, wi in zip(x, y, sx, sy, w):  # reference of a few hundred points
        i0 = max(int(np.floor((xi - n_sigma * si - ex[0]) / px)), 0)
        i1 = min(int(np.floor((xi + n_sigma * si - ex[0]) / px)), g.shape[1] - 1)
        j0 = max(int(np.floor((yi - n_sigma * ti - ey[0]) / py)), 0)
        j1 = min(int(np.floor((yi + n_sigma * ti - ey[0]) / py)), g.shape[0] - 1)
        if i1 < i0 or j1 < j0:
            continue
        bx = 0.5 * np.diff(erf((ex[i0 : i1 + 2] - xi) / (np.sqrt(2) * si)))
        by = 0.5 * np.diff(erf((ey[j0 : j1 + 2] - yi) / (np.sqrt(2) * ti)))
        out[j0 : j1 + 1, i0 : i1 + 1] += wi * np.outer(by, bx)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_equals_reference_for_any_thread_count(seed):
    rng = np.random.default_rng(100 + seed)
    g = _grid(rng)
    lo_x, hi_x, lo_y, hi_y = g.extent
    n = 400
    x = rng.uniform(lo_x - 20 * g.pixel_size[0], hi_x, n)
    y = rng.uniform(lo_y - 20 * g.pixel_size[1], hi_y + 10 * g.pixel_size[1], n)
    # precisions from a fraction of a pixel to footprints wider than a tile (crossing tiles)
    sx = g.pixel_size[0] * 10 ** rng.uniform(-1, 1.7, n)
    sy = g.pixel_size[1] * 10 ** rng.uniform(-1, 1.7, n)
    w = rng.uniform(0.5, 2, n)
    n_sigma = float(rng.uniform(2.5, 5))
    rows, cols = tile_shape(g.shape, 2 * n_sigma * np.median(np.minimum(sx / g.pixel_size[0], sy / g.pixel_size[1])) + 1)
    assert 2**rows < g.shape[0] or 2**cols < g.shape[1]  # the test crosses tiles
    ref = _gauss_reference(x, y, sx, sy, w, g, n_sigma)
    one = _with_threads(1, lambda: gaussian_counts(x, y, sx, sy, g, weights=w, n_sigma=n_sigma))
    # the tabulated erf is good to ~5e-16; each pixel sums at most n terms <= w
    np.testing.assert_allclose(one, ref, rtol=0, atol=n * 2e-15)
    assert abs(one.sum() - ref.sum()) < 1e-10 * n
    if TWO_THREADS:
        two = _with_threads(2, lambda: gaussian_counts(x, y, sx, sy, g, weights=w, n_sigma=n_sigma))
        assert np.array_equal(two, one)


def test_tabulated_erf_matches_scipy():
    from numba import njit

    from correlate.render._gauss_kernels import _TABLE, erf_fast

    @njit
    def ev(z, tab):
        out = np.empty_like(z)
        for i in range(z.size):
            out[i] = erf_fast(z[i], tab)
        return out

    z = np.random.default_rng(5).uniform(-9, 9, 200_000)
    assert np.max(np.abs(ev(z, _TABLE) - erf(z))) < 2e-15
    assert ev(np.array([-np.inf, 0.0, np.inf]), _TABLE).tolist() == [-1.0, 0.0, 1.0]


def test_out_must_be_addable():
    from correlate.errors import ElementError

    g = grid_from_extent(1.0, (0, 10, 0, 10))
    with pytest.raises(ElementError, match="C-contiguous float64"):
        histogram_counts(np.ones(3), np.ones(3), g, out=np.zeros((10, 10), np.float32))
    with pytest.raises(ElementError, match="one value per point"):
        histogram_counts(np.ones(3), np.ones(3), g, weights=np.ones(2))
    with pytest.raises(ElementError, match="not finite"):
        gaussian_counts(np.ones(2), np.ones(2), np.array([1.0, np.nan]), np.ones(2), g)


def test_blocks_do_not_change_the_image(monkeypatch):
    from correlate.render import _gaussian, _histogram

    rng = np.random.default_rng(9)
    g = _grid(rng)
    lo_x, hi_x, lo_y, hi_y = g.extent
    n = 3000
    x, y = rng.uniform(lo_x, hi_x, n), rng.uniform(lo_y, hi_y, n)
    s = g.pixel_size[0] * rng.uniform(0.3, 5, n)
    w = rng.uniform(0.5, 2, n)
    whole_h = histogram_counts(x, y, g, weights=w)[0]
    whole_g = gaussian_counts(x, y, s, s, g, weights=w)
    monkeypatch.setattr(_histogram, "BLOCK", 257)
    monkeypatch.setattr(_gaussian, "BLOCK", 257)
    assert np.array_equal(histogram_counts(x, y, g, weights=w)[0], whole_h)
    assert np.array_equal(gaussian_counts(x, y, s, s, g, weights=w), whole_g)


@pytest.mark.parametrize("shape", [(40_000, 3), (2, 70_000)])
def test_histogram_on_images_too_tall_or_wide_for_16_bit_keys(shape):
    # rows >= 2**15 or columns > 2**16 take the 64-bit pixel keys
    from correlate.render._kernels import key_layout

    assert key_layout(shape)[1] == 32
    rng = np.random.default_rng(sum(shape))
    px = float(10 ** rng.uniform(-0.5, 1.5))
    g = grid_from_extent(px, (0.0, shape[1] * px, 0.0, shape[0] * px))
    assert g.shape == shape
    lo_x, hi_x, lo_y, hi_y = g.extent
    n = 50_000
    x = rng.uniform(lo_x - px, hi_x + px, n)
    y = rng.uniform(lo_y - px, hi_y + px, n)
    ref, _, _ = np.histogram2d(y, x, bins=[g.edges("y"), g.edges("x")])
    one, k1 = _with_threads(1, lambda: histogram_counts(x, y, g))
    assert np.array_equal(one, ref) and k1 == int(ref.sum())
    if TWO_THREADS:
        assert np.array_equal(_with_threads(2, lambda: histogram_counts(x, y, g))[0], one)


def test_clustered_points_same_image_for_any_thread_count():
    # most points in a few clusters: the fill's tile groups are cut by point count
    from correlate.render._kernels import tile_groups

    rng = np.random.default_rng(21)
    g = _grid(rng)
    lo_x, hi_x, lo_y, hi_y = g.extent
    n = 30_000
    centres = np.column_stack([rng.uniform(lo_x, hi_x, 3), rng.uniform(lo_y, hi_y, 3)])
    pick = rng.integers(0, 3, n)
    spread = 3 * g.pixel_size[0]
    x = centres[pick, 0] + rng.normal(0, spread, n)
    y = centres[pick, 1] + rng.normal(0, spread, n)
    s = g.pixel_size[0] * rng.uniform(0.3, 3, n)
    starts = np.concatenate([[0], np.cumsum(rng.integers(0, 50, 200) * (rng.random(200) < 0.1))])
    groups = tile_groups(starts, 16)
    assert groups[0] == 0 and groups[-1] == starts.size - 1 and np.all(np.diff(groups) >= 0)
    h1 = _with_threads(1, lambda: histogram_counts(x, y, g)[0])
    g1 = _with_threads(1, lambda: gaussian_counts(x, y, s, s, g))
    ok = (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y)
    assert h1.sum() == ok.sum()
    if TWO_THREADS:
        assert np.array_equal(_with_threads(2, lambda: histogram_counts(x, y, g)[0]), h1)
        assert np.array_equal(_with_threads(2, lambda: gaussian_counts(x, y, s, s, g)), g1)
