"""Blink grouping, molecule counting calibrations and qPAINT (synthetic and simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import (
    calibrate_blinking,
    calibrate_isolated,
    count_molecules,
    group_blinks,
    qpaint,
)


def _blinking(rng, n_mol, *, n_frames=3000, events_mean=4.0, on_mean=3.0, dark_mean=50.0, spacing=200.0,
              precision=5.0):
    """Well-separated molecules with geometric events / on-times; returns locs and truth ids."""
    side = int(np.ceil(np.sqrt(n_mol)))
    pos = np.column_stack([np.arange(n_mol) % side, np.arange(n_mol) // side]) * spacing
    rows = []
    eid = 0
    for m in range(n_mol):  # test data generation only
        n_ev = rng.geometric(1 / events_mean)
        t = rng.integers(0, n_frames // 2)
        for _ in range(n_ev):
            on = rng.geometric(1 / on_mean)
            for f in range(t, min(t + on, n_frames)):
                rows.append((pos[m, 0], pos[m, 1], f, m, eid))
            eid += 1
            t += on + 1 + int(rng.exponential(dark_mean))
    a = np.array(rows, float)
    df = pd.DataFrame({"x": a[:, 0] + rng.normal(0, precision, len(a)), "y": a[:, 1] + rng.normal(0, precision, len(a)),
                       "frame": a[:, 2].astype(np.int64), "precision": precision,
                       "true_molecule_id": a[:, 3].astype(int), "true_event_id": a[:, 4].astype(int)})
    return df.sort_values("frame", kind="stable").reset_index(drop=True)


def test_group_blinks_recovers_events():
    rng = np.random.default_rng(0)
    df = _blinking(rng, 200)
    # k_sigma=3: consecutive localizations of one event (pair sigma sqrt(2) p) linked at 99 %
    ev = group_blinks(df, max_dark_frames=0, k_sigma=3.0)
    # each true event maps to one group and groups do not mix molecules
    per_true = pd.Series(ev).groupby(df["true_event_id"].to_numpy()).nunique()
    assert (per_true == 1).mean() > 0.97
    mix = pd.Series(df["true_molecule_id"].to_numpy()).groupby(ev).nunique()
    assert (mix == 1).all()
    n_true = df["true_event_id"].nunique()
    assert abs(ev.max() + 1 - n_true) / n_true < 0.05
    # groups keep localizations of different groups apart
    g = np.where(df["x"] < 1000, 0, 1)
    ev2 = group_blinks(df, max_dark_frames=0, groups=g, k_sigma=3.0)
    # the default (k_sigma=2) splits some events (13 % of links fail) but never merges molecules
    ev3 = group_blinks(df)
    assert (pd.Series(df["true_molecule_id"].to_numpy()).groupby(ev3).nunique() == 1).all()
    assert ev3.max() + 1 >= ev.max() + 1
    assert (pd.Series(g).groupby(ev2).nunique() == 1).all()
    assert group_blinks(df.iloc[:0]).shape == (0,)


def test_calibrations_and_counting():
    rng = np.random.default_rng(1)
    df = _blinking(rng, 400)
    ev0 = group_blinks(df)
    # events as the grouping sees them (it splits a few): the calibration must use the same
    true_epm = pd.Series(ev0).groupby(df["true_molecule_id"].to_numpy()).nunique().mean()
    iso = calibrate_isolated(df, ev0)
    assert iso["n_clusters"] > 300
    assert iso["events_per_molecule"] == pytest.approx(true_epm, rel=0.05)
    assert iso["dark_time_frames"] == pytest.approx(50.0 + 0.5, rel=0.15)
    # dense "particles": 25 molecules within 40 nm discs; the in-data calibration
    mol = []
    for p in range(16):
        c = np.array([p % 4, p // 4]) * 1000.0
        mol.append(c + rng.uniform(-40, 40, (25, 2)))
    mol = np.concatenate(mol)
    df2 = _blinking(rng, len(mol), spacing=0.0)
    m = df2["true_molecule_id"].to_numpy()
    df2["x"] += mol[m, 0]
    df2["y"] += mol[m, 1]
    groups = m // 25
    ev = group_blinks(df2, groups=groups)
    cal = calibrate_blinking(df2, ev, groups=groups)
    true2 = pd.Series(ev).groupby(m).nunique().mean()
    assert cal["events_per_molecule"] == pytest.approx(true2, rel=0.2)
    n_ev = pd.Series(ev).groupby(groups).nunique().to_numpy()
    est = count_molecules(n_ev, events_per_molecule=iso["events_per_molecule"])
    assert np.median(np.abs(est - 25) / 25) < 0.25
    assert np.isnan(count_molecules([3], events_per_molecule=float("nan"))).all()


def test_qpaint_counts_binding_sites():
    """DNA-PAINT-like: each site binds with mean dark time tau_d; n sites shorten the ensemble
    dark time to tau_d / n."""
    rng = np.random.default_rng(2)
    tau_d, n_frames = 400.0, 40000
    frames, groups, truth = [], [], []
    for g, n in enumerate([2, 4, 8, 12, 16]):
        for _ in range(n):  # test data generation only
            t = rng.exponential(tau_d)
            while t < n_frames:
                on = rng.geometric(1 / 2.0)
                frames.extend(range(int(t), min(int(t) + on, n_frames)))
                groups.extend([g] * min(on, n_frames - int(t)))
                t += on + rng.exponential(tau_d)
        truth.append(n)
    q = qpaint(np.array(frames), np.array(groups), tau_d1_frames=tau_d)
    rel = (q["n_qpaint"].to_numpy() - truth) / np.array(truth)
    assert np.median(np.abs(rel)) < 0.2, q
    assert (np.diff(q["qpaint_index"].to_numpy()) > 0).all()
