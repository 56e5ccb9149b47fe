"""``correlate info STORE``: what a scene store holds (or what a single data file contains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import STORE_HELP, add_store_argument
from ._json import add_json_flag, json_command

NAME = "info"
HELP = "show what a correlate store (or a data file) contains"
ORDER = 10
DESCRIPTION = (
    "Print the elements of a correlate OME-Zarr store (kind, shape or row count, pixel size in nm, "
    "modality), its coordinate systems, the transforms to world and what is stored under "
    "correlate/ (landmarks, registrations, tables, history). Given a data file instead of a "
    "store, read it and describe the element."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser, "path", help=f"{STORE_HELP} or a data file")
    parser.add_argument("--quality", action="store_true",
                        help="also measure each localization set: NeNA precision, FRC resolution, fiducials "
                        "(seconds per million localizations)")
    add_json_flag(parser)


def _describe_element(path: Path, el) -> str:
    from ..elements import element_kind, pixel_size

    kind = element_kind(el)
    lines = [f"{path}: {kind}"]
    if kind == "image":
        lines.append(f"  dims {tuple(el.dims)}, shape {tuple(el.shape)}, dtype {el.dtype}")
        lines.append(f"  pixel size (nm): {pixel_size(el)}")
        lines.append(f"  modality {el.attrs.get('modality')}, value unit {el.attrs.get('value_unit') or '-'}")
    else:
        lines.append(f"  {len(el)} rows, columns {list(el.columns)}")
        for k in ("source_format", "frame_base", "camera_pixel_size_nm", "units"):
            if k in el.attrs:
                lines.append(f"  {k}: {el.attrs[k]}")
    return "\n".join(lines)


def _quality_lines(name: str, df) -> list[str]:
    from ..smlm import summary

    s = summary(df)
    parts = []
    for key, label in (("median_precision_nm", "median precision"), ("nena_precision_nm", "NeNA precision"),
                       ("frc_resolution_nm", "FRC resolution")):
        if key in s and s[key] is not None:
            parts.append(f"{label} {s[key]:.1f} nm")
    if "n_fiducials" in s:
        parts.append(f"{s['n_fiducials']} fiducial(s)")
    errors = [f"{k[:-6]}: {v}" for k, v in s.items() if k.endswith("_error")]
    lines = [f"  {name:<20} " + ("; ".join(parts) or "no quality figures")]
    lines += [f"  {'':<20} (not measured - {e})" for e in errors]
    return lines


def placement_lines(scene) -> list[str]:
    """Per image and localization element: placed (anchor, how) or unplaced (why)."""
    lines = ["  placement (joins need a shared anchor; see correlate register, --assume-aligned):"]
    names = scene.names("image") + scene.names("localizations")
    places = {n: scene.placement(n) for n in names}
    anchors = {p.anchor for n, p in places.items() if p.anchor != n}
    for name, p in places.items():
        if p.placed:
            state = f"placed, anchor {p.anchor} - {p.reason}"
        elif name in anchors:
            state = "reference (other elements are placed in its frame)"
        elif p.anchor != name:
            state = f"unplaced, in {p.anchor}'s frame - {p.reason}"
        else:
            state = f"unplaced - {p.reason}"
        lines.append(f"    {name}: {state}")
    return lines


@json_command
def run(args: argparse.Namespace) -> int:
    from ..errors import StoreError
    from ..scene import Scene

    from ..io._store_remote import as_store_path, exists, is_url

    path = as_store_path(args.path) if is_url(args.path) else Path(args.path)
    if not exists(path):
        raise StoreError("no such store or file", path=path)
    if is_url(args.path) or path.is_dir():
        scene = Scene.open(path, "r")
        if args.json:
            from ._info_json import store_document
            from ._json import emit

            emit(store_document(scene, with_quality=args.quality))
            return 0
        print(scene.info())
        print("\n".join(placement_lines(scene)))
        if args.quality:
            print("\nlocalization quality:")
            for name in scene.names("localizations"):
                print("\n".join(_quality_lines(name, scene.get(name))))
    else:
        from ..elements import element_kind
        from ..io import read

        el = read(path)  # once: a data file can be large
        if args.json:
            from ._info_json import file_document
            from ._json import emit

            emit(file_document(path, el, with_quality=args.quality))
            return 0
        print(_describe_element(path, el))
        if args.quality:
            if element_kind(el) == "localizations":
                print("\n".join(_quality_lines(path.name, el)))
    return 0
