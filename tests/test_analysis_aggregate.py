"""Functional imaging per particle: a localization property aggregated per particle separates
particle types; turn-on event rates per surface and frame come with Poisson intervals that hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import analyze_particles
from correlate.analysis._aggregate_steps import _grouped, parse_aggregate, poisson_interval
from correlate.datasets import SampleConfig, simulate_sample
from correlate.demo import match_particles
from correlate.errors import CorrelateError


def test_grouped_statistics_equal_pandas():
    rng = np.random.default_rng()
    n_rows = int(rng.integers(3, 30))
    rows = rng.integers(-1, n_rows, 2000)
    rows[rows == 0] = 1  # row 0 gets nothing: NaN, count 0
    v = rng.normal(0, 1, 2000)
    v[rng.random(2000) < 0.05] = np.nan
    df = pd.DataFrame({"r": rows, "v": v})[lambda d: (d.r >= 0) & d.v.notna()]
    g = df.groupby("r")["v"]
    ref = {"mean": g.mean(), "median": g.median(), "std": g.std(), "min": g.min(), "max": g.max(),
           "sum": g.sum(), "count": g.count(), "q90": g.quantile(0.9), "frac>0.5": g.apply(lambda s: (s > 0.5).mean())}
    for stat, want in ref.items():
        _, kind, param, _ = parse_aggregate(f"v:{stat}")
        got, _ = _grouped(v, rows, n_rows, kind, param)
        full = want.reindex(range(n_rows))
        if stat == "count":
            full = full.fillna(0)
        np.testing.assert_allclose(got, full.to_numpy(float), rtol=1e-12, equal_nan=True, err_msg=stat)
    with pytest.raises(CorrelateError):
        parse_aggregate("v:mode")


def test_spectral_centroid_per_particle_separates_types(tmp_path):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng()
    sample = simulate_sample(SampleConfig.small(seed=int(rng.integers(1 << 20))))
    tp = sample.truth.particles
    kind = dict(zip(tp["particle_id"], rng.random(len(tp)) < 0.5))
    mu = {False: 600.0, True: 600.0 + float(rng.uniform(25, 60))}
    locs = sample.smlm["antibody"]
    pid = locs["true_particle_id"].to_numpy()
    centre = np.array([mu[kind[p]] if p in kind else 620.0 for p in pid])
    locs["spectral_centroid"] = centre + rng.normal(0, float(rng.uniform(20, 40)), len(locs))
    scene = sample.to_scene(tmp_path / "s.ome.zarr", transforms="truth")
    res = analyze_particles(scene, "em", ["antibody"], aggregate=("spectral_centroid:mean", "spectral_centroid:wmean",
                                                                 "spectral_centroid:q90", "photons:frac>1000"))
    t = res.table
    for c in ("mean_spectral_centroid_antibody", "wmean_spectral_centroid_antibody",
              "wmean_spectral_centroid_antibody_se", "q90_spectral_centroid_antibody",
              "frac_gt_1000_photons_antibody"):
        assert c in t.columns, c
    empty = t["n_localizations_antibody"] == 0
    assert t.loc[empty, "mean_spectral_centroid_antibody"].isna().all()
    inner = t[~t["edge"]].reset_index(drop=True)
    m = match_particles(inner, tp[~tp["edge"]].reset_index(drop=True))
    m = m[m["found_index"] >= 0]
    y = np.array([kind[p] for p in m["particle_id"]])
    score = inner.loc[m["found_index"].to_numpy(), "mean_spectral_centroid_antibody"].to_numpy()
    ok = np.isfinite(score)
    assert ok.sum() >= 6 and len(set(y[ok])) == 2
    assert roc_auc_score(y[ok], score[ok]) >= 0.95


def test_event_rates_lie_within_their_poisson_intervals(tmp_path):
    rng = np.random.default_rng()
    # enough particles that >= 90 % coverage of 95 % intervals is a fair test (not a coin toss)
    sample = simulate_sample(SampleConfig.small(seed=int(rng.integers(1 << 20)), n_particles=80, n_touching_pairs=0))
    tp = sample.truth.particles[lambda d: ~d["edge"]].reset_index(drop=True)
    frames = int(rng.integers(5_000, 50_000))
    rate = 10 ** rng.uniform(-8.5, -7.0, len(tp))  # events per nm^2 per frame
    expected = rate * np.pi * tp["diameter_nm"].to_numpy() ** 2 * frames
    n = rng.poisson(expected)
    owner = np.repeat(np.arange(len(tp)), n)
    ang = rng.uniform(0, 2 * np.pi, owner.size)
    r = 0.5 * tp["diameter_nm"].to_numpy()[owner] + rng.uniform(0, 5, owner.size)
    world = tp[["x", "y"]].to_numpy()[owner] + r[:, None] * np.column_stack([np.cos(ang), np.sin(ang)])
    own = sample.truth.transforms["smlm"].inverse().apply(world) + rng.normal(0, 3.0, world.shape)
    sample.smlm["antibody"] = pd.DataFrame({
        "x": own[:, 0], "y": own[:, 1], "frame": rng.integers(0, frames, owner.size), "photons": 2000.0,
        "precision": 3.0, "true_particle_id": tp["particle_id"].to_numpy()[owner]}).sort_values("frame").reset_index(drop=True)
    scene = sample.to_scene(tmp_path / "r.ome.zarr", transforms="truth")
    res = analyze_particles(scene, "em", ["antibody"], event_rate=True, count_method="events", events_per_molecule=1.0,
                            exclude_fiducial_tracks=False, max_dark_frames=0)
    t = res.table[~res.table["edge"]].reset_index(drop=True)
    m = match_particles(t, tp)
    m = m[m["found_index"] >= 0]
    got = t.loc[m["found_index"].to_numpy()]
    true_rate = pd.Series(rate, index=tp["particle_id"]).loc[m["particle_id"]].to_numpy()
    inside = (got["event_rate_lo_antibody"].to_numpy() <= true_rate) & (true_rate <= got["event_rate_hi_antibody"].to_numpy())
    assert len(m) >= 50 and inside.mean() >= 0.9, (inside.mean(), len(m))
    lo, hi = poisson_interval(np.array([0, 5]))
    assert lo[0] == 0 and hi[0] == pytest.approx(3.689, abs=1e-3) and lo[1] == pytest.approx(1.6235, abs=1e-3)


def test_minflux_traces_are_the_events_counted_per_particle(tmp_path):
    """MINFLUX-like localizations (no frames; trace ids): each trace is one on-event, so a
    particle's events equal its traces, and molecules are traces / traces per molecule."""
    rng = np.random.default_rng()
    sample = simulate_sample(SampleConfig.small(seed=int(rng.integers(1 << 20))))
    tp = sample.truth.particles[lambda d: ~d["edge"]].reset_index(drop=True)
    n_mol = rng.integers(3, 15, len(tp))
    traces_per_mol = float(rng.uniform(2, 5))
    rows, tid = [], 0
    for i, p in tp.iterrows():
        for _ in range(n_mol[i]):
            a = rng.uniform(0, 2 * np.pi)
            site = p[["x", "y"]].to_numpy(float) + (0.5 * p["diameter_nm"] + 3) * np.array([np.cos(a), np.sin(a)])
            for _ in range(max(1, rng.poisson(traces_per_mol))):
                k = int(rng.integers(3, 20))
                rows.append(pd.DataFrame({"wx": site[0] + rng.normal(0, 2, k), "wy": site[1] + rng.normal(0, 2, k),
                                          "track_id": tid, "true_particle_id": p["particle_id"]}))
                tid += 1
    df = pd.concat(rows, ignore_index=True)
    own = sample.truth.transforms["smlm"].inverse().apply(df[["wx", "wy"]].to_numpy())
    sample.smlm["antibody"] = pd.DataFrame({"x": own[:, 0], "y": own[:, 1], "track_id": df["track_id"],
                                            "precision": 2.0, "true_particle_id": df["true_particle_id"]})
    scene = sample.to_scene(tmp_path / "m.ome.zarr", transforms="truth")
    res = analyze_particles(scene, "em", ["antibody"], count_method="events", events_per_molecule=traces_per_mol,
                            exclude_fiducial_tracks=False)
    assert res.summary["labels"]["antibody"]["events_from"].startswith("track_id")
    t = res.table[~res.table["edge"]].reset_index(drop=True)
    m = match_particles(t, tp)
    m = m[m["found_index"] >= 0]
    true_traces = df.groupby("true_particle_id")["track_id"].nunique()
    got = t.loc[m["found_index"].to_numpy(), "n_events_antibody"].to_numpy()
    want = true_traces.reindex(m["particle_id"]).fillna(0).to_numpy()
    assert len(m) >= 6 and np.mean(got == want) >= 0.9, (got, want)
