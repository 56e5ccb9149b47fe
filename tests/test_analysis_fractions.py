"""Label fractions per particle with exact intervals; exchange kinetics recovered from a series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis._fractions import fit_exchange, label_fractions


@pytest.mark.parametrize("mode", ["exchange", "subset"])
def test_fraction_intervals_cover_the_simulated_fractions(mode):
    rng = np.random.default_rng()
    n = rng.integers(5, 60, 400)
    f = rng.uniform(0, 1, 400)
    k = rng.binomial(n, f)
    if mode == "exchange":
        t = pd.DataFrame({"particle_id": np.arange(400), "n_molecules_a": n - k + rng.uniform(-0.3, 0.3, 400),
                          "n_molecules_b": k + rng.uniform(-0.3, 0.3, 400)})
    else:
        t = pd.DataFrame({"particle_id": np.arange(400), "n_molecules_a": n, "n_molecules_b": k})
    out = label_fractions(t, "a", "b", mode=mode)
    inside = (out["fraction_lo_b"] <= f) & (f <= out["fraction_hi_b"])
    assert inside.mean() >= 0.93, inside.mean()
    np.testing.assert_allclose(out["fraction_b"], k / n)
    empty = label_fractions(pd.DataFrame({"particle_id": [1], "n_molecules_a": [0.0], "n_molecules_b": [0.0]}), "a", "b")
    assert empty[["fraction_b", "fraction_lo_b", "fraction_hi_b"]].isna().all(axis=None)


def test_exchange_rate_recovered_from_a_series_of_samples():
    rng = np.random.default_rng()
    k_true = float(10 ** rng.uniform(-2, -0.5))  # per minute
    m_inf = float(rng.uniform(0.2, 0.4))
    times = np.sort(rng.uniform(0.1, 4.0, 10)) / k_true
    means, ses = [], []
    for tj in times:
        m = m_inf * (1 - np.exp(-k_true * tj))
        n = rng.integers(20, 60, 100)
        origin_b = rng.random(100) < 0.5
        frac_b = np.where(origin_b, 1 - m, m)
        nb = rng.binomial(n, frac_b)
        t = pd.DataFrame({"particle_id": np.arange(100), "n_molecules_a": n - nb, "n_molecules_b": nb})
        mix = label_fractions(t, "a", "b")["mixing"].to_numpy()
        means.append(mix.mean())
        ses.append(mix.std(ddof=1) / np.sqrt(mix.size))
    fit = fit_exchange(times, means, ses)
    assert abs(fit.rate / k_true - 1) < 0.15, (fit.rate, k_true)
    assert fit.rate_lo < fit.rate < fit.rate_hi and fit.rate_hi / fit.rate_lo < 3
    assert abs(fit.m_inf - m_inf) < 0.05
    assert fit.plot() is not None


def test_cli_exchange_over_stores(tmp_path, capsys):
    import json

    from correlate.cli import main
    from correlate.elements import make_table
    from correlate.scene import Scene

    rng = np.random.default_rng()
    k_true, m_inf = 0.2, 0.3
    stores, times = [], np.array([0.5, 1.5, 3, 6, 10, 15, 25])
    for i, tj in enumerate(times):
        m = m_inf * (1 - np.exp(-k_true * tj))
        n = rng.integers(30, 60, 150)
        nb = rng.binomial(n, np.where(rng.random(150) < 0.5, 1 - m, m))
        path = tmp_path / f"s{i}.ome.zarr"
        sc = Scene.create(path)
        sc.add_table("particles", make_table(pd.DataFrame({"particle_id": np.arange(1, 151), "x": 0.0, "y": 0.0,
                                                           "n_molecules_a": n - nb, "n_molecules_b": nb})))
        stores.append(str(path))
    assert main(["exchange", *stores, "--labels", "a,b", "--times", ",".join(map(str, times)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert abs(doc["fit"]["rate"] / k_true - 1) < 0.15
    assert [s["n_structures"] for s in doc["samples"]] == [150] * len(times)
