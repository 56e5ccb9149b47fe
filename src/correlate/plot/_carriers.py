"""Figures of the carrier analyses: accessible fraction against size, and carrier state."""

from __future__ import annotations

import numpy as np

from ._figure import new_figure

__all__ = ["plot_accessibility", "plot_carrier_state"]


def plot_accessibility(fit):
    """Per-particle accessible fraction (95 % intervals) against diameter (nm), with the GLM fit
    and its pointwise 95 % band; the title gives the slope and the likelihood-ratio p-value."""
    t = fit.table
    b = fit.labels[1]
    d = t[fit.diameter_column].to_numpy(float)
    f = t[f"fraction_{b}"].to_numpy(float)
    lo, hi = t[f"fraction_lo_{b}"].to_numpy(float), t[f"fraction_hi_{b}"].to_numpy(float)
    fig = new_figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    ok = np.isfinite(d) & np.isfinite(f)
    ax.errorbar(d[ok], f[ok], yerr=[f[ok] - lo[ok], hi[ok] - f[ok]], fmt="o", ms=3, alpha=0.6, lw=0.8,
                label="particles (95 %)")
    if ok.any():
        dd = np.linspace(d[ok].min(), d[ok].max(), 200)
        m, mlo, mhi = fit.predict(dd)
        ax.plot(dd, m, color="C1", label="binomial GLM")
        ax.fill_between(dd, mlo, mhi, color="C1", alpha=0.25, lw=0)
    ax.set_xlabel(f"{fit.diameter_column} (nm)")
    ax.set_ylabel(f"fraction {fit.labels[1]} / {fit.labels[0]}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"slope {fit.slope_per_nm:.3g} /nm [{fit.slope_lo:.3g}, {fit.slope_hi:.3g}], "
                 f"LR p = {fit.p_value:.3g}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def plot_carrier_state(state):
    """Compactness of each particle against its null median (the shell model's), with the
    critical values; intact and disassembled calls coloured."""
    t = state.table
    fig = new_figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    for name, colour in (("intact", "C0"), ("disassembled", "C3")):
        sel = (t["state"] == name).to_numpy()
        ax.scatter(t["compactness_null_median"][sel], t["compactness"][sel], s=12, color=colour, label=name)
    sel = np.isfinite(t["compactness_null_median"].to_numpy(float))
    if sel.any():
        order = np.argsort(t["compactness_null_median"].to_numpy(float)[sel])
        ax.plot(t["compactness_null_median"].to_numpy(float)[sel][order],
                t["compactness_critical"].to_numpy(float)[sel][order], "k--", lw=0.8, label="critical value")
    s = state.summary
    ax.set_xlabel(f"{s.get('statistic')} statistic, shell-model median")
    ax.set_ylabel(f"{s.get('statistic')} statistic, observed")
    ax.set_title(f"intact {s.get('fraction_intact', float('nan')):.2f} "
                 f"[{s.get('fraction_intact_lo', float('nan')):.2f}, {s.get('fraction_intact_hi', float('nan')):.2f}]",
                 fontsize=9)
    ax.legend(fontsize=8)
    return fig
