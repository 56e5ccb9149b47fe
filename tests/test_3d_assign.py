"""3-D assignment of localizations (astigmatic and MINFLUX-like z precision) to particles segmented
in a simulated EM volume, and z kept as a property of 2-D particles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from correlate.analysis import assign_localizations, particles_3d, segment_volume, z_per_particle
from correlate.datasets import simulate_volume


def _truth_of_labels(sample, table) -> np.ndarray:
    """Segmented label -> simulated particle id (0 for none)."""
    _, i = cKDTree(sample.particles[["x", "y", "z"]].to_numpy()).query(table[["x", "y", "z"]].to_numpy())
    out = np.zeros(len(table) + 1, np.int64)
    out[table["particle_id"].to_numpy()] = sample.particles["particle_id"].to_numpy()[i]
    return out


def _score(sample, **seg_kw) -> dict:
    seg = segment_volume(sample.volume, sample.voxel_nm, exclude_at=sample.beads, **seg_kw)
    locs = sample.localizations
    table, a = particles_3d(seg, locs, transform=sample.smlm_to_em, label="ab")
    got = _truth_of_labels(sample, table)[a["particle"].to_numpy()]
    truth = locs["particle_id"].to_numpy()
    lab = truth > 0
    return {"correct": float(np.mean(got[lab] == truth[lab])),
            "wrong": float(np.mean((got[lab] != truth[lab]) & (got[lab] > 0))),
            "beads_assigned": float(np.mean(got[truth == -1] > 0)),
            "table": table, "assignment": a, "got": got, "truth": truth}


@pytest.mark.parametrize("kind", ["astigmatic", "minflux"])
def test_assign_3d_small_volume(kind):
    s = simulate_volume(21, kind=kind, voxel_nm=(3.0, 3.0, 5.0), n_particles=4,
                        ranges={"particle_diameter_nm": (50.0, 90.0)})
    r = _score(s)
    assert r["correct"] >= 0.95 and r["wrong"] < 0.01
    assert r["beads_assigned"] == 0.0  # the persistent-emitter detector found the bead tracks
    t = r["table"]
    assert {"z", "n_localizations_ab", "z_mean_nm_ab", "surface_distance_median_nm_ab"} <= set(t.columns)
    truth_n = np.bincount(r["truth"][r["truth"] > 0], minlength=len(s.particles) + 1)
    ids = _truth_of_labels(s, t)[t["particle_id"].to_numpy()]
    np.testing.assert_allclose(t["n_localizations_ab"], truth_n[ids], rtol=0.06, atol=2)
    est = r["assignment"].attrs["estimated"]
    assert r["assignment"].attrs["source"]["linker_nm"] == "estimated"
    sig = s.params["sigma_lateral_nm"]
    assert abs(est["linker_nm"] - s.params["linker_nm"]) < max(3.0, 0.6 * sig)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_assign_3d_randomized_volumes(seed):
    r = _score(simulate_volume(300 + seed))
    assert r["correct"] >= 0.95, r["correct"]
    assert r["wrong"] < 0.02


@pytest.mark.parametrize("seed", [19, 22])
def test_two_d_particles_keep_z_as_a_property(seed):
    # seed 19 with a given voxel once drew particle sizes from another voxel (and failed)
    s = simulate_volume(seed, kind="astigmatic", voxel_nm=(3.0, 3.0, 5.0), n_particles=4,
                        ranges={"particle_diameter_nm": (50.0, 90.0)})
    locs = s.localizations
    em = s.smlm_to_em.apply(locs[["x", "y", "z"]].to_numpy())
    p = s.particles
    a = assign_localizations(em[:, :2], p[["x", "y"]].to_numpy(), p["equivalent_diameter_nm"].to_numpy() / 2,
                             linker_nm=s.params["linker_nm"], precision_nm=locs["precision_x"].to_numpy(),
                             exclude=(locs["particle_id"] == -1).to_numpy())
    idx = a["particle"].to_numpy()
    # the precision along EM z, for weights
    cov = np.einsum("ij,nj,kj->nik", s.smlm_to_em.linear, locs[["precision_x", "precision_y", "precision_z"]].to_numpy() ** 2,
                    s.smlm_to_em.linear)
    z = z_per_particle(idx, em[:, 2], np.sqrt(cov[:, 2, 2]), n_particles=len(p))
    assert np.all(z["n_z"] > 0)
    # the weighted mean z of each particle's labels sits at its centre, within the labels' spread
    ok = idx >= 0
    # blinks of one molecule repeat its position: the labels' spread averages over molecules (the
    # distinct true positions among a particle's localizations), not over localizations
    true = locs[["x_em", "y_em", "z_em"]].to_numpy()
    n_mol = np.array([len(np.unique(true[idx == k], axis=0)) for k in range(len(p))])
    spread = np.sqrt((p[["a", "b", "c"]].to_numpy().max(1) + s.params["linker_nm"]) ** 2 / 3 / n_mol
                     + z["z_wmean_se_nm"].to_numpy() ** 2)
    assert np.all(np.abs(z["z_wmean_nm"].to_numpy() - p["z"].to_numpy()) < 4 * spread)
    empty = z_per_particle(np.array([-1, -1]), np.array([1.0, 2.0]), n_particles=2)
    assert empty["n_z"].tolist() == [0, 0] and empty["z_mean_nm"].isna().all()
