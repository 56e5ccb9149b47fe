"""Run every benchmark, each beside its peer in the same run, and print their reports.

    .venv/bin/python benchmarks/run_all.py            # full sizes (several minutes; 1e7-row import)
    .venv/bin/python benchmarks/run_all.py --quick    # smaller sizes (about a minute)

Each benchmark prints its own timings, the ratio against the peer measured in the same run
(pyarrow/pandas and locan for import, Picasso for rendering: ``benchmarks/setup_peers.sh`` makes
its venv) and peak memory. The benchmarks that report JSON (``--json``) are also collected into
``benchmarks/results/summary.json`` and a Markdown table ``benchmarks/results/summary.md`` that the
docs can include (``--out`` elsewhere). Timings on shared machines are noisy: compare ratios, not
absolute seconds; the load average is recorded beside every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script -> (full-size arguments, quick arguments, reports one JSON line with --json)
BENCHMARKS: dict[str, tuple[list[str], list[str], bool]] = {
    "bench_render.py": ([], ["--n", "1000000", "--repeat", "1"], True),
    "bench_import_smlm.py": (["--repeat", "2"], ["--rows", "1000000"], True),
    "bench_analysis.py": ([], ["20000"], False),
    "bench_smlm.py": ([], ["--locan-n", "20000"], False),
    "bench_clusters.py": ([], ["--n", "100000", "--locan-n", "20000"], False),
    "bench_batch.py": ([], ["--samples", "4"], False),
}


def _run(cmd: list[str]) -> tuple[int, dict | None]:
    """Run one benchmark, echoing its output; return its exit code and its JSON line if any."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    found = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{") and line.rstrip().endswith("}"):
            try:
                found = json.loads(line)
                continue
            except ValueError:
                pass
        print(line, end="", flush=True)
    return proc.wait(), found


def _ratio(v) -> str:
    return f"{v:.2f}x" if isinstance(v, (int, float)) else "n/a"


def markdown(results: dict[str, dict]) -> str:
    """The summary table of the collected JSON reports."""
    rows = ["| benchmark | size | correlate | peer | ratio | load |", "|---|---|---|---|---|---|"]
    r = results.get("bench_render.py")
    if r:
        size = f"{r['n']:,} locs, {r['pixels'][0]}x{r['pixels'][1]} px"
        for m in ("histogram", "gaussian"):
            d = r.get(m, {})
            pic = d.get("picasso", {}).get("wall_s")
            for label, name in (("correlate_1", "1 thread"), ("correlate_2", "2 threads")):
                c = d.get(label, {}).get("wall_s")
                if c is None:
                    continue
                peer = f"Picasso {pic:.3f} s" if pic else "Picasso not run"
                rows.append(f"| render {m} ({name}) | {size} | {c:.3f} s ({r['n'] / c / 1e6:.0f} M loc/s) | {peer} | "
                            f"{_ratio(pic / c if pic else None)} faster | {r['load_before']} |")
        rows.append(f"| memory reference | {size} | copy {r['copy_loc_per_s'] / 1e6:.0f} M loc/s, random "
                    f"{r['random_loc_per_s'] / 1e6:.0f} M loc/s | | | {r['load_before']} |")
    r = results.get("bench_import_smlm.py")
    if r:
        size = f"{r['rows']:,} rows, {r['file_mb']:.0f} MB"
        c = r["readers"].get("correlate", {}).get("seconds")
        for peer in ("pyarrow", "pandas_pyarrow", "pandas_c", "locan"):
            p = r["readers"].get(peer, {}).get("seconds")
            if c and p:
                rows.append(f"| import ThunderSTORM CSV | {size} | {c:.2f} s | {peer} {p:.2f} s | "
                            f"correlate takes {_ratio(c / p)} | {r['load_before']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder of summary.json / summary.md")
    ap.add_argument("only", nargs="*", help="run only these scripts (e.g. bench_render.py)")
    args = ap.parse_args(argv)
    failed = []
    results: dict[str, dict] = {}
    for script, (full, quick, has_json) in BENCHMARKS.items():
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full), *(["--json"] if has_json else [])]
        print(f"\n=== {script} {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        rc, found = _run(cmd)
        print(f"=== {script}: exit {rc}, {time.perf_counter() - t0:.1f} s wall", flush=True)
        if found is not None:
            results[script] = found
        if rc:
            failed.append(script)
    if results:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(results, indent=1))
        (args.out / "summary.md").write_text(markdown(results))
        print(f"\nsummary: {args.out / 'summary.md'}\n\n{markdown(results)}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
