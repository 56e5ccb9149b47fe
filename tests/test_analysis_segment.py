"""Segmentation and morphology: synthetic images with known geometry, and the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from correlate.analysis import (
    feret_diameters,
    level_afm,
    measure_particles,
    segment_em,
    segment_particles,
    size_summary,
)
from correlate.elements import make_image


def _em(particles, gold=(), *, n=400, px=2.0, mu=0.006, mu_gold=0.05, psf_px=1.2, dose=400.0,
        gradient=0.1, seed=0, origin=(100.0, -50.0)):
    """A small TEM-like micrograph: I = dose * background * exp(-mu * projected thickness)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    X = origin[0] + xx * px
    Y = origin[1] + yy * px
    att = np.zeros((n, n))
    for (x, y, d) in particles:
        att += mu * 2 * np.sqrt(np.clip((d / 2) ** 2 - (X - x) ** 2 - (Y - y) ** 2, 0, None))
    for (x, y, d) in gold:
        att += mu_gold * 2 * np.sqrt(np.clip((d / 2) ** 2 - (X - x) ** 2 - (Y - y) ** 2, 0, None))
    bg = 1.0 + gradient * (xx / n - 0.5) + 0.5 * gradient * (yy / n - 0.5)
    img = ndi.gaussian_filter(dose * bg * np.exp(-att), psf_px)
    img = img + rng.standard_normal(img.shape) * np.sqrt(img)
    return make_image(img.astype(np.float32), pixel_size_nm=px, origin_nm={"x": origin[0], "y": origin[1]},
                      modality="em", name="em")


def test_segment_em_synthetic_sizes_positions_gold_edge():
    parts = [(300.0, 150.0, 80.0), (500.0, 400.0, 50.0), (250.0, 500.0, 120.0),
             # a touching pair
             (700.0, 150.0, 70.0), (770.0, 150.0, 70.0),
             # cut by the left edge (x origin 100)
             (105.0, 650.0, 90.0)]
    gold = [(650.0, 600.0, 40.0), (450.0, 250.0, 30.0)]
    img = _em(parts, gold)
    seg = segment_em(img, psf_sigma_nm=2.4)
    assert seg.labels.dtype == np.int32
    assert seg.labels.dims == ("y", "x")
    np.testing.assert_array_equal(seg.labels.coords["x"], img.coords["x"])
    df = seg.measure()
    assert len(df) == len(parts)  # gold excluded, touching pair split
    assert len(seg.fiducials) == 2
    d, i = cKDTree(np.array(parts)[:, :2]).query(df[["x", "y"]].to_numpy())
    truth_d = np.array(parts)[i, 2]
    inner = ~df["edge"].to_numpy()
    assert set(i[~inner]) == {5}  # the cut particle, and only it, is flagged edge
    assert np.all(d[inner] < 1.5)  # centroids in nm, pixel-centre convention
    err = df["equivalent_diameter_nm"].to_numpy()[inner] - truth_d[inner]
    assert np.median(np.abs(err)) < 2.0 and np.abs(err).max() < 4.0, err
    # spheres: Feret min ~ max ~ diameter (pixel squares add up to ~1 px)
    np.testing.assert_allclose(df["feret_max_nm"].to_numpy()[inner], truth_d[inner], atol=5.0)
    np.testing.assert_allclose(df["feret_min_nm"].to_numpy()[inner], truth_d[inner], atol=5.0)
    assert np.all(df["circularity"].to_numpy()[inner] > 0.85)
    assert np.all(df["eccentricity"].to_numpy()[inner] < 0.45)
    # fiducial positions recovered
    dg, _ = cKDTree(np.array(gold)[:, :2]).query(seg.fiducials[["x", "y"]].to_numpy())
    assert np.all(dg < 2.0)
    # without the PSF only our smoothing is corrected: sizes come out slightly small
    df0 = segment_em(img).measure()
    err0 = df0["equivalent_diameter_nm"].to_numpy()[inner] - truth_d[inner]
    assert np.mean(err0) < np.mean(err) - 0.2
    assert np.median(np.abs(err0)) < 3.0
    # keeping gold labels them as particles
    seg2 = segment_em(img, psf_sigma_nm=2.4, exclude_fiducials=False)
    assert seg2.n_particles == len(parts) + len(gold)


def test_segment_em_bright_particles_and_no_particles():
    parts = [(300.0, 300.0, 80.0), (600.0, 500.0, 60.0)]
    img = _em(parts, seed=2)
    inverted = img.copy(data=(2 * float(img.mean()) - img).data)
    seg = segment_em(inverted, polarity="bright", contrast="linear", psf_sigma_nm=2.4)
    assert seg.n_particles == 2
    seg_auto = segment_particles(inverted, contrast="linear")
    assert seg_auto.info["polarity"] == "bright"
    empty = _em([], seed=3)
    s0 = segment_em(empty)
    assert s0.n_particles == 0 and int(s0.labels.max()) == 0
    df0 = s0.measure()
    assert len(df0) == 0 and "equivalent_diameter_nm" in df0.columns


def test_feret_and_pixel_geometry():
    lab = np.zeros((40, 60), np.int32)
    lab[5:15, 10:40] = 1  # 10 x 30 px rectangle
    yy, xx = np.mgrid[:40, :60]
    lab[(yy - 28) ** 2 + (xx - 30) ** 2 <= 8**2] = 2
    fmin, fmax = feret_diameters(lab)
    assert fmin[0] == pytest.approx(10.0)
    assert fmax[0] == pytest.approx(np.hypot(10, 30))
    assert fmin[1] == pytest.approx(17.0, abs=0.6)  # disc of radius 8 px on pixel squares
    df = measure_particles(lab, pixel_size_nm=2.0, origin_nm=(1.0, 1.0))
    r = df.set_index("particle_id").loc[1]
    assert r["area_nm2"] == pytest.approx(300 * 4.0)
    assert r["x"] == pytest.approx(1.0 + 2.0 * 24.5)  # mean of pixel centres 10..39
    assert r["y"] == pytest.approx(1.0 + 2.0 * 9.5)
    assert r["feret_min_nm"] == pytest.approx(20.0)
    assert r["eccentricity"] > 0.9
    s = size_summary([10, 20, 30, 40, 50])
    assert s["D50_nm"] == 30 and s["n"] == 5
    assert s["CV"] == pytest.approx(np.std([10, 20, 30, 40, 50], ddof=1) / 30)
    assert s["PDI"] == pytest.approx(s["CV"] ** 2)


def test_level_afm_removes_tilt_and_line_offsets():
    rng = np.random.default_rng(0)
    n = 128
    yy, xx = np.mgrid[:n, :n]
    h = 0.05 * xx - 0.02 * yy + 3.0 + rng.normal(0, 0.5, n)[:, None] + rng.normal(0, 0.1, (n, n))
    bump = 20.0 * np.exp(-((xx - 64) ** 2 + (yy - 64) ** 2) / (2 * 6.0**2))
    mask = bump > 0.5
    lev = level_afm(h + bump, mask=mask)
    assert np.std(lev[~mask]) < 0.12
    assert lev[64, 64] == pytest.approx(20.0, abs=0.4)


def _match(df, truth, xy):
    d, i = cKDTree(truth[["x", "y"]].to_numpy()).query(xy)
    return d, i


def _em_figures(seed):
    from correlate.datasets import SampleConfig, simulate_sample

    s = simulate_sample(SampleConfig.small(seed=seed, field_nm=2000.0, n_particles=12, n_fiducials=6,
                                           make_sim=False, make_afm=False, make_smlm=False))
    # no PSF given: only our own smoothing is corrected for (the microscope blur is unknown)
    seg = segment_particles(s.em)
    df = seg.measure()
    tp = s.truth.particles
    d, i = _match(df, tp, df[["x", "y"]].to_numpy())
    matched = d < 0.25 * tp["diameter_nm"].to_numpy()[i]
    # recall: true particles >= 40 nm not cut by the edge
    want = (~tp["edge"].to_numpy()) & (tp["diameter_nm"].to_numpy() >= 40)
    found = np.zeros(len(tp), bool)
    found[i[matched]] = True
    recall = (found & want).sum() / max(want.sum(), 1)
    inner = ~df["edge"].to_numpy()
    precision = (matched & inner).sum() / max(inner.sum(), 1)
    ok = matched & inner & want[i]
    err = df["equivalent_diameter_nm"].to_numpy()[ok] - tp["diameter_nm"].to_numpy()[i[ok]]
    fid_d, _ = cKDTree(s.truth.fiducials[["x", "y"]].to_numpy()).query(seg.fiducials[["x", "y"]].to_numpy()) \
        if len(seg.fiducials) else (np.zeros(0), None)
    return recall, precision, err, len(seg.fiducials), len(s.truth.fiducials), fid_d


def _check_em(seed):
    recall, precision, err, nf, nf_true, fid_d = _em_figures(seed)
    assert recall >= 0.98, recall
    assert precision >= 0.98, precision
    assert np.median(np.abs(err)) <= 2.0, err
    assert np.percentile(np.abs(err), 95) <= 5.0, err
    assert nf == nf_true and np.all(fid_d < 3.0)
    return err


def test_segment_em_simulator_one_seed():
    _check_em(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_segment_em_simulator_seeds(seed):
    _check_em(seed)


def _check_afm(seed):
    from correlate.datasets import SampleConfig, simulate_sample

    s = simulate_sample(SampleConfig.small(seed=seed, make_sim=False, make_em=False, make_smlm=False))
    # gold beads are excluded where they are (the landmarks a registration would pair), not by shape
    gold = s.truth.fiducials[["x_afm", "y_afm"]].dropna().to_numpy()
    seg = segment_particles(s.afm, exclude_at=gold)
    df = seg.measure()
    assert {"height_max_nm", "height_mean_nm", "volume_nm3"} <= set(df.columns)
    tp = s.truth.particles
    if not tp["in_afm"].any():
        pytest.skip(f"seed {seed}: no particle wholly inside the AFM region")
    xy = s.truth.transforms["afm"].apply(df[["x", "y"]].to_numpy())
    d, i = cKDTree(tp[["x", "y"]].to_numpy()).query(xy)
    matched = d < 0.3 * tp["diameter_nm"].to_numpy()[i]
    # every particle wholly inside the AFM region is found; no gold bead or noise blob labelled
    assert set(np.flatnonzero(tp["in_afm"].to_numpy())) <= set(i[matched])
    assert (~matched & ~df["edge"].to_numpy()).sum() == 0
    # heights of particles wider than the tip (8 nm radius), apex inside the region
    ok = matched & tp["in_afm"].to_numpy()[i] & (tp["diameter_nm"].to_numpy()[i] > 2 * 8.0)
    err = df["height_max_nm"].to_numpy()[ok] - tp["height_nm"].to_numpy()[i[ok]]
    assert np.median(np.abs(err)) <= 1.0, err
    assert np.all(df["volume_nm3"].to_numpy()[ok] > 0)
    return err


def test_segment_afm_simulator_heights():
    _check_afm(1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 2, 3, 4, 5, 6])
def test_segment_afm_simulator_seeds(seed):
    _check_afm(seed)


def _assert_polarity(images):
    from correlate.analysis._segment_em import _auto_polarity

    for what, em in images.items():
        raw = np.asarray(em.values, float)
        assert _auto_polarity(raw) == "dark", what
        assert _auto_polarity(raw.max() + raw.min() - raw) == "bright", what


def test_auto_polarity_from_sparse_particles():
    """Particles covering under 1 % of the field decide the polarity (a percentile tail of the raw
    pixels did not: seed 943412 was read as bright and gave no particle); inverted, bright."""
    from correlate.datasets import SampleConfig, simulate_sample

    seeds = [943412, int(np.random.default_rng().integers(0, 1 << 20))]
    _assert_polarity({s: simulate_sample(SampleConfig.small(seed=s)).em for s in seeds})


@pytest.mark.slow
def test_auto_polarity_over_randomized_acquisitions():
    """The same over 1-4 nm pixels and 30-150 nm gold (family seed 115, 1.2 nm pixels, defeats a
    background scale fixed in pixels)."""
    from correlate.datasets import random_acquisition

    seeds = [115, *np.random.default_rng().choice(np.arange(100, 132), 3, replace=False)]
    images = {}
    for seed in seeds:
        a = random_acquisition(int(seed))
        images[f"family {seed}"] = a.em if hasattr(a, "em") else a.sample.em
    _assert_polarity(images)
