"""Benchmark: CBC on 1e5 points (correlate, vectorised) against locan's CBC on the same data.

Run: ``python benchmarks/bench_analysis.py [n_points]`` (default 100000 per colour). Prints the
times, their ratio and the largest difference between correlate's ``weighting="locan"`` mode and
locan's values. Also times segmentation of a simulated 2 nm/px EM field and the per-particle
pipeline when the simulator is available.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np


def clustered(rng, n, field=50000.0, n_centres=2000, spread=30.0, frac_uniform=0.3):
    c = rng.uniform(0, field, (n_centres, 2))
    k = int(n * (1 - frac_uniform))
    a = c[rng.integers(0, n_centres, k)] + rng.normal(0, spread, (k, 2))
    return np.concatenate([a, rng.uniform(0, field, (n - k, 2))])


def main(n: int = 100_000) -> int:
    from correlate.analysis import cbc

    rng = np.random.default_rng(0)
    a = clustered(rng, n)
    b = clustered(rng, n)
    radius, steps = 100.0, 10
    cbc(a[:1000], b[:1000], radius=radius, n_steps=steps)  # warm-up (imports)
    t0 = time.perf_counter()
    ours = cbc(a, b, radius=radius, n_steps=steps, weighting="locan")
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    mal = cbc(a, b, radius=radius, n_steps=steps)
    t_mal = time.perf_counter() - t0
    print(f"CBC {n} x {n} points, R = {radius} nm, {steps} steps")
    print(f"  correlate (locan weighting):    {t_ours:8.3f} s")
    print(f"  correlate (Malkusch weighting): {t_mal:8.3f} s   mean {np.nanmean(mal):.3f}")
    try:
        from locan.analysis.cbc import _coordinate_based_colocalization as locan_cbc
    except ImportError:
        print("  locan not installed: no comparison")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = locan_cbc(a, b, radius=radius, n_steps=steps)
        t_loc = time.perf_counter() - t0
    ok = np.isfinite(ref)
    same_nan = bool(np.array_equal(np.isnan(ref), np.isnan(ours)))
    diff = float(np.max(np.abs(ref[ok] - ours[ok]))) if ok.any() else 0.0
    print(f"  locan:                          {t_loc:8.3f} s")
    print(f"  speed-up: {t_loc / t_ours:.1f}x; max |difference| {diff:.2e}; NaN pattern identical: {same_nan}")

    try:
        from correlate.analysis import segment_particles
        from correlate.datasets import SampleConfig, simulate_sample
    except ImportError:
        return 0
    s = simulate_sample(SampleConfig(seed=0, make_sim=False, make_afm=False, make_smlm=False))
    img = s.em.compute()
    t0 = time.perf_counter()
    seg = segment_particles(img, psf_sigma_nm=2.4)
    df = seg.measure()
    t_seg = time.perf_counter() - t0
    print(f"segmentation + morphology of a {img.shape[1]} x {img.shape[0]} px EM field: {t_seg:.2f} s "
          f"({len(df)} particles, {len(seg.fiducials)} fiducials)")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
