"""The Scene and its OME-Zarr 0.6 store: round trips, NGFF validity, transforms, bad input."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from correlate import elements as el
from correlate import transforms as tf
from correlate.errors import CorrelateError, ElementError, StoreError, UnitError
from correlate.scene import Scene, open_scene


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _em(shape=(300, 280), px=2.0, origin=(10.0, 20.0), seed=0, dtype="uint16"):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 4000, shape).astype(dtype)
    return el.make_image(data, pixel_size_nm=px, origin_nm=origin, modality="em", name="em", attrs={"detector": "HAADF"})


def _locs(n=500, seed=1, z=False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.uniform(0, 5000, n),
            "y": rng.uniform(0, 4000, n),
            "frame": rng.integers(0, 1000, n),
            "photons": rng.uniform(100, 5000, n).astype(np.float32),
            "precision": rng.uniform(3, 20, n),
            "channel": pd.Categorical(rng.choice(["antibody", "corona"], n)),
            "ident": [f"id{i}" for i in range(n)],
            "good": rng.random(n) > 0.3,
        }
    )
    if z:
        df["z"] = rng.uniform(-300, 300, n)
    return el.make_localizations(
        df, source_format="thunderstorm", camera_pixel_size_nm=107.0, frame_base=1,
        units={"ident": "", "good": ""}, notes=["frames were 1-based"],
    )


@pytest.fixture
def scene(tmp_path):
    return Scene.create(tmp_path / "sample.ome.zarr")


def _ngff_validate(path):
    from ome_zarr_models.v06.image import Image
    from ome_zarr_models.v06.scene import Scene as NgffScene

    root = zarr.open_group(str(path), mode="r")
    ns = NgffScene.from_zarr(root)
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    for edge in attrs["ome"]["scene"]["coordinateTransformations"]:
        p = edge["input"].get("path")
        if p:
            Image.from_zarr(zarr.open_group(str(path / p), mode="r"))
    return ns, attrs


# ----------------------------------------------------------------------------------------------
# store basics
# ----------------------------------------------------------------------------------------------
def test_create_open_and_modes(tmp_path):
    p = tmp_path / "s.ome.zarr"
    sc = Scene.create(p)
    assert sc.names() == []
    with pytest.raises(StoreError, match="already exists"):
        Scene.create(p)
    with pytest.raises(StoreError, match="does not exist"):
        Scene.open(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a correlate store"):
        Scene.open(tmp_path / "plain")
    zarr.create_group(str(tmp_path / "other.zarr"), attributes={"ome": {"version": "0.6"}})
    with pytest.raises(StoreError, match="not a correlate store"):
        Scene.open(tmp_path / "other.zarr")
    ro = open_scene(p)
    with pytest.raises(StoreError, match="read-only"):
        ro.add("em", _em())
    root = json.loads((p / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    assert root["attributes"]["ome"]["version"] == "0.6"
    assert root["attributes"]["correlate"]["kind"] == "scene"


def test_create_overwrite_replaces_store_but_not_foreign_folder(tmp_path):
    p = tmp_path / "s.ome.zarr"
    sc = Scene.create(p)
    sc.add("em", _em())
    sc2 = Scene.create(p, overwrite=True)
    assert sc2.names() == [] and not (p / "em").exists()
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a zarr store"):
        Scene.create(folder, overwrite=True)
    assert (folder / "precious.txt").read_text() == "keep"


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
def test_image_round_trip_values_dtype_scale_and_pyramid(scene):
    img = _em(shape=(600, 530))
    scene.add("em", img)
    back = scene.get("em")
    assert isinstance(back.data, da.Array)
    assert back.dtype == np.uint16 and back.dims == ("y", "x")
    np.testing.assert_array_equal(back.values, img.values)
    np.testing.assert_allclose(back.coords["y"].values, img.coords["y"].values, atol=1e-9)
    np.testing.assert_allclose(back.coords["x"].values, img.coords["x"].values, atol=1e-9)
    assert back.attrs["modality"] == "em" and back.attrs["detector"] == "HAADF"
    assert el.pixel_size(back) == {"y": 2.0, "x": 2.0}
    # pyramid: 600x530 -> 300x265 -> 150x132; each halving side > 256 px
    zj = json.loads((scene.path / "em" / "zarr.json").read_text())
    ms = zj["attributes"]["ome"]["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["s0", "s1", "s2"]
    assert ms["coordinateSystems"][0]["name"] == "physical"
    assert [a["unit"] for a in ms["coordinateSystems"][0]["axes"]] == ["nanometer"] * 2
    for lev, (shape, f) in enumerate([((600, 530), 1), ((300, 265), 2), ((150, 132), 4)]):
        lv = scene.get("em", level=lev)
        assert lv.shape == shape
        seq = ms["datasets"][lev]["coordinateTransformations"][0]
        assert seq["transformations"][0]["scale"] == [2.0 * f, 2.0 * f]
        # centre of the f x f block of level-0 pixels: origin + (f - 1) * px / 2
        assert seq["transformations"][1]["translation"] == pytest.approx([10 + (f - 1), 20 + (f - 1)])
        assert lv.coords["x"].values[0] == pytest.approx(20 + (f - 1))
    # level 1 is the 2x2 block mean (rounded back to uint16)
    lv1 = scene.get("em", level=1).values
    a = img.values.astype(float)
    expect = np.round(a.reshape(300, 2, 265, 2).mean(axis=(1, 3))).astype(np.uint16)
    np.testing.assert_array_equal(lv1, expect)
    assert scene.get("em", level=-1).shape == (150, 132)
    lv = scene.levels("em")
    assert [l["shape"] for l in lv] == [{"y": 600, "x": 530}, {"y": 300, "x": 265}, {"y": 150, "x": 132}]
    assert [l["pixel_size_nm"]["x"] for l in lv] == [2.0, 4.0, 8.0]
    assert lv[2]["origin_nm"] == {"y": 13.0, "x": 23.0}
    with pytest.raises(StoreError, match="level 5"):
        scene.get("em", level=5)
    arr = zarr.open_array(str(scene.path / "em" / "s0"), mode="r")
    assert arr.metadata.dimension_names == ("y", "x")
    assert any(c.__class__.__name__ == "ZstdCodec" for c in arr.compressors)


def test_small_image_single_level_and_float_afm_value_unit(scene):
    h = np.random.default_rng(3).normal(20, 5, (64, 80)).astype(np.float32)
    afm = el.make_image(h, pixel_size_nm=(3.0, 2.5), modality="afm", value_unit="nanometre")
    scene.add("afm", afm, transform=tf.Translation([100.0, -50.0]))
    back = scene.get("afm")
    np.testing.assert_array_equal(back.values, h)
    assert back.dtype == np.float32
    assert back.attrs["value_unit"] == "nm"
    assert el.pixel_size(back) == {"y": 3.0, "x": 2.5}
    assert len(json.loads((scene.path / "afm" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]["datasets"]) == 1
    meta = json.loads((scene.path / "afm" / "zarr.json").read_text())["attributes"]["correlate"]
    assert meta["value_unit"] == "nm"


def test_image_with_channels_and_3d(scene):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 255, (2, 6, 40, 30)).astype(np.uint8)
    img = el.make_image(data, pixel_size_nm={"z": 100.0, "y": 30.0, "x": 30.0}, dims="czyx",
                        modality="sim", channel_names=["488", "561"])
    scene.add("sim", img, transform=tf.Affine.from_parts(np.diag([1.0, 1.0, 2.0]), [1.0, 2.0, 3.0]))
    back = scene.get("sim")
    assert back.dims == ("c", "z", "y", "x")
    assert list(back.coords["c"].values) == ["488", "561"]
    np.testing.assert_array_equal(back.values, data)
    assert el.pixel_size(back) == {"z": 100.0, "y": 30.0, "x": 30.0}
    axes = json.loads((scene.path / "sim" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]["coordinateSystems"][0]["axes"]
    assert axes[0] == {"name": "c", "type": "channel"}
    assert scene.world_ndim() == 3
    _ngff_validate(scene.path)


def test_big_image_written_chunk_by_chunk(scene):
    """A 2048^2 dask image is written without ever computing a block bigger than a chunk."""
    seen = []

    def block(b, block_info=None):
        seen.append(b.shape)
        loc = block_info[None]["array-location"]
        yy, xx = np.mgrid[loc[0][0]:loc[0][1], loc[1][0]:loc[1][1]]
        return ((yy * 7 + xx * 3) % 251).astype(np.uint8)

    arr = da.map_blocks(block, da.zeros((2048, 2048), chunks=512, dtype=np.uint8), dtype=np.uint8)
    img = el.make_image(arr, pixel_size_nm=1.0, modality="em")
    scene.add("big", img)
    assert seen and max(np.prod(s) for s in seen) <= 1024 * 1024
    back = scene.get("big")
    yy, xx = np.mgrid[1000:1010, 2000:2010]
    np.testing.assert_array_equal(back[1000:1010, 2000:2010].values, (yy * 7 + xx * 3) % 251)
    chunks = zarr.open_array(str(scene.path / "big" / "s0"), mode="r").chunks
    assert chunks == (1024, 1024)
    assert [scene.get("big", level=i).shape[0] for i in range(4)] == [2048, 1024, 512, 256]


def test_ome_zarr_py_reader_reads_image_at_right_scale(scene):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    img = _em(shape=(520, 300), px=4.0, origin=(0.0, 0.0))
    scene.add("em", img)
    nodes = list(Reader(parse_url(str(scene.path / "em")))())
    node = nodes[0]
    # only sides longer than 256 px are halved: y twice, x once
    assert [d.shape for d in node.data] == [(520, 300), (260, 150), (130, 150)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), img.values)
    cts = node.metadata["coordinateTransformations"]
    assert cts[1][0]["transformations"][0]["scale"] == [8.0, 8.0]
    assert cts[1][0]["transformations"][1]["translation"] == [2.0, 2.0]
    assert cts[2][0]["transformations"][0]["scale"] == [16.0, 8.0]
    assert cts[2][0]["transformations"][1]["translation"] == [6.0, 2.0]
    lv2 = scene.get("em", level=2)
    np.testing.assert_array_equal(np.asarray(node.data[2]), lv2.values)
    assert lv2.coords["y"].values[1] - lv2.coords["y"].values[0] == 16.0


# ----------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------
def test_labels_round_trip_and_validate(scene):
    img = _em(shape=(600, 300))
    scene.add("em", img)
    lab = np.zeros((600, 300), np.uint32)
    lab[100:140, 50:90] = 1
    lab[301:359, 201:259] = 2  # odd edges: a coarse level shows which level-0 pixel it took
    scene.add_labels("em", "particles", lab)
    assert scene.names("labels") == ["em/labels/particles"]
    assert scene.kind("em/labels/particles") == "labels"
    back = scene.get_labels("em", "particles")
    np.testing.assert_array_equal(back.values, lab)
    assert back.dtype == np.uint32
    np.testing.assert_allclose(back.coords["x"].values, img.coords["x"].values)
    assert scene.get_labels("em", "particles", level=1).shape == scene.get("em", level=1).shape
    assert [l["shape"] for l in scene.levels("em/labels/particles")] == [l["shape"] for l in scene.levels("em")]
    # each coarse label pixel is the level-0 label nearest the position its level's transform
    # states (within half a level-0 pixel), not the first pixel of its block
    fine = scene.get_labels("em", "particles")
    for lev in (1, 2):
        coarse = scene.get_labels("em", "particles", level=lev)
        assert coarse.attrs["pixel_size_nm"]["y"] == 2.0 * 2**lev  # 600 px: y halved twice, x (300) once
        iy = np.rint((coarse.coords["y"].values - fine.coords["y"].values[0]) / 2.0 + 0.25).astype(int)
        ix = np.rint((coarse.coords["x"].values - fine.coords["x"].values[0]) / 2.0 + 0.25).astype(int)
        assert np.abs(fine.coords["x"].values[ix] - coarse.coords["x"].values).max() <= 1.0
        np.testing.assert_array_equal(coarse.values, lab[np.ix_(iy, ix)])
    lz = json.loads((scene.path / "em" / "labels" / "zarr.json").read_text())["attributes"]["ome"]
    assert lz == {"version": "0.6", "labels": ["particles"]}
    _ngff_validate(scene.path)
    with pytest.raises(StoreError, match="already has labels"):
        scene.add_labels("em", "particles", lab)
    with pytest.raises(ElementError, match="shape"):
        scene.add_labels("em", "cells", lab[:100])
    with pytest.raises(ElementError, match="integers"):
        scene.add_labels("em", "cells", lab.astype(float))
    scene.remove("em/labels/particles")
    assert scene.names("labels") == [] and not (scene.path / "em" / "labels").exists()


# ----------------------------------------------------------------------------------------------
# localizations, tables, landmarks, records, history
# ----------------------------------------------------------------------------------------------
def test_localizations_round_trip_all_columns_dtypes_attrs(scene):
    df = _locs(n=40_000)
    df.attrs["extra"] = {"nested": [1, 2, {"a": np.float64(np.nan)}], "arr": np.arange(3)}
    scene.add("antibody", df)
    back = scene.get("antibody")
    assert list(back.columns) == list(df.columns)
    for c in df.columns:
        assert back[c].dtype == df[c].dtype, c
    pd.testing.assert_frame_equal(back, df, check_like=False, check_categorical=True)
    assert back.attrs["units"] == df.attrs["units"]
    assert back.attrs["frame_base"] == 1 and back.attrs["camera_pixel_size_nm"] == 107.0
    assert back.attrs["notes"] == ["frames were 1-based"]
    assert back.attrs["extra"]["arr"] == [0, 1, 2] and np.isnan(back.attrs["extra"]["nested"][2]["a"])
    # the file is tile-sorted, zstd-compressed, floats without dictionary encoding
    import pyarrow.parquet as pq

    f = scene.path / "correlate" / "localizations" / "antibody" / "part-0.parquet"
    md = pq.ParquetFile(f).metadata
    col_names = [md.schema.column(i).name for i in range(md.num_columns)]
    rg = md.row_group(0)
    for i, name in enumerate(col_names):
        assert rg.column(i).compression == "ZSTD"
        if name in ("x", "y", "precision", "photons"):
            assert not any("DICT" in e for e in rg.column(i).encodings), (name, rg.column(i).encodings)
    raw = pq.read_table(f, columns=["__correlate_row"]).column(0).to_numpy()
    assert not np.array_equal(raw, np.arange(len(df)))  # rows were reordered by tile
    meta = json.loads((f.parent / "zarr.json").read_text())["attributes"]["correlate"]
    assert meta["kind"] == "localizations" and meta["schema_version"] == 1
    assert meta["coordinate_system"] == {"name": "world_antibody"}
    assert {c["name"]: c["unit"] for c in meta["columns"]}["x"] == "nm"
    # column pruning and bounding box
    sub = scene.get("antibody", columns=["x", "y"])
    assert list(sub.columns) == ["x", "y"]
    box = scene.get("antibody", bbox=(1000, 500, 2000, 900))  # x0, y0, x1, y1
    inside = df[(df.x >= 1000) & (df.x <= 2000) & (df.y >= 500) & (df.y <= 900)].reset_index(drop=True)
    pd.testing.assert_frame_equal(box, inside)
    with pytest.raises(ElementError, match="field 'nope'.*no column 'nope'"):
        scene.get("antibody", columns=["x", "nope"])


def test_localizations_3d_and_transform(scene):
    df = _locs(n=200, z=True)
    a = tf.Affine.from_parts(np.array([[1.0, 0.01, 0.0], [-0.01, 1.0, 0.0], [0.0, 0.0, 0.9]]), [5.0, -7.0, 12.0])
    scene.add("smlm3d", df, transform=a)
    back = scene.get("smlm3d")
    pd.testing.assert_frame_equal(back, df)
    t = scene.transform_to_world("smlm3d")
    pts = df[["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(t.apply(pts), a.apply(pts), atol=1e-9)
    # a 2-D linear transform for 3-D points is embedded (z unchanged)
    scene.set_transform("smlm3d", tf.Translation([1.0, 2.0]))
    np.testing.assert_allclose(scene.map_points(pts, "smlm3d"), pts + [1.0, 2.0, 0.0], atol=1e-9)


def test_tables_round_trip(scene):
    t = pd.DataFrame(
        {"particle_id": np.arange(1, 51), "x": np.linspace(0, 1000, 50), "y": np.linspace(5, 500, 50),
         "diameter_nm": np.linspace(50, 120, 50), "n_antibody": np.arange(50) % 7,
         "flag": pd.array([True, False] * 25, dtype="boolean")}
    )
    t.attrs["units"] = {"diameter_nm": "nm"}
    scene.add_table("particles", t, label_image="em/labels/particles")
    back = scene.get("particles")
    pd.testing.assert_frame_equal(back, t)
    assert back.attrs["label_image"] == "em/labels/particles" and back.attrs["kind"] == "table"
    assert scene.kind("particles") == "table" and scene.names("table") == ["particles"]
    # via add(), with a non-default index kept
    t2 = el.make_table(t.iloc[:5], coordinate_system="world").set_index("particle_id", drop=False)
    t2.index.name = "pid"
    scene.add("particles2", t2)
    pd.testing.assert_frame_equal(scene.get("particles2"), t2)
    with pytest.raises(ElementError, match="unique"):
        scene.add_table("bad", pd.DataFrame({"particle_id": [1, 1]}))
    scene.add_table("no_xy", pd.DataFrame({"particle_id": [1, 2], "area": [3.0, 4.0]}))
    with pytest.raises(ElementError, match="bbox needs x and y"):
        scene.get("no_xy", bbox=(0, 1, 0, 1))


def test_landmarks_round_trip(scene):
    rng = np.random.default_rng(5)
    n = 12
    cov = np.einsum("nij,nkj->nik", rng.normal(0, 3, (n, 2, 2)), rng.normal(0, 3, (n, 2, 2)))
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    lm = el.Landmarks(
        source=rng.uniform(0, 1e4, (n, 2)), target=rng.uniform(0, 1e4, (n, 2)), source_cov=cov,
        target_cov=np.full(n, 4.0), ids=np.arange(100, 100 + n), used=rng.random(n) > 0.2,
        residual=rng.uniform(0, 10, n), source_system="sim", target_system="world", attrs={"detector": "log"},
    )
    scene.add_landmarks(lm)
    back = scene.get_landmarks("sim", "world")
    for f in ("source", "target", "source_cov", "target_cov", "residual"):
        np.testing.assert_allclose(getattr(back, f), getattr(lm, f), atol=1e-12)
    np.testing.assert_array_equal(back.ids, lm.ids)
    np.testing.assert_array_equal(back.used, lm.used)
    assert (back.source_system, back.target_system) == ("sim", "world")
    assert back.attrs["detector"] == "log"
    assert (scene.path / "correlate" / "landmarks" / "sim__world" / "zarr.json").exists()
    assert scene.landmark_pairs() == [("sim", "world")]
    with pytest.raises(ElementError, match="no landmarks"):
        scene.get_landmarks("afm", "world")
    with pytest.raises(StoreError, match="already stored"):
        scene.add_landmarks(lm, overwrite=False)
    # add() takes the DataFrame form too
    scene.add("ignored", el.Landmarks(lm.source, lm.target, source_system="afm", target_system="em").to_dataframe())
    np.testing.assert_allclose(scene.get_landmarks("afm", "em").target, lm.target)


def test_registration_records_and_history(scene):
    scene.add("em", _em())
    rec = {"source": "sim", "target": "world", "model": "similarity", "fre_nm": np.float64(3.2),
           "tre_nm": 4.5, "chi2": float("nan"), "params": np.eye(3), "n": np.int64(12)}
    stored = scene.add_registration(rec)
    scene.add_registration({"model": "affine", "fre_nm": 2.0})
    recs = Scene.open(scene.path).registrations()
    assert len(recs) == 2
    r = recs[0]
    assert r["model"] == "similarity" and r["fre_nm"] == 3.2 and r["n"] == 12
    assert np.isnan(r["chi2"]) and r["params"] == np.eye(3).tolist()
    assert r["software"]["name"] == "correlate" and "created" in r and r["id"] == stored["id"]
    scene.add_history("em", {"step": "import", "reader": "mrc"})
    scene.add_history("em", {"step": "flatten", "order": 2})
    h = scene.history("em")
    assert [s["step"] for s in h] == ["import", "flatten"] and "time" in h[0]
    assert scene.history("nothing") == []
    with pytest.raises(ElementError):
        scene.add_history("nothing", {"step": "x"})


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
def _all_transforms_2d():
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 4000, (15, 2))
    dst = tf.Affine.similarity(1.02, 0.05, (30, -20)).apply(src) + rng.normal(0, 8, src.shape)
    tps = tf.ThinPlateSpline.fit(src, dst, smoothing=10.0)
    field = tf.DisplacementField.from_function(lambda p: p + 5 * np.sin(p / 700.0), (-500, -500), (100, 100), (55, 50))
    aff = tf.Affine.similarity(1.01, 0.02, (12, 8))
    return {
        "identity": tf.Identity(2),
        "translation": tf.Translation([10.0, -4.5]),
        "scale": tf.Scale([1.5, 0.75]),
        "affine": aff,
        "sequence_linear": tf.Sequence([tf.Scale([2.0, 2.0]), tf.Translation([1.0, 1.0])]),
        "tps": tps,
        "field": field,
        "seq_affine_field": tf.Sequence([aff, field]),
        "seq_tps_affine": tf.Sequence([tps, tf.Translation([3.0, 3.0])]),
        "inverse_tps": tps.inverse(),
    }


@pytest.mark.parametrize("kind", list(_all_transforms_2d()))
def test_every_transform_kind_stored_and_read_back(tmp_path, kind):
    t = _all_transforms_2d()[kind]
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add("em", _em(shape=(64, 64)), transform=t)
    sc.add("smlm", _locs(n=50), transform=t)
    pts = np.random.default_rng(8).uniform(0, 4000, (200, 2))
    for name in ("em", "smlm"):
        back = Scene.open(sc.path).transform_to_world(name)
        np.testing.assert_allclose(back.apply(pts), t.apply(pts), atol=1e-9, rtol=0)
        assert back.is_linear == t.is_linear
    ns, attrs = _ngff_validate(sc.path)
    edges = attrs["ome"]["scene"]["coordinateTransformations"]
    assert {e["type"] for e in edges} <= {"identity", "translation", "scale", "affine", "sequence"}
    meta = attrs["correlate"]
    if t.is_linear:
        assert meta["nonlinear_transforms"] == []
        assert not sc.is_transform_approximate("em")
    else:
        assert sc.is_transform_approximate("em")
        assert {n["name"] for n in meta["nonlinear_transforms"]} == {"em_to_world", "smlm_to_world"}
        assert meta["transforms"]["em"]["approximate"] is True
        # the ome.scene edge is a good linear stand-in: within the warp amplitude over the data
        approx = tf.from_ngff(next(e for e in edges if e["name"] == "em_to_world"))
        assert np.abs(approx.apply(pts) - t.apply(pts)).max() < 60.0
    if "field" in kind:
        fields = sorted(p.name for p in (sc.path / "coordinateTransformations").iterdir() if p.is_dir())
        assert len(fields) == 2
        from ome_zarr_models.v06.image import Image

        g = zarr.open_group(str(sc.path / "coordinateTransformations" / fields[0]), mode="r")
        Image.from_zarr(g)
        axes = g.attrs["ome"]["multiscales"][0]["coordinateSystems"][0]["axes"]
        assert axes[0]["type"] == "displacement" and [a["name"] for a in axes[1:]] == ["y", "x"]


def test_transform_3d_tps_round_trip(scene):
    rng = np.random.default_rng(9)
    src = rng.uniform(0, 1000, (12, 3))
    tps = tf.ThinPlateSpline.fit(src, src * 1.01 + rng.normal(0, 3, src.shape))
    scene.add("cells", _locs(n=30, z=True), transform=tps)
    pts = rng.uniform(0, 1000, (50, 3))
    np.testing.assert_allclose(Scene.open(scene.path).transform_to_world("cells").apply(pts), tps.apply(pts), atol=1e-9)
    _ngff_validate(scene.path)


def test_set_transform_replaces_field_and_cleans_up(scene):
    field = _all_transforms_2d()["field"]
    scene.add("em", _em(shape=(64, 64)), transform=field)
    first = {p.name for p in (scene.path / "coordinateTransformations").iterdir() if p.is_dir()}
    scene.set_transform("em", tf.Sequence([field, tf.Translation([1.0, 0.0])]))
    second = {p.name for p in (scene.path / "coordinateTransformations").iterdir() if p.is_dir()}
    assert len(second) == 1 and second.isdisjoint(first)
    scene.set_transform("em", tf.Translation([1.0, 2.0]))
    assert not [p for p in (scene.path / "coordinateTransformations").iterdir() if p.is_dir()]
    np.testing.assert_allclose(scene.map_points([[0.0, 0.0]], "em"), [[1.0, 2.0]])


def test_transform_between_elements_and_map_points(scene):
    a_sim = tf.Affine.similarity(30.0 / 32.0, 0.3, (120.0, -80.0))
    a_afm = tf.Translation([500.0, 250.0])
    scene.add("em", _em(shape=(64, 64)))
    scene.add("sim", el.make_image(np.zeros((32, 32), np.uint16), pixel_size_nm=32.0, modality="sim"), transform=a_sim)
    scene.add("afm", el.make_image(np.zeros((16, 16), np.float32), pixel_size_nm=5.0, modality="afm"), transform=a_afm)
    scene.add("antibody", _locs(n=100), transform=tf.Affine.similarity(1.0, -0.1, (3.0, 4.0)))
    pts = np.random.default_rng(10).uniform(0, 2000, (30, 2))
    t = scene.transform("sim", "afm")
    expect = a_afm.inverse().apply(a_sim.apply(pts))
    np.testing.assert_allclose(t.apply(pts), expect, atol=1e-9)
    np.testing.assert_allclose(scene.transform("afm", "sim").apply(expect), pts, atol=1e-9)
    np.testing.assert_allclose(scene.map_points(pts, "sim", "world"), a_sim.apply(pts), atol=1e-9)
    np.testing.assert_allclose(scene.map_points(pts, "world", "sim"), a_sim.inverse().apply(pts), atol=1e-9)
    np.testing.assert_allclose(scene.map_points(pts, "em", "em"), pts)
    # DataFrames: x, y mapped, other columns and attrs kept
    df = scene.get("antibody")
    mapped = scene.map_points(df, "antibody", "sim")
    want = scene.transform("antibody", "sim").apply(df[["x", "y"]].to_numpy())
    np.testing.assert_allclose(mapped[["x", "y"]].to_numpy(), want, atol=1e-9)
    pd.testing.assert_series_equal(mapped["photons"], df["photons"])
    assert mapped.attrs["source_format"] == "thunderstorm"
    # labels follow their image, tables their coordinate system
    assert isinstance(scene.transform_to_world("world"), tf.Identity)
    scene.add_labels("sim", "cells", np.zeros((32, 32), np.uint8))
    np.testing.assert_allclose(scene.map_points(pts, "sim/labels/cells"), a_sim.apply(pts), atol=1e-9)
    scene.add("sim_cells", el.make_table(pd.DataFrame({"particle_id": [1]}), coordinate_system="sim"))
    np.testing.assert_allclose(scene.map_points(pts, "sim_cells", "afm"), expect, atol=1e-9)


def test_world_first_and_sorts_first_and_edges_linear(scene):
    scene.add("antibody", _locs(n=20), transform=_all_transforms_2d()["tps"])
    scene.add("afm", el.make_image(np.zeros((16, 16), np.float32), pixel_size_nm=5.0, modality="afm"))
    scene.add("corona", _locs(n=20))
    _, attrs = _ngff_validate(scene.path)
    scene.validate()
    systems = [cs["name"] for cs in attrs["ome"]["scene"]["coordinateSystems"]]
    assert systems[0] == "world" and sorted(systems)[0] == "world"
    assert set(systems) == {"world", "world_antibody", "world_corona"}
    all_ids = sorted([("", s) for s in systems] + [("afm", "physical")])
    assert all_ids[0] == ("", "world")
    for cs in attrs["ome"]["scene"]["coordinateSystems"]:
        assert all(a["unit"] == "nanometer" for a in cs["axes"])
    edge = next(e for e in attrs["ome"]["scene"]["coordinateTransformations"] if e["name"] == "antibody_to_world")
    assert edge["input"] == {"name": "world_antibody"} and edge["output"] == {"name": "world"}
    assert edge["type"] == "affine"


# ----------------------------------------------------------------------------------------------
# replace, remove, listing
# ----------------------------------------------------------------------------------------------
def test_overwrite_remove_and_listing(scene):
    scene.add("em", _em(seed=1))
    scene.add("antibody", _locs(n=10))
    with pytest.raises(StoreError, match="already exists"):
        scene.add("em", _em(seed=2))
    new = _em(seed=2)
    scene.add("em", new, overwrite=True)
    np.testing.assert_array_equal(scene.get("em").values, new.values)
    assert scene.names() == ["antibody", "em"] and "em" in scene and "nope" not in scene
    assert scene.names("image") == ["em"] and scene.kind("antibody") == "localizations"
    # replace an element by one of another kind: the old folder goes
    scene.add("antibody", _em(seed=3), overwrite=True)
    assert scene.kind("antibody") == "image"
    assert not (scene.path / "correlate" / "localizations" / "antibody").exists()
    scene.remove("antibody")
    assert "antibody" not in scene and not (scene.path / "antibody").exists()
    with pytest.raises(ElementError, match="no element named"):
        scene.get("antibody")
    with pytest.raises(ElementError, match="no element named"):
        scene.remove("antibody")
    assert not (scene.path / ".correlate-staging").exists()
    _ngff_validate(scene.path)
    # names equal but for case would be one folder on macOS/Windows: refused
    with pytest.raises(StoreError, match="only in case"):
        scene.add("EM", _em(seed=4))
    with pytest.raises(StoreError, match="only in case"):
        scene.add_table("Em", pd.DataFrame({"particle_id": [1]}))
    np.testing.assert_array_equal(scene.get("em").values, new.values)


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["correlate", "coordinateTransformations", "world", "a/b", "..", "a..b", "", ".hidden", "__x", "sp ace"])
def test_bad_names(scene, name):
    with pytest.raises(StoreError, match="name"):
        scene.add(name, _em(shape=(8, 8)))


def test_bad_input_errors(scene):
    img = _em(shape=(16, 16))
    bad_unit = img.copy()
    bad_unit.coords["x"].attrs["units"] = "furlong"
    with pytest.raises(UnitError, match="furlong"):
        scene.add("a", bad_unit)
    um = img.copy()
    um.coords["x"].attrs["units"] = "um"
    with pytest.raises(UnitError, match="must be nm"):
        scene.add("a", um)
    swapped = xr.DataArray(img.data.T, dims=("x", "y"), coords={"x": img.coords["x"].values, "y": img.coords["y"].values}, attrs=img.attrs)
    with pytest.raises(ElementError, match="dims"):
        scene.add("a", swapped)
    df = _locs(n=10)
    df.loc[3, "x"] = np.nan
    with pytest.raises(ElementError, match="non-finite"):
        scene.add("a", df)
    df = _locs(n=10)
    df.attrs["units"]["y"] = "parsec"
    with pytest.raises(UnitError, match="parsec"):
        scene.add("a", df)
    df.attrs["units"]["y"] = "µm"
    with pytest.raises(UnitError, match="must be in nm"):
        scene.add("a", df)
    with pytest.raises(ElementError, match="3-D but element"):
        scene.add("a", img, transform=tf.Translation([1.0, 2.0, 3.0]))
    with pytest.raises(ElementError, match="not an element"):
        scene.add("a", np.zeros((4, 4)))
    with pytest.raises(ElementError, match="table takes no transform"):
        scene.add("a", el.make_table(pd.DataFrame({"particle_id": [1]})), transform=tf.Translation([1.0, 1.0]))
    assert scene.names() == []
    assert all(issubclass(e, CorrelateError) for e in (StoreError, ElementError, UnitError))


# ----------------------------------------------------------------------------------------------
# info and the CLI
# ----------------------------------------------------------------------------------------------
def test_info_and_cli(scene, capsys):
    from correlate.cli import main

    scene.add("em", _em(shape=(300, 280)))
    scene.add_labels("em", "particles", np.zeros((300, 280), np.uint16))
    scene.add("antibody", _locs(n=123), transform=_all_transforms_2d()["tps"])
    scene.add("afm", el.make_image(np.zeros((16, 16), np.float32), pixel_size_nm=5.0, modality="afm", value_unit="nm"),
              transform=tf.Affine.similarity(1.0, 0.1, (5.0, 6.0)))
    scene.add_table("particles", pd.DataFrame({"particle_id": [1, 2, 3]}), label_image="em/labels/particles")
    scene.add_landmarks(el.Landmarks(np.eye(3, 2) * 100, np.eye(3, 2) * 100 + 1, source_system="afm", target_system="em"))
    scene.add_registration({"source": "afm", "target": "em", "model": "rigid", "fre_nm": 2.5})
    # the keys register_scene writes
    scene.add_registration({"moving": "sim", "fixed": "em", "model": "tps", "fre_rms_nm": 0.5, "loo_rms_nm": 1.25,
                            "predicted_tre_field": {"tre_rms_median_nm": 1.5}})
    scene.add_history("antibody", {"step": "drift_correction"})
    text = scene.info()
    for needle in ["em ", "image", "300x280", "pixel y 2, x 2 nm", "2 levels", "em/labels/particles",
                   "antibody", "localizations", "123 rows", "world_antibody", "thin-plate spline",
                   "approximation", "afm", "values in nm", "rotation", "particles", "describes em/labels/particles",
                   "afm -> em", "registrations: 2", "afm -> em: model rigid, FRE 2.5 nm",
                   "sim -> em: model tps, FRE 0.5 nm, LOO 1.25 nm, TRE 1.5 nm", "drift_correction", "world (y,x; nm)"]:
        assert needle in text, needle
    cs_section = text.split("coordinate systems:")[1].split("transforms")[0]
    assert cs_section.index("world (y,x") < cs_section.index("world_antibody")
    assert main(["info", str(scene.path)]) == 0
    out = capsys.readouterr().out
    assert "antibody" in out and "123 rows" in out
    assert main(["info", str(scene.path.parent / "missing.zarr")]) == 1
    assert "no such store" in capsys.readouterr().err
    a_file = scene.path.parent / "points.csv"
    a_file.write_text("x,y\n1,2\n")
    with pytest.raises(StoreError, match="is a file, not a correlate store"):
        Scene.open(a_file)


def test_bad_transform_rejected_before_writing(scene):
    with pytest.raises(ElementError, match="correlate Transform"):
        scene.add("em", _em(shape=(8, 8)), transform=np.eye(3))
    with pytest.raises(ElementError, match="2-D but element"):
        scene.add("cells", _locs(n=5, z=True), transform=_all_transforms_2d()["tps"])
    assert scene.names() == [] and not (scene.path / "em").exists()


def test_validate_reports_a_broken_image(scene):
    scene.add("em", _em(shape=(32, 32)))
    scene.add("warped", _locs(n=5), transform=_all_transforms_2d()["field"])
    scene.validate()
    import shutil

    shutil.rmtree(scene.path / "em" / "s0")
    with pytest.raises(StoreError, match="does not validate as NGFF 0.6.*s0"):
        scene.validate()


def test_large_level_is_sharded(scene):
    data = (np.arange(4200 * 300) % 251).astype(np.uint8).reshape(4200, 300)
    scene.add("tall", el.make_image(da.from_array(data, chunks=(700, 300)), pixel_size_nm=1.0, modality="em"))
    z0 = zarr.open_array(str(scene.path / "tall" / "s0"), mode="r")
    assert z0.shards == (4096, 300) and z0.chunks == (1024, 300)
    assert zarr.open_array(str(scene.path / "tall" / "s1"), mode="r").shards == (2048, 150)
    assert zarr.open_array(str(scene.path / "tall" / "s2"), mode="r").shards is None
    np.testing.assert_array_equal(scene.get("tall").values, data)
    scene.validate()


def test_cli_import_checks_names_before_writing(tmp_path, capsys):
    from correlate.cli import main

    a = tmp_path / "run1.csv"
    a.write_text("x [nm],y [nm],frame\n100,200,1\n300,400,2\n")
    b_dir = tmp_path / "other"
    b_dir.mkdir()
    b = b_dir / "run1.csv"
    b.write_text(a.read_text())
    c = tmp_path / "run2.csv"
    c.write_text("x [nm],y [nm],frame\n5,6,1\n")
    store = tmp_path / "s.ome.zarr"
    assert main(["import", str(store), str(a)]) == 0
    sc = Scene.open(store)
    assert sc.names() == ["run1"]
    np.testing.assert_allclose(sc.get("run1")[["x", "y"]].to_numpy(), [[100, 200], [300, 400]])
    assert sc.get("run1")["frame"].tolist() == [0, 1]  # 1-based file, 0-based element
    capsys.readouterr()
    # run2 is new but run1 exists: nothing is added
    assert main(["import", str(store), str(c), str(a)]) == 1
    assert "already exist" in capsys.readouterr().err
    assert Scene.open(store).names() == ["run1"]
    # two files with the same stem would overwrite each other
    assert main(["import", str(store), str(a), str(b), "--overwrite"]) == 1
    assert "several files would become element 'run1'" in capsys.readouterr().err
    assert main(["import", str(store), str(c), "--name", "world"]) == 1
    assert "reserved" in capsys.readouterr().err
    assert Scene.open(store).names() == ["run1"]
    # a file given as the store is an error message, not a traceback
    assert main(["import", str(a), str(c)]) == 1
    assert "is a file, not a correlate store" in capsys.readouterr().err
    assert main(["import", str(store), str(c), str(a), "--overwrite"]) == 0
    assert Scene.open(store).names() == ["run1", "run2"]


def test_cli_rejects_an_element_of_the_wrong_kind(scene, tmp_path, capsys):
    from correlate.cli import main

    scene.add("em", _em(shape=(32, 32)))
    scene.add("antibody", _locs(n=20))
    for argv, needle in (
        (["export", str(scene.path), "render", "-o", str(tmp_path / "r.tif"), "--name", "antibody", "--to", "antibody"],
         "needs an image whose grid"),
        (["overlay", str(scene.path), "-o", str(tmp_path / "o.png"), "--base", "antibody"], "base must be an image"),
        (["report", str(scene.path), "-o", str(tmp_path / "r.html"), "--base", "antibody"], "base must be an image"),
    ):
        assert main(argv) == 1, argv
        assert needle in capsys.readouterr().err, argv
    assert not list(tmp_path.glob("[or].*"))


def test_get_image_bbox_crops_to_the_pixels_inside(tmp_path):
    """Scene.get(bbox=) on an image or label image returns the pixels whose centres lie in the box
    (it was ignored for images)."""
    import numpy as np

    from correlate.elements import make_image
    from correlate.errors import ElementError
    from correlate.scene import Scene

    rng = np.random.default_rng()
    px, ox, oy = float(rng.uniform(0.5, 5)), float(rng.uniform(-100, 100)), float(rng.uniform(-100, 100))
    data = rng.random((60, 80)).astype(np.float32)
    sc = Scene.create(tmp_path / "b.ome.zarr")
    sc.add("em", make_image(data, pixel_size_nm=px, origin_nm={"y": oy, "x": ox}, modality="em"))
    sc.add_labels("em", "p", (data > 0.5).astype(np.int32))
    x0, x1 = ox + px * rng.uniform(0, 30), ox + px * rng.uniform(40, 79)
    y0, y1 = oy + px * rng.uniform(0, 20), oy + px * rng.uniform(30, 59)
    for name in ("em", "em/labels/p"):
        got = sc.get(name, bbox=(x0, y0, x1, y1))
        xs, ys = got.coords["x"].values, got.coords["y"].values
        assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
        assert xs.min() - px < x0 and xs.max() + px > x1  # nothing inside left out
        full = sc.get(name)
        np.testing.assert_array_equal(got.values, full.sel(x=xs, y=ys).values)
    with pytest.raises(ElementError):
        sc.get("em", bbox=(ox - 1e4, oy, ox - 9e3, oy + 10))


def test_a_localization_table_names_the_system_info_reports(tmp_path):
    """One coordinate-system name per element: the table's attrs say the store's name, whatever
    the reader or simulator called it."""
    import numpy as np
    import pandas as pd

    from correlate.elements import make_localizations
    from correlate.scene import Scene

    sc = Scene.create(tmp_path / "c.ome.zarr")
    locs = make_localizations(pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0), "frame": np.arange(5)}),
                              coordinate_system="smlm_antibody")
    sc.add("antibody", locs)
    assert sc.get("antibody").attrs["coordinate_system"] == sc._entry("antibody")["coordinate_system"]["name"]
    assert "world_antibody" in sc.info()


@pytest.mark.parametrize("shape", [(1100, 3636), (4847, 1030)])
def test_image_sides_that_are_no_multiple_of_the_chunk_store_and_read_back(scene, shape):
    img = np.random.default_rng(5).integers(0, 4000, shape).astype(np.uint16)
    scene.add("big", el.make_image(img, pixel_size_nm=2.0, modality="em"))
    np.testing.assert_array_equal(scene.get("big").values, img)
