"""Carrier state (intact / disassembled) from the compactness of a particle's localizations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import carrier_state, cluster_structures, intact_fraction
from correlate.errors import CorrelateError


def _particles(rng, n, intact, *, m_range=(15, 60), prec=(6.0, 15.0), events=(1, 6)):
    """Localizations of ``n`` particles: sites on a shell (intact) or in a 2-D Gaussian cloud of
    0.7-1.5 shell radii, each site seen 1-``events`` times with its own precision."""
    r = rng.uniform(30, 90, n)
    m = rng.integers(*m_range, n)
    sp = np.repeat(np.arange(n), m)
    v = rng.standard_normal((sp.size, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    spread = rng.uniform(0.7, 1.5, n)
    pos = np.where(intact[sp, None], r[sp, None] * v[:, :2], (spread * r)[sp, None] * rng.standard_normal((sp.size, 2)))
    k = rng.integers(events[0], events[1] + 1, sp.size)
    site = np.repeat(np.arange(sp.size), k)
    p = rng.uniform(*prec, site.size)
    xy = pos[site] + p[:, None] * rng.standard_normal((site.size, 2))
    return xy, p**2, sp[site], site, r


def test_null_is_calibrated_and_clouds_are_found():
    rng = np.random.default_rng()
    n = 90
    intact = rng.random(n) < rng.uniform(0.3, 0.7)
    xy, var, part, site, r = _particles(rng, n, intact)
    st = carrier_state(xy, var, part, np.arange(n), r, site=site, n_null=80, seed=int(rng.integers(1 << 31)))
    t = st.table
    p_intact = t["state_p"].to_numpy()[intact]
    # under the shell model the p-values are uniform: the level holds (binomial slack, 4 sd)
    n_i = intact.sum()
    assert (p_intact < 0.05).sum() <= 0.05 * n_i + 4 * np.sqrt(0.05 * 0.95 * n_i) + 1
    decided = (t["state"] != "undetermined").to_numpy()
    acc = ((t["state"].to_numpy() == "intact") == intact)[decided].mean()
    # an independent size (EM) with clouds wider than the shell: the shape statistic alone
    assert decided.mean() >= 0.5 and acc >= 0.85, (decided.mean(), acc)
    s = st.summary
    truth = intact[decided].mean()
    assert s["fraction_intact_lo"] <= truth <= s["fraction_intact_hi"], (s, truth)
    assert st.plot() is not None


def test_spread_against_an_independent_size():
    """Size measured elsewhere (EM): the radial spread against the shell of that size finds clouds
    wider than the shell and keeps the level on intact ones."""
    rng = np.random.default_rng()
    n = 60
    intact = rng.random(n) < 0.5
    xy, var, part, site, r = _particles(rng, n, intact)
    t = carrier_state(xy, var, part, np.arange(n), r, site=site, statistic="spread", n_null=80,
                      seed=int(rng.integers(1 << 31))).table
    called = t["state"].to_numpy()
    decided = called != "undetermined"
    assert decided.mean() >= 0.7
    assert ((called == "intact") == intact)[decided].mean() >= 0.9
    n_i = int(intact[decided].sum())
    assert (called[decided & intact] == "disassembled").sum() <= 0.05 * n_i + 4 * np.sqrt(0.05 * n_i) + 1


def test_threshold_override_and_undetermined():
    rng = np.random.default_rng(3)
    n = 20
    xy, var, part, site, r = _particles(rng, n, np.ones(n, bool), m_range=(2, 30))
    st = carrier_state(xy, var, part, np.arange(n), r, site=site, threshold=1e9, n_null=50)
    t = st.table
    few = t["n_sites"].to_numpy() < 5
    assert (t["state"].to_numpy()[few] == "undetermined").all() and np.isnan(t["state_p"].to_numpy()[few]).all()
    assert not (t["state"] == "disassembled").any() and st.summary["threshold"] == 1e9
    with pytest.raises(CorrelateError):
        carrier_state(xy, var, part, np.arange(n), r, statistic="kurt")


def test_intact_fraction_from_p_values():
    rng = np.random.default_rng()
    f = rng.uniform(0.2, 0.9)
    n = 400
    p = np.where(rng.random(n) < f, rng.random(n), rng.random(n) * 1e-3)
    est, lo, hi = intact_fraction(p)
    q = 0.5 * f  # P(p > lambda = 0.5)
    sd = np.sqrt(q * (1 - q) / n) / 0.5
    assert abs(est - f) < 4 * sd + 1.0 / n and lo <= est <= hi
    assert abs((hi - lo) - 2 * 1.96 * sd) < 0.5 * 2 * 1.96 * sd  # the interval's width follows the noise


@pytest.mark.slow
def test_carrier_states_through_clustering():
    """Randomized acquisitions (precision 6-15 nm, 2-8 blinks, 15-50 molecules per 100 nm, background
    0.3-3 /um^2), intact fraction 0.2-0.8: pooled accuracy over the decided carriers >= 90 %, and each
    sample's fraction of intact carriers inside its interval (allowing one miss in six)."""
    from correlate.datasets import CarrierConfig, simulate_carrier_states

    seed0 = int(np.random.default_rng().integers(1 << 20))
    right = decided_n = covered = 0
    for seed in range(seed0, seed0 + 6):
        rng = np.random.default_rng(seed)
        s = simulate_carrier_states(float(rng.uniform(0.2, 0.8)), CarrierConfig.random(seed, n_structures=50))
        res = cluster_structures(s.localizations)
        t = res.table
        _, j = cKDTree(s.truth[["x", "y"]].to_numpy()).query(t[["x", "y"]].to_numpy())
        truth = s.truth["intact"].to_numpy()[j]
        st = t["state"].to_numpy()
        decided = st != "undetermined"
        right += int(((st == "intact") == truth)[decided].sum())
        decided_n += int(decided.sum())
        summ = res.parameters["state"]
        covered += int(summ["fraction_intact_lo"] <= truth[decided].mean() <= summ["fraction_intact_hi"])
    assert decided_n >= 60 and right / decided_n >= 0.9, (seed0, right, decided_n)
    assert covered >= 5, (seed0, covered)


def test_cli_carriers_stores_table_and_state(tmp_path, capsys):
    import json

    from correlate.cli import main
    from correlate.datasets import CarrierConfig, simulate_carrier_states
    from correlate.elements import make_localizations
    from correlate.scene import Scene

    s = simulate_carrier_states(0.5, CarrierConfig(seed=int(np.random.default_rng().integers(1 << 20)),
                                                   n_structures=12, molecules_at_100nm=40.0))
    path = tmp_path / "s.ome.zarr"
    sc = Scene.create(path)
    sc.add("carrier", make_localizations(s.localizations["carrier"], name="carrier"))
    png = tmp_path / "state.png"
    assert main(["carriers", str(path), "--labels", "carrier", "--json", "--plot", str(png), "--n-null", "40"]) == 0
    doc = json.loads(capsys.readouterr().out)
    st = doc["state"]
    assert st["n_null"] == 40 and st["alpha"] == 0.05 and png.exists()
    assert st["n_called_intact"] + st["n_called_disassembled"] + st["n_undetermined"] == doc["n_structures"]
    t = Scene.open(path).get("carriers")
    assert {"n_molecules_carrier", "compactness", "state_p", "state", "state_power"} <= set(t.columns)
    assert main(["carriers", str(path), "--labels", "carrier,nope"]) == 1
