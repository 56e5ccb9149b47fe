"""Registration core on synthetic point sets: fits, error prediction, model choice, pairing, I/O."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.elements import Landmarks
from correlate.errors import RegistrationError
from correlate.registration import (
    containment_radius,
    fit_landmarks,
    fit_model,
    pair_points,
    read_affine_text,
    read_bigwarp_csv,
    read_landmarks_file,
    write_affine_text,
    write_bigwarp_csv,
)
from correlate.transforms import Affine, ThinPlateSpline


def _rot3(a, b, c):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return rz @ ry @ rx


def _truth(model, d, rng):
    if d == 2:
        r = Affine.similarity(1.0, 0.07).linear
    else:
        r = _rot3(0.05, -0.03, 0.04)
    s = {"translation": 1.0, "rigid": 1.0, "similarity": 1.023, "affine": 1.0}[model]
    a = np.eye(d) if model == "translation" else s * r
    if model == "affine":
        a = a @ np.diag([1.02, 0.985, 1.01][:d]) + 0.01 * np.eye(d)[::-1]
    return Affine.from_parts(a, rng.uniform(-3000, 3000, d))


def _points(n, d, rng, extent=10000.0):
    p = rng.uniform(0, extent, (n, d))
    if d == 3:
        p[:, 2] = rng.uniform(0, 1500, n)
    return p


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("model", ["translation", "rigid", "similarity", "affine"])
def test_noise_free_fit_recovers_transform(model, d):
    rng = np.random.default_rng(1)
    truth = _truth(model, d, rng)
    x = _points(10, d, rng)
    f = fit_model(x, truth.apply(x), model, target_cov=np.full(10, 1.0))
    assert np.allclose(f.transform.matrix, truth.matrix, atol=1e-7)
    assert f.fre_rms < 1e-6
    assert f.dof == 10 * d - f.param_cov.shape[0]


def test_reflection_is_an_error_never_fixed():
    rng = np.random.default_rng(2)
    x = _points(8, 2, rng)
    mirror = Affine.from_parts(np.diag([-1.0, 1.0]), [500.0, 0.0])
    y = mirror.apply(x) + rng.normal(0, 1, x.shape)
    for model in ("rigid", "similarity", "affine"):
        with pytest.raises(RegistrationError, match="mirror|reflection"):
            fit_model(x, y, model, target_cov=np.full(8, 1.0))


def test_degenerate_inputs_say_why():
    rng = np.random.default_rng(3)
    x = _points(5, 2, rng)
    with pytest.raises(RegistrationError, match="at least 3 fiducial pairs"):
        fit_model(x[:2], x[:2], "affine")
    line = np.column_stack([np.linspace(0, 5000, 6), np.linspace(0, 2500, 6)])
    with pytest.raises(RegistrationError, match="collinear"):
        fit_model(line, line + 5.0, "affine", target_cov=np.full(6, 1.0))
    with pytest.raises(RegistrationError, match="unknown registration model"):
        fit_model(x, x, "projective")


def test_fitzpatrick_west_2d_and_3d():
    rng = np.random.default_rng(4)
    sigma = 5.0
    for d in (2, 3):
        x = _points(9, d, rng)
        y = _truth("rigid", d, rng).apply(x)
        f = fit_model(x, y + rng.normal(0, sigma, x.shape), "rigid", target_cov=np.full(9, sigma**2), noise_scale=1.0)
        c = x.mean(0)
        targets = c + np.array([[0, 0, 0], [3000, 0, 0], [0, 6000, 300], [12000, 9000, 0]])[:, :d]
        pred = np.trace(f.tre_cov(targets), axis1=1, axis2=2)
        fle2 = d * sigma**2
        n = len(x)
        if d == 2:
            rho2 = np.mean(np.sum((x - c) ** 2, axis=1))
            fw = fle2 / n * (1 + np.sum((targets - c) ** 2, axis=1) / (2 * rho2))
        else:
            _evals, evecs = np.linalg.eigh(np.cov((x - c).T, bias=True))
            fk2 = np.array([np.mean(np.sum((x - c) ** 2, axis=1) - ((x - c) @ evecs[:, k]) ** 2) for k in range(3)])
            dk2 = np.array([np.sum((targets - c) ** 2, axis=1) - ((targets - c) @ evecs[:, k]) ** 2 for k in range(3)]).T
            fw = fle2 / n * (1 + np.sum(dk2 / fk2, axis=1) / 3)
        np.testing.assert_allclose(pred, fw, rtol=0.01)


def _mc_check(model, d, n_trials, seed, tol):
    """First-order predicted TRE vs Monte Carlo, anisotropic heteroscedastic noise on both sides."""
    rng = np.random.default_rng(seed)
    n = 10
    x = _points(n, d, rng)
    truth = _truth(model, d, rng)
    y = truth.apply(x)
    base = np.diag([10.0, 10.0, 40.0][:d]) ** 2
    f_x = rng.uniform(0.5, 2.5, n)
    cx = f_x[:, None, None] * base[None]
    cy = np.broadcast_to(np.diag([4.0, 4.0, 8.0][:d]) ** 2, (n, d, d)).copy()
    c = x.mean(0)
    targets = c + np.array([[0, 0, 0], [3000, 0, 0], [0, 6000, 300], [9000, 7000, 0]])[:, :d]
    pred = fit_model(x, y, model, cx, cy, noise_scale=1.0).tre_rms(targets)
    lx, ly = np.linalg.cholesky(cx), np.linalg.cholesky(cy)
    err = np.zeros((n_trials, len(targets)))
    for k in range(n_trials):
        xn = x + np.einsum("nij,nj->ni", lx, rng.standard_normal((n, d)))
        yn = y + np.einsum("nij,nj->ni", ly, rng.standard_normal((n, d)))
        f = fit_model(xn, yn, model, cx, cy, check_reflection=False, noise_scale=1.0)
        err[k] = np.sum((f.transform.apply(targets) - truth.apply(targets)) ** 2, axis=1)
    mc = np.sqrt(err.mean(0))
    np.testing.assert_allclose(pred, mc, rtol=tol)
    return pred, mc


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("model", ["rigid", "similarity", "affine"])
def test_first_order_tre_matches_monte_carlo_quick(model, d):
    # 300 trials: the MC RMS has ~4 % standard error; 10 % is the contract, 12 % leaves room for MC noise.
    _mc_check(model, d, 300, seed=10 + d, tol=0.12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("model", ["rigid", "similarity", "affine"])
def test_first_order_tre_matches_monte_carlo_slow(model, d, seed):
    _mc_check(model, d, 3000, seed=100 + seed, tol=0.10)


def test_containment_radius():
    assert containment_radius(np.eye(2) * 4.0) == pytest.approx(2.0 * np.sqrt(5.991), rel=2e-3)
    assert containment_radius(np.diag([9.0, 0.0])) == pytest.approx(3 * 1.95996, rel=2e-3)
    assert containment_radius(np.eye(3)) == pytest.approx(np.sqrt(7.8147), rel=2e-3)
    rng = np.random.default_rng(0)
    for cov in (np.array([[30.0, 8.0], [8.0, 5.0]]), np.diag([25.0, 4.0, 1.0])):
        r = containment_radius(cov)
        e = rng.multivariate_normal(np.zeros(len(cov)), cov, 200_000)
        assert np.mean(np.linalg.norm(e, axis=1) < r) == pytest.approx(0.95, abs=0.003)


def _distortion(p, amp=15.0, period=9000.0):
    return p + amp * np.column_stack([np.sin(2 * np.pi * p[:, 1] / period), np.cos(2 * np.pi * p[:, 0] / period)])


def test_tps_matches_core_spline_and_inverts():
    rng = np.random.default_rng(5)
    x = _points(15, 2, rng)
    y = _distortion(Affine.similarity(1.01, 0.03, (200, -100)).apply(x))
    f = fit_model(x, y, "tps", target_cov=np.full(15, 1.0), smoothing=0.0)
    core = ThinPlateSpline.fit(x, y, 0.0)
    q = _points(50, 2, rng)
    np.testing.assert_allclose(f.transform.apply(q), core.apply(q), atol=1e-6)
    back = f.transform.inverse().apply(f.transform.apply(q))
    assert np.abs(back - q).max() < 0.1
    assert f.fre_rms < 1e-6


def test_model_choice_on_synthetic_sets():
    rng = np.random.default_rng(6)
    x = _points(16, 2, rng)
    sim = Affine.similarity(1.02, 0.05, (2000, -1000))
    s = 2.0
    cov = np.full(16, s**2)
    for truth, expect in (
        (sim.apply, "similarity"),
        (lambda p: _distortion(sim.apply(p), amp=40.0), "tps"),
    ):
        y = truth(x) + rng.normal(0, s, x.shape)
        reg = fit_landmarks(Landmarks(x, y, None, cov), "auto")
        assert reg.model == expect, reg.summary()
        assert "p =" in reg.reason or "leave-one-out" in reg.reason


def test_reason_says_an_interpolating_tps_was_not_tested():
    """Tiny fiducial noise and a smooth distortion: the deformation test calls for a TPS that
    (almost) interpolates the fiducials (< 1 residual dof, p = NaN). The reason must not claim
    that the TPS was tested against the noise by a chi-square."""
    rng = np.random.default_rng(11)
    x = _points(10, 2, rng)
    y = _distortion(Affine.similarity(1.01, 0.03, (200, -100)).apply(x), period=20000.0) + rng.normal(0, 0.05, x.shape)
    reg = fit_landmarks(Landmarks(x, y, None, np.full(10, 0.05**2)), "auto", reject_outliers=False)
    assert reg.model == "tps" and not reg.fit.dof >= 1, reg.summary()
    assert "tps (almost) interpolates the fiducials" in reg.reason, reg.reason
    assert reg.reason.startswith("smooth deformation beyond noise + excess"), reg.reason


def test_outlier_is_flagged():
    rng = np.random.default_rng(7)
    x = _points(14, 2, rng)
    y = Affine.similarity(0.99, -0.1, (500, 500)).apply(x) + rng.normal(0, 2.0, x.shape)
    y[3] += [60.0, -40.0]
    reg = fit_landmarks(Landmarks(x, y, None, np.full(14, 4.0)), "auto")
    assert reg.outliers == [3]
    assert not reg.landmarks.used[3]
    assert reg.model == "similarity"


def test_pairing_any_rotation_scale_extras_and_missing():
    rng = np.random.default_rng(8)
    world = _points(12, 2, rng, 15000)
    for rot_deg, scale in ((3.0, 1.03), (170.0, 0.92), (-95.0, 1.08)):
        t = Affine.similarity(scale, np.deg2rad(rot_deg), (4000.0, -7000.0))
        moving = t.inverse().apply(world) + rng.normal(0, 2, world.shape)
        fixed = world + rng.normal(0, 1, world.shape)
        keep = np.arange(2, 12)  # two missing on the moving side
        extra_m = rng.uniform(moving.min(0), moving.max(0), (4, 2))
        extra_f = rng.uniform(0, 15000, (4, 2))
        xs = np.vstack([moving[keep], extra_m])
        ys = np.vstack([extra_f, fixed])
        p = pair_points(xs, ys, np.full((14, 2, 2), 4.0 * np.eye(2)), np.full((16, 2, 2), np.eye(2)))
        assert len(p) == 10
        assert all(s < 10 and tt == keep[s] + 4 for s, tt in zip(p.source_index, p.target_index))


def test_pairing_failures_say_why():
    rng = np.random.default_rng(9)
    a = _points(10, 2, rng)
    b = _points(10, 2, rng)
    with pytest.raises(RegistrationError, match="no consistent pairing"):
        pair_points(a, b, min_pairs=5)
    with pytest.raises(RegistrationError, match="at least 3 needed"):
        pair_points(a[:2], b)
    mirrored = a * [-1, 1] + 300
    p = pair_points(a, mirrored)  # a mirror is found and reported, not refused
    assert p.mirrored and len(p) == 10 and np.all(p.source_index == p.target_index)
    with pytest.raises(RegistrationError, match="mirror") as exc:
        pair_points(a, mirrored, allow_mirror=False)
    assert exc.value.stage == "pairing" and "no-mirror" in exc.value.hint


def test_bigwarp_csv_round_trip_and_fit(tmp_path):
    rng = np.random.default_rng(10)
    x = _points(7, 2, rng)
    t = Affine.similarity(1.01, 0.02, (120.5, -33.25))
    lm = Landmarks(x, t.apply(x), used=np.array([True] * 6 + [False]))
    p = tmp_path / "landmarks.csv"
    write_bigwarp_csv(p, lm)
    text = p.read_text().splitlines()
    assert text[0].startswith('"Pt-0","true","') and text[-1].startswith('"Pt-6","false","')
    back = read_bigwarp_csv(p)
    np.testing.assert_array_equal(back.source, lm.source)
    np.testing.assert_array_equal(back.target, lm.target)
    np.testing.assert_array_equal(back.used, lm.used)
    write_bigwarp_csv(tmp_path / "again.csv", back)
    assert (tmp_path / "again.csv").read_text() == p.read_text()
    reg = fit_landmarks(read_landmarks_file(p), "similarity")
    assert np.allclose(reg.transform.matrix, t.matrix, atol=1e-8)
    assert reg.landmarks.used.sum() == 6
    write_affine_text(tmp_path / "m.txt", reg.transform)
    assert np.allclose(read_affine_text(tmp_path / "m.txt").matrix, reg.transform.matrix, atol=1e-12)


def test_bigwarp_3d_and_pairs_csv(tmp_path):
    p = tmp_path / "bw3.csv"
    p.write_text('"Pt-0","true","1.0","2.0","3.0","4.0","5.0","6.0"\n"Pt-1","false","1.5","2","3","4","5","6"\n')
    lm = read_bigwarp_csv(p, unit_nm=1000.0)
    assert lm.ndim == 3 and lm.source[0, 2] == 3000.0 and lm.target[0, 0] == 4000.0 and not lm.used[1]
    q = tmp_path / "pairs.csv"
    q.write_text("source_x,source_y,target_x,target_y,target_sigma\n0,0,10,0,2\n100,0,110,0,2\n0,100,10,100,2\n")
    lm2 = read_landmarks_file(q)
    assert lm2.target_cov[0, 0, 0] == pytest.approx(4.0)
    bad = tmp_path / "bad.csv"
    bad.write_text('"Pt-0","maybe","1","2","3","4"\n')
    from correlate.errors import FormatError

    with pytest.raises(FormatError, match="enabled"):
        read_bigwarp_csv(bad)


def test_3d_auto_selection_tps_and_pairing():
    rng = np.random.default_rng(11)
    x = _points(16, 3, rng)
    truth = _truth("similarity", 3, rng)
    cx = np.broadcast_to(np.diag([2.0, 2.0, 8.0]) ** 2, (16, 3, 3))
    y = truth.apply(x) + rng.normal(0, 1, x.shape) * [2, 2, 8]
    reg = fit_landmarks(Landmarks(x, y, None, cx), "auto")
    assert reg.model == "similarity", reg.summary()
    # anisotropic prediction: the z error is predicted larger than x, y at the centroid
    c = reg.fit.tre_cov(x.mean(0)[None])[0]
    assert c[2, 2] > 4 * c[0, 0]
    # a 3-D smoothing spline inverts to 0.1 nm
    f = fit_model(x, y, "tps", target_cov=cx)
    q = x.mean(0) + rng.normal(0, 1000, (20, 3))
    assert np.abs(f.transform.inverse().apply(f.transform.apply(q)) - q).max() < 0.1
    # 3-D pairing: hypotheses in x, y, z offset from the inliers
    shuffled = rng.permutation(16)
    p = pair_points(x, y[shuffled] , np.asarray(np.zeros((16, 3, 3))), cx)
    assert len(p) == 16 and np.all(shuffled[p.target_index] == p.source_index)


def test_tre_map_is_lowest_near_the_fiducial_centroid():
    from correlate.registration import tre_map

    rng = np.random.default_rng(12)
    x = _points(10, 2, rng)
    f = fit_model(x, x + 100.0, "rigid", target_cov=np.full(10, 4.0), noise_scale=1.0)
    m = tre_map(f, origin=(-5000.0, -5000.0), spacing=(250.0, 250.0), shape=(81, 81), frame="moving")
    iy, ix = np.unravel_index(np.argmin(m.values), m.shape)
    c = x.mean(0)
    assert abs(float(m.x[ix]) - c[0]) <= 250 and abs(float(m.y[iy]) - c[1]) <= 250
    assert float(m.min()) == pytest.approx(np.sqrt(2 * 4.0 / 10), rel=0.02)  # sigma^2 * D / N at c


def test_tps_error_model_position_dependent_and_round_trips():
    """The spline's model error grows away from the fiducials (kriging variance) and survives the
    JSON error model, including a NaN noise scale stored as null."""
    import json

    from correlate.registration import Fit

    rng = np.random.default_rng(13)
    x = _points(14, 2, rng)
    y = _distortion(Affine.similarity(1.01, 0.03, (200, -100)).apply(x), amp=10.0) + rng.normal(0, 0.1, x.shape)
    reg = fit_landmarks(Landmarks(x, y, None, np.full(14, 0.01)), "tps", reject_outliers=False)
    f = reg.fit
    assert f.model_scale > 0 and f.model_var == 0, f.notes
    c = x.mean(0)
    far = c + 3 * (x.max(0) - x.min(0))
    r_fid, r_far = f.tre_rms(x), f.tre_rms(far[None])[0]
    assert r_far > 5 * np.median(r_fid)
    q = np.vstack([x, rng.uniform(0, 10000, (30, 2)), far[None]])
    back = Fit.from_error_model(json.loads(json.dumps(f.error_model())))
    np.testing.assert_allclose(back.tre_cov(q), f.tre_cov(q), rtol=1e-9, atol=1e-12)
    d = f.error_model()
    d["noise_scale"] = None  # how the store writes NaN
    assert np.all(np.isnan(Fit.from_error_model(d).tre_rms(q)))


def test_tps_noise_scale_needs_one_residual_dof():
    """Unknown covariances and a (near-)interpolating spline: chi2/dof is no noise estimate."""
    rng = np.random.default_rng(14)
    x = _points(8, 2, rng)
    y = _distortion(x, amp=30.0) + rng.normal(0, 0.5, x.shape)
    f = fit_model(x, y, "tps", smoothing=1e-9)
    assert f.dof < 1 and np.isnan(f.noise_scale)
    f2 = fit_model(x, y, "tps", smoothing=1e9)  # ~affine: 10 residual dof
    assert f2.dof >= 1 and np.isfinite(f2.noise_scale) and f2.noise_scale > 0
