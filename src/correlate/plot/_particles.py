"""Plots from the per-particle table: size distribution, label counts against size, radial
profiles, a gallery of particle crops and colocalization maps. One call each, returning a
:class:`matplotlib.figure.Figure` (made without pyplot, so nothing global changes)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ElementError

__all__ = [
    "size_column",
    "count_columns",
    "plot_size_distribution",
    "plot_counts_vs_size",
    "radial_profiles",
    "plot_radial_profiles",
    "particle_gallery",
    "plot_colocalization",
]

_SIZE_COLUMNS = ("equivalent_diameter_nm", "diameter_nm", "eq_diameter_nm", "feret_max_nm", "max_feret_nm")
_X_COLUMNS = ("x", "centroid_x", "x_nm", "centroid_x_nm")
_Y_COLUMNS = ("y", "centroid_y", "y_nm", "centroid_y_nm")


def _figure(w: float = 6.0, h: float = 4.0):
    from ._figure import new_figure

    return new_figure(figsize=(w, h), dpi=100, layout="constrained")


def size_column(table: pd.DataFrame, column: str | None = None) -> str:
    """The particle-size column of a table (equivalent diameter in nm, or the first known one)."""
    if column is not None:
        if column not in table.columns:
            raise ElementError(f"no column {column!r} in the particle table (columns: {list(table.columns)})", field=column)
        return column
    for c in _SIZE_COLUMNS:
        if c in table.columns:
            return c
    cands = [c for c in table.columns if "diameter" in c]
    if cands:
        return cands[0]
    raise ElementError(
        f"the particle table has no size column (looked for {list(_SIZE_COLUMNS)}); pass column=",
        field="size",
    )


def _xy_columns(table: pd.DataFrame) -> tuple[str, str]:
    for cx, cy in zip(_X_COLUMNS, _Y_COLUMNS):
        if cx in table.columns and cy in table.columns:
            return cx, cy
    raise ElementError(f"the particle table has no centre columns (x, y in nm); columns: {list(table.columns)}", field="x")


def count_columns(table: pd.DataFrame, count: str = "auto") -> dict[str, str]:
    """``channel -> column`` of per-channel label counts.

    ``count`` is ``"molecules"`` (columns ``n_molecules_<channel>``), ``"localizations"``
    (``n_localizations_<channel>``) or ``"auto"`` (molecules if present, else localizations).
    """
    kinds = ("molecules", "localizations") if count == "auto" else (count,)
    for k in kinds:
        pre = f"n_{k}_"
        cols = {c[len(pre):]: c for c in table.columns if c.startswith(pre) and pd.api.types.is_numeric_dtype(table[c])}
        if cols:
            return cols
    raise ElementError(
        f"the particle table has no per-channel count columns n_{'|'.join(kinds)}_<channel>; "
        f"columns: {list(table.columns)}",
        field="count",
    )


def _percentiles(v: np.ndarray) -> dict[str, float]:
    d10, d50, d90 = np.percentile(v, [10, 50, 90])
    return {"D10": float(d10), "D50": float(d50), "D90": float(d90),
            "CV": float(np.std(v, ddof=1) / np.mean(v)) if v.size > 1 else float("nan")}


def plot_size_distribution(
    table: pd.DataFrame,
    column: str | None = None,
    *,
    bins: int | str = "auto",
    exclude_edge: bool = True,
    title: str | None = None,
):
    """Histogram of particle size with D10 / D50 / D90 marked.

    Parameters
    ----------
    table
        Per-particle table.
    column
        Size column (default: ``equivalent_diameter_nm`` or the first known size column), in nm.
    bins
        Histogram bins (numpy's rules).
    exclude_edge
        Leave out particles flagged ``edge`` (cut by the image border).

    Returns
    -------
    matplotlib.figure.Figure
    """
    col = size_column(table, column)
    t = table
    if exclude_edge and "edge" in t.columns:
        t = t[~t["edge"].astype(bool)]
    v = t[col].to_numpy(float)
    v = v[np.isfinite(v)]
    fig = _figure()
    ax = fig.add_subplot()
    if v.size == 0:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
        return fig
    ax.hist(v, bins=bins, color="0.6", edgecolor="0.3")
    st = _percentiles(v)
    for k, ls in (("D10", ":"), ("D50", "-"), ("D90", "--")):
        ax.axvline(st[k], color="C3", ls=ls, label=f"{k} {st[k]:.1f} nm")
    ax.set_xlabel(f"{col.replace('_nm', '').replace('_', ' ')} (nm)")
    ax.set_ylabel("particles")
    ax.set_title(title or f"size distribution (N = {v.size}, CV {st['CV']:.2f})")
    ax.legend(fontsize=8)
    return fig


def plot_counts_vs_size(
    table: pd.DataFrame,
    size: str | None = None,
    *,
    count: str = "auto",
    colors: Sequence[Any] | Mapping[str, Any] | None = None,
    exclude_edge: bool = True,
    log: bool = False,
    title: str | None = None,
):
    """Labels per particle against particle size, one colour per channel, with binned medians.

    Parameters
    ----------
    table
        Per-particle table with ``n_molecules_<channel>`` or ``n_localizations_<channel>``.
    size
        Size column (nm); default as in :func:`plot_size_distribution`.
    count
        ``"molecules"``, ``"localizations"`` or ``"auto"``.
    colors
        Per-channel colours.
    log
        Log-log axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..render import channel_colors

    scol = size_column(table, size)
    ccols = count_columns(table, count)
    t = table
    if exclude_edge and "edge" in t.columns:
        t = t[~t["edge"].astype(bool)]
    cols = channel_colors(list(ccols), colors)
    fig = _figure()
    ax = fig.add_subplot()
    s = t[scol].to_numpy(float)
    for ch, c in ccols.items():
        y = t[c].to_numpy(float)
        ok = np.isfinite(s) & np.isfinite(y)
        ax.scatter(s[ok], y[ok], s=12, color=cols[ch], alpha=0.6, edgecolors="none", label=ch)
        if ok.sum() >= 6:
            edges = np.unique(np.percentile(s[ok], np.linspace(0, 100, 7)))
            if edges.size >= 3:
                idx = np.clip(np.searchsorted(edges, s[ok], side="right") - 1, 0, edges.size - 2)
                med = pd.Series(y[ok]).groupby(idx).median()
                ctr = 0.5 * (edges[:-1] + edges[1:])
                darker = tuple(0.6 * np.asarray(cols[ch]))
                ax.plot(ctr[med.index.to_numpy()], med.to_numpy(), "-o", color=darker, ms=4, lw=1.5)
    kind = ccols[next(iter(ccols))].split("_")[1]
    ax.set_xlabel(f"{scol.replace('_nm', '').replace('_', ' ')} (nm)")
    ax.set_ylabel(f"{kind} per particle")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_title(title or f"{kind} per particle vs size (lines: binned medians)")
    ax.legend(fontsize=8)
    return fig


def _radius(table: pd.DataFrame, size: str | None) -> np.ndarray:
    col = size_column(table, size)
    v = table[col].to_numpy(float)
    return 0.5 * v if "diameter" in col or "feret" in col else np.sqrt(v / np.pi)


def radial_profiles(
    table: pd.DataFrame,
    localizations: Mapping[str, pd.DataFrame],
    *,
    size: str | None = None,
    r_max: float = 2.0,
    bins: int = 20,
    normalized: bool = True,
) -> pd.DataFrame:
    """Radial density of localizations around particle centres, per channel.

    Each localization is attributed to its nearest particle centre (k-d tree); its distance is
    expressed in units of that particle's radius (``normalized``) or in nm.

    Parameters
    ----------
    table
        Per-particle table with centres (``x``, ``y`` nm) and a size column.
    localizations
        ``channel -> Localizations`` in the same coordinate system as the table.
    r_max
        Largest distance (particle radii if ``normalized``, else nm).
    bins
        Number of annuli.

    Returns
    -------
    pandas.DataFrame
        Columns ``channel``, ``r_lo``, ``r_hi``, ``r`` (bin centre), ``count`` (localizations),
        ``density`` (localizations per particle per unit area: radius² or nm²).
    """
    from scipy.spatial import cKDTree

    cx, cy = _xy_columns(table)
    centres = table[[cx, cy]].to_numpy(float)
    radius = _radius(table, size)
    ok = np.all(np.isfinite(centres), axis=1) & np.isfinite(radius) & (radius > 0)
    centres, radius = centres[ok], radius[ok]
    edges = np.linspace(0.0, r_max, bins + 1)
    rows = []
    n_part = max(1, len(centres))
    area = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    for ch, df in localizations.items():
        counts = np.zeros(bins)
        if len(centres) and len(df):
            p = df[["x", "y"]].to_numpy(float)
            d, i = cKDTree(centres).query(p)
            r = d / radius[i] if normalized else d
            counts = np.histogram(r[r < r_max], bins=edges)[0].astype(float)
        for k in range(bins):
            rows.append({"channel": str(ch), "r_lo": edges[k], "r_hi": edges[k + 1], "r": 0.5 * (edges[k] + edges[k + 1]),
                         "count": counts[k], "density": counts[k] / (n_part * area[k])})
    out = pd.DataFrame(rows)
    out.attrs = {"normalized": bool(normalized), "n_particles": int(len(centres))}
    return out


def plot_radial_profiles(
    profiles: pd.DataFrame,
    *,
    colors: Sequence[Any] | Mapping[str, Any] | None = None,
    title: str | None = None,
):
    """Plot the output of :func:`radial_profiles`: density against distance, one line per channel,
    each scaled to its maximum so channels of different brightness compare; the particle edge
    (r = 1 radius) is marked."""
    from ..render import channel_colors

    chans = list(dict.fromkeys(profiles["channel"]))
    cols = channel_colors(chans, colors)
    fig = _figure()
    ax = fig.add_subplot()
    for ch in chans:
        p = profiles[profiles["channel"] == ch]
        d = p["density"].to_numpy(float)
        m = d.max() if d.size and d.max() > 0 else 1.0
        ax.plot(p["r"], d / m, "-o", ms=3, color=tuple(0.85 * np.asarray(cols[ch])), label=f"{ch} (max {m:.3g})")
    norm = profiles.attrs.get("normalized", True)
    if norm:
        ax.axvline(1.0, color="0.4", ls="--", lw=1, label="particle edge")
    ax.set_xlabel("distance from particle centre (radii)" if norm else "distance from particle centre (nm)")
    ax.set_ylabel("relative density")
    ax.set_ylim(bottom=0)
    ax.set_title(title or f"radial profiles ({profiles.attrs.get('n_particles', '?')} particles)")
    ax.legend(fontsize=8)
    return fig


def particle_gallery(
    image,
    table: pd.DataFrame,
    localizations: Mapping[str, pd.DataFrame] | None = None,
    *,
    particle_ids: Sequence[int] | None = None,
    n: int = 16,
    ncols: int = 4,
    size: str | None = None,
    crop_nm: float | None = None,
    colors: Sequence[Any] | Mapping[str, Any] | None = None,
    seed: int = 0,
):
    """A grid of image crops around particles, with their localizations and outline.

    Parameters
    ----------
    image
        Image element (y, x) in the table's coordinate system (e.g. the EM image).
    table
        Per-particle table (centres ``x``, ``y`` nm; a size column).
    localizations
        ``channel -> Localizations`` in the same coordinate system (drawn as dots).
    particle_ids
        Which particles (default: ``n`` chosen at random, seeded, over non-edge particles).
    crop_nm
        Side of each crop (default 2.5 x the largest shown diameter).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Circle

    from ..render import channel_colors, grid_from_image
    from ._raster import base_plane
    from ._scalebar import add_scale_bar, nice_length_nm

    cx, cy = _xy_columns(table)
    t = table
    if particle_ids is None:
        if "edge" in t.columns:
            t = t[~t["edge"].astype(bool)]
        if len(t) > n:
            t = t.sample(n=n, random_state=seed).sort_values("particle_id")
    else:
        t = table.set_index("particle_id").loc[list(particle_ids)].reset_index()
    radius = _radius(t, size)
    if crop_nm is None:
        crop_nm = 2.5 * 2 * float(np.nanmax(radius)) if len(t) else 100.0
    plane = base_plane(image)
    grid = grid_from_image(plane)
    k = max(1, len(t))
    ncols = min(ncols, k)
    nrows = int(np.ceil(k / ncols))
    fig = _figure(2.0 * ncols, 2.0 * nrows + 0.3)
    cols = channel_colors(list(localizations or {}), colors)
    finite = None
    for idx, (row, r) in enumerate(zip(t.itertuples(index=False), radius)):
        ax = fig.add_subplot(nrows, ncols, idx + 1)
        ax.set_axis_off()
        x0, y0 = float(getattr(row, cx)), float(getattr(row, cy))
        h = 0.5 * crop_nm
        try:
            sub = grid.crop((x0 - h, y0 - h, x0 + h, y0 + h))
        except ElementError:
            continue
        rows, cl = grid.index_slices(sub)
        vals = np.asarray(plane.isel(y=rows, x=cl).values, float)
        if finite is None:
            f = vals[np.isfinite(vals)]
            finite = np.percentile(f, [1, 99.5]) if f.size else (0, 1)
        ex = sub.extent
        ax.imshow(vals, cmap="gray", vmin=finite[0], vmax=finite[1], extent=(ex[0], ex[1], ex[3], ex[2]),
                  interpolation="nearest")
        for ch, df in (localizations or {}).items():
            m = (np.abs(df["x"].to_numpy() - x0) < h) & (np.abs(df["y"].to_numpy() - y0) < h)
            ax.scatter(df["x"].to_numpy()[m], df["y"].to_numpy()[m], s=3, color=cols[ch], alpha=0.8, linewidths=0)
        if np.isfinite(r):
            ax.add_patch(Circle((x0, y0), r, fill=False, ec="yellow", lw=0.8, ls="--"))
        ax.set_xlim(x0 - h, x0 + h)
        ax.set_ylim(y0 + h, y0 - h)
        ax.set_title(f"#{int(row.particle_id)}", fontsize=8)
        if idx == 0:
            add_scale_bar(ax, nice_length_nm(crop_nm, 0.4), height_px=3, margin_px=6, fontsize=7)
    if localizations:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=cols[c], label=c) for c in cols], loc="outside lower center",
                   ncols=len(cols), fontsize=8)
    return fig


def plot_colocalization(
    data: pd.DataFrame,
    value: str | None = None,
    *,
    image=None,
    cmap: str = "coolwarm",
    title: str | None = None,
):
    """Map and histogram of a colocalization score.

    Parameters
    ----------
    data
        Localizations with a per-localization score (e.g. CBC in [-1, 1]) or a per-particle
        table with a per-particle score; positions ``x``, ``y`` (nm).
    value
        Score column (default: the first column whose name contains ``cbc`` or ``coloc``).
    image
        Optional Image element in the same coordinate system, drawn underneath.

    Returns
    -------
    matplotlib.figure.Figure
        Left: positions coloured by score; right: histogram of the score.
    """
    if value is None:
        cands = [c for c in data.columns if ("cbc" in c.lower() or "coloc" in c.lower())
                 and pd.api.types.is_numeric_dtype(data[c])]
        if not cands:
            raise ElementError(
                f"no colocalization column (name containing 'cbc' or 'coloc') in {list(data.columns)}; pass value=",
                field="value",
            )
        value = cands[0]
    elif value not in data.columns:
        raise ElementError(f"no column {value!r} (columns: {list(data.columns)})", field=value)
    cx, cy = _xy_columns(data)
    v = data[value].to_numpy(float)
    ok = np.isfinite(v)
    fig = _figure(9.0, 4.0)
    ax, ah = fig.subplots(1, 2, width_ratios=[1.4, 1])
    if image is not None:
        from ..render import grid_from_image
        from ._raster import base_plane

        plane = base_plane(image)
        ex = grid_from_image(plane).extent
        vals = np.asarray(plane.values, float)
        lo, hi = np.nanpercentile(vals, [1, 99.5])
        ax.imshow(vals, cmap="gray", vmin=lo, vmax=hi, extent=(ex[0], ex[1], ex[3], ex[2]), interpolation="nearest")
    is_cbc = "cbc" in value.lower()
    vmin, vmax = (-1.0, 1.0) if is_cbc else (np.nanmin(v) if ok.any() else 0, np.nanmax(v) if ok.any() else 1)
    sc = ax.scatter(data[cx].to_numpy()[ok], data[cy].to_numpy()[ok], c=v[ok], s=4 if len(data) > 2000 else 12,
                    cmap=cmap, vmin=vmin, vmax=vmax, linewidths=0)
    if image is None:
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    fig.colorbar(sc, ax=ax, label=value)
    ah.hist(v[ok], bins=40, range=(vmin, vmax) if is_cbc else None, color="0.5")
    ah.set_xlabel(value)
    ah.set_ylabel("count")
    if ok.any():
        ah.axvline(np.median(v[ok]), color="C3", label=f"median {np.median(v[ok]):.2f}")
        ah.legend(fontsize=8)
    fig.suptitle(title or f"colocalization: {value} ({int(ok.sum())} values)")
    return fig
