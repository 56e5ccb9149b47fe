"""``correlate report STORE -o report.html``: a self-contained HTML report of a store."""

from __future__ import annotations

import argparse

from ._args import add_store_argument

NAME = "report"
HELP = "write a self-contained HTML report (registration and particle results)"
ORDER = 80
DESCRIPTION = (
    "Write one HTML file with the figures embedded: what the store holds, each registration "
    "(model, FRE, predicted TRE, leave-one-out error, chi-square, fiducial residuals), an overlay "
    "of the localizations on the base image, and for each per-particle table the size "
    "distribution, label counts against size, radial profiles, a particle gallery and the table."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("-o", "--output", default="report.html", help="output HTML file (default: report.html)")
    parser.add_argument("--base", metavar="NAME", help="base image of the overlay (default: the first EM image)")
    parser.add_argument("--labels", metavar="NAME,...", help="localization elements to show (default: all)")
    parser.add_argument("--tables", metavar="NAME,...", help="per-particle tables to report (default: all)")
    parser.add_argument("--images", metavar="NAME,...",
                        help="images drawn as layers over the overlay's base (default: every image placed in its "
                        "frame that covers the view; 'none' for no layer)")
    parser.add_argument("--title", help="report title")
    parser.add_argument("--assume-aligned", action="store_true",
                        help="draw labels that no registration placed in the base image's frame (the frames "
                        "are already aligned); otherwise a label named in --labels that is unplaced is an "
                        "error and, by default, unplaced labels are left out and named")


def run(args: argparse.Namespace) -> int:
    from ..errors import CorrelateError
    from ..plot import make_report
    from ..scene import Scene

    scene = Scene.open(args.store, mode="r")
    if args.base and args.base in scene and scene.kind(args.base) != "image":
        raise CorrelateError(f"the base must be an image; {args.base!r} is {scene.kind(args.base)}", field="base")
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()] if s else None  # noqa: E731
    out = make_report(scene, args.output, base=args.base, labels=split(args.labels), tables=split(args.tables),
                      title=args.title, assume_aligned=args.assume_aligned,
                      images=None if args.images is None else
                      ([] if args.images.strip().lower() == "none" else split(args.images)))
    print(f"wrote {out}")
    return 0
