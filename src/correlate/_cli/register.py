"""``correlate register``: fiducial registration of one element onto another, with predicted error."""

from __future__ import annotations

import argparse
import json

from ._json import add_json_flag, json_command

NAME = "register"
ORDER = 40
HELP = "register one element onto another with fiducials (automatic pairing, predicted error)"
DESCRIPTION = (
    "Detect fiducials (gold/beads in images, persistent bright emitters in SMLM tables) in the MOVING "
    "and FIXED elements, pair them without clicks (or read manual pairs with --landmarks), fit "
    "translation/rigid/similarity/affine/thin-plate-spline and choose the simplest model consistent "
    "with the fiducial noise (chi-square). Stores the moving element's transform to world, the "
    "landmarks and a registration record, and prints fiducials found and paired, outliers, the model "
    "and why, FRE, leave-one-out error and the predicted TRE over the field (nm). Every detector "
    "parameter is estimated from the data and printed with its source (estimated, user, metadata); "
    "the detection overrides below replace the estimate. When a stage cannot decide, the command "
    "stops and prints what it saw (counts, best candidates, best pose hypothesis) and the option "
    "that would help."
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
    p.add_argument("--scale-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="allowed scale between the frames for automatic pairing (default: automatic, "
                   "around the metadata prior or a wide range)")
    p.add_argument("--no-mirror", action="store_true",
                   help="do not try mirrored poses (by default both handednesses are tried and a mirror is reported)")
    g = p.add_argument_group(
        "detection overrides",
        "Each value is estimated from the data unless given here. Image options apply to every "
        "image side, localization options to every localization side; --detect sets one side only "
        "(and wins over the shared flags).")
    g.add_argument("--bead-diameter", type=float, metavar="NM", help="images: bead / gold diameter (nm)")
    g.add_argument("--psf-fwhm", type=float, metavar="NM", help="images: PSF full width at half maximum (nm)")
    g.add_argument("--polarity", choices=["auto", "dark", "bright"], default="auto",
                   help="images: beads darker or brighter than the background (default auto)")
    g.add_argument("--min-persistence", type=float, metavar="FRACTION",
                   help="localizations: fraction of frames a fiducial is seen in (0-1)")
    g.add_argument("--detect", action="append", default=[], metavar="SIDE:KEY=VALUE",
                   help="one detector option for one side, e.g. moving:diameter_nm=100 or "
                   "fixed:min_persistence=0.3 (SIDE moving|fixed; KEY an option of that element's "
                   "detector); repeatable")
    g.add_argument("--fiducials-moving", metavar="CSV",
                   help="fiducials of MOVING instead of detection: x, y[, z] (nm, its own frame), optional "
                   "cov_xx, cov_xy, cov_yy (nm^2) or sigma_nm")
    g.add_argument("--fiducials-fixed", metavar="CSV", help="fiducials of FIXED instead of detection (as above)")
    p.add_argument("--diagnostics", metavar="DIR",
                   help="write what each stage saw (JSON) and a figure of both elements' detections and the "
                   "matches of the (best) pose hypothesis, also when the registration fails")
    p.add_argument("--no-outliers", action="store_true", help="do not flag outlier fiducials")
    p.add_argument("--excess-fle", type=float, default=None, metavar="NM",
                   help="systematic per-fiducial error (nm per axis, both sides combined) added to the stated "
                   "localization errors, instead of its estimate from the residuals (0: none)")
    p.add_argument("--bigwarp", metavar="OUT.csv", help="also write the pairs as a BigWarp landmark CSV")
    p.add_argument("--matrix", metavar="OUT.txt", help="also write the transform as a plain matrix (linear models)")
    p.add_argument("--dry-run", action="store_true", help="fit and report, but do not write to the store")
    add_json_flag(p)


def _fmt(v, unit=" nm"):
    return "n/a" if v is None else f"{v:.2f}{unit}"


def _print_result(rec, reg, args, kinds) -> None:
    from ._register_output import print_detection

    pairing = rec.get("pairing", {})
    if pairing.get("method") == "manual":
        print(f"fiducials: {pairing.get('n_pairs')} manual pairs from {args.landmarks}")
    else:
        print_detection(rec, args, kinds)
        print(
            f"fiducials: {pairing.get('n_detected_moving')} found in {args.moving}, "
            f"{pairing.get('n_detected_fixed')} in {args.fixed}; {rec['n_pairs']} paired automatically "
            f"({pairing.get('method')})"
        )
    mirrored = rec.get("mirrored", getattr(reg, "mirrored", None))
    if mirrored is not None:
        print("mirrored: yes - the moving frame is a mirror image of the fixed one (fitted with a reflection)"
              if mirrored else "mirrored: no")
    out = rec["n_outliers"]
    print(f"outliers rejected: {out}" + (f" ({', '.join(rec['outlier_ids'])})" if out else ""))
    print(f"model: {rec['model']} - {rec['reason']}")
    print(f"FRE (RMS residual): {_fmt(rec['fre_rms_nm'])}; leave-one-out RMS error: {_fmt(rec['loo_rms_nm'])}")
    excess = (rec.get("error_model") or {}).get("excess_fle_nm")
    if excess is not None:
        given = " (given: --excess-fle)" if getattr(args, "excess_fle", None) is not None else " (estimated; --excess-fle overrides)"
        print(f"excess fiducial error (systematic per fiducial, per axis): {_fmt(excess)}{given}")
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
        print(f"report written to {args.report}")
    if args.diagnostics:
        print(f"diagnostics written to {args.diagnostics}")


@json_command
def run(args) -> int:
    from ..errors import CorrelateError, RegistrationError
    from ..registration import register_scene, write_affine_text, write_bigwarp_csv
    from ..scene import Scene

    from pathlib import Path

    from ..errors import FormatError
    from ._register_output import detector_kwargs, print_failure

    if args.moving == args.fixed:
        raise CorrelateError(f"--moving and --fixed are both {args.moving!r}; register an element onto another",
                             field="fixed")
    if args.landmarks and not Path(args.landmarks).is_file():
        raise FormatError("landmark file does not exist", path=args.landmarks, field="landmarks")
    for flag in ("fiducials_moving", "fiducials_fixed"):
        f = getattr(args, flag)
        if f and not Path(f).is_file():
            raise FormatError("fiducial file does not exist", path=f, field=flag.replace("_", "-"))
    scene = Scene.open(args.store, mode="r" if args.dry_run else "r+")
    kinds = {"moving": scene.kind(args.moving), "fixed": scene.kind(args.fixed)}
    kw = detector_kwargs(args, kinds)
    try:
        reg, rec = register_scene(
            scene, args.moving, args.fixed, model=args.model, landmarks=args.landmarks, refine=args.refine,
            store=not args.dry_run, scale_range=None if args.scale_range is None else tuple(args.scale_range),
            alpha=args.alpha, reject_outliers=not args.no_outliers, moving_kwargs=kw["moving"],
            fixed_kwargs=kw["fixed"], fiducials_moving=args.fiducials_moving, fiducials_fixed=args.fiducials_fixed,
            allow_mirror=not args.no_mirror, diagnostics=args.diagnostics, excess_fle_nm=args.excess_fle,
        )
    except RegistrationError as exc:
        print_failure(exc, args)
        raise
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            json.dump(rec, fh, indent=2)
    if not args.json:
        _print_result(rec, reg, args, kinds)
    if args.bigwarp:
        write_bigwarp_csv(args.bigwarp, reg.landmarks)
    if args.matrix:
        if not reg.transform.is_linear:
            raise CorrelateError(f"--matrix: the {reg.model} transform is not linear; use the store or --bigwarp",
                                 field="matrix")
        write_affine_text(args.matrix, reg.transform)
    if args.json:
        from ._json import emit
        from ._register_output import register_document

        emit(register_document(rec, args, kinds))
    elif not args.dry_run:
        print(f"stored: transform of {args.moving} -> world, landmarks {args.moving}__{args.fixed}, record {rec.get('id')}")
    return 0
