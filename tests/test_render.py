"""Rendering localizations to images: exact counts, Gaussian integrals, pixel placement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.elements import make_image, origin, pixel_size, validate_image
from correlate.errors import ElementError
from correlate.render import (
    Grid,
    channel_colors,
    composite,
    grid_from_extent,
    render,
    render_gaussian,
    render_histogram,
)


def _locs(x, y, **cols):
    return pd.DataFrame({"x": np.atleast_1d(np.asarray(x, float)), "y": np.atleast_1d(np.asarray(y, float)), **cols})


def _where(img):
    a = np.asarray(img.values)
    nz = np.argwhere(a > 0)
    return [tuple(int(v) for v in r) for r in nz]


# ---------------------------------------------------------------------------------------------
# histogram: exact counts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extent", [(0.0, 1000.0, 0.0, 500.0), (0.0, 1003.7, -20.0, 487.1)])
def test_histogram_sums_to_n_including_edges(extent):
    rng = np.random.default_rng(1)
    x0, x1, y0, y1 = extent
    n = 20_000
    x = rng.uniform(x0, x1, n)
    y = rng.uniform(y0, y1, n)
    # points exactly on every edge and corner of the extent
    ex = np.array([x0, x1, x0, x1, x0, x1, 0.5 * (x0 + x1), 0.5 * (x0 + x1)])
    ey = np.array([y0, y0, y1, y1, 0.5 * (y0 + y1), 0.5 * (y0 + y1), y0, y1])
    df = _locs(np.r_[x, ex], np.r_[y, ey])
    img = render_histogram(df, pixel_size_nm=10.0, extent_nm=extent)
    assert float(img.sum()) == n + len(ex)
    assert img.attrs["n_inside"]["localizations"] == n + len(ex)
    # the grid covers the extent with whole pixels, the last one partial if need be
    px = pixel_size(img)
    assert px == {"y": 10.0, "x": 10.0}
    assert img.sizes["x"] == int(np.ceil((x1 - x0) / 10.0))
    assert img.sizes["y"] == int(np.ceil((y1 - y0) / 10.0))
    validate_image(img)
    assert img.attrs["modality"] == "smlm"
    assert img.attrs["value_unit"] == "localizations per pixel"


def test_histogram_default_extent_keeps_every_point():
    rng = np.random.default_rng(2)
    df = _locs(rng.normal(0, 300, 5000), rng.normal(50, 100, 5000))
    img = render_histogram(df, pixel_size_nm=7.3)
    assert float(img.sum()) == 5000


def test_histogram_keeps_extreme_points_for_any_extent():
    # the grid's first and last edges, as computed in floating point, must enclose lo and hi
    rng = np.random.default_rng(7)
    lo = rng.uniform(-1e4, 1e4, 3000)
    hi = lo + rng.uniform(0, 1e3, 3000)
    px = 10 ** rng.uniform(-1, 2, 3000)
    for a, b, p in zip(lo, hi, px):
        g = grid_from_extent(float(p), (a, b, a, b))
        e = g.edges("x")
        assert e[0] <= a and e[-1] >= b, (a, b, p)
    # the case that once lost a localization (0.9308888478293642 + 5 - 5 > 0.9308888478293642)
    v = [0.9308888478293642, 150.0]
    img = render_histogram(_locs(v, v), pixel_size_nm=10.0)
    assert float(img.sum()) == 2


def test_histogram_matches_numpy_histogram2d_on_whole_pixels():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 640, 10_000), rng.uniform(0, 320, 10_000)
    x[:5] = 640.0  # on the far edge: numpy closes the last bin too
    img = render_histogram(_locs(x, y), pixel_size_nm=20.0, extent_nm=(0, 640, 0, 320))
    ref, _, _ = np.histogram2d(y, x, bins=[np.arange(0, 321, 20.0), np.arange(0, 641, 20.0)])
    np.testing.assert_array_equal(np.asarray(img.values), ref)


def test_histogram_outside_points_are_dropped_and_reported():
    df = _locs([5.0, 15.0, -100.0, 1e6], [5.0, 5.0, 5.0, 5.0])
    img = render_histogram(df, pixel_size_nm=10.0, origin_nm=(5.0, 5.0), shape=(2, 2))
    assert float(img.sum()) == 2
    assert img.attrs["n_localizations"]["localizations"] == 4
    assert img.attrs["n_inside"]["localizations"] == 2


def test_histogram_weights():
    df = _locs([1.0, 2.0, 12.0], [1.0, 1.0, 1.0], photons=[10.0, 20.0, 5.0])
    img = render_histogram(df, pixel_size_nm=10.0, extent_nm=(0, 20, 0, 10), weights="photons")
    np.testing.assert_allclose(np.asarray(img.values), [[30.0, 5.0]])


# ---------------------------------------------------------------------------------------------
# pixel convention: single localizations at known places
# ---------------------------------------------------------------------------------------------
def test_single_localization_center_convention():
    # origin = centre of pixel 0 (NGFF): pixel i covers [(i - 0.5) * 10, (i + 0.5) * 10)
    kw = dict(pixel_size_nm=10.0, origin_nm=(0.0, 0.0), shape=(5, 5))
    cases = {
        (0.0, 0.0): (0, 0),
        (4.999, -5.0): (0, 0),       # low edge of pixel 0 belongs to it
        (5.0, 0.0): (0, 1),          # a pixel edge goes to the pixel above
        (20.0, 30.0): (3, 2),        # centre of pixel (row 3, col 2)
        (44.0, 45.0): (4, 4),        # far edge of the grid is closed
    }
    for (x, y), rc in cases.items():
        img = render_histogram(_locs(x, y), **kw)
        assert _where(img) == [rc], (x, y)
    assert origin(img) == {"y": 0.0, "x": 0.0}
    for x, y in [(-5.001, 0.0), (0.0, 45.001)]:
        img = render_histogram(_locs(x, y), **kw)
        assert float(img.sum()) == 0, (x, y)


def test_single_localization_corner_convention():
    # origin = low corner of pixel 0: pixel i covers [i * 10, (i + 1) * 10)
    kw = dict(pixel_size_nm=10.0, origin_nm=(0.0, 0.0), shape=(5, 5), convention="corner")
    cases = {
        (0.0, 0.0): (0, 0),
        (9.999, 9.999): (0, 0),
        (10.0, 0.0): (0, 1),
        (25.0, 35.0): (3, 2),
        (50.0, 50.0): (4, 4),
    }
    for (x, y), rc in cases.items():
        img = render_histogram(_locs(x, y), **kw)
        assert _where(img) == [rc], (x, y)
    # the element itself is NGFF: coordinates at pixel centres
    assert origin(img) == {"y": 5.0, "x": 5.0}
    assert float(render_histogram(_locs(-0.001, 1.0), **kw).sum()) == 0


def test_render_on_like_image_grid():
    em = make_image(np.zeros((40, 60)), pixel_size_nm=2.0, origin_nm={"y": 100.0, "x": -50.0}, modality="em")
    # column 7 is centred at -50 + 14 = -36, row 9 at 118
    img = render_histogram(_locs([-36.0, -35.01], [118.0, 118.99]), like=em)
    assert img.shape == em.shape
    assert _where(img) == [(9, 7)]
    np.testing.assert_array_equal(img.coords["x"].values, em.coords["x"].values)
    np.testing.assert_array_equal(img.coords["y"].values, em.coords["y"].values)


def test_extent_pixel_count_covers_the_far_edge():
    g = grid_from_extent(0.1, (0.0, 0.3, 0.0, 0.7))  # 0.3 / 0.1 = 2.9999999999999996
    assert g.shape == (7, 3)
    for hi in (100.0000001, 0.3, 1e6 + 0.1):
        g = grid_from_extent(0.1 if hi < 1 else 10.0, (0.0, hi, 0.0, 10.0))
        assert g.extent[1] >= hi
        img = render_histogram(_locs([0.0, hi], [0.0, 10.0]), like=g)
        assert float(img.sum()) == 2
    assert grid_from_extent(10.0, (0.0, 100.0000001, 0.0, 10.0)).shape == (1, 11)


# ---------------------------------------------------------------------------------------------
# Gaussian render
# ---------------------------------------------------------------------------------------------
def test_gaussian_integrates_to_n_well_inside():
    rng = np.random.default_rng(4)
    n = 3000
    df = _locs(rng.uniform(200, 800, n), rng.uniform(200, 800, n), precision=rng.uniform(3.0, 25.0, n))
    img = render_gaussian(df, pixel_size_nm=5.0, extent_nm=(0, 1000, 0, 1000))
    assert abs(float(img.sum()) - n) / n < 1e-3
    # far from a delta: the image is not just a histogram
    assert float(img.max()) < 0.9 * float(render_histogram(df, pixel_size_nm=5.0, extent_nm=(0, 1000, 0, 1000)).max())


def test_gaussian_pixel_values_are_exact_integrals():
    from scipy.special import erf

    s, px = 8.0, 10.0
    df = _locs(50.0, 50.0, precision=s)  # at the centre of pixel (5, 5)
    img = np.asarray(render_gaussian(df, pixel_size_nm=px, origin_nm=(0.0, 0.0), shape=(11, 11)).values)
    c = erf(px / 2 / (np.sqrt(2) * s))
    assert img[5, 5] == pytest.approx(c * c, rel=1e-12)
    side = 0.5 * (erf(1.5 * px / (np.sqrt(2) * s)) - erf(0.5 * px / (np.sqrt(2) * s)))
    assert img[5, 6] == pytest.approx(c * side, rel=1e-12)
    assert img[4, 5] == pytest.approx(c * side, rel=1e-12)


def test_gaussian_anisotropic_and_edge_mass():
    df = _locs(0.0, 200.0, precision_x=5.0, precision_y=20.0)
    # x exactly on the low edge of the grid: half the mass is outside
    img = render_gaussian(df, pixel_size_nm=2.0, extent_nm=(0, 400, 0, 400))
    assert float(img.sum()) == pytest.approx(0.5, abs=1e-6)
    a = np.asarray(img.values)
    prof_y = a.sum(axis=1)
    prof_x = a.sum(axis=0)
    yc = img.coords["y"].values
    sd_y = np.sqrt(np.sum(prof_y * (yc - 200.0) ** 2) / prof_y.sum())
    assert sd_y == pytest.approx(np.sqrt(20.0**2 + 2.0**2 / 12), rel=0.01)
    assert prof_x[0] > prof_x[3] > prof_x[6]


def test_gaussian_centroid_at_subpixel_position():
    x, y = 123.37, 88.81
    img = render_gaussian(_locs(x, y, precision=6.0), pixel_size_nm=3.0, extent_nm=(0, 300, 0, 300))
    a = np.asarray(img.values)
    X, Y = np.meshgrid(img.coords["x"].values, img.coords["y"].values)
    assert np.sum(a * X) / a.sum() == pytest.approx(x, abs=1e-3)
    assert np.sum(a * Y) / a.sum() == pytest.approx(y, abs=1e-3)


def test_gaussian_zero_precision_is_a_delta_in_the_right_pixel():
    img = render_gaussian(_locs(25.0, 35.0, precision=0.0), pixel_size_nm=10.0, origin_nm=(0, 0), shape=(5, 5), convention="corner")
    assert _where(img) == [(3, 2)]
    assert float(img.sum()) == pytest.approx(1.0)


def test_gaussian_missing_or_bad_precision_raises():
    with pytest.raises(ElementError, match="precision"):
        render_gaussian(_locs(1.0, 1.0), pixel_size_nm=1.0)
    with pytest.raises(ElementError, match="precision"):
        render_gaussian(_locs([1.0, 2.0], [1.0, 1.0], precision=[1.0, np.nan]), pixel_size_nm=1.0)
    img = render_gaussian(_locs(1.0, 1.0), pixel_size_nm=1.0, extent_nm=(-20, 20, -20, 20), precision=3.0)
    assert float(img.sum()) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# channels and composites
# ---------------------------------------------------------------------------------------------
def test_per_channel_from_mapping_and_split_by():
    rng = np.random.default_rng(5)
    a = _locs(rng.uniform(0, 100, 300), rng.uniform(0, 100, 300), precision=4.0)
    b = _locs(rng.uniform(0, 100, 120), rng.uniform(0, 100, 120), precision=4.0)
    img = render_histogram({"antibody": a, "corona": b}, pixel_size_nm=5.0, extent_nm=(0, 100, 0, 100))
    assert img.dims == ("c", "y", "x")
    assert list(img.coords["c"].values) == ["antibody", "corona"]
    assert float(img.sel(c="antibody").sum()) == 300
    assert float(img.sel(c="corona").sum()) == 120
    both = pd.concat([a.assign(channel=0), b.assign(channel=1)], ignore_index=True)
    img2 = render(both, method="gaussian", pixel_size_nm=5.0, extent_nm=(-50, 150, -50, 150), split_by="channel")
    assert list(img2.coords["c"].values) == ["0", "1"]
    np.testing.assert_allclose(img2.sum(dim=("y", "x")).values, [300, 120], rtol=1e-3)


def test_composite_colours_channels():
    img = make_image(np.stack([np.eye(4), np.eye(4)[::-1]]), dims=("c", "y", "x"), channel_names=["a", "b"], pixel_size_nm=1.0, modality="smlm")
    rgb = composite(img, colors={"a": "magenta", "b": "lime"})
    assert rgb.shape == (4, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], [1, 0, 1])  # only channel a
    np.testing.assert_allclose(rgb[0, 3], [0, 1, 0])  # only channel b
    np.testing.assert_allclose(rgb[1, 3], [0, 0, 0])
    rgba = composite(img, alpha=True)
    assert rgba.shape == (4, 4, 4) and rgba[1, 3, 3] == 0 and rgba[0, 0, 3] == 1
    assert channel_colors(["x", "y"]) == {"x": (1.0, 0.0, 1.0), "y": (0.0, 1.0, 0.0)}


def test_render_errors_name_the_problem():
    with pytest.raises(ElementError, match="pixel_size_nm"):
        render_histogram(_locs(1.0, 1.0))
    with pytest.raises(ElementError, match="split"):
        render_histogram(_locs(1.0, 1.0), pixel_size_nm=1.0, split_by="nope")
    with pytest.raises(ElementError, match="method"):
        render(_locs(1.0, 1.0), method="splat", pixel_size_nm=1.0)
    with pytest.raises(ElementError, match="shape"):
        render_histogram(_locs(1.0, 1.0), pixel_size_nm=1.0, origin_nm=(0, 0))


def test_grid_crop():
    g = Grid(origin=(0.0, 0.0), pixel_size=(10.0, 10.0), shape=(10, 20))
    sub = g.crop((22.0, 31.0, 61.0, 48.0))
    assert sub.origin == (20.0, 30.0) and sub.shape == (3, 5)
    rows, cols = g.index_slices(sub)
    assert (rows, cols) == (slice(3, 6), slice(2, 7))


def test_rendered_image_stores_in_a_scene(tmp_path):
    scene_mod = pytest.importorskip("correlate.scene")
    img = render_histogram(_locs([1.0, 2.0, 30.0], [1.0, 2.0, 3.0]), pixel_size_nm=4.0, name="render")
    scene = scene_mod.Scene.create(tmp_path / "s.ome.zarr")
    scene.add("smlm_render", img)
    back = scene_mod.Scene.open(tmp_path / "s.ome.zarr").get("smlm_render")
    np.testing.assert_array_equal(np.asarray(back.values), np.asarray(img.values))
    assert back.attrs["value_unit"] == "localizations per pixel"
    assert back.attrs["modality"] == "smlm"
