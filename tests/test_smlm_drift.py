"""Drift correction: fiducials, RCC, applying, failing loudly, plots, simulator accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _smlm_sim import sample, true_drift

from correlate.errors import CorrelateError
from correlate.smlm import (
    apply_drift,
    correct_drift,
    drift_from_fiducials,
    drift_rcc,
    estimate_drift,
    find_fiducials,
    plot_drift,
)


def _drift_fn(n_frames):
    t = np.arange(n_frames) / n_frames
    return np.column_stack([40 * t + 8 * np.sin(2 * np.pi * 2 * t), -30 * t + 6 * np.cos(2 * np.pi * 3 * t)])


def _synthetic(rng, n_frames=1000, n_fid=5, n_mol=300, field=5000.0, fid_prec=2.0):
    """Fiducials (on in 90 % of frames) + repeatedly blinking molecules in clusters, with drift."""
    drift = _drift_fn(n_frames)
    parts = []
    fpos = rng.uniform(1000, field - 1000, (n_fid, 2))
    on = rng.random((n_fid, n_frames)) < 0.9
    k, f = np.nonzero(on)
    parts.append(pd.DataFrame({"x": fpos[k, 0], "y": fpos[k, 1], "frame": f, "precision": fid_prec,
                               "photons": 20000.0, "kind": "fid"}))
    centres = rng.uniform(500, field - 500, (n_mol // 10, 2))
    mol = centres[rng.integers(0, len(centres), n_mol)] + rng.normal(0, 40, (n_mol, 2))
    n_loc = 60 * n_mol
    m = rng.integers(0, n_mol, n_loc)
    parts.append(pd.DataFrame({"x": mol[m, 0], "y": mol[m, 1], "frame": rng.integers(0, n_frames, n_loc),
                               "precision": 8.0, "photons": 1500.0, "kind": "mol"}))
    df = pd.concat(parts, ignore_index=True)
    noise = df["precision"].to_numpy()[:, None] * rng.standard_normal((len(df), 2))
    df[["x", "y"]] = df[["x", "y"]].to_numpy() + noise + drift[df["frame"].to_numpy()]
    df["frame"] = df["frame"].astype(np.int64)
    return df, drift - drift.mean(0)


def _rms(a, b):
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def test_find_fiducials_synthetic():
    rng = np.random.default_rng(0)
    df, _ = _synthetic(rng)
    fids = find_fiducials(df)
    assert len(fids) == 5
    assert np.all(fids.occupancy > 0.85)
    assert set(df.loc[fids.labels >= 0, "kind"]) == {"fid"}


def test_fiducial_drift_synthetic():
    rng = np.random.default_rng(1)
    df, truth = _synthetic(rng)
    d = drift_from_fiducials(df)
    assert d.method == "fiducials" and d.info["n_fiducials"] == 5
    # per-frame noise 2 nm / sqrt(4.5 fiducials) ~ 0.9 nm before smoothing; far less after
    err = _rms(d.values, truth[d.frames])
    assert err < 0.6
    # the split-half error estimate is the right order of magnitude
    est = d.summary()["residual_drift_rms_nm"]
    assert err / 4 < est < err * 4
    out = apply_drift(df, d)
    fid = df["kind"] == "fid"
    # corrected fiducial tracks scatter only by their precision (2 nm per axis)
    spread = out[fid].groupby(find_fiducials(df).labels[fid.to_numpy()])[["x", "y"]].std().to_numpy()
    assert np.all(spread < 2.5)
    assert {"drift_x", "drift_y"} <= set(out.columns)
    assert np.allclose(out["x"] + out["drift_x"], df["x"])


def test_rcc_drift_synthetic():
    rng = np.random.default_rng(2)
    df, truth = _synthetic(rng, n_fid=0)
    d = drift_rcc(df, n_bins=10)
    assert d.method == "rcc" and d.info["n_bins"] == 10
    assert _rms(d.values, truth[d.frames]) < 3.0


def test_auto_picks_fiducials_then_rcc():
    rng = np.random.default_rng(3)
    df, _ = _synthetic(rng)
    assert estimate_drift(df).method == "fiducials"
    no_fid = df[df["kind"] != "fid"].reset_index(drop=True)
    assert estimate_drift(no_fid, n_bins=4).method == "rcc"


def test_fails_loudly():
    rng = np.random.default_rng(4)
    df, _ = _synthetic(rng, n_fid=0)
    with pytest.raises(CorrelateError, match="no fiducials found"):
        estimate_drift(df, method="fiducials")
    with pytest.raises(CorrelateError, match="at least 3 time bins"):
        drift_rcc(df.iloc[:2000])
    with pytest.raises(CorrelateError, match="fewer than min_locs_per_bin"):
        drift_rcc(df, n_bins=30, min_locs_per_bin=1000)
    # no repeated structure: uniformly random localizations give flat correlation peaks
    n = 12000
    flat = pd.DataFrame({"x": rng.uniform(0, 6000, n), "y": rng.uniform(0, 6000, n),
                         "frame": rng.integers(0, 1000, n).astype(np.int64), "precision": 10.0})
    with pytest.raises(CorrelateError, match="flat|cannot determine"):
        drift_rcc(flat, n_bins=5)
    with pytest.raises(CorrelateError, match="frame"):
        estimate_drift(df.drop(columns="frame"))


def test_plot_drift(tmp_path):
    rng = np.random.default_rng(5)
    df, truth = _synthetic(rng, n_frames=300)
    _, d = correct_drift(df)
    p = tmp_path / "drift.png"
    plot_drift(d, p, truth=pd.DataFrame({"frame": np.arange(300), "dx": truth[:, 0], "dy": truth[:, 1]}))
    assert p.stat().st_size > 5000
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulator_fiducial_drift_within_2nm():
    """Simulator (default density, drift 60 nm linear + 20 nm oscillation): fiducial drift
    correction leaves <= 2 nm RMS residual drift against the truth (measured ~0.04 nm)."""
    s = sample("default")
    truth = true_drift(s)
    for label in ("antibody", "corona"):
        corrected, d = correct_drift(s.smlm[label], method="fiducials")
        assert d.info["n_fiducials"] == 12
        assert _rms(d.values, truth[d.frames]) <= 2.0
        # and on the data: corrected fiducial localizations sit on their true positions
        fid = corrected[corrected.true_particle_id == -2]
        c = fid.groupby("true_fiducial_id")[["x", "y"]].transform("mean")
        assert np.sqrt(((fid[["x", "y"]] - c) ** 2).sum(axis=1).mean()) < 3 * fid.precision.median()


def test_simulator_rcc_without_fiducials_within_8nm():
    """Simulator default density without fiducials: RCC leaves <= 8 nm RMS (measured ~2 nm)."""
    s = sample("default", fiducials=False)
    df = s.smlm["antibody"]
    assert (df.true_particle_id == -2).sum() == 0
    d = estimate_drift(df, method="auto")
    assert d.method == "rcc"
    err = _rms(d.values, true_drift(s)[d.frames])
    assert err <= 8.0
    assert d.summary()["residual_drift_rms_nm"] < 8.0


def test_fiducial_drift_3d_and_channels_kept():
    rng = np.random.default_rng(6)
    df, truth = _synthetic(rng, n_frames=400, n_mol=100)
    dz = 15 * np.sin(np.arange(400) / 60.0)
    df["z"] = rng.normal(0, 3, len(df)) + dz[df["frame"].to_numpy()]
    df["channel"] = "ch0"
    corrected, d = correct_drift(df, method="fiducials")
    assert d.values.shape == (400, 3)
    assert _rms(d.values[:, :2], truth[d.frames]) < 1.0
    assert np.sqrt(np.mean((d.values[:, 2] - (dz - dz.mean())) ** 2)) < 1.5
    assert {"drift_x", "drift_y", "drift_z"} <= set(corrected.columns)
    assert (corrected["channel"] == "ch0").all() and len(corrected) == len(df)


def test_rcc_drift_beyond_search_window_is_an_error():
    rng = np.random.default_rng(7)
    df, _ = _synthetic(rng, n_fid=0)
    f = df["frame"].to_numpy()
    df["x"] = df["x"] + 0.6 * f  # 600 nm over the run
    with pytest.raises(CorrelateError, match="max_drift"):
        drift_rcc(df, n_bins=6, max_drift=100.0)
    d = drift_rcc(df, n_bins=6, max_drift=1000.0)
    assert np.ptp(d.values[:, 0]) > 400
