"""The error model on fiducial sets built here: stated standard errors plus a systematic
per-bead error, similarity / affine / smoothly distorted truths. A seeded Monte-Carlo sweep over
the ranges labs see (6-40 fiducials, 0.05-3 nm anisotropic standard errors varying per bead,
0-8 nm systematic error per axis, 0-15 nm smooth distortion, 5-40 um fields, any rotation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from correlate.elements import Landmarks
from correlate.registration import Fit, fit_landmarks, fit_model
from correlate.transforms import Affine


def _cov_stack(n: int, sem_nm: float, rng) -> np.ndarray:
    """(n, 2, 2) anisotropic covariances, scale ``sem_nm`` x 0.5-2 per bead, random axes."""
    scale = sem_nm * rng.uniform(0.5, 2.0, n)
    ratio = rng.uniform(0.3, 1.0, n)
    th = rng.uniform(0, np.pi, n)
    c, s = np.cos(th), np.sin(th)
    r = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)
    lam = np.stack([scale**2, (ratio * scale) ** 2], -1)
    return np.einsum("nij,nj,nkj->nik", r, lam, r)


def _draw(cov: np.ndarray, rng) -> np.ndarray:
    return np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal(cov.shape[:2]))


def _truth(kind: str, field: float, amp: float, rng):
    """A moving -> fixed map: similarity (scale 0.9-1.1, |s - 1| >= 0.02, any rotation), affine
    (similarity then 1-4 % anisotropic scale and shear), or similarity + a smooth distortion of
    amplitude ``amp`` nm (two random plane waves of wavelength 1.5-3 fields per axis)."""
    scale = rng.uniform(1.02, 1.1) ** rng.choice([-1, 1])
    sim = Affine.similarity(scale, rng.uniform(-np.pi, np.pi), rng.uniform(-5000, 5000, 2))
    if kind == "affine":
        e = rng.uniform(0.01, 0.04) * rng.choice([-1, 1], 3)
        a = sim.linear @ np.array([[1 + e[0], e[1]], [0.0, 1 - e[2]]])
        lin = Affine.from_parts(a, sim.offset)
        return lin.apply
    if kind == "similarity" or amp == 0:
        return sim.apply
    k = rng.normal(size=(2, 2, 2))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    k *= 2 * np.pi / (field * rng.uniform(1.5, 3.0, (2, 2, 1)))
    ph = rng.uniform(0, 2 * np.pi, (2, 2))

    def f(p):
        p = np.atleast_2d(p)
        g = np.stack([np.sin(p @ k[a].T + ph[a]).sum(1) for a in range(2)], -1) / np.sqrt(2)
        return sim.apply(p) + amp * g

    return f


def make_case(seed: int, kind: str, *, n=None, sem=None, sys_nm=None, amp=None, n_ctrl=200):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 41)) if n is None else n
    sem = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))) if sem is None else sem
    sys_nm = float(rng.uniform(0, 8)) if sys_nm is None else sys_nm
    amp = float(rng.uniform(0, 15)) if amp is None else amp
    field = float(rng.uniform(5000, 40000))
    x = rng.uniform(0, field, (n, 2))
    t = _truth(kind, field, amp, rng)
    cx, cy = _cov_stack(n, sem, rng), _cov_stack(n, sem, rng)
    y = t(x) + _draw(cy, rng) + sys_nm * rng.standard_normal((n, 2))
    xn = x + _draw(cx, rng)
    from scipy.spatial import Delaunay

    p = rng.uniform(x.min(0), x.max(0), (4 * n_ctrl, 2))
    p = p[Delaunay(x).find_simplex(p) >= 0][:n_ctrl]
    return {"x": xn, "y": y, "cx": cx, "cy": cy, "truth": t, "ctrl": p, "n": n, "sem": sem, "sys": sys_nm,
            "amp": amp, "kind": kind}


def run_case(case) -> dict:
    reg = fit_landmarks(Landmarks(case["x"], case["y"], case["cx"], case["cy"]))
    p = case["ctrl"]
    err = np.linalg.norm(reg.transform.apply(p) - case["truth"](p), axis=1)
    r95 = reg.fit.tre_radius(p)
    return {"model": reg.model, "excess": reg.fit.excess_fle_nm, "hits": int(np.sum(err < r95)), "m": len(p),
            "n_out": len(reg.outliers), "reg": reg}


def _sweep(kind: str, seeds, **kw) -> list[dict]:
    out = []
    for s in seeds:
        c = make_case(s, kind, **kw)
        r = run_case(c)
        r.update(n=c["n"], sys=c["sys"], sem=c["sem"], amp=c["amp"])
        out.append(r)
    return out


def _coverage(rows) -> float:
    return sum(r["hits"] for r in rows) / sum(r["m"] for r in rows)


def _excess_ratio(rows) -> np.ndarray:
    """excess_fle_nm / true systematic sigma where it is identifiable: N >= 15 and the systematic
    error at least 1 nm and not buried under the stated standard errors."""
    big = [r for r in rows if r["n"] >= 15 and r["sys"] >= 1.0 and r["sys"] >= r["sem"]]
    return np.array([r["excess"] / r["sys"] for r in big])


def _check_regime(kind: str, rows, cov_band, capsys):
    cov = _coverage(rows)
    ratio = _excess_ratio(rows)
    models = {m: sum(r["model"] == m for r in rows) for m in ("similarity", "affine", "tps")}
    with capsys.disabled():
        print(f"\n[{kind}: {len(rows)} sets] coverage {cov:.3f}, excess ratio median "
              f"{np.median(ratio):.3f} (n={len(ratio)}), models {models}")
    assert cov_band[0] <= cov <= cov_band[1], cov
    assert 0.8 <= np.median(ratio) <= 1.25, ratio
    return models


# The 95 % radius is checked pooled over the sets of a regime. The control points of one set share
# its fit, so a set's hits are strongly correlated (a set's own coverage ranges over 0.2-1.0): the
# pooled fraction of ~30 sets has a spread of about +-0.03, hence the wider quick band; the slow
# sweep (150 sets per regime) holds 0.90-0.98.
_QUICK_BAND = (0.87, 0.99)


def test_similarity_truth_excess_recovered_model_similarity(capsys):
    rows = _sweep("similarity", range(30))
    models = _check_regime("similarity", rows, _QUICK_BAND, capsys)
    assert models["similarity"] >= 0.9 * len(rows), models


def test_affine_truth(capsys):
    rows = _sweep("affine", range(1000, 1020))
    models = _check_regime("affine", rows, _QUICK_BAND, capsys)
    assert models["affine"] >= 0.9 * len(rows), models


def test_distortion_truth_coverage(capsys):
    rows = _sweep("distortion", range(2000, 2030))
    _check_regime("distortion", rows, _QUICK_BAND, capsys)


def test_distortion_well_above_noise_is_non_linear():
    """10-15 nm smooth distortion, total fiducial noise (standard error + systematic) <= ~2 nm,
    15-40 fiducials: the REML deformation test and the leave-one-out error call for the TPS."""
    rows = []
    for s in range(3000, 3012):
        rng = np.random.default_rng(s)
        c = make_case(s, "distortion", n=int(rng.integers(15, 41)), sem=float(rng.uniform(0.05, 1.0)),
                      sys_nm=float(rng.uniform(0, 2)), amp=float(rng.uniform(10, 15)))
        rows.append(run_case(c)["model"])
    assert rows.count("tps") >= 0.8 * len(rows), rows


def test_zero_systematic_error_keeps_the_stated_noise():
    """No systematic error: chi2/dof of the affine reference is <= 1 about half of the time (excess
    exactly 0) and otherwise the excess is small against the stated standard errors."""
    rows = _sweep("similarity", range(4000, 4016), sys_nm=0.0)
    exc = np.array([r["excess"] for r in rows])
    sem = np.array([r["sem"] for r in rows])
    assert np.mean(exc == 0.0) >= 0.25, exc
    assert np.all(exc < 1.5 * sem), (exc, sem)  # sem: the set's median standard error per axis
    assert sum(r["model"] == "similarity" for r in rows) >= 0.9 * len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["similarity", "affine", "distortion"])
def test_error_model_sweep_slow(kind, capsys):
    rows = _sweep(kind, range(10000, 10150))
    models = _check_regime(kind, rows, (0.90, 0.98), capsys)
    if kind != "distortion":
        assert models[kind] >= 0.9 * len(rows), models


def test_paule_mandel_solves_chi2_over_dof_one():
    c = make_case(5, "similarity", n=20, sem=0.3, sys_nm=4.0)
    f = fit_model(c["x"], c["y"], "similarity", c["cx"], c["cy"], excess_fle_nm="estimate")
    assert f.chi2 / f.dof == pytest.approx(1.0, abs=2e-3)
    assert 2.0 < f.excess_fle_nm < 6.0
    f0 = fit_model(c["x"], c["y"], "similarity", c["cx"], c["cy"])
    assert f0.excess_fle_nm == 0.0 and f0.chi2 / f0.dof > 20
    # the predicted TRE carries the excess through the parameters
    p = c["ctrl"][:5]
    assert np.all(f.tre_rms(p) > 3 * f0.tre_rms(p))
    with pytest.raises(Exception, match="excess_fle_nm"):
        fit_model(c["x"], c["y"], "similarity", c["cx"], c["cy"], excess_fle_nm="guess")


def test_common_excess_is_not_outliers_but_an_outlier_is():
    """Standard errors spread over 0.05-3 nm within one set and a 5 nm systematic error: the precise
    beads must not read as outliers; a 60 nm blunder still does."""
    rng = np.random.default_rng(21)
    n = 25
    x = rng.uniform(0, 20000, (n, 2))
    sem = np.exp(rng.uniform(np.log(0.05), np.log(3.0), n))
    cy = sem[:, None, None] ** 2 * np.eye(2)
    t = Affine.similarity(1.04, 2.0, (300.0, -800.0))
    y = t.apply(x) + sem[:, None] * rng.standard_normal((n, 2)) + 5.0 * rng.standard_normal((n, 2))
    reg = fit_landmarks(Landmarks(x, y, None, cy))
    assert reg.outliers == [], reg.summary()
    assert reg.model == "similarity" and 3.0 < reg.fit.excess_fle_nm < 7.5, reg.summary()
    y[7] += [60.0, -45.0]
    reg = fit_landmarks(Landmarks(x, y, None, cy))
    assert reg.outliers == [7], reg.summary()


def test_override_record_and_round_trip():
    from correlate.registration import registration_record

    c = make_case(7, "distortion", n=18, sem=0.2, sys_nm=3.0, amp=4.0)
    lm = Landmarks(c["x"], c["y"], c["cx"], c["cy"])
    reg = fit_landmarks(lm)
    assert reg.excess["source"] == "estimated" and reg.excess["excess_fle_nm"] == reg.fit.excess_fle_nm
    assert "excess fiducial error" in reg.summary()
    user = fit_landmarks(lm, excess_fle_nm=2.5)
    assert user.fit.excess_fle_nm == 2.5 and user.excess["source"] == "user"
    for r in (reg, user, fit_landmarks(lm, "similarity"), fit_landmarks(lm, "tps")):
        em = json.loads(json.dumps(r.fit.error_model()))
        assert em["excess_fle_nm"] == pytest.approx(r.fit.excess_fle_nm)
        back = Fit.from_error_model(em)
        assert back.excess_fle_nm == pytest.approx(r.fit.excess_fle_nm)
        np.testing.assert_allclose(back.tre_cov(c["ctrl"]), r.fit.tre_cov(c["ctrl"]), rtol=1e-9, atol=1e-12)
    rec = registration_record(reg, moving="a", fixed="b")
    assert rec["excess_fle_nm"] == pytest.approx(reg.fit.excess_fle_nm)
    assert rec["error_model"]["excess_fle_nm"] == pytest.approx(reg.fit.excess_fle_nm)


def test_excess_override_through_register_points_and_cli():
    import pandas as pd

    from correlate.cli import build_parser
    from correlate.registration import register_points

    c = make_case(11, "similarity", n=20, sem=0.3, sys_nm=3.0)

    def table(p, cov):
        return pd.DataFrame({"x": p[:, 0], "y": p[:, 1], "cov_xx": cov[:, 0, 0], "cov_xy": cov[:, 0, 1],
                             "cov_yy": cov[:, 1, 1]})

    mov, fix = table(c["x"], c["cx"]), table(c["y"], c["cy"])
    est = register_points(mov, fix)
    assert est.excess["source"] == "estimated" and est.fit.excess_fle_nm > 1.0
    given = register_points(mov, fix, excess_fle_nm=0.5)
    assert given.excess["source"] == "user" and given.fit.excess_fle_nm == 0.5
    # the given excess reaches the fit: with the model fixed, of two excesses above the residuals the
    # smaller predicts the smaller TRE (an understated one is caught by the leave-one-out model error)
    lo, hi = (register_points(mov, fix, model="similarity", excess_fle_nm=s) for s in (5.0, 8.0))
    assert np.all(lo.fit.tre_rms(c["ctrl"]) < hi.fit.tre_rms(c["ctrl"]))
    args = build_parser().parse_args(["register", "s.ome.zarr", "--moving", "a", "--fixed", "b", "--excess-fle", "0"])
    assert args.excess_fle == 0.0
