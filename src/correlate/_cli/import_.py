"""``correlate import``: bring microscopy files into a scene store, in nanometres."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._json import add_json_flag, emit, json_command

NAME = "import"
ORDER = 20
HELP = "read files (SMLM tables, SIM/STED, EM, AFM images) into a scene store"
DESCRIPTION = (
    "Read each FILE with the reader its suffix and first bytes select, convert every length to nm, "
    "and add it to STORE (created if absent) as a new element. Prints what was read: format, "
    "shape or row count, pixel size, units and any assumption the reader made."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="scene store (.ome.zarr folder); created if absent")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    p.add_argument("--name", help="element name (default: the file name without suffix); "
                   "with several files, used as a prefix")
    p.add_argument("--modality", choices=["smlm", "sim", "sted", "lm", "em", "afm"],
                   help="override the modality the reader assumes")
    p.add_argument("--pixel-size", type=float, metavar="NM",
                   help="pixel size in nm, for files without a calibration (or camera pixel size for px tables)")
    p.add_argument("--channel", help="localization tables: the channel name to give them; images: "
                   "the channel (index or name) to read")
    p.add_argument("--series", help="files holding several images (LIF, OME-TIFF): which one (index or name)")
    p.add_argument("--frame", type=int, help="time series and image stacks: which frame/plane to read (0-based)")
    p.add_argument("--format", help="force a reader by name instead of detecting it")
    p.add_argument("--overwrite", action="store_true", help="replace elements of the same name")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="memory the import may use (e.g. 4GiB, 800MB; default half the available memory, "
                        "printed); localization tables whose in-memory read would exceed it are streamed")
    p.add_argument("--stream", choices=["auto", "always", "never"], default="auto",
                   help="localization tables: read in batches always, never, or as the memory budget decides "
                        "(default auto)")
    add_json_flag(p)


def _element_name(path: Path, args, n_files: int, index: int) -> str:
    stem = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = path.stem
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip("._") or f"element{index}"
    if args.name and n_files == 1:
        return args.name
    if args.name:
        return f"{args.name}_{safe}"
    return safe


def describe(element) -> str:
    """One line about an element just read: kind, size, pixel size / columns, notes."""
    from ..elements import element_kind, pixel_size

    kind = element_kind(element)
    fmt = element.attrs.get("source_format", "?")
    if kind == "image":
        px = ", ".join(f"{d}={v:.5g}" for d, v in pixel_size(element).items())
        shape = "x".join(str(s) for s in element.shape)
        vu = element.attrs.get("value_unit") or "-"
        line = f"{fmt}: image {shape} ({','.join(element.dims)}), pixel size nm: {px}, values: {vu}, modality {element.attrs.get('modality')}"
    else:
        cols = ", ".join(element.columns[:12]) + (" ..." if len(element.columns) > 12 else "")
        base = element.attrs.get("frame_base")
        line = f"{fmt}: {len(element)} localizations, columns [{cols}] (x, y in nm"
        line += f"; file frames {base}-based, stored 0-based)" if base is not None else ")"
    notes = element.attrs.get("notes") or []
    if notes:
        line += "\n    assumptions: " + "; ".join(str(n) for n in notes)
    return line


def element_facts(element) -> dict:
    """What :func:`describe` says, as JSON-ready values: reader, kind, shape or rows, pixel size
    (nm), value unit, modality, columns, frame base and the reader's assumptions."""
    from ..elements import element_kind, pixel_size

    kind = element_kind(element)
    d = {"reader": element.attrs.get("source_format"), "kind": kind, "modality": element.attrs.get("modality")}
    if kind == "image":
        d.update(dims=list(element.dims), shape=list(element.shape), pixel_size_nm=pixel_size(element),
                 value_unit=element.attrs.get("value_unit"))
    else:
        d.update(n_rows=len(element), columns=[str(c) for c in element.columns],
                 frame_base=element.attrs.get("frame_base"),
                 camera_pixel_size_nm=element.attrs.get("camera_pixel_size_nm"))
    d["assumptions"] = [str(n) for n in element.attrs.get("notes") or []]
    return d


def _streamed_facts(res: dict) -> dict:
    attrs = res.get("attrs", {})
    return {"reader": res["reader"], "kind": "localizations", "modality": attrs.get("modality"),
            "n_rows": res["n_rows"], "columns": res["columns"], "frame_base": attrs.get("frame_base"),
            "camera_pixel_size_nm": attrs.get("camera_pixel_size_nm"),
            "assumptions": [str(n) for n in attrs.get("notes") or []]}


@json_command
def run(args) -> int:
    from ..errors import StoreError
    from ..io import read
    from ..io._import import import_file
    from .._store.paths import check_name
    from ..scene import Scene

    from ..io._store_remote import as_store_path, exists, is_url

    store = as_store_path(args.store) if is_url(args.store) else Path(args.store)
    files = [Path(f) for f in args.files]
    # Names and the store are checked before any file is read, and nothing is added unless every
    # element can be: a clash on the third file must not leave the first two in the store.
    names = [_element_name(f, args, len(files), i) for i, f in enumerate(files)]
    for name in names:
        check_name(name)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StoreError(f"several files would become element {dup[0]!r}; rename them or use --name PREFIX",
                         path=store, field="name")
    scene = Scene.open(store, mode="r+") if exists(store) else None
    if scene is not None and not args.overwrite:
        clash = [n for n in names if n in scene]
        if clash:
            raise StoreError(f"element(s) {clash} already exist; pass --overwrite to replace them",
                             path=store, field="name")
    overrides = {}
    if args.pixel_size is not None:
        overrides["pixel_size_nm"] = args.pixel_size
    for key in ("channel", "series", "frame"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = int(value) if key == "series" and str(value).isdigit() else value
    from ..io._import import plan_import
    from ..io._memory_budget import memory_budget

    budget = memory_budget(args.memory_budget)
    force = {"auto": None, "always": True, "never": False}[args.stream]
    plans = [plan_import(f, format=args.format, memory_budget_bytes=budget, stream=force) for f in files]
    if not args.json and any(pl.mode == "stream" or pl.est_rows for pl in plans):
        print(budget.describe())
    # Read what fits in memory first: a bad file stops the import before anything lands in the store
    # (a streamed file is read inside the transaction, which a failure aborts).
    elements = []
    for f, name, pl in zip(files, names, plans):
        if pl.mode == "stream":
            elements.append((name, None))
            if not args.json:
                print(f"{f}: -> '{name}'\n  {pl.reader}: {pl.describe()}")
            continue
        element = read(f, modality=args.modality, format=args.format, **overrides)
        elements.append((name, element))
        if not args.json:
            print(f"{f}: -> '{name}'\n  {describe(element)}")
    if scene is None:
        try:
            scene = Scene.create(store)
        except StoreError:
            if not (store / "zarr.json").exists():
                raise
            scene = Scene.open(store, mode="r+")  # another import created it meanwhile
    # one transaction: every file lands, or none does
    streamed = {}
    with scene.transaction(f"import of {len(elements)} file(s)"):
        for f, (name, element), pl in zip(files, elements, plans):
            if element is None:
                streamed[name] = import_file(scene, f, name, plan=pl, overwrite=args.overwrite,
                                             modality=args.modality, format=args.format, **overrides)
                if not args.json:
                    print(f"  '{name}': {streamed[name]['n_rows']} localizations streamed, columns "
                          f"[{', '.join(streamed[name]['columns'][:12])}]")
            else:
                scene.add(name, element, overwrite=args.overwrite)
    if args.json:
        emit({"store": str(store), "n_added": len(elements), "memory_budget": budget.record(),
              "files": [{"file": str(f), "element": name, "plan": pl.record(),
                         **(element_facts(el) if el is not None else _streamed_facts(streamed[name]))}
                        for f, (name, el), pl in zip(files, elements, plans)]})
    else:
        print(f"{store}: {len(elements)} element(s) added")
    return 0
