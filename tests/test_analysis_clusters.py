"""Particles from SMLM alone: recall, precision and size against ground truth, randomized."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import ClusterOptions, cluster_localizations
from correlate.errors import CorrelateError


def shell_sample(rng, *, n_particles=60, field_nm=8_000.0, d_range=(40.0, 160.0), precision_nm=10.0,
                 linker_nm=10.0, mol_at_80=30.0, blinks_mean=4.0, on_frames=3.0, bg_per_um2=2.0, n_frames=5000,
                 model="shell"):
    """Labelled spheres (labels at radius d/2 + linker) imaged by SMLM with blinking and background."""
    centres = []
    while len(centres) < n_particles:  # dart throwing, particles >= 400 nm apart
        c = rng.uniform(300, field_nm - 300, 2)
        if not centres or np.min(np.linalg.norm(np.array(centres) - c, axis=1)) > 400:
            centres.append(c)
    centres = np.array(centres)
    diam = rng.uniform(*d_range, n_particles)
    rows = []
    for i, (c, d) in enumerate(zip(centres, diam)):
        m = max(3, rng.poisson(mol_at_80 * (d / 80.0) ** 2))
        r = d / 2 + linker_nm
        v = rng.normal(size=(m, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        if model == "sphere":
            v *= rng.random((m, 1)) ** (1 / 3)
        mol = c + r * v[:, :2]
        ev = rng.geometric(1 / blinks_mean, m)
        for j in range(m):
            starts = rng.integers(0, n_frames, ev[j])
            for s in starts:
                length = rng.geometric(1 / on_frames)
                k = length
                rows.append(np.column_stack([mol[j] + rng.normal(0, precision_nm, (k, 2)),
                                             s + np.arange(k), np.full(k, i)]))
    locs = np.vstack(rows)
    n_bg = rng.poisson(bg_per_um2 * field_nm**2 / 1e6)
    bg = np.column_stack([rng.uniform(0, field_nm, (n_bg, 2)), rng.integers(0, n_frames, n_bg), np.full(n_bg, -1)])
    allr = np.vstack([locs, bg])
    df = pd.DataFrame({"x": allr[:, 0], "y": allr[:, 1], "frame": allr[:, 2].astype(np.int64),
                       "precision": np.full(len(allr), precision_nm), "true_particle": allr[:, 3].astype(int)})
    return df, centres, diam


def _match(table, centres, tol):
    d, j = cKDTree(table[["x", "y"]].to_numpy()).query(centres, distance_upper_bound=tol)
    return np.isfinite(d), j


@pytest.mark.parametrize("seed", range(4))
def test_clusters_recall_precision_and_size(seed):
    rng = np.random.default_rng(seed)
    precision = float(rng.uniform(6, 14))
    linker = float(rng.uniform(5, 15))
    df, centres, diam = shell_sample(rng, precision_nm=precision, linker_nm=linker,
                                     blinks_mean=float(rng.uniform(2, 8)), bg_per_um2=float(rng.uniform(0.5, 5)))
    res = cluster_localizations(df, label_offset_nm=linker)
    assert res.parameters["source"]["eps_nm"] == "estimated"
    t = res.table
    found, j = _match(t, centres, 30.0)
    recall = found.mean()
    precision_ = len(np.unique(j[found])) / max(len(t), 1)
    assert recall >= 0.95, res.summary()
    assert precision_ >= 0.95, res.summary()
    err = t["equivalent_diameter_nm"].to_numpy()[j[found]] - diam[found]
    assert np.median(np.abs(err)) <= 5.0, (np.median(err), res.summary())


def test_filled_sphere_model():
    rng = np.random.default_rng(7)
    df, centres, diam = shell_sample(rng, model="sphere", linker_nm=0.0, mol_at_80=60)
    t = cluster_localizations(df, model="sphere").table
    found, j = _match(t, centres, 30.0)
    err = t["equivalent_diameter_nm"].to_numpy()[j[found]] - diam[found]
    assert found.mean() >= 0.95 and np.median(np.abs(err)) <= 6.0


def test_no_clusters_stops_and_names_the_option():
    rng = np.random.default_rng(0)
    n = 20_000
    df = pd.DataFrame({"x": rng.uniform(0, 1e4, n), "y": rng.uniform(0, 1e4, n), "frame": rng.integers(0, 1000, n),
                       "precision": np.full(n, 10.0)})
    with pytest.raises(CorrelateError, match="eps"):
        cluster_localizations(df)


def test_user_parameters_are_used_and_reported():
    rng = np.random.default_rng(3)
    df, centres, _ = shell_sample(rng, n_particles=30, field_nm=5000)
    res = cluster_localizations(df, ClusterOptions(eps_nm=25.0, min_samples=8))
    assert res.parameters["eps_nm"] == 25.0 and res.parameters["source"] == {
        "eps_nm": "user", "min_samples": "user", "precision_nm": "column 'precision'"}
    assert "eps 25 nm (user)" in res.summary()
