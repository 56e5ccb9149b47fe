"""The 3-D simulator: an EM volume written as MRC with its voxel size, 3-D localizations with truth."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.datasets import VOLUME_RANGES, simulate_volume
from correlate.datasets._volume import _signed_distance, _rot_of


@pytest.mark.parametrize("seed", [1, 2])
def test_volume_sample_truth_and_ranges(seed, tmp_path):
    from correlate import io

    s = simulate_volume(seed)
    vx, vy, vz = s.voxel_nm
    assert VOLUME_RANGES["voxel_xy_nm"][0] <= vx <= VOLUME_RANGES["voxel_xy_nm"][1]
    assert VOLUME_RANGES["voxel_z_nm"][0] <= vz <= VOLUME_RANGES["voxel_z_nm"][1]
    assert len(s.particles) >= 2 and len(s.beads) >= 3
    img = io.read(s.write_mrc(tmp_path / "v.mrc"))
    assert img.dims == ("z", "y", "x") and img.shape == s.volume.shape
    for ax, size in zip("xyz", s.voxel_nm):  # MRC stores float32 Angstrom
        assert float(img.coords[ax][1] - img.coords[ax][0]) == pytest.approx(size, rel=1e-5)
    np.testing.assert_allclose(np.asarray(img), s.volume)

    locs = s.localizations
    # the noisy SMLM positions mapped to EM sit on the truth within their precision (chi2 per axis ~ 1)
    em = s.smlm_to_em.apply(locs[["x", "y", "z"]].to_numpy())
    true_smlm = s.smlm_to_em.inverse().apply(locs[["x_em", "y_em", "z_em"]].to_numpy())
    z = (locs[["x", "y", "z"]].to_numpy() - true_smlm) / locs[["precision_x", "precision_y", "precision_z"]].to_numpy()
    assert np.all(np.abs(z.std(0) - 1) < 0.1)
    assert np.isfinite(em).all()
    ratio = np.median(locs["precision_z"] / locs["precision_x"])
    lo, hi = VOLUME_RANGES["z_over_lateral"][s.params["kind"]]
    assert lo <= ratio <= hi
    # label emitters sit one linker outside their particle's surface
    lab = locs[locs.particle_id > 0]
    for p in s.particles.itertuples():
        pts = lab.loc[lab.particle_id == p.particle_id, ["x_em", "y_em", "z_em"]].to_numpy()
        sd = _signed_distance(pts, np.array([p.x, p.y, p.z]), np.array([p.a, p.b, p.c]), _rot_of(p._asdict()))
        assert np.median(sd) == pytest.approx(s.params["linker_nm"], abs=0.1 * max(p.a, p.b, p.c) + 0.5)
    # fiducial beads: persistent in the SMLM table, at the same places as the gold
    beads = locs[locs.particle_id == -1]
    assert beads["frame"].nunique() > 100
    np.testing.assert_allclose(s.smlm_to_em.apply(s.beads_smlm), s.beads[["x", "y", "z"]].to_numpy(), atol=1e-6)


def test_volume_is_reproducible_and_dense_material_has_the_polarity():
    a, b = simulate_volume(7, polarity="dark"), simulate_volume(7, polarity="dark")
    np.testing.assert_array_equal(a.volume, b.volume)
    bg = np.median(a.volume)
    g = a.beads.iloc[0]
    k, j, i = (int(round(c / s)) for c, s in zip((g.z, g.y, g.x), a.voxel_nm[::-1]))
    assert a.volume[k, j, i] < bg - 1.0  # gold is dense: dark
    c = simulate_volume(7, polarity="bright")
    assert c.volume[k, j, i] > np.median(c.volume) + 1.0
