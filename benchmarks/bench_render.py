"""Benchmark: histogram and Gaussian render of many localizations, correlate beside Picasso.

    python benchmarks/bench_render.py [--n 1e7] [--pixel 10] [--repeat 3] \
        [--peers peers/.venv/bin/python] [--json]

Both get the same localizations (saved once as .npy) on the same grid (4096 x 4096 pixels of
10 nm by default) and, for the Gaussian, the same cut-off (Picasso draws +-3 sigma; correlate's
``n_sigma=3``). Every measurement runs in its own process, the two tools alternating (paired
repeats), each process timing its render call in-process (wall and CPU seconds, compilation
excluded by a warm-up call) and reporting its peak RSS; the process's whole wall time (interpreter,
imports, loading the .npy, compiling, rendering) is measured from outside. correlate runs with
``NUMBA_NUM_THREADS=1`` and ``=2``; Picasso's kernels are single-threaded.

The memory reference, measured in the same run: a numpy copy of the coordinates into arrays
allocated and touched beforehand (sequential streaming) and a numpy gather from random pixels of
an image of the same size into a touched array (random access): the two rates a memory-bound
renderer can approach. The rate of filling freshly allocated arrays (page faults included) is
printed beside them: a renderer that returns a new image pays those faults once per pixel page. Peers venv: ``benchmarks/setup_peers.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import load_average, run_worker  # benchmarks/ is on sys.path: they run as scripts

CAMERA_PX_NM = 100.0  # Picasso works in camera pixels; any value works, the grid is the same


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(f, inner: int):
    best_wall, best_cpu, out = np.inf, np.inf, None
    for _ in range(inner):
        t0, c0 = time.perf_counter(), time.process_time()
        out = f()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def _worker_correlate(d: Path, method: str, field: float, pixel: float, inner: int) -> dict:
    import numba

    from correlate.render import gaussian_counts, grid_from_extent, histogram_counts

    x, y, s = (np.load(d / f"{k}.npy") for k in ("x", "y", "s"))
    grid = grid_from_extent(pixel, (0.0, field, 0.0, field))
    if method == "histogram":
        f = lambda a=x, b=y: histogram_counts(a, b, grid)[0]  # noqa: E731
        warm = lambda: histogram_counts(x[:100], y[:100], grid)  # noqa: E731
    else:
        f = lambda: gaussian_counts(x, y, s, s, grid, n_sigma=3.0)  # noqa: E731
        warm = lambda: gaussian_counts(x[:100], y[:100], s[:100], s[:100], grid, n_sigma=3.0)  # noqa: E731
    warm()
    wall, cpu, img = _timed(f, inner)
    np.save(d / f"correlate_{method}.npy", img.astype(np.float32))
    return {"wall_s": wall, "cpu_s": cpu, "threads": numba.get_num_threads(), "sum": float(img.sum())}


def _worker_picasso(d: Path, method: str, field: float, pixel: float, inner: int) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd
    from picasso import render as prender

    x, y, s = (np.load(d / f"{k}.npy") for k in ("x", "y", "s"))
    locs = pd.DataFrame({
        "x": (x / CAMERA_PX_NM).astype(np.float32), "y": (y / CAMERA_PX_NM).astype(np.float32),
        "lpx": (s / CAMERA_PX_NM).astype(np.float32), "lpy": (s / CAMERA_PX_NM).astype(np.float32),
    })
    side = field / CAMERA_PX_NM
    info = [{"Pixelsize": CAMERA_PX_NM, "Height": int(np.ceil(side)), "Width": int(np.ceil(side))}]
    blur = None if method == "histogram" else "gaussian"
    kw = dict(disp_px_size=pixel, viewport=((0.0, 0.0), (side, side)), blur_method=blur)
    prender.render(locs.iloc[:100], info, **kw)  # compile outside the timing
    wall, cpu, (n, img) = _timed(lambda: prender.render(locs, info, **kw), inner)
    np.save(d / f"picasso_{method}.npy", img)
    return {"wall_s": wall, "cpu_s": cpu, "threads": 1, "sum": float(img.sum())}


def _worker_memref(d: Path, field: float, pixel: float, inner: int) -> dict:
    x = np.load(d / "x.npy")
    y = np.load(d / "y.npy")
    n_px = int(np.ceil(field / pixel)) ** 2
    image = np.ones(n_px)
    idx = np.random.default_rng(1).integers(0, n_px, x.size)
    # destinations allocated and touched before the timing: a fresh allocation would time the
    # kernel's page faults (zeroing new pages), not the memory's streaming or random access rate
    cx, cy, gathered = np.ones_like(x), np.ones_like(y), np.ones(x.size)

    def copy():
        np.copyto(cx, x)
        np.copyto(cy, y)

    t_copy, _, _ = _timed(copy, max(inner, 3))
    t_rand, _, _ = _timed(lambda: np.take(image, idx, out=gathered), max(inner, 3))
    t_fault, _, _ = _timed(lambda: (np.empty_like(x).fill(0.0), np.empty_like(y).fill(0.0)), max(inner, 3))
    return {"copy_s": t_copy, "random_s": t_rand, "fresh_copy_s": t_fault, "image_mib": image.nbytes / 2**20}


def _worker(which: str, d: str, method: str, field: float, pixel: float, inner: int) -> None:
    d = Path(d)
    if which == "correlate":
        out = _worker_correlate(d, method, field, pixel, inner)
    elif which == "picasso":
        out = _worker_picasso(d, method, field, pixel, inner)
    else:
        out = _worker_memref(d, field, pixel, inner)
    out["maxrss_mb"] = _rss_mb()
    print(json.dumps(out))


def _run(python: str, which: str, d: Path, args, method: str = "-", threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    cmd = [python, __file__, "--worker", which, str(d), method, str(args.field), str(args.pixel), str(args.inner)]
    return run_worker(cmd, f"{which} {method}", env)


def _agreement(d: Path, method: str) -> str:
    a = np.load(d / f"correlate_{method}.npy").astype(np.float64)
    b = np.load(d / f"picasso_{method}.npy").astype(np.float64)
    if a.shape != b.shape:
        return f"shapes differ {a.shape} vs {b.shape}"
    return f"sums {a.sum():,.1f} / {b.sum():,.1f}; sum |diff| / sum = {np.abs(a - b).sum() / max(a.sum(), 1):.2e}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e7, help="number of localizations (default 1e7)")
    ap.add_argument("--pixel", type=float, default=10.0, help="render pixel size in nm (default 10)")
    ap.add_argument("--field", type=float, default=40_960.0, help="field of view in nm (default 40960: 4096^2 px)")
    ap.add_argument("--repeat", type=int, default=3, help="paired process repeats per measurement (default 3)")
    ap.add_argument("--inner", type=int, default=2, help="timed calls per process, the fastest kept (default 2)")
    default_peers = os.environ.get("CORRELATE_PEERS_PYTHON", str(Path(__file__).resolve().parents[1] / "peers/.venv/bin/python"))
    ap.add_argument("--peers", default=default_peers,
                    help="python of the peers venv with picassosr (benchmarks/setup_peers.sh; default "
                         "$CORRELATE_PEERS_PYTHON or peers/.venv/bin/python)")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        w = args.worker
        _worker(w[0], w[1], w[2], float(w[3]), float(w[4]), int(w[5]))
        return 0
    have_peers = Path(args.peers).exists()
    if not have_peers:
        print(f"Picasso NOT measured: no peers python at {args.peers} (benchmarks/setup_peers.sh, then --peers)")
    n = int(args.n)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        d = Path(tmp)
        # uniform positions; precisions 5-20 nm, the range of DNA-PAINT / dSTORM data
        for k, v in (("x", rng.uniform(0, args.field, n)), ("y", rng.uniform(0, args.field, n)),
                     ("s", rng.uniform(5.0, 20.0, n))):
            np.save(d / f"{k}.npy", v)
        load0 = load_average()
        mem = _run(sys.executable, "memref", d, args)
        results: dict[str, list[dict]] = {}
        for method in ("histogram", "gaussian"):
            for _ in range(args.repeat):
                for label, py, which, th in (("correlate_1", sys.executable, "correlate", 1),
                                             ("picasso", args.peers, "picasso", None),
                                             ("correlate_2", sys.executable, "correlate", 2)):
                    if which == "picasso" and not have_peers:
                        continue
                    results.setdefault(f"{method}/{label}", []).append(_run(py, which, d, args, method, th))
            agree = _agreement(d, method) if have_peers else "picasso not run"
            results[f"{method}/agreement"] = agree  # type: ignore[assignment]
        report = _report(results, mem, n, args, load0, have_peers)
    print(report["text"])
    if args.json:
        print(json.dumps(report["json"]))
    return 0


def _report(results, mem, n, args, load0, have_peers) -> dict:
    px = int(np.ceil(args.field / args.pixel))
    lines = [
        f"localizations: {n:,} on {px} x {px} pixels of {args.pixel:g} nm; CPUs {os.cpu_count()}; "
        f"load average before {load0}, after {load_average()}",
        f"memory reference: numpy copy of x, y into touched arrays {n / mem['copy_s'] / 1e6:,.0f} M loc/s "
        f"({32 * n / mem['copy_s'] / 1e9:.1f} GB/s read + write); random gather from a {mem['image_mib']:.0f} MiB "
        f"image {n / mem['random_s'] / 1e6:,.0f} M loc/s; filling fresh (page-faulting) x, y arrays "
        f"{n / mem['fresh_copy_s'] / 1e6:,.0f} M loc/s",
    ]
    out = {"benchmark": "render", "n": n, "pixels": [px, px], "pixel_nm": args.pixel, "cpus": os.cpu_count(),
           "load_before": load0, "load_after": load_average(), "copy_loc_per_s": n / mem["copy_s"],
           "random_loc_per_s": n / mem["random_s"],
           "fresh_fill_loc_per_s": n / mem["fresh_copy_s"]}
    for method in ("histogram", "gaussian"):
        lines.append(f"\n{method}" + (" (cut-off 3 sigma)" if method == "gaussian" else ""))
        best = {}
        for label in ("correlate_1", "correlate_2", "picasso"):
            rs = results.get(f"{method}/{label}")
            if not rs:
                continue
            wall = min(r["wall_s"] for r in rs)
            cpu = min(r["cpu_s"] for r in rs)
            proc = min(r["process_s"] for r in rs)
            best[label] = {"wall_s": wall, "cpu_s": cpu, "process_s": proc,
                           "median_wall_s": statistics.median(r["wall_s"] for r in rs),
                           "maxrss_mb": max(r["maxrss_mb"] for r in rs)}
            name = {"correlate_1": "correlate, 1 thread", "correlate_2": "correlate, 2 threads", "picasso": "Picasso"}[label]
            lines.append(
                f"  {name:22s} in-process {wall:7.3f} s wall ({n / wall / 1e6:6.1f} M loc/s, "
                f"{100 * (n / wall) / out['copy_loc_per_s']:.0f} % of copy, {100 * (n / wall) / out['random_loc_per_s']:.0f} % of "
                f"random), {cpu:7.3f} s CPU; whole process {proc:6.2f} s; peak RSS {best[label]['maxrss_mb']:6.0f} MB; "
                f"runs: " + ", ".join(f"{r['wall_s']:.3f}" for r in rs)
            )
        if "picasso" in best:
            p = best["picasso"]
            for label in ("correlate_1", "correlate_2"):
                c = best[label]
                lines.append(f"  Picasso / {label.replace('_', ' ')} thread(s): {p['wall_s'] / c['wall_s']:.2f}x in-process wall, "
                             f"{p['cpu_s'] / c['cpu_s']:.2f}x CPU, {p['process_s'] / c['process_s']:.2f}x whole process")
        c1, c2 = best["correlate_1"], best["correlate_2"]
        lines.append(f"  correlate 2 threads / 1 thread: {c1['wall_s'] / c2['wall_s']:.2f}x faster (in-process wall)")
        lines.append(f"  images: {results[f'{method}/agreement']}")
        out[method] = best | {"agreement": results[f"{method}/agreement"]}
    return {"text": "\n".join(lines), "json": out}


if __name__ == "__main__":
    raise SystemExit(main())
