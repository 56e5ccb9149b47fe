"""Assignment of localizations to particles and fiducial-track flagging (synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import assign_localizations, persistent_clusters


def _ring(rng, c, r, n, sigma):
    a = rng.uniform(0, 2 * np.pi, n)
    rho = r * np.sqrt(rng.uniform(0, 1, n))  # projected shell: inside the disc of radius r
    return np.column_stack([c[0] + rho * np.cos(a), c[1] + rho * np.sin(a)]) + rng.normal(0, sigma, (n, 2))


def test_assignment_shell_ambiguity_and_exclusion():
    rng = np.random.default_rng(0)
    cent = np.array([[0.0, 0.0], [300.0, 0.0], [600.0, 0.0], [690.0, 0.0]])  # last two touch
    rad = np.array([40.0, 60.0, 45.0, 45.0])
    pts, truth = [], []
    for k, (c, r) in enumerate(zip(cent, rad)):
        p = _ring(rng, c, r + 10.0, 400, 5.0)
        pts.append(p)
        truth.append(np.full(len(p), k))
    bg = rng.uniform(-200, 900, (2000, 2))
    pts.append(bg)
    truth.append(np.full(len(bg), -1))
    p = np.concatenate(pts)
    t = np.concatenate(truth)
    a = assign_localizations(p, cent, rad, linker_nm=10.0, n_sigma=2.0, precision_nm=5.0)
    part = a["particle"].to_numpy()
    iso = t <= 1
    assert np.mean(part[iso & (t >= 0)] == t[iso & (t >= 0)]) > 0.98
    # the touching pair: most points resolved to the right particle, the contact zone ambiguous
    pair = (t >= 2)
    assert np.mean(part[pair] == t[pair]) > 0.85
    assert a["ambiguous"][pair].mean() > 0.01
    assert np.all(part[a["ambiguous"].to_numpy()] == -1)
    # background: only what falls in the shells (area fraction)
    shell_area = np.pi * ((rad + 10 + 10) ** 2).sum()
    frac = shell_area / (1100.0 * 1100.0)
    assert np.mean(part[t == -1] >= 0) < 2 * frac
    # exclusion and TRE widen/limit the shell
    ex = np.zeros(len(p), bool)
    ex[:100] = True
    a2 = assign_localizations(p, cent, rad, linker_nm=10.0, precision_nm=5.0, exclude=ex)
    assert (a2["particle"].to_numpy()[:100] == -1).all()
    far = np.array([[0.0, 40 + 10 + 30.0]])  # 30 nm beyond the linker shell
    assert assign_localizations(far, cent, rad, linker_nm=10, tre_nm=5.0)["particle"][0] == -1
    assert assign_localizations(far, cent, rad, linker_nm=10, tre_nm=20.0)["particle"][0] == 0
    assert assign_localizations(far, cent, rad, linker_nm=10, tre_nm=lambda q: np.full(len(q), 20.0))["particle"][0] == 0
    # no particles, no points
    assert (assign_localizations(p[:5], np.zeros((0, 2)), np.zeros(0))["particle"] == -1).all()
    assert len(assign_localizations(np.zeros((0, 2)), cent, rad)) == 0


def test_persistent_clusters_flags_fiducials_only():
    rng = np.random.default_rng(1)
    n_frames = 1000
    present = rng.random(n_frames) < 0.95
    drift = np.linspace(0, 80.0, n_frames)[present]  # a drifting fiducial stays one track
    fid = pd.DataFrame({"x": 500 + drift + rng.normal(0, 1.5, present.sum()),
                        "y": 500 + rng.normal(0, 1.5, present.sum()), "frame": np.flatnonzero(present),
                        "precision": 1.5})
    # a particle: 30 molecules x 12 localizations in an 80 nm disc
    mol = rng.uniform(-40, 40, (30, 2)) + 2000
    k = np.repeat(np.arange(30), 12)
    # each molecule: 4 events of 3 consecutive frames
    start = rng.integers(0, n_frames - 3, (30, 4))
    fr = (start[:, :, None] + np.arange(3)).reshape(30, 12)[np.arange(30).repeat(12) // 1, np.tile(np.arange(12), 30)]
    part = pd.DataFrame({"x": mol[k, 0] + rng.normal(0, 6, k.size), "y": mol[k, 1] + rng.normal(0, 6, k.size),
                         "frame": fr, "precision": 6.0})
    bg = pd.DataFrame({"x": rng.uniform(0, 3000, 300), "y": rng.uniform(0, 3000, 300),
                       "frame": rng.integers(0, n_frames, 300), "precision": 8.0})
    locs = pd.concat([fid, part, bg], ignore_index=True).sort_values("frame", kind="stable")
    is_fid = locs.index.to_numpy() < len(fid)
    locs = locs.reset_index(drop=True)
    flag = persistent_clusters(locs)
    assert flag[is_fid].all()
    # localizations right next to a fiducial track count with it; all others are kept
    near = (locs["x"].between(450, 630) & locs["y"].between(450, 550)).to_numpy()
    assert not flag[~is_fid & ~near].any()


@pytest.mark.parametrize("n", [0, 1])
def test_persistent_clusters_small(n):
    locs = pd.DataFrame({"x": np.zeros(n), "y": np.zeros(n), "frame": np.zeros(n, np.int64)})
    assert persistent_clusters(locs).shape == (n,)
