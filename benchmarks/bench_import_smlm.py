"""Import speed of a large ThunderSTORM CSV: correlate.io.read beside the fastest parsers and locan.

Generates a ThunderSTORM CSV of N rows (v1.3 column names, quoted header, values as ThunderSTORM
writes them), then reads it in a fresh subprocess per reader, the readers alternating (paired
repeats):

* ``correlate``: ``correlate.io.read(path)``, reader discovery included (a fresh process: the
  reader modules are found and imported inside the timed call);
* ``pandas_c`` / ``pandas_pyarrow``: ``pandas.read_csv(path, engine=...)``;
* ``pyarrow``: ``pyarrow.csv.read_csv(path).to_pandas()``;
* ``locan``: ``locan.load_locdata(path, file_type=THUNDERSTORM)``.

The three plain parsers also do the unit conversion correlate does (canonical column names, frames
0-based), so that they deliver the same table. Each process imports numpy, pandas and pyarrow
before the timed call (the common base) and its own package; the timed call is wall and CPU time,
the whole process (interpreter start to exit) is timed from outside, and the peak resident memory
(``ru_maxrss``) is reported by the process itself.

Usage::

    python benchmarks/bench_import_smlm.py                 # 10 000 000 rows
    python benchmarks/bench_import_smlm.py --rows 1000000 --repeat 3
    python benchmarks/bench_import_smlm.py --rows 1000000 --keep /tmp/ts_1e6.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import load_average, run_worker  # benchmarks/ is on sys.path: they run as scripts

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


_RENAME = {"x [nm]": "x", "y [nm]": "y", "sigma [nm]": "sigma", "intensity [photon]": "photons",
           "offset [photon]": "background", "bkgstd [photon]": "bkgstd", "uncertainty [nm]": "precision"}
READERS = ("correlate", "pyarrow", "pandas_pyarrow", "pandas_c", "locan")


def _convert(df):
    """What correlate does to the parsed table: canonical names, 0-based integer frames."""
    df = df.rename(columns=_RENAME)
    df["frame"] = df["frame"].to_numpy().astype(np.int64) - 1
    return df


def _reader(which: str, path: str):
    if which == "correlate":
        import correlate.io as cio

        return lambda: cio.read(path)
    if which == "locan":
        import locan

        return lambda: locan.load_locdata(path, file_type=locan.FileType.THUNDERSTORM)
    if which == "pyarrow":
        from pyarrow import csv as pacsv

        return lambda: _convert(pacsv.read_csv(path).to_pandas())
    if which in ("pandas_c", "pandas_pyarrow"):
        import pandas as pd

        return lambda: _convert(pd.read_csv(path, engine=which.split("_")[1]))
    if which == "baseline":
        return lambda: None
    raise SystemExit(f"unknown worker {which}")


def _worker(which: str, path: str) -> None:
    """Run in a subprocess: import, time one read, report JSON on stdout."""
    import resource
    import warnings

    warnings.simplefilter("ignore")
    import pandas  # noqa: F401  (the common base, imported by every worker before the timing)
    import pyarrow.csv  # noqa: F401

    fn = _reader(which, path)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = len(out) if out is not None else 0
    print(json.dumps({"which": which, "seconds": dt, "cpu_seconds": dc, "rows": n, "maxrss_mb": rss / 1024,
                      "rss_before_mb": rss0 / 1024}))


def _run(which: str, path: Path) -> dict:
    out = run_worker([sys.executable, __file__, "--worker", which, str(path)], which)
    out["process_seconds"] = out.pop("process_s")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="number of localizations (default 1e7)")
    ap.add_argument("--keep", type=Path, default=None, help="write the CSV here and keep it (reused if present)")
    ap.add_argument("--worker", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--skip", nargs="*", default=[], choices=READERS, help="readers not to run (e.g. locan)")
    ap.add_argument("--skip-locan", action="store_true", help="same as --skip locan")
    ap.add_argument("--repeat", type=int, default=1, help="runs per reader, alternating; the fastest is shown")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0
    skip = set(args.skip) | ({"locan"} if args.skip_locan else set())
    readers = [r for r in READERS if r not in skip]
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
        load0 = load_average()
        base = _run("baseline", path)
        runs: dict[str, list[dict]] = {r: [] for r in readers}
        for _ in range(max(1, args.repeat)):
            for which in readers:
                runs[which].append(_run(which, path))
        report = _report(runs, base, path, load0)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    print(report["text"])
    if args.json:
        print(json.dumps(report["json"]))
    return 0


def _report(runs: dict[str, list[dict]], base: dict, path: Path, load0: str) -> dict:
    best = {w: min(rs, key=lambda r: r["seconds"]) for w, rs in runs.items() if rs}
    for w, rs in runs.items():
        best[w] = dict(best[w], process_seconds=min(r["process_seconds"] for r in rs),
                       cpu_seconds=min(r["cpu_seconds"] for r in rs))
    size_mb = path.stat().st_size / 1e6
    rows = next(iter(best.values()))["rows"]
    lines = [f"file: {rows:,} rows, {size_mb:.0f} MB; CPUs {os.cpu_count()}; load average before {load0}, after {load_average()}",
             f"{'reader':16s} {'read (s)':>9s} {'CPU (s)':>8s} {'process (s)':>12s} {'MB/s':>7s} {'peak RSS (MB)':>14s}  runs (s)"]
    for w, r in best.items():
        lines.append(f"{w:16s} {r['seconds']:9.2f} {r['cpu_seconds']:8.2f} {r['process_seconds']:12.2f} "
                     f"{size_mb / r['seconds']:7.0f} {r['maxrss_mb']:14.0f}  "
                     + ", ".join(f"{x['seconds']:.2f}" for x in runs[w]))
    parsers = [w for w in ("pyarrow", "pandas_pyarrow", "pandas_c") if w in best]
    out = {"benchmark": "import_smlm", "rows": rows, "file_mb": size_mb, "cpus": os.cpu_count(), "load_before": load0,
           "load_after": load_average(), "readers": best, "baseline_process_seconds": base["process_seconds"],
           "baseline_maxrss_mb": base["maxrss_mb"]}
    if "correlate" in best and parsers:
        fastest = min(parsers, key=lambda w: best[w]["seconds"])
        fastest_p = min(parsers, key=lambda w: best[w]["process_seconds"])
        c = best["correlate"]
        out["ratio_correlate_over_fastest_read"] = c["seconds"] / best[fastest]["seconds"]
        out["ratio_correlate_over_fastest_process"] = c["process_seconds"] / best[fastest_p]["process_seconds"]
        out["ratio_correlate_over_fastest_cpu"] = c["cpu_seconds"] / best[fastest]["cpu_seconds"]
        lines.append(f"correlate / fastest parser ({fastest}), timed read incl. discovery: "
                     f"{out['ratio_correlate_over_fastest_read']:.2f}x wall, "
                     f"{out['ratio_correlate_over_fastest_cpu']:.2f}x CPU; whole process (vs {fastest_p}): "
                     f"{out['ratio_correlate_over_fastest_process']:.2f}x")
    if "correlate" in best and "locan" in best:
        out["ratio_locan_over_correlate_read"] = best["locan"]["seconds"] / best["correlate"]["seconds"]
        lines.append(f"locan / correlate: {out['ratio_locan_over_correlate_read']:.2f}x (timed read), "
                     f"{best['locan']['process_seconds'] / best['correlate']['process_seconds']:.2f}x (whole process)")
    lines.append(f"baseline process (python, pandas, pyarrow imported; no read): {base['process_seconds']:.2f} s, "
                 f"peak RSS {base['maxrss_mb']:.0f} MB")
    return {"text": "\n".join(lines), "json": out}


if __name__ == "__main__":
    raise SystemExit(main())
