"""3-D segmentation and morphology of EM volumes against the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import measure_volume, segment_volume
from correlate.datasets import simulate_volume
from correlate.errors import CorrelateError


def _check(sample, seg) -> dict:
    df = seg.measure()
    truth = sample.particles
    assert len(df) == len(truth), (len(df), len(truth))
    d, i = cKDTree(truth[["x", "y", "z"]].to_numpy()).query(df[["x", "y", "z"]].to_numpy())
    assert len(set(i)) == len(truth)
    t = truth.iloc[i].reset_index(drop=True)
    vz = max(sample.voxel_nm)
    assert np.all(d < max(2.0, vz))  # centroids (nm)
    err = df["equivalent_diameter_nm"].to_numpy() - t["equivalent_diameter_nm"].to_numpy()
    tol = np.maximum(0.05 * t["equivalent_diameter_nm"].to_numpy(), 2 * vz)
    assert np.all(np.abs(err) <= tol), err
    sphere = np.isclose(t["a"], t["c"])
    assert np.all(df["sphericity"].to_numpy()[sphere] > 0.9)
    rel = df["volume_nm3"].to_numpy() / t["volume_nm3"].to_numpy() - 1
    solid = (t["kind"] == "solid").to_numpy()
    assert np.all(np.abs(rel[solid]) < 0.10), rel[solid]
    # a shell's volume follows its diameter: three times a voxel's share of it
    shell_tol = np.maximum(0.10, 3 * vz / t["equivalent_diameter_nm"].to_numpy())
    assert np.all(np.abs(rel[~solid]) < shell_tol[~solid]), rel[~solid]
    return {"diameter_err_nm": err, "volume_rel": rel}


def test_segment_volume_small_sample_matches_truth():
    s = simulate_volume(9, voxel_nm=(3.0, 3.0, 5.0), n_particles=3, ranges={"particle_diameter_nm": (50.0, 90.0)})
    assert set(s.particles["kind"]) == {"solid", "liposome"}
    seg = segment_volume(s.volume, s.voxel_nm, exclude_at=s.beads)
    est = seg.info["estimated"]
    assert est["polarity"] == s.polarity and seg.info["source"]["polarity"] == "estimated"
    assert est["n_fiducials"] == len(s.beads)
    _check(s, seg)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_segment_volume_randomized_volumes(seed):
    s = simulate_volume(100 + seed)
    _check(s, segment_volume(s.volume, s.voxel_nm, exclude_at=s.beads))


def test_measure_volume_analytic_ellipsoid_and_overrides():
    v = (1.5, 1.5, 3.0)
    zz, yy, xx = np.indices((40, 80, 80)).astype(float)
    x, y, z = xx * v[0], yy * v[1], zz * v[2]
    a, b, c = 40.0, 30.0, 25.0
    lab = (((x - 60) / a) ** 2 + ((y - 60) / b) ** 2 + ((z - 60) / c) ** 2 <= 1).astype(np.int32)
    df = measure_volume(lab, v, origin_nm=(10.0, 20.0, 30.0))
    r = df.iloc[0]
    p = 1.6075
    area = 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    assert r.volume_nm3 == pytest.approx(4 / 3 * np.pi * a * b * c, rel=0.03)
    assert r.surface_area_nm2 == pytest.approx(area, rel=0.04)
    assert (r.x, r.y, r.z) == pytest.approx((70.0, 80.0, 90.0), abs=0.5)
    assert (r.semi_axis_1_nm, r.semi_axis_2_nm, r.semi_axis_3_nm) == pytest.approx((a, b, c), rel=0.04)
    assert not r.edge
    # overrides are recorded as the user's
    s = simulate_volume(9, voxel_nm=(3.0, 3.0, 5.0), n_particles=3, ranges={"particle_diameter_nm": (50.0, 90.0)})
    seg = segment_volume(s.volume, s.voxel_nm, polarity=s.polarity, smooth_nm=2.0 * np.array(s.voxel_nm))
    assert seg.info["source"]["polarity"] == "user" and seg.info["source"]["smooth_nm"] == "user"


def test_segment_volume_says_what_it_saw_when_it_cannot_decide():
    rng = np.random.default_rng(0)
    with pytest.raises(CorrelateError, match="polarity="):
        segment_volume(rng.standard_normal((20, 40, 40)), (2.0, 2.0, 4.0))
    with pytest.raises(CorrelateError, match="voxel_nm"):
        segment_volume(np.zeros((4, 4, 4)))
