"""Crafted stores: metadata naming paths outside the store (absolute, "..", symbolic links) or
reserved names are refused with a StoreError naming the offending path, and nothing outside the
store is opened, written or removed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from correlate import elements as el
from correlate.cli import main
from correlate.errors import StoreError
from correlate.io._atomic import write_json_atomic
from correlate.scene import Scene


def _victim(tmp_path: Path) -> Path:
    """A folder outside the store that a careless store would delete."""
    v = tmp_path / "victim"
    (v / "sub").mkdir(parents=True)
    (v / "precious.txt").write_text("keep me")
    (v / "sub" / "zarr.json").write_text("{}")
    return v


def _victim_intact(v: Path) -> bool:
    return (v / "precious.txt").read_text() == "keep me" and (v / "sub" / "zarr.json").exists()


def _store(tmp_path: Path) -> Scene:
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add("em", el.make_image(np.arange(64 * 48, dtype=np.uint16).reshape(64, 48), pixel_size_nm=2.0))
    sc.add_labels("em", "cells", np.ones((64, 48), np.uint8))
    sc.add_table("t", pd.DataFrame({"particle_id": [1, 2]}))
    return sc


def _edit_meta(store: Path, fn) -> None:
    doc = json.loads((store / "zarr.json").read_text())
    fn(doc["attributes"]["correlate"])
    write_json_atomic(store / "zarr.json", doc)


def _refused(store: Path, victim: Path, offending: str, capsys) -> None:
    for mode in ("r", "r+"):
        with pytest.raises(StoreError) as err:
            Scene.open(store, mode)
        assert offending in str(err.value), str(err.value)
    # what used to delete the folder: import --overwrite of that element, remove, a new write
    src = victim.parent / "t.csv"
    pd.DataFrame({"x [nm]": [1.0, 2.0], "y [nm]": [3.0, 4.0], "frame": [1, 2]}).to_csv(src, index=False)
    assert main(["import", str(store), str(src), "--name", "em", "--overwrite"]) != 0
    assert offending in capsys.readouterr().err
    assert _victim_intact(victim)


CASES = {
    "absolute": lambda m, v: m["elements"]["em"].update(path=str(v), coordinate_system={"name": "physical", "path": str(v)}),
    "dotdot": lambda m, v: m["elements"]["t"].update(path="correlate/tables/../../../victim"),
    "dotdot_image": lambda m, v: m["elements"]["em"].update(path="../victim", coordinate_system={"name": "physical", "path": "../victim"}),
    "wrong_place": lambda m, v: m["elements"]["t"].update(path="em"),
    "shared_folder": lambda m, v: m["elements"]["t"].update(path="correlate/tables/x") or m["elements"].update(
        u=dict(m["elements"]["t"], path="correlate/tables/x")),
    "reserved_image_path": lambda m, v: m["elements"]["em"].update(path="correlate", coordinate_system={"name": "physical", "path": "correlate"}),
    "label_outside": lambda m, v: m["elements"]["em"].update(label_paths={"cells": "../victim"}),
    "label_name": lambda m, v: m["elements"]["em"].update(labels=["../../victim"]),
    "field_outside": lambda m, v: m["transforms"].update(em={"linear": {"type": "identity"}, "exact": {
        "type": "displacements", "path": "../victim"}, "approximate": True}),
    "landmarks_outside": lambda m, v: m.update(landmarks={"a__b": {"path": str(v), "source_system": "a", "target_system": "b"}}),
    "malformed_transform": lambda m, v: m["transforms"].update(em="../victim"),
    "malformed_labels": lambda m, v: m["elements"]["em"].update(label_paths=["../victim"]),
    "malformed_elements": lambda m, v: m.update(elements=[str(v)]),
}
OFFENDING = {"absolute": "victim", "dotdot": "..", "dotdot_image": "..", "wrong_place": "'em'",
             "shared_folder": "correlate/tables/x", "reserved_image_path": "'correlate'", "label_outside": "..",
             "label_name": "../../victim", "field_outside": "..", "landmarks_outside": "victim",
             "malformed_transform": "transform", "malformed_labels": "label", "malformed_elements": "elements"}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_paths_refused(tmp_path, case, capsys):
    v = _victim(tmp_path)
    sc = _store(tmp_path)
    _edit_meta(sc.path, lambda m: CASES[case](m, v))
    _refused(sc.path, v, OFFENDING[case], capsys)


@pytest.mark.parametrize("name", ["zarr.json", "labels", "Correlate", "WORLD", ".hidden", "__x", "a/b", "..",
                                  ".correlate-staging", ".correlate-lock", "coordinatetransformations"])
def test_reserved_element_names_refused(tmp_path, name, capsys):
    v = _victim(tmp_path)
    sc = _store(tmp_path)

    def rename(m):
        m["elements"][name] = m["elements"].pop("t")

    _edit_meta(sc.path, rename)
    for mode in ("r", "r+"):
        with pytest.raises(StoreError, match="name"):
            Scene.open(sc.path, mode)
    with pytest.raises(StoreError, match="name"):
        Scene.open(tmp_path / "s.ome.zarr")
    assert _victim_intact(v)
    # and a writer may not create them either
    fresh = Scene.create(tmp_path / "fresh.ome.zarr")
    with pytest.raises(StoreError, match="name"):
        fresh.add_table(name, pd.DataFrame({"particle_id": [1]}))


@pytest.mark.parametrize("where", ["element", "labels_dir", "structural", "staging", "lock", "root_json"])
def test_symlinks_out_of_the_store_refused(tmp_path, where, capsys):
    v = _victim(tmp_path)
    sc = _store(tmp_path)
    p = sc.path
    em = p / sc._entry("em")["path"]
    if where == "element":  # the image folder replaced by a link to the victim
        os.rename(em, tmp_path / "em_moved")
        os.symlink(v, em)
        offending = "symbolic link"
    elif where == "labels_dir":
        os.rename(em / "labels", tmp_path / "labels_moved")
        os.symlink(v, em / "labels")
        offending = "symbolic link"
    elif where == "structural":
        os.rename(p / "correlate" / "tables", tmp_path / "tables_moved")
        os.symlink(v, p / "correlate" / "tables")
        offending = "symbolic link"
    elif where == "staging":
        os.symlink(v, p / ".correlate-staging")
        offending = ".correlate-staging"
    elif where == "lock":
        (p / ".correlate-lock").unlink()
        os.symlink(v / "precious.txt", p / ".correlate-lock")
        offending = "lock"
    else:
        (tmp_path / "outside.json").write_text((p / "zarr.json").read_text())
        (p / "zarr.json").unlink()
        os.symlink(tmp_path / "outside.json", p / "zarr.json")
        offending = "symbolic link"
    if where in ("staging", "lock"):  # reading is harmless; the first change is refused
        ro = Scene.open(p)
        assert ro.names() == ["em", "em/labels/cells", "t"]
        rw = Scene(p, "r+")
        with pytest.raises(StoreError, match=offending):
            rw.add_table("u", pd.DataFrame({"particle_id": [1]}))
        with pytest.raises(StoreError, match=offending):
            rw.remove("t")
        assert sorted(x.name for x in v.iterdir()) == ["precious.txt", "sub"]
    else:
        _refused(p, v, offending, capsys)
    assert _victim_intact(v)
    # replacing the whole store removes the links, never what they point to (a store whose lock
    # file is a link cannot be locked, so it is not replaced either)
    if where == "lock":
        with pytest.raises(StoreError, match="lock"):
            Scene.create(p, overwrite=True)
    else:
        Scene.create(p, overwrite=True)
        assert Scene.open(p).names() == []
    assert _victim_intact(v)


def test_crafted_journal_refused(tmp_path):
    """A journal of a 'dead writer' naming a path outside the store removes nothing."""
    v = _victim(tmp_path)
    sc = _store(tmp_path)
    j = sc.path / ".correlate-staging" / "99999999-deadbeef0000"
    j.mkdir(parents=True)
    write_json_atomic(j / "journal.json", {"created": ["../victim", str(v)], "superseded": [], "labels": []})
    with pytest.raises(StoreError, match="journal"):
        sc.add_table("u", pd.DataFrame({"particle_id": [1]}))
    assert _victim_intact(v)
    assert Scene.open(sc.path).names() == ["em", "em/labels/cells", "t"]
