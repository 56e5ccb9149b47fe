"""NeNA localization precision, FRC resolution and the summary used by `correlate info`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _smlm_sim import sample

from correlate.errors import CorrelateError
from correlate.smlm import adjacent_frame_distances, frc, nena, summary


def _blinking(rng, sigma=10.0, n_mol=3000, n_frames=3000, field=20000.0, n_bg=3000):
    """Molecules on for 1-6 consecutive frames (each localized with precision sigma), plus
    uniformly random background localizations."""
    pos = rng.uniform(0, field, (n_mol, 2))
    start = rng.integers(0, n_frames - 6, n_mol)
    length = rng.integers(1, 7, n_mol)
    mol = np.repeat(np.arange(n_mol), length)
    frame = start[mol] + np.arange(len(mol)) - np.repeat(np.cumsum(length) - length, length)
    xy = pos[mol] + sigma * rng.standard_normal((len(mol), 2))
    bg = rng.uniform(0, field, (n_bg, 2))
    df = pd.DataFrame({
        "x": np.concatenate([xy[:, 0], bg[:, 0]]),
        "y": np.concatenate([xy[:, 1], bg[:, 1]]),
        "frame": np.concatenate([frame, rng.integers(0, n_frames, n_bg)]).astype(np.int64),
        "precision": sigma,
    })
    return df


def test_adjacent_frame_distances_exact():
    xy = np.array([[0.0, 0.0], [3.0, 4.0], [100.0, 0.0], [0.0, 1.0]])
    frame = np.array([0, 1, 1, 3])
    d = adjacent_frame_distances(xy, frame, radius=50.0)
    # frame 0 -> nearest in frame 1 is 5 nm; frame 1 points have nothing in frame 2
    assert np.allclose(d, [5.0])


@pytest.mark.parametrize("sigma", [5.0, 15.0])
def test_nena_recovers_sigma(sigma):
    rng = np.random.default_rng(int(sigma))
    r = nena(_blinking(rng, sigma=sigma))
    assert abs(r.precision_nm - sigma) / sigma < 0.05
    assert r.precision_err_nm < 0.05 * sigma
    assert 0.5 < r.fraction_same <= 1.0
    assert r.counts.sum() == r.n_distances


def test_nena_too_few_pairs():
    df = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 0.0], "frame": [0, 1]})
    with pytest.raises(CorrelateError, match="at least 100"):
        nena(df)


def test_nena_on_simulator_within_10_percent():
    """NeNA on the simulator (default density): within 10 % of the mean simulated precision of
    the non-fiducial localizations (measured 7.07 vs 7.48 nm, -5.5 %)."""
    s = sample("default")
    for label in ("antibody", "corona"):
        df = s.smlm[label]
        truth = float(df.loc[df.true_particle_id != -2, "precision"].mean())
        r = nena(df)
        assert abs(r.precision_nm - truth) / truth < 0.10, (label, r.precision_nm, truth)


def _structure(rng, sigma, n=30000, field=3000.0):
    """Localizations on a set of short lines (filaments), precision sigma, over 2000 frames."""
    n_lines = 40
    a = rng.uniform(0, field, (n_lines, 2))
    ang = rng.uniform(0, np.pi, n_lines)
    k = rng.integers(0, n_lines, n)
    t = rng.uniform(0, 600, n)
    xy = a[k] + t[:, None] * np.column_stack([np.cos(ang[k]), np.sin(ang[k])]) + sigma * rng.standard_normal((n, 2))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": rng.integers(0, 2000, n).astype(np.int64),
                         "precision": sigma})


def test_frc_resolution_tracks_precision():
    rng = np.random.default_rng(0)
    sharp = frc(_structure(rng, 4.0), pixel_size=2.5)
    blurred = frc(_structure(rng, 20.0), pixel_size=2.5)
    print(f"FRC sharp (4 nm) {sharp.resolution_nm:.1f} nm, blurred (20 nm) {blurred.resolution_nm:.1f} nm")
    assert np.isfinite(sharp.resolution_nm) and np.isfinite(blurred.resolution_nm)
    # FRC resolution of a 2-D Gaussian-blurred structure is of the order of 2-4 x sigma
    assert 5.0 < sharp.resolution_nm < 30.0
    assert blurred.resolution_nm > 2.0 * sharp.resolution_nm
    assert sharp.frc_smoothed[1] > 0.5
    r = frc(_structure(rng, 4.0), pixel_size=2.5, split="random")
    assert np.isfinite(r.resolution_nm)
    with pytest.raises(CorrelateError, match="split"):
        frc(_structure(rng, 4.0), split="odd")


def test_summary_on_simulator():
    s = sample("small")
    out = summary(s.smlm["antibody"])
    assert out["n_localizations"] == len(s.smlm["antibody"])
    assert out["n_fiducials"] == 8
    assert out["nena_precision_nm"] > 0 and np.isfinite(out["frc_resolution_nm"])
    assert out["frames"] == [0, 599]
