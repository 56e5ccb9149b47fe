"""HTML summaries for notebooks: a scene (elements, placement, registrations with their error)
and a per-particle result (size distribution, counts, the first rows)."""

from __future__ import annotations

import html
import math

import pandas as pd

__all__ = ["scene_html", "particles_html"]

_STYLE = ("<style>.correlate-repr table{border-collapse:collapse;font-size:12px;margin:4px 0}"
          ".correlate-repr td,.correlate-repr th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
          ".correlate-repr th{background:#f3f3f3}.correlate-repr .note{color:#666}</style>")


def _nm(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "unknown"
    return "unknown" if not math.isfinite(v) else f"{v:.3g} nm"


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _size(scene, name: str, entry: dict) -> str:
    if entry.get("kind") == "image":
        shape = entry.get("shape") or []
        px = entry.get("pixel_size_nm") or {}
        return " x ".join(map(str, shape)) + (f" at {', '.join(f'{v:g}' for v in px.values())} nm" if px else "")
    if "n_rows" in entry:
        return f"{entry['n_rows']:,} rows"
    return ""


def scene_html(scene) -> str:
    """The HTML shown for a :class:`~correlate.scene.Scene` in a notebook."""
    rows = []
    for n in scene.names():
        kind = scene.kind(n)
        if kind == "labels":
            rows.append({"element": n, "kind": kind, "size": "", "placed": "with its image"})
            continue
        entry = scene._entry(n)
        if kind == "table":
            where = entry.get("label_image") or (entry.get("coordinate_system") or {}).get("name", "")
            rows.append({"element": n, "kind": kind, "size": _size(scene, n, entry), "placed": f"describes {where}"})
            continue
        p = scene.placement(n)
        rows.append({"element": n, "kind": kind, "size": _size(scene, n, entry),
                     "placed": (f"in {p.anchor}'s frame: {p.reason}" if p.placed else f"not placed ({p.reason})")})
    regs = []
    for r in scene.registrations():
        hull = r.get("predicted_tre_hull") or {}
        regs.append({"id": r.get("id", ""), "moving -> fixed": f"{r.get('moving')} -> {r.get('fixed')}",
                     "model": r.get("model", ""), "pairs": r.get("n_used", r.get("n_pairs", "")),
                     "leave-one-out RMS": _nm(r.get("loo_rms_nm")),
                     "predicted TRE (hull, median RMS)": _nm(hull.get("tre_rms_median_nm")),
                     "mirrored": "yes" if r.get("mirrored") else "no"})
    parts = [_STYLE, '<div class="correlate-repr">',
             f"<b>correlate scene</b> <code>{html.escape(str(scene.path))}</code> ({html.escape(scene.mode)})",
             _table(rows, ["element", "kind", "size", "placed"])]
    if regs:
        parts += ["<b>registrations</b>", _table(regs, list(regs[0]))]
    else:
        parts.append('<p class="note">no registration: joins need one, or a declaration</p>')
    parts.append("</div>")
    return "".join(parts)


def particles_html(table: pd.DataFrame, summary: dict | None = None, max_rows: int = 10) -> str:
    """The HTML shown for a per-particle result: counts, size distribution, the first rows."""
    n = len(table)
    size = next((c for c in ("equivalent_diameter_nm", "diameter_nm") if c in table.columns), None)
    lines = [f"<b>{n} particles</b>"]
    if size and n:
        q = table[size].quantile([0.1, 0.5, 0.9])
        lines.append(f"{size}: D10 {q.iloc[0]:.1f}, D50 {q.iloc[1]:.1f}, D90 {q.iloc[2]:.1f} nm")
    counts = [c for c in table.columns if c.startswith("n_molecules_")]
    for c in counts:
        lines.append(f"{c}: median {table[c].median():.3g} per particle")
    shown = table.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="NaN")
    more = f'<p class="note">first {max_rows} of {n} rows</p>' if n > max_rows else ""
    return (_STYLE + '<div class="correlate-repr">' + "<br>".join(html.escape(s) if not s.startswith("<b>") else s
                                                                   for s in lines) + shown + more + "</div>")
