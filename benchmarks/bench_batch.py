"""Benchmark: `correlate batch` over small simulated samples, serial against a 2-worker LocalCluster.

    .venv/bin/python benchmarks/bench_batch.py [--samples 8] [--workers 2] [--dir DIR]

Each sample (the simulator's small configuration, a new seed each) is written as files (MRC EM,
ThunderSTORM CSVs) and run through import -> register (antibody onto EM) -> particles. The serial
run (``--workers 0``: one sample after the other, every core available to each) is the peer: what a
user scripting the CLI in a loop gets. Prints both wall times, their ratio (target <= 0.65), peak
RSS of this process tree, and checks that the combined per-particle tables are equal.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd


def _write_samples(root: Path, n: int) -> Path:
    from correlate.datasets import SampleConfig, simulate_sample

    rows = []
    for seed in range(n):
        d = root / "files" / f"s{seed}"
        simulate_sample(SampleConfig.small(seed=100 + seed)).write_files(d, overwrite=True)
        rows.append({"sample": f"s{seed}", "file:em": str(d / "em.mrc"), "file:antibody": str(d / "antibody.csv"),
                     "file:corona": str(d / "corona.csv"), "register": "antibody>em", "structure": "em",
                     "labels": "antibody"})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", help="working folder (default: a temporary one, removed afterwards)")
    args = ap.parse_args(argv)

    from correlate.batch import run_batch

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        manifest = _write_samples(root, args.samples)
        load = os.getloadavg()
        t = time.perf_counter()
        serial = run_batch(manifest, root / "serial", workers=0, progress=False, verbose=False)
        t_serial = time.perf_counter() - t
        t = time.perf_counter()
        par = run_batch(manifest, root / "cluster", workers=args.workers, progress=False, verbose=False)
        t_par = time.perf_counter() - t
        ok = (serial.samples["status"] == "ok").all() and (par.samples["status"] == "ok").all()
        same = serial.table.equals(par.table)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"correlate batch: {args.samples} small samples (3 um field, 2 nm/px EM 1500^2, 2 colours, "
              f"import + register + particles); {os.cpu_count()} cores; load average before {load[0]:.1f}")
        print(f"  serial (--workers 0):                 {t_serial:7.1f} s")
        print(f"  LocalCluster, {args.workers} workers:              {t_par:7.1f} s   ratio {t_par / t_serial:.2f} (target <= 0.65)")
        print(f"  every sample ok: {ok}; combined tables equal: {same} ({len(par.table)} particles); "
              f"largest sample process peak RSS {rss:.0f} MB")
        return 0 if ok and same else 1
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
