"""AFM with hard particles: fiducials excluded where they are (not by shape), apex heights.

Two independent worlds: height maps built here (hard spheres dilated analytically by a spherical
tip, tilt, scan-line offsets, noise, gold beads at known positions) and the project's simulator
(existing knobs only: afm_flattening, tip radius, pixel size, noise, tilt).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from correlate.analysis import analyze_particles, segment_afm, segment_em
from correlate.analysis._afm_heights import apex_heights
from correlate.elements import Landmarks, make_image
from correlate.errors import ElementError


def _dilated_sphere(r2: np.ndarray, d: float, tip: float) -> np.ndarray:
    """Height of a hard sphere of diameter d on the substrate scanned by a spherical tip of
    radius ``tip``, at squared lateral distance r2 (nm^2) from its centre: the tip centre rides on
    the sphere of radius d/2 + tip; the tip's lowest point is tip below it."""
    R = 0.5 * d + tip
    v = 0.5 * d - tip + np.sqrt(np.clip(R * R - r2, 0, None))
    return np.where(r2 < R * R, np.maximum(v, 0.0), 0.0)


def _hard_map(rng: np.random.Generator, *, n_part: int = 14, n_gold: int = 3, field_nm: float = 1300.0):
    """A synthetic hard-sphere AFM map with randomized acquisition (labs' ranges)."""
    px = rng.uniform(1.5, 6.0)
    tip = rng.uniform(5.0, 20.0)
    noise = rng.uniform(0.2, 0.5)
    n = int(field_nm / px)
    origin = rng.uniform(-5000, 5000, 2)
    yy, xx = np.mgrid[:n, :n].astype(float)
    X = origin[0] + px * xx
    Y = origin[1] + px * yy
    cen: list[np.ndarray] = []
    dia: list[float] = []
    for _ in range(4000):  # rejection sampling of non-overlapping footprints
        if len(cen) == n_part + n_gold:
            break
        d = rng.uniform(30.0, 150.0) if len(cen) < n_part else rng.uniform(10.0, 60.0)
        reach = 0.5 * d + tip + 2 * px
        c = origin + rng.uniform(reach, n * px - reach, 2)
        if all(np.hypot(*(c - c2)) > reach + 0.5 * d2 + tip + 2 * px for c2, d2 in zip(cen, dia)):
            cen.append(c)
            dia.append(d)
    assert len(cen) == n_part + n_gold
    h = np.zeros((n, n))
    for c, d in zip(cen, dia):  # each sphere in its own box
        k = int(np.ceil((0.5 * d + tip) / px)) + 1
        j, i = np.rint((c - origin) / px).astype(int)
        box = (slice(max(i - k, 0), i + k + 1), slice(max(j - k, 0), j + k + 1))
        h[box] = np.maximum(h[box], _dilated_sphere((X[box] - c[0]) ** 2 + (Y[box] - c[1]) ** 2, d, tip))
    tilt = rng.uniform(-0.01, 0.01, 2)
    h += rng.uniform(-20, 20) + tilt[0] * X + tilt[1] * Y
    h += rng.normal(0.0, rng.uniform(0.1, 0.4), (n, 1))  # scan-line offsets
    h += rng.normal(0.0, noise, (n, n))
    img = make_image(h.astype(np.float32), pixel_size_nm=px, origin_nm={"x": origin[0], "y": origin[1]},
                     modality="afm", value_unit="nm", name="afm")
    cen_a = np.array(cen)
    dia_a = np.array(dia)
    return img, cen_a[:n_part], dia_a[:n_part], cen_a[n_part:], dia_a[n_part:], dict(px=px, tip=tip, noise=noise)


def _match(found_xy: np.ndarray, true_xy: np.ndarray, tol: np.ndarray):
    d, i = cKDTree(true_xy).query(found_xy)
    ok = d < tol[i]
    hit = np.zeros(len(true_xy), bool)
    hit[i[ok]] = True
    return ok, i, hit


def test_synthetic_hard_spheres_recall_heights_gold_excluded():
    n_true = 0
    n_found = 0
    errs = []
    for seed in range(6):
        rng = np.random.default_rng(1000 + seed)
        img, cen, dia, gold, _, acq = _hard_map(rng)
        # gold positions as a registration's landmarks give them: a few nm off
        gold_pos = gold + rng.normal(0.0, 2.0, gold.shape)
        seg = segment_afm(img, exclude_at=gold_pos)
        df = seg.measure()
        ok, i, hit = _match(df[["x", "y"]].to_numpy(), cen, 0.3 * dia)
        n_true += len(cen)
        n_found += int(hit.sum())
        # nothing labelled but particles: every gold bead reported, at its position
        assert ok.all(), (seed, acq, df.loc[~ok, ["x", "y"]])
        assert len(seg.fiducials) == len(gold), (seed, acq)
        assert (seg.fiducials["reason"] == "position").all()
        fd, _ = cKDTree(gold).query(seg.fiducials[["x", "y"]].to_numpy())
        assert np.all(fd < max(2 * acq["px"], 5.0)), (seed, fd)
        assert seg.info["n_exclude_at_unmatched"] == 0
        err = df["height_max_nm"].to_numpy()[ok] - dia[i[ok]]
        errs.append(err)
        # the reported standard error covers the error (noise-derived tolerance: 5 sigma plus the
        # quadratic-window bias on a cap of radius d/2 + tip, about 0.1 % of it)
        se = df["height_err_nm"].to_numpy()[ok]
        assert np.all(np.isfinite(se)) and np.all(se < acq["noise"])
        bias = 1e-3 * (0.5 * dia[i[ok]] + acq["tip"])
        assert np.all(np.abs(err) <= 5 * se + bias + 0.05), (seed, acq, err, se)
        assert df.attrs["height_fit"]["n_apex"] == len(df)
    assert n_found / n_true >= 0.98, (n_found, n_true)
    err = np.concatenate(errs)
    assert np.median(np.abs(err)) <= 0.5, err
    # the apex fit is unbiased: its median error is well below the noise of a pixel
    assert abs(np.median(err)) <= 0.15, err


def test_shape_rule_is_opt_in_and_drops_hard_particles():
    rng = np.random.default_rng(7)
    img, cen, dia, gold, _, _ = _hard_map(rng)
    seg = segment_afm(img)  # no positions: nothing excluded, gold beads counted as objects
    assert len(seg.fiducials) == 0 and seg.n_particles == len(cen) + len(gold)
    shape = segment_afm(img, fiducial_height_ratio=0.5)  # the old rule, on request only
    assert (shape.fiducials["reason"] == "shape").all()
    # hard particles keep their height: the shape rule takes most of them for gold
    assert shape.n_particles < 0.5 * len(cen), shape.n_particles
    off = segment_afm(img, exclude_at=gold, exclude_fiducials=False)
    assert off.n_particles == len(cen) + len(gold) and len(off.fiducials) == 0


def test_apex_fit_beats_the_maximum_of_the_smoothed_and_of_the_raw_map():
    """What the apex fit fixes, measured on the same maps: smoothing lowers a cap's top (by about
    s^2 / Rc), the noise lifts the largest pixel."""
    apex, smoothed, pixel = [], [], []
    for seed in range(4):
        rng = np.random.default_rng(50 + seed)
        img, cen, dia, gold, _, _ = _hard_map(rng, n_part=16)
        seg = segment_afm(img, exclude_at=gold)
        df = seg.measure()
        ok, i, _ = _match(df[["x", "y"]].to_numpy(), cen, 0.3 * dia)
        truth = dia[i][ok]
        ids = df["particle_id"].to_numpy()[ok]
        apex.append(df["height_max_nm"].to_numpy()[ok] - truth)
        smoothed.append(np.asarray(ndi.maximum(seg.signal.values, seg.labels.values, ids)) - truth)
        pixel.append(seg.measure(height_method="max")["height_max_nm"].to_numpy()[ok] - truth)
    apex, smoothed, pixel = (np.concatenate(v) for v in (apex, smoothed, pixel))
    assert np.median(pixel) > 0  # the noise lifts the pixel maximum
    assert np.median(np.abs(apex)) < np.median(np.abs(smoothed))
    assert np.median(np.abs(apex)) < np.median(np.abs(pixel))


def test_apex_heights_on_exact_caps_flat_tops_and_tiny_labels():
    rng = np.random.default_rng(3)
    n = 160
    yy, xx = np.mgrid[:n, :n].astype(float)
    h = np.zeros((n, n))
    lab = np.zeros((n, n), np.int32)
    cases = []
    for k, (cx, cy) in enumerate([(30.3, 30.7), (90.6, 40.2), (40.5, 110.9), (110.1, 120.4)]):
        Rc = rng.uniform(8, 30)  # cap radius, pixels
        top = rng.uniform(10, 60)
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        cap = top - Rc + np.sqrt(np.clip(Rc * Rc - r2, 0, None))
        inside = r2 < (0.9 * Rc) ** 2
        h = np.where(inside, np.maximum(h, cap), h)
        lab[inside] = k + 1
        cases.append((top, Rc, cx, cy))
    # a flat plateau and a 4-pixel object
    lab[5:15, 140:150] = 5
    h[5:15, 140:150] = 7.0
    lab[150:152, 5:7] = 6
    h[150:152, 5:7] = [[1.0, 2.0], [3.0, 4.0]]
    r = apex_heights(h, lab)
    r4 = apex_heights(h, lab, quartic=True, window_fraction=0.6)
    for k, (top, Rc, cx, cy) in enumerate(cases):
        assert r["method"][k] == "apex"
        # noise-free: only the quartic term of the cap, <= (0.4)^4 Rc / 48 (module docstring)
        assert abs(r["height_nm"][k] - top) <= 0.4**4 * Rc / 48 * 2 + 1e-6, (k, r["height_nm"][k], top)
        assert abs(r["x_px"][k] - cx) < 0.05 and abs(r["y_px"][k] - cy) < 0.05
        # with the quartic term a wider window is as exact
        assert abs(r4["height_nm"][k] - top) <= 0.4**4 * Rc / 48 * 2 + 1e-6, (k, r4["height_nm"][k], top)
    assert r["method"][4] == "centre" and r["height_nm"][4] == pytest.approx(7.0)
    assert r["method"][5] == "max" and r["height_nm"][5] == 4.0 and np.isnan(r["height_err_nm"][5])


def _sim_afm(seed: int, flattening: float):
    from correlate.datasets import SampleConfig, simulate_sample

    rng = np.random.default_rng(seed)
    cfg = SampleConfig.small(
        seed=seed, n_particles=40, afm_flattening=flattening, afm_pixel_nm=float(rng.uniform(2.0, 6.0)),
        afm_tip_radius_nm=float(rng.uniform(5.0, 20.0)), afm_noise_nm=float(rng.uniform(0.2, 0.5)),
        afm_tilt=(float(rng.uniform(-0.005, 0.005)), float(rng.uniform(-0.005, 0.005))),
        afm_rotation_deg=float(rng.uniform(0, 360)), make_em=False, make_sim=False, make_smlm=False,
    )
    return simulate_sample(cfg), cfg


def _sim_figures(s, seg, gold_afm):
    """(particles found, particles wholly inside, objects near a gold bead, objects matching
    nothing, height errors)."""
    df = seg.measure()
    tp = s.truth.particles
    xy_afm = df[["x", "y"]].to_numpy()
    xy = s.truth.transforms["afm"].apply(xy_afm)
    ok, i, hit = _match(xy, tp[["x", "y"]].to_numpy(), 0.3 * tp["diameter_nm"].to_numpy())
    want = tp["in_afm"].to_numpy()
    inner = ~df["edge"].to_numpy()
    # a merged touching pair (flattened particles spread wider than their diameter) is a particle
    pair = tp["touching"].to_numpy()[i] >= 0
    near_pair = pair & (cKDTree(xy).query(tp[["x", "y"]].to_numpy()[i])[0] < tp["diameter_nm"].to_numpy()[i])
    d_gold = cKDTree(gold_afm).query(xy_afm)[0] if len(gold_afm) else np.full(len(df), np.inf)
    r_gold = 0.5 * float(s.config.fiducial_diameter_nm) + float(s.config.afm_tip_radius_nm)
    ok_in = ok & want[i]
    err = df["height_max_nm"].to_numpy()[ok_in] - tp["height_nm"].to_numpy()[i[ok_in]]
    return (int((hit & want).sum()), int(want.sum()), int((d_gold < r_gold).sum()),
            int((~ok & inner & ~near_pair).sum()), err)


@pytest.mark.parametrize("flattening", [1.0, "soft"])
def test_simulator_hard_and_soft_particles(flattening):
    found = wanted = 0
    errs = []
    for seed in (21, 22, 23):
        f = 1.0 if flattening == 1.0 else float(np.random.default_rng(seed).uniform(0.3, 0.6))
        s, cfg = _sim_afm(seed, f)
        gold = s.truth.fiducials[["x_afm", "y_afm"]].dropna().to_numpy()
        seg = segment_afm(s.afm, exclude_at=gold + np.random.default_rng(seed).normal(0, 2.0, gold.shape))
        h, w, at_gold, spurious, err = _sim_figures(s, seg, gold)
        found += h
        wanted += w
        errs.append(err)
        assert at_gold == 0, (seed, f, "a gold bead was labelled as a particle")
        assert spurious == 0, (seed, f, "objects that are no particle")
        # every gold bead inside the map is reported (those cut by the border may be too small)
        assert len(seg.fiducials) >= seg.info["n_exclude_at"] - seg.info["n_exclude_at_unmatched"]
        assert seg.info["n_fiducials_at_positions"] == len(seg.fiducials)
    assert wanted >= 10
    assert found / wanted >= 0.98, (found, wanted)
    err = np.concatenate(errs)
    assert np.median(np.abs(err)) <= 0.5, err


def test_analyze_particles_excludes_landmarked_and_user_fiducials(tmp_path):
    s, cfg = _sim_afm(31, 1.0)
    scene = s.to_scene(tmp_path / "s.ome.zarr", transforms="truth")
    f = s.truth.fiducials.dropna(subset=["x_afm", "y_afm"])
    gold_afm = f[["x_afm", "y_afm"]].to_numpy()
    rng = np.random.default_rng(0)
    n_gold_objects = len(segment_afm(s.afm, exclude_at=gold_afm).fiducials)
    assert n_gold_objects >= 2
    plain = analyze_particles(scene, "afm", labels=[], store=False)
    assert any("no fiducial positions known" in n for n in plain.summary["notes"])
    n_all = len(plain.table)
    # the landmarks of a registration of the AFM image (AFM frame = source), with detection
    # error, plus one pair the fit rejected that sits on a particle (a bead detector's mistake)
    part = plain.table.loc[~plain.table["edge"], ["x", "y"]].to_numpy()[:1]
    src = np.vstack([gold_afm + rng.normal(0, 2.0, gold_afm.shape), part])
    dst = np.vstack([f[["x", "y"]].to_numpy(), [[0.0, 0.0]]])
    lm = Landmarks(source=src, target=dst, source_cov=np.full(len(src), 4.0), target_cov=np.full(len(src), 4.0),
                   used=np.r_[np.ones(len(f), bool), False], source_system="afm", target_system="world")
    scene.add_landmarks(lm)
    res = analyze_particles(scene, "afm", labels=[], store=False)
    fs = res.summary["fiducials"]
    assert fs["landmark_sets"] == ["afm__world"] and fs["n_landmark_positions"] == len(f)
    assert fs["n_outlier_landmarks_ignored"] == 1
    assert fs["n_excluded_at_positions"] == n_gold_objects
    assert len(res.table) == n_all - n_gold_objects
    assert not any("no fiducial positions known" in n for n in res.summary["notes"])
    assert res.summary["height_fit"]["method"] == "apex"
    # the same from user positions alone (a table with x, y)
    user = analyze_particles(scene, "afm", labels=[], store=False, fiducials_from_landmarks=False,
                             fiducials=pd.DataFrame({"x": gold_afm[:, 0], "y": gold_afm[:, 1]}))
    assert len(user.table) == len(res.table)
    assert user.summary["fiducials"]["n_user_positions"] == len(f)


def _em(particles, gold, *, n=300, px=2.0, mu=0.006, mu_gold=0.05, dose=400.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] * px
    att = np.zeros((n, n))
    for (x, y, d), m in [(p, mu) for p in particles] + [(g, mu_gold) for g in gold]:
        att += m * 2 * np.sqrt(np.clip((d / 2) ** 2 - (xx - x) ** 2 - (yy - y) ** 2, 0, None))
    img = ndi.gaussian_filter(dose * np.exp(-att), 1.2)
    img = img + rng.standard_normal(img.shape) * np.sqrt(img)
    return make_image(img.astype(np.float32), pixel_size_nm=px, origin_nm={"x": 0.0, "y": 0.0}, modality="em")


def test_em_honours_positions_besides_the_contrast_rule():
    parts = [(120.0, 120.0, 70.0), (420.0, 150.0, 60.0), (200.0, 420.0, 90.0), (450.0, 450.0, 80.0)]
    gold = [(300.0, 300.0, 30.0)]
    img = _em(parts, gold)
    seg = segment_em(img)
    assert len(seg.fiducials) == 1 and seg.fiducials["reason"].iloc[0] == "contrast"
    assert seg.n_particles == 4
    # a particle-like fiducial (e.g. a polymer bead used as landmark) is excluded by its position
    seg2 = segment_em(img, exclude_at=[[421.0, 149.0]])
    assert seg2.n_particles == 3
    assert sorted(seg2.fiducials["reason"]) == ["contrast", "position"]
    d, _ = cKDTree(np.array(parts)[:, :2]).query(seg2.measure()[["x", "y"]].to_numpy())
    assert np.all(d < 3.0)
    with pytest.raises(ElementError, match="positions"):
        segment_em(img, exclude_at=np.zeros((2, 4)))


def test_registration_landmarks_exclude_the_gold_of_a_registered_afm_image(tmp_path):
    """The whole path: register the AFM image onto the EM, then its particle analysis leaves out
    exactly the beads the registration paired."""
    from correlate.datasets import SampleConfig, simulate_sample
    from correlate.registration import register_scene

    s = simulate_sample(SampleConfig.small(seed=2, n_particles=30, make_sim=False, make_smlm=False))
    scene = s.to_scene(tmp_path / "s.ome.zarr", transforms="none")
    reg, _ = register_scene(scene, "afm", "em")
    res = analyze_particles(scene, "afm", labels=[], store=False)
    gold = s.truth.fiducials[["x_afm", "y_afm"]].dropna().to_numpy()
    fs = res.summary["fiducials"]
    assert fs["landmark_sets"] == ["afm__em"]
    assert fs["n_landmark_positions"] == int(reg.landmarks.used.sum())
    assert fs["n_excluded_at_positions"] == fs["n_landmark_positions"] - fs["n_positions_without_object"]
    d_gold = cKDTree(gold).query(res.table[["x", "y"]].to_numpy())[0]
    r_gold = 0.5 * s.config.fiducial_diameter_nm + s.config.afm_tip_radius_nm
    n_paired_gold = int((cKDTree(reg.landmarks.source[reg.landmarks.used]).query(gold)[0] < r_gold).sum())
    assert (d_gold < r_gold).sum() == len(gold) - n_paired_gold
