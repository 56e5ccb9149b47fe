"""``correlate map``: carry coordinates from one element's frame to another's, with predicted error."""

from __future__ import annotations

import argparse

from ._json import add_json_flag, emit, json_command

NAME = "map"
ORDER = 45
HELP = "map x,y[,z] coordinates (nm) between elements through the stored transforms, adding tre_nm"
DESCRIPTION = (
    "Read IN.csv (columns x, y[, z] in nm in the frame of element FROM; other columns are kept), map "
    "the points into the frame of element TO through the scene's transforms (via world), and write "
    "OUT.csv with the mapped x, y[, z], a column tre_nm (predicted RMS registration error of each "
    "point, nm, from the stored registrations' error models) and tre95_nm (radius containing the "
    "error with 95 % probability). Use 'world' for the scene's world frame. Both elements must be "
    "placed in one frame by registrations (or declared aligned); otherwise the command refuses, "
    "naming the registration to run, unless --assume-aligned. An unknown error is written as an "
    "empty (NaN) tre_nm and printed as 'unknown', never as 0."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="scene store (.ome.zarr)")
    p.add_argument("input", metavar="IN.csv", help="CSV with x, y[, z] columns (nm)")
    p.add_argument("output", metavar="OUT.csv", help="output CSV")
    p.add_argument("--from", dest="src", required=True, metavar="NAME", help="element whose frame IN.csv is in")
    p.add_argument("--to", dest="dst", required=True, metavar="NAME", help="element (or 'world') to map into")
    p.add_argument("--assume-aligned", action="store_true",
                   help="map even when no registration places FROM and TO in one frame (the frames are "
                   "already aligned); the predicted error is then unknown")
    add_json_flag(p)


@json_command
def run(args) -> int:
    import numpy as np
    import pandas as pd

    from ..errors import FormatError
    from ..registration._map import predicted_tre_between
    from ..scene import Scene

    scene = Scene.open(args.store, mode="r")
    try:
        df = pd.read_csv(args.input)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FormatError(f"cannot read the points CSV ({type(exc).__name__}: {exc})", path=args.input) from exc
    missing = [c for c in ("x", "y") if c not in df.columns]
    if missing:
        raise FormatError(f"needs columns x and y (nm); found {list(df.columns)}", path=args.input, field=missing[0])
    cols = [c for c in ("x", "y", "z") if c in df.columns]
    try:
        pts = df[cols].to_numpy(float)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"columns {cols} must be numbers in nm ({exc})", path=args.input, field=cols[0]) from exc
    for name in (args.src, args.dst):
        if name != "world":
            scene.kind(name)  # an unknown element is an error naming the ones present
    if args.src != args.dst:
        scene.require_joinable(args.src, args.dst, assume_aligned=args.assume_aligned, action="map points between")
    tre, r95 = predicted_tre_between(scene, args.src, args.dst, pts)
    out = scene.map_points(df, args.src, args.dst, assume_aligned=args.assume_aligned)
    out["tre_nm"] = tre
    out["tre95_nm"] = r95
    out.to_csv(args.output, index=False)
    finite = np.isfinite(tre)
    if args.json:
        emit({"from": args.src, "to": args.dst, "input": args.input, "output": args.output, "n_points": len(out),
              "tre_median_nm": float(np.median(tre[finite])) if finite.any() else None,
              "tre95_median_nm": float(np.median(r95[np.isfinite(r95)])) if np.isfinite(r95).any() else None,
              "n_unknown": int((~finite).sum()), "linked": bool(finite.any()) if len(tre) else None})
        return 0
    med = f"{float(np.median(tre[finite])):.2f} nm" if finite.any() else "unknown"
    if finite.any() and not finite.all():
        med += f" ({int((~finite).sum())} points unknown)"
    print(f"mapped {len(out)} points {args.src} -> {args.dst}; predicted TRE median {med} -> {args.output}")
    if not finite.any() and len(tre):
        print(f"note: no registration links {args.src!r} and {args.dst!r}; tre_nm is empty (NaN) in {args.output}")
    return 0
