"""Tests of the simulated correlative sample (correlate.datasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.datasets import SampleConfig, mortensen_precision, simulate_sample
from correlate.errors import CorrelateError
from correlate.elements import pixel_size, validate_image, validate_localizations
from correlate.transforms import Affine, Identity

DRIFT = dict(linear_nm=60.0, oscillation_nm=20.0)
CHROM = dict(offset_nm=(15.0, -10.0), scale=1.004)


@pytest.fixture(scope="module")
def sample():
    return simulate_sample(SampleConfig.small(seed=0, drift=DRIFT, chromatic=CHROM))


@pytest.fixture(scope="module")
def smlm_only():
    """Many molecules, no images: for blinking and counting statistics."""
    return simulate_sample(
        SampleConfig(
            seed=5, field_nm=6000, n_particles=150, n_fiducials=6, n_frames=3000,
            dark_frames_mean=100.0, make_em=False, make_sim=False, make_afm=False,
        )
    )


def test_determinism():
    cfg = SampleConfig.small(seed=3, field_nm=1500, n_particles=5, n_fiducials=4, n_frames=200,
                             afm_field_nm=800, make_sim=False)
    a = simulate_sample(cfg)
    b = simulate_sample(cfg)
    np.testing.assert_array_equal(a.em.values, b.em.values)
    np.testing.assert_array_equal(a.afm.values, b.afm.values)
    for k in a.smlm:
        pd.testing.assert_frame_equal(a.smlm[k], b.smlm[k])
    pd.testing.assert_frame_equal(a.truth.particles, b.truth.particles)
    c = simulate_sample(cfg.replace(seed=4))
    assert not np.allclose(c.truth.particles["x"].to_numpy()[:3], a.truth.particles["x"].to_numpy()[:3])
    # switching a modality off leaves the others unchanged (independent random streams)
    d = simulate_sample(cfg.replace(make_em=False, make_afm=False))
    assert d.em is None and d.afm is None
    pd.testing.assert_frame_equal(a.smlm["antibody"], d.smlm["antibody"])
    pd.testing.assert_frame_equal(a.truth.fiducials[["x", "y"]], d.truth.fiducials[["x", "y"]])


def test_elements_sizes_units(sample):
    cfg = sample.config
    els = sample.elements()
    assert sorted(els) == ["afm", "antibody", "corona", "em", "sim"]
    assert set(sample.transforms()) == set(els)
    em = validate_image(sample.em)
    assert em.attrs["modality"] == "em" and em.dims == ("y", "x")
    n = int(round(cfg.field_nm / cfg.em_pixel_nm))
    assert em.shape == (n, n)
    assert pixel_size(em) == pytest.approx({"y": cfg.em_pixel_nm, "x": cfg.em_pixel_nm})
    # every image: pixel centre i at i * pixel in its own frame (as the readers give)
    for img in (sample.em, sample.sim, sample.afm):
        assert float(img.x[0]) == 0.0 and float(img.y[0]) == 0.0
    assert float(em.x[-1]) + cfg.em_pixel_nm / 2 == pytest.approx(cfg.field_nm - cfg.em_pixel_nm / 2)
    # the SIM image holds the whole EM field
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]) * cfg.field_nm
    q = sample.truth.transforms["sim"].inverse().apply(corners)
    assert (q > 0).all() and (q[:, 0] < float(sample.sim.x[-1])).all()
    assert (q[:, 1] < float(sample.sim.y[-1])).all()
    sim = validate_image(sample.sim)
    assert sim.attrs["modality"] == "sim"
    assert pixel_size(sim)["x"] == pytest.approx(cfg.sim_pixel_nm)
    afm = validate_image(sample.afm)
    assert afm.attrs["modality"] == "afm" and afm.attrs["value_unit"] == "nm"
    assert afm.shape == (int(round(cfg.afm_field / cfg.afm_pixel_nm)),) * 2
    for ch, (label, df) in enumerate(sample.smlm.items()):
        validate_localizations(df)
        for col in ("x", "y", "frame", "photons", "background", "precision", "sigma", "channel",
                    "true_particle_id", "true_molecule_id", "true_event_id"):
            assert col in df.columns
        assert df["frame"].min() >= 0 and df["frame"].max() < cfg.n_frames
        assert (df["channel"] == ch).all()
        assert df.attrs["kind"] == "localizations"
        assert set(np.unique(df["true_particle_id"])) >= {-1, -2}
    t = sample.truth
    assert list(t.drift.columns) == ["frame", "dx", "dy"] and len(t.drift) == cfg.n_frames
    for c in ("particle_id", "x", "y", "diameter_nm", "height_nm", "n_molecules_antibody",
              "n_localizations_antibody", "n_molecules_corona", "edge"):
        assert c in t.particles.columns
    for c in ("fiducial_id", "x", "y", "x_smlm", "y_smlm", "x_sim", "y_sim", "x_afm", "y_afm"):
        assert c in t.fiducials.columns
    for c in ("molecule_id", "label", "particle_id", "x", "y", "x_smlm", "y_smlm", "n_events"):
        assert c in t.molecules.columns
    assert isinstance(t.transforms["em"], Identity)
    assert isinstance(t.transforms["sim"], Affine)
    assert not t.transforms["smlm"].is_linear
    assert "smlm_corona" in t.transforms


def test_particles_geometry(sample):
    p = sample.truth.particles
    cfg = sample.config
    xy = p[["x", "y"]].to_numpy()
    r = 0.5 * p["diameter_nm"].to_numpy()
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    gap = d - r[:, None] - r[None]
    np.fill_diagonal(gap, np.inf)
    assert gap.min() >= -1e-9  # never overlapping
    touching = p["touching"].to_numpy()
    pairs = np.flatnonzero(touching > 0)
    assert len(pairs) == 2 * cfg.n_touching_pairs
    for i in pairs:
        j = touching[i] - 1
        assert gap[i, j] <= cfg.touching_gap_nm + 1e-9
    lo, hi = -cfg.em_pixel_nm / 2, cfg.field_nm - cfg.em_pixel_nm / 2
    edge = (xy - r[:, None] < lo).any(1) | (xy + r[:, None] > hi).any(1)
    np.testing.assert_array_equal(edge, p["edge"].to_numpy())
    assert edge.sum() >= cfg.n_edge_particles
    # cut by the edge but still partly inside the field
    assert ((xy + r[:, None] > 0) & (xy - r[:, None] < cfg.field_nm)).all()
    f = sample.truth.fiducials[["x", "y"]].to_numpy()
    sv = np.linalg.svd(f - f.mean(0), compute_uv=False)
    assert sv[-1] > 0.15 * sv[0]  # not collinear
    assert np.isfinite(sample.truth.fiducials["x_afm"]).sum() >= cfg.afm_min_fiducials


def test_transforms_invertible_and_distortion(sample):
    cfg = sample.config
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, cfg.field_nm, (200, 2))
    for name, t in sample.truth.transforms.items():
        back = t.apply(t.inverse().apply(pts))
        assert np.abs(back - pts).max() < 1e-6, name
    sim_part = sample.truth.params["smlm_similarity"]
    cam = sample.truth.transforms["smlm"].inverse().apply(pts)
    dev = np.hypot(*(sample.truth.transforms["smlm"].apply(cam) - sim_part.apply(cam)).T)
    assert 0.3 * cfg.distortion_nm < dev.max() < 2.0 * cfg.distortion_nm
    lin = simulate_sample(cfg.replace(distortion_nm=0.0, make_em=False, make_sim=False, make_afm=False, n_frames=50))
    assert lin.truth.transforms["smlm"].is_linear
    m = lin.truth.transforms["smlm"].matrix
    assert np.hypot(m[0, 0], m[1, 0]) == pytest.approx(cfg.smlm_scale)
    assert np.degrees(np.arctan2(m[1, 0], m[0, 0])) == pytest.approx(cfg.smlm_rotation_deg)


def test_fiducials_agree_across_modalities(sample):
    """Truth positions in every frame map to world, and the data sit there."""
    from scipy.ndimage import gaussian_filter, minimum_filter

    t = sample.truth
    f = t.fiducials
    w = f[["x", "y"]].to_numpy()
    for col, name in (("smlm", "smlm"), ("smlm_corona", "smlm_corona"), ("sim", "sim"), ("afm", "afm")):
        p = f[[f"x_{col}", f"y_{col}"]].to_numpy()
        ok = np.isfinite(p).all(1)
        np.testing.assert_allclose(t.transforms[name].apply(p[ok]), w[ok], atol=1e-6)
    # SMLM: drift-corrected mean of each fiducial's localizations at x_smlm (precision ~1.5 nm / sqrt(n))
    drift = t.drift[["dx", "dy"]].to_numpy()
    for label, sfx in (("antibody", ""), ("corona", "_corona")):
        df = sample.smlm[label]
        fl = df[df["true_particle_id"] == -2]
        xy = fl[["x", "y"]].to_numpy() - drift[fl["frame"].to_numpy()]
        mean = pd.DataFrame(xy, columns=["x", "y"]).groupby(fl["true_fiducial_id"].to_numpy()).mean()
        ref = f.set_index("fiducial_id").loc[mean.index, [f"x_smlm{sfx}", f"y_smlm{sfx}"]].to_numpy()
        se = fl["precision"].median() / np.sqrt(fl.groupby("true_fiducial_id").size().min())
        assert np.abs(mean.to_numpy() - ref).max() < 6 * se + 0.05
        # present in most frames, both colours
        frac = fl.groupby("true_fiducial_id").size() / sample.config.n_frames
        assert (frac > sample.config.fiducial_presence - 0.06).all()
        assert fl["precision"].median() < 2.5
    # chromatic: the corona frame differs by about the configured offset
    dd = f[["x_smlm_corona", "y_smlm_corona"]].to_numpy() - f[["x_smlm", "y_smlm"]].to_numpy()
    assert 5 < np.hypot(*dd.T).mean() < 60
    # EM: the darkest blobs are the gold beads
    em = sample.em.values.astype(float)
    px = sample.config.em_pixel_nm
    sm = gaussian_filter(em, 4)
    minima = (sm == minimum_filter(sm, 25))
    iy, ix = np.nonzero(minima)
    order = np.argsort(sm[iy, ix])[: len(f)]
    found = np.column_stack([ix[order], iy[order]]) * px
    d = np.hypot(*(found[:, None] - w[None]).transpose(2, 0, 1)).min(1)
    assert d.max() < 3 * px
    # SIM: fiducials are bright spots well above the background
    sim = sample.sim
    ps = pixel_size(sim)["x"]
    fs = f[["x_sim", "y_sim"]].to_numpy()
    j = np.round((fs[:, 0] - float(sim.x[0])) / ps).astype(int)
    i = np.round((fs[:, 1] - float(sim.y[0])) / ps).astype(int)
    sv = sim.values
    assert (sv[i, j] > np.median(sv) + 10 * np.sqrt(np.median(sv))).all()
    # AFM: a bump of about the bead diameter at each fiducial inside
    afm = sample.afm.values
    pa = pixel_size(sample.afm)["x"]
    fa = f[["x_afm", "y_afm"]].to_numpy()
    ok = np.isfinite(fa).all(1)
    j = np.round((fa[ok, 0] - float(sample.afm.x[0])) / pa).astype(int)
    i = np.round((fa[ok, 1] - float(sample.afm.y[0])) / pa).astype(int)
    local = np.array([afm[a - 3:a + 4, b - 3:b + 4].max() for a, b in zip(i, j)])
    base = np.array([np.median(afm[max(a - 25, 0):a + 26, max(b - 25, 0):b + 26]) for a, b in zip(i, j)])
    np.testing.assert_allclose(local - base, f.loc[ok, "diameter_nm"], atol=3.0)


def test_molecules_and_localizations_consistent(sample):
    t = sample.truth
    mol = t.molecules
    for label in ("antibody", "corona"):
        m = mol[mol["label"] == label]
        back = t.transforms[label].apply(m[["x_smlm", "y_smlm"]].to_numpy())
        np.testing.assert_allclose(back, m[["x", "y"]].to_numpy(), atol=1e-6)
        df = sample.smlm[label]
        loc = df[df["true_molecule_id"] >= 0]
        assert set(loc["true_molecule_id"]) <= set(m["molecule_id"])
        counts = loc.groupby("true_molecule_id").size()
        np.testing.assert_array_equal(counts.reindex(m["molecule_id"], fill_value=0).to_numpy(),
                                      m["n_localizations"].to_numpy())
        # residuals / precision ~ N(0, 1) after removing the drift
        ref = m.set_index("molecule_id").loc[loc["true_molecule_id"], ["x_smlm", "y_smlm"]].to_numpy()
        drift = t.drift[["dx", "dy"]].to_numpy()[loc["frame"].to_numpy()]
        z = (loc[["x", "y"]].to_numpy() - drift - ref) / loc["precision"].to_numpy()[:, None]
        assert abs(z.std() - 1) < 0.05 and abs(z.mean()) < 0.05
        # per-particle counts agree with the molecule table
        p = t.particles.set_index("particle_id")
        nm = m.groupby("particle_id").size().reindex(p.index, fill_value=0)
        np.testing.assert_array_equal(nm.to_numpy(), p[f"n_molecules_{label}"].to_numpy())
        # molecules sit on a shell of the configured radius
        rr = np.hypot(m["x"] - p.loc[m["particle_id"], "x"].to_numpy(),
                      m["y"] - p.loc[m["particle_id"], "y"].to_numpy())
        shell = 0.5 * p.loc[m["particle_id"], "diameter_nm"].to_numpy()
        shell += sample.config.antibody_linker_nm if label == "antibody" else sample.config.corona_offset_nm
        assert (rr <= shell + 1e-9).all()
    prec = sample.smlm["antibody"].query("true_particle_id > 0")["precision"]
    assert 4 < prec.median() < 15


def test_blinking_statistics(smlm_only):
    cfg = smlm_only.config
    mol = smlm_only.truth.molecules
    df = smlm_only.smlm["antibody"]
    n = len(mol)
    assert n > 3000
    # detection efficiency
    frac0 = (mol["n_events"] == 0).mean()
    assert abs(frac0 - (1 - cfg.detection_efficiency)) < 4 * np.sqrt(0.09 / n) + 0.01
    # events per detected molecule ~ geometric(mean events_mean) (a few cut by the run end)
    ev = mol.loc[mol["n_events"] > 0, "n_events"]
    assert abs(ev.mean() - cfg.events_mean) < 5 * ev.std() / np.sqrt(len(ev)) + 0.1
    # on-times: frames per event ~ geometric(mean on_frames_mean)
    loc = df[df["true_event_id"] >= 0]
    g = loc.groupby("true_event_id")["frame"]
    on = g.size()
    assert abs(on.mean() - cfg.on_frames_mean) < 5 * on.std() / np.sqrt(len(on)) + 0.05
    # consecutive frames within an event, one localization per frame
    assert ((g.max() - g.min() + 1) == on).all()
    # dark times between events of one molecule: 1 + floor(Exp(mean))
    ev_tab = pd.DataFrame({"mol": loc.groupby("true_event_id")["true_molecule_id"].first(),
                           "start": g.min(), "end": g.max()}).sort_values(["mol", "start"])
    same = ev_tab["mol"].to_numpy()[1:] == ev_tab["mol"].to_numpy()[:-1]
    dark = (ev_tab["start"].to_numpy()[1:] - ev_tab["end"].to_numpy()[:-1] - 1)[same]
    assert dark.min() >= 1
    expect = cfg.dark_frames_mean + 0.5
    assert abs(dark.mean() - expect) < 5 * expect / np.sqrt(len(dark))
    # photons lognormal around the median (partial first/last frames dimmer)
    ph = loc["photons"]
    assert 0.6 * cfg.photons_median < ph.median() < 1.05 * cfg.photons_median
    np.testing.assert_allclose(
        loc["precision"], mortensen_precision(loc["sigma"], loc["photons"], loc["background"], cfg.camera_pixel_nm),
        rtol=1e-5,
    )
    # nonspecific background density
    bg = df[df["true_particle_id"] == -1]
    lo, hi = smlm_only.truth.params["camera_lo"], smlm_only.truth.params["camera_hi"]
    expect_bg = cfg.nonspecific_density_per_um2 * np.prod(hi - lo) / 1e6
    assert abs(len(bg) - expect_bg) < 5 * np.sqrt(expect_bg)
    assert (bg["true_molecule_id"] == -1).all() and (bg["true_event_id"] == -1).all()


def test_size_count_correlation(smlm_only):
    from scipy.stats import spearmanr

    cfg = smlm_only.config
    p = smlm_only.truth.particles
    rho = spearmanr(p["diameter_nm"], p["n_molecules_antibody"]).statistic
    assert rho > 0.5
    # mean count scales with d^2 at the configured level
    rel = (p["diameter_nm"] / cfg.diameter_median_nm) ** 2
    ratio = p["n_molecules_antibody"].sum() / rel.sum()
    m = cfg.antibody_per_particle
    se = np.sqrt((m + (cfg.label_cv * m) ** 2) / len(p))  # Poisson + gamma heterogeneity
    assert abs(ratio - m) < 4 * se
    has = p["has_corona"]
    assert (p.loc[~has, "n_molecules_corona"] == 0).all()
    assert abs(has.mean() - cfg.corona_fraction) < 4 * np.sqrt(0.25 / len(p))


def test_drift_applied():
    cfg = SampleConfig.small(seed=2, n_frames=400, drift=dict(linear_nm=80.0, oscillation_nm=0.0, direction_deg=0.0),
                             make_em=False, make_sim=False, make_afm=False)
    s = simulate_sample(cfg)
    d = s.truth.drift
    assert d["dx"].iloc[0] == 0 and d["dx"].iloc[-1] == pytest.approx(80.0) and np.allclose(d["dy"], 0)
    df = s.smlm["antibody"]
    fl = df[df["true_particle_id"] == -2]
    ref = s.truth.fiducials.set_index("fiducial_id").loc[fl["true_fiducial_id"], ["x_smlm", "y_smlm"]].to_numpy()
    res = fl[["x", "y"]].to_numpy() - ref
    late = fl["frame"].to_numpy() > 300
    early = fl["frame"].to_numpy() < 100
    fr = fl["frame"].to_numpy()
    expect = 80.0 * (fr[late].mean() - fr[early].mean()) / (cfg.n_frames - 1)
    assert res[late, 0].mean() - res[early, 0].mean() == pytest.approx(expect, abs=0.5)
    assert abs(res[late, 1].mean() - res[early, 1].mean()) < 0.5
    # per frame: residual minus drift is the localization noise only
    dxy = d[["dx", "dy"]].to_numpy()[fr]
    assert np.abs((res - dxy).mean(0)).max() < 0.2
    # and without drift the table is all zeros
    s0 = simulate_sample(cfg.replace(drift=None))
    assert (s0.truth.drift[["dx", "dy"]].to_numpy() == 0).all()
    assert "smlm_corona" not in s0.truth.transforms


def test_afm_heights(sample):
    cfg = sample.config
    afm = sample.afm
    p = sample.truth.particles
    p = p[p["in_afm"]]
    if not len(p):
        pytest.skip("no particle inside the AFM region for this seed")
    inv = sample.truth.transforms["afm"].inverse()
    q = inv.apply(p[["x", "y"]].to_numpy())
    px = cfg.afm_pixel_nm
    j = np.round((q[:, 0] - float(afm.x[0])) / px).astype(int)
    i = np.round((q[:, 1] - float(afm.y[0])) / px).astype(int)
    a = afm.values
    top = np.array([a[r - 2:r + 3, c - 2:c + 3].max() for r, c in zip(i, j)])
    plane = cfg.afm_offset_nm + cfg.afm_tilt[0] * q[:, 0] + cfg.afm_tilt[1] * q[:, 1]
    np.testing.assert_allclose(top - plane, p["height_nm"], atol=4 * cfg.afm_noise_nm + 3 * cfg.afm_line_noise_nm + 1.0)


def test_to_scene(tmp_path):
    pytest.importorskip("correlate.scene")
    cfg = SampleConfig.small(seed=1, field_nm=1000, n_particles=4, n_fiducials=4, n_frames=100, afm_field_nm=600,
                             chromatic=CHROM)
    s = simulate_sample(cfg)
    scene = s.to_scene(tmp_path / "sim.ome.zarr")
    assert {"em", "sim", "afm", "antibody", "corona"} <= set(scene.names())
    f = s.truth.fiducials
    got = scene.map_points(f[["x_smlm_corona", "y_smlm_corona"]].to_numpy(), "corona", "world")
    np.testing.assert_allclose(got, f[["x", "y"]].to_numpy(), atol=1e-6)
    got = scene.map_points(f[["x_sim", "y_sim"]].to_numpy(), "sim", "em")
    np.testing.assert_allclose(got, f[["x", "y"]].to_numpy(), atol=1e-6)
    ab = scene.get("antibody")
    assert len(ab) == len(s.smlm["antibody"])


def test_em_options():
    cfg = SampleConfig.small(seed=2, field_nm=800, n_particles=3, n_fiducials=3, n_edge_particles=0,
                             n_touching_pairs=0, make_sim=False, make_afm=False, make_smlm=False)
    a = simulate_sample(cfg.replace(em_dtype="uint16"))
    assert a.em.dtype == np.uint16
    # hollow shells: the particle centre is brighter than its rim (liposome-like)
    b = simulate_sample(cfg.replace(em_shell_nm=6.0, em_dose=1e4))
    p = b.truth.particles.iloc[0]
    px = cfg.em_pixel_nm
    em = b.em.values
    i, j = int(round(p.y / px)), int(round(p.x / px))
    rim = int((0.5 * p.diameter_nm - 3) / px)
    assert em[i, j] > em[i, j + rim]
    c = simulate_sample(cfg.replace(em_dose=1e4))
    assert c.em.values[i, j] < c.em.values[i, j + rim]


def test_write_files_read_back(tmp_path):
    import json

    from correlate.transforms import from_ngff

    cfg = SampleConfig.small(seed=4, field_nm=1000, n_particles=4, n_fiducials=4, n_frames=100, afm_field_nm=600)
    s = simulate_sample(cfg)
    files = s.write_files(tmp_path)
    assert {"em", "sim", "afm", "antibody", "corona", "truth_transforms"} <= set(files)
    with pytest.raises(CorrelateError):
        s.write_files(tmp_path)  # no silent overwrite
    doc = json.loads(files["truth_transforms"].read_text())
    for name, d in doc["transforms"].items():
        t = from_ngff(d, ndim=2)
        p = np.array([[100.0, 200.0], [900.0, 50.0]])
        np.testing.assert_allclose(t.apply(p), s.truth.transforms[name].apply(p), atol=1e-6)
    io = pytest.importorskip("correlate.io")
    # every reader exists: a failure to read back is a failure, not a skip
    got = {name: io.read(files[name], **kw) for name, kw in (
        ("em", {}), ("antibody", {}), ("corona", {}), ("sim", {"modality": "sim"}), ("afm", {"modality": "afm"}))}
    em = got["em"]
    np.testing.assert_array_equal(np.asarray(em.values), s.em.values)
    assert pixel_size(em)["x"] == pytest.approx(cfg.em_pixel_nm)
    assert float(em.x[0]) == 0.0
    for name in ("sim", "afm"):
        img, ref = got[name], getattr(s, name)
        assert pixel_size(img) == pytest.approx(pixel_size(ref))
        assert float(img.x[0]) == 0.0 and float(img.y[0]) == 0.0  # pixel centre 0 at 0, as the truth assumes
        np.testing.assert_array_equal(np.asarray(img.values), ref.values)
    for label in ("antibody", "corona"):
        ab, ref = got[label], s.smlm[label]
        np.testing.assert_allclose(ab[["x", "y"]].to_numpy(), ref[["x", "y"]].to_numpy(), atol=1e-3)
        np.testing.assert_array_equal(ab["frame"].to_numpy(), ref["frame"].to_numpy())
        np.testing.assert_allclose(ab["precision"].to_numpy(), ref["precision"].to_numpy(), atol=1e-3)


def test_afm_tip_broadening():
    """A sharper tip broadens less; the peak height is kept (dilation never lowers a maximum)."""
    cfg = SampleConfig.small(seed=6, field_nm=1200, n_particles=3, n_fiducials=3, afm_field_nm=1000,
                             afm_noise_nm=0.0, afm_line_noise_nm=0.0, afm_tilt=(0.0, 0.0), afm_offset_nm=0.0,
                             n_edge_particles=0, n_touching_pairs=0, make_em=False, make_sim=False, make_smlm=False)
    areas, tops = [], []
    for kw in (dict(afm_tip_radius_nm=0.0), dict(afm_tip_radius_nm=10.0), dict(afm_tip_radius_nm=10.0, afm_tip_half_angle_deg=20.0)):
        a = simulate_sample(cfg.replace(**kw)).afm.values
        areas.append((a > 2.0).sum())
        tops.append(a.max())
    assert areas[0] < areas[1] < areas[2]
    np.testing.assert_allclose(tops, tops[0], rtol=1e-6)


def test_truth_helpers(sample):
    lm = sample.truth.landmarks("smlm_corona", "sim")
    assert len(lm) >= 3 and lm.source_system == "smlm_corona"
    t = sample.truth.transforms
    np.testing.assert_allclose(t["sim"].inverse().apply(t["smlm_corona"].apply(lm.source)), lm.target, atol=1e-6)
    assert len(sample.truth.landmarks("afm", "em")) >= sample.config.afm_min_fiducials
    lab = sample.em_labels()
    assert lab.shape == sample.em.shape
    p = sample.truth.particles
    area = np.bincount(lab.ravel(), minlength=p["particle_id"].max() + 1)[p["particle_id"]]
    inside = ~p["edge"].to_numpy()
    expect = np.pi * (0.5 * p["diameter_nm"].to_numpy()) ** 2 / sample.config.em_pixel_nm**2
    np.testing.assert_allclose(area[inside], expect[inside], rtol=0.08)
    # labelled pixels are darker than the background on average
    em = sample.em.values
    assert em[lab > 0].mean() < em[lab == 0].mean() * 0.9
    assert "particles" in sample.summary() and "antibody" in sample.summary()


@pytest.mark.parametrize("kw", [dict(field_nm=0), dict(n_frames=0), dict(corona_fraction=1.5),
                                dict(em_dtype="int8"), dict(events_mean=0.5), dict(drift=60),
                                {"drift": {"linear": 60.0}}, {"chromatic": {"offset": (15.0, 0.0)}}])
def test_config_validation(kw):
    with pytest.raises(CorrelateError, match=next(iter(kw))):
        SampleConfig(**kw)


def test_sim_two_channels(tmp_path):
    cfg = SampleConfig.small(seed=7, field_nm=1200, n_particles=5, n_fiducials=3, n_frames=20,
                             sim_labels=("antibody", "corona"), make_em=False, make_afm=False)
    s = simulate_sample(cfg)
    sim = validate_image(s.sim)
    assert sim.dims == ("c", "y", "x") and list(sim.c.values) == ["antibody", "corona"]
    # a particle without corona is bright in the antibody channel only
    p = s.truth.particles
    q = s.truth.transforms["sim"].inverse().apply(p[["x", "y"]].to_numpy())
    j = np.round(q[:, 0] / cfg.sim_pixel_nm).astype(int)
    i = np.round(q[:, 1] / cfg.sim_pixel_nm).astype(int)
    v = sim.values[:, i, j]
    bg = np.median(sim.values, axis=(1, 2))[:, None]
    no_corona = (p["n_molecules_corona"] == 0).to_numpy() & (p["n_molecules_antibody"] > 5).to_numpy()
    assert no_corona.any()  # this seed has one
    assert (v[1, no_corona] - bg[1] < 0.3 * (v[0, no_corona] - bg[0])).all()
    files = s.write_files(tmp_path)
    import tifffile
    assert tifffile.imread(files["sim"]).shape == sim.shape
