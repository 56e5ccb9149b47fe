"""Localization tables larger than memory: streamed import, row-group render, bbox reads, filter.

Small files are forced through the streaming path (tiny batches and sort buckets) so that every
pass (slices, spills, several buckets, carried row groups) runs; the results must equal the
in-memory path bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from correlate.errors import CorrelateError, FormatError
from correlate.io._import import import_file, plan_import
from correlate.io._memory_budget import memory_budget, parse_bytes
from correlate.scene import Scene

# more rows than one Morton tile (15 625), so the streamed table is really sorted and bucketed
N_ROWS = 40_000
UNITS = {"nm": 1.0, "um": 1e-3, "px": None}


def _write_table(path: Path, rng: np.random.Generator, n: int, flavour: str) -> dict:
    """A ThunderSTORM-like or generic table with a random column set and length unit; returns
    the reader options it needs."""
    unit = rng.choice(list(UNITS))
    px = float(rng.uniform(60, 160))
    scale = UNITS[unit] if unit != "px" else 1.0 / px
    fov = rng.uniform(5_000, 80_000)
    cols: dict[str, np.ndarray] = {}
    if rng.random() < 0.5:
        ids = np.arange(1, n + 1, dtype=float)
        if rng.random() < 0.5:
            ids[int(rng.integers(n // 2, n))] += 0.5  # fractional in one batch only: float64 overall
        cols["id"] = ids
    cols["frame"] = np.sort(rng.integers(1, 5000, n))
    cols[f"x [{unit}]"] = rng.uniform(0, fov, n) * scale
    cols[f"y [{unit}]"] = rng.uniform(0, fov * rng.uniform(0.3, 1.0), n) * scale
    for label, make in (("sigma", lambda: rng.normal(130, 15, n) * scale),
                        ("intensity [photon]", lambda: rng.gamma(3, 300, n)),
                        ("offset [photon]", lambda: rng.uniform(1, 30, n)),
                        ("uncertainty", lambda: rng.gamma(4, 3, n) * scale + 1e-3)):
        if rng.random() < 0.7:
            cols[label if "[" in label else f"{label} [{unit}]"] = make()
    if flavour == "table" and rng.random() < 0.5:
        cols["channel"] = rng.integers(0, 3, n)
    df = pd.DataFrame(cols)
    opts: dict = {"pixel_size_nm": px} if unit == "px" else {}
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False, float_format="%.6f" if rng.random() < 0.5 else None)
    return opts


def _stream_plan(path: Path, rng: np.random.Generator):
    plan = plan_import(path, memory_budget_bytes="1GiB", stream=True)
    plan.batch_rows = int(rng.integers(3_000, 9_000))
    plan.batch_bytes = int(rng.integers(100_000, 400_000))
    plan.bucket_rows = int(rng.integers(4_000, 12_000))
    return plan


def _stored_table(scene: Scene, name: str):
    import pyarrow.parquet as pq

    return pq.read_table(scene.path / scene._entry(name)["path"] / "part-0.parquet")


def _attrs_but_cs(df: pd.DataFrame) -> dict:
    return {k: v for k, v in df.attrs.items() if k != "coordinate_system"}


@pytest.mark.parametrize("suffix,flavour,seed", [(".csv", "thunderstorm", 0), (".csv", "table", 1),
                                                 (".parquet", "table", 2), (".csv", "thunderstorm", 11),
                                                 (".parquet", "table", 14), (".parquet", "table", 6)])
def test_streamed_import_equals_in_memory(tmp_path, suffix, flavour, seed):
    rng = np.random.default_rng(seed)
    src = tmp_path / f"locs{suffix}"
    opts = _write_table(src, rng, N_ROWS, flavour)
    if flavour == "table" and suffix == ".csv":  # the generic reader, not ThunderSTORM's
        opts["format"] = "table"
    fmt = opts.pop("format", None)
    scene = Scene.create(tmp_path / "s.ome.zarr")
    plan = _stream_plan(src, rng) if fmt is None else plan_import(src, format=fmt, memory_budget_bytes="1GiB",
                                                                  stream=True)
    if fmt is not None:
        plan.batch_bytes, plan.bucket_rows = 150_000, 7_000
    res = import_file(scene, src, "streamed", plan=plan, format=fmt, **opts)
    import_file(scene, src, "memory", stream=False, format=fmt, **opts)
    a, b = scene.get("streamed"), scene.get("memory")
    assert res["mode"] == "stream" and res["n_rows"] == N_ROWS == len(b)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert _attrs_but_cs(a) == _attrs_but_cs(b)
    assert _stored_table(scene, "streamed").equals(_stored_table(scene, "memory"))  # same tiles, row groups


def test_streamed_render_equals_in_memory(tmp_path):
    from correlate.render import render, render_element

    rng = np.random.default_rng(7)
    src = tmp_path / "locs.csv"
    _write_table(src, rng, N_ROWS, "thunderstorm")
    scene = Scene.create(tmp_path / "s.ome.zarr")
    import_file(scene, src, "locs", plan=_stream_plan(src, rng), pixel_size_nm=100.0)
    df = scene.get("locs")
    px = float(rng.uniform(20, 200))
    hist = render_element(scene, "locs", pixel_size_nm=px, max_rows=int(rng.integers(5_000, 20_000)))
    ref = render(df, pixel_size_nm=px)
    assert hist.shape == ref.shape and np.array_equal(hist.values, ref.values)
    assert int(hist.values.sum()) == len(df)
    if "precision" in df.columns:
        g1 = render_element(scene, "locs", "gaussian", pixel_size_nm=px)
        g2 = render_element(scene, "locs", "gaussian", pixel_size_nm=px, max_rows=7_000)
        stored = _stored_table(scene, "locs").to_pandas()
        assert np.array_equal(g1.values, g2.values)  # same stored order: same image
        assert np.array_equal(g1.values, render(stored, "gaussian", pixel_size_nm=px).values)
        gref = render(df, "gaussian", pixel_size_nm=px).values
        np.testing.assert_allclose(g1.values, gref, rtol=0, atol=1e-12 * max(1.0, gref.max()))


def test_bbox_reads_only_the_row_groups_of_the_box(tmp_path, monkeypatch):
    import correlate.io._store_tables as st

    rng = np.random.default_rng(3)
    n = 700_000  # three row groups of 250 000
    df = pd.DataFrame({"x": rng.uniform(0, 50_000, n), "y": rng.uniform(0, 40_000, n),
                       "frame": rng.integers(0, 1000, n)})
    scene = Scene.create(tmp_path / "s.ome.zarr")
    scene.add("locs", df)
    read: list[list[int]] = []
    opened = st.open_parquet

    def spy(path):
        pf = opened(path)
        real = pf.read_row_groups

        def read_row_groups(groups, *a, **k):
            read.append(list(groups))
            return real(groups, *a, **k)

        pf.read_row_groups = read_row_groups
        return pf

    monkeypatch.setattr(st, "open_parquet", spy)
    x0, y0 = rng.uniform(0, 20_000), rng.uniform(0, 20_000)
    box = (x0, y0, x0 + 3_000, y0 + 3_000)
    got = scene.get("locs", bbox=box)
    full = scene.get("locs")
    inside = full[(full.x >= box[0]) & (full.x <= box[2]) & (full.y >= box[1]) & (full.y <= box[3])]
    pd.testing.assert_frame_equal(got, inside.reset_index(drop=True), check_exact=True)
    pf = opened(scene.path / scene._entry("locs")["path"])
    n_groups = pf.metadata.num_row_groups
    stored = pf.read(columns=["x", "y"]).to_pandas()
    groups_with_rows = {i for i in range(n_groups)
                        if ((s := stored.iloc[i * st.ROW_GROUP_SIZE:(i + 1) * st.ROW_GROUP_SIZE]).x.between(box[0], box[2])
                            & s.y.between(box[1], box[3])).any()}
    assert read[0] == st.bbox_row_groups(pf, box)
    assert groups_with_rows <= set(read[0]) and len(read[0]) < n_groups


def _write_csv_with_bad_row(path: Path, n: int, bad_at: int) -> None:
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"frame": np.arange(1, n + 1), "x [nm]": rng.uniform(0, 9e4, n), "y [nm]": rng.uniform(0, 9e4, n)})
    text = df.to_csv(index=False).splitlines()
    text[bad_at + 1] = "12,not-a-number,3.5"
    path.write_text("\n".join(text) + "\n")


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_failure_mid_import_leaves_store_unchanged(tmp_path):
    scene = Scene.create(tmp_path / "s.ome.zarr")
    scene.add("kept", pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    before = _snapshot(scene.path)
    src = tmp_path / "bad.csv"
    _write_csv_with_bad_row(src, N_ROWS, bad_at=N_ROWS - 100)
    plan = plan_import(src, memory_budget_bytes="1GiB", stream=True)
    plan.batch_bytes = 100_000
    with pytest.raises(FormatError, match="rows from"):
        import_file(scene, src, "broken", plan=plan)
    assert _snapshot(scene.path) == before
    assert Scene.open(scene.path).names() == ["kept"]


def test_killed_import_leaves_store_unchanged(tmp_path):
    scene = Scene.create(tmp_path / "s.ome.zarr")
    scene.add("kept", pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    before = json.loads((scene.path / "zarr.json").read_text())
    src = tmp_path / "ok.csv"
    _write_csv_with_bad_row(src, N_ROWS, bad_at=5)
    lines = src.read_text().splitlines()
    lines[6] = "6,100.0,200.0"
    src.write_text("\n".join(lines) + "\n")
    script = textwrap.dedent(f"""
        import os, signal
        import correlate.io._stream_tables as ts
        from correlate.io._import import import_file, plan_import
        from correlate.scene import Scene
        real = ts._bucket
        def die(*a, **k):  # all slices read and spilled: killed before the sort
            os.kill(os.getpid(), signal.SIGKILL)
        ts._bucket = die
        plan = plan_import({str(src)!r}, memory_budget_bytes="1GiB", stream=True)
        plan.batch_bytes = 100_000
        import_file(Scene.open({str(scene.path)!r}, mode="r+"), {str(src)!r}, "killed", plan=plan)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert json.loads((scene.path / "zarr.json").read_text()) == before
    reopened = Scene.open(scene.path, mode="r+")
    assert reopened.names() == ["kept"]
    import_file(reopened, src, "after", plan=plan_import(src, memory_budget_bytes="1GiB", stream=True))
    assert not any((scene.path / ".correlate-staging").glob("*/*spill*"))
    assert len(Scene.open(scene.path).get("after")) == N_ROWS


def test_streamed_filter_equals_in_memory_filter(tmp_path):
    from correlate.smlm import filter_element, filter_stored

    rng = np.random.default_rng(5)
    n = N_ROWS
    df = pd.DataFrame({"x": rng.uniform(0, 3e4, n), "y": rng.uniform(0, 3e4, n), "frame": rng.integers(0, 2000, n),
                       "photons": rng.gamma(3, 300, n), "precision": rng.gamma(4, 3, n) + 1})
    scene = Scene.create(tmp_path / "s.ome.zarr")
    scene.add("locs", df)
    q = float(np.quantile(df.precision, rng.uniform(0.3, 0.9)))
    where, frames = f"precision < {q} and photons > {rng.uniform(100, 900)}", f"{rng.integers(0, 500)}:1800"
    res = filter_stored(scene, "locs", where, frames=frames, roi=(1e3, 2e3, 2.5e4, 2.9e4), out="s",
                        memory_budget="64MiB")
    filter_element(scene, "locs", where=where, frames=frames, roi=(1e3, 2e3, 2.5e4, 2.9e4), out="m")
    a, b = scene.get("s"), scene.get("m")
    assert res["summary"]["rows_out"] == len(b) > 1000
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert _stored_table(scene, "s").equals(_stored_table(scene, "m"))


def test_plan_follows_the_budget(tmp_path):
    src = tmp_path / "locs.parquet"
    _write_table(src, np.random.default_rng(0), 20_000, "table")
    small = plan_import(src, memory_budget_bytes="1MB")
    big = plan_import(src, memory_budget_bytes="10GiB")
    assert small.mode == "stream" and big.mode == "memory"
    assert small.budget["memory_budget_source"] == "user" and small.est_rows == 20_000
    est = memory_budget()
    assert est.source == "estimated" and 0 < est.bytes <= est.available
    assert parse_bytes("1.5GiB") == int(1.5 * 1024**3) and parse_bytes("800MB") == 800_000_000
    with pytest.raises(CorrelateError, match="memory budget"):
        parse_bytes("lots")


def test_cli_import_and_render_stream(tmp_path, capsys):
    from correlate.cli import main

    src = tmp_path / "locs.csv"
    _write_table(src, np.random.default_rng(9), N_ROWS, "thunderstorm")
    store = tmp_path / "s.ome.zarr"
    assert main(["import", str(store), str(src), "--pixel-size", "100", "--memory-budget", "2MB"]) == 0
    out = capsys.readouterr().out
    assert "memory budget" in out and "streamed" in out and f"{N_ROWS} localizations streamed" in out
    assert main(["render", str(store), "locs", "--pixel-size", "50", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_inside"] == N_ROWS and doc["pixel_size_source"] == "user"
    img = Scene.open(store).get("locs_render")
    assert int(img.values.sum()) == N_ROWS
