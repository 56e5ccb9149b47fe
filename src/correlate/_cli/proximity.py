"""``correlate proximity STORE --to TARGET``: each particle's distance to the nearest object."""

from __future__ import annotations

import argparse

from ._args import add_store_argument

from ._json import add_json_flag, emit, json_command

NAME = "proximity"
ORDER = 62
HELP = "distance of each particle to the nearest object of another segmentation or element, against a random control"
DESCRIPTION = (
    "For every particle of a per-particle table, the signed distance (nm, negative inside) from its "
    "centre to the nearest object of TARGET: a label image (e.g. em/labels/organelles), an image "
    "channel segmented at a threshold (Otsu's unless --threshold), localizations or another table "
    "(nearest point); gap_nm = distance - radius. Each distance carries its error (predicted "
    "registration error between the frames and the target's pixel). The same distances of random "
    "positions in the area (--area, default the particles' structure image) are the control; a "
    "Kolmogorov-Smirnov test compares them. --store adds proximity_nm_<target>, "
    "proximity_sd_nm_<target> and gap_nm_<target> to the stored table."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--to", required=True, metavar="TARGET", help="label image, image, localizations or table")
    p.add_argument("--particles", default="particles", help="the per-particle table (default: particles)")
    p.add_argument("--channel", help="image targets: the channel to segment")
    p.add_argument("--threshold", type=float, help="image targets: intensity threshold (default: Otsu's, estimated)")
    p.add_argument("--area", metavar="ELEMENT", help="where particles could sit, for the control (label image or image)")
    p.add_argument("--n-control", type=int, default=2000, help="random control positions (default 2000)")
    p.add_argument("--seed", type=int, help="seed of the control")
    p.add_argument("--assume-aligned", action="store_true",
                   help="measure even when no registration places the particles and the target in one frame")
    p.add_argument("-o", "--output", help="write the per-particle distances (.csv or .parquet)")
    p.add_argument("--plot", metavar="OUT.png", help="cumulative distributions of particles and control")
    p.add_argument("--store", dest="store_columns", action="store_true", help="add the distance columns to the stored table")
    add_json_flag(p)


def _column_suffix(target: str) -> str:
    return target.replace("/labels/", "_").replace("/", "_")


@json_command
def run(args) -> int:
    from ..analysis import ProximityOptions, proximity
    from ..scene import Scene

    scene = Scene.open(args.store, mode="r+" if args.store_columns else "r")
    opts = ProximityOptions(channel=args.channel, threshold=args.threshold, area=args.area,
                            n_control=args.n_control, seed=args.seed, assume_aligned=args.assume_aligned)
    res = proximity(scene, args.to, args.particles, opts)
    s = res.summary
    if args.output:
        out = res.table
        out.to_parquet(args.output, index=False) if str(args.output).endswith(".parquet") else out.to_csv(args.output, index=False)
    if args.plot:
        from ..plot import save_figure

        save_figure(res.plot(), args.plot)
    if args.store_columns:
        suffix = _column_suffix(args.to)
        table = scene.get(args.particles)
        by_id = res.table.set_index("particle_id")
        for col, src in (("proximity_nm", "distance_nm"), ("proximity_sd_nm", "distance_sd_nm"), ("gap_nm", "gap_nm")):
            table[f"{col}_{suffix}"] = table["particle_id"].map(by_id[src]).to_numpy()
        scene.add_table(args.particles, table, label_image=table.attrs.get("label_image"), overwrite=True)
    if args.json:
        emit(s)
        return 0
    thr = f"; threshold {s['threshold']:.4g} ({s['threshold_source']})" if "threshold" in s else ""
    print(f"{s['n_particles']} particles of {args.particles!r} to the nearest {args.to!r} ({s['target_kind']}{thr})")
    print(f"  distance median {s['median_distance_nm']:.1f} nm (error median {s['median_distance_sd_nm']:.2g} nm); "
          f"random control median {s['median_control_nm']:.1f} nm over {s['n_control']} positions")
    print(f"  Kolmogorov-Smirnov: D = {s['ks_statistic']:.3f}, p = {s['ks_pvalue']:.3g}"
          + (" (the particles are placed differently from chance)" if s["ks_pvalue"] < 0.01 else ""))
    for f, what in ((args.output, "distances"), (args.plot, "plot")):
        if f:
            print(f"  wrote {what}: {f}")
    if args.store_columns:
        print(f"  stored columns proximity_nm_{_column_suffix(args.to)}, ... in table {args.particles!r}")
    return 0
