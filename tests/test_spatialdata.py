"""SpatialData interop: a scene written as SpatialData opens with spatialdata.read_zarr with every
element in place (world nm), and reads back into an equal scene."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

sd = pytest.importorskip("spatialdata", reason="spatialdata is not installed (pip install 'correlate[spatialdata]')")


def _random_affine(rng, mirror):
    from correlate.transforms import Affine

    ang, s = np.deg2rad(rng.uniform(0, 360)), rng.uniform(0.8, 1.25)
    lin = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    if mirror:
        lin = lin @ np.diag([1.0, -1.0])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = lin, rng.uniform(-2000, 2000, 2)
    return Affine(m)


def _scene(path, rng):
    from correlate.elements import make_image, make_localizations, make_table
    from correlate.scene import Scene

    px = float(rng.uniform(1.0, 5.0))
    h, w = rng.integers(80, 140, 2)
    em = rng.normal(1.0, 0.05, (h, w)).astype(np.float32)
    lab = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[:h, :w]
    rows = []
    for pid, (r, c) in enumerate([(25, 25), (50, 60), (h - 25, w - 30)], start=1):
        lab[(yy - r) ** 2 + (xx - c) ** 2 <= 64] = pid
        rows.append({"particle_id": pid, "x": c * px + 10.0, "y": r * px - 5.0, "equivalent_diameter_nm": 16 * px,
                     "n_localizations_locs": int(rng.integers(0, 50)), "edge": False})
    sc = Scene.create(path)
    sc.add("em", make_image(em, pixel_size_nm=px, origin_nm={"y": -5.0, "x": 10.0}, modality="em"),
           transform=_random_affine(rng, rng.random() < 0.5))
    sc.declare_aligned("em", tre_nm=0.0, note="test")
    sc.add_labels("em", "particles", lab)
    sc.add_table("particles", make_table(pd.DataFrame(rows)), label_image="em/labels/particles")
    n = 500
    locs = make_localizations(pd.DataFrame({"x": rng.uniform(0, 1e3, n), "y": rng.uniform(0, 1e3, n),
                                            "frame": rng.integers(0, 1000, n), "photons": rng.uniform(100, 5000, n),
                                            "precision": rng.uniform(3, 15, n)}))
    sc.add("locs", locs, transform=_random_affine(rng, rng.random() < 0.5))
    sc.declare_aligned("locs", tre_nm=2.0, note="test")
    return sc


def _pixel_to_world_scene(scene, name, ij):
    from correlate.elements import origin, pixel_size

    img = scene.get(name)
    px, org = pixel_size(img), origin(img)
    nm = np.column_stack([org["x"] + px["x"] * ij[:, 1], org["y"] + px["y"] * ij[:, 0]])
    return scene.transform_to_world(name).apply(nm)


@pytest.mark.filterwarnings("ignore")
def test_scene_to_spatialdata_and_back(tmp_path):
    from spatialdata.transformations import get_transformation

    from correlate.interop import from_spatialdata, write_spatialdata

    rng = np.random.default_rng()
    sc = _scene(tmp_path / "s.ome.zarr", rng)
    out = tmp_path / "s.sdata.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_spatialdata(sc, out)
        back = sd.read_zarr(out)
    assert set(back.images) == {"em"} and set(back.labels) == {"em_labels_particles"}
    assert set(back.points) == {"locs"} and set(back.tables) == {"particles"}
    ij = np.column_stack([rng.uniform(0, 80, 20), rng.uniform(0, 80, 20)])
    want = _pixel_to_world_scene(sc, "em", ij)
    for el in (back.images["em"], back.labels["em_labels_particles"]):
        m = get_transformation(el, to_coordinate_system="world").to_affine_matrix(input_axes=("x", "y"),
                                                                                  output_axes=("x", "y"))
        got = (np.column_stack([ij[:, 1], ij[:, 0], np.ones(len(ij))]) @ np.asarray(m).T)[:, :2]
        np.testing.assert_allclose(got, want, atol=1e-6)
    pts = back.points["locs"].compute()
    world = sc.map_points(sc.get("locs"), "locs", "world")
    np.testing.assert_allclose(pts[["x", "y"]].to_numpy(), world[["x", "y"]].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(pts["photons"].to_numpy(), sc.get("locs")["photons"].to_numpy())
    table = back.tables["particles"]
    attrs = table.uns["spatialdata_attrs"]
    assert attrs["region"] == "em_labels_particles" and attrs["instance_key"] == "particle_id"
    lab = np.asarray(back.labels["em_labels_particles"].data)
    assert set(np.unique(lab)) - {0} == set(table.obs["particle_id"].astype(int))
    # ... and back into a scene: pixels, placement and values unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc2 = from_spatialdata(out, tmp_path / "back.ome.zarr")
    assert set(sc2.names()) == set(sc.names())
    np.testing.assert_array_equal(np.asarray(sc2.get("em").values), np.asarray(sc.get("em").values))
    np.testing.assert_allclose(_pixel_to_world_scene(sc2, "em", ij), want, atol=1e-6)
    w2 = sc2.map_points(sc2.get("locs"), "locs", "world")
    np.testing.assert_allclose(w2[["x", "y"]].to_numpy(), world[["x", "y"]].to_numpy(), atol=1e-6)
    t1, t2 = sc.get("particles"), sc2.get("particles")
    pd.testing.assert_frame_equal(t2[t1.columns].reset_index(drop=True), t1.reset_index(drop=True),
                                  check_dtype=False, check_categorical=False)
    np.testing.assert_array_equal(np.asarray(sc2.get_labels("em", "particles").values),
                                  np.asarray(sc.get_labels("em", "particles").values))


def test_unplaced_localizations_are_refused(tmp_path):
    from correlate.elements import make_localizations
    from correlate.errors import UnplacedError
    from correlate.interop import to_spatialdata

    sc = _scene(tmp_path / "u.ome.zarr", np.random.default_rng())
    sc.add("raw", make_localizations(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, 1]})))
    with pytest.raises(UnplacedError, match="raw"):
        to_spatialdata(sc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "raw" in to_spatialdata(sc, ["em", "raw"], assume_aligned=True).points
