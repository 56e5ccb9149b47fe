"""``correlate export STORE WHAT -o OUT``: take data out of a store in formats other tools read."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_store_argument

from ..errors import CorrelateError
from ._json import add_json_flag, emit, json_command

NAME = "export"
HELP = "export landmarks (BigWarp CSV), transforms (matrix), tables, localizations, renders or SpatialData"
ORDER = 90
DESCRIPTION = (
    "Write part of a correlate store in a format other tools read. WHAT is one of: 'bigwarp' "
    "(the fiducial pairs of a registration as a BigWarp landmark CSV, nm), 'matrix' (the linear "
    "transform from an element to world or to another element, as a homogeneous matrix in x, y "
    "order, nm), 'table' (a per-particle table as CSV), 'localizations' (a localization table as "
    "CSV, ThunderSTORM CSV or Picasso HDF5 + YAML, optionally mapped into another element's coordinates "
    "or world), or 'render' (localizations "
    "rendered to a 32-bit TIFF with its pixel size, on a grid of a pixel size or of an image), or "
    "'spatialdata' (the scene as a SpatialData Zarr store: images, labels, points, particle circles and the "
    "per-particle table annotating its labels, in one 'world' system in nm; --name picks elements), or "
    "'displacements' (the transform of --name to world, non-linear included, as NGFF displacement "
    "fields: forward over the element, inverse over its image in world; --pixel-size sets the grid step)."
)

_WHAT = ("bigwarp", "matrix", "table", "localizations", "render", "spatialdata", "displacements")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("what", choices=_WHAT, help="what to export")
    parser.add_argument("-o", "--output", required=True, help="output file")
    parser.add_argument("--name", metavar="NAME",
                        help="element: the table, localizations or transformed element (matrix); for "
                             "bigwarp, the moving element (default: that of the latest registration)")
    parser.add_argument("--to", metavar="NAME", default=None,
                        help="target system: for matrix and localizations an element or 'world' "
                             "(default world); for bigwarp the fixed element; for render an image "
                             "whose grid to use")
    parser.add_argument("--assume-aligned", action="store_true",
                        help="localizations and render --to ELEMENT: map even when no registration places "
                        "the two elements in one frame (the frames are already aligned)")
    parser.add_argument("--pixel-size", metavar="NM", type=float,
                        help="render: pixel size in nm; localizations --format picasso: the camera pixel size "
                             "(default the table's own); displacements: grid step (default extent / 255)")
    parser.add_argument("--format", choices=("csv", "thunderstorm", "picasso"), default=None,
                        help="localizations: plain CSV in nm (default), ThunderSTORM CSV with unit labels and "
                             "frames from 1, or Picasso HDF5 + YAML (camera pixels)")
    parser.add_argument("--origin", metavar="X0,Y0|min", default=None,
                        help="localizations --format picasso: write positions relative to this origin (nm, or "
                        "'min': the smallest x, y rounded down to whole camera pixels), recorded in the YAML; "
                        "Picasso drops rows at negative positions (negative values: --origin=-500,-800)")
    parser.add_argument("--method", choices=("histogram", "gaussian"), default="histogram",
                        help="render: counts per pixel or Gaussians of each precision (default histogram)")
    add_json_flag(parser)


def _latest_pair(scene) -> tuple[str, str]:
    """The (moving, fixed) pair of the latest registration that has fiducial pairs stored (a
    colour alignment from beads found in one pass has none), else the last stored pair."""
    pairs = scene.landmark_pairs()
    for r in reversed(scene.registrations()):
        if (r.get("moving"), r.get("fixed")) in pairs:
            return r["moving"], r["fixed"]
    if pairs:
        return pairs[-1]
    raise CorrelateError("the store has no registration and no landmarks to export", path=scene.path)


def _spatialdata(scene, args, out: Path) -> tuple[dict, list[str]]:
    from ..interop import write_spatialdata

    names = [n.strip() for n in (args.name or "").split(",") if n.strip()] or None
    sdata = write_spatialdata(scene, out, names, assume_aligned=args.assume_aligned)
    kinds = {k: len(getattr(sdata, k)) for k in ("images", "labels", "points", "shapes", "tables")}
    doc = {"files": [str(out)], "elements": {k: sorted(map(str, getattr(sdata, k).keys())) for k in kinds},
           "coordinate_system": "world", "unit": "nm"}
    return doc, [f"wrote {out}: SpatialData with " + ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
                 + " in coordinate system 'world' (nm)"]


def _displacements(scene, args, out: Path) -> tuple[dict, list[str]]:
    from ..io._export_fields import write_displacement_fields

    if not args.name:
        raise CorrelateError("displacements needs --name ELEMENT", field="name")
    info = write_displacement_fields(scene, args.name, out, spacing_nm=args.pixel_size)
    doc = {"files": [str(out)], "element": args.name,
           "fields": {k: {"path": f"{out}/{k}", "shape": list(info[k]["shape"]), "spacing_nm": info[k]["spacing_nm"],
                          "max_error_nm": info[k]["max_error_nm"]} for k in ("forward", "inverse")}}
    lines = [f"wrote {out}/{k}: {' x '.join(map(str, info[k]['shape']))} grid at {info[k]['spacing_nm']:.4g} nm, "
             f"largest interpolation error {info[k]['max_error_nm']:.3g} nm" for k in ("forward", "inverse")]
    return doc, lines


def _bigwarp(scene, args, out: Path) -> tuple[dict, list[str]]:
    from ..registration import write_bigwarp_csv

    moving, fixed = _latest_pair(scene)
    moving = args.name or moving
    fixed = args.to or fixed
    lm = scene.get_landmarks(moving, fixed)
    write_bigwarp_csv(out, lm)
    doc = {"files": [str(out)], "moving": moving, "fixed": fixed, "n_pairs": len(lm), "unit": "nm"}
    return doc, [f"wrote {out}: {len(lm)} landmark pairs {moving} (moving) -> {fixed} (fixed), nm"]


def _matrix(scene, args, out: Path) -> tuple[dict, list[str]]:
    from ..registration import write_affine_text

    if not args.name:
        raise CorrelateError("matrix needs --name ELEMENT", field="name")
    t = scene.transform(args.name, args.to or "world")
    if not t.is_linear:
        raise CorrelateError(
            f"the transform {args.name} -> {args.to or 'world'} is not linear ({type(t).__name__}); "
            "export the landmarks (bigwarp) or use the store", field="matrix")
    write_affine_text(out, t)
    doc = {"files": [str(out)], "element": args.name, "to": args.to or "world", "axes": ["x", "y"], "unit": "nm"}
    return doc, [f"wrote {out}: {args.name} -> {args.to or 'world'} homogeneous matrix (x, y order, nm)"]


def _origin_arg(text: str) -> tuple[float, float] | str:
    if text.strip() == "min":
        return "min"
    try:
        x0, y0 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise CorrelateError(f"--origin {text!r}: expected X0,Y0 in nm or 'min'", field="origin") from exc
    return x0, y0


def _rows(scene, args, out: Path) -> tuple[dict, list[str]]:
    if not args.name:
        raise CorrelateError(f"{args.what} needs --name NAME", field="name")
    kind = scene.kind(args.name)
    want = "table" if args.what == "table" else "localizations"
    if kind != want:
        raise CorrelateError(f"{args.name!r} is {kind}, not {want}", field="name")
    df = scene.get(args.name)
    if args.what == "localizations" and args.to:
        df = scene.map_points(df, args.name, args.to, assume_aligned=args.assume_aligned)
    where = f" in {args.to} coordinates" if args.what == "localizations" and args.to else ""
    fmt = args.format or "csv"
    if args.what == "table" and fmt != "csv":
        raise CorrelateError(f"--format {fmt} is for localizations; a table is written as CSV", field="format")
    doc = {"element": args.name, "kind": kind, "n_rows": len(df), "format": fmt,
           "coordinates": (args.to or args.name) if args.what == "localizations" else None}
    if fmt == "csv":
        df.to_csv(out, index=False)
        doc["files"] = [str(out)]
        return doc, [f"wrote {out}: {len(df)} rows{where} (lengths in nm)"]
    from ..io import write_localizations

    opts = {"pixel_size_nm": args.pixel_size} if fmt == "picasso" and args.pixel_size else {}
    if args.origin is not None:
        if fmt != "picasso":
            raise CorrelateError("--origin is for --format picasso", field="origin")
        opts["origin_nm"] = _origin_arg(args.origin)
    written = write_localizations(out, df, format=fmt, **opts)
    doc["files"] = [str(p) for p in (written if isinstance(written, tuple) else (written,))]
    return doc, [f"wrote {', '.join(doc['files'])}: {len(df)} localizations{where} as {fmt}"]


def _render(scene, args, out: Path) -> tuple[dict, list[str]]:
    import numpy as np
    import tifffile

    from ..render import render

    names = [n.strip() for n in (args.name or "").split(",") if n.strip()]
    if not names:
        names = scene.names(kind="localizations")
    if not names:
        raise CorrelateError("the store has no localizations to render", path=scene.path)
    kw: dict = {}
    if args.to:
        if scene.kind(args.to) not in ("image", "labels"):
            raise CorrelateError(f"render --to needs an image whose grid to use; {args.to!r} is "
                                 f"{scene.kind(args.to)}", field="to")
        kw["like"] = scene.get(args.to)
        locs = {n: scene.map_points(scene.get(n), n, args.to, assume_aligned=args.assume_aligned) for n in names}
    else:
        if args.pixel_size is None:
            raise CorrelateError("render needs --pixel-size NM (or --to IMAGE for its grid)", field="pixel_size")
        kw["pixel_size_nm"] = args.pixel_size
        locs = {n: scene.get(n) for n in names}
    img = render(locs, method=args.method, **kw)
    data = np.asarray(img.transpose("c", "y", "x").values, dtype=np.float32)
    px = float(img.coords["x"].values[1] - img.coords["x"].values[0]) if img.sizes["x"] > 1 else kw.get("pixel_size_nm", 1.0)
    tifffile.imwrite(out, data, imagej=True, resolution=(1e3 / px, 1e3 / px),
                     metadata={"axes": "CYX", "unit": "um", "Labels": names})
    x0, y0 = float(img.coords["x"].values[0]), float(img.coords["y"].values[0])
    doc = {"files": [str(out)], "channels": names, "width_px": int(data.shape[2]), "height_px": int(data.shape[1]),
           "pixel_size_nm": px, "origin_nm": {"x": x0, "y": y0}, "grid_of": args.to, "method": args.method}
    return doc, [f"wrote {out}: {len(names)} channel(s) {names}, {data.shape[2]} x {data.shape[1]} px at {px:g} nm, "
                 f"origin (centre of pixel 0) x {x0:g} nm, y {y0:g} nm"]


_STEPS = {"spatialdata": _spatialdata, "displacements": _displacements, "bigwarp": _bigwarp, "matrix": _matrix,
          "table": _rows, "localizations": _rows, "render": _render}


@json_command
def run(args: argparse.Namespace) -> int:
    from ..scene import Scene

    scene = Scene.open(args.store, mode="r")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc, lines = _STEPS[args.what](scene, args, out)
    if args.json:
        emit({"what": args.what, "store": str(args.store), "output": str(out), **doc})
    else:
        for line in lines:
            print(line)
    return 0
