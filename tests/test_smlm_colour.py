"""Two-colour alignment from shared beads."""

from __future__ import annotations

import numpy as np
import pytest
from _smlm_sim import sample

from correlate.errors import RegistrationError
from correlate.smlm import (
    align_colours,
    correct_drift,
    fit_colour_alignment,
    pair_beads,
)
from correlate.transforms import Affine


def test_fit_affine_and_tps_from_points():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 10000, (20, 2))
    true = Affine.similarity(1.004, 0.002, (25.0, -17.0))
    mov = true.inverse().apply(ref) + rng.normal(0, 0.5, ref.shape)
    fit = fit_colour_alignment(mov, ref, model="auto")
    assert fit.model == "affine"
    assert fit.loo_error_nm < 1.5
    pts = rng.uniform(0, 10000, (500, 2))
    err = np.linalg.norm(fit.transform.apply(true.inverse().apply(pts)) - pts, axis=1)
    assert np.sqrt(np.mean(err**2)) < 1.0
    # a non-linear (wavy) chromatic map is captured by the spline, not by the affine
    wavy = ref + 6.0 * np.sin(ref[:, ::-1] / 2500.0)
    tps = fit_colour_alignment(ref, wavy, model="tps")
    aff = fit_colour_alignment(ref, wavy, model="affine")
    assert tps.loo_error_nm < aff.loo_error_nm
    with pytest.raises(RegistrationError, match="needs >= 3"):
        fit_colour_alignment(mov[:2], ref[:2], model="affine")


def test_pair_beads_with_offset_and_extras():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 8000, (10, 2))
    mov = np.vstack([ref[:8] - [40.0, 25.0], [[100.0, 100.0]]])  # 2 missing, 1 extra
    i, j = pair_beads(mov, ref)
    assert sorted(zip(i.tolist(), j.tolist())) == [(k, k) for k in range(8)]


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


@pytest.mark.parametrize("fitter", ["builtin", "registration"])
def test_two_colour_alignment_on_simulator(fitter):
    """30 nm chromatic offset + 0.3 % magnification: after alignment from the shared beads the
    colour offset at bead-free control points is < 3 nm RMS (measured ~0.1 nm)."""
    if fitter == "registration":
        pytest.importorskip("correlate.registration").detect_fiducials  # noqa: B018
    s = sample("default")
    ab, _ = correct_drift(s.smlm["antibody"])
    co, _ = correct_drift(s.smlm["corona"])
    aligned, fit = align_colours(co, ab, fitter=fitter)
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
        align_colours(s.smlm["corona"], s.smlm["antibody"], fitter="builtin")
