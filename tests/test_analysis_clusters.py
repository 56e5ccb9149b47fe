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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_clusters_small_randomized_sample():
    """One small randomized acquisition (default run): every particle found, sizes within the
    noise of a dozen particles."""
    seed = int(np.random.default_rng().integers(0, 2**31))
    rng = np.random.default_rng(seed)
    linker = float(rng.uniform(5, 15))
    df, centres, diam = shell_sample(rng, n_particles=16, field_nm=3500.0, precision_nm=float(rng.uniform(8, 12)),
                                     linker_nm=linker, n_frames=2000, bg_per_um2=float(rng.uniform(0.5, 3)))
    res = cluster_localizations(df, label_offset_nm=linker)
    found, j = _match(res.table, centres, 30.0)
    assert found.mean() >= 14 / 16, (seed, res.summary())
    err = res.table["equivalent_diameter_nm"].to_numpy()[j[found]] - diam[found]
    # per-particle scatter is ~5-10 nm at 10-40 molecules; the median of 16 is within ~3 nm of the bias
    assert abs(np.median(err)) <= 8.0, (seed, np.median(err), res.summary())


@pytest.mark.parametrize("eps, min_samples", [(20.0, 4), (45.0, 12)])
def test_grid_dbscan_equals_scikit_learn(eps, min_samples):
    from sklearn.cluster import DBSCAN

    from correlate.analysis._clusters_dbscan import dbscan

    rng = np.random.default_rng(int(eps))
    c = rng.uniform(0, 1e4, (80, 2))
    pts = np.vstack([c[rng.integers(0, 80, 8000)] + rng.normal(0, rng.uniform(10, 30), (8000, 2)),
                     rng.uniform(0, 1e4, (1500, 2))])
    lab, core = dbscan(pts, eps, min_samples)
    sk = DBSCAN(eps=eps, min_samples=min_samples).fit(pts)
    sk_core = np.zeros(len(pts), bool)
    sk_core[sk.core_sample_indices_] = True
    assert (core == sk_core).all()
    assert (lab[core] == sk.labels_[core]).all()  # same clusters, same numbering
    assert ((lab >= 0) == (sk.labels_ >= 0)).all()  # the same border points


@pytest.mark.slow
def test_clusters_accuracy_on_the_simulator_sweep():
    """Issue #13: recall and precision >= 95 %, median size error <= 5 nm for 40-160 nm particles at
    about 10 nm precision, over randomized acquisitions of the project's simulator."""
    from correlate.analysis import persistent_clusters
    from correlate.datasets import SampleConfig, simulate_sample

    found_all, n_clu, n_match, errs = [], 0, 0, []
    for seed in range(6):
        rng = np.random.default_rng([seed, 4242])
        linker = float(rng.uniform(5, 15))
        cfg = SampleConfig.small(
            seed=seed, field_nm=6000.0, n_particles=40, make_em=False, make_sim=False, make_afm=False,
            diameter_median_nm=80.0, diameter_sigma=0.45, diameter_min_nm=40.0, diameter_max_nm=160.0,
            n_touching_pairs=0, n_edge_particles=0, min_gap_nm=150.0, antibody_linker_nm=linker,
            antibody_per_particle=float(rng.uniform(15, 40)), events_mean=float(rng.uniform(2, 8)),
            nonspecific_density_per_um2=float(rng.uniform(0.5, 5)), n_frames=3000, dark_frames_mean=300.0,
            distortion_nm=0.0, photons_median=float(rng.uniform(600, 1000)))
        s = simulate_sample(cfg)
        locs = s.smlm["antibody"]
        res = cluster_localizations(locs[~persistent_clusters(locs)].reset_index(drop=True), label_offset_nm=linker)
        p, mol = s.truth.particles, s.truth.molecules
        det = mol[(mol["label"] == "antibody") & (mol["n_events"] > 0)]
        n_det = det.groupby("particle_id").size().reindex(p["particle_id"]).fillna(0).to_numpy()
        keep = n_det >= 3  # fewer detected molecules than that is not a particle to any clustering
        t = s.truth.transforms["antibody"]
        scale = float(np.sqrt(abs(np.linalg.det(s.truth.params["smlm_similarity"].matrix[:2, :2]))))
        cam = t.inverse().apply(p[["x", "y"]].to_numpy(float))
        found, j = _match(res.table, cam, 40.0)
        found_all.append(found[keep])
        n_clu += len(res.table)
        n_match += len(np.unique(j[found]))
        errs.append(res.table["equivalent_diameter_nm"].to_numpy()[j[found & keep]] * scale
                    - p["diameter_nm"].to_numpy()[found & keep])
    recall = np.concatenate(found_all).mean()
    err = np.concatenate(errs)
    assert recall >= 0.95, recall
    assert n_match / n_clu >= 0.95, (n_match, n_clu)
    assert np.median(np.abs(err)) <= 5.0, (np.median(err), np.median(np.abs(err)))
