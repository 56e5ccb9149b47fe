"""Import speed of a large ThunderSTORM CSV: correlate.io.read against locan.load_locdata.

Generates a ThunderSTORM CSV of N rows (v1.3 column names, quoted header, values as ThunderSTORM
writes them), then reads it with each reader in a fresh subprocess so that the wall time and the
peak resident memory (``ru_maxrss``) of each are measured on their own. The import time of the
packages is excluded from the timing but included in the peak memory; the baseline (interpreter +
imports, no file read) is reported too.

Usage::

    python benchmarks/bench_import_smlm.py                 # 10 000 000 rows
    python benchmarks/bench_import_smlm.py --rows 1000000
    python benchmarks/bench_import_smlm.py --rows 1000000 --keep /tmp/ts_1e6.csv
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]","bkgstd [photon]","chi2","uncertainty [nm]"\n'


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write a ThunderSTORM CSV of ``rows`` localizations (frames 1-based, 20 000 frames)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write(HEADER.encode())
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start + 1, start + n + 1, dtype=np.float64)
            frame = np.sort(rng.integers(1, 20_001, n)).astype(np.float64)
            cols = {
                "id": ids,
                "frame": frame,
                "x": rng.uniform(0, 50_000, n),
                "y": rng.uniform(0, 50_000, n),
                "sigma": rng.normal(130, 15, n),
                "intensity": rng.lognormal(7, 0.5, n),
                "offset": rng.normal(40, 5, n),
                "bkgstd": rng.normal(8, 1, n),
                "chi2": rng.lognormal(12, 1, n),
                "uncertainty": rng.lognormal(3, 0.3, n),
            }
            table = pa.table(cols)
            pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(include_header=False))


def _worker(which: str, path: str) -> None:
    """Run in a subprocess: import, time one read, report JSON on stdout."""
    import resource
    import warnings

    warnings.simplefilter("ignore")
    extra = {}
    if which == "correlate":
        import correlate.io as cio

        t0 = time.perf_counter()
        cio.available_readers()  # one-off: imports every reader module (excluded from the read time)
        extra["registry_seconds"] = time.perf_counter() - t0
        fn = lambda: cio.read(path)  # noqa: E731
    elif which == "locan":
        import locan

        fn = lambda: locan.load_locdata(path, file_type=locan.FileType.THUNDERSTORM)  # noqa: E731
    elif which == "baseline":
        import correlate.io  # noqa: F401
        import locan  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow.csv  # noqa: F401

        fn = lambda: None  # noqa: E731
    else:
        raise SystemExit(f"unknown worker {which}")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = len(out) if out is not None else 0
    print(json.dumps({"which": which, "seconds": dt, "rows": n, "maxrss_mb": rss / 1024, "rss_before_mb": rss0 / 1024} | extra))


def _run(which: str, path: Path) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--worker", which, str(path)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="number of localizations (default 1e7)")
    ap.add_argument("--keep", type=Path, default=None, help="write the CSV here and keep it (reused if present)")
    ap.add_argument("--worker", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--skip-locan", action="store_true", help="time correlate only")
    ap.add_argument("--repeat", type=int, default=1, help="runs per reader, alternating; the fastest is shown")
    args = ap.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0
    tmpdir = None
    if args.keep is not None:
        path = args.keep
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="bench_smlm_")
        path = Path(tmpdir.name) / "thunderstorm.csv"
    try:
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, args.rows)
            print(f"generated {args.rows:,} rows, {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        base = _run("baseline", path)
        runs: dict[str, list[dict]] = {"correlate": [], "locan": []}
        for _ in range(max(1, args.repeat)):
            for which in ("correlate",) + (() if args.skip_locan else ("locan",)):
                runs[which].append(_run(which, path))
        ours = min(runs["correlate"], key=lambda r: r["seconds"])
        if args.repeat > 1:
            for which, rs in runs.items():
                if rs:
                    print(f"{which} times: " + ", ".join(f"{r['seconds']:.2f}" for r in rs) + " s")
        print(
            f"correlate.io.read : {ours['seconds']:7.2f} s  peak RSS {ours['maxrss_mb']:7.0f} MB  ({ours['rows']:,} rows; "
            f"+{ours['registry_seconds']:.2f} s one-off reader discovery; RSS before the read {ours['rss_before_mb']:.0f} MB)"
        )
        if not args.skip_locan:
            theirs = min(runs["locan"], key=lambda r: r["seconds"])
            print(
                f"locan.load_locdata: {theirs['seconds']:7.2f} s  peak RSS {theirs['maxrss_mb']:7.0f} MB  ({theirs['rows']:,} rows; "
                f"RSS before the read {theirs['rss_before_mb']:.0f} MB)"
            )
            print(f"ratio locan / correlate time: {theirs['seconds'] / ours['seconds']:.2f}x")
        print(f"baseline (python + correlate.io, locan, pandas, pyarrow imported; no read): peak RSS {base['maxrss_mb']:.0f} MB")
        print(f"CPUs: {os.cpu_count()}")
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
