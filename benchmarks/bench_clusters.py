"""Benchmark of particles from SMLM alone: correlate's clustering against scikit-learn and locan.

Data: ~1e6 simulated localizations (default) of labelled spheres, 40-160 nm in diameter, on a
40 x 40 um field (about 2500 particles, 0.8 um apart on a jittered grid), antibodies on a shell
10 nm outside the surface (Poisson, 30 on a particle of 80 nm), geometric blinking (4 events of
3 frames on average), 10 nm precision, 5 background localizations per um^2.

Timed, each in a fresh forked child (its peak RSS above what it started with is reported):

1. correlate ``cluster_localizations`` whole: eps and min_samples estimated from the data,
   clustering, blink grouping, the size fit;
2. correlate's clustering step alone (``analysis._clusters_dbscan.dbscan``) with the estimated
   eps / min_samples, and the eps estimation alone (``estimate_eps``); the rest of the whole is
   blink grouping, emitter sites and the size fit;
3. scikit-learn ``DBSCAN(eps, min_samples).fit`` called directly with the same two;
4. locan ``cluster_dbscan`` with the same two (on the first ``--locan-n`` localizations,
   1e5 by default: on 1e6 it takes minutes), beside scikit-learn on the same subset.

Agreement: the adjusted Rand index of each labelling against scikit-learn's; accuracy of the
whole against the truth (recall of particles, median size error).

    python benchmarks/bench_clusters.py                    # 1e6 localizations, locan on 1e5
    python benchmarks/bench_clusters.py --n 200000 --locan-n 200000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

import numpy as np
import pandas as pd


def simulate(n_target: int, seed: int = 0, precision_nm: float = 10.0, linker_nm: float = 10.0):
    """Localizations (x, y, frame, precision; nm) of labelled spheres, their true centres and
    diameters; the field grows with ``n_target`` at a fixed density."""
    rng = np.random.default_rng(seed)
    per_particle = 30 * 1.75 * 0.9 * 4 * 3  # molecules (d^2 mean over 40-160 nm) x detected x events x frames
    n_part = max(1, int(round(n_target / per_particle)))
    side = int(np.ceil(np.sqrt(n_part)))
    spacing = 800.0
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_part]
    centres = (g + 0.5) * spacing + rng.uniform(-150, 150, (n_part, 2))
    diam = rng.uniform(40, 160, n_part)
    n_mol = rng.poisson(30 * (diam / 80) ** 2)
    pid = np.repeat(np.arange(n_part), n_mol)
    v = rng.normal(size=(len(pid), 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    mol = centres[pid] + (diam[pid, None] / 2 + linker_nm) * v[:, :2]
    detected = rng.random(len(pid)) < 0.9
    n_ev = np.where(detected, rng.geometric(0.25, len(pid)), 0)
    ev_mol = np.repeat(np.arange(len(pid)), n_ev)
    ev_len = rng.geometric(1 / 3, len(ev_mol))
    ev_start = rng.integers(0, 20_000, len(ev_mol))
    loc_ev = np.repeat(np.arange(len(ev_mol)), ev_len)
    first = np.cumsum(ev_len) - ev_len
    frame = ev_start[loc_ev] + (np.arange(len(loc_ev)) - first[loc_ev])
    xy = mol[ev_mol[loc_ev]] + rng.normal(0, precision_nm, (len(loc_ev), 2))
    field = side * spacing
    n_bg = rng.poisson(5.0 * field**2 / 1e6)
    xy = np.vstack([xy, rng.uniform(0, field, (n_bg, 2))])
    frame = np.concatenate([frame, rng.integers(0, 20_000, n_bg)])
    order = rng.permutation(len(xy))
    df = pd.DataFrame({"x": xy[order, 0], "y": xy[order, 1], "frame": frame[order].astype(np.int64),
                       "precision": np.full(len(xy), precision_nm)})
    return df, centres, diam, field


def _rss_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _child(conn, fn):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS of this process to its current RSS
    except OSError:
        pass
    start = _rss_kb("VmRSS:")
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    conn.send({"time_s": dt, "peak_rss_mb": (_rss_kb("VmHWM:") - start) / 1024, "out": out})
    conn.close()


def timed(fn):
    """Run ``fn()`` in a forked child: (time s, peak RSS above the start MB, its result)."""
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(b, fn))
    p.start()
    res = a.recv()
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="localizations (approximate)")
    ap.add_argument("--locan-n", type=int, default=100_000, help="localizations locan clusters (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()

    from scipy.spatial import cKDTree
    from sklearn.metrics import adjusted_rand_score

    from correlate.analysis import cluster_localizations, estimate_eps
    from correlate.analysis._clusters_dbscan import dbscan

    df, centres, diam, field = simulate(args.n, args.seed)
    xy = df[["x", "y"]].to_numpy()
    n = len(df)
    print(f"data: {n} localizations, {len(centres)} particles (40-160 nm), {field / 1000:.1f} um field, "
          f"{n / (field / 1000) ** 2:.0f} localizations/um^2; {os.cpu_count()} cores")
    dbscan(xy[:2000], 30.0, 5)  # compile / load the numba kernels outside the timings
    cluster_localizations(df.iloc[:20000], eps_nm=40.0, min_samples=5)

    def whole():
        r = cluster_localizations(df, label_offset_nm=10.0)
        return {"labels": r.labels, "table": r.table[["x", "y", "equivalent_diameter_nm"]].to_numpy(),
                "eps": r.parameters["eps_nm"], "min_samples": r.parameters["min_samples"]}

    w = timed(whole)
    eps, ms = w["out"]["eps"], w["out"]["min_samples"]
    print(f"estimated: eps {eps:.1f} nm, min_samples {ms}")
    step = timed(lambda: dbscan(xy, eps, ms)[0])
    est = timed(lambda: estimate_eps(xy)["eps_nm"])

    def sk(pts):
        from sklearn.cluster import DBSCAN

        return lambda: DBSCAN(eps=eps, min_samples=ms).fit(pts).labels_

    s = timed(sk(xy))
    rows = [("correlate cluster_localizations (whole)", n, w), ("  of which: eps estimation (estimate_eps)", n, est),
            ("  of which: clustering step (grid DBSCAN)", n, step), ("scikit-learn DBSCAN.fit", n, s)]
    ari = {"correlate whole": adjusted_rand_score(s["out"], w["out"]["labels"]),
           "correlate step": adjusted_rand_score(s["out"], step["out"])}
    if args.locan_n:
        m = min(args.locan_n, n)
        sub = df.iloc[:m].reset_index(drop=True)

        def loc():
            import warnings

            import locan

            warnings.simplefilter("ignore")
            ld = locan.LocData.from_dataframe(sub[["x", "y", "frame"]].rename(
                columns={"x": "position_x", "y": "position_y"}))
            noise, coll = locan.cluster_dbscan(ld, eps=eps, min_samples=ms)
            lab = np.full(m, -1, np.int64)
            for k, ref in enumerate(coll.references):  # locan gives one LocData per cluster
                lab[np.asarray(ref.indices, np.int64)] = k
            return lab

        lo = timed(loc)
        s_sub = timed(sk(sub[["x", "y"]].to_numpy()))
        st_sub = timed(lambda: dbscan(sub[["x", "y"]].to_numpy(), eps, ms)[0])
        rows += [(f"locan cluster_dbscan", m, lo), ("scikit-learn DBSCAN.fit", m, s_sub),
                 ("correlate clustering step (grid DBSCAN)", m, st_sub)]
        ari["locan (subset)"] = adjusted_rand_score(s_sub["out"], lo["out"])
        ari["correlate step (subset)"] = adjusted_rand_score(s_sub["out"], st_sub["out"])
    print(f"\n{'method':44s} {'n':>9s} {'time s':>9s} {'x sklearn':>10s} {'peak RSS MB':>12s}")
    for name, size, r in rows:
        ref = s if size == n else s_sub
        print(f"{name:44s} {size:9d} {r['time_s']:9.2f} {r['time_s'] / ref['time_s']:10.2f} {r['peak_rss_mb']:12.0f}")
    print("\nadjusted Rand index against scikit-learn: " + ", ".join(f"{k} {v:.4f}" for k, v in ari.items()))
    tab = w["out"]["table"]
    d, j = cKDTree(tab[:, :2]).query(centres, distance_upper_bound=40.0)
    found = np.isfinite(d)
    err = tab[j[found], 2] - diam[found]
    print(f"accuracy of the whole: {found.mean():.3f} of {len(centres)} particles found, {len(tab)} clusters, "
          f"size error median {np.median(err):+.2f} nm, median |error| {np.median(np.abs(err)):.2f} nm")
    if args.json:
        out = {"n": n, "eps_nm": eps, "min_samples": ms, "ari": ari, "recall": float(found.mean()),
               "size_error_median_nm": float(np.median(err)),
               "rows": [{"method": a, "n": b, "time_s": r["time_s"], "peak_rss_mb": r["peak_rss_mb"]} for a, b, r in rows]}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
