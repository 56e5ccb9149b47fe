"""Two-colour exchange from simulated localizations: structures clustered over both colours,
counted per colour, fractions with intervals and the kinetics over a series of samples."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import cluster_structures, exchange_dispersion, label_fractions
from correlate.datasets import CarrierConfig, simulate_exchange


def _match(table, truth, tol=60.0):
    d, j = cKDTree(table[["x", "y"]].to_numpy()).query(truth[["x", "y"]].to_numpy(), distance_upper_bound=tol)
    return np.isfinite(d), j


def test_structures_counted_per_colour():
    seed = int(np.random.default_rng().integers(1 << 20))
    s = simulate_exchange(4.0, 0.2, 0.35, CarrierConfig.random(seed, n_structures=25))
    res = cluster_structures(s.localizations, state=False)
    t = res.table
    ok, j = _match(t, s.truth)
    assert ok.mean() >= 0.95, (seed, res.parameters)
    # absolute counts need the dye's events per molecule (estimated here from the sites); the
    # colour fractions do not: they lie within their (dispersion-widened) intervals
    phi = exchange_dispersion(t, "a", "b")
    f = label_fractions(t, "a", "b", dispersion=phi)
    assert f.attrs["dispersion"] == phi >= 1.0
    tb = s.truth["fraction_b"].to_numpy()[ok]
    inside = (f["fraction_lo_b"].to_numpy()[j[ok]] <= tb) & (tb <= f["fraction_hi_b"].to_numpy()[j[ok]])
    assert inside.mean() >= 0.8, (seed, inside.mean(), phi)  # 95 % intervals, 25 structures
    for lab in ("a", "b"):
        assert res.parameters["counting"][lab]["source"].startswith("estimated")
    user = cluster_structures(s.localizations, state=False, events_per_molecule={"a": 2.0}, eps_nm=res.parameters["eps_nm"])
    assert user.parameters["counting"]["a"] == {"events_per_molecule": 2.0, "source": "user"}
    np.testing.assert_allclose(user.table["n_molecules_a"], user.table["n_events_a"] / 2.0)


def test_dispersion_widens_intervals():
    t = pd.DataFrame({"particle_id": [1, 2], "n_molecules_a": [30.0, 10.0], "n_molecules_b": [10.0, 30.0]})
    a, b = label_fractions(t, "a", "b"), label_fractions(t, "a", "b", dispersion=3.0)
    assert ((b["fraction_hi_b"] - b["fraction_lo_b"]) > (a["fraction_hi_b"] - a["fraction_lo_b"])).all()
    np.testing.assert_allclose(a["fraction_b"], b["fraction_b"])


def _write_thunderstorm(df, path):
    pd.DataFrame({"id": np.arange(1, len(df) + 1), "frame": df["frame"] + 1, "x [nm]": df["x"], "y [nm]": df["y"],
                  "sigma [nm]": 130.0, "intensity [photon]": df["photons"],
                  "uncertainty [nm]": df["precision"]}).to_csv(path, index=False)


@pytest.mark.slow
def test_exchange_series_through_the_command_line(tmp_path, capsys):
    """Randomized acquisitions per sample, randomized kinetics; files -> import -> carriers ->
    exchange (10 samples of 80 structures): fractions inside their intervals for >= 90 % of the
    structures, rate within 15 % and inside its interval."""
    from correlate.cli import main

    rng = np.random.default_rng()
    seed0 = int(rng.integers(1 << 20))
    k_true, m_inf = float(10 ** rng.uniform(-1.5, -0.5)), float(rng.uniform(0.25, 0.4))
    times = np.geomspace(0.08, 5.0, 10) / k_true
    stores, truths = [], []
    for i, tj in enumerate(times):
        s = simulate_exchange(float(tj), k_true, m_inf, CarrierConfig.random(seed0 + i, n_structures=80))
        files = []
        for lab, df in s.localizations.items():
            files.append(str(tmp_path / f"{lab}.csv"))
            _write_thunderstorm(df, files[-1])
        store = str(tmp_path / f"s{i}.ome.zarr")
        assert main(["import", store, *files]) == 0
        assert main(["carriers", store, "--labels", "a,b", "--assume-aligned"]) == 0
        stores.append(store)
        truths.append(s.truth)
    capsys.readouterr()
    out = tmp_path / "fractions.csv"
    assert main(["exchange", *stores, "--labels", "a,b", "--table", "carriers", "--times",
                 ",".join(f"{v:.6g}" for v in times), "--json", "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    fr = pd.read_csv(out)
    inside = total = 0
    from correlate.scene import Scene

    for store, truth in zip(stores, truths):
        t = Scene.open(store).get("carriers")
        ok, j = _match(t, truth)
        f = fr[fr["store"] == store].set_index("particle_id").loc[t["particle_id"].to_numpy()[j[ok]]]
        tb = truth["fraction_b"].to_numpy()[ok]
        inside += int(((f["fraction_lo_b"].to_numpy() <= tb) & (tb <= f["fraction_hi_b"].to_numpy())).sum())
        total += int(ok.sum())
    assert inside / total >= 0.9, (seed0, inside / total)
    assert abs(doc["fit"]["rate"] / k_true - 1) < 0.15, (seed0, doc["fit"], k_true)
    assert doc["fit"]["rate_lo"] <= k_true <= doc["fit"]["rate_hi"], (seed0, doc["fit"], k_true)
