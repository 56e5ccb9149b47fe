"""Benchmark: histogram render of many localizations against numpy.histogram2d, in the same run.

    python benchmarks/bench_render.py [--n 10000000] [--pixel 10] [--repeat 3]

Prints the time of each and their ratio (numpy / correlate), and checks both give the same
counts on a grid of whole pixels (where numpy.histogram2d's closed last bin equals ours).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def _best(f, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e7, help="number of localizations (default 1e7)")
    ap.add_argument("--pixel", type=float, default=10.0, help="pixel size in nm (default 10)")
    ap.add_argument("--field", type=float, default=40_000.0, help="field of view in nm (default 40000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)

    from correlate.render import grid_from_extent, histogram_counts, render_gaussian, render_histogram

    n = int(args.n)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, args.field, n)
    y = rng.uniform(0, args.field, n)
    df = pd.DataFrame({"x": x, "y": y, "precision": rng.uniform(5, 20, n)})
    extent = (0.0, args.field, 0.0, args.field)
    grid = grid_from_extent(args.pixel, extent)

    # compile / load the numba kernel and import dask/xarray outside the timings
    histogram_counts(x[:10], y[:10], grid)
    render_histogram(df.iloc[:10], like=grid)
    t_kernel, (counts, _) = _best(lambda: histogram_counts(x, y, grid), args.repeat)
    t_render, img = _best(lambda: render_histogram(df, like=grid), args.repeat)

    ex, ey = grid.edges("x"), grid.edges("y")
    t_np, (ref, _, _) = _best(lambda: np.histogram2d(y, x, bins=[ey, ex]), args.repeat)
    same = np.array_equal(ref, counts) and float(img.sum()) == n

    m = min(n, 1_000_000)
    render_gaussian(df.iloc[:10], like=grid)
    t_gauss, g = _best(lambda: render_gaussian(df.iloc[:m], like=grid), 1)

    print(f"localizations:               {n:,} on a {grid.shape[1]} x {grid.shape[0]} grid ({args.pixel:g} nm pixels)")
    print(f"correlate histogram kernel:  {t_kernel:8.3f} s")
    print(f"correlate render_histogram:  {t_render:8.3f} s  (DataFrame -> Image element)")
    print(f"numpy.histogram2d:           {t_np:8.3f} s")
    print(f"ratio numpy / correlate:     {t_np / t_kernel:8.1f} x (kernel), {t_np / t_render:.1f} x (element)")
    print(f"identical counts:            {same}")
    print(f"render_gaussian ({m:,} locs): {t_gauss:8.3f} s, sum {float(g.sum()):,.1f}")
    if args.json:
        import json

        print(json.dumps({
            "benchmark": "render", "n": n, "pixel_nm": args.pixel, "grid": list(grid.shape),
            "histogram_kernel_s": t_kernel, "render_histogram_s": t_render, "numpy_histogram2d_s": t_np,
            "ratio_numpy_over_kernel": t_np / t_kernel, "identical_counts": bool(same),
            "gaussian_n": m, "render_gaussian_s": t_gauss,
        }))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
