"""A self-contained HTML report of a scene: registration summary and particle results, with the
figures embedded as PNG (base64), so the one file can be mailed or archived."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._figure import figure_to_png_bytes

__all__ = ["make_report", "figure_to_png_bytes"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.25em;margin-top:2em;
border-bottom:1px solid #eee}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
table{border-collapse:collapse;font-size:.85em;margin:0}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
.note{color:#666;font-size:.9em}figure{margin:1em 0;max-width:100%}
figcaption{color:#555;font-size:.9em;white-space:pre-wrap;overflow-wrap:anywhere}
p,h3{overflow-wrap:anywhere}
"""


def _img(fig, caption: str = "") -> str:
    data = base64.b64encode(figure_to_png_bytes(fig)).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(caption or "figure")}" src="data:image/png;base64,{data}">{cap}</figure>'


def _table_html(df: pd.DataFrame, max_rows: int = 30) -> str:
    shown = df.head(max_rows)
    out = '<div class="scroll">' + shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0,
                                                 na_rep="") + "</div>"
    if len(df) > max_rows:
        out += f'<p class="note">first {max_rows} of {len(df)} rows</p>'
    return out


def _section_registration(scene, records) -> list[str]:
    from ._records import registration_summary

    parts = ["<h2>Registration</h2>"]
    if not records:
        parts.append('<p class="note">No registration record in this store: elements are placed by their stored '
                     "transforms only (no error estimate).</p>")
        return parts
    for r in records:
        parts.append(f"<h3>{html.escape(str(r.get('moving', r.get('source', '?'))))} &rarr; "
                     f"{html.escape(str(r.get('fixed', r.get('target', '?'))))}</h3>")
        parts.append(f"<p>{html.escape(registration_summary(r))}</p>")
        if r.get("reason"):
            parts.append(f'<p class="note">model choice: {html.escape(str(r["reason"]))}</p>')
        cands = r.get("candidates")
        if isinstance(cands, list) and cands and isinstance(cands[0], dict):
            cols = [c for c in ("model", "chi2", "dof", "pvalue", "fre_rms_nm", "loo_rms_nm") if c in cands[0]]
            parts.append(_table_html(pd.DataFrame(cands)[cols]))
        for n in r.get("notes") or []:
            parts.append(f'<p class="note">{html.escape(str(n))}</p>')
        src, dst = r.get("moving"), r.get("fixed")
        pair = r.get("landmarks")
        if isinstance(pair, dict) and pair.get("source_system") and pair.get("target_system"):
            src, dst = pair["source_system"], pair["target_system"]  # pairs stored in other frames' names
        if src and dst:
            try:
                lm = scene.get_landmarks(src, dst)
            except CorrelateError:  # no landmarks stored for this record
                lm = None
            parts += _registration_figure(r, lm)
            if lm is not None and len(lm):
                df = lm.to_dataframe()
                keep = [c for c in df.columns if not c.split("_")[-1].startswith(("xx", "xy", "yy", "zz", "xz", "yz"))
                        or "cov" not in c]
                parts.append("<p>Fiducial pairs (nm; residual after the fit):</p>")
                parts.append(_table_html(df[keep]))
    return parts


def _registration_figure(record, landmarks) -> list[str]:
    from ._registration_plots import plot_registration

    try:
        fig = plot_registration(record, landmarks)
    except CorrelateError as exc:
        return [f'<p class="note">residual and TRE plots unavailable: {html.escape(str(exc))}</p>']
    scale = fig.correlate_residual_scale
    cap = ("fiducial residual vectors after the fit (fixed frame" + (f", drawn {scale:g} times longer" if scale else "")
           + ") and predicted TRE against distance from the fiducials' centroid")
    return [_img(fig, cap)]


def _particle_section(scene, table_name: str, labels: Sequence[str], *, assume_aligned: bool = False) -> list[str]:
    from ._particles import (
        _percentiles,
        count_columns,
        particle_gallery,
        plot_colocalization,
        plot_counts_vs_size,
        plot_radial_profiles,
        plot_size_distribution,
        radial_profiles,
        size_column,
    )

    t = scene.get(table_name)
    parts = [f"<h2>Particles: {html.escape(table_name)}</h2>"]
    cs = t.attrs.get("coordinate_system") or "world"
    label_image = t.attrs.get("label_image")
    parts.append(f"<p>{len(t)} particles; coordinates in <code>{html.escape(str(cs))}</code>"
                 + (f", segmented in <code>{html.escape(str(label_image))}</code>" if label_image else "") + ".</p>")
    try:
        scol = size_column(t)
        v = t[scol].to_numpy(float)
        if "edge" in t.columns:
            v = v[~t["edge"].astype(bool).to_numpy()]
        v = v[np.isfinite(v)]
        if v.size:
            st = _percentiles(v)
            parts.append(f"<p>{scol}: D10 {st['D10']:.1f} nm, D50 {st['D50']:.1f} nm, D90 {st['D90']:.1f} nm, "
                         f"CV {st['CV']:.2f} (N = {v.size}, edge particles excluded).</p>")
        parts.append(_img(plot_size_distribution(t), "size distribution"))
    except CorrelateError as exc:
        parts.append(f'<p class="note">size distribution unavailable: {html.escape(str(exc))}</p>')
    try:
        count_columns(t)
        parts.append(_img(plot_counts_vs_size(t), "labels per particle against size"))
    except CorrelateError as exc:
        parts.append(f'<p class="note">label counts unavailable: {html.escape(str(exc))}</p>')
    from ..errors import UnplacedError

    locs = {}
    unplaced = []
    for n in labels:
        try:
            locs[n] = scene.map_points(scene.get(n, columns=["x", "y"]) if _accepts_columns(scene) else scene.get(n)[["x", "y"]],
                                       n, cs, assume_aligned=assume_aligned)
        except UnplacedError:
            unplaced.append(n)
        except Exception:  # noqa: BLE001 - an unmappable channel is left out of the profiles
            continue
    if unplaced:
        parts.append(f'<p class="note">left out of the profiles (no registration places them in '
                     f'{html.escape(str(cs))}\'s frame): {html.escape(", ".join(unplaced))}</p>')
    if locs:
        try:
            parts.append(_img(plot_radial_profiles(radial_profiles(t, locs)), "radial profiles around particle centres"))
        except CorrelateError as exc:
            parts.append(f'<p class="note">radial profiles unavailable: {html.escape(str(exc))}</p>')
    if label_image and "/labels/" in str(label_image):
        img_name = str(label_image).split("/labels/")[0]
        try:
            img = scene.get(img_name)
            tt = t.copy()
            if cs != img_name:
                xy = scene.map_points(tt[["x", "y"]].to_numpy(float), cs, img_name, assume_aligned=assume_aligned)
                tt["x"], tt["y"] = xy[:, 0], xy[:, 1]
            li = ({n: scene.map_points(d, cs, img_name, assume_aligned=assume_aligned) for n, d in locs.items()}
                  if cs != img_name else locs)
            parts.append(_img(particle_gallery(img, tt, li, n=12), f"particle gallery on {img_name}"))
        except Exception as exc:  # noqa: BLE001
            parts.append(f'<p class="note">gallery unavailable: {html.escape(str(exc))}</p>')
    coloc = [c for c in t.columns if ("cbc" in c.lower() or "coloc" in c.lower()) and pd.api.types.is_numeric_dtype(t[c])]
    if coloc:
        try:
            parts.append(_img(plot_colocalization(t, coloc[0]), f"colocalization per particle ({coloc[0]})"))
        except CorrelateError as exc:
            parts.append(f'<p class="note">colocalization map unavailable: {html.escape(str(exc))}</p>')
    parts.append("<h3>Table</h3>")
    parts.append(_table_html(t))
    return parts


def _accepts_columns(scene) -> bool:
    import inspect

    try:
        return "columns" in inspect.signature(scene.get).parameters
    except (TypeError, ValueError):
        return False


def make_report(
    scene,
    path,
    *,
    base: str | None = None,
    labels: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    title: str | None = None,
    assume_aligned: bool = False,
    images: Sequence[str] | None = None,
) -> Path:
    """Write a self-contained HTML report of a scene.

    Sections: the store's contents (``scene.info()``), each registration (model, error figures,
    candidate models, a figure of the fiducial residual vectors and the predicted TRE against
    distance, the fiducial pairs), an overlay (localizations, other images as layers, fiducials,
    particles, predicted-TRE contours of the registration placing the localizations), and for each per-particle table: size distribution, label counts
    against size, radial profiles, a particle gallery, colocalization and the table itself.

    Parameters
    ----------
    scene
        An open :class:`~correlate.scene.Scene`.
    path
        Output ``.html`` file.
    base, labels, images
        As in :func:`correlate.plot.plot_overlay` (``images``: layers over the base; default every
        placed image in view).
    tables
        Per-particle tables to report (default: all).
    assume_aligned
        Join labels that no registration placed (as in :func:`~correlate.plot.plot_overlay`);
        otherwise a label named in ``labels`` that is unplaced raises UnplacedError, and by
        default such labels are left out (the report says so).

    Returns
    -------
    pathlib.Path
    """
    from .. import __version__
    from ._from_scene import placed_labels
    from ._overlay import plot_overlay
    from ._records import records_for

    path = Path(path)
    locs = [n for n in scene.names() if scene.kind(n) == "localizations"]
    explicit = labels is not None
    labels = list(labels) if labels is not None else locs
    image_names = [n for n in scene.names() if scene.kind(n) == "image"]
    if explicit and image_names:
        ems = [n for n in image_names if scene.get(n).attrs.get("modality") == "em"]
        ref = base if base is not None else (ems or image_names)[0]
        if ref in image_names:
            placed_labels(scene, labels, ref, explicit=True, assume_aligned=assume_aligned)
    title = title or f"correlate report: {Path(str(scene.path)).name}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>',
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">store <code>{html.escape(str(scene.path))}</code>; made {now} by correlate {__version__}</p>',
        "<h2>Contents</h2>",
        f"<pre>{html.escape(scene.info())}</pre>",
    ]
    import sys

    from tqdm.auto import tqdm

    records = records_for(scene, [])
    tnames = list(tables) if tables is not None else scene.names(kind="table")
    with tqdm(total=2 + len(tnames), desc="report", unit="section", disable=not sys.stderr.isatty()) as bar:
        parts += _section_registration(scene, records)
        bar.update()
        if image_names:
            has_labels = bool(scene.names(kind="labels"))
            fig = plot_overlay(scene, base=base, labels=labels if explicit else None, show_particles=has_labels,
                               show_tre=bool(records), pixel_scale=None, max_pixels=1200,
                               assume_aligned=assume_aligned, images=images)
            parts.append("<h2>Overlay</h2>")
            parts.append(_img(fig, fig.correlate_caption))
        bar.update()
        for tn in tnames:
            parts += _particle_section(scene, tn, labels, assume_aligned=assume_aligned)
            bar.update()
    if not tnames:
        parts.append('<h2>Particles</h2><p class="note">No per-particle table in this store yet '
                     "(run <code>correlate particles</code>).</p>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
