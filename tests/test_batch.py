"""`correlate batch`: a manifest of samples on a dask.distributed LocalCluster, failures isolated,
completed samples skipped, a killed batch resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from correlate.batch import read_manifest, run_batch
from correlate.errors import CorrelateError


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "rows, field",
    [
        ([{"name": "a", "file:em": "x.mrc"}], "sample"),
        ([{"sample": "a", "file:em": "x.mrc", "lables": "b"}], "lables"),
        ([{"sample": "a", "file:em": "x.mrc"}, {"sample": "a", "file:em": "y.mrc"}], "sample"),
        ([{"sample": "a b", "file:em": "x.mrc"}], "sample"),
        ([{"sample": "a", "file:em": "x.mrc", "register": "em sim"}], "register"),
        ([{"sample": "a", "file:em": "x.mrc", "labels": "antibody"}], "structure"),
        ([{"sample": "a", "file:em": "x.mrc", "import:sim": "--modality sim"}], "import:sim"),
        ([{"sample": "a", "file:em": ""}], "file:<element>"),
    ],
)
def test_manifest_errors_name_the_file_and_column(tmp_path, rows, field):
    path = _write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(CorrelateError) as info:
        read_manifest(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_manifest_paths_and_steps(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("sample\tfile:em\tfile:ab\timport:em\tregister\tstructure\tlabels\tparticles_args\n"
                    "s1\tdata/em.mrc\t/abs/ab.csv\t--pixel-size 2\tab->em; x>em\tem\tab\t--linker-nm 12\n")
    (spec,) = read_manifest(path)
    assert spec.files == {"em": str((tmp_path / "data/em.mrc").resolve()), "ab": "/abs/ab.csv"}
    cmds = spec.commands("S", "T")
    assert cmds[0] == ["import", "S", spec.files["em"], "--name", "em", "--pixel-size", "2"]
    assert cmds[2] == ["register", "S", "--moving", "ab", "--fixed", "em"]
    assert cmds[3] == ["register", "S", "--moving", "x", "--fixed", "em"]
    assert cmds[4] == ["particles", "S", "--structure", "em", "--labels", "ab", "-o", "T", "--linker-nm", "12"]


def _samples(tmp_path: Path, seeds) -> dict[int, Path]:
    from correlate.datasets import SampleConfig, simulate_sample

    out = {}
    for seed in seeds:
        d = tmp_path / f"files{seed}"
        s = simulate_sample(SampleConfig.small(seed=int(seed)))
        s.write_files(d)
        out[int(seed)] = d
    return out


def test_batch_on_local_cluster_isolates_failures_and_skips_done(tmp_path):
    from correlate.scene import Scene

    seed = int(np.random.default_rng().integers(1000, 100000))
    files = _samples(tmp_path, [seed])
    d = files[seed]
    rows = [{"sample": f"s{seed}", "file:em": str(d / "em.mrc"), "file:antibody": str(d / "antibody.csv"),
             "register": "antibody>em", "structure": "em", "labels": "antibody"},
            {"sample": "locs", "file:em": "", "file:antibody": str(d / "antibody.csv"),
             "register": "", "structure": "", "labels": ""},
            {"sample": "broken", "file:em": str(tmp_path / "absent.mrc"), "file:antibody": "",
             "register": "", "structure": "", "labels": ""}]
    manifest = _write_manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    res = run_batch(manifest, out, workers=2, progress=False)
    status = dict(zip(res.samples["sample"], res.samples["status"]))
    assert status == {f"s{seed}": "ok", "locs": "ok", "broken": "failed"}, res.samples.to_dict("records")
    assert "absent.mrc" in res.samples.set_index("sample").loc["broken", "message"]
    assert (out / "broken.failed" / "log.txt").is_file()
    # The combined table is each sample's stored table, sample first.
    assert set(res.table["sample"]) == {f"s{seed}"}
    scene = Scene.open(out / f"s{seed}" / "scene.ome.zarr")
    stored = scene.get("particles").reset_index(drop=True)
    part = res.table.drop(columns="sample").reset_index(drop=True)
    pd.testing.assert_frame_equal(part, stored[part.columns], check_dtype=False)
    truth = pd.read_csv(d / "truth_particles.csv")
    assert abs(len(part) - len(truth)) <= 2, (len(part), len(truth))
    assert scene.placement("antibody").placed and scene.placement("antibody").anchor == "em"
    assert not Scene.open(out / "locs" / "scene.ome.zarr").placement("antibody").placed
    assert pd.read_parquet(out / "particles.parquet").shape == res.table.shape
    assert (out / "summary.png").stat().st_size > 1000
    # Rerun: completed samples are skipped, the broken one is tried again.
    again = run_batch(manifest, out, workers=0, progress=False)
    assert dict(zip(again.samples["sample"], again.samples["status"])) == {
        f"s{seed}": "skipped", "locs": "skipped", "broken": "failed"}
    pd.testing.assert_frame_equal(again.table, res.table)


def test_killed_batch_resumes_only_the_missing_samples(tmp_path):
    from correlate.datasets import SampleConfig, simulate_sample

    s = simulate_sample(SampleConfig.small(seed=int(np.random.default_rng().integers(1 << 30))))
    names = ["a", "b", "c", "d"]
    files = s.write_files(tmp_path / "files")
    rows = [{"sample": n, "file:antibody": str(files["antibody"])} for n in names]
    manifest = _write_manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "correlate", "batch", str(manifest), "-o", str(out), "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while not (out / "a" / "done.json").exists():
        assert proc.poll() is None, "the batch ended before it could be killed"
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {n for n in names if (out / n / "done.json").exists()}
    assert "a" in done_before and len(done_before) < len(names)
    stamp = {n: (out / n / "done.json").stat().st_mtime_ns for n in done_before}
    res = run_batch(manifest, out, workers=0, progress=False)
    status = dict(zip(res.samples["sample"], res.samples["status"]))
    assert status == {n: ("skipped" if n in done_before else "ok") for n in names}
    assert {n: (out / n / "done.json").stat().st_mtime_ns for n in done_before} == stamp
    assert not list(out.glob("*.partial")), "a half-run sample was left behind"
    for n in names:
        from correlate.scene import Scene

        assert len(Scene.open(out / n / "scene.ome.zarr").get("antibody")) == len(s.smlm["antibody"])
