"""``correlate accessibility STORE --labels ALL,ACCESSIBLE``: the accessible fraction per particle
and its dependence on size."""

from __future__ import annotations

import argparse

from ._json import add_json_flag, emit, json_command

NAME = "accessibility"
ORDER = 65
HELP = "accessible fraction of a particle's antibodies, per particle and against size (binomial GLM)"
DESCRIPTION = (
    "From a per-particle table with molecule counts of two labels (all antibodies, and those with an "
    "accessible binding site): the accessible fraction per particle with its 95 % interval, and a "
    "binomial GLM logit p = b0 + b1 (d - d_ref) of the fraction against the particle diameter, with "
    "95 % intervals of the coefficients and a likelihood-ratio test of b1 = 0. The counts' "
    "over-dispersion (Pearson statistic over its degrees of freedom) is estimated and, where above 1, "
    "widens the intervals and turns the test into an F test; both are printed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="a correlate store")
    p.add_argument("--labels", required=True, metavar="ALL,ACCESSIBLE", help="the two counted labels, all first")
    p.add_argument("--table", default="particles", help="the per-particle table (default: particles; "
                   "carriers or clusters_<label> for SMLM-only structures)")
    p.add_argument("--diameter-column", default="equivalent_diameter_nm", help="size column (nm)")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the size-dependence test (default 0.05)")
    p.add_argument("--dispersion", default="estimate", metavar="PHI",
                   help="count over-dispersion: 'estimate' (default) or a number >= 1 (1: binomial)")
    p.add_argument("-o", "--output", help="per-particle fractions (.csv)")
    p.add_argument("--plot", metavar="OUT.png", help="fraction against diameter with the fit")
    add_json_flag(p)


@json_command
def run(args) -> int:
    from ..analysis import accessibility
    from ..errors import CorrelateError
    from ..scene import Scene

    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    if len(labels) != 2:
        raise CorrelateError(f"--labels needs two names ALL,ACCESSIBLE, got {args.labels!r}", field="labels")
    disp: float | str = args.dispersion
    if disp != "estimate":
        try:
            disp = float(disp)
        except ValueError:
            raise CorrelateError(f"--dispersion takes 'estimate' or a number >= 1, got {disp!r}",
                                 field="dispersion") from None
    fit = accessibility(Scene.open(args.store).get(args.table), labels[0], labels[1],
                        diameter_column=args.diameter_column, alpha=args.alpha, dispersion=disp)
    if args.output:
        fit.table.to_csv(args.output, index=False)
    if args.plot:
        from ..plot import save_figure

        save_figure(fit.plot(), args.plot)
    s = fit.summary()
    if args.json:
        emit(s)
        return 0
    b = labels[1]
    f = fit.table[f"fraction_{b}"]
    print(f"{s['n_particles']} particles with counts; median fraction {b}/{labels[0]} {f.median():.3f}")
    print(f"count dispersion {s['dispersion']:.2f} (estimated; used {s['dispersion_used']:.2f})")
    print(f"logit fraction = {s['intercept']:.3f} [{s['intercept_lo']:.3f}, {s['intercept_hi']:.3f}] + "
          f"{s['slope_per_nm']:.4g} [{s['slope_lo']:.4g}, {s['slope_hi']:.4g}] per nm x (d - {s['d_ref_nm']:.1f} nm)")
    verdict = "depends on size" if s["size_dependent"] else "no dependence on size found"
    print(f"likelihood-ratio test of no size dependence: p = {s['p_value']:.3g} -> {verdict} at alpha {s['alpha']:g}")
    return 0
