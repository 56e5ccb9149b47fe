"""``correlate register``: fiducial registration of one element onto another, with predicted error."""

from __future__ import annotations

import argparse
import json

NAME = "register"
ORDER = 40
HELP = "register one element onto another with fiducials (automatic pairing, predicted error)"
DESCRIPTION = (
    "Detect fiducials (gold/beads in images, persistent bright emitters in SMLM tables) in the MOVING "
    "and FIXED elements, pair them without clicks (or read manual pairs with --landmarks), fit "
    "translation/rigid/similarity/affine/thin-plate-spline and choose the simplest model consistent "
    "with the fiducial noise (chi-square). Stores the moving element's transform to world, the "
    "landmarks and a registration record, and prints fiducials found and paired, outliers, the model "
    "and why, FRE, leave-one-out error and the predicted TRE over the field (nm)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="scene store (.ome.zarr)")
    p.add_argument("--moving", required=True, metavar="NAME", help="element to move")
    p.add_argument("--fixed", required=True, metavar="NAME", help="element it is registered onto")
    p.add_argument("--model", default="auto", choices=["auto", "translation", "rigid", "similarity", "affine", "tps"],
                   help="transform model (default auto: simplest adequate)")
    p.add_argument("--landmarks", metavar="PAIRS.csv",
                   help="manual pairs instead of detection: a CSV with source_x,source_y,target_x,target_y "
                   "(source = moving, nm) or a BigWarp landmark CSV (moving then fixed, nm)")
    p.add_argument("--report", metavar="REPORT.json", help="write the registration record as JSON")
    p.add_argument("--refine", action="store_true",
                   help="refine with SimpleITK mutual information (images only), kept only if it lowers the "
                   "held-out fiducial error")
    p.add_argument("--alpha", type=float, default=0.01, help="chi-square p-value for an adequate model (0.01)")
    p.add_argument("--scale-range", type=float, nargs=2, default=(0.9, 1.1), metavar=("LO", "HI"),
                   help="allowed scale between the frames for automatic pairing (0.9 1.1)")
    p.add_argument("--no-outliers", action="store_true", help="do not flag outlier fiducials")
    p.add_argument("--bigwarp", metavar="OUT.csv", help="also write the pairs as a BigWarp landmark CSV")
    p.add_argument("--matrix", metavar="OUT.txt", help="also write the transform as a plain matrix (linear models)")
    p.add_argument("--dry-run", action="store_true", help="fit and report, but do not write to the store")


def _fmt(v, unit=" nm"):
    return "n/a" if v is None else f"{v:.2f}{unit}"


def run(args) -> int:
    from ..errors import CorrelateError
    from ..registration import register_scene, write_affine_text, write_bigwarp_csv
    from ..scene import Scene

    from pathlib import Path

    from ..errors import FormatError

    if args.moving == args.fixed:
        raise CorrelateError(f"--moving and --fixed are both {args.moving!r}; register an element onto another",
                             field="fixed")
    if args.landmarks and not Path(args.landmarks).is_file():
        raise FormatError("landmark file does not exist", path=args.landmarks, field="landmarks")
    scene = Scene.open(args.store, mode="r" if args.dry_run else "r+")
    reg, rec = register_scene(
        scene, args.moving, args.fixed, model=args.model, landmarks=args.landmarks, refine=args.refine,
        store=not args.dry_run, scale_range=tuple(args.scale_range), alpha=args.alpha,
        reject_outliers=not args.no_outliers,
    )
    pairing = rec.get("pairing", {})
    if pairing.get("method") == "manual":
        print(f"fiducials: {pairing.get('n_pairs')} manual pairs from {args.landmarks}")
    else:
        print(
            f"fiducials: {pairing.get('n_detected_moving')} found in {args.moving}, "
            f"{pairing.get('n_detected_fixed')} in {args.fixed}; {rec['n_pairs']} paired automatically "
            f"({pairing.get('method')})"
        )
    out = rec["n_outliers"]
    print(f"outliers rejected: {out}" + (f" ({', '.join(rec['outlier_ids'])})" if out else ""))
    print(f"model: {rec['model']} - {rec['reason']}")
    print(f"FRE (RMS residual): {_fmt(rec['fre_rms_nm'])}; leave-one-out RMS error: {_fmt(rec['loo_rms_nm'])}")
    tf = rec.get("predicted_tre_field") or {}
    print(
        f"predicted TRE over the {args.fixed} field: median {_fmt(tf.get('tre_rms_median_nm'))} RMS, "
        f"95th percentile {_fmt(tf.get('tre_rms_p95_nm'))}; 95 % radius median {_fmt(tf.get('tre_r95_median_nm'))}, "
        f"95th percentile {_fmt(tf.get('tre_r95_p95_nm'))}"
    )
    th = rec.get("predicted_tre_hull") or {}
    if th:
        print(
            f"  inside the fiducial hull: median {_fmt(th.get('tre_rms_median_nm'))} RMS, "
            f"95 % radius median {_fmt(th.get('tre_r95_median_nm'))}"
        )
    ref = rec.get("refinement")
    if ref:
        print(f"refinement: {ref.get('message')}")
    for note in rec.get("notes", []):
        print(f"note: {note}")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            json.dump(rec, fh, indent=2)
        print(f"report written to {args.report}")
    if args.bigwarp:
        write_bigwarp_csv(args.bigwarp, reg.landmarks)
    if args.matrix:
        if not reg.transform.is_linear:
            raise CorrelateError(f"--matrix: the {reg.model} transform is not linear; use the store or --bigwarp",
                                 field="matrix")
        write_affine_text(args.matrix, reg.transform)
    if not args.dry_run:
        print(f"stored: transform of {args.moving} -> world, landmarks {args.moving}__{args.fixed}, record {rec.get('id')}")
    return 0
