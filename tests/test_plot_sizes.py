"""plot_size_comparison: SMLM cluster size against EM size per matched particle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.errors import ElementError
from correlate.plot import plot_size_comparison
from correlate.transforms import Affine


def _tables(rng, n=30):
    em = pd.DataFrame({"particle_id": np.arange(1, n + 1), "x": rng.uniform(0, 5000, n), "y": rng.uniform(0, 5000, n),
                       "equivalent_diameter_nm": rng.uniform(40, 160, n)})
    return em


def test_matches_through_a_transform_and_draws_identity():
    rng = np.random.default_rng(4)
    em = _tables(rng)
    ang, s = np.radians(37.0), 1.02
    to_em = Affine(np.array([[s * np.cos(ang), -s * np.sin(ang), 120.0], [s * np.sin(ang), s * np.cos(ang), -80.0],
                             [0, 0, 1]]))
    keep = rng.permutation(len(em))[:24]  # some particles have no cluster
    cam = to_em.inverse().apply(em[["x", "y"]].to_numpy()[keep]) + rng.normal(0, 5, (24, 2))
    d_smlm = em["equivalent_diameter_nm"].to_numpy()[keep] / s + rng.normal(0, 3, 24)  # in camera nm
    smlm = pd.DataFrame({"particle_id": np.arange(24), "x": cam[:, 0], "y": cam[:, 1], "equivalent_diameter_nm": d_smlm})
    fig = plot_size_comparison(smlm, em, transform=to_em)
    m = fig.correlate_matches
    assert len(m) == 24 and (m["particle_id_em"].to_numpy() == em["particle_id"].to_numpy()[keep][m.index]).all()
    # sizes are taken to EM nm by the transform's scale: the difference is the added noise only
    assert abs(np.median(m["size_smlm_nm"] - m["size_em_nm"])) < 3.0
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 24
    line = ax.lines[0].get_xydata()
    np.testing.assert_allclose(line[:, 0], line[:, 1])


def test_no_size_column_or_nothing_to_match_raises():
    em = _tables(np.random.default_rng(1))
    with pytest.raises(ElementError, match="size column"):
        plot_size_comparison(em.drop(columns="equivalent_diameter_nm"), em)
    with pytest.raises(ElementError, match="nothing to match"):
        plot_size_comparison(em.iloc[:0], em)
