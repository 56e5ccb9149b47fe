"""Proximity of particles to organelles: distances against the simulated geometry, the random
control, and the registration error carried into each distance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from correlate.analysis._proximity import ProximityOptions, proximity


def _scene(path, rng, attracted: bool):
    """An EM field with disc 'organelles' (label image) and particles: near the organelle
    boundaries (exponential gaps) when attracted, uniform otherwise. Returns the scene and each
    particle's true signed distance to the nearest boundary (nm)."""
    from correlate.elements import make_image, make_table
    from correlate.scene import Scene

    px = float(rng.uniform(1.5, 4.0))
    n_px = 700
    size = n_px * px
    centres, radii = [], []
    while len(centres) < int(rng.integers(4, 8)):  # organelles that do not touch
        c, r = rng.uniform(0.2 * size, 0.8 * size, 2), rng.uniform(60, 200)
        if all(np.linalg.norm(c - c2) > r + r2 + 20 for c2, r2 in zip(centres, radii)):
            centres.append(c)
            radii.append(r)
    centres, radii = np.array(centres), np.array(radii)
    k = len(centres)
    yy, xx = np.mgrid[:n_px, :n_px] * px
    lab = np.zeros((n_px, n_px), np.int32)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        lab[(xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r ** 2] = i
    n = 300
    if attracted:
        pick = rng.integers(0, k, n)
        ang = rng.uniform(0, 2 * np.pi, n)
        rad = radii[pick] + rng.exponential(float(rng.uniform(15, 60)), n)
        pts = centres[pick] + rad[:, None] * np.column_stack([np.cos(ang), np.sin(ang)])
        pts = pts[np.all((pts > 0) & (pts < size - px), axis=1)]
    else:  # uniform over the image, as the control is
        pts = rng.uniform(-0.5 * px, size - 0.5 * px, (n, 2))
    dist = np.linalg.norm(pts[:, None] - centres[None], axis=2) - radii[None]
    truth = dist.min(axis=1)
    sc = Scene.create(path)
    sc.add("em", make_image(rng.normal(1, 0.05, (n_px, n_px)).astype(np.float32), pixel_size_nm=px, modality="em"))
    sc.add_labels("em", "organelles", lab)
    sc.add_labels("em", "particles", np.zeros((n_px, n_px), np.int32))
    t = pd.DataFrame({"particle_id": np.arange(1, len(pts) + 1), "x": pts[:, 0], "y": pts[:, 1],
                      "equivalent_diameter_nm": rng.uniform(40, 120, len(pts))})
    sc.add_table("particles", make_table(t), label_image="em/labels/particles")
    return sc, truth, px


@pytest.mark.parametrize("attracted", [True, False])
def test_distances_match_the_geometry_and_the_control_tells_attraction(tmp_path, attracted):
    rng = np.random.default_rng()
    sc, truth, px = _scene(tmp_path / "p.ome.zarr", rng, attracted)
    res = proximity(sc, "em/labels/organelles", options=ProximityOptions(n_control=3000))
    d = res.table["distance_nm"].to_numpy()
    # pixelated discs: the boundary is known to about a pixel
    assert np.median(np.abs(d - truth)) < 0.5 * px, np.median(np.abs(d - truth))
    assert np.max(np.abs(d - truth)) < 1.5 * px
    assert ks_2samp(d, truth).pvalue > 0.05
    assert np.allclose(res.table["distance_sd_nm"], px / np.sqrt(12))  # same frame: no registration term
    if attracted:
        assert res.summary["ks_pvalue"] < 1e-6 and res.summary["median_distance_nm"] < res.summary["median_control_nm"]
    else:
        assert res.summary["ks_pvalue"] > 1e-3


def test_points_target_in_another_frame_carries_the_declared_error(tmp_path):
    from correlate.elements import make_localizations
    from correlate.errors import UnplacedError
    from correlate.transforms import Affine

    rng = np.random.default_rng()
    sc, _, px = _scene(tmp_path / "q.ome.zarr", rng, attracted=False)
    table = sc.get("particles")
    off = rng.uniform(-300, 300, 2)
    gap = rng.uniform(5, 50, len(table))
    ang = rng.uniform(0, 2 * np.pi, len(table))
    world = table[["x", "y"]].to_numpy() + gap[:, None] * np.column_stack([np.cos(ang), np.sin(ang)])
    locs = make_localizations(pd.DataFrame({"x": world[:, 0] - off[0], "y": world[:, 1] - off[1],
                                            "frame": np.arange(len(table))}))
    m = np.eye(3)
    m[:2, 2] = off
    sc.add("marker", locs, transform=Affine(m))
    with pytest.raises(UnplacedError):
        proximity(sc, "marker")
    tre = float(rng.uniform(2, 10))
    sc.declare_aligned("marker", tre_nm=tre, note="test")
    sc.declare_aligned("em", tre_nm=0.0, note="test")
    res = proximity(sc, "marker", options=ProximityOptions(n_control=500))
    d = res.table["distance_nm"].to_numpy()
    assert np.all(d <= gap + 1e-6)  # the nearest marker is at most the particle's own
    assert np.median(np.abs(d - gap)) < 1e-6
    np.testing.assert_allclose(res.table["distance_sd_nm"], tre / np.sqrt(2), rtol=1e-6)


def test_cli_proximity_stores_columns_and_prints_the_test(tmp_path, capsys):
    import json

    from correlate.cli import main
    from correlate.scene import Scene

    rng = np.random.default_rng()
    store = tmp_path / "c.ome.zarr"
    _, truth, px = _scene(store, rng, attracted=True)
    assert main(["proximity", str(store), "--to", "em/labels/organelles", "--store", "--plot",
                 str(tmp_path / "p.png"), "--n-control", "1000"]) == 0
    out = capsys.readouterr().out
    assert "Kolmogorov-Smirnov" in out and (tmp_path / "p.png").stat().st_size > 1000
    t = Scene.open(store).get("particles")
    assert np.median(np.abs(t["proximity_nm_em_organelles"].to_numpy() - truth)) < 0.5 * px
    assert main(["proximity", str(store), "--to", "em/labels/organelles", "--json", "--seed", "3"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_particles"] == len(truth) and s["ks_pvalue"] < 1e-6
