"""3-D registration with beads in both volumes, on randomized simulated samples (simulate_volume:
voxels 0.5-4 nm in x/y and 1-8 nm in z, 6-10 gold beads of 6-15 nm, astigmatic or MINFLUX-like
3-D localizations, any rotation, mirrored frames): bead detection in the EM volume and in the
localizations, any-pose pairing, the fitted 3-D transform, its predicted TRE against the observed
error, and the achieved TRE against the Monte-Carlo optimum (the same model fitted to the true
bead positions with the detected noise)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from correlate.datasets import simulate_volume
from correlate.datasets._volume import random_rotation
from correlate.errors import CorrelateError, RegistrationError
from correlate.registration import (
    detect_smlm_fiducials,
    detect_volume_beads,
    fiducial_arrays,
    fit_model,
    pair_points_3d,
    register_points_3d,
)

QUICK = ((1, 2_500_000), (6, 2_500_000), (10, 2_500_000))  # (seed, voxel budget)
SWEEP = tuple((s, None) for s in range(0, 16))
_MC_TRIALS = 200


def _match(found: np.ndarray, truth: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest true point per found point and whether it lies within ``tol`` nm."""
    d = np.linalg.norm(found[:, None] - truth[None], axis=2)
    return d.argmin(1), d.min(1) < tol


def _test_points(s, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in the EM volume (EM frame) and their true SMLM-frame positions (nm)."""
    rng = np.random.default_rng(11)
    w = rng.uniform(0, s.params["box_nm"], (n, 3))
    return w, s.smlm_to_em.inverse().apply(w)


def _mc_optimum(s, reg, cov_m: np.ndarray, cov_f: np.ndarray, w, cam, trials: int = _MC_TRIALS) -> float:
    """RMS TRE (nm) at the test points of the same model fitted to the TRUE beads in both frames
    plus noise drawn from the detected covariances (per bead), over Monte-Carlo noise draws."""
    rng = np.random.default_rng(5)
    xt, yt = s.beads_smlm, s.beads[["x", "y", "z"]].to_numpy()
    lm, lf = np.linalg.cholesky(cov_m), np.linalg.cholesky(cov_f)
    sq = []
    for _ in range(trials):
        xn = xt + np.einsum("nij,nj->ni", lm, rng.standard_normal(xt.shape))
        yn = yt + np.einsum("nij,nj->ni", lf, rng.standard_normal(yt.shape))
        f = fit_model(xn, yn, reg.model, cov_m, cov_f, check_reflection=False, reflection=reg.mirrored)
        sq.append(np.mean(np.sum((f.transform.apply(cam) - w) ** 2, axis=1)))
    return float(np.sqrt(np.mean(sq)))


def run_case(seed: int, budget: int | None) -> dict:
    s = simulate_volume(seed, ranges={"max_voxels": budget} if budget else None)
    em = detect_volume_beads(s.volume, s.voxel_nm)
    sm = detect_smlm_fiducials(s.localizations)
    reg = register_points_3d(sm, em, moving_name="smlm", fixed_name="em")
    pe, ce = fiducial_arrays(em, 3)
    ps, cs = fiducial_arrays(sm, 3)
    gold = s.beads[["x", "y", "z"]].to_numpy()
    je, oke = _match(pe, gold, s.params["gold_diameter_nm"] / 2)
    js, oks = _match(ps, s.beads_smlm, s.params["gold_diameter_nm"] / 2)
    # per true bead the detected covariance on each side (median of the others where undetected)
    cov_f = np.broadcast_to(np.median(ce, 0), (len(gold), 3, 3)).copy()
    cov_m = np.broadcast_to(np.median(cs, 0), (len(gold), 3, 3)).copy()
    cov_f[je[oke]], cov_m[js[oks]] = ce[oke], cs[oks]
    w, cam = _test_points(s)
    err = reg.transform.apply(cam) - w
    tre = float(np.sqrt(np.mean(np.sum(err**2, axis=1))))
    tcov = reg.fit.tre_cov(cam)
    m2 = np.einsum("ni,nij,nj->n", err, np.linalg.inv(tcov), err)
    opt = _mc_optimum(s, reg, cov_m, cov_f, w, cam)
    return dict(seed=seed, s=s, em=em, sm=sm, reg=reg, je=je, oke=oke, js=js, oks=oks, pe=pe, ce=ce, ps=ps, cs=cs,
                tre=tre, pred=float(np.sqrt(np.mean(np.trace(tcov, axis1=1, axis2=2)))), m2=float(np.mean(m2)),
                opt=opt, ratio=tre / opt)


def _line(r) -> str:
    s, reg = r["s"], r["reg"]
    return (f"seed {r['seed']:3d} voxel {np.round(s.voxel_nm, 2).tolist()} {s.params['kind']:<10} "
            f"mirror {s.params['mirror']!s:<5} beads {len(s.beads)} em {len(r['em'])} smlm {len(r['sm'])} "
            f"pairs {len(reg.landmarks)} model {reg.model} excess {reg.fit.excess_fle_nm:.3f} nm | "
            f"TRE {r['tre']:.3f} nm predicted {r['pred']:.3f} nm MC optimum {r['opt']:.3f} nm ratio {r['ratio']:.2f}")


@pytest.fixture(scope="module")
def quick():
    return [run_case(seed, budget) for seed, budget in QUICK]


def _check_detection(rows):
    """(a) every gold bead found once in the EM volume, nothing else; the error within its stated
    standard error (5 sigma per axis) plus the Gaussian model's misfit of a blurred ball on the
    voxel grid (at most 5 % of a voxel per axis). (b) the same for the SMLM fiducials (stated
    standard error of their mean only)."""
    for r in rows:
        s = r["s"]
        n = len(s.beads)
        assert len(r["em"]) == n and r["oke"].all() and len(set(r["je"])) == n, _line(r)
        assert r["em"]["fit_ok"].all(), r["em"].attrs["estimated"]
        e = r["pe"] - s.beads[["x", "y", "z"]].to_numpy()[r["je"]]
        sd = np.sqrt(np.einsum("nii->ni", r["ce"]))
        assert np.all(np.abs(e) <= 5 * sd + 0.05 * np.asarray(s.voxel_nm)), (r["seed"], e, sd)
        assert len(r["sm"]) == n and r["oks"].all() and len(set(r["js"])) == n, _line(r)
        es = r["ps"] - s.beads_smlm[r["js"]]
        assert np.all(np.abs(es) <= 5 * np.sqrt(np.einsum("nii->ni", r["cs"]))), (r["seed"], es)


def _check_pairing(rows):
    """(c) every pair is a true correspondence; all beads seen on both sides are paired; the mirror found."""
    for r in rows:
        reg, s = r["reg"], r["s"]
        mi, fi = np.asarray(reg.pairing["moving_index"]), np.asarray(reg.pairing["fixed_index"])
        assert np.array_equal(r["js"][mi], r["je"][fi]), _line(r)
        assert len(mi) == len(set(r["js"]) & set(r["je"])), _line(r)
        assert reg.mirrored == s.params["mirror"], _line(r)


def _check_tre(rows, capsys, title):
    """(d) the predicted TRE covariance explains the observed error (mean Mahalanobis^2 over the
    test points, pooled over samples, inside the chi-square(3 per sample) band at 1e-3), and the
    achieved TRE is within 1.5 x the Monte-Carlo optimum (RMS of the per-sample ratios)."""
    with capsys.disabled():
        print(f"\n[{title}]")
        for r in rows:
            print("  " + _line(r))
    m2 = np.mean([r["m2"] for r in rows])
    k = 3 * len(rows)
    lo, hi = chi2.ppf(5e-4, k) / len(rows), chi2.ppf(1 - 5e-4, k) / len(rows)
    ratio = float(np.sqrt(np.mean([r["ratio"] ** 2 for r in rows])))
    with capsys.disabled():
        print(f"  mean Mahalanobis^2 {m2:.2f} (band {lo:.2f}-{hi:.2f}), RMS TRE ratio to the MC optimum {ratio:.2f}")
    assert lo <= m2 <= hi, m2
    assert ratio <= 1.5, ratio


def test_detection_quick(quick):
    _check_detection(quick)


def test_pairing_quick(quick):
    _check_pairing(quick)


def test_tre_quick(quick, capsys):
    for r in quick:
        assert r["reg"].fit.ndim == 3 and r["reg"].excess["source"] == "estimated"
        assert "excess fiducial error" in r["reg"].summary()
    _check_tre(quick, capsys, "3-D registration, quick seeds")


@pytest.mark.slow
def test_registration_sweep_slow(capsys):
    rows = [run_case(seed, budget) for seed, budget in SWEEP]
    _check_tre(rows, capsys, "3-D registration, seed sweep")
    _check_detection(rows)
    _check_pairing(rows)


@pytest.mark.parametrize("seed", range(6))
def test_pairing_any_pose_missing_and_spurious(seed):
    """Any rotation, either handedness, a scale 0.5-2, 1-2 beads missing on one side and 1-2
    spurious on the other: the pairs are the true ones and the mirror is reported."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 11))
    x = rng.uniform(0, 400, (n, 3)) * [1, 1, 0.4]
    mirror = bool(seed % 2)
    lin = float(np.exp(rng.uniform(np.log(0.5), np.log(2)))) * random_rotation(rng) @ np.diag([1, 1, -1 if mirror else 1])
    y = x @ lin.T + rng.uniform(-1000, 1000, 3)
    sx, sy = 0.3, 0.5
    xn = x + sx * rng.standard_normal(x.shape)
    yn = y + sy * rng.standard_normal(y.shape)
    drop = rng.choice(n, int(rng.integers(1, 3)), replace=False)
    keep = np.setdiff1d(np.arange(n), drop)
    extra = rng.uniform(y.min(0), y.max(0), (int(rng.integers(1, 3)), 3))
    ys = np.vstack([yn[keep], extra])
    p = pair_points_3d(xn, ys, np.broadcast_to(sx**2 * np.eye(3), (n, 3, 3)),
                       np.broadcast_to(sy**2 * np.eye(3), (len(ys), 3, 3)))
    assert p.mirrored == mirror
    got = dict(zip(p.source_index.tolist(), p.target_index.tolist()))
    want = {int(i): j for j, i in enumerate(keep)}
    assert got == want, (got, want)


def _table(p: np.ndarray, sd: float):
    import pandas as pd

    df = pd.DataFrame({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2]})
    for a in "xyz":
        for b in "xyz":
            if a <= b:
                df[f"cov_{a}{b}"] = sd**2 if a == b else 0.0
    return df


def test_too_few_beads_names_what_it_saw():
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 400, (8, 3))
    with pytest.raises(RegistrationError, match="got 3 and 8") as e:
        register_points_3d(_table(y[:3], 0.3), _table(y, 0.3))
    assert e.value.hint and e.value.diagnostics["n_source"] == 3
    s = simulate_volume(2, ranges={"n_beads": (2, 2), "max_voxels": 1_000_000})
    with pytest.raises(CorrelateError, match="2 stand out, fewer than min_beads=3") as e:
        detect_volume_beads(s.volume, s.voxel_nm)
    assert "diameter_nm" in str(e.value)


def test_ambiguous_pairing_raises():
    """Unrelated point sets: no pose beats chance, and the error says what the best pose reached."""
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 400, (7, 3)), rng.uniform(0, 400, (7, 3))
    with pytest.raises(RegistrationError, match="chance") as e:
        register_points_3d(_table(x, 0.3), _table(y, 0.3))
    assert "log10_chance" in e.value.diagnostics and e.value.hint


def test_overrides_are_used_and_recorded():
    s = simulate_volume(6, ranges={"max_voxels": 1_500_000})
    em = detect_volume_beads(s.volume, s.voxel_nm, diameter_nm=s.params["gold_diameter_nm"], polarity=s.polarity)
    assert em.attrs["source"] == {"polarity": "user", "diameter_nm": "user"}
    assert len(em) == len(s.beads)
    reg = register_points_3d(detect_smlm_fiducials(s.localizations), em, excess_fle_nm=0.5, model="similarity")
    assert reg.excess["source"] == "user" and reg.fit.excess_fle_nm == 0.5 and reg.model == "similarity"
    with pytest.raises(RegistrationError, match="no z column"):
        register_points_3d(em.drop(columns="z"), em)
