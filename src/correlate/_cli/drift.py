"""``correlate drift``: drift-correct a localization element (fiducials or RCC)."""

from __future__ import annotations

import math

from ._json import add_json_flag, emit, json_command

NAME = "drift"
HELP = "drift-correct SMLM localizations (fiducials or redundant cross-correlation)"
ORDER = 30
DESCRIPTION = (
    "Estimate the drift of localization element NAME from fiducials (persistent bright emitters) "
    "or, without them, by redundant cross-correlation (RCC) of time-binned renderings; subtract it "
    "per frame and write the corrected table as a new element (the raw one stays). Prints the "
    "method, drift range and residual drift, saves a plot of the trace, and records the step in "
    "the element's history."
)


def add_arguments(parser) -> None:
    parser.add_argument("store", help="the scene store (.ome.zarr)")
    parser.add_argument("name", help="localization element to correct")
    parser.add_argument("--method", choices=("auto", "fiducials", "rcc"), default="auto",
                        help="auto: fiducials when found, RCC otherwise (default auto)")
    parser.add_argument("--out", default=None, help="name of the corrected element (default NAME_drift)")
    parser.add_argument("--plot", default=None,
                        help="PNG path for the drift plot (default: beside the store, STORE_OUT_drift.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write a drift plot")
    parser.add_argument("--bins", type=int, default=None, help="RCC: number of time bins (default auto)")
    parser.add_argument("--min-persistence", "--min-fraction", dest="min_persistence", type=float, default=None,
                        metavar="FRACTION",
                        help="fiducials: fraction of frames a fiducial is seen in, 0-1 (default: estimated "
                        "from the data)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)


@json_command
def run(args) -> int:
    from ..errors import CorrelateError
    from ..scene import Scene
    from ..smlm import drift_correct_element

    scene = Scene.open(args.store, mode="r+")
    kwargs = {}
    if args.min_persistence is not None:
        if not 0 < args.min_persistence <= 1:
            raise CorrelateError(f"--min-persistence is a fraction of frames (0-1], got {args.min_persistence}",
                                 field="min-persistence")
        kwargs["min_persistence"] = args.min_persistence
    if args.bins is not None:
        kwargs["n_bins"] = args.bins
    plot = False if args.no_plot else (args.plot if args.plot else True)
    res = drift_correct_element(scene, args.name, method=args.method, out=args.out, plot=plot,
                                overwrite=args.overwrite, **kwargs)
    s = res["summary"]
    if args.json:
        emit({"element": args.name, "method": res["method"], "out": res["out"],
              "plot": str(res["plot"]) if res["plot"] else None, "summary": s})
        return 0
    rng = ", ".join(f"{a} {v:.1f}" for a, v in s["range_nm"].items())
    detail = (f"{s.get('n_fiducials')} fiducials" if res["method"] == "fiducials"
              else f"{s.get('n_bins')} time bins, {s.get('n_pairs_used')}/{s.get('n_pairs')} pairs used")
    print(f"drift of {args.name!r} by {res['method']} ({detail}), frames {s['frames'][0]}-{s['frames'][1]}")
    print(f"  drift range (nm): {rng}; estimated trace error {s['uncertainty_rms_nm']:.2f} nm RMS")
    rd = s.get("residual_drift_rms_nm")
    if rd is not None and math.isfinite(rd):
        print(f"  residual drift after correction: {rd:.2f} nm RMS")
    print(f"  wrote element {res['out']!r}" + (f"; plot {res['plot']}" if res["plot"] else ""))
    return 0
