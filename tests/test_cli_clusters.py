"""``correlate clusters``: particles from SMLM alone on a small simulated store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from correlate.cli import main
from correlate.datasets import SampleConfig, simulate_sample
from correlate.scene import Scene


def _store(tmp_path, seed: int):
    rng = np.random.default_rng([seed, 13])
    cfg = SampleConfig.small(seed=seed, field_nm=3000.0, n_particles=int(rng.integers(8, 14)), make_em=False,
                             make_sim=False, make_afm=False, n_touching_pairs=0, n_edge_particles=0,
                             min_gap_nm=250.0, diameter_min_nm=40.0, diameter_max_nm=160.0,
                             antibody_per_particle=float(rng.uniform(25, 40)),
                             antibody_linker_nm=float(rng.uniform(5, 15)), n_frames=1500,
                             dark_frames_mean=150.0, distortion_nm=0.0)
    sample = simulate_sample(cfg)
    path = tmp_path / "s.ome.zarr"
    sample.to_scene(path)
    return path, sample


@pytest.mark.parametrize("seed", [int(np.random.default_rng(2026).integers(0, 10_000))])
def test_clusters_command_prints_estimates_and_stores_the_table(tmp_path, capsys, seed):
    path, sample = _store(tmp_path, seed)
    linker = sample.config.antibody_linker_nm
    out_csv = tmp_path / "clusters.csv"
    assert main(["clusters", str(path), "--labels", "antibody", "-o", str(out_csv),
                 "--label-offset-nm", f"{linker}"]) == 0
    text = capsys.readouterr().out
    assert "(estimated)" in text and "eps" in text and "min_samples" in text, text
    csv = pd.read_csv(out_csv)
    for col in ("particle_id", "x", "y", "equivalent_diameter_nm", "n_localizations_antibody",
                "n_molecules_antibody"):
        assert col in csv.columns
    stored = Scene.open(path).get("clusters_antibody")
    assert len(stored) == len(csv) and stored["particle_id"].is_unique
    np.testing.assert_allclose(stored["x"].to_numpy(), csv["x"].to_numpy())
    # particles with enough detected molecules are found, in the label's own (camera) frame
    truth = sample.truth
    mol = truth.molecules
    det = mol[(mol["label"] == "antibody") & (mol["n_events"] > 0)]
    p = truth.particles
    n_det = det.groupby("particle_id").size().reindex(p["particle_id"]).fillna(0).to_numpy()
    cam = truth.transforms["antibody"].inverse().apply(p[["x", "y"]].to_numpy(float))
    d, j = cKDTree(csv[["x", "y"]].to_numpy()).query(cam[n_det >= 5], distance_upper_bound=30.0)
    assert np.isfinite(d).mean() >= 0.8, (d, text)
    # sizes: a loose bound for a dozen particles (the accuracy sweep is in test_analysis_clusters)
    scale = float(np.sqrt(abs(np.linalg.det(truth.params["smlm_similarity"].matrix[:2, :2]))))
    err = csv["equivalent_diameter_nm"].to_numpy()[j[np.isfinite(d)]] * scale - p["diameter_nm"].to_numpy()[n_det >= 5][np.isfinite(d)]
    assert np.median(np.abs(err)) <= 12.0, err


def test_clusters_command_overrides_and_json(tmp_path, capsys):
    path, _ = _store(tmp_path, 5)
    assert main(["clusters", str(path), "--labels", "antibody", "--eps", "40", "--min-samples", "6", "--json",
                 "--table", "mine", "--model", "ball"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["eps_nm"] == 40.0 and s["min_samples"] == 6
    assert s["source"]["eps_nm"] == "user" and s["source"]["min_samples"] == "user"
    assert s["model"] == "sphere" and s["table"] == "mine"
    assert "mine" in Scene.open(path).names()


def test_clusters_command_refuses_what_it_cannot_cluster(tmp_path, capsys):
    path, _ = _store(tmp_path, 2)
    assert main(["clusters", str(path), "--labels", "nope", "--no-store"]) == 1
    assert "localization elements" in capsys.readouterr().err
    assert main(["clusters", str(path), "--labels", "antibody,corona", "--no-store"]) == 1
    assert "one localization element" in capsys.readouterr().err
