"""SMLM cluster size against EM (or AFM) size per particle: the two size read-outs of one sample,
matched particle by particle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ElementError

__all__ = ["match_particles", "plot_size_comparison"]


def _xy(table: pd.DataFrame, what: str) -> np.ndarray:
    if not {"x", "y"} <= set(table.columns):
        raise ElementError(f"the {what} table needs x, y columns (nm); it has {list(table.columns)[:10]}", field="x")
    return table[["x", "y"]].to_numpy(float)


def _linear_scale(transform: Any) -> float:
    m = getattr(transform, "matrix", None)
    if m is None:
        return float("nan")
    m = np.asarray(m, float)
    return float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))


def match_particles(smlm_table: pd.DataFrame, em_table: pd.DataFrame, *, transform: Any = None,
                    max_distance_nm: float | None = None) -> pd.DataFrame:
    """Pair SMLM clusters with EM particles: mutual nearest neighbours within a distance.

    Parameters
    ----------
    smlm_table, em_table
        Per-particle tables with ``x, y`` (nm) and ``particle_id``.
    transform
        Maps SMLM-table positions into the EM table's frame (a correlate transform or anything with
        ``apply(points)``); None: the tables share a frame.
    max_distance_nm
        Largest centre distance of a pair; None: half the median nearest-neighbour distance of the
        EM particles (so that no pair can reach a second particle), recorded in ``attrs``.

    Returns
    -------
    pandas.DataFrame
        ``particle_id_smlm, particle_id_em, distance_nm``; ``attrs["max_distance_nm"]`` and its
        ``attrs["max_distance_source"]`` ("user" or "estimated").
    """
    from scipy.spatial import cKDTree

    a = _xy(smlm_table, "SMLM")
    b = _xy(em_table, "EM")
    if transform is not None:
        a = np.asarray(transform.apply(a), float)[:, :2]
    if len(a) == 0 or len(b) == 0:
        raise ElementError(f"nothing to match: {len(a)} SMLM clusters, {len(b)} EM particles", field="particle_id")
    src = "user"
    if max_distance_nm is None:
        if len(b) < 2:
            raise ElementError("one EM particle gives no spacing to bound the match distance; pass max_distance_nm",
                               field="max_distance_nm")
        nn = cKDTree(b).query(b, k=2)[0][:, 1]
        max_distance_nm, src = 0.5 * float(np.median(nn)), "estimated"
    d_ab, j_ab = cKDTree(b).query(a)
    _, j_ba = cKDTree(a).query(b)
    mutual = (j_ba[j_ab] == np.arange(len(a))) & (d_ab <= max_distance_nm)
    pid_a = smlm_table["particle_id"].to_numpy() if "particle_id" in smlm_table else np.arange(len(a))
    pid_b = em_table["particle_id"].to_numpy() if "particle_id" in em_table else np.arange(len(b))
    out = pd.DataFrame({"particle_id_smlm": pid_a[mutual], "particle_id_em": pid_b[j_ab[mutual]],
                        "distance_nm": d_ab[mutual], "_i": np.flatnonzero(mutual), "_j": j_ab[mutual]})
    out.attrs = {"max_distance_nm": float(max_distance_nm), "max_distance_source": src}
    return out


def plot_size_comparison(smlm_table: pd.DataFrame, em_table: pd.DataFrame, *, transform: Any = None,
                         max_distance_nm: float | None = None, smlm_column: str = "equivalent_diameter_nm",
                         em_column: str = "equivalent_diameter_nm", scale: float | None = None, ax=None,
                         title: str | None = None):
    """SMLM cluster size against EM size per matched particle, with the identity line.

    Parameters
    ----------
    smlm_table, em_table
        Per-particle tables (``correlate clusters`` and ``correlate particles``), ``x, y`` in nm.
    transform, max_distance_nm
        How the tables are matched (:func:`match_particles`).
    smlm_column, em_column
        Size columns (nm).
    scale
        Factor taking SMLM-frame lengths to EM-frame lengths; None: the linear part of
        ``transform`` where it has one (``sqrt |det|``), else 1.
    ax
        A matplotlib Axes to draw into; None: a new Figure.

    Returns
    -------
    matplotlib.figure.Figure
        With ``fig.correlate_matches``: the matched pairs and both sizes (nm).
    """
    for t, c, what in ((smlm_table, smlm_column, "SMLM"), (em_table, em_column, "EM")):
        if c not in t.columns:
            raise ElementError(f"no size column {c!r} in the {what} table (columns: {list(t.columns)[:12]})", field=c)
    m = match_particles(smlm_table, em_table, transform=transform, max_distance_nm=max_distance_nm)
    if scale is None:
        s = _linear_scale(transform) if transform is not None else 1.0
        scale = s if np.isfinite(s) else 1.0
    d_smlm = smlm_table[smlm_column].to_numpy(float)[m["_i"].to_numpy()] * float(scale)
    d_em = em_table[em_column].to_numpy(float)[m["_j"].to_numpy()]
    m = m.drop(columns=["_i", "_j"]).assign(size_smlm_nm=d_smlm, size_em_nm=d_em)
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.8, 4.6), dpi=100, layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ok = np.isfinite(d_smlm) & np.isfinite(d_em)
    ax.scatter(d_em[ok], d_smlm[ok], s=14, alpha=0.75, color="tab:blue", edgecolors="none", zorder=3)
    vals = np.concatenate([d_em[ok], d_smlm[ok]])
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo + 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--", label="identity", zorder=2)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"EM {em_column.replace('_nm', '').replace('_', ' ')} (nm)")
    ax.set_ylabel(f"SMLM {smlm_column.replace('_nm', '').replace('_', ' ')} (nm)")
    diff = d_smlm[ok] - d_em[ok]
    text = (f"{int(ok.sum())} matched of {len(smlm_table)} clusters / {len(em_table)} particles\n"
            f"SMLM - EM: median {np.median(diff):+.1f} nm" if diff.size else "no matched particles")
    ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=8)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title or "particle size: SMLM clusters against EM")
    fig.correlate_matches = m
    return fig
