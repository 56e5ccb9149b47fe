"""Automatic registration over a family of randomized acquisitions (the worlds users bring).

Each acquisition comes from ``correlate.datasets.random_acquisition`` (bead diameter 30-150 nm,
EM pixel 1-4 nm, bead persistence 15-100 %, any rotation, mirrored frames, 0-20 % missing and
0-3 spurious beads, LM PSF sigma 20-110 nm, SIM without resolution metadata, frame scale
0.9-1.1, a systematic error of 1-4 nm per bead). The elements enter a Scene unplaced, as a
user's files would, and ``register_scene(scene, moving, "em")`` runs with defaults and no hints.

Done when (per moving modality, SMLM -> EM and LM(SIM) -> EM): success >= 95 %; pooled median
true TRE at the control points <= 1.5 x the oracle's (the same model fitted on the true pairs
with the detected noise); the predicted 95 % radius covers the true error at 90-98 % of the
control points pooled.

The family and failure-path tests need the detection, pairing (any pose) and error-model work
of the registration package; they are expected to pass once that is merged. The harness tests
(``test_harness_*``) check the bookkeeping with an oracle that pairs by the truth, and pass on
their own.
"""

from __future__ import annotations

import numpy as np
import pytest

import _registration_family as fam
from correlate.datasets import random_acquisition
from correlate.errors import RegistrationError

FAST_SEEDS = tuple(range(8))
HARNESS_SEEDS = (0, 2, 6, 7)  # mirrored and unmirrored frames in both modalities
FULL_SEEDS = tuple(range(100, 132))
MOVINGS = ("antibody", "sim")


def _family(seeds, workdir, **kw):
    return {mv: [fam.run_one(s, mv, workdir, **kw) for s in seeds] for mv in MOVINGS}


def _coverage_band(n_acquisitions: int, level: float = 0.95, k: float = 3.0) -> tuple[float, float]:
    """k-sigma band of the pooled coverage when the control points of one acquisition share one
    fit error (effectively one draw per acquisition)."""
    sd = np.sqrt(level * (1 - level) / max(n_acquisitions, 1))
    return level - k * sd, min(1.0, level + k * sd)


def _report(outcomes, capsys, title):
    with capsys.disabled():
        print(f"\n[{title}]")
        for mv, outs in outcomes.items():
            for o in outs:
                print("  " + o.line())
            print("  " + fam.format_summary(mv, fam.summarize(outs)))


# -- the harness itself: an oracle that pairs by the truth must pass the family's checks ----------

@pytest.fixture(scope="module")
def oracle_family(tmp_path_factory):
    wd = tmp_path_factory.mktemp("oracle_family")
    return _family(HARNESS_SEEDS, wd, register=fam.truth_register,
                   overrides={"fiducial_systematic_nm": 0.0, "distortion_nm": 0.0})


def test_harness_truth_bookkeeping():
    for seed in FAST_SEEDS:
        for mv in MOVINGS:
            kind, frame, *_ = fam.MOVING[mv]
            s = random_acquisition(seed, kind=kind, make_em=False)  # same truth with or without the EM image
            mirror = s.config.smlm_mirror if mv == "antibody" else s.config.sim_mirror
            assert fam.is_mirrored(s.truth.transforms[frame]) == mirror
            ids, src, dst = fam.true_pairs(s, mv)
            f = s.truth.fiducials.set_index("fiducial_id").loc[ids]
            sys_cols = list(fam.MOVING[mv][3])
            # moving positions = exact image of the gold centre + the bead's systematic offset
            back = s.truth.transforms[frame].apply(src - f[sys_cols].to_numpy(float))
            np.testing.assert_allclose(back, dst, atol=1e-6)
            w, cam = fam.control_points(s, mv)
            assert len(w) >= 10
            np.testing.assert_allclose(s.truth.transforms[frame].apply(cam), w, atol=1e-6)


def test_harness_oracle_passes_the_family_checks(oracle_family, capsys):
    _report(oracle_family, capsys, "harness: truth-paired oracle, known noise")
    n_acq = sum(len(v) for v in oracle_family.values())
    pooled_err, pooled_r95 = [], []
    for mv, outs in oracle_family.items():
        s = fam.summarize(outs)
        assert s["success_rate"] == 1.0, s["failures"]
        assert all(o.n_wrong_pairs == 0 for o in outs)
        assert s["tre_over_oracle"] <= 1.5, s
        assert any(o.mirrored_true for o in outs) and not all(o.mirrored_true for o in outs)
        pooled_err += [o.err for o in outs]
        pooled_r95 += [o.r95 for o in outs]
    cov = float(np.mean(np.concatenate(pooled_err) <= np.concatenate(pooled_r95)))
    lo, hi = _coverage_band(n_acq)
    assert lo <= cov <= hi, cov


class _Shifted:
    """A registration moved by a bead spacing (300 nm in x): a wrong answer."""

    def __init__(self, reg) -> None:
        self.model, self.landmarks, self.fit, self.fiducials = reg.model, reg.landmarks, reg.fit, {}
        self.mirrored = getattr(reg, "mirrored", None)
        self._t = reg.transform
        self.transform = self

    def apply(self, points):
        return self._t.apply(points) + np.array([300.0, 0.0])


def test_harness_detects_a_wrong_answer(tmp_path):
    def shifted(scene, mv, fx, *, sample):
        reg, rec = fam.truth_register(scene, mv, fx, sample=sample)
        return _Shifted(reg), rec

    o = fam.run_one(FAST_SEEDS[0], "sim", tmp_path, register=shifted)
    assert not o.ok and o.stage == "wrong"


# -- the family: automatic registration with defaults and no hints ------------------------------

@pytest.fixture(scope="module")
def fast_family(tmp_path_factory):
    return _family(FAST_SEEDS, tmp_path_factory.mktemp("fast_family"))


def _assert_family(outcomes, coverage_band):
    n_acq = 0
    pooled_err, pooled_r95 = [], []
    problems = []
    for mv, outs in outcomes.items():
        s = fam.summarize(outs)
        if s["success_rate"] < 0.95:
            problems.append(f"{mv}: success {s['success_rate']:.0%} < 95 %: {s['failures']}")
        if not s["tre_over_oracle"] <= 1.5:
            problems.append(f"{mv}: median TRE {s['median_tre_nm']:.2f} nm > 1.5 x oracle "
                            f"{s['oracle_median_tre_nm']:.2f} nm")
        good = [o for o in outs if o.ok]
        n_acq += len(good)
        pooled_err += [o.err for o in good]
        pooled_r95 += [o.r95 for o in good]
    if pooled_err:
        cov = float(np.mean(np.concatenate(pooled_err) <= np.concatenate(pooled_r95)))
        lo, hi = coverage_band(n_acq)
        if not lo <= cov <= hi:
            problems.append(f"pooled coverage of the predicted 95 % radius {cov:.1%} outside [{lo:.0%}, {hi:.0%}]")
    assert not problems, "\n".join(problems)


def test_family_fast(fast_family, capsys):
    """8 acquisitions per modality; coverage band from the number of acquisitions (3 sigma)."""
    _report(fast_family, capsys, "family (fast, 8 seeds)")
    _assert_family(fast_family, _coverage_band)


@pytest.mark.slow
def test_family_full(tmp_path_factory, capsys):
    """32 acquisitions per modality; the issue's coverage band 90-98 %."""
    outcomes = _family(FULL_SEEDS, tmp_path_factory.mktemp("full_family"))
    _report(outcomes, capsys, "family (full, 32 seeds)")
    _assert_family(outcomes, lambda n: (0.90, 0.98))


# -- failure paths: a step that cannot decide says which and what would help ---------------------

def _scene(tmp_path, sample, moving, edit=None):
    els = fam.user_elements(sample, ["em", moving])
    if edit is not None:
        els[moving] = edit(els[moving])
    from correlate.scene import Scene

    scene = Scene.create(tmp_path / "s.ome.zarr")
    for k, v in els.items():
        scene.add(k, v)
    return scene


def _without_beads(sample, keep_ids=()):
    """Edit of the SMLM table: the bead localizations removed (except beads ``keep_ids``)."""
    df = sample.smlm["antibody"]
    drop = (df["true_particle_id"].to_numpy() == -2) & ~np.isin(df["true_fiducial_id"].to_numpy(), list(keep_ids))

    def edit(el):
        out = el[~drop].reset_index(drop=True)
        out.attrs = dict(el.attrs)
        return out

    return edit


def test_no_fiducials_in_smlm_is_a_detection_error(tmp_path):
    s = random_acquisition(3, kind="smlm", n_spurious_fiducials=0)
    scene = _scene(tmp_path, s, "antibody", _without_beads(s))
    from correlate.registration import register_scene

    with pytest.raises(RegistrationError) as e:
        register_scene(scene, "antibody", "em")
    assert e.value.stage == "detection", str(e.value)
    assert e.value.hint


def test_no_gold_in_em_is_a_detection_error(tmp_path):
    # gold invisible in EM (zero attenuation) and no particles: the EM holds no compact objects at
    # all, while the SMLM run shows its beads clearly
    s = random_acquisition(4, kind="smlm", em_gold_mu=0.0, n_particles=0, n_touching_pairs=0, n_edge_particles=0,
                           fiducial_presence=0.9, fiducial_bleach=False, n_spurious_fiducials=0)
    scene = _scene(tmp_path, s, "antibody")
    from correlate.registration import register_scene

    with pytest.raises(RegistrationError) as e:
        register_scene(scene, "antibody", "em")
    assert e.value.stage == "detection", str(e.value)


def test_fewer_than_three_pairs_is_a_pairing_error(tmp_path):
    s = random_acquisition(5, kind="smlm", n_spurious_fiducials=0, fiducial_missing_fraction=0.0,
                           fiducial_presence=0.9, fiducial_bleach=False)
    scene = _scene(tmp_path, s, "antibody", _without_beads(s, keep_ids=(0, 1)))
    from correlate.registration import register_scene

    with pytest.raises(RegistrationError) as e:
        register_scene(scene, "antibody", "em")
    assert e.value.stage == "pairing", str(e.value)


def test_mirrored_frame_without_allow_mirror_is_a_pairing_error(tmp_path):
    s = random_acquisition(6, kind="smlm", smlm_mirror=True, n_spurious_fiducials=0, fiducial_missing_fraction=0.0,
                           fiducial_presence=0.9, fiducial_bleach=False, fiducial_diameter_nm=60.0)
    scene = _scene(tmp_path, s, "antibody")
    from correlate.registration import register_scene

    with pytest.raises(RegistrationError) as e:
        register_scene(scene, "antibody", "em", allow_mirror=False)
    assert e.value.stage == "pairing", str(e.value)
