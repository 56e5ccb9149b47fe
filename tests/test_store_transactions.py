"""Transactions: a writer SIGKILLed at every step of import, import --overwrite, register and
particles leaves a store that opens, holds the complete state before or after, whose metadata and
data agree, and whose debris the next writable open removes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _store_ops  # noqa: E402

from correlate.errors import StoreError  # noqa: E402
from correlate.scene import Scene  # noqa: E402


@pytest.fixture(scope="module")
def ctx():
    return _store_ops.forkserver()


def _child(ctx, store: Path, spec: dict, fault_at=None, trace=None) -> int:
    p = ctx.Process(target=_store_ops.run, args=(str(store), spec, fault_at, trace))
    p.start()
    p.join(120)
    if p.is_alive():  # pragma: no cover - a hang is a failure, not a wait
        p.kill()
        p.join()
        raise AssertionError(f"writer hung (fault at step {fault_at})")
    return p.exitcode


def _kill_sweep(tmp_path, ctx, kind, every: bool) -> dict:
    base, spec = _store_ops.base_store(kind, tmp_path)
    before = _store_ops.state(base)
    # a traced run without a kill: the new state and the numbered steps of this operation
    ref = tmp_path / "ref.ome.zarr"
    shutil.copytree(base, ref, symlinks=True)
    trace = tmp_path / "trace.tsv"
    assert _child(ctx, ref, spec, trace=str(trace)) == 0
    after = _store_ops.state(ref)
    assert after != before
    steps = [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]
    assert "committed" in steps and "pre-commit" in steps
    if every:
        ks = list(range(1, len(steps) + 1))
    else:  # the first step, the last one before the commit point, the commit point and the next
        c = steps.index("committed") + 1
        ks = sorted({1, c - 1, c, min(c + 1, len(steps))})
    seen = {}
    for k in ks:
        work = tmp_path / f"k{k}.ome.zarr"
        shutil.copytree(base, work, symlinks=True)
        code = _child(ctx, work, spec, fault_at=k)
        assert code == -9, (k, steps[k - 1], code)
        seen[k] = _store_ops.check_whole(work, before, after)
        shutil.rmtree(work)
    # killed before the commit point: the old state; at or after it: the new one
    commit = steps.index("committed") + 1
    for k, got in seen.items():
        assert got == ("after" if k >= commit else "before"), (k, steps[k - 1], got)
    return {steps[k - 1]: seen[k] for k in ks}


@pytest.mark.parametrize("kind", ["import", "overwrite", "register", "particles"])
def test_kill_around_the_commit_point(tmp_path, ctx, kind):
    seen = _kill_sweep(tmp_path, ctx, kind, every=False)
    assert {"begin", "pre-commit", "committed"} <= set(seen)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["import", "overwrite", "register", "particles"])
def test_kill_at_every_step(tmp_path, ctx, kind):
    seen = _kill_sweep(tmp_path, ctx, kind, every=True)
    assert len(seen) >= 6


def test_transaction_commits_once_and_aborts_whole(tmp_path):
    sc = Scene.create(tmp_path / "s.ome.zarr")
    t = pd.DataFrame({"particle_id": [1, 2, 3]})
    with pytest.raises(RuntimeError, match="stop"):
        with sc.transaction():
            sc.add_table("a", t)
            assert "a" in sc  # the pending state is visible inside
            assert Scene.open(sc.path).names() == []  # and nowhere else
            raise RuntimeError("stop")
    assert sc.names() == [] and Scene.open(sc.path).names() == []
    assert not (sc.path / "correlate" / "tables" / "a").exists()
    with sc.transaction():
        sc.add_table("a", t)
        sc.add_table("b", t)
        with sc.transaction():  # nested: joins the outer one
            sc.add_table("c", t)
        assert Scene.open(sc.path).names() == []
    assert Scene.open(sc.path).names() == ["a", "b", "c"]


def test_overwrite_never_touches_committed_folder(tmp_path):
    """Copy-on-write: the folder the committed metadata names is never written; the new version
    goes to a fresh folder and the old one is removed only after the commit."""
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add_table("t", pd.DataFrame({"particle_id": [1, 2]}))
    old = sc._entry("t")["path"]
    with sc.transaction():
        sc.add_table("t", pd.DataFrame({"particle_id": [1, 2, 3]}), overwrite=True)
        new = sc._entry("t")["path"]
        assert new != old and (sc.path / old).is_dir() and (sc.path / new).is_dir()
        assert len(Scene.open(sc.path).get("t")) == 2
    assert not (sc.path / old).exists() and len(Scene.open(sc.path).get("t")) == 3
    # the next overwrite takes the plain name again
    sc.add_table("t", pd.DataFrame({"particle_id": [7]}), overwrite=True)
    assert sc._entry("t")["path"] == old


def test_import_of_several_files_is_all_or_nothing(tmp_path, monkeypatch):
    """The third element failing to write leaves none of the three in the store."""
    import dask.array as da

    from correlate import elements as el
    from correlate.cli import main

    files = _store_ops.write_inputs(tmp_path / "in", 3)
    store = tmp_path / "s.ome.zarr"
    Scene.create(store).add_table("keep", pd.DataFrame({"particle_id": [1]}))
    real_add = Scene.add

    def add(self, name, element, *a, **k):
        if name == "lm":  # the third file: its data fail half-way through writing
            def boom(b):
                raise OSError("disk full")
            element = el.make_image(da.map_blocks(boom, da.zeros((64, 64), chunks=32, dtype=np.uint16), dtype=np.uint16),
                                    pixel_size_nm=1.0)
        return real_add(self, name, element, *a, **k)

    monkeypatch.setattr(Scene, "add", add)
    assert main(["import", str(store), *files, "--pixel-size", "5"]) != 0
    assert Scene.open(store).names() == ["keep"]
    assert sorted(p.name for p in (store / "correlate" / "localizations").iterdir()) == ["zarr.json"]
    monkeypatch.undo()
    assert main(["import", str(store), *files, "--pixel-size", "5"]) == 0
    assert Scene.open(store).names() == ["keep", "lm", "loc0", "loc1"]


def test_legacy_records_and_history_move_into_the_root(tmp_path):
    """Stores written before the root held records and history keep them on the first write."""
    from correlate.io._atomic import write_json_atomic

    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add_table("t", pd.DataFrame({"particle_id": [1]}))
    root = sc.path
    doc = __import__("json").loads((root / "zarr.json").read_text())
    meta = doc["attributes"]["correlate"]
    for key in ("registrations", "history", "landmarks"):
        meta.pop(key)
    write_json_atomic(root / "zarr.json", doc)
    write_json_atomic(root / "correlate/registrations/zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {
        "correlate": {"kind": "registrations", "schema_version": 1, "records": [{"model": "rigid", "fre_nm": 2.5}]}}})
    write_json_atomic(root / "correlate/history/zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {
        "correlate": {"kind": "history", "schema_version": 1, "elements": {"t": [{"step": "import"}]}}}})
    ro = Scene.open(root)
    assert [r["model"] for r in ro.registrations()] == ["rigid"] and ro.history("t")[0]["step"] == "import"
    rw = Scene.open(root, "r+")
    rw.add_registration({"model": "affine"})
    assert [r["model"] for r in Scene.open(root).registrations()] == ["rigid", "affine"]
    assert Scene.open(root).history("t")[0]["step"] == "import"
    assert not (root / "correlate" / "registrations").exists() and not (root / "correlate" / "history").exists()


def test_debris_of_a_dead_writer_is_cleaned_on_the_next_writable_open(tmp_path):
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add_table("t", pd.DataFrame({"particle_id": [1, 2]}))
    p = sc.path
    # what a writer killed mid-way leaves: a temporary zarr.json, its staging folder with a
    # journal naming a folder it had moved into place, and that folder
    (p / ".zarr.json.4242-0123abcd.tmp").write_text("{")
    (p / "correlate" / "tables" / ".zarr.json.4242-89abcdef.tmp").write_text("{")
    orphan = p / "correlate" / "tables" / "u"
    orphan.mkdir()
    (orphan / "zarr.json").write_text("{}")
    st = p / ".correlate-staging" / "4242-0123456789ab"
    st.mkdir(parents=True)
    (st / "half-written").mkdir()
    (st / "journal.json").write_text('{"created": ["correlate/tables/u"], "superseded": ["correlate/tables/t"], "labels": []}')
    ro = Scene.open(p)  # readers see the committed state and clean nothing
    assert ro.names() == ["t"] and orphan.exists()
    Scene.open(p, "r+")
    assert not orphan.exists() and not (p / ".correlate-staging").exists()
    assert not list(p.rglob("*.tmp"))
    assert len(Scene.open(p).get("t")) == 2  # still referenced: kept
    assert _store_ops.leftovers(p) == []


def test_a_reader_told_when_a_writer_replaced_what_it_listed(tmp_path):
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add_table("t", pd.DataFrame({"particle_id": [1, 2]}))
    reader = Scene.open(sc.path)
    sc.add_table("t", pd.DataFrame({"particle_id": [1, 2, 3]}), overwrite=True)
    with pytest.raises(StoreError, match="reload"):
        reader.get("t")
    assert len(reader.reload().get("t")) == 3
    with pytest.raises(StoreError, match="does not exist"):
        Scene.open(tmp_path / "nothing.ome.zarr", "r+")
    assert np.isfinite(len(reader.names()))
