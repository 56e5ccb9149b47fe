"""``correlate merge``: merge blinks (one on-event over consecutive frames) into one localization."""

from __future__ import annotations

from ._json import add_json_flag, emit, json_command

NAME = "merge"
HELP = "merge blinks: localizations of one on-event in consecutive frames become one"
ORDER = 31
DESCRIPTION = (
    "Link localizations of element NAME that are close in space (within RADIUS, or an adaptive "
    "3.5-sigma gate from their precisions) in consecutive frames, allowing up to MAX-DARK missed "
    "frames; each event becomes one localization at the precision-weighted mean, with combined "
    "precision, summed photons, n_merged, first_frame and last_frame. Writes a new element."
)


def add_arguments(parser) -> None:
    parser.add_argument("store", help="the scene store (.ome.zarr)")
    parser.add_argument("name", help="localization element to merge")
    parser.add_argument("--radius", type=float, default=None,
                        help="largest step between successive localizations, nm "
                             "(default: adaptive, 3.5 sigma of the pair's precisions)")
    parser.add_argument("--max-dark", type=int, default=1,
                        help="frames an event may be missed and still continue (default 1)")
    parser.add_argument("--out", default=None, help="name of the merged element (default NAME_merged)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)


@json_command
def run(args) -> int:
    from ..scene import Scene
    from ..smlm import merge_element

    scene = Scene.open(args.store, mode="r+")
    res = merge_element(scene, args.name, radius=args.radius, max_dark_frames=args.max_dark,
                        out=args.out, overwrite=args.overwrite)
    s = res["summary"]
    if args.json:
        emit({"element": args.name, "rows_in": s["rows_in"], "rows_out": s["rows_out"],
              "mean_n_merged": s["mean_n_merged"], "radius_nm": args.radius,
              "gate": "fixed" if args.radius is not None else "adaptive 3.5 sigma",
              "search_radius_nm": s.get("radius_nm"), "max_dark_frames": args.max_dark, "out": res["out"],
              "summary": s})
        return 0
    gate = f"{args.radius:g} nm" if args.radius is not None else f"3.5 sigma (search <= {s['radius_nm']:.0f} nm)"
    print(f"merged {args.name!r}: {s['rows_in']} -> {s['rows_out']} localizations "
          f"(mean {s['mean_n_merged']:.2f} per event; gate {gate}, max {args.max_dark} dark frames)")
    print(f"  wrote element {res['out']!r}")
    return 0
