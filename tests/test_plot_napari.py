"""napari layer data built from a scene (napari itself is optional and not needed here)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from correlate.elements import make_image, make_localizations
from correlate.transforms import Affine, ThinPlateSpline

scene_mod = pytest.importorskip("correlate.scene")


def test_import_does_not_need_napari():
    code = "import sys, correlate.napari; assert 'napari' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_layer_data_affines_and_points(tmp_path):
    from correlate.napari import layer_data

    sc = scene_mod.Scene.create(tmp_path / "n.ome.zarr")
    em = make_image(np.zeros((30, 40), np.float32), pixel_size_nm=2.0, origin_nm={"y": 5.0, "x": -3.0}, modality="em")
    sim = make_image(np.zeros((2, 10, 12), np.float32), dims=("c", "y", "x"), channel_names=["a", "b"],
                     pixel_size_nm={"y": 40.0, "x": 30.0}, origin_nm={"y": 100.0, "x": 50.0}, modality="sim")
    t_sim = Affine.similarity(1.02, np.deg2rad(7.0), (120.0, -40.0))
    rng = np.random.default_rng(0)
    locs = make_localizations(pd.DataFrame({"x": rng.uniform(0, 500, 50), "y": rng.uniform(0, 400, 50),
                                            "precision": 4.0}), source_format="simulated")
    src = rng.uniform(0, 500, (8, 2))
    tps = ThinPlateSpline.fit(src, src * 1.01 + 5 + rng.normal(0, 2, src.shape))
    sc.add("em", em)
    sc.add("sim", sim, transform=t_sim)
    sc.add("smlm", locs, transform=tps)
    sc.add_labels("em", "particles", np.ones((30, 40), np.int32))

    layers = {(kw["name"] if isinstance(kw["name"], str) else kw["name"][0]): (d, kw, k)
              for d, kw, k in layer_data(sc)}
    # EM: identity to world; index (row, col) -> (y, x) nm = origin + 2 * index
    d, kw, kind = layers["em"]
    assert kind == "image" and d.shape == (30, 40)
    np.testing.assert_allclose(kw["affine"] @ [7, 11, 1], [5.0 + 14.0, -3.0 + 22.0, 1.0])
    # SIM: channel axis, and the affine equals pixel -> element nm -> world through the similarity
    d, kw, kind = layers["sim a"]
    assert kw["channel_axis"] == 0 and kw["name"] == ["sim a", "sim b"]
    i, j = 3, 5
    x_el, y_el = 50.0 + 30.0 * j, 100.0 + 40.0 * i
    xw, yw = t_sim.apply(np.array([[x_el, y_el]]))[0]
    np.testing.assert_allclose(kw["affine"] @ [i, j, 1], [yw, xw, 1.0], atol=1e-9)
    assert kw["metadata"]["affine_exact"] is True
    # labels share their image's affine
    d, kw_l, kind = layers["em/labels/particles"]
    assert kind == "labels"
    np.testing.assert_allclose(kw_l["affine"], layers["em"][1]["affine"])
    # localizations: mapped exactly through the non-linear transform, napari (y, x) order
    d, kw, kind = layers["smlm"]
    assert kind == "points" and d.shape == (50, 2)
    expected = tps.apply(locs[["x", "y"]].to_numpy())
    np.testing.assert_allclose(d, expected[:, ::-1], atol=1e-6)
    assert kw["size"] == pytest.approx(8.0)
