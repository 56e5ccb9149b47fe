"""Registration on the simulated correlative sample (correlate.datasets): detection, automatic
pairing, model choice, TRE against the truth and against a Monte-Carlo optimum, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.datasets import SampleConfig, simulate_sample
from correlate.elements import Landmarks
from correlate.registration import (
    detect_fiducials,
    fiducial_arrays,
    fiducial_table,
    fit_landmarks,
    fit_model,
    register_elements,
    register_points,
    tre_map,
)

# 12 fiducials over 6 um, rotation 2 deg, scale 1.015, offset (-2, -1.5) um, 10 nm smooth distortion.
_BASE = {"field_nm": 6000.0, "n_fiducials": 12, "em_pixel_nm": 3.0, "make_sim": False, "make_afm": False, "n_particles": 25}


def _sample(seed, distortion=10.0, **kw):
    return simulate_sample(SampleConfig.small(seed=seed, distortion_nm=distortion, **(_BASE | kw)))


def _control_points(s, reg, n=3000, seed=5):
    """World control points inside the fiducial hull, and their positions in the SMLM frame."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    w = rng.uniform(0, s.config.field_nm if hasattr(s, "config") else _BASE["field_nm"], (n, 2))
    cam = s.truth.transforms["antibody"].inverse().apply(w)
    inside = Delaunay(reg.fit.source).find_simplex(cam) >= 0
    return w[inside], cam[inside]


def _mc_optimum(s, reg, w, cam, trials=30, seed=7):
    """Median TRE of the same model fitted to the TRUE fiducials plus noise at the detected
    covariances (what a perfect detector/pairer with this noise would achieve)."""
    rng = np.random.default_rng(seed)
    f = s.truth.fiducials
    xt = f[["x_smlm", "y_smlm"]].to_numpy()
    yt = f[["x", "y"]].to_numpy()
    cs = reg.landmarks.source_cov.mean(0)
    ct = reg.landmarks.target_cov.mean(0)
    n = len(xt)
    meds = []
    for _ in range(trials):
        xn = xt + rng.multivariate_normal([0, 0], cs, n)
        yn = yt + rng.multivariate_normal([0, 0], ct, n)
        fit = fit_model(xn, yn, reg.model, np.broadcast_to(cs, (n, 2, 2)), np.broadcast_to(ct, (n, 2, 2)),
                        check_reflection=False)
        meds.append(np.median(np.linalg.norm(fit.transform.apply(cam) - w, axis=1)))
    return float(np.median(meds))


@pytest.fixture(scope="module")
def distorted():
    return _sample(0)


def _check_pairs_true(s, lm, tol_nm=5.0):
    truth = s.truth.transforms["antibody"]
    d = np.linalg.norm(truth.apply(lm.source) - lm.target, axis=1)
    return d.max() < tol_nm


def test_smlm_onto_em_automatic(distorted, capsys):
    s = distorted
    reg = register_elements(s.smlm["antibody"], s.em)
    assert len(reg.landmarks) == 12 and reg.landmarks.used.all()
    assert _check_pairs_true(s, reg.landmarks)
    assert reg.model == "tps", reg.summary()  # 10 nm distortion: non-rigid
    w, cam = _control_points(s, reg)
    err = np.linalg.norm(reg.transform.apply(cam) - w, axis=1)
    med = float(np.median(err))
    opt = _mc_optimum(s, reg, w, cam)
    with capsys.disabled():
        print(f"\n[smlm->em] median TRE {med:.3f} nm, MC optimum {opt:.3f} nm, LOO {reg.loo_rms:.2f} nm, model {reg.model}")
    assert med <= 5.0
    assert med <= 1.5 * opt + 0.05  # + 0.05 nm: both are sub-nm here
    # predicted TRE is reported and finite; the map is an image in nm
    m = tre_map(reg.fit, s.em, max_size=32)
    assert m.dims == ("y", "x") and m.attrs["value_unit"] == "nm" and np.all(np.isfinite(m.values))


def test_undistorted_chooses_a_linear_similarity_model():
    s = _sample(1, distortion=0.0)
    reg = register_elements(s.smlm["antibody"], s.em)
    assert _check_pairs_true(s, reg.landmarks)
    assert reg.model in ("rigid", "similarity"), reg.summary()
    w, cam = _control_points(s, reg)
    err = np.linalg.norm(reg.transform.apply(cam) - w, axis=1)
    assert np.median(err) < 1.0


def test_pairing_with_spurious_and_missing_detections(distorted):
    s = distorted
    fm = detect_fiducials(s.smlm["antibody"])
    ff = detect_fiducials(s.em)
    xs, cs = fiducial_arrays(fm)
    ys, ct = fiducial_arrays(ff)
    rng = np.random.default_rng(0)
    n_extra = int(np.ceil(0.3 * len(xs)))
    xs2 = np.vstack([rng.uniform(xs.min(0), xs.max(0), (n_extra, 2)), xs[2:]])  # 2 missing, 30 % extra
    cs2 = np.vstack([np.repeat(cs[:1], n_extra, 0), cs[2:]])
    ys2 = np.vstack([ys, rng.uniform(ys.min(0), ys.max(0), (n_extra, 2))])
    ct2 = np.vstack([ct, np.repeat(ct[:1], n_extra, 0)])
    reg = register_points(fiducial_table(xs2, cs2), fiducial_table(ys2, ct2))
    assert len(reg.landmarks) == len(xs) - 2
    assert _check_pairs_true(s, reg.landmarks)


@pytest.mark.parametrize("name", ["sim", "afm"])
def test_sim_and_afm_onto_em(name):
    s = simulate_sample(SampleConfig.small(seed=3, n_fiducials=10, make_smlm=False))
    reg = register_elements(getattr(s, name), s.em)
    truth = s.truth.transforms[name]
    src = reg.landmarks.source
    d = np.linalg.norm(truth.apply(src) - reg.landmarks.target, axis=1)
    assert d.max() < 10.0  # every pair is a true pair
    err = np.linalg.norm(reg.transform.apply(src) - truth.apply(src), axis=1)
    assert len(reg.landmarks) >= 4
    assert err.mean() < (3.0 if name == "sim" else 1.0)
    assert reg.model in ("rigid", "similarity")  # both truths are rigid here


_SIGMAS = (0.1, 0.3, 1.0, 3.0)


def _coverage(seeds, sigmas, reps, distortion=10.0):
    """Per noise level: fraction of control points (inside the hull) whose true error is inside
    the predicted 95 % radius, over registrations (``fit_landmarks``, model "auto") of the true
    simulator fiducials plus known anisotropic heteroscedastic noise of scale ``sigma`` (nm)."""
    from scipy.spatial import Delaunay

    hits = dict.fromkeys(sigmas, 0)
    total = dict.fromkeys(sigmas, 0)
    for seed in seeds:
        s = simulate_sample(SampleConfig.small(seed=seed, field_nm=8000, n_fiducials=12, distortion_nm=distortion,
                                               make_em=False, make_sim=False, make_afm=False, n_particles=5, n_frames=50))
        f = s.truth.fiducials
        xt = f[["x_smlm", "y_smlm"]].to_numpy()
        yt = f[["x", "y"]].to_numpy()
        rng = np.random.default_rng(seed + 1000)
        w = rng.uniform(0, 8000, (800, 2))
        cam = s.truth.transforms["antibody"].inverse().apply(w)
        ins = Delaunay(xt).find_simplex(cam) >= 0
        for sig in sigmas:
            for _ in range(reps):
                cx = (sig**2 * rng.uniform(0.5, 2, len(xt)))[:, None, None] * np.diag([1.0, 0.5])[None]
                cy = np.broadcast_to(np.eye(2) * (0.5 * sig) ** 2, (len(xt), 2, 2))
                xn = xt + np.einsum("nij,nj->ni", np.linalg.cholesky(cx), rng.standard_normal(xt.shape))
                yn = yt + np.einsum("nij,nj->ni", np.linalg.cholesky(cy), rng.standard_normal(yt.shape))
                reg = fit_landmarks(Landmarks(xn, yn, cx, cy))
                err = np.linalg.norm(reg.transform.apply(cam[ins]) - w[ins], axis=1)
                hits[sig] += int(np.sum(err < reg.fit.tre_radius(cam[ins])))
                total[sig] += int(ins.sum())
    return {sig: hits[sig] / total[sig] for sig in sigmas}


def test_predicted_95_coverage_quick(capsys):
    """Few registrations per level: the coverage fraction is noisy (errors at the control points
    of one registration are strongly correlated), hence the wide band. The slow test holds the
    contract's 90-98 % per level. At 0.1 nm these 12 registrations give 0.998: the outlier flags
    now allow for a common excess, so no bead of the 10 nm distortion is flagged (one was, in
    some registrations, before: 0.970) and the spline's kriging error model over-predicts on
    all 12 beads (radius median ~1.1 nm against a true error of ~0.2 nm); the old constant
    model error gave 0.997 at 0.1 nm."""
    cov = _coverage(seeds=range(4), sigmas=(0.1, 1.0, 3.0), reps=3)
    with capsys.disabled():
        print("\n[coverage quick, 10 nm distortion] " + ", ".join(f"sigma {k}: {v:.3f}" for k, v in cov.items()))
    for sig, c in cov.items():
        assert 0.80 <= c <= 0.999, (sig, cov)


@pytest.mark.slow
@pytest.mark.parametrize("distortion", [0.0, 10.0])
def test_predicted_95_coverage(distortion, capsys):
    # 24 seeds x 8 registrations per noise level (192): enough that the per-level fraction is
    # stable to about +-0.015.
    cov = _coverage(seeds=range(24), sigmas=_SIGMAS, reps=8, distortion=distortion)
    with capsys.disabled():
        print(f"\n[coverage distortion={distortion}] " + ", ".join(f"sigma {k}: {v:.3f}" for k, v in cov.items()))
    for sig, c in cov.items():
        assert 0.90 <= c <= 0.98, (sig, cov)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_demo_sized_sample_tre(seed, capsys):
    s = simulate_sample(SampleConfig(seed=seed, make_sim=False, make_afm=False))
    reg = register_elements(s.smlm["antibody"], s.em)
    assert len(reg.landmarks) == 12 and _check_pairs_true(s, reg.landmarks)
    assert reg.model == "tps"
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 8000, (3000, 2))
    cam = s.truth.transforms["antibody"].inverse().apply(w)
    ins = Delaunay(reg.fit.source).find_simplex(cam) >= 0
    w, cam = w[ins], cam[ins]
    med = float(np.median(np.linalg.norm(reg.transform.apply(cam) - w, axis=1)))
    opt = _mc_optimum(s, reg, w, cam)
    with capsys.disabled():
        print(f"\n[demo seed {seed}] median TRE {med:.3f} nm, MC optimum {opt:.3f} nm")
    assert med <= 5.0 and med <= 1.5 * opt + 0.05


def test_localization_landmarks_keep_covariance(distorted):
    fm = detect_fiducials(distorted.smlm["antibody"])
    assert len(fm) == 12
    # standard error of a mean over ~hundreds of ~1 nm localizations: well below 1 nm, positive
    assert (fm["cov_xx"] > 0).all() and (fm["cov_xx"] < 0.1).all()
    assert (fm["frame_fraction"] > 0.8).all()


def test_intensity_refinement_direction_and_acceptance():
    from correlate.elements import make_image
    from correlate.registration._refine_sitk import refine_affine, refine_registration
    from correlate.transforms import Affine

    s = simulate_sample(SampleConfig.small(seed=3, n_fiducials=10, make_smlm=False, make_afm=False))
    sim = s.sim
    # the same image with its coordinates shifted by (+50, -30) nm: moving -> fixed is (-50, +30)
    moved = make_image(sim.values, pixel_size_nm=32.0, origin_nm={"x": float(sim.x[0]) + 50, "y": float(sim.y[0]) - 30},
                       modality="sim")
    r = refine_affine(moved, sim, Affine(np.eye(3)))
    np.testing.assert_allclose(r.offset, [-50.0, 30.0], atol=6.0)  # ~0.2 SIM pixel
    # SIM onto EM: the landmark fit is sub-nm, mutual information cannot beat it -> rejected
    reg = register_elements(sim, s.em, model="similarity")
    before = reg.transform.matrix
    out = refine_registration(reg, sim, s.em)
    assert "held_out_before_nm" in out and out["accepted"] == (out["held_out_after_nm"] < out["held_out_before_nm"])
    if not out["accepted"]:
        np.testing.assert_array_equal(reg.transform.matrix, before)


def test_intensity_refinement_never_replaces_a_spline():
    """An affine MI refinement must not silently stand in for a TPS registration (the record and
    the TRE prediction would still describe the spline)."""
    from correlate.registration._refine_sitk import refine_registration

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 5000, (12, 2))
    y = x + 20 * np.column_stack([np.sin(x[:, 1] / 900), np.cos(x[:, 0] / 800)])
    reg = fit_landmarks(Landmarks(x, y, None, np.full(12, 0.01)), "tps")
    before = reg.transform
    out = refine_registration(reg, None, None)  # images are not even looked at
    assert out["accepted"] is False and "non-linear" in out["message"]
    assert reg.transform is before
