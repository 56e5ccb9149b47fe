"""Benchmark: image fiducial detection on a 16384 x 16384 float32 EM micrograph (~40 gold beads
among organic particles), beside scikit-image's ``blob_log``.

Run: ``python benchmarks/bench_detect_image.py [size] [--blob-log-bin N]``. The image is written
once to a temporary ``.npy`` (strip by strip, never whole in memory); each detector then runs in
its own fresh process that loads it, so wall time and peak RSS (``resource.getrusage``) belong to
that detector alone. ``blob_log`` builds a float64 stack of every scale of the image (10 scales of
16384^2 would be ~21 GiB), so it runs on an N x N binned copy (default 4) and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PX_NM = 2.0


def make_image(path: str, n: int, seed: int = 0) -> dict:
    """Write an n x n float32 EM micrograph to ``path`` (.npy); return the truth (nm)."""
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(seed)
    field = n * PX_NM
    n_gold, n_part = 40, int(400 * (n / 16384) ** 2) + 20
    d_gold = 50.0
    centres = rng.uniform(300, field - 300, (n_gold + n_part, 2))
    diam = np.concatenate([rng.normal(d_gold, 2.5, n_gold), np.exp(rng.uniform(np.log(40), np.log(250), n_part))])
    mu = np.concatenate([np.full(n_gold, 0.05), rng.uniform(0.002, 0.006, n_part)])
    img = open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n))
    strip = 1024
    for r0 in range(0, n, strip):
        r1 = min(n, r0 + strip)
        yy = (np.arange(r0, r1) * PX_NM)[:, None]
        xx = np.arange(n) * PX_NM
        block = 200.0 * (1.0 + 0.15 * (xx[None] / field) - 0.1 * (yy / field)).astype(np.float32)
        od = np.zeros((r1 - r0, n), np.float32)
        near = np.nonzero((centres[:, 1] + diam / 2 >= r0 * PX_NM) & (centres[:, 1] - diam / 2 <= r1 * PX_NM))[0]
        for i in near:  # ~20 objects per strip
            cx, cy, r = centres[i, 0], centres[i, 1], diam[i] / 2
            j0, j1 = int(max(0, (cx - r) / PX_NM - 1)), int(min(n, (cx + r) / PX_NM + 2))
            d2 = r * r - (xx[None, j0:j1] - cx) ** 2 - (yy - cy) ** 2
            od[:, j0:j1] += (mu[i] * 2.0 * np.sqrt(np.clip(d2, 0, None))).astype(np.float32)
        block *= np.exp(-od)
        block += np.sqrt(block) * rng.standard_normal(block.shape, dtype=np.float32)
        img[r0:r1] = block
    img.flush()
    del img
    return {"gold_xy_nm": centres[:n_gold].tolist(), "d_gold_nm": d_gold, "n_particles": n_part}


def _child(kind: str, path: str, binning: int) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")
    data = np.load(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    c0 = time.process_time()
    if kind == "correlate":
        import xarray as xr

        from correlate.registration import detect_beads

        n = data.shape[0]
        img = xr.DataArray(data, dims=("y", "x"), coords={"y": PX_NM * np.arange(n), "x": PX_NM * np.arange(n)},
                           attrs={"modality": "em"}, name="em")
        df = detect_beads(img)
        pos = df[["x", "y"]].to_numpy().tolist()
        extra = {k: v for k, v in df.attrs["estimated"].items() if isinstance(v, (int, float, str)) or v is None}
    else:
        from skimage.feature import blob_log

        h = (data.shape[0] // binning) * binning
        small = data[:h, :h].reshape(h // binning, binning, h // binning, binning).mean(axis=(1, 3))
        del data
        px = PX_NM * binning
        inv = small.max() - small  # dark gold -> bright blobs
        inv /= inv.max()
        blobs = blob_log(inv, min_sigma=1.0, max_sigma=1000.0 / (2 * np.sqrt(2)) / px, num_sigma=10, threshold=0.1)
        pos = (blobs[:, [1, 0]] * px + 0.5 * (binning - 1) * PX_NM).tolist()
        extra = {"binning": binning, "n_blobs": len(blobs)}
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak, "rss_after_load_mib": base, "pos": pos,
                      "extra": extra}))


def _run(kind: str, path: str, binning: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, path, str(binning)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _score(pos, truth, tol=15.0) -> tuple[int, int]:
    from scipy.spatial import cKDTree

    pos = np.asarray(pos, float).reshape(-1, 2)
    if len(pos) == 0:
        return 0, 0
    d, _ = cKDTree(pos).query(np.asarray(truth))
    return int((d < tol).sum()), len(pos)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        _child(argv[1], argv[2], int(argv[3]))
        return 0
    n = int(argv[0]) if argv and not argv[0].startswith("--") else 16384
    binning = int(argv[argv.index("--blob-log-bin") + 1]) if "--blob-log-bin" in argv else 4
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "em.npy")
        t0 = time.perf_counter()
        truth = make_image(path, n)
        print(f"EM {n} x {n} float32 at {PX_NM} nm/px ({n * n * 4 / 2**30:.2f} GiB), 40 gold of "
              f"{truth['d_gold_nm']:.0f} nm among {truth['n_particles']} particles; made in {time.perf_counter() - t0:.1f} s")
        ours = _run("correlate", path, binning)
        ref = _run("blob_log", path, binning)
    for r in (ours, ref):
        hit, ndet = _score(r["pos"], truth["gold_xy_nm"])
        label = "correlate detect_beads (full image)" if r["kind"] == "correlate" else f"skimage blob_log ({binning}x binned)"
        print(f"  {label:40s} {r['wall_s']:8.1f} s wall, {r['cpu_s']:7.1f} s CPU  peak RSS {r['peak_rss_mib']:8.0f} MiB "
              f"(after loading the image {r['rss_after_load_mib']:.0f} MiB)  gold found {hit}/40 of {ndet} blobs")
    print(f"  estimated: {ours['extra']}")
    print(f"  ratio blob_log / correlate: wall {ref['wall_s'] / ours['wall_s']:.2f}, CPU {ref['cpu_s'] / ours['cpu_s']:.2f}, "
          f"peak RSS ratio: {ref['peak_rss_mib'] / ours['peak_rss_mib']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
