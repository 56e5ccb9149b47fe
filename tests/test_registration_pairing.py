"""Pairing in any pose: randomized acquisitions (rotation, mirror, scale, missing and spurious
fiducials, noise), failures that must raise, and fits with a reflection."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.elements import Landmarks
from correlate.errors import RegistrationError
from correlate.registration import (
    fiducial_table,
    fit_landmarks,
    fit_model,
    pair_points,
    register_points,
    registration_record,
)
from correlate.transforms import Affine


def _pose(rng, mirrored: bool, scale: float) -> Affine:
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = scale * rot @ np.diag([-1.0 if mirrored else 1.0, 1.0])
    return Affine.from_parts(a, rng.uniform(-2e5, 2e5, 2))


def _acquisition(rng, *, hard: bool = False, prior: bool = False, n_range=(5, 40)):
    """Moving/fixed fiducial sets of one randomized acquisition, with the truth.

    Fiducials uniform over a 5-60 um field; any rotation; mirrored in half; scale 0.5-2; noise
    1-30 nm per axis on each side (stated as covariances). Standard: 0-20 % missing on one side
    and 0-3 spurious on one side. Hard: 0-40 % missing and 0-40 % spurious on either side.
    """
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    world = rng.uniform(0, rng.uniform(5000, 60000), (n, 2))
    mirrored = bool(rng.random() < 0.5)
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    truth = _pose(rng, mirrored, scale)  # moving -> fixed
    inv = truth.inverse()
    sig_s, sig_t = rng.uniform(1, 30, 2)
    src = inv.apply(world) + rng.normal(0, sig_s, world.shape)
    tgt = world + rng.normal(0, sig_t, world.shape)
    if hard:
        miss_s, miss_t = (rng.random((2, n)) < rng.uniform(0, 0.4, (2, 1)))
        n_sp_s, n_sp_t = np.round(rng.uniform(0, 0.4, 2) * n).astype(int)
    else:
        miss = np.zeros(n, bool)
        miss[rng.choice(n, int(np.floor(rng.uniform(0, 0.2) * n)), replace=False)] = True
        none = np.zeros(n, bool)
        miss_s, miss_t = (miss, none) if rng.integers(2) else (none, miss)
        k = int(rng.integers(0, 4))
        n_sp_s, n_sp_t = (k, 0) if rng.integers(2) else (0, k)
    ids_s, ids_t = np.flatnonzero(~miss_s), np.flatnonzero(~miss_t)
    lo, hi = world.min(0), world.max(0)
    src = np.vstack([src[ids_s], inv.apply(rng.uniform(lo, hi, (n_sp_s, 2)))])
    tgt = np.vstack([tgt[ids_t], rng.uniform(lo, hi, (n_sp_t, 2))])
    ids_s = np.concatenate([ids_s, -1 - np.arange(n_sp_s)])
    ids_t = np.concatenate([ids_t, -10_000 - np.arange(n_sp_t)])
    ps, pt = rng.permutation(len(src)), rng.permutation(len(tgt))
    pr = None
    if prior:  # metadata: the pixel-size ratio within 5 %, no rotation, no handedness
        pr = Affine.from_parts(np.eye(2) * scale * np.exp(rng.uniform(np.log(0.95), np.log(1.05))), [0.0, 0.0])
    return {
        "src": src[ps], "tgt": tgt[pt], "ids_s": ids_s[ps], "ids_t": ids_t[pt],
        "cs": np.broadcast_to(sig_s**2 * np.eye(2), (len(src), 2, 2)).copy(),
        "ct": np.broadcast_to(sig_t**2 * np.eye(2), (len(tgt), 2, 2)).copy(),
        "common": len(np.intersect1d(ids_s[ids_s >= 0], ids_t[ids_t >= 0])),
        "mirrored": mirrored, "truth": truth, "prior": pr, "sigma": (sig_s, sig_t),
    }


def _outcome(case, p):
    a, b = case["ids_s"][p.source_index], case["ids_t"][p.target_index]
    right = (a == b) & (a >= 0)
    return int(right.sum()), int((~right).sum())


def _sweep(seed: int, n_cases: int, *, prior_half: bool = False, **kw):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_cases):
        case = _acquisition(rng, prior=prior_half and k % 2 == 1, **kw)
        try:
            p = pair_points(case["src"], case["tgt"], case["cs"], case["ct"], prior=case["prior"])
        except RegistrationError as exc:
            rows.append({"case": case, "raised": exc})
            continue
        right, wrong = _outcome(case, p)
        rows.append({"case": case, "pairing": p, "right": right, "wrong": wrong, "raised": None})
    return rows


def _describe(rows):
    out = []
    for i, r in enumerate(rows):
        c = r["case"]
        if r["raised"] is not None:
            out.append(f"{i}: raised with {c['common']} common: {str(r['raised'])[:160]}")
        elif r["wrong"] or r["right"] < 0.95 * c["common"] or r["pairing"].mirrored != c["mirrored"]:
            out.append(f"{i}: {r['right']}/{c['common']} right, {r['wrong']} wrong, mirrored "
                       f"{r['pairing'].mirrored} (truth {c['mirrored']})")
    return "\n".join(out)


def test_randomized_acquisitions_pair_in_any_pose():
    rows = _sweep(20261203, 64, prior_half=True)
    ok = [r for r in rows if r["raised"] is None]
    assert len(ok) == len(rows), _describe(rows)  # every standard acquisition pairs
    assert all(r["pairing"].mirrored == r["case"]["mirrored"] for r in ok), _describe(rows)
    full = [r["right"] >= 0.95 * r["case"]["common"] for r in ok]
    clean = [r["wrong"] == 0 for r in ok]
    assert np.mean(full) >= 0.95 and np.mean(clean) >= 0.95, _describe(rows)
    pooled = sum(r["right"] for r in ok) / sum(r["case"]["common"] for r in ok)
    assert pooled >= 0.98, pooled
    # both handednesses, priors and the default search all took part
    assert {r["case"]["mirrored"] for r in ok} == {False, True}
    sources = {r["pairing"].diagnostics["scale_range_source"] for r in ok if r["pairing"].method != "prior"}
    assert "default" in sources


def test_hard_acquisitions_up_to_40_percent_missing_or_spurious_on_either_side():
    rows = _sweep(7, 30, hard=True, n_range=(8, 60))
    decidable = [r for r in rows if r["case"]["common"] >= 8]
    assert len(decidable) >= 20
    paired = [r for r in decidable if r["raised"] is None]
    assert len(paired) >= 0.95 * len(decidable), _describe(rows)
    ok = [r for r in rows if r["raised"] is None]
    assert all(r["pairing"].mirrored == r["case"]["mirrored"] for r in ok), _describe(rows)
    assert np.mean([r["right"] >= 0.95 * r["case"]["common"] for r in paired]) >= 0.95, _describe(rows)
    assert np.mean([r["wrong"] == 0 for r in ok]) >= 0.95, _describe(rows)
    for r in rows:  # a raise says what it saw
        if r["raised"] is not None:
            e = r["raised"]
            assert e.stage == "pairing" and {"proper", "mirrored", "n_moving", "n_fixed"} <= set(e.diagnostics)


def test_unrelated_sets_raise_instead_of_returning_a_chance_match():
    rng = np.random.default_rng(11)
    for k in range(30):
        n, m = rng.integers(3, 61, 2)
        sig = rng.uniform(1, 30)
        a = rng.uniform(0, rng.uniform(5000, 60000), (n, 2))
        b = rng.uniform(0, rng.uniform(5000, 60000), (m, 2)) + rng.uniform(-1e5, 1e5, 2)
        if k % 3 == 0:  # clustered fiducials: a few tight groups
            a = rng.uniform(0, 20000, (3, 2))[rng.integers(0, 3, n)] + rng.normal(0, 800, (n, 2))
        with pytest.raises(RegistrationError, match="no consistent pairing") as exc:
            pair_points(a, b, np.full((n, 2, 2), sig**2 * np.eye(2)), np.full((m, 2, 2), sig**2 * np.eye(2)))
        e = exc.value
        assert e.stage == "pairing" and "--landmarks" in e.hint
        d = e.diagnostics
        assert d["n_moving"] == n and d["n_fixed"] == m
        for side in ("proper", "mirrored"):
            assert {"inliers", "needed", "n_hypotheses"} <= set(d[side])
            assert d[side]["inliers"] < d[side]["needed"]


def test_fewer_than_three_common_points_raise():
    rng = np.random.default_rng(12)
    for _ in range(10):
        world = rng.uniform(0, 20000, (2, 2))
        truth = _pose(rng, bool(rng.integers(2)), float(rng.uniform(0.5, 2)))
        n, m = rng.integers(4, 20, 2)
        src = np.vstack([truth.inverse().apply(world), truth.inverse().apply(rng.uniform(0, 20000, (n, 2)))])
        tgt = np.vstack([world, rng.uniform(0, 20000, (m, 2))])
        with pytest.raises(RegistrationError, match="no consistent pairing"):
            pair_points(src, tgt, np.full((n + 2, 2, 2), 25 * np.eye(2)), np.full((m + 2, 2, 2), 25 * np.eye(2)))
    with pytest.raises(RegistrationError, match="at least 3 needed") as exc:
        pair_points(rng.uniform(0, 1e4, (2, 2)), rng.uniform(0, 1e4, (8, 2)))
    assert exc.value.diagnostics == {"n_moving": 2, "n_fixed": 8, "hint": exc.value.diagnostics["hint"]}


def test_mirror_refused_when_not_allowed_and_reported_otherwise():
    rng = np.random.default_rng(13)
    world = rng.uniform(0, 30000, (15, 2))
    truth = _pose(rng, True, 1.3)
    src = truth.inverse().apply(world) + rng.normal(0, 5, world.shape)
    tgt = world + rng.normal(0, 5, world.shape)
    cov_s, cov_t = np.full((15, 2, 2), 25 * np.eye(2)), np.full((15, 2, 2), 25 * np.eye(2))
    with pytest.raises(RegistrationError, match="only as a mirror image") as exc:
        pair_points(src, tgt, cov_s, cov_t, allow_mirror=False)
    e = exc.value
    assert e.stage == "pairing" and e.hint == "allow the mirror (drop --no-mirror)"
    assert e.diagnostics["mirrored"]["inliers"] == 15 and e.diagnostics["mirrored"]["passes"]
    assert "15 inliers" in str(e)
    p = pair_points(src, tgt, cov_s, cov_t)
    assert p.mirrored and len(p) == 15 and np.all(p.source_index == p.target_index)
    assert np.linalg.det(p.coarse.matrix[:2, :2]) < 0
    assert any("mirror" in n for n in p.notes)
    d = p.diagnostics
    assert d["chosen"] == "mirrored" and d["mirrored"]["scale"] == pytest.approx(1.3, rel=0.01)
    # the same frames without the mirror pair as proper, also with allow_mirror=False
    src_p = src * [-1.0, 1.0]
    q = pair_points(src_p, tgt, cov_s, cov_t, allow_mirror=False)
    assert not q.mirrored and len(q) == 15


def test_prior_sets_the_scale_and_a_good_prior_is_used_directly():
    rng = np.random.default_rng(14)
    world = rng.uniform(0, 40000, (20, 2))
    truth = _pose(rng, False, 0.8)
    src = truth.inverse().apply(world) + rng.normal(0, 3, world.shape)
    tgt = world + rng.normal(0, 3, world.shape)
    p = pair_points(src, tgt, prior=truth)
    assert p.method == "prior" and len(p) == 20 and p.n_hypotheses == 0
    scale_only = Affine.from_parts(0.82 * np.eye(2), [0.0, 0.0])
    q = pair_points(src, tgt, prior=scale_only)
    assert q.method == "triangles" and len(q) == 20
    lo, hi = q.diagnostics["scale_range"]
    assert q.diagnostics["scale_range_source"] == "prior" and lo < 0.8 < hi and hi / lo < 2
    # a user range that excludes the true scale finds nothing, and says so
    with pytest.raises(RegistrationError, match="scale range 1.5-2") as exc:
        pair_points(src, tgt, scale_range=(1.5, 2.0))
    assert "--scale-range" in exc.value.hint


def test_3d_mirrored_pairing():
    rng = np.random.default_rng(15)
    world = np.column_stack([rng.uniform(0, 20000, (16, 2)), rng.uniform(0, 1500, 16)])
    a = np.diag([-1.0, 1.0, 1.0]) * 1.1
    truth = Affine.from_parts(a, [3000.0, -2000.0, 150.0])
    src = truth.inverse().apply(world) + rng.normal(0, 3, world.shape)
    tgt = world + rng.normal(0, 3, world.shape)
    sh = rng.permutation(16)
    cov = np.full((16, 3, 3), 9 * np.eye(3))
    p = pair_points(src, tgt[sh], cov, cov)
    assert p.mirrored and len(p) == 16 and np.all(sh[p.target_index] == p.source_index)
    assert np.linalg.det(p.coarse.matrix[:3, :3]) < 0


@pytest.mark.parametrize("model", ["rigid", "similarity", "affine"])
def test_fit_with_reflection_recovers_a_mirrored_transform(model):
    rng = np.random.default_rng(16)
    x = rng.uniform(0, 10000, (12, 2))
    s = 1.0 if model == "rigid" else 1.17
    truth = Affine.from_parts(s * Affine.similarity(1.0, 0.6).linear @ np.diag([-1.0, 1.0]), [400.0, -900.0])
    sig = 2.0
    y = truth.apply(x) + rng.normal(0, sig, x.shape)
    with pytest.raises(RegistrationError, match="mirror|reflection"):
        fit_model(x, y, model, target_cov=np.full(12, sig**2))
    f = fit_model(x, y, model, target_cov=np.full(12, sig**2), reflection=True)
    assert np.linalg.det(f.linear) < 0
    # the fit is consistent with the noise (chi-square) and close to the truth at the centroid
    assert f.pvalue > 1e-3
    c = x.mean(0, keepdims=True)
    err = np.linalg.norm(f.transform.apply(c) - truth.apply(c))
    assert err < 4 * sig / np.sqrt(12) * np.sqrt(2)
    if model != "affine":
        assert np.allclose(f.linear.T @ f.linear, s**2 * np.eye(2), rtol=5e-3)


def test_fit_landmarks_with_reflection_chooses_a_model_and_leave_one_out_stays_honest():
    rng = np.random.default_rng(17)
    x = rng.uniform(0, 10000, (15, 2))
    truth = Affine.from_parts(1.05 * Affine.similarity(1.0, -1.1).linear @ np.diag([-1.0, 1.0]), [50.0, 70.0])
    sig = 3.0
    y = truth.apply(x) + rng.normal(0, sig, x.shape)
    reg = fit_landmarks(Landmarks(x, y, None, np.full(15, sig**2)), "auto", reflection=True)
    assert reg.model in ("similarity", "affine"), reg.summary()
    assert np.linalg.det(reg.fit.linear) < 0 and not reg.outliers
    # leave-one-out errors of a mirrored fit are noise-sized (a proper refit would be ~um off)
    assert reg.loo_rms < 3 * sig * np.sqrt(2)


def test_register_points_mirrored_sets_the_flag_and_the_record():
    rng = np.random.default_rng(18)
    world = rng.uniform(0, 30000, (18, 2))
    truth = _pose(rng, True, 0.7)
    sig = 4.0
    src = truth.inverse().apply(world) + rng.normal(0, sig, world.shape)
    tgt = world + rng.normal(0, sig, world.shape)
    cov = np.full((18, 2, 2), sig**2 * np.eye(2))
    reg = register_points(fiducial_table(src, cov), fiducial_table(tgt, cov))
    assert reg.mirrored and reg.pairing["mirrored"] is True
    assert reg.pairing["diagnostics"]["chosen"] == "mirrored"
    assert np.linalg.det(reg.fit.linear) < 0
    err = np.linalg.norm(reg.transform.apply(src) - truth.apply(src), axis=1)
    assert np.median(err) < 3 * sig
    rec = registration_record(reg, moving="lm", fixed="em")
    assert rec["mirrored"] is True and rec["pairing"]["mirrored"] is True
    with pytest.raises(RegistrationError, match="mirror"):
        register_points(fiducial_table(src, cov), fiducial_table(tgt, cov), allow_mirror=False)
