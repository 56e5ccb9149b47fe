"""Out-of-core localizations: `correlate import` + `correlate render` of a 1e8-row table.

Writes a Parquet file (and with ``--csv`` a ThunderSTORM CSV) of N localizations in batches
(never the whole table in memory), then runs, each in its own process under ``/usr/bin/time -v``:

* ``correlate import STORE FILE --memory-budget B`` (streamed: spill, bucket by tile, sort);
* ``correlate render STORE NAME --pixel-size P`` (row group by row group, x and y only);
* ``correlate filter STORE NAME --where ...`` (two passes over the row groups, a new element);
* the peer: pyarrow reading the same Parquet file batch by batch (``ParquetFile.iter_batches``,
  every column, ``pre_buffer=False``: with pyarrow's default pre-buffering the read keeps what it
  read and its RSS grows to the file's size; the floor of any streamed import) and, with ``--peer-full``, whole
  (``pyarrow.parquet.read_table``).

Prints peak RSS (target: import and render each under 6 GiB at 1e8 rows), wall time, rows/s, the
load average before and after, and the ratios. Usage::

    python benchmarks/bench_ooc_tables.py --rows 100000000 --workdir /tmp/ooc --memory-budget 4GiB
    python benchmarks/bench_ooc_tables.py --rows 2000000 --csv
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import load_average  # benchmarks/ is on sys.path: they run as scripts

COLUMNS = ["id", "frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]", "offset [photon]",
           "bkgstd [photon]", "uncertainty [nm]"]


def _batch(rng, start: int, n: int) -> dict:
    return {
        "id": np.arange(start + 1, start + n + 1, dtype=np.int64),
        "frame": np.sort(rng.integers(1, 100_001, n)),
        "x [nm]": rng.uniform(0, 80_000, n),
        "y [nm]": rng.uniform(0, 80_000, n),
        "sigma [nm]": rng.normal(130, 15, n),
        "intensity [photon]": rng.gamma(3.0, 400.0, n),
        "offset [photon]": rng.uniform(5, 40, n),
        "bkgstd [photon]": rng.uniform(1, 8, n),
        "uncertainty [nm]": rng.gamma(4.0, 3.0, n) + 2.0,
    }


def generate(parquet: Path, csv: Path | None, rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """Write ``rows`` localizations in batches of ``chunk`` to ``parquet`` (and ``csv``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv as pacsv

    rng = np.random.default_rng(seed)
    writer = None
    fh = open(csv, "wb") if csv is not None else None
    try:
        for start in range(0, rows, chunk):
            t = pa.table(_batch(rng, start, min(chunk, rows - start)))
            if writer is None:
                writer = pq.ParquetWriter(str(parquet), t.schema, compression="snappy")
            writer.write_table(t, row_group_size=1_000_000)
            if fh is not None:
                pacsv.write_csv(t, fh, pacsv.WriteOptions(include_header=start == 0))
    finally:
        if writer is not None:
            writer.close()
        if fh is not None:
            fh.close()


def timed(cmd: list[str], label: str) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``: wall s, peak RSS (GiB), exit status, last output."""
    t0 = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    rss = int(m.group(1)) * 1024 / 1024**3 if m else float("nan")
    out = {"label": label, "wall_s": wall, "peak_rss_gib": rss, "status": res.returncode,
           "stdout": res.stdout.strip().splitlines()[-6:]}
    if res.returncode != 0:
        out["stderr"] = res.stderr.strip().splitlines()[-15:]
    return out


PEER_BATCHES = """
import sys, pyarrow.parquet as pq
pf = pq.ParquetFile(sys.argv[1], pre_buffer=False); n = 0; s = 0.0
for b in pf.iter_batches(batch_size=1_000_000):
    n += b.num_rows; s += float(b.column(2).to_numpy().sum())
print(n, s)
"""
PEER_FULL = """
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]); print(t.num_rows)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_ooc"))
    ap.add_argument("--memory-budget", default="4GiB", help="passed to correlate import (default 4GiB)")
    ap.add_argument("--pixel-size", type=float, default=20.0, help="render pixel size, nm (default 20)")
    ap.add_argument("--csv", action="store_true", help="also write and import a ThunderSTORM-style CSV")
    ap.add_argument("--peer-full", action="store_true", help="also time pyarrow reading the whole file")
    ap.add_argument("--keep", action="store_true", help="keep the generated files and stores")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    wd = args.workdir
    wd.mkdir(parents=True, exist_ok=True)
    pq_path = wd / f"locs_{args.rows}.parquet"
    csv_path = wd / f"locs_{args.rows}.csv" if args.csv else None
    if not pq_path.exists() or (csv_path is not None and not csv_path.exists()):
        t0 = time.perf_counter()
        generate(pq_path, csv_path, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s: {pq_path} "
              f"({pq_path.stat().st_size / 1e9:.2f} GB)" + (f", {csv_path} ({csv_path.stat().st_size / 1e9:.2f} GB)"
                                                             if csv_path else ""))
    py = sys.executable
    results = {"rows": args.rows, "memory_budget": args.memory_budget, "cores": os.cpu_count(),
               "load_before": load_average(), "runs": []}
    sources = [("parquet", pq_path)] + ([("csv", csv_path)] if csv_path else [])
    for kind, src in sources:
        store = wd / f"store_{kind}.ome.zarr"
        shutil.rmtree(store, ignore_errors=True)
        imp = timed([py, "-m", "correlate", "import", str(store), str(src), "--name", "locs",
                     "--memory-budget", args.memory_budget], f"correlate import ({kind})")
        results["runs"].append(imp)
        if imp["status"] == 0:
            results["runs"].append(timed([py, "-m", "correlate", "render", str(store), "locs", "--pixel-size",
                                          str(args.pixel_size)], f"correlate render ({kind} store)"))
            results["runs"].append(timed([py, "-m", "correlate", "filter", str(store), "locs", "--where",
                                          "precision < 12 and frame < 60000", "--memory-budget", args.memory_budget],
                                         f"correlate filter ({kind} store)"))
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)
    results["runs"].append(timed([py, "-c", PEER_BATCHES, str(pq_path)], "pyarrow iter_batches (peer)"))
    if args.peer_full:
        results["runs"].append(timed([py, "-c", PEER_FULL, str(pq_path)], "pyarrow read_table (peer)"))
    results["load_after"] = load_average()
    print(f"\n{args.rows:,} localizations; load average before {results['load_before']}, after "
          f"{results['load_after']}; {os.cpu_count()} cores; import --memory-budget {args.memory_budget}")
    print(f"{'step':34s} {'wall s':>8s} {'rows/s':>12s} {'peak RSS GiB':>13s}  status")
    peer = next(r for r in results["runs"] if r["label"].startswith("pyarrow iter"))
    for r in results["runs"]:
        rate = args.rows / r["wall_s"] if r["wall_s"] > 0 else float("nan")
        r["rows_per_s"] = rate
        print(f"{r['label']:34s} {r['wall_s']:8.1f} {rate:12.3g} {r['peak_rss_gib']:13.2f}  {r['status']}"
              + (f"  ({r['wall_s'] / peer['wall_s']:.1f}x the peer's time)" if r is not peer else ""))
        for line in r.get("stderr", []):
            print("    " + line)
    for r in results["runs"]:
        if r["label"].startswith("correlate") and r["status"] == 0:
            ok = "under" if r["peak_rss_gib"] < 6.0 else "OVER"
            print(f"  {r['label']}: peak RSS {r['peak_rss_gib']:.2f} GiB, {ok} the 6 GiB target")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.keep:
        for p in (pq_path, csv_path):
            if p is not None:
                p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
