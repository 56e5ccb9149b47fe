"""Atomic writes: an exception or a killed process mid-write leaves the previous store intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dask.array as da
import numpy as np
import pytest
import zarr

from correlate import elements as el
from correlate import transforms as tf
from correlate.errors import StoreError
from correlate.io import _atomic
from correlate.scene import Scene


def _img(value=3, shape=(128, 96)):
    data = (np.arange(np.prod(shape)).reshape(shape) % 1000 + value).astype(np.uint16)
    return el.make_image(data, pixel_size_nm=2.0, modality="em")


def _failing_image(fail_after=2, shape=(2048, 2048)):
    calls = {"n": 0}

    def block(b):
        calls["n"] += 1
        if calls["n"] > fail_after:
            raise RuntimeError("disk on fire")
        return np.full(b.shape, 9, np.uint16)

    arr = da.map_blocks(block, da.zeros(shape, chunks=512, dtype=np.uint16), dtype=np.uint16)
    return el.make_image(arr, pixel_size_nm=1.0, modality="em")


def _snapshot(path):
    """Every file of the store (except the staging area) with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(path):
        if _atomic.STAGING_DIR in dirpath:
            continue
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def _validate(path):
    from ome_zarr_models.v06.image import Image
    from ome_zarr_models.v06.scene import Scene as NgffScene

    NgffScene.from_zarr(zarr.open_group(str(path), mode="r"))
    sc = Scene.open(path)
    for name in sc.names("image"):  # an overwritten element lives at a fresh folder
        Image.from_zarr(zarr.open_group(str(path / sc._entry(name)["path"]), mode="r"))


@pytest.fixture
def store(tmp_path):
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add("em", _img(3))
    sc.add("sim", _img(5, (40, 40)), transform=tf.Affine.similarity(1.1, 0.2, (3.0, 4.0)))
    return sc


def test_exception_while_adding_leaves_store_unchanged(store):
    before = _snapshot(store.path)
    with pytest.raises(StoreError, match="disk on fire.*unchanged"):
        store.add("big", _failing_image())
    assert _snapshot(store.path) == before
    assert not (store.path / "big").exists()
    assert not (store.path / _atomic.STAGING_DIR).exists()
    assert Scene.open(store.path).names() == ["em", "sim"]


def test_exception_while_overwriting_keeps_old_element(store):
    old = store.get("em").values
    before = _snapshot(store.path)
    with pytest.raises(StoreError, match="disk on fire"):
        store.add("em", _failing_image(), overwrite=True)
    assert _snapshot(store.path) == before
    np.testing.assert_array_equal(Scene.open(store.path).get("em").values, old)


def test_failed_metadata_commit_rolls_back_the_swap(store, monkeypatch):
    import correlate._store.writer as scene_mod

    old = store.get("em").values
    before = _snapshot(store.path)
    real = scene_mod.write_json_atomic

    def boom(path, data):
        if os.path.basename(os.fspath(path)) == "zarr.json" and os.path.dirname(os.fspath(path)) == os.fspath(store.path):
            raise OSError("no space left on device")
        return real(path, data)

    monkeypatch.setattr(scene_mod, "write_json_atomic", boom)
    with pytest.raises(OSError, match="no space"):
        store.add("em", _img(77), overwrite=True)
    with pytest.raises(OSError, match="no space"):
        store.add("fresh", _img(1))
    with pytest.raises(OSError, match="no space"):
        store.set_transform("sim", tf.DisplacementField.from_function(lambda p: p + 1.0, (0, 0), (10, 10), (5, 5)))
    monkeypatch.undo()
    after = _snapshot(store.path)
    # an empty coordinateTransformations group may remain (harmless); nothing else changed
    assert after.pop("coordinateTransformations/zarr.json", None) in (None, b'{\n  "zarr_format": 3,\n  "node_type": "group",\n  "attributes": {}\n}')
    assert after == before
    np.testing.assert_array_equal(Scene.open(store.path).get("em").values, old)
    assert not (store.path / "fresh").exists()
    assert not (store.path / "coordinateTransformations").exists() or not any(
        p.is_dir() for p in (store.path / "coordinateTransformations").iterdir()
    )


def test_write_json_atomic_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "zarr.json"
    _atomic.write_json_atomic(p, {"a": 1})
    with pytest.raises(ValueError):
        _atomic.write_json_atomic(p, {"a": float("nan")})  # not JSON
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["zarr.json"]


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, dask.array as da
    from correlate.scene import Scene
    from correlate import elements as el

    path, mode = sys.argv[1], sys.argv[2]
    sc = Scene.open(path, "r+")

    def block(b):
        print("WRITING", flush=True)
        time.sleep(0.2)
        return np.full(b.shape, 7, np.uint16)

    arr = da.map_blocks(block, da.zeros((4096, 2048), chunks=512, dtype=np.uint16), dtype=np.uint16)
    img = el.make_image(arr, pixel_size_nm=1.0, modality="em")
    if mode == "overwrite":
        sc.add("em", img, overwrite=True)
    else:
        sc.add("big", img)
    print("DONE", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["new", "overwrite"])
def test_sigkill_mid_write_leaves_previous_store(store, tmp_path, mode):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    old = store.get("em").values
    before = _snapshot(store.path)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store.path), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = 0
        deadline = time.time() + 120
        while seen < 4 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line.startswith("WRITING")
        assert seen >= 4, proc.stderr.read()
        staging = store.path / _atomic.STAGING_DIR
        assert staging.is_dir() and any(staging.iterdir())  # killed mid-write, part written beside
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # the store as it was: same files, same values, valid NGFF
    assert _snapshot(store.path) == before
    ro = Scene.open(store.path)
    assert ro.names() == ["em", "sim"]
    np.testing.assert_array_equal(ro.get("em").values, old)
    _validate(store.path)
    # the next writer clears the dead process's staging folder and carries on
    rw = Scene.open(store.path, "r+")
    assert not (store.path / _atomic.STAGING_DIR).exists()
    rw.add("after", _img(1, (16, 16)))
    assert Scene.open(store.path).names() == ["after", "em", "sim"]


def test_overwrite_with_data_derived_from_the_same_store(store):
    """ome-zarr-py's scene overwrite deletes first and writes zeros; ours writes beside."""
    old = store.get("em").values.astype(np.int64)
    lazy = store.get("em")
    store.add("em", lazy + 1, overwrite=True)
    np.testing.assert_array_equal(store.get("em").values, old + 1)
    # again through a pyramid level and a labels image of the same store
    store.add_labels("em", "mask", (store.get("em") > 500).astype(np.uint8))
    np.testing.assert_array_equal(store.get_labels("em", "mask").values, (old + 1 > 500).astype(np.uint8))
    store.add_labels("em", "mask", 1 - store.get_labels("em", "mask"), overwrite=True)
    np.testing.assert_array_equal(store.get_labels("em", "mask").values, (old + 1 <= 500).astype(np.uint8))
    _validate(store.path)


def test_failed_label_commit_restores_labels_index(store, monkeypatch):
    import correlate._store.writer as scene_mod

    store.add_labels("em", "a", np.ones((128, 96), np.uint8))
    before = _snapshot(store.path)
    real = scene_mod.write_json_atomic

    def boom(path, data):
        if os.fspath(path) == os.fspath(store.path / "zarr.json"):
            raise OSError("no space left on device")
        return real(path, data)

    monkeypatch.setattr(scene_mod, "write_json_atomic", boom)
    with pytest.raises(OSError):
        store.add_labels("em", "b", np.zeros((128, 96), np.uint8))
    with pytest.raises(OSError):
        store.add_labels("em", "a", np.zeros((128, 96), np.uint8), overwrite=True)
    monkeypatch.undo()
    assert _snapshot(store.path) == before
    np.testing.assert_array_equal(Scene.open(store.path).get_labels("em", "a").values, 1)
    _validate(store.path)


@pytest.mark.parametrize("what", ["element", "labels"])
def test_failed_placement_keeps_old_element(store, monkeypatch, what):
    """Moving the staged new folder to its fresh path fails (EBUSY...): the committed element
    (or label image) is untouched and nothing of the new one stays."""
    if what == "labels":
        store.add_labels("em", "a", np.ones((128, 96), np.uint8))
    before = _snapshot(store.path)
    real_rename = os.rename
    failed = []

    def rename(src, dst):
        if _atomic.STAGING_DIR in os.fspath(src) and _atomic.STAGING_DIR not in os.fspath(dst):
            failed.append(dst)
            raise OSError(16, "Device or resource busy", str(dst))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="busy"):
        if what == "labels":
            store.add_labels("em", "a", np.zeros((128, 96), np.uint8), overwrite=True)
        else:
            store.add("em", _img(77), overwrite=True)
    monkeypatch.setattr(os, "rename", real_rename)
    assert failed
    assert _snapshot(store.path) == before
    sc = Scene.open(store.path)
    if what == "labels":
        np.testing.assert_array_equal(sc.get_labels("em", "a").values, 1)
    else:
        assert sc.get("em").values[0, 0] == 3


def test_create_overwrite_fallback_keeps_old_store_when_rename_fails(store, monkeypatch):
    import correlate._store.create as scene_mod

    before = _snapshot(store.path)
    monkeypatch.setattr(scene_mod, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(src, dst):
        # the new empty store cannot be moved into place; moving the old one back must work
        if os.fspath(dst) == os.fspath(store.path) and ".correlate-new-" in os.fspath(src):
            raise OSError("device busy")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="device busy"):
        Scene.create(store.path, overwrite=True)
    monkeypatch.setattr(os, "rename", real_rename)
    assert _snapshot(store.path) == before
    assert Scene.open(store.path).names() == ["em", "sim"]
