"""The simulator's acquisition knobs (mirrored frames, bead size in the light modalities,
systematic per-bead error, missing and spurious beads, bleaching, hard AFM particles, SIM
without resolution metadata) and ``random_acquisition``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.datasets import ACQUISITION_RANGES, SampleConfig, random_acquisition, random_config, simulate_sample
from correlate.errors import CorrelateError

_FAST = dict(make_em=False, make_afm=False, make_sim=False, n_particles=6, n_frames=300)


def _linear_det(t) -> float:
    p = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0]])
    q = t.apply(p)
    return float(np.linalg.det(np.column_stack([q[1] - q[0], q[2] - q[0]])))


def _bead_means(df: pd.DataFrame) -> pd.DataFrame:
    fl = df[df["true_particle_id"] == -2]
    g = fl.groupby("true_fiducial_id")
    out = g[["x", "y"]].mean()
    out["se"] = g["precision"].median() / np.sqrt(g.size())
    out["n"] = g.size()
    out["last_frame"] = g["frame"].max()
    out["sigma"] = g["sigma"].median()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirrored_rotated_smlm_frame_keeps_exact_truth(seed):
    rng = np.random.default_rng(seed)
    rot = float(rng.uniform(0, 360))
    s = simulate_sample(SampleConfig.small(seed=seed, smlm_mirror=True, smlm_rotation_deg=rot, smlm_offset_nm=None,
                                           smlm_scale=float(rng.uniform(0.9, 1.1)), distortion_nm=0.0, **_FAST))
    t = s.truth.transforms["antibody"]
    assert _linear_det(t) < 0 and s.truth.params["smlm_mirrored"]
    f = s.truth.fiducials
    np.testing.assert_allclose(t.apply(f[["x_smlm", "y_smlm"]].to_numpy()), f[["x", "y"]].to_numpy(), atol=1e-6)
    # the camera frame stays positive (a camera's pixels), whatever the rotation
    df = s.smlm["antibody"]
    assert df["x"].min() > 0 and df["y"].min() > 0
    # bead localizations scatter about the true camera position (no systematic error set)
    m = _bead_means(df).join(f.set_index("fiducial_id").drop(columns=["x", "y"]))
    d = np.hypot(m["x"] - m["x_smlm"], m["y"] - m["y_smlm"]) / m["se"]
    assert (d < 5.0).all(), d
    # mirrored == the unmirrored similarity after x -> -x about the camera field centre
    u = simulate_sample(SampleConfig.small(seed=seed, smlm_mirror=False, smlm_rotation_deg=rot, smlm_offset_nm=None,
                                           smlm_scale=s.config.smlm_scale, distortion_nm=0.0, **_FAST))
    lo, hi = s.truth.params["camera_lo"], s.truth.params["camera_hi"]
    p = np.array([[lo[0] + 100.0, lo[1] + 200.0], [hi[0] - 300.0, 0.5 * (lo[1] + hi[1])]])
    q = p.copy()
    q[:, 0] = lo[0] + hi[0] - p[:, 0]
    np.testing.assert_allclose(t.apply(p), u.truth.transforms["antibody"].apply(q), atol=1e-6)


def test_mirrored_sim_frame():
    s = simulate_sample(SampleConfig.small(seed=3, sim_mirror=True, sim_rotation_deg=123.0, make_smlm=False,
                                           make_afm=False, make_em=False))
    t = s.truth.transforms["sim"]
    assert _linear_det(t) < 0
    f = s.truth.fiducials
    ok = np.isfinite(f["x_sim"].to_numpy())
    assert ok.sum() == len(f)  # the SIM image holds the whole field
    np.testing.assert_allclose(t.apply(f.loc[ok, ["x_sim", "y_sim"]].to_numpy()), f.loc[ok, ["x", "y"]].to_numpy(),
                               atol=1e-6)
    # every bead is a bright spot at its SIM position
    px = s.config.sim_pixel_nm
    img = s.sim.values
    for x, y in f[["x_sim", "y_sim"]].to_numpy():
        j, i = int(round(x / px)), int(round(y / px))
        assert img[i, j] > s.config.sim_background + 10 * np.sqrt(s.config.sim_background)


def test_systematic_offsets_per_bead_and_modality():
    sd = 4.0
    s = simulate_sample(SampleConfig.small(seed=4, n_fiducials=40, fiducial_systematic_nm=sd, distortion_nm=0.0,
                                           fiducial_presence=1.0, **_FAST))
    f = s.truth.fiducials.set_index("fiducial_id")
    offs = []
    for k in ("smlm", "smlm_corona", "sim"):
        o = f[[f"dx_sys_{k}", f"dy_sys_{k}"]].to_numpy()
        offs.append(o)
        # 80 draws of N(0, sd): sample sd within ~4 standard errors
        assert abs(o.std() - sd) < 4 * sd / np.sqrt(2 * o.size)
    assert not np.allclose(offs[0], offs[1])  # independent per modality
    for label, k in (("antibody", "smlm"), ("corona", "smlm_corona")):
        xc, yc = ("x_smlm", "y_smlm") if label == "antibody" else ("x_smlm_corona", "y_smlm_corona")
        m = _bead_means(s.smlm[label]).join(f.drop(columns=["x", "y"]))
        dx = m["x"] - m[xc] - m[f"dx_sys_{k}"]
        dy = m["y"] - m[yc] - m[f"dy_sys_{k}"]
        assert (np.hypot(dx, dy) / m["se"] < 5.0).all()
        # and the offset is really there: the raw mean misses the gold centre by ~sd
        raw = np.hypot(m["x"] - m[xc], m["y"] - m[yc])
        assert np.sqrt(np.mean(raw**2)) > 0.5 * sd * np.sqrt(2)  # expected sd * sqrt(2)
    # exact truth landmarks stay the gold centres
    lm = s.truth.landmarks("antibody", "world")
    np.testing.assert_allclose(s.truth.transforms["antibody"].apply(lm.source), lm.target, atol=1e-6)


def test_missing_spurious_and_bleaching_beads():
    n_fid, frac, n_sp = 10, 0.2, 3
    s = simulate_sample(SampleConfig.small(seed=5, n_fiducials=n_fid, fiducial_missing_fraction=frac,
                                           n_spurious_fiducials=n_sp, fiducial_bleach=True, fiducial_presence=0.4,
                                           make_em=False, make_afm=False, n_particles=6, n_frames=400))
    f = s.truth.fiducials
    k = int(round(frac * n_fid))
    assert (~f["seen_smlm"]).sum() == k and (~f["seen_sim"]).sum() == k
    df = s.smlm["antibody"]
    m = _bead_means(df)
    assert set(m.index) == set(f.loc[f["seen_smlm"], "fiducial_id"])
    # bleaching: each bead is lit in [0, T) with T ~ 0.4 x 400 frames, then dark
    assert (m["n"] == m["last_frame"] + 1).all()
    assert ((m["last_frame"] + 1) >= 0.8 * 0.4 * 400 - 1).all() and ((m["last_frame"] + 1) <= 1.2 * 0.4 * 400 + 1).all()
    # spurious spots: persistent, bright, not gold (not in the truth fiducials), in both colours
    sp = s.truth.spurious
    assert (sp["modality"] == "smlm").sum() == n_sp and (sp["modality"] == "sim").sum() == n_sp
    for label in ("antibody", "corona"):
        sl = s.smlm[label]
        sl = sl[sl["true_particle_id"] == -3]
        assert len(sl) >= n_sp * 0.8 * 0.4 * 400 * 0.99
        assert sl["photons"].median() > 5 * s.config.photons_median
    xy = sp.loc[sp["modality"] == "smlm", ["x_frame", "y_frame"]].to_numpy()
    spots = df[df["true_particle_id"] == -3][["x", "y"]].to_numpy()
    d = np.min(np.hypot(*(spots[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert np.percentile(d, 99) < 60.0
    # SIM: the unseen beads are dark, the spurious spots bright
    px = s.config.sim_pixel_nm
    bg = s.config.sim_background
    img = s.sim.values

    def val(x, y):
        return img[int(round(y / px)), int(round(x / px))]

    seen_peak = np.median([val(x, y) for x, y in f.loc[f["seen_sim"], ["x_sim", "y_sim"]].to_numpy()])
    for x, y in f.loc[~f["seen_sim"], ["x_sim", "y_sim"]].to_numpy():
        assert val(x, y) - bg < 0.2 * (seen_peak - bg)  # no bead there
    for x, y in sp.loc[sp["modality"] == "sim", ["x_frame", "y_frame"]].to_numpy():
        assert val(x, y) > bg + 10 * np.sqrt(bg)
    # the truth landmarks hold only the beads the modality sees
    assert len(s.truth.landmarks("antibody", "world")) == n_fid - k


def test_bead_size_in_the_light_modalities():
    psf, d = 40.0, 150.0
    fwhm = psf * 2 * np.sqrt(2 * np.log(2))
    s = simulate_sample(SampleConfig.small(seed=6, fiducial_diameter_nm=d, sim_resolution_nm=fwhm, sim_pixel_nm=10.0,
                                           antibody_per_particle=0.0, corona_per_particle=0.0, n_fiducials=6,
                                           sim_fiducial_brightness=500.0, nonspecific_density_per_um2=0.0,
                                           make_em=False, make_afm=False, n_frames=100, n_particles=4))
    expected = np.sqrt(psf**2 + (0.5 * d) ** 2 / 5.0)
    img = s.sim.values.astype(float) - s.config.sim_background
    px = s.config.sim_pixel_nm
    widths = []
    for x, y in s.truth.fiducials[["x_sim", "y_sim"]].to_numpy():
        j, i = int(round(x / px)), int(round(y / px))
        h = 20
        w = img[i - h:i + h + 1, j - h:j + h + 1]
        yy, xx = (np.mgrid[-h:h + 1, -h:h + 1] * px)
        xx = xx + j * px - x
        yy = yy + i * px - y
        widths.append(np.sqrt((w * (xx**2 + yy**2)).sum() / w.sum() / 2 - px**2 / 12))
    assert np.median(widths) == pytest.approx(expected, rel=0.08)
    # SMLM: the bead localizations' PSF width includes the bead size
    fl = s.smlm["antibody"][s.smlm["antibody"]["true_particle_id"] == -2]
    assert fl["sigma"].median() == pytest.approx(np.sqrt(s.config.psf_sigma_nm**2 + (0.5 * d) ** 2 / 5.0), rel=0.03)


def test_sim_without_resolution_metadata():
    kw = dict(make_em=False, make_afm=False, make_smlm=False, n_particles=4, n_fiducials=4, field_nm=1500.0)
    assert "resolution_nm" in simulate_sample(SampleConfig.small(seed=1, **kw)).sim.attrs
    bare = simulate_sample(SampleConfig.small(seed=1, sim_resolution_metadata=False, **kw))
    assert "resolution_nm" not in bare.sim.attrs


def test_hard_and_soft_particles_in_afm():
    cfg = SampleConfig.small(seed=7, afm_hard_fraction=0.5, afm_flattening=0.4, make_em=False, make_sim=False,
                             make_smlm=False, afm_tip_radius_nm=0.0, afm_noise_nm=0.0, afm_line_noise_nm=0.0,
                             afm_tilt=(0.0, 0.0), afm_offset_nm=0.0, afm_field_nm=3000.0, afm_pixel_nm=2.0)
    s = simulate_sample(cfg)
    p = s.truth.particles
    assert 0 < p["hard"].sum() < len(p)
    np.testing.assert_allclose(p.loc[p["hard"], "height_nm"], p.loc[p["hard"], "diameter_nm"])
    np.testing.assert_allclose(p.loc[~p["hard"], "height_nm"], 0.4 * p.loc[~p["hard"], "diameter_nm"])
    inv = s.truth.transforms["afm"].inverse()
    img = s.afm.values
    px = cfg.afm_pixel_nm
    for _, r in p[p["in_afm"]].iterrows():
        x, y = inv.apply(np.array([[r["x"], r["y"]]]))[0]
        i, j = int(round(y / px)), int(round(x / px))
        top = img[i - 2:i + 3, j - 2:j + 3].max()
        assert top == pytest.approx(r["height_nm"], abs=1.0), r


def test_defaults_unchanged_by_the_new_knobs():
    """Knobs at their defaults: no systematic offset, every bead seen, no spurious spot."""
    s = simulate_sample(SampleConfig.small(seed=8, **_FAST))
    f = s.truth.fiducials
    assert f["seen_smlm"].all() and f["seen_sim"].all()
    assert (f.filter(like="_sys_") == 0).all().all()
    assert len(s.truth.spurious) == 0 and not (s.smlm["antibody"]["true_particle_id"] == -3).any()
    assert not s.truth.params["smlm_mirrored"] and SampleConfig.demo().fiducial_systematic_nm == 2.0


@pytest.mark.parametrize("bad", [dict(fiducial_missing_fraction=1.0), dict(fiducial_missing_fraction=-0.1),
                                 dict(fiducial_systematic_nm=-1.0), dict(n_spurious_fiducials=-1),
                                 dict(afm_hard_fraction=1.5), dict(smlm_offset_nm=(1.0,)), dict(sim_scale=0.0)])
def test_new_knobs_are_validated(bad):
    with pytest.raises(CorrelateError) as e:
        SampleConfig(**bad)
    assert next(iter(bad)) in str(e.value)


def test_random_config_covers_the_ranges():
    cfgs = [random_config(s) for s in range(200)]
    r = ACQUISITION_RANGES

    def within(name, key=None):
        v = np.array([getattr(c, name) for c in cfgs], float)
        lo, hi = r[key or name]
        assert v.min() >= lo and v.max() <= hi
        # spread over the range, not stuck at one value
        assert v.max() - v.min() > 0.8 * (hi - lo)

    within("fiducial_diameter_nm")
    within("em_pixel_nm")
    within("fiducial_presence")
    within("fiducial_missing_fraction")
    within("smlm_rotation_deg", "rotation_deg")
    within("sim_rotation_deg", "rotation_deg")
    within("smlm_scale", "frame_scale")
    within("sim_scale", "frame_scale")
    within("fiducial_systematic_nm")
    sig = np.array([c.sim_resolution_nm for c in cfgs]) / (2 * np.sqrt(2 * np.log(2)))
    assert sig.min() >= 20.0 and sig.max() <= 110.0
    for name in ("smlm_mirror", "sim_mirror", "sim_resolution_metadata"):
        frac = np.mean([getattr(c, name) for c in cfgs])
        assert 0.5 - 4 * np.sqrt(0.25 / 200) < frac < 0.5 + 4 * np.sqrt(0.25 / 200), (name, frac)
    assert {c.n_spurious_fiducials for c in cfgs} == {0, 1, 2, 3}
    assert 0 < np.mean([c.fiducial_bleach for c in cfgs]) < 1


def test_random_acquisition_kinds_and_determinism():
    a = random_acquisition(11, kind="smlm")
    assert a.sim is None and a.afm is None and a.em is not None and set(a.smlm) == {"antibody", "corona"}
    b = random_acquisition(11, kind="lm")
    assert b.sim is not None and not b.smlm and b.afm is None
    # one seed, one geometry, whatever the kind
    pd.testing.assert_frame_equal(a.truth.fiducials[["x", "y"]], b.truth.fiducials[["x", "y"]])
    np.testing.assert_array_equal(a.em.values, b.em.values)
    c = random_acquisition(11, kind="smlm")
    pd.testing.assert_frame_equal(a.smlm["antibody"], c.smlm["antibody"])
    assert random_acquisition(11, kind="lm", sim_mirror=True).config.sim_mirror
    with pytest.raises(CorrelateError):
        random_config(0, kind="afm")
