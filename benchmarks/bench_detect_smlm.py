"""Benchmark of the persistent-emitter (fiducial) detector against scikit-learn DBSCAN.

Data (numpy, built here): 50 beads over 20 000 frames (on in 10-100 % of frames, 40 % bleaching
after 20-60 % of the run, 3-30 x the label photons), 150 nm uncorrected drift, and blinking
label clusters filling a 50 µm field up to ``--n`` localizations (default 1e7).

Each method runs in its own process (spawned, reading the same memory-mapped .npy files), so
wall time, CPU time and peak RSS are its own; the RSS with the table loaded is reported beside
it. DBSCAN (spatial only, x, y,
eps = the detector's grid cell, min_samples 10) keeps every point's neighbour list, which for a
bead with thousands of localizations within eps is quadratic: it runs on a random subset
(``--dbscan-n``, default 1e6: the first rows of the shuffled table), and the detector runs on
that same subset too, for the ratio.

    python benchmarks/bench_detect_smlm.py                 # 1e7 detector, 1e6 DBSCAN + detector
    python benchmarks/bench_detect_smlm.py --n 1000000 --dbscan-n 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FRAMES = 20_000
N_BEADS = 50
FIELD_NM = 50_000.0


def make_table(n: int, seed: int = 0) -> dict:
    """Columns x, y (nm), frame, photons, precision (nm), bead (-1 for labels) and the truth."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, N_FRAMES)[:, None]
    drift = 150.0 * (t * np.array([0.8, 0.6]) + 0.2 * np.sin(2 * np.pi * t + np.array([0.0, 1.0])))
    label_ph, label_sig = 1500.0, 10.0
    parts = {k: [] for k in ("x", "y", "frame", "photons", "precision", "bead")}
    truth = []
    for k in range(N_BEADS):
        p = rng.uniform(0.1, 1.0)
        end = int(rng.uniform(0.2, 0.6) * N_FRAMES) if rng.random() < 0.4 else N_FRAMES
        fr = np.flatnonzero(rng.random(end) < p)
        ph = label_ph * rng.uniform(3, 30)
        sig = label_sig * np.sqrt(label_ph / ph)
        xy0 = rng.uniform(1000, FIELD_NM - 1000, 2)
        xy = xy0 + drift[fr] + rng.normal(0, sig, (fr.size, 2))
        for key, v in (("x", xy[:, 0]), ("y", xy[:, 1]), ("frame", fr), ("photons", np.full(fr.size, ph)),
                       ("precision", np.full(fr.size, sig)), ("bead", np.full(fr.size, k))):
            parts[key].append(v)
        truth.append(xy0 + drift[fr].mean(0))
    n_lab = max(n - sum(a.size for a in parts["x"]), 0)
    # clusters of 1-8 molecules; events geometric (mean 6) of geometric length (mean 2)
    n_mol = n_lab // 12 + 1
    mol = rng.uniform(0, FIELD_NM, (n_mol // 4 + 1, 2))[rng.integers(0, n_mol // 4 + 1, n_mol)]
    mol += rng.normal(0, 25, mol.shape)
    m = rng.integers(0, n_mol, n_lab)
    fr = np.minimum(rng.integers(0, N_FRAMES, n_mol)[m] + rng.geometric(1 / 2.0, n_lab)
                    + rng.integers(0, 6, n_lab) * rng.integers(50, 3000, n_lab), N_FRAMES - 1)
    ph = label_ph * rng.lognormal(0, 0.5, n_lab)
    sig = label_sig * np.sqrt(label_ph / ph)
    xy = mol[m] + drift[fr] + rng.normal(0, 1, (n_lab, 2)) * sig[:, None]
    for key, v in (("x", xy[:, 0]), ("y", xy[:, 1]), ("frame", fr), ("photons", ph), ("precision", sig),
                   ("bead", np.full(n_lab, -1))):
        parts[key].append(v)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    order = rng.permutation(out["x"].size)
    out = {k: v[order] for k, v in out.items()}
    out["frame"] = out["frame"].astype(np.int64)
    out["truth"] = np.array(truth)
    return out


def _rss_mb() -> float:
    """Peak resident set of this process (MB): VmHWM, which starts afresh at exec (ru_maxrss
    would carry the parent's peak into a spawned child)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(method: str, path: str, subset: int, radius: float, q) -> None:
    import pandas as pd

    d = {k: np.load(os.path.join(path, f"{k}.npy"), mmap_mode="r")
         for k in ("x", "y", "frame", "photons", "precision", "truth")}
    n = d["x"].size if not subset else min(subset, d["x"].size)
    # the rows are in random order: the first n are a random subset (and touch only n rows' pages)
    cols = {k: np.array(d[k][:n]) for k in ("x", "y", "frame", "photons", "precision")}
    truth = np.array(d["truth"])
    del d
    base = _rss_mb()
    if method == "detector":
        from correlate.registration import detect_smlm_fiducials

        df = pd.DataFrame(cols)
        base = _rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        found = detect_smlm_fiducials(df)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(found[["x", "y"]].to_numpy()).query(truth)
        d2, _ = cKDTree(truth).query(found[["x", "y"]].to_numpy())
        res = {"n_found": len(found), "recall": float(np.mean(dist < 30)), "precision": float(np.mean(d2 < 30)),
               "radius_nm": float(found.attrs["estimated"]["radius_nm"]),
               "estimated": {k: v for k, v in found.attrs["estimated"].items()
                             if isinstance(v, (int, float, str, bool))}}
    else:
        from sklearn.cluster import DBSCAN

        xy = np.column_stack([cols["x"], cols["y"]])
        base = _rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        lab = DBSCAN(eps=radius, min_samples=10).fit_predict(xy)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        res = {"n_clusters": int(lab.max()) + 1}
    q.put({"method": method, "n": int(n), "wall_s": dt, "cpu_s": cpu, "rss_table_mb": base, "rss_peak_mb": _rss_mb(), **res})


def run(method: str, path: str, subset: int = 0, radius: float = 40.0) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(method, path, subset, radius, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=1e7, help="localizations (default 1e7)")
    ap.add_argument("--dbscan-n", type=float, default=1e6, help="DBSCAN subset size (default 1e6)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    n, n_db = int(a.n), int(a.dbscan_n)
    print(f"machine: {os.cpu_count()} cores (shared with other work; timings are indicative)")
    t0 = time.perf_counter()
    data = make_table(n)
    print(f"table: {data['x'].size} localizations, {N_BEADS} beads, {N_FRAMES} frames "
          f"(built in {time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = tmp
        for k, v in data.items():
            np.save(Path(tmp) / f"{k}.npy", v)
        del data
        results = [run("detector", path)]
        r = results[0]
        print(f"detector  n={r['n']:>9}: {r['wall_s']:7.2f} s ({r['cpu_s']:.2f} s CPU), peak RSS {r['rss_peak_mb']:7.0f} MB "
              f"(table {r['rss_table_mb']:.0f} MB); found {r['n_found']}, recall {r['recall']:.3f}, "
              f"precision {r['precision']:.3f}")
        sub = min(n_db, n)
        rd = run("detector", path, sub) if sub < n else r
        rb = run("dbscan", path, sub, radius=r["radius_nm"])
        results += [rd, rb] if sub < n else [rb]
        print(f"detector  n={rd['n']:>9}: {rd['wall_s']:7.2f} s ({rd['cpu_s']:.2f} s CPU), peak RSS {rd['rss_peak_mb']:7.0f} MB "
              f"(table {rd['rss_table_mb']:.0f} MB); recall {rd['recall']:.3f}, precision {rd['precision']:.3f}")
        print(f"DBSCAN    n={rb['n']:>9}: {rb['wall_s']:7.2f} s ({rb['cpu_s']:.2f} s CPU), peak RSS {rb['rss_peak_mb']:7.0f} MB "
              f"(table {rb['rss_table_mb']:.0f} MB); eps {r['radius_nm']:.1f} nm, min_samples 10, "
              f"{rb['n_clusters']} clusters (spatial only: no persistence)")
        extra_b = rb["rss_peak_mb"] - rb["rss_table_mb"]
        extra_d = max(rd["rss_peak_mb"] - rd["rss_table_mb"], 1.0)
        print(f"ratio DBSCAN / detector on n={rb['n']}: wall {rb['wall_s'] / rd['wall_s']:.1f}x, "
              f"CPU {rb['cpu_s'] / rd['cpu_s']:.1f}x, "
              f"peak RSS above the table {extra_b / extra_d:.1f}x")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
