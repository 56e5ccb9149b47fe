"""The persistent-emitter (fiducial) detector on randomized localization tables built here with
numpy: beads on in 10-100 % of frames, some bleaching, uncorrected drift, bright transients,
dSTORM/PAINT-like blinking clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.errors import RegistrationError
from correlate.registration import detect_smlm_fiducials


def _drift(rng, n_frames: int, amplitude: float) -> np.ndarray:
    """(F, 2) smooth drift: linear plus a slow oscillation, ``amplitude`` nm end to end."""
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    wiggle = 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi, 2))
    return amplitude * (t * direction + wiggle)


def _acquisition(rng, *, n_beads=None, beads=True, drift_nm=None, n_frames=None, target_locs=None,
                 persistence=(0.1, 1.0), bleach_probability=0.4, labels=True, transients=True):
    """A random acquisition; returns (locs, bead truth (x, y: mean position over the bead's own
    frames, drift included; persistence; last frame + 1), drift applied).

    Beads: on in a fraction ``persistence`` (uniform in the range) of the frames, bleaching
    after 20-60 % of the run with ``bleach_probability``, 3-30 x the label photons. Labels:
    clusters of 1..n molecules (10-40 nm spread) with geometric events (mean 2-20) of geometric
    length (mean 1-3 frames), cluster on-fraction up to ~3 %, precision 6-15 nm at the median
    photons. Transients: 0-3 bead-bright spots lit for 10-50 consecutive frames."""
    n_frames = int(rng.integers(2000, 10001)) if n_frames is None else n_frames
    field = rng.uniform(10000, 30000)
    drift_nm = rng.uniform(0, 200) if drift_nm is None else drift_nm
    drift = _drift(rng, n_frames, drift_nm)
    target_locs = int(rng.uniform(1e4, 1e5)) if target_locs is None else target_locs
    label_photons = rng.uniform(800, 3000)
    label_sigma = rng.uniform(6.0, 15.0)
    parts, truth = [], []
    n_beads = (int(rng.integers(5, 21)) if beads else 0) if n_beads is None else n_beads
    for k in range(n_beads):
        p = rng.uniform(*persistence)
        end = int(rng.uniform(0.2, 0.6) * n_frames) if rng.random() < bleach_probability else n_frames
        fr = np.flatnonzero(rng.random(end) < p)
        ph = label_photons * rng.uniform(3, 30)
        sig = max(label_sigma * np.sqrt(label_photons / ph), 0.5)
        xy0 = rng.uniform(1000, field - 1000, 2)
        xy = xy0 + drift[fr] + rng.normal(0, sig, (fr.size, 2))
        parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": fr,
                                   "photons": ph * rng.lognormal(0, 0.2, fr.size), "precision": sig,
                                   "kind": 1, "bead": k}))
        truth.append((*(xy0 + drift[fr].mean(0)), p, end))
    n_bead_locs = sum(len(q) for q in parts)
    # blinking clusters: molecules within a cluster radius, geometric events of geometric length
    events_mean = rng.uniform(2, 20)
    on_len = rng.uniform(1, 3)
    max_mol = max(1, int(0.03 * n_frames / (events_mean * on_len)))
    label_locs = max(target_locs - n_bead_locs, 2000) if labels else 0
    n_clusters = max(10, int(label_locs / (events_mean * on_len * 0.5 * (1 + max_mol)))) if labels else 0
    n_mol = rng.integers(1, max_mol + 1, n_clusters)
    c = rng.uniform(0, field, (n_clusters, 2))
    mol_c = np.repeat(c, n_mol, axis=0) + rng.normal(0, rng.uniform(10, 40), (n_mol.sum(), 2))
    n_ev = rng.geometric(1.0 / events_mean, mol_c.shape[0])
    ev_mol = np.repeat(np.arange(mol_c.shape[0]), n_ev)
    ev_len = rng.geometric(1.0 / on_len, ev_mol.size)
    ev_start = rng.integers(0, n_frames, ev_mol.size)
    loc_ev = np.repeat(np.arange(ev_mol.size), ev_len)
    fr = ev_start[loc_ev] + (np.arange(loc_ev.size) - np.repeat(np.cumsum(ev_len) - ev_len, ev_len))
    keep = fr < n_frames
    loc_ev, fr = loc_ev[keep], fr[keep]
    m = ev_mol[loc_ev]
    ph = label_photons * rng.lognormal(0, 0.5, m.size)
    sig = label_sigma * np.sqrt(label_photons / ph)
    xy = mol_c[m] + drift[fr] + rng.normal(0, 1, (m.size, 2)) * sig[:, None]
    parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": fr, "photons": ph, "precision": sig,
                               "kind": 0, "bead": -1}))
    # bright transients: bead-bright for 10-50 consecutive frames
    for _ in range(int(rng.integers(0, 4)) if transients else 0):
        length = int(rng.integers(10, 51))
        fr = int(rng.integers(0, n_frames - length)) + np.arange(length)
        xy = rng.uniform(0, field, 2) + drift[fr] + rng.normal(0, 2.0, (length, 2))
        parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": fr, "photons": 30 * label_photons,
                                   "precision": 2.0, "kind": 2, "bead": -1}))
    locs = pd.concat(parts, ignore_index=True)
    locs = locs.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    locs["frame"] = locs["frame"].astype(np.int64)
    tr = pd.DataFrame(truth, columns=["x", "y", "persistence", "end"]) if truth else pd.DataFrame(
        columns=["x", "y", "persistence", "end"])
    return locs, tr, drift


def _match(found: pd.DataFrame, truth: pd.DataFrame, tol: float):
    """Indices of true beads found (nearest detection within tol) and count of false detections."""
    from scipy.spatial import cKDTree

    if len(found) == 0 or len(truth) == 0:
        return np.zeros(len(truth), bool), len(found), np.zeros((0, 2)), np.zeros(0, int)
    d, j = cKDTree(found[["x", "y"]].to_numpy()).query(truth[["x", "y"]].to_numpy())
    hit = d <= tol
    used = np.unique(j[hit])
    err = found[["x", "y"]].to_numpy()[j[hit]] - truth[["x", "y"]].to_numpy()[hit]
    return hit, len(found) - used.size, err, j[hit]


def _mahalanobis2(found: pd.DataFrame, rows: np.ndarray, err: np.ndarray) -> np.ndarray:
    cov = np.stack([found[["cov_xx", "cov_xy"]].to_numpy()[rows],
                    found[["cov_xy", "cov_yy"]].to_numpy()[rows]], axis=1)
    return np.einsum("ni,nij,nj->n", err, np.linalg.inv(cov), err)


def test_recall_precision_pooled_over_random_acquisitions():
    """Beads 10-100 % persistent, 40 % bleaching after 20-60 % of the run, drift 0-200 nm
    uncorrected, 0-3 bright transients, blinking clusters, 1e4-1e5 localizations."""
    n_true = n_hit = n_false = n_found = 0
    z2 = []
    for seed in range(100, 112):
        rng = np.random.default_rng(seed)
        locs, truth, _ = _acquisition(rng)
        found = detect_smlm_fiducials(locs)
        hit, false, err, rows = _match(found, truth, tol=30.0)
        n_true += len(truth)
        n_hit += int(hit.sum())
        n_false += false
        n_found += len(found)
        z2.append(_mahalanobis2(found, rows, err))
    assert n_hit / n_true >= 0.95, (n_hit, n_true)
    assert (n_found - n_false) / n_found >= 0.95, (n_false, n_found)
    # on uncorrected tables the covariance includes the drift: errors stay inside it
    z2 = np.concatenate(z2)
    assert np.mean(z2 <= 13.8) >= 0.95  # chi2(2) 99.9 % quantile


def test_covariance_is_the_standard_error_without_drift():
    """Drift-free tables: the error of each bead position follows its covariance (chi2 with 2
    degrees of freedom: mean 2)."""
    z2 = []
    for seed in range(200, 206):
        rng = np.random.default_rng(seed)
        locs, truth, _ = _acquisition(rng, drift_nm=0.0)
        found = detect_smlm_fiducials(locs)
        assert found.attrs["estimated"]["scatter_includes_drift"] is False
        hit, _, err, rows = _match(found, truth, tol=30.0)
        z2.append(_mahalanobis2(found, rows, err))
    z2 = np.concatenate(z2)
    # mean of n chi2(2) values: 2 +- 2/sqrt(n) (n ~ 70); allow 4 standard errors
    assert abs(z2.mean() - 2.0) <= 8.0 / np.sqrt(z2.size), (z2.mean(), z2.size)


def test_weak_bleaching_drifting_beads():
    """The hardest beads of the range: on in 10-15 % of frames, half bleaching after 20-60 % of
    the run, 150-200 nm drift, not corrected."""
    n_true = n_hit = 0
    for seed in range(300, 304):
        rng = np.random.default_rng(seed)
        locs, truth, _ = _acquisition(rng, persistence=(0.1, 0.15), bleach_probability=0.5,
                                      drift_nm=rng.uniform(150, 200))
        found = detect_smlm_fiducials(locs)
        hit, false, _, _ = _match(found, truth, tol=30.0)
        n_true += len(truth)
        n_hit += int(hit.sum())
        assert false == 0
        est = found.attrs["estimated"]
        assert est["scatter_includes_drift"] is True
        assert est["track_extent_nm_max"] > 100.0
        assert "drift" in found.attrs["covariance"]
    assert n_hit / n_true >= 0.95


def test_bead_channel_where_every_cluster_is_a_bead():
    """A separate bead channel: no blinking population, no photons column."""
    for seed in range(400, 403):
        rng = np.random.default_rng(seed)
        locs, truth, _ = _acquisition(rng, labels=False, transients=False)
        found = detect_smlm_fiducials(locs.drop(columns=["photons"]))
        hit, false, _, _ = _match(found, truth, tol=30.0)
        assert hit.all() and false == 0
        assert "channel" in found.attrs["estimated"]["threshold_rule"]


def test_no_beads_is_a_detection_error():
    rng = np.random.default_rng(500)
    locs, _, _ = _acquisition(rng, beads=False)
    with pytest.raises(RegistrationError) as info:
        detect_smlm_fiducials(locs)
    err = info.value
    assert err.stage == "detection"
    assert "--min-persistence" in err.hint
    assert "n_long_lived" in err.diagnostics and "estimated" in err.diagnostics
    assert err.diagnostics["estimated"]["n_selected"] == 0
    with pytest.raises(RegistrationError, match="frame"):
        detect_smlm_fiducials(locs.drop(columns=["frame"]))


def test_estimates_and_overrides_are_recorded():
    rng = np.random.default_rng(600)
    locs, truth, _ = _acquisition(rng)
    found = detect_smlm_fiducials(locs)
    est, src = found.attrs["estimated"], found.attrs["source"]
    for key in ("min_persistence", "radius_nm", "min_frames", "min_span_frames", "block_frames",
                "sigma_nm", "n_candidates", "n_selected"):
        assert key in est
    assert src["min_persistence"] == "estimated" and src["radius_nm"] == "estimated"
    assert src["sigma_nm"] == "estimated" and "precision" in est["sigma_from"]
    assert est["n_selected"] == len(found)
    user = detect_smlm_fiducials(locs, min_persistence=0.5 * est["min_persistence"], radius_nm=40.0)
    assert user.attrs["source"]["min_persistence"] == "user"
    assert user.attrs["source"]["radius_nm"] == "user"
    assert user.attrs["estimated"]["radius_nm"] == 40.0
    assert (user["persistence"] >= 0.5 * est["min_persistence"]).all()
    hit, _, _, _ = _match(user, truth, tol=30.0)
    assert hit.mean() >= 0.9
    with pytest.raises(RegistrationError) as info:
        detect_smlm_fiducials(locs, min_persistence=1.01)
    assert info.value.stage == "detection"


def test_one_detector_for_drift_masks_and_particles():
    """smlm.find_fiducials, smlm.fiducial_mask and analysis.persistent_clusters see the
    registration's fiducials."""
    from correlate.analysis import persistent_clusters
    from correlate.smlm import fiducial_mask, find_fiducials

    rng = np.random.default_rng(700)
    locs, truth, _ = _acquisition(rng)
    reg = detect_smlm_fiducials(locs)
    fids = find_fiducials(locs)
    a = np.sort(reg[["x", "y"]].to_numpy(), axis=0)
    b = np.sort(fids.centers[:, :2], axis=0)
    assert a.shape == b.shape and np.allclose(a, b)
    mask = fiducial_mask(locs)
    assert np.array_equal(mask, persistent_clusters(locs))
    bead_rows = (locs["kind"] == 1).to_numpy()
    assert mask[bead_rows].mean() > 0.99
    assert mask[~bead_rows].mean() < 0.02


def test_drift_from_beads_on_in_a_third_of_the_frames():
    """The reported case: beads lit in ~30 % of frames; drift correction finds them and recovers
    the drift to well under the bead precision."""
    from correlate.smlm import estimate_drift

    rng = np.random.default_rng(800)
    locs, truth, drift = _acquisition(rng, n_beads=8, persistence=(0.25, 0.35), bleach_probability=0.0,
                                      drift_nm=150.0, n_frames=4000)
    d = estimate_drift(locs)
    assert d.method == "fiducials" and d.info["n_fiducials"] == 8
    true = drift - drift.mean(0)
    rms = float(np.sqrt(np.mean(np.sum((d.values - true[d.frames]) ** 2, axis=1))))
    # per frame ~2.4 beads of <= 5 nm precision: a few nm raw, far less after smoothing
    assert rms < 1.5, rms
