"""CBC (Malkusch 2012): vectorised implementation vs a brute-force reference and vs locan."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from correlate.analysis import cbc


def _brute_cbc(a, b, radius, n_steps, weighting):
    """Reference: one point at a time, explicit distances, np.histogram, scipy's spearmanr."""
    radii = np.linspace(0, radius, n_steps + 1)
    out = np.full(len(a), np.nan)
    for i, p in enumerate(a):
        daa = np.hypot(*(a - p).T)
        daa = np.delete(daa, i)
        daa = daa[daa <= radius]
        dab_all = np.hypot(*(b - p).T)
        dab = dab_all[dab_all <= radius]
        if len(daa) == 0 or len(dab) == 0:
            continue
        h1 = np.histogram(daa, bins=radii)[0]
        h2 = np.histogram(dab, bins=radii)[0]
        v1 = np.cumsum(h1) * radius**2 / radii[1:] ** 2 / len(daa)
        v2 = np.cumsum(h2) * radius**2 / radii[1:] ** 2 / len(dab)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = spearmanr(v1, v2)[0]
        if weighting == "nearest":
            w = np.exp(-dab_all.min() / radius)
        elif weighting == "locan":
            w = np.exp(-dab.max() / radius)
        else:
            w = 1.0
        out[i] = rho * w
    return out


def _clustered(rng, n_centres=25, n_a=600, n_b=500, field=3000.0, spread=25.0):
    c = rng.uniform(0, field, (n_centres, 2))
    a = np.concatenate([c[rng.integers(0, n_centres, n_a)] + rng.normal(0, spread, (n_a, 2)),
                        rng.uniform(0, field, (n_a // 4, 2))])
    b = np.concatenate([c[rng.integers(0, n_centres, n_b)] + rng.normal(0, spread, (n_b, 2)),
                        rng.uniform(0, field, (n_b // 4, 2))])
    return a, b


@pytest.mark.parametrize("weighting", ["nearest", "locan", "none"])
def test_cbc_equals_brute_force(weighting):
    rng = np.random.default_rng(3)
    a, b = _clustered(rng)
    # integer positions create exact ties and duplicates, the hard case for ranks and bins
    a[:40] = np.round(a[:40] / 5) * 5
    b[:40] = np.round(b[:40] / 5) * 5
    a[50] = a[51]
    ref = _brute_cbc(a, b, 80.0, 8, weighting)
    got = cbc(a, b, radius=80.0, n_steps=8, weighting=weighting)
    assert np.array_equal(np.isnan(ref), np.isnan(got))
    assert np.isfinite(ref).sum() > 300
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=0, atol=1e-9)


def test_cbc_colocalized_vs_independent():
    rng = np.random.default_rng(0)
    a, b = _clustered(rng, field=4000.0)
    coloc = np.nanmean(cbc(a, b, radius=100.0))
    # B from other cluster centres: anticorrelated / uncorrelated
    _, b2 = _clustered(np.random.default_rng(99), field=4000.0)
    indep = np.nanmean(cbc(a, b2, radius=100.0))
    assert coloc > 0.4
    assert indep < 0.15
    assert coloc - indep > 0.35


def test_cbc_details_and_edge_cases():
    a = np.array([[0.0, 0.0], [1000.0, 0.0], [1010.0, 0.0]])
    b = np.array([[5.0, 0.0]])
    v, det = cbc(a, b, radius=50.0, return_details=True)
    assert np.isnan(v[0])  # no A neighbour within R
    assert np.isnan(v[1])  # no B neighbour within R
    np.testing.assert_allclose(det["nn_distance"], [5.0, 995.0, 1005.0])
    assert cbc(np.zeros((0, 2)), b).shape == (0,)
    with pytest.raises(ValueError):
        cbc(a, b, radius=-1)
    with pytest.raises(ValueError):
        cbc(a, b, weighting="max")


def test_cbc_reproduces_locan():
    locan_cbc = pytest.importorskip("locan.analysis.cbc")
    rng = np.random.default_rng(11)
    a, b = _clustered(rng, n_a=800, n_b=700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = locan_cbc._coordinate_based_colocalization(a, b, radius=100, n_steps=10)
        ref_self = locan_cbc._coordinate_based_colocalization(a, None, radius=100, n_steps=10)
    got = cbc(a, b, radius=100, n_steps=10, weighting="locan")
    got_self = cbc(a, None, radius=100, n_steps=10, weighting="locan")
    for r, g in ((ref, got), (ref_self, got_self)):
        assert np.array_equal(np.isnan(r), np.isnan(g))
        np.testing.assert_allclose(g[np.isfinite(r)], r[np.isfinite(r)], rtol=0, atol=1e-12)
    # and locan's public class gives the same numbers
    import pandas as pd
    from locan import LocData
    from locan.analysis import CoordinateBasedColocalization

    la = LocData.from_dataframe(pd.DataFrame({"position_x": a[:, 0], "position_y": a[:, 1]}))
    lb = LocData.from_dataframe(pd.DataFrame({"position_x": b[:, 0], "position_y": b[:, 1]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CoordinateBasedColocalization(radius=100, n_steps=10).compute(la, other_locdata=lb).results
    vals = res.iloc[:, 0].to_numpy()
    np.testing.assert_allclose(got[np.isfinite(vals)], vals[np.isfinite(vals)], atol=1e-12)
    # the Malkusch weighting differs from locan's (nearest vs largest distance within R)
    mal = cbc(a, b, radius=100, n_steps=10)
    ok = np.isfinite(mal) & (got > 0)
    assert np.all(np.abs(mal[ok]) >= np.abs(got[ok]) - 1e-12)
