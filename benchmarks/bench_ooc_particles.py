"""Out-of-core particle analysis: `correlate import` + `correlate particles` on a large EM image
(default 32768^2 px, uint16) with many localizations (default 3e7), each in its own process under
``/usr/bin/time -v``; prints peak RSS (target < 4 GiB), wall time, the machine's load and the
labels check (truth particles recovered; with ``--whole-check`` on sizes that fit, the labels
equal a whole-image segmentation).

The inputs are generated once and cached (``--cache``, default a folder in the temp dir): the EM
image block by block into a zarr array (never whole in memory), copied block by block into an MRC
file (the format `correlate import` reads lazily), and the localizations (on shells around the
particles, plus background) into a Parquet file, row group by row group.

    python benchmarks/bench_ooc_particles.py                     # 32768^2, 3e7 localizations
    python benchmarks/bench_ooc_particles.py --size 8192 --n-locs 2e6 --whole-check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average  # noqa: E402


def _generate(cache: Path, size: int, px: float, n_locs: int, seed: int) -> dict:
    """Write (once) em.zarr, em.mrc, locs.parquet and truth.parquet under ``cache``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from correlate.datasets._em_blocks import em_particle_field, write_em_blocks

    done = cache / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    t0 = time.perf_counter()
    field = size * px
    n_part = int(0.04 * field**2 / (np.pi * 45.0**2))  # ~4 % of the field covered
    parts = em_particle_field((size, size), px, n_particles=n_part, diameter_nm=(20.0, 200.0),
                              touching_fraction=0.2, seed=seed)
    parts.to_parquet(cache / "truth.parquet")
    z = write_em_blocks(cache / "em.zarr", parts, (size, size), px, block=4096, chunk=1024, seed=seed)
    _write_mrc(cache / "em.mrc", z, px)
    rng = np.random.default_rng(seed)
    xy_p = parts[["x", "y"]].to_numpy()
    r_p = 0.5 * parts["diameter_nm"].to_numpy()
    schema = pa.schema([("x [nm]", pa.float32()), ("y [nm]", pa.float32()), ("frame", pa.int32()),
                        ("precision [nm]", pa.float32()), ("photons", pa.float32())])
    with pq.ParquetWriter(cache / "locs.parquet", schema) as w:
        left = n_locs if len(xy_p) else 0
        while left > 0:
            m = min(left, 2_000_000)
            on = rng.random(m) < 0.8
            k = rng.integers(0, len(xy_p), m)
            ang = rng.uniform(0, 2 * np.pi, m)
            rr = r_p[k] + 10.0 * rng.random(m)
            x = np.where(on, xy_p[k, 0] + rr * np.cos(ang), rng.uniform(0, field, m))
            y = np.where(on, xy_p[k, 1] + rr * np.sin(ang), rng.uniform(0, field, m))
            prec = rng.uniform(4.0, 12.0, m)
            t = pa.table({"x [nm]": (x + rng.normal(0, prec)).astype(np.float32),
                          "y [nm]": (y + rng.normal(0, prec)).astype(np.float32),
                          "frame": rng.integers(0, 100_000, m).astype(np.int32), "precision [nm]": prec.astype(np.float32),
                          "photons": rng.uniform(500, 3000, m).astype(np.float32)}, schema=schema)
            w.write_table(t, row_group_size=1_000_000)
            left -= m
    info = {"size": size, "pixel_nm": px, "n_particles": int(len(parts)), "n_locs": int(n_locs), "seed": seed,
            "generate_s": round(time.perf_counter() - t0, 1)}
    done.write_text(json.dumps(info))
    return info


def _write_mrc(path: Path, z, px: float) -> None:
    """An MRC (mode 6, uint16) copy of the zarr array, block by block through a memmap."""
    h, w = z.shape
    hdr = np.zeros(256, np.int32)
    hdr[0:3] = (w, h, 1)
    hdr[3] = 6
    hdr[7:10] = (w, h, 1)
    hdr_f = hdr.view(np.float32)
    hdr_f[10:13] = (w * px * 10.0, h * px * 10.0, 10.0)  # cell size in Angstrom
    hdr_f[13:16] = 90.0
    hdr[16:19] = (1, 2, 3)
    hdr[52] = int.from_bytes(b"MAP ", "little")
    hdr[53] = 0x00004444
    with open(path, "wb") as f:
        f.write(hdr.tobytes())
    mm = np.memmap(path, dtype=np.uint16, mode="r+", offset=1024, shape=(h, w))
    step = z.chunks[0]
    for y0 in range(0, h, step):
        mm[y0 : y0 + step] = z[y0 : y0 + step]
        mm.flush()
    del mm


def _timed(cmd: list[str], label: str) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; peak RSS (GiB), wall time (s), its output's tail."""
    t0 = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    rss = int(m.group(1)) / 2**20 if m else float("nan")
    out = {"step": label, "rc": res.returncode, "peak_rss_gib": round(rss, 2), "wall_s": round(wall, 1),
           "load": load_average(), "stdout": res.stdout[-3000:]}
    if res.returncode != 0:
        out["stderr"] = res.stderr[-3000:]
    return out


def _labels_check(store: Path, cache: Path, whole: bool) -> dict:
    """Truth particles whose centre carries a label; with ``whole``, equality with a whole-image run."""
    import pandas as pd

    from correlate.scene import Scene

    sc = Scene.open(store, mode="r")
    lab = sc.get("em/labels/particles")
    truth = pd.read_parquet(cache / "truth.parquet")
    px = float(json.loads((cache / "done.json").read_text())["pixel_nm"])
    iy = np.clip(np.rint(truth["y"].to_numpy() / px).astype(int), 0, lab.shape[0] - 1)
    ix = np.clip(np.rint(truth["x"].to_numpy() / px).astype(int), 0, lab.shape[1] - 1)
    order = np.lexsort((ix, iy))
    vals = np.asarray(lab.data.vindex[iy[order], ix[order]].compute())
    out = {"truth_particles": int(len(truth)), "truth_centres_labelled": int((vals > 0).sum())}
    if whole:
        from correlate.analysis import segment_em

        img = sc.get("em")
        w = segment_em(img.compute(), max_diameter_nm=220.0)
        out["equal_to_whole_image"] = bool(np.array_equal(np.asarray(lab.values), np.asarray(w.labels.values)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=32768, help="image side (px)")
    ap.add_argument("--pixel-nm", type=float, default=1.0)
    ap.add_argument("--n-locs", type=float, default=3e7, help="localizations (0: segmentation and morphology only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="folder of the generated inputs (kept between runs)")
    ap.add_argument("--memory-budget", default="2GiB", help="passed to correlate particles")
    ap.add_argument("--count-method", default="events", choices=["events", "sites"],
                    help="molecule counting of correlate particles (default events; see the report for sites)")
    ap.add_argument("--whole-check", action="store_true", help="compare with a whole-image segmentation (small sizes)")
    args = ap.parse_args(argv)
    n_locs = int(args.n_locs)
    cache = Path(args.cache or Path(tempfile.gettempdir()) / f"correlate-bench-ooc-{args.size}-{n_locs}")
    info = _generate(cache, args.size, args.pixel_nm, n_locs, args.seed)
    print(f"inputs: {json.dumps(info)} in {cache}; load {load_average()}", flush=True)
    store = cache / "sample.ome.zarr"
    if store.exists():
        shutil.rmtree(store)
    py = [sys.executable, "-m", "correlate"]
    rows = [_timed([*py, "import", str(store), str(cache / "em.mrc"), "--name", "em", "--modality", "em"], "import em")]
    if n_locs:
        rows.append(_timed([*py, "import", str(store), str(cache / "locs.parquet"), "--name", "locs"], "import locs"))
    rows.append(_timed([*py, "particles", str(store), "--structure", "em", "--labels", "locs" if n_locs else "",
                        "--assume-aligned", "--tre-nm", "2", "--max-diameter-nm", "220",
                        "--memory-budget", args.memory_budget, "--count-method", args.count_method], "particles"))
    for r in rows:
        print(f"{r['step']:<12} rc {r['rc']}  peak RSS {r['peak_rss_gib']:.2f} GiB  wall {r['wall_s']:.1f} s  "
              f"load {r['load']}", flush=True)
        if r["rc"] != 0:
            print(r.get("stderr", ""), flush=True)
    print(rows[-1]["stdout"][-1500:])
    if all(r["rc"] == 0 for r in rows):
        print("labels:", json.dumps(_labels_check(store, cache, args.whole_check)))
    peak = max(r["peak_rss_gib"] for r in rows)
    print(f"peak RSS over the steps {peak:.2f} GiB (target < 4 GiB)")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
