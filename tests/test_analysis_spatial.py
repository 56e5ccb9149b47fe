"""Nearest-neighbour distances, Ripley's K/L/H and the pair correlation function."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.analysis import nearest_neighbor_distances, pair_correlation, ripley


def test_nearest_neighbour_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1000, (300, 2))
    b = rng.uniform(0, 1000, (200, 2))
    d_ab = np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1))
    np.testing.assert_allclose(nearest_neighbor_distances(a, b), d_ab.min(axis=1))
    d_aa = np.hypot(*(a[:, None, :] - a[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d_aa, np.inf)
    np.testing.assert_allclose(nearest_neighbor_distances(a), d_aa.min(axis=1))
    np.testing.assert_allclose(nearest_neighbor_distances(a, k=2), np.sort(d_aa, axis=1)[:, 1])
    assert np.all(np.isinf(nearest_neighbor_distances(a[:1])))


def test_ripley_csr_and_clustered():
    rng = np.random.default_rng(1)
    field = 10000.0
    n = 4000
    p = rng.uniform(0, field, (n, 2))
    r = np.array([100.0, 250.0, 500.0, 1000.0])
    res = ripley(p, r, window=(0, 0, field, field))
    # Poisson: L(r) = r; sd of L ~ r * sqrt(2 / (lambda^2 A pi r^2)) ... use 5 % + 3 nm
    np.testing.assert_allclose(res["L"], r, rtol=0.05, atol=3.0)
    # without edge correction K is biased low at large r (points near the border miss partners)
    raw = ripley(p, r, window=(0, 0, field, field), edge_correction="none")
    assert raw["L"].iloc[-1] < res["L"].iloc[-1] - 10
    # clustered pattern: H(r) > 0 at the cluster scale
    c = rng.uniform(0, field, (100, 2))
    q = c[rng.integers(0, 100, n)] + rng.normal(0, 50, (n, 2))
    h = ripley(q, r, window=(0, 0, field, field))["H"]
    assert h.iloc[0] > 100


def test_pair_correlation_csr_is_one():
    rng = np.random.default_rng(2)
    field = 10000.0
    p = rng.uniform(0, field, (5000, 2))
    g = pair_correlation(p, np.linspace(0, 1000, 11), window=(0, 0, field, field))["g"]
    np.testing.assert_allclose(g, 1.0, atol=0.1)
    with pytest.raises(ValueError):
        pair_correlation(p, [10.0])
    with pytest.raises(ValueError):
        ripley(p, [5.0, 1.0])
