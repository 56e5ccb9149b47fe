"""Run every benchmark, each beside its peer in the same run, and print their reports.

    .venv/bin/python benchmarks/run_all.py            # full sizes (several minutes; 1e7-row import)
    .venv/bin/python benchmarks/run_all.py --quick    # smaller sizes (about a minute)

Each benchmark prints its own timings, the ratio against the peer measured in the same run
(locan, numpy.histogram2d, Picasso when a venv with picassosr is given) and peak memory.
Timings on shared machines are noisy: compare ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script -> (full-size arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "bench_render.py": ([], ["--n", "1000000"]),
    "bench_import_smlm.py": ([], ["--rows", "1000000"]),
    "bench_analysis.py": ([], ["20000"]),
    "bench_smlm.py": ([], ["--locan-n", "20000"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("only", nargs="*", help="run only these scripts (e.g. bench_render.py)")
    args = ap.parse_args(argv)
    failed = []
    for script, (full, quick) in BENCHMARKS.items():
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {script} {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {script}: exit {rc}, {time.perf_counter() - t0:.1f} s wall", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
