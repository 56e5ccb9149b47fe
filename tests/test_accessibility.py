"""Accessible fraction per particle and its size dependence (binomial GLM, over-dispersion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import accessibility, fit_size_dependence


def _counts(rng, n_part, slope, *, phi=1.0):
    """Counts of all / accessible antibodies on particles of 40-160 nm (surface-scaled), with a
    beta-binomial over-dispersion ``phi`` of the accessible count."""
    d = rng.uniform(40, 160, n_part)
    n = np.maximum(rng.poisson(30 * (d / 100) ** 2), 3)
    p = 1 / (1 + np.exp(-(rng.uniform(-1, 1) + slope * (d - 100))))
    if phi > 1:  # beta-binomial with intra-class correlation rho: phi = 1 + (n - 1) rho (mean n)
        rho = (phi - 1) / max(n.mean() - 1, 1)
        a = p * (1 - rho) / rho
        p = rng.beta(a, a * (1 - p) / p)
    return d, n, rng.binomial(n, p)


@pytest.mark.parametrize("phi", [1.0, 2.5])
def test_no_size_dependence_is_not_found_at_alpha(phi):
    rng = np.random.default_rng()
    rejected = [fit_size_dependence(k, n, d)["size_dependent"]
                for d, n, k in (_counts(rng, 60, 0.0, phi=phi) for _ in range(200))]
    # alpha = 0.05 over 200 data sets: at most 5 % + 3 binomial sd
    assert np.sum(rejected) <= 200 * 0.05 + 3 * np.sqrt(200 * 0.05 * 0.95), np.sum(rejected)


@pytest.mark.parametrize("phi", [1.0, 2.5])
def test_size_dependence_found_and_slope_covered(phi):
    rng = np.random.default_rng()
    slope = 0.025
    fits = [fit_size_dependence(k, n, d) for d, n, k in (_counts(rng, 60, slope, phi=phi) for _ in range(100))]
    assert np.mean([f["size_dependent"] for f in fits]) >= 0.9
    covered = np.mean([f["slope_lo"] <= slope <= f["slope_hi"] for f in fits])
    assert covered >= 0.88, covered
    if phi > 1:
        assert np.median([f["dispersion"] for f in fits]) > 1.5


def test_accessibility_table_plot_and_cli(tmp_path, capsys):
    import json

    from correlate.cli import main
    from correlate.elements import make_table
    from correlate.scene import Scene

    rng = np.random.default_rng()
    d, n, k = _counts(rng, 80, 0.02)
    table = pd.DataFrame({"particle_id": np.arange(1, 81), "x": 0.0, "y": 0.0, "equivalent_diameter_nm": d,
                          "n_molecules_all": n, "n_molecules_acc": k})
    fit = accessibility(table, "all", "acc")
    assert {"fraction_acc", "fraction_lo_acc", "fraction_hi_acc"} <= set(fit.table.columns)
    assert fit.plot() is not None
    f, lo, hi = fit.predict([60.0, 140.0])
    assert f[1] > f[0] and (lo <= f).all() and (f <= hi).all()
    path = tmp_path / "s.ome.zarr"
    Scene.create(path).add_table("particles", make_table(table))
    out = tmp_path / "acc.png"
    assert main(["accessibility", str(path), "--labels", "all,acc", "--json", "--plot", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    se = (doc["slope_hi"] - doc["slope_lo"]) / 3.92
    assert doc["size_dependent"] and abs(doc["slope_per_nm"] - 0.02) < 4 * se and out.exists()
    assert main(["accessibility", str(path), "--labels", "all,acc", "--dispersion", "x"]) == 1


@pytest.mark.slow
def test_accessibility_through_clustering():
    """Simulated localizations (randomized acquisitions): where the accessible fraction depends on
    size the test finds it and the per-particle intervals cover the simulated fraction; where it
    does not, the test rejects at most at its level over the seeds."""
    from correlate.analysis import cluster_structures
    from correlate.datasets import CarrierConfig, logistic_accessibility, simulate_accessibility

    seed0 = int(np.random.default_rng().integers(1 << 20))
    found, false, inside, total = 0, 0, 0, 0
    n_seeds = 8
    for seed in range(seed0, seed0 + n_seeds):
        rng = np.random.default_rng(seed)
        for dep in (True, False):
            p = logistic_accessibility(float(rng.uniform(-1, 1)), 0.025) if dep else float(rng.uniform(0.2, 0.8))
            s = simulate_accessibility(p, CarrierConfig.random(seed, n_structures=40))
            t = cluster_structures(s.localizations, state=False).table
            fit = accessibility(t, "all", "accessible")
            if dep:
                found += fit.size_dependent
                dist, j = cKDTree(t[["x", "y"]].to_numpy()).query(s.truth[["x", "y"]].to_numpy(),
                                                                  distance_upper_bound=60)
                ok = np.isfinite(dist)
                tr = s.truth["p_accessible"].to_numpy()[ok]
                ft = fit.table.iloc[j[ok]]
                inside += int(((ft["fraction_lo_accessible"] <= tr) & (tr <= ft["fraction_hi_accessible"])).sum())
                total += int(ok.sum())
            else:
                false += fit.size_dependent
    assert found >= n_seeds - 1, (seed0, found)
    assert false <= 2, (seed0, false)  # P(Bin(8, 0.05) > 2) < 0.6 %
    assert inside / total >= 0.9, (seed0, inside / total)
