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
    parser.add_argument("--memory-budget", metavar="SIZE", default=None,
                        help="memory the filter may use (e.g. 4GiB; default half the available memory); an "
                             "element whose in-memory filter would exceed it is filtered row group by row group")
    parser.add_argument("--stream", choices=["auto", "always", "never"], default="auto",
                        help="filter row group by row group always, never, or as the memory budget decides")
    add_json_flag(parser)


@json_command
def run(args) -> int:
    from ..scene import Scene
    from ..smlm import filter_element

    from ..io._memory_budget import IN_MEMORY_FACTOR, memory_budget
    from ..smlm import filter_stored

    scene = Scene.open(args.store, mode="r+")
    budget = memory_budget(args.memory_budget)
    stream = {"always": True, "never": False}.get(args.stream)
    if stream is None and scene.kind(args.name) == "localizations":
        from ..io._store_tables import table_group_meta

        meta = table_group_meta(scene._abs(scene._entry(args.name)["path"], "element"))
        stream = int(meta["n_rows"]) * 8 * (len(meta["columns"]) + 1) * IN_MEMORY_FACTOR > budget.bytes
    if stream:
        res = filter_stored(scene, args.name, args.where, roi=args.roi, frames=args.frames, out=args.out,
                            overwrite=args.overwrite, memory_budget=budget)
        if not args.json:
            print(f"{budget.describe()}: filtered row group by row group")
    else:
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
