"""``correlate overlay STORE -o overlay.png``: localizations over an image of the scene."""

from __future__ import annotations

import argparse

from ..errors import CorrelateError
from ._args import add_store_argument
from ._base_image import add_assume_aligned, open_with_base
from ._json import add_json_flag, emit, json_command

NAME = "overlay"
HELP = "draw localizations over an image of a store (PNG or PDF)"
ORDER = 70
DESCRIPTION = (
    "Draw a base image of a correlate store (default: the first EM image) with the store's "
    "localizations mapped into its space and rendered in colour, the fiducials and their residual "
    "vectors from the registration, optional particle outlines and predicted-TRE contours, a "
    "scale bar in nm and a caption with the registration model and its error figures. The output "
    "format follows the suffix of -o (.png, .pdf or .svg)."
)


def _floats(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise CorrelateError(f"{what} must be {n} comma-separated numbers in nm, got {text!r}", field=what) from exc
    if len(vals) != n:
        raise CorrelateError(f"{what} must be {n} comma-separated numbers in nm, got {text!r}", field=what)
    return vals


def _images(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [] if text.strip().lower() == "none" else [s.strip() for s in text.split(",") if s.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("-o", "--output", required=True, help="output file: .png, .pdf or .svg")
    parser.add_argument("--base", metavar="NAME", help="base image (default: the first EM image, else the first image)")
    parser.add_argument("--labels", metavar="NAME,...", help="localization elements to draw (default: all)")
    parser.add_argument("--region", metavar="x0,y0,x1,y1", help="crop of the base image, nm in its own coordinates")
    parser.add_argument("--method", choices=("gaussian", "blur", "histogram"), default="gaussian",
                        help="how localizations are rendered (default: gaussian, each with its own precision)")
    parser.add_argument("--show-tre", action="store_true", help="contour the predicted target registration error")
    parser.add_argument("--show-particles", action="store_true", help="outline particles from a label image")
    parser.add_argument("--particles", metavar="LABELS",
                        help="label image for --show-particles: '<image>/labels/<name>' (default: the first under the base)")
    parser.add_argument("--images", metavar="NAME,...",
                        help="other images drawn as semi-transparent layers (default: every image placed in the "
                        "base's frame that covers the view; 'none' for no layer)")
    parser.add_argument("--image-alpha", type=float, default=0.45, metavar="A",
                        help="opacity of the brightest pixels of the image layers, 0-1 (default 0.45)")
    parser.add_argument("--no-fiducials", action="store_true", help="do not draw fiducials and residual vectors")
    parser.add_argument("--scale-bar", metavar="NM", type=float, help="scale bar length in nm (default: automatic)")
    parser.add_argument("--title", help="title above the image")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNG (default 100)")
    add_assume_aligned(parser)
    add_json_flag(parser)


@json_command
def run(args: argparse.Namespace) -> int:
    from ..plot import plot_overlay, save_figure

    scene = open_with_base(args)
    labels = None
    if args.labels:
        labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    region = _floats(args.region, 4, "region") if args.region else None
    fig = plot_overlay(
        scene,
        base=args.base,
        labels=labels,
        region=region,
        method=args.method,
        images=_images(args.images),
        image_alpha=args.image_alpha,
        show_fiducials=not args.no_fiducials,
        show_particles=args.show_particles or bool(args.particles),
        particles=args.particles,
        show_tre=args.show_tre,
        scale_bar_nm=args.scale_bar,
        title=args.title,
        dpi=args.dpi,
        assume_aligned=args.assume_aligned,
    )
    out = save_figure(fig, args.output)
    if args.json:
        emit({"output": str(out), "base": args.base, "labels": labels, "region_nm": region,
              "scale_bar_nm": getattr(fig, "correlate_scale_bar_nm", None),
              "nm_per_pixel": getattr(fig, "correlate_nm_per_png_pixel", None),
              "caption": getattr(fig, "correlate_caption", "") or None,
              "images": getattr(fig, "correlate_images", None),
              "tre_record": (getattr(fig, "correlate_tre_record", None) or {}).get("id")})
        return 0
    print(f"wrote {out}")
    if fig.correlate_caption:
        print(fig.correlate_caption)
    return 0
