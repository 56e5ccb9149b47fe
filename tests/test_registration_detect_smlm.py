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


def _acquisition(rng, *, n_beads=None, beads=True, drift_nm=None, n_frames=None, target_locs=None):
    """A random acquisition; returns (locs, bead truth (x, y: mean position over the bead's own
    frames, drift included), drift applied)."""
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
        p = rng.uniform(0.1, 1.0)
        end = n_frames if rng.random() < 0.6 else int(rng.uniform(0.2, 0.6) * n_frames)
        fr = np.flatnonzero(rng.random(end) < p)
        ph = label_photons * rng.uniform(3, 30)
        sig = max(label_sigma * np.sqrt(label_photons / ph), 0.5)
        xy0 = rng.uniform(1000, field - 1000, 2)
        xy = xy0 + drift[fr] + rng.normal(0, sig, (fr.size, 2))
        parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": fr, "photons": ph * rng.lognormal(0, 0.2, fr.size),
                                   "precision": sig, "kind": 1, "bead": k}))
        truth.append((*(xy0 + drift[fr].mean(0)), p, end))
    n_bead_locs = sum(len(q) for q in parts)
    # blinking clusters: molecules within a cluster radius, geometric events of geometric length
    events_mean = rng.uniform(2, 20)
    on_len = rng.uniform(1, 3)
    max_mol = max(1, int(0.03 * n_frames / (events_mean * on_len)))
    label_locs = max(target_locs - n_bead_locs, 2000)
    n_clusters = max(10, int(label_locs / (events_mean * on_len * 0.5 * (1 + max_mol))))
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
    for _ in range(int(rng.integers(0, 4))):
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
    return hit, len(found) - used.size, (found[["x", "y"]].to_numpy()[j[hit]] - truth[["x", "y"]].to_numpy()[hit]), j[hit]


@pytest.mark.parametrize("seed", range(6))
def test_recall_precision_randomized(seed):
    rng = np.random.default_rng(seed)
    locs, truth, _ = _acquisition(rng)
    found = detect_smlm_fiducials(locs)
    hit, false, err, j = _match(found, truth, tol=30.0)
    print(seed, len(locs), len(truth), hit.sum(), false, found.attrs["estimated"])
    assert hit.mean() >= 0.9
    assert false <= 1
