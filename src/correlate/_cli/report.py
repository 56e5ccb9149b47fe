"""``correlate report STORE -o report.html``: a self-contained HTML report of a store."""

from __future__ import annotations

import argparse

from ._args import add_store_argument
from ._base_image import add_assume_aligned, open_with_base
from ._json import add_json_flag, json_command

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
    add_assume_aligned(parser)
    add_json_flag(parser)


@json_command
def run(args: argparse.Namespace) -> int:
    from ..plot import make_report

    scene = open_with_base(args)
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()] if s else None  # noqa: E731
    out = make_report(scene, args.output, base=args.base, labels=split(args.labels), tables=split(args.tables),
                      title=args.title, assume_aligned=args.assume_aligned,
                      images=None if args.images is None else
                      ([] if args.images.strip().lower() == "none" else split(args.images)))
    if args.json:
        from ._json import emit

        emit({"output": str(out), "tables": split(args.tables), "labels": split(args.labels), "base": args.base})
        return 0
    print(f"wrote {out}")
    return 0
