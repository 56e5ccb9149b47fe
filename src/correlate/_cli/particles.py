"""``correlate particles STORE --structure NAME --labels A[,B...]``: the per-particle table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._json import add_json_flag, emit, json_command

NAME = "particles"
HELP = "segment particles and join them with localization labels (per-particle table)"
ORDER = 60
DESCRIPTION = (
    "Segment particles in an EM or AFM image of a store, measure them in nm (area, equivalent "
    "diameter, Feret, circularity, eccentricity; AFM heights and volume), assign the localizations "
    "of each label to particles within a shell of linker length plus the predicted registration "
    "error and localization precision, count molecules (blink grouping), compute CBC "
    "colocalization between labels, and store the table (correlate/tables/<name>) and the label "
    "image (<structure>/labels/particles). Prints a summary; -o also writes CSV or Parquet. A label "
    "that no registration placed in the structure's frame is refused (naming the registration to "
    "run) unless --assume-aligned; a label of which no localization is assigned is warned about "
    "with its likely cause; an unknown predicted TRE is printed as 'unknown'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="a correlate store (.ome.zarr)")
    parser.add_argument("--structure", default="em", help="EM or AFM image holding the particles (default: em)")
    parser.add_argument("--labels", default="", help="comma-separated localization elements, e.g. antibody,corona")
    parser.add_argument("-o", "--output", default=None, help="also write the table to this .csv or .parquet file")
    parser.add_argument("--table", default="particles", help="name of the table in the store (default: particles)")
    parser.add_argument("--linker-nm", type=float, default=10.0, help="label distance outside the particle edge (nm)")
    parser.add_argument("--n-sigma", type=float, default=2.0, help="shell: multiple of sqrt(TRE^2 + precision^2)")
    parser.add_argument("--precision-nm", type=float, default=None, metavar="NM",
                        help="localization precision (nm, per axis) in place of the table's "
                        "(default: the precision column, else estimated by NeNA)")
    parser.add_argument("--tre-nm", default="auto", help="'auto' (from the stored registration) or a number (nm)")
    parser.add_argument(
        "--events-per-molecule",
        default="auto",
        help="a number, NAME of a sparse calibration localization element in the store (one per label: "
        "LABEL=NAME,...), or 'auto' (estimated from the data; approximate)",
    )
    parser.add_argument("--detection-efficiency", type=float, default=1.0, help="fraction of molecules that blink at all")
    parser.add_argument(
        "--count-method",
        default=None,
        help="molecules from 'events' (events / events per molecule) or 'sites' (events grouped into "
        "emitter sites by position); one value or LABEL=METHOD,... (default: the library default)",
    )
    parser.add_argument("--blink-radius-nm", type=float, default=None,
                        help="blink grouping radius (nm; default per pair: 2 x the root sum square of the two "
                        "localizations' precisions)")
    parser.add_argument("--max-dark-frames", type=int, default=1,
                        help="frames an on-event may miss and still count as one event (default 1)")
    parser.add_argument("--cbc-radius-nm", type=float, default=None,
                        help="CBC colocalization radius (nm; default the median particle diameter, at least 50)")
    parser.add_argument("--min-diameter-nm", type=float, default=None, help="smallest particle kept (nm)")
    parser.add_argument("--max-diameter-nm", type=float, default=None,
                        help="largest particle kept (nm); in blocks, it sets the overlap (default: the background block)")
    parser.add_argument("--memory-budget", default=None, metavar="SIZE",
                        help="memory the EM segmentation may use, e.g. 2GiB; a larger image is segmented in blocks "
                             "(default: a quarter of the available memory, at most 2 GiB)")
    parser.add_argument("--block-px", type=int, default=None,
                        help="segment the EM image in blocks of this side (px) instead of the memory budget's choice")
    parser.add_argument("--psf-sigma-nm", type=float, default=None, help="EM blur sigma (nm) for the edge correction")
    parser.add_argument("--no-store", action="store_true", help="do not write the table and labels into the store")
    parser.add_argument("--assume-aligned", action="store_true",
                        help="join labels that no registration placed with the structure (the frames are "
                        "already aligned); their predicted TRE is then unknown")
    parser.add_argument("--aggregate", action="append", default=[], metavar="COLUMN:STAT",
                        help="aggregate a localization column per particle and label (repeatable): STAT is mean, "
                             "median, std, min, max, sum, count, wmean (precision-weighted), qNN (percentile), "
                             "frac>V or frac<V; adds <stat>_<column>_<label>")
    parser.add_argument("--event-rate", action="store_true",
                        help="add event_rate_<label> (on-events per nm^2 of particle surface per frame) with its "
                             "95 %% Poisson interval")
    parser.add_argument("--n-frames", type=int, metavar="N",
                        help="frames of the acquisition for --event-rate (default: each label's frame span)")
    add_json_flag(parser)


def _num_or_auto(v: str, what: str):
    from ..errors import CorrelateError

    if v == "auto":
        return "auto"
    try:
        return float(v)
    except ValueError:
        raise CorrelateError(f"{what} must be 'auto' or a number, got {v!r}", field=what) from None


def _events_arg(v: str):
    """'auto', a number, an element name, or LABEL=VALUE pairs separated by commas."""
    if "=" in v:
        out = {}
        for part in v.split(","):
            k, _, val = part.partition("=")
            out[k.strip()] = _events_arg(val.strip())
        return out
    try:
        return float(v)
    except ValueError:
        return v


def _method_arg(v: str):
    """'events' / 'sites', or LABEL=METHOD pairs separated by commas."""
    from ..errors import CorrelateError

    def one(m: str) -> str:
        m = m.strip()
        if m not in ("events", "sites"):
            raise CorrelateError(f"--count-method must be 'events' or 'sites', got {m!r}", field="count-method")
        return m

    if "=" in v:
        return {k.strip(): one(val) for k, _, val in (part.partition("=") for part in v.split(","))}
    return one(v)


def _fmt(x, nd=1) -> str:
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return str(x)


def _tre_text(t, L: str, info) -> str:
    """'unknown', or the median predicted TRE at the particles (nm) and where it comes from."""
    import numpy as np

    col = f"tre_nm_{L}"
    v = t[col].to_numpy(float) if col in t.columns and len(t) else np.zeros(0)
    v = v[np.isfinite(v)]
    src = info.get("tre_source", "-")
    if src == "unknown" or (not v.size and len(t)):
        return "unknown"
    return f"median {np.median(v):.2f} nm ({src})" if v.size else str(src)


def summary_lines(res) -> list[str]:
    """Human-readable summary of a :class:`~correlate.analysis.ParticleAnalysis`."""
    import numpy as np

    s = res.summary
    t = res.table
    size = s["size"]
    lines = [
        (
            f"structure {s['structure']!r} ({s['modality']}): {s['n_particles']} particles "
            f"({s['n_edge']} touching the image edge), {s['n_fiducials_excluded']} fiducials excluded"
        ),
        (
            f"size (equivalent diameter, {size['n']} whole particles): D10 {_fmt(size['D10_nm'])} nm, "
            f"D50 {_fmt(size['D50_nm'])} nm, D90 {_fmt(size['D90_nm'])} nm, CV {_fmt(size['CV'], 3)}, "
            f"PDI {_fmt(size['PDI'], 3)}"
        ),
    ]
    for L, info in s["labels"].items():
        c = t[f"n_localizations_{L}"].to_numpy() if len(t) else np.zeros(0)
        m = t[f"n_molecules_{L}"].to_numpy() if len(t) else np.zeros(0)
        q = np.percentile(c, [25, 50, 75]) if c.size else [np.nan] * 3
        qm = np.nanpercentile(m, [25, 50, 75]) if m.size and np.isfinite(m).any() else [np.nan] * 3
        lines.append(
            f"label {L!r}: {info['n_localizations']} localizations, {_fmt(100 * info.get('fraction_assigned', np.nan))} % "
            f"assigned, {_fmt(100 * info.get('fraction_ambiguous', np.nan))} % ambiguous, "
            f"{info.get('n_fiducial_track', 0)} on fiducial tracks; per particle: localizations median "
            f"{_fmt(q[1], 0)} (IQR {_fmt(q[0], 0)}-{_fmt(q[2], 0)}), molecules median {_fmt(qm[1])} "
            f"(IQR {_fmt(qm[0])}-{_fmt(qm[2])}); events/molecule {_fmt(info.get('events_per_molecule'), 2)}; "
            f"precision {_fmt(info.get('precision_nm', np.nan))} nm ({info.get('precision_source', '-')}); "
            f"TRE {_tre_text(t, L, info)}"
        )
    for col in [c for c in t.columns if c.startswith("cbc_mean_")]:
        lines.append(f"{col}: median {_fmt(np.nanmedian(t[col]) if t[col].notna().any() else np.nan, 2)} over "
                     f"{int(t[col].notna().sum())} particles")
    for n in s.get("notes", []):
        lines.append(f"note: {n}")
    return lines


def assignment_warnings(res, structure: str) -> list[str]:
    """A warning per label that has localizations but none assigned to any particle, naming
    the likely cause."""
    out = []
    s = res.summary
    for L, info in s["labels"].items():
        n = int(info.get("n_localizations", 0))
        if n == 0 or int(info.get("n_assigned", 0)) > 0:
            continue
        n_fid = int(info.get("n_fiducial_track", 0))
        frac_in = info.get("fraction_in_field")
        if s.get("n_particles", 0) == 0:
            cause = f"no particles were segmented in {structure!r}"
        elif n_fid >= n:
            cause = "every localization lies on a fiducial track (persistent emitter)"
        elif frac_in is not None and frac_in < 0.5:
            cause = (f"only {100 * frac_in:.1f} % of them fall inside the {structure!r} field: the registration "
                     "(or the assumption that the frames are aligned) is probably wrong")
        else:
            cause = ("they fall inside the field but near no particle: check the registration, or --linker-nm "
                     "and --n-sigma")
        out.append(f"warning: 0 of {n} localizations of {L!r} were assigned to a particle of {structure!r}; "
                   f"likely cause: {cause}")
    return out


def particle_options(args: argparse.Namespace, labels: list[str]):
    """The :class:`~correlate.analysis.ParticleOptions` of the command's flags."""
    from ..analysis import (
        AssignOptions,
        ColocalizeOptions,
        LabelOptions,
        AggregateOptions,
        ParticleOptions,
        SegmentOptions,
        StoreOptions,
    )

    seg_kw = {}
    if args.min_diameter_nm is not None:
        seg_kw["min_diameter_nm"] = args.min_diameter_nm
    if args.psf_sigma_nm is not None:
        seg_kw["psf_sigma_nm"] = args.psf_sigma_nm
    for k in ("max_diameter_nm", "memory_budget", "block_px"):
        if getattr(args, k, None) is not None:
            seg_kw[k] = getattr(args, k)
    tre = _num_or_auto(args.tre_nm, "tre-nm")
    epm = _events_arg(args.events_per_molecule)
    method = _method_arg(args.count_method) if args.count_method else LabelOptions().count_method

    def one(L: str) -> LabelOptions:
        return LabelOptions(
            linker_nm=args.linker_nm,
            tre_nm=tre,
            events_per_molecule=epm.get(L, "auto") if isinstance(epm, dict) else epm,
            detection_efficiency=args.detection_efficiency,
            precision_nm=args.precision_nm,
            count_method=method.get(L, LabelOptions().count_method) if isinstance(method, dict) else method,
        )

    assign = AssignOptions(n_sigma=args.n_sigma, blink_radius_nm=args.blink_radius_nm,
                           max_dark_frames=args.max_dark_frames)
    return ParticleOptions(
        segment=SegmentOptions(params=seg_kw),
        assign=assign,
        colocalize=ColocalizeOptions(cbc_radius_nm=args.cbc_radius_nm),
        store=StoreOptions(store=not args.no_store, table_name=args.table),
        aggregate=AggregateOptions(specs=tuple(args.aggregate), event_rate=args.event_rate, n_frames=args.n_frames),
        labels={L: one(L) for L in labels},
        assume_aligned=args.assume_aligned,
    )


@json_command
def run(args: argparse.Namespace) -> int:
    from ..analysis import analyze_particles
    from ..errors import CorrelateError
    from ..scene import Scene

    labels = [s.strip() for s in str(args.labels).split(",") if s.strip()]
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CorrelateError(f"output must end in .csv or .parquet, got {out.name!r}", path=out)
    options = particle_options(args, labels)
    scene = Scene.open(args.store, mode="r" if args.no_store else "r+")
    res = analyze_particles(scene, args.structure, labels, options=options)
    if out is not None:
        if out.suffix.lower() == ".csv":
            res.table.to_csv(out, index=False)
        else:
            res.table.to_parquet(out, index=False)
    for line in assignment_warnings(res, args.structure):
        print(line, file=sys.stderr)
    if args.json:
        emit(res.summary)
    else:
        for line in summary_lines(res):
            print(line)
        if not args.no_store:
            print(f"stored table {args.table!r} and labels '{args.structure}/labels/particles' in {args.store}")
        if out is not None:
            print(f"wrote {out}")
    return 0
