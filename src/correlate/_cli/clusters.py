"""``correlate clusters STORE --labels NAME``: particles from SMLM alone (a per-particle table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._json import add_json_flag, emit, json_command

NAME = "clusters"
HELP = "cluster the localizations of one label into particles (per-particle table, SMLM alone)"
ORDER = 61
DESCRIPTION = (
    "Cluster the localizations of one SMLM element into particles (DBSCAN) and measure each one: "
    "centre, size corrected for localization precision and label offset (a shell or ball fitted to "
    "the radial distribution of its blink events), shape (ellipse), localizations and molecules. "
    "eps comes from the valley in the minimum-spanning-tree edge lengths and min_samples from the "
    "background density unless given; both are printed with where they came from. Fiducial tracks "
    "(persistent emitters) are left out first. The table (particle_id, x, y in the label's own "
    "frame, equivalent_diameter_nm, n_localizations_<label>, n_molecules_<label>, ...) is stored "
    "as correlate/tables/<name> (default clusters_<label>); -o also writes CSV or Parquet."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="a correlate store (.ome.zarr)")
    parser.add_argument("--labels", required=True, help="the localization element to cluster, e.g. antibody")
    parser.add_argument("-o", "--output", default=None, help="also write the table to this .csv or .parquet file")
    parser.add_argument("--table", default=None, help="name of the table in the store (default: clusters_<label>)")
    parser.add_argument("--eps", type=float, default=None, metavar="NM",
                        help="DBSCAN radius (nm; default: estimated from the minimum spanning tree)")
    parser.add_argument("--min-samples", type=int, default=None, metavar="N",
                        help="DBSCAN core count (default: estimated from the background density)")
    parser.add_argument("--model", default="shell", choices=["shell", "ball", "sphere"],
                        help="labels on the particle surface (shell) or filling it (ball); default shell")
    parser.add_argument("--label-offset-nm", type=float, default=0.0, metavar="NM",
                        help="distance of the label outside the particle surface (linker + label), "
                        "subtracted from the radius (default 0: the label shell's own size)")
    parser.add_argument("--precision-nm", type=float, default=None, metavar="NM",
                        help="localization precision (nm, per axis) used in place of the table's "
                        "(default: the precision column, else estimated by NeNA)")
    parser.add_argument("--keep-fiducials", action="store_true",
                        help="do not leave out fiducial tracks (persistent emitters) before clustering")
    parser.add_argument("--min-persistence", type=float, default=None, metavar="F",
                        help="fiducial detector: fraction of frames a bead is on (default: estimated)")
    parser.add_argument("--no-store", action="store_true", help="do not write the table into the store")
    add_json_flag(parser)


def _fmt(v, nd: int = 1) -> str:
    try:
        return f"{float(v):.{nd}f}"
    except (TypeError, ValueError):
        return str(v)


def summary_lines(s: dict) -> list[str]:
    """Human-readable lines of :func:`~correlate.analysis._clusters_scene.cluster_table_summary`."""
    src = s.get("source", {})
    d, m = s["diameter_nm"], s["molecules_per_particle"]
    lines = [
        f"label {s['label']!r}: {s['n_localizations']} localizations clustered "
        f"({s['n_fiducial_track']} on fiducial tracks left out)",
        f"eps {_fmt(s['eps_nm'])} nm ({src.get('eps_nm')}), min_samples {s['min_samples']} "
        f"({src.get('min_samples')}), precision {_fmt(s['precision_nm'])} nm ({src.get('precision_nm')})",
    ]
    if src.get("eps_nm") == "estimated":
        how = (f"first plateau {_fmt(s['plateau_nm'][0])}-{_fmt(s['plateau_nm'][1])} nm with "
               f"{s.get('plateau_clusters')} groups" if s.get("eps_rule") == "plateau" else "start of the valley floor")
        lines.append(f"  minimum-spanning-tree edges: main mode {_fmt(s.get('main_edge_nm'))} nm, deepest valley "
                     f"{_fmt(s.get('valley_deepest_nm'))} nm; eps from the {how}; background "
                     f"{_fmt(1e6 * s.get('background_density_per_nm2', float('nan')), 2)} localizations/um^2")
    lines += [
        f"{s['n_particles']} particles; equivalent diameter ({s['model']} model, label offset "
        f"{_fmt(s['label_offset_nm'])} nm) D10 {_fmt(d['D10'])} nm, D50 {_fmt(d['D50'])} nm, D90 {_fmt(d['D90'])} nm",
        f"molecules per particle: median {_fmt(m['median'])} (IQR {_fmt(m['q25'])}-{_fmt(m['q75'])})",
    ]
    return lines


@json_command
def run(args: argparse.Namespace) -> int:
    from ..analysis._clusters import ClusterOptions
    from ..analysis._clusters_scene import cluster_label, cluster_table_summary
    from ..errors import CorrelateError
    from ..scene import Scene

    label = str(args.labels).strip()
    if not label or "," in label:
        raise CorrelateError(f"--labels takes one localization element to cluster, got {args.labels!r}",
                             field="labels")
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CorrelateError(f"output must end in .csv or .parquet, got {out.name!r}", path=out)
    opts = ClusterOptions(eps_nm=args.eps, min_samples=args.min_samples, model=args.model,
                          label_offset_nm=args.label_offset_nm, precision_nm=args.precision_nm)
    fid_kw = {} if args.min_persistence is None else {"min_persistence": args.min_persistence}
    scene = Scene.open(args.store, mode="r" if args.no_store else "r+")
    if label not in scene:
        raise CorrelateError(f"no element {label!r} in {args.store}; localization elements: "
                             f"{', '.join(scene.names('localizations')) or 'none'}", path=args.store, field="labels")
    res = cluster_label(scene, label, opts, exclude_fiducial_tracks=not args.keep_fiducials,
                        fiducial_kwargs=fid_kw, store=not args.no_store, table_name=args.table)
    if out is not None:
        if out.suffix.lower() == ".csv":
            res.table.to_csv(out, index=False)
        else:
            res.table.to_parquet(out, index=False)
    s = cluster_table_summary(res, label)
    if args.json:
        emit(s)
    else:
        for line in summary_lines(s):
            print(line)
        if not args.no_store:
            print(f"stored table {res.parameters['table']!r} ({s['n_particles']} rows, frame "
                  f"{res.parameters['coordinate_system']!r}) in {args.store}")
        if out is not None:
            print(f"wrote {out}")
    return 0
