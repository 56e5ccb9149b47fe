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


def _sites_data(rng, n_groups=60, spacing=40.0, mean_mol=15, events_mean=3.5, sigma=4.0):
    """Groups of molecules on a jittered grid ``spacing`` nm apart (resolvable for spacing >> the
    event error), a geometric number of events each, event errors ~``sigma`` nm (lognormal)."""
    k = rng.poisson(mean_mol, n_groups) + 3
    gid = np.repeat(np.arange(n_groups), k)
    idx = np.arange(gid.size) - np.repeat(np.cumsum(k) - k, k)
    side = 6
    pos = np.column_stack([idx % side, idx // side]) * spacing + rng.uniform(-3, 3, (gid.size, 2))
    pos += gid[:, None] * 10000.0
    n_ev = rng.geometric(1.0 / events_mean, gid.size)
    mol = np.repeat(np.arange(gid.size), n_ev)
    sig = sigma * np.exp(0.3 * rng.standard_normal(mol.size))
    xy = pos[mol] + sig[:, None] * rng.standard_normal((mol.size, 2))
    return xy, sig, gid[mol], mol, k


def test_emitter_sites_and_count_sites():
    from correlate.analysis import count_sites, emitter_sites

    rng = np.random.default_rng(3)
    xy, sig, g, mol, k = _sites_data(rng)
    n_ev_mol = np.bincount(mol)
    for linkage, test in (("centroid", "z"), ("centroid", "chi2"), ("single", "z")):
        site = emitter_sites(xy, sig, g, linkage=linkage, merge_test=test)
        # resolved molecules (40 nm apart, ~4 nm errors): sites hold one molecule, and molecules
        # with up to 6 events stay in one site (with many events, "z" may split one in two
        # fragments: their centroids are pulled apart by ~0.8 sqrt(m) errors)
        per_mol = pd.Series(site).groupby(mol).nunique().to_numpy()
        per_site = pd.Series(mol).groupby(site).nunique()
        few = n_ev_mol <= 6
        assert (per_mol[few] == 1).mean() > 0.95, (linkage, test)
        assert (per_mol == 1).mean() > (0.95 if test == "chi2" else 0.85), (linkage, test)
        assert (per_site == 1).mean() > (0.9 if linkage == "single" else 0.98), (linkage, test)
        assert (pd.Series(g).groupby(site).nunique() == 1).all()
    # counts: sites count molecules almost exactly, events carry the geometric noise
    # (CV sqrt((mu - 1) / (mu k)) ~ 0.2 for k ~ 18)
    mu = float(np.bincount(mol).mean())
    n_ev = np.bincount(g)
    ev_err = np.median(np.abs(count_molecules(n_ev, events_per_molecule=mu) - k) / k)
    raw = count_sites(xy, sig, g, events_per_molecule=mu, scale_to_events=False)
    raw_err = np.median(np.abs(raw["n_molecules"].to_numpy() - k) / k)
    scaled = count_sites(xy, sig, g, events_per_molecule=mu)
    sc_err = np.median(np.abs(scaled["n_molecules"].to_numpy() - k) / k)
    assert ev_err > 0.08
    # fragments of molecules with many events make the raw site count a few % high; the scaled
    # count removes that common factor
    assert raw_err < 0.10 and sc_err < 0.6 * ev_err, (raw_err, sc_err, ev_err)
    # the scaled total equals the event-based total; detection efficiency divides
    assert scaled["n_molecules"].sum() == pytest.approx(n_ev.sum() / mu)
    half = count_sites(xy, sig, g, events_per_molecule=mu, detection_efficiency=0.5)
    np.testing.assert_allclose(half["n_molecules"], 2 * scaled["n_molecules"])
    assert (scaled["n_sites"].to_numpy() >= 0.9 * k).all()
    # unresolved emitters (3-7 molecules within +-3 nm): fewer sites than molecules, but a site
    # with many events counts as several molecules
    xy2, sig2, g2, _, k2 = _sites_data(rng, spacing=0.0, mean_mol=1, n_groups=300)
    one = count_sites(xy2, sig2, g2, events_per_molecule=mu, scale_to_events=False)
    assert np.median(one["n_sites"].to_numpy() / k2) < 0.75
    est = one["n_molecules"].to_numpy()
    assert np.median(est / k2) == pytest.approx(1.0, abs=0.2)
    assert np.median(est[k2 >= 5]) > np.median(est[k2 == 3])
    # negative groups ignored; empty and unusable calibrations
    neg = count_sites(xy, sig, np.where(g == 0, -1, g), events_per_molecule=mu, n_groups=g.max() + 1)
    assert neg["n_molecules"].iloc[0] == 0
    empty = count_sites(np.zeros((0, 2)), np.zeros(0), np.zeros(0, int), events_per_molecule=mu, n_groups=3)
    assert (empty["n_molecules"] == 0).all() and len(empty) == 3
    assert count_sites(xy, sig, g, events_per_molecule=float("nan"))["n_molecules"].isna().all()
    assert emitter_sites(np.zeros((0, 2)), np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="linkage"):
        emitter_sites(xy, sig, g, linkage="ward")
    with pytest.raises(ValueError, match="merge_test"):
        emitter_sites(xy, sig, g, merge_test="bic")
