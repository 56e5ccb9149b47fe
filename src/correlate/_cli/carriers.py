"""``correlate carriers STORE --labels A[,B...]``: structures of one or more labels from SMLM alone,
counted per label, with each carrier's state (intact or disassembled)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._json import add_json_flag, emit, json_command

NAME = "carriers"
ORDER = 62
HELP = "structures clustered over one or more labels, counted per label, with each carrier's state"
DESCRIPTION = (
    "Cluster the localizations of the given labels together into structures (eps and min_samples "
    "estimated as for `correlate clusters`, printed), count each label's molecules per structure "
    "(blink events grouped into emitter sites, colour by colour), and call each structure intact or "
    "disassembled from the compactness of its localizations against the shell model of its size and "
    "localization precision: the statistic's null distribution is simulated per structure (its sites, "
    "radius and errors), a structure is disassembled when its p-value is below --alpha (or its "
    "statistic above --threshold), undetermined when it has too few sites or the test too little "
    "power against a cloud. The sample's fraction of intact carriers among the decided ones is the "
    "called fraction corrected for the test's level and power, with a 95 % interval. The table (particle_id, x, y, "
    "equivalent_diameter_nm, n_molecules_<label> per label, compactness, state_p, state, ...) is "
    "stored as correlate/tables/<name> (default carriers); `correlate exchange` and `correlate "
    "accessibility` read it with --table carriers."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="a correlate store (.ome.zarr)")
    p.add_argument("--labels", required=True, metavar="A[,B...]", help="localization elements clustered together")
    p.add_argument("--table", default="carriers", help="name of the stored table (default: carriers)")
    p.add_argument("-o", "--output", help="also write the table to this .csv or .parquet file")
    p.add_argument("--eps", type=float, default=None, metavar="NM", help="DBSCAN radius (default: estimated)")
    p.add_argument("--min-samples", type=int, default=None, metavar="N", help="DBSCAN core count (default: estimated)")
    p.add_argument("--label-offset-nm", type=float, default=0.0, metavar="NM",
                   help="label distance outside the particle surface, subtracted from the size (default 0)")
    p.add_argument("--statistic", choices=("shape", "spread"), default="shape",
                   help="compactness statistic: normalised fourth radial moment (shape, default) or radial "
                   "spread against the shell of the fitted size (spread)")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the per-structure test (default 0.05)")
    p.add_argument("--threshold", type=float, default=None,
                   help="call disassembled above this statistic instead of by p-value")
    p.add_argument("--n-null", type=int, default=100, help="Monte-Carlo replicates of the shell model and of a cloud (default 100)")
    p.add_argument("--min-sites", type=int, default=5, help="fewer emitter sites: state undetermined (default 5)")
    p.add_argument("--assume-aligned", action="store_true",
                   help="the labels' frames are one (colours of one acquisition, aligned already): join "
                   "them without a registration or declaration")
    p.add_argument("--min-power", type=float, default=0.8,
                   help="structures whose test would detect a disassembled one (a Gaussian cloud) with a lower "
                   "probability are undetermined (default 0.8; 0: decide all)")
    p.add_argument("--cloud-sd", type=float, default=1.0, metavar="R",
                   help="the disassembled carrier the power is computed against: a Gaussian cloud of this "
                   "standard deviation in shell radii (default 1)")
    p.add_argument("--keep-fiducials", action="store_true", help="do not leave out fiducial tracks first")
    p.add_argument("--plot", metavar="OUT.png", help="observed statistic against the shell model's, calls coloured")
    p.add_argument("--no-store", action="store_true", help="do not write the table into the store")
    add_json_flag(p)


@json_command
def run(args) -> int:
    from ..analysis._carrier_clusters import structures_from_scene
    from ..analysis._carrier_state import CarrierState
    from ..analysis._clusters import ClusterOptions
    from ..errors import CorrelateError
    from ..scene import Scene

    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    if not labels:
        raise CorrelateError(f"--labels needs at least one element, got {args.labels!r}", field="labels")
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CorrelateError(f"output must end in .csv or .parquet, got {out.name!r}", path=out)
    scene = Scene.open(args.store, mode="r" if args.no_store else "r+")
    opts = ClusterOptions(eps_nm=args.eps, min_samples=args.min_samples, label_offset_nm=args.label_offset_nm)
    state_kw = {"statistic": args.statistic, "alpha": args.alpha, "threshold": args.threshold,
                "n_null": args.n_null, "min_sites": args.min_sites, "min_power": args.min_power,
                "cloud_sd": args.cloud_sd}
    res = structures_from_scene(scene, labels, opts, exclude_fiducial_tracks=not args.keep_fiducials,
                                store=not args.no_store, table_name=args.table, state_kwargs=state_kw,
                                assume_aligned=args.assume_aligned)
    t = res.table
    if out is not None:
        t.to_csv(out, index=False) if out.suffix.lower() == ".csv" else t.to_parquet(out, index=False)
    p, st = res.parameters, res.parameters.get("state", {})
    if args.plot and st:
        from ..plot import save_figure

        cols = ["particle_id", "compactness", "compactness_null_median", "compactness_critical", "state_p",
                "intact", "state"]
        save_figure(CarrierState(t[cols], st).plot(), args.plot)
    doc = {"labels": labels, "n_structures": int(len(t)), "table": args.table,
           "clustering": {k: p.get(k) for k in ("eps_nm", "min_samples", "precision_nm", "source", "n_fiducial_track")},
           "molecules_per_label": {lab: float(t[f"n_molecules_{lab}"].sum()) for lab in labels}, "state": st}
    if args.json:
        emit(doc)
        return 0
    src = p.get("source", {})
    print(f"{len(t)} structures of {', '.join(labels)}: eps {p['eps_nm']:.3g} nm ({src.get('eps_nm')}), "
          f"min_samples {p['min_samples']} ({src.get('min_samples')}), precision {p['precision_nm']:.3g} nm "
          f"({src.get('precision_nm')}); {p.get('n_fiducial_track', 0)} fiducial-track localizations left out")
    if st:
        thr = (f"statistic above {st['threshold']:g} (user)" if st["threshold"] is not None else
               f"p < alpha = {st['alpha']:g} under the shell model (median critical {st['statistic']} value "
               f"{st['critical_median']:.3g})")
        print(f"state ({st['statistic']} statistic, {st['n_null']} null replicates): disassembled when {thr}")
        print(f"  {st['n_called_intact']} intact, {st['n_called_disassembled']} disassembled, "
              f"{st['n_undetermined']} undetermined ({st['n_few_sites']} with < {st['min_sites']} sites, the rest "
              f"with a power below {st['min_power']:g} against a cloud); fraction intact of the decided "
              f"{st['fraction_intact']:.3f} [{st['fraction_intact_lo']:.3f}, {st['fraction_intact_hi']:.3f}] (95 %)")
    if not args.no_store:
        print(f"stored table {args.table!r} in {args.store}")
    return 0
