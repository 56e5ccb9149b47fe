"""``correlate render``: render a stored localization element in bounded memory."""

from __future__ import annotations

from ._json import add_json_flag, emit, json_command

NAME = "render"
HELP = "render a localization element (histogram or Gaussians) into an image element, in bounded memory"
ORDER = 34
DESCRIPTION = (
    "Render localization element NAME of STORE row group by row group (only x, y and the precision or "
    "weight columns are read; the table is never loaded whole) and store the image as element OUT. "
    "The grid is the element's extent at --pixel-size (default: half the median precision, at most "
    "8192 pixels a side; printed)."
)


def add_arguments(parser) -> None:
    parser.add_argument("store", help="the scene store (.ome.zarr)")
    parser.add_argument("name", help="localization element to render")
    parser.add_argument("--method", choices=("histogram", "gaussian"), default="histogram",
                        help="counts per pixel or Gaussians of each precision (default histogram)")
    parser.add_argument("--pixel-size", type=float, metavar="NM", help="pixel size in nm (default: estimated)")
    parser.add_argument("--bbox", default=None, help="x0,y0,x1,y1 in nm: only localizations inside (and that grid)")
    parser.add_argument("--split-by", default=None, help="column whose values make the channels (e.g. channel)")
    parser.add_argument("--weights", default=None, help="column summed instead of counting (e.g. photons)")
    parser.add_argument("--precision", default=None,
                        help="gaussian: a column name or one value in nm (default the precision columns)")
    parser.add_argument("--out", default=None, help="name of the image element (default NAME_render)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)


def _precision(value):
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@json_command
def run(args) -> int:
    from ..render._stream import estimate_pixel_size, render_element, stored_extent
    from ..scene import Scene
    from ..smlm._filter import parse_roi

    scene = Scene.open(args.store, mode="r+")
    out = args.out or f"{args.name}_render"
    if out in scene and not args.overwrite:
        from ..errors import StoreError

        raise StoreError(f"element {out!r} exists; pass --overwrite or --out", path=scene.path, field="out")
    bbox = parse_roi(args.bbox)
    path = scene._abs(scene._entry(args.name)["path"], f"element {args.name!r}", must_exist=True)
    extent = (bbox[0], bbox[2], bbox[1], bbox[3]) if bbox is not None else stored_extent(path)
    estimated = None
    px = args.pixel_size
    if px is None:
        estimated = estimate_pixel_size(path, extent)
        px = estimated["pixel_size_nm"]
    img = render_element(scene, args.name, args.method, pixel_size_nm=px, extent_nm=extent, bbox=bbox,
                         split_by=args.split_by, weights=args.weights, precision=_precision(args.precision),
                         name=out)
    scene.add(out, img, overwrite=args.overwrite)
    n_in = sum(img.attrs["n_inside"].values())
    n_all = sum(img.attrs["n_localizations"].values())
    doc = {"element": args.name, "out": out, "method": args.method, "pixel_size_nm": px,
           "pixel_size_source": "estimated" if estimated else "user", "estimated": estimated,
           "shape": list(img.shape), "n_localizations": n_all, "n_inside": n_in, "extent_nm": list(extent)}
    if args.json:
        emit(doc)
        return 0
    if estimated:
        print(f"pixel size {px:.4g} nm (estimated: {estimated['limited_by']}; median precision "
              f"{estimated['median_precision_nm']:.3g} nm; --pixel-size to change)")
    print(f"rendered {args.name!r} ({args.method}): {n_in} of {n_all} localizations on "
          f"{' x '.join(str(s) for s in img.shape)} px at {px:.4g} nm -> element {out!r}")
    return 0
