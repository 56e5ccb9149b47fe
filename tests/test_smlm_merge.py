"""Blink merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _smlm_sim import sample

from correlate.smlm import link_events, merge_blinks


def _events(rng, n_events=300, field=20000.0, n_frames=2000, sigma=8.0, dark_gap=False):
    """Synthetic on-events: each a fixed emitter seen for 1-6 consecutive frames."""
    pos = rng.uniform(0, field, (n_events, 2))
    start = rng.integers(0, n_frames - 10, n_events)
    length = rng.integers(1, 7, n_events)
    ev = np.repeat(np.arange(n_events), length)
    within = np.arange(len(ev)) - np.repeat(np.cumsum(length) - length, length)
    frame = start[ev] + within
    if dark_gap:  # one missed frame in the middle of long events
        frame = frame + ((within >= 3) & (length[ev] >= 5))
    prec = rng.uniform(0.5, 1.5, len(ev)) * sigma
    xy = pos[ev] + prec[:, None] * rng.standard_normal((len(ev), 2))
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": frame.astype(np.int64), "precision": prec,
                       "photons": rng.uniform(500, 1500, len(ev)), "event": ev})
    return df, pos


def test_link_events_recovers_synthetic_events():
    rng = np.random.default_rng(1)
    df, _ = _events(rng)
    lab = link_events(df[["x", "y"]].to_numpy(), df["frame"].to_numpy(), radius=60.0, max_dark_frames=0,
                      sigma=df["precision"].to_numpy())
    # no label spans two events; a 3.5-sigma gate splits ~0.2 % of true links
    pairs = pd.DataFrame({"lab": lab, "ev": df["event"]}).drop_duplicates()
    assert pairs["lab"].is_unique
    n_ev = df["event"].nunique()
    assert n_ev <= lab.max() + 1 <= n_ev * 1.01


def test_dark_frames_bridge_gaps():
    rng = np.random.default_rng(2)
    df, _ = _events(rng, dark_gap=True)
    n_true = df["event"].nunique()
    m0 = merge_blinks(df, max_dark_frames=0)
    m1 = merge_blinks(df, max_dark_frames=1)
    n_gap = int((df.groupby("event").size() >= 5).sum())  # events with a missed frame
    assert n_true <= len(m1) <= 1.01 * n_true
    assert len(m0) >= len(m1) + 0.9 * n_gap  # without bridging, the gap splits those events


def test_merged_values_are_precision_weighted():
    df = pd.DataFrame({"x": [0.0, 10.0, 1000.0], "y": [0.0, 0.0, 0.0], "frame": [5, 6, 6],
                       "precision": [1.0, 2.0, 5.0], "photons": [100.0, 300.0, 50.0], "background": [1.0, 3.0, 9.0],
                       "sigma": [100.0, 120.0, 130.0]})
    m = merge_blinks(df, radius=50.0)
    assert len(m) == 2
    row = m.iloc[0]
    w = np.array([1.0, 0.25])
    assert row.x == pytest.approx((w * [0, 10]).sum() / w.sum())
    assert row.precision == pytest.approx(1 / np.sqrt(w.sum()))
    assert row.photons == 400.0 and row.background == 2.0
    assert (row.n_merged, row.first_frame, row.last_frame, row.frame) == (2, 5, 6, 5)
    assert m.iloc[1].n_merged == 1 and m.iloc[1].x == 1000.0


def test_same_frame_localizations_never_merge():
    df = pd.DataFrame({"x": [0.0, 1.0, 0.5], "y": [0.0, 0.0, 0.0], "frame": [3, 3, 4], "precision": [5.0, 5.0, 5.0]})
    m = merge_blinks(df, radius=20.0)
    assert len(m) == 2  # frame 4 joins one of the two, the two in frame 3 stay apart


def test_merge_on_simulator_recovers_true_event_count():
    """Default simulator density: merged count within 5 % of the true on-events (+ the single
    nonspecific localizations); fiducials (always on) become one event each."""
    s = sample("default")
    for label in ("antibody", "corona"):
        df = s.smlm[label]
        m = merge_blinks(df)
        n_true = df.loc[df.true_event_id >= 0, "true_event_id"].nunique() + int((df.true_particle_id == -1).sum())
        n_got = int((m.true_particle_id != -2).sum())
        assert abs(n_got - n_true) / n_true < 0.05, (label, n_got, n_true)
        # the merged precision is better than the per-frame one
        assert m.loc[m.n_merged > 2, "precision"].median() < df.loc[df.true_particle_id >= 0, "precision"].median()
