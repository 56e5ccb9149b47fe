"""Two-colour alignment from shared beads."""

from __future__ import annotations

import numpy as np
import pytest
from _smlm_sim import sample

from correlate.errors import RegistrationError
from correlate.smlm import align_colours, correct_drift


def _control_error(s, fit):
    """RMS (nm) between the fitted and the true chromatic map at random points >= 300 nm from beads."""
    from scipy.spatial import cKDTree

    chrom = s.truth.params["chromatic"]  # corona camera -> antibody camera
    lo, hi = s.truth.params["camera_lo"], s.truth.params["camera_hi"]
    pts = np.random.default_rng(0).uniform(lo, hi, (3000, 2))
    d, _ = cKDTree(fit.moving_beads).query(pts)
    pts = pts[d > 300]
    before = np.sqrt(np.mean(np.sum((pts - chrom.apply(pts)) ** 2, axis=1)))
    after = np.sqrt(np.mean(np.sum((fit.transform.apply(pts) - chrom.apply(pts)) ** 2, axis=1)))
    return before, after, len(pts)


def test_two_colour_alignment_on_simulator():
    """30 nm chromatic offset + 0.3 % magnification: after alignment from the shared beads the
    colour offset at bead-free control points is < 3 nm RMS (measured ~0.1 nm)."""
    s = sample("default")
    ab, _ = correct_drift(s.smlm["antibody"])
    co, _ = correct_drift(s.smlm["corona"])
    aligned, fit = align_colours(co, ab)
    assert len(fit.residuals) == 12
    before, after, n = _control_error(s, fit)
    assert n > 1000
    assert 25.0 < before < 35.0
    assert after < 3.0
    assert np.allclose(aligned["x_raw"], co["x"])
    # the aligned corona localizations of fiducials now sit on the antibody ones
    ma = aligned[aligned.true_fiducial_id >= 0].groupby("true_fiducial_id")[["x", "y"]].mean()
    mb = ab[ab.true_fiducial_id >= 0].groupby("true_fiducial_id")[["x", "y"]].mean()
    assert np.sqrt(((ma - mb) ** 2).sum(axis=1).mean()) < 1.0


def test_no_beads_is_an_error():
    s = sample("default", fiducials=False)
    with pytest.raises(RegistrationError, match="beads"):
        align_colours(s.smlm["corona"], s.smlm["antibody"])


def test_colour_alignment_error_reaches_later_tre_predictions(tmp_path):
    """The aligned colour carries the alignment's predicted error: its TRE to EM (through the
    reference colour's registration) is the reference's plus the alignment's, never less."""
    from correlate.datasets import SampleConfig, simulate_sample
    from correlate.registration import register_scene
    from correlate.registration._map import predicted_tre_between
    from correlate.smlm import align_colour_elements

    s = simulate_sample(SampleConfig.small(seed=2, chromatic={"offset_nm": (15.0, -10.0), "scale": 1.004}))
    scene = s.to_scene(tmp_path / "c.ome.zarr", transforms="none")
    register_scene(scene, "antibody", "em")
    res = align_colour_elements(scene, "corona", "antibody", out="corona_aligned")
    rec = scene.registrations()[-1]
    assert rec["moving"] == "corona_aligned" and rec["fixed"] == "antibody" and rec["applied_to_coordinates"]
    pts = scene.get("corona_aligned")[["x", "y"]].to_numpy()[:200]
    tre_aligned, _ = predicted_tre_between(scene, "corona_aligned", "em", pts)
    tre_reference, _ = predicted_tre_between(scene, "antibody", "em", pts)
    alignment_only = res["alignment"].registration.fit.tre_rms(res["alignment"].transform.inverse().apply(pts))
    assert np.all(tre_aligned >= tre_reference - 1e-12)
    np.testing.assert_allclose(tre_aligned**2, tre_reference**2 + alignment_only**2, rtol=1e-6)
    # the bead pairs are stored in the frames they were measured in, and the record names them
    assert rec["landmarks"] == {"source_system": "corona", "target_system": "antibody"}
    lm = scene.get_landmarks("corona", "antibody")
    used = np.asarray(lm.used, bool)
    raw = scene.get("corona")[["x", "y"]].to_numpy()
    assert np.min(np.linalg.norm(raw[:, None, :] - lm.source[used][None, :3, :2], axis=2), axis=0).max() < 50.0
    res_lm = np.linalg.norm(res["alignment"].transform.apply(lm.source[used][:, :2]) - lm.target[used][:, :2], axis=1)
    np.testing.assert_allclose(np.sort(res_lm), np.sort(res["alignment"].residuals), atol=1e-9)
