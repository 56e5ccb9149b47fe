"""``correlate filter``: keep the localizations that meet a condition, an ROI and a frame range."""

from __future__ import annotations

from ._json import add_json_flag, emit, json_command

NAME = "filter"
HELP = "filter localizations by a condition on columns, an ROI and a frame range"
ORDER = 32
DESCRIPTION = (
    "Keep the localizations of element NAME that satisfy --where (column names, numbers, "
    "comparisons, and/or/not, e.g. \"precision < 20 and photons > 500\"; no function calls), lie "
    "in --roi x0,y0,x1,y1 (nm) and in --frames a:b (0-based, b exclusive). Writes a new element."
)


def add_arguments(parser) -> None:
    parser.add_argument("store", help="the scene store (.ome.zarr)")
    parser.add_argument("name", help="localization element to filter")
    parser.add_argument("--where", default=None, help='condition, e.g. "precision < 20 and photons > 500"')
    parser.add_argument("--roi", default=None, help="x0,y0,x1,y1 in nm (element coordinates)")
    parser.add_argument("--frames", default=None, help="a:b, 0-based, b exclusive (either may be empty)")
    parser.add_argument("--out", default=None, help="name of the filtered element (default NAME_filtered)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)


@json_command
def run(args) -> int:
    from ..scene import Scene
    from ..smlm import filter_element

    scene = Scene.open(args.store, mode="r+")
    res = filter_element(scene, args.name, where=args.where, roi=args.roi, frames=args.frames,
                         out=args.out, overwrite=args.overwrite)
    s = res["summary"]
    if args.json:
        emit({"element": args.name, "where": args.where, "roi": args.roi, "frames": args.frames,
              "rows_in": s["rows_in"], "rows_out": s["rows_out"], "fraction_kept": s["fraction_kept"],
              "out": res["out"], "summary": s})
        return 0
    what = "; ".join(p for p in (
        f"where {args.where}" if args.where else "",
        f"roi {args.roi}" if args.roi else "",
        f"frames {args.frames}" if args.frames else "",
    ) if p)
    print(f"filtered {args.name!r} ({what}): kept {s['rows_out']} of {s['rows_in']} "
          f"({100 * s['fraction_kept']:.1f} %)")
    print(f"  wrote element {res['out']!r}")
    return 0
