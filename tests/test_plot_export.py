"""``correlate export``: what leaves the store equals what is in it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.cli import main
from correlate.elements import Landmarks, make_image, make_localizations, make_table
from correlate.transforms import Affine, ThinPlateSpline

scene_mod = pytest.importorskip("correlate.scene")


@pytest.fixture()
def store(tmp_path):
    rng = np.random.default_rng(0)
    sc = scene_mod.Scene.create(tmp_path / "e.ome.zarr")
    sc.add("em", make_image(np.zeros((50, 60), np.float32), pixel_size_nm=4.0, modality="em"))
    t = Affine.similarity(1.01, np.deg2rad(3.0), (20.0, -10.0))
    locs = make_localizations(pd.DataFrame({"x": rng.uniform(0, 230, 300), "y": rng.uniform(0, 190, 300),
                                            "precision": 3.0}), source_format="simulated")
    sc.add("smlm", locs, transform=t)
    src = rng.uniform(0, 200, (6, 2))
    sc.add_landmarks(Landmarks(src, t.apply(src), used=[True] * 5 + [False], source_system="smlm", target_system="em"))
    sc.add_registration({"moving": "smlm", "fixed": "em", "model": "similarity"})
    sc.add_table("particles", make_table(pd.DataFrame({"particle_id": [1, 2], "x": [10.0, 20.0], "y": [5.0, 6.0]})))
    return sc, t, locs


def test_export_bigwarp_and_matrix(tmp_path, store):
    from correlate.registration import read_affine_text, read_bigwarp_csv

    sc, t, _ = store
    out = tmp_path / "lm.csv"
    assert main(["export", str(sc.path), "bigwarp", "-o", str(out)]) == 0
    lm = read_bigwarp_csv(out)
    ref = sc.get_landmarks("smlm", "em")
    np.testing.assert_allclose(lm.source, ref.source)
    np.testing.assert_allclose(lm.target, ref.target)
    assert list(lm.used) == [True] * 5 + [False]
    out = tmp_path / "m.txt"
    assert main(["export", str(sc.path), "matrix", "--name", "smlm", "-o", str(out)]) == 0
    np.testing.assert_allclose(read_affine_text(out).matrix, t.matrix, atol=1e-9)
    assert main(["export", str(sc.path), "matrix", "-o", str(out)]) == 1  # no --name


def test_export_matrix_refuses_non_linear(tmp_path, store):
    sc, _, _ = store
    sc2 = scene_mod.Scene.open(sc.path, mode="r+")
    src = np.random.default_rng(1).uniform(0, 200, (8, 2))
    sc2.set_transform("smlm", ThinPlateSpline.fit(src, src + np.random.default_rng(2).normal(0, 3, src.shape)))
    assert main(["export", str(sc.path), "matrix", "--name", "smlm", "-o", str(tmp_path / "m.txt")]) == 1


def test_export_tables_localizations_and_render(tmp_path, store):
    import tifffile

    sc, t, locs = store
    out = tmp_path / "p.csv"
    assert main(["export", str(sc.path), "table", "--name", "particles", "-o", str(out)]) == 0
    assert pd.read_csv(out)["particle_id"].tolist() == [1, 2]
    out = tmp_path / "l.csv"
    assert main(["export", str(sc.path), "localizations", "--name", "smlm", "--to", "em", "-o", str(out)]) == 0
    got = pd.read_csv(out)
    np.testing.assert_allclose(got[["x", "y"]].to_numpy(), t.apply(locs[["x", "y"]].to_numpy()), atol=1e-6)
    assert main(["export", str(sc.path), "table", "--name", "smlm", "-o", str(out)]) == 1  # wrong kind
    out = tmp_path / "r.tif"
    assert main(["export", str(sc.path), "render", "--pixel-size", "10", "-o", str(out)]) == 0
    with tifffile.TiffFile(out) as tf:
        data = tf.asarray()
        xres = tf.pages[0].tags["XResolution"].value
    assert data.sum() == pytest.approx(300)  # every localization counted
    assert xres[0] / xres[1] == pytest.approx(100.0)  # 100 pixels per µm = 10 nm pixels
    assert main(["export", str(sc.path), "render", "-o", str(out)]) == 1  # no grid given
