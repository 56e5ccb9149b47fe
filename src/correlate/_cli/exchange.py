"""``correlate exchange STORE... --labels A,B``: per-structure label fractions, and exchange
kinetics over a time series of samples."""

from __future__ import annotations

import argparse

from ._json import add_json_flag, emit, json_command

NAME = "exchange"
ORDER = 64
HELP = "two-colour label fractions per structure (exchange, accessibility) and exchange kinetics over samples"
DESCRIPTION = (
    "For each store's per-particle table: the fraction of label B per structure with its exact 95 % "
    "interval (Clopper-Pearson on whole-molecule counts), as B / (A + B) for two batches mixed "
    "(--mode exchange; a structure's mixing is its minority fraction) or B / A for a subset label "
    "such as accessible binding sites (--mode subset). The blink-corrected counts scatter more than "
    "binomially: in exchange mode each store's over-dispersion (the Pearson statistic of its structures "
    "about their batch's pooled fraction) widens its intervals unless --dispersion is given; it is "
    "printed. With --times (one per store, at least 3), the "
    "mean mixing per sample against time and a single-exponential fit m(t) = m_inf (1 - exp(-k t)), "
    "with k and its 95 % interval."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", nargs="+", metavar="STORE", help="correlate stores, one per sample")
    p.add_argument("--labels", required=True, metavar="A,B", help="the two counted labels, A first")
    p.add_argument("--mode", choices=("exchange", "subset"), default="exchange",
                   help="B / (A + B) (exchange, default) or B / A (subset)")
    p.add_argument("--table", default="particles", help="the per-particle table (default: particles)")
    p.add_argument("--dispersion", default="estimate", metavar="PHI",
                   help="over-dispersion of the counts: 'estimate' (default, exchange mode; 1 in subset mode, "
                   "where the accessibility command fits it) or a number >= 1 (1: binomial counts)")
    p.add_argument("--times", metavar="T,...", help="sampling time of each store (any unit), for the kinetic fit")
    p.add_argument("-o", "--output", help="per-structure fractions of every store (.csv)")
    p.add_argument("--plot", metavar="OUT.png", help="mixing against time with the fit")
    add_json_flag(p)


@json_command
def run(args) -> int:
    import numpy as np
    import pandas as pd

    from ..analysis import exchange_dispersion, fit_exchange, label_fractions
    from ..errors import CorrelateError
    from ..scene import Scene

    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    if len(labels) != 2:
        raise CorrelateError(f"--labels needs two names A,B, got {args.labels!r}", field="labels")
    times = [float(v) for v in args.times.split(",")] if args.times else None
    if times is not None and len(times) != len(args.stores):
        raise CorrelateError(f"{len(times)} times for {len(args.stores)} stores", field="times")
    if args.dispersion != "estimate":
        try:
            float(args.dispersion)
        except ValueError:
            raise CorrelateError(f"--dispersion takes 'estimate' or a number >= 1, got {args.dispersion!r}",
                                 field="dispersion") from None
    parts, samples = [], []
    for i, store in enumerate(args.stores):
        tab = Scene.open(store).get(args.table)
        if args.dispersion == "estimate":
            phi = exchange_dispersion(tab, labels[0], labels[1]) if args.mode == "exchange" else 1.0
            phi, phi_src = (1.0, "estimate failed (< 3 structures)") if not np.isfinite(phi) else (phi, "estimated")
        else:
            phi, phi_src = float(args.dispersion), "user"
        f = label_fractions(tab, labels[0], labels[1], mode=args.mode, dispersion=phi)
        f.insert(0, "store", store)
        parts.append(f)
        col = "mixing" if args.mode == "exchange" else f"fraction_{labels[1]}"
        v = f[col].to_numpy(float)
        v = v[np.isfinite(v)]
        samples.append({"store": store, "time": times[i] if times else None, "n_structures": int(v.size),
                        "mean": float(v.mean()) if v.size else float("nan"),
                        "se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"),
                        "dispersion": phi, "dispersion_source": phi_src})
    table = pd.concat(parts, ignore_index=True)
    if args.output:
        table.to_csv(args.output, index=False)
    fit = None
    if times is not None:
        fit = fit_exchange([s["time"] for s in samples], [s["mean"] for s in samples], [s["se"] for s in samples])
        if args.plot:
            from ..plot import save_figure

            save_figure(fit.plot(), args.plot)
    doc = {"mode": args.mode, "labels": labels, "samples": samples,
           "fit": None if fit is None else {"rate": fit.rate, "rate_lo": fit.rate_lo, "rate_hi": fit.rate_hi,
                                            "m_inf": fit.m_inf, "m0": fit.m0}}
    if args.json:
        emit(doc)
        return 0
    what = "mixing (minority fraction)" if args.mode == "exchange" else f"fraction {labels[1]} / {labels[0]}"
    for s in samples:
        when = f" at t = {s['time']:g}" if s["time"] is not None else ""
        print(f"{s['store']}{when}: {s['n_structures']} structures, mean {what} {s['mean']:.3f} +- {s['se']:.3f}, "
              f"count dispersion {s['dispersion']:.2f} ({s['dispersion_source']})")
    if fit is not None:
        print(f"exchange kinetics: k = {fit.rate:.4g} [{fit.rate_lo:.4g}, {fit.rate_hi:.4g}] per time unit (95 %), "
              f"plateau {fit.m_inf:.3f}")
    return 0
