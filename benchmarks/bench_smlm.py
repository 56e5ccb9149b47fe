"""Benchmark of correlate.smlm against peers: NeNA vs locan, RCC drift vs Picasso.

Data: the correlate simulator at ~1e6 localizations (20 µm field, 1500 particles x 60 antibodies,
20 000 frames, no fiducials, drift 60 nm linear + 20 nm oscillation), so accuracy is checked
against the true drift and the simulated precision as well as speed.

    python benchmarks/bench_smlm.py                       # correlate + locan (1e5 subset)
    python benchmarks/bench_smlm.py --locan-n 1000000     # locan on the full set (~90 s or more)
    python benchmarks/bench_smlm.py --picasso-python /path/to/venv/bin/python   # + Picasso RCC

Picasso (picassosr) pulls in PyQt6 and pins; install it in a throwaway venv
(``python -m venv /tmp/pic && /tmp/pic/bin/pip install picassosr``) and pass its interpreter:
it runs in a subprocess on the same localizations (written to a temporary .npz).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PICASSO_SCRIPT = r"""
import json, sys, time, os
import numpy as np, pandas as pd
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from picasso import postprocess
d = np.load(sys.argv[1])
px = float(d["pixel"])
locs = pd.DataFrame({"frame": d["frame"].astype(np.uint32), "x": (d["x"] / px).astype(np.float32),
                     "y": (d["y"] / px).astype(np.float32), "photons": d["photons"].astype(np.float32),
                     "sx": np.float32(1.0), "sy": np.float32(1.0), "bg": np.float32(30.0),
                     "lpx": (d["precision"] / px).astype(np.float32), "lpy": (d["precision"] / px).astype(np.float32)})
info = [{"Frames": int(d["n_frames"]), "Width": int(d["width_px"]), "Height": int(d["height_px"]),
         "Pixelsize": px}]
seg = int(sys.argv[2])
t = time.perf_counter()
drift, _ = postprocess.undrift(locs, info, seg, display=False, segmentation_callback=lambda i: None,
                               rcc_callback=lambda i: None)
dt = time.perf_counter() - t
np.save(sys.argv[3], np.column_stack([drift["x"].to_numpy() * px, drift["y"].to_numpy() * px]))
print(json.dumps({"time_s": dt}))
"""


def _rms(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def _timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--locan-n", type=int, default=100_000,
                    help="localizations given to locan's NeNA (a leading block of frames; default 1e5)")
    ap.add_argument("--no-locan", action="store_true")
    ap.add_argument("--picasso-python", default=None, help="python of a venv with picassosr installed")
    ap.add_argument("--bins", type=int, default=20, help="RCC time bins (both tools)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from correlate.datasets import SampleConfig, simulate_sample
    from correlate.smlm import drift_rcc, merge_blinks, nena

    cfg = SampleConfig(seed=args.seed, field_nm=20000, n_particles=1500, antibody_per_particle=60, n_frames=20000,
                       n_fiducials=0, make_em=False, make_sim=False, make_afm=False,
                       drift={"linear_nm": 60.0, "oscillation_nm": 20.0})
    s, t_sim = _timed(simulate_sample, cfg)
    df = s.smlm["antibody"]
    truth = s.truth.drift[["dx", "dy"]].to_numpy(float)
    n = len(df)
    mean_prec = float(df["precision"].mean())
    print(f"data: {n:,} localizations, {cfg.n_frames} frames, simulated in {t_sim:.1f} s; "
          f"mean precision {mean_prec:.2f} nm")
    results: dict = {"n_localizations": n}

    # ---------------------------------------------------------------- NeNA
    r, t_nena = _timed(nena, df, exclude_fiducials=False)
    print(f"\nNeNA correlate  : {t_nena:7.2f} s on {n:,} locs -> sigma {r.precision_nm:.2f} nm "
          f"({100 * (r.precision_nm / mean_prec - 1):+.1f} % vs mean precision)")
    results["nena_correlate"] = {"n": n, "time_s": t_nena, "sigma_nm": r.precision_nm}
    if not args.no_locan:
        try:
            import locan

            k = min(args.locan_n, n)
            last = int(df["frame"].to_numpy()[k - 1])
            sub = df[df["frame"] <= last]
            r_sub, t_sub = _timed(nena, sub, exclude_fiducials=False)
            ld = locan.LocData.from_dataframe(
                sub[["x", "y", "frame"]].rename(columns={"x": "position_x", "y": "position_y"}))
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # locan's progress bar
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                lp = locan.LocalizationPrecision(radius=50).compute(ld)
                lp.fit_distributions()
                t_locan = time.perf_counter() - t
            # locan fits the distance distribution with sigma = sigma_loc * sqrt(2)
            sig_locan = float(lp.distribution_statistics.parameter_dict()["position_distance_sigma"]) / np.sqrt(2)
            print(f"NeNA on {len(sub):,} locs / {last + 1} frames: correlate {t_sub:.2f} s (sigma {r_sub.precision_nm:.2f}"
                  f" nm), locan {t_locan:.1f} s (sigma {sig_locan:.2f} nm) -> locan/correlate = {t_locan / t_sub:.0f}x")
            if len(sub) < n:
                per_frame = t_locan / (last + 1)
                print(f"  (locan per frame {1e3 * per_frame:.1f} ms; at {cfg.n_frames} frames that is "
                      f"~{per_frame * cfg.n_frames:.0f} s vs correlate {t_nena:.1f} s on the full set; "
                      "locan was run on the subset only, to keep the benchmark short)")
            results["nena_locan"] = {"n": len(sub), "frames": last + 1, "time_s": t_locan, "sigma_nm": sig_locan,
                                     "correlate_time_s_same_subset": t_sub}
        except ImportError:
            print("locan not installed: NeNA without a peer")

    # ---------------------------------------------------------------- RCC drift
    d, t_rcc = _timed(drift_rcc, df, n_bins=args.bins)
    err = _rms(d.values, truth[d.frames])
    print(f"\nRCC correlate   : {t_rcc:7.2f} s, {d.info['n_bins']} bins, pixel {d.info['pixel_size_nm']:.1f} nm, "
          f"RMS error vs truth {err:.2f} nm")
    results["rcc_correlate"] = {"time_s": t_rcc, "rms_error_nm": err, "bins": d.info["n_bins"]}
    if args.picasso_python:
        px = float(cfg.camera_pixel_nm)
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "locs.npz"
            x = df["x"].to_numpy() - df["x"].min() + 5 * px
            y = df["y"].to_numpy() - df["y"].min() + 5 * px
            np.savez(npz, x=x, y=y, frame=df["frame"].to_numpy(), photons=df["photons"].to_numpy(),
                     precision=df["precision"].to_numpy(), pixel=px, n_frames=cfg.n_frames,
                     width_px=int(np.ceil(x.max() / px)) + 5, height_px=int(np.ceil(y.max() / px)) + 5)
            script = Path(tmp) / "pic.py"
            script.write_text(PICASSO_SCRIPT)
            outp = Path(tmp) / "drift.npy"
            seg = int(np.ceil(cfg.n_frames / args.bins))
            t = time.perf_counter()
            proc = subprocess.run([args.picasso_python, str(script), str(npz), str(seg), str(outp)],
                                  capture_output=True, text=True, check=False, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
            t_wall = time.perf_counter() - t
            if proc.returncode != 0:
                print("Picasso failed:", proc.stderr[-2000:])
            else:
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                pd_ = np.load(outp)
                err_p = _rms(pd_, truth[: len(pd_)])
                print(f"RCC Picasso     : {info['time_s']:7.2f} s (undrift only; {t_wall:.1f} s with start-up), "
                      f"segments of {seg} frames, RMS error vs truth {err_p:.2f} nm")
                print(f"  -> Picasso/correlate time = {info['time_s'] / t_rcc:.2f}x; error {err_p:.2f} vs {err:.2f} nm")
                results["rcc_picasso"] = {"time_s": info["time_s"], "rms_error_nm": err_p, "segment_frames": seg}
    else:
        print("RCC Picasso     : skipped (pass --picasso-python)")

    # ---------------------------------------------------------------- merge (no peer run here)
    m, t_merge = _timed(merge_blinks, df)
    n_true = df.loc[df.true_event_id >= 0, "true_event_id"].nunique() + int((df.true_particle_id == -1).sum())
    print(f"\nmerge correlate : {t_merge:7.2f} s, {n:,} -> {len(m):,} (true events {n_true:,}, "
          f"{100 * (len(m) / n_true - 1):+.1f} %)")
    results["merge_correlate"] = {"time_s": t_merge, "n_out": len(m), "n_true": n_true}
    print("\n" + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
