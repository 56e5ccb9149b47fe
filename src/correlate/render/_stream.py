"""Rendering a stored localization element in bounded memory.

The element's Parquet row groups are read one group (or a few, up to ``max_rows``) at a time
with only the columns the render needs (x, y, the precision columns of a Gaussian render, the
weights and the split column), and added into one image per channel with the kernels' ``out=``
accumulators. Rows are never put back in input order: a histogram does not depend on the order,
and a Gaussian render follows the stored order, so the same store gives the same image.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ElementError

__all__ = ["render_element", "stored_extent", "estimate_pixel_size"]


def stored_extent(path, bbox: Sequence[float] | None = None) -> tuple[float, float, float, float]:
    """(x_lo, x_hi, y_lo, y_hi) nm of a stored table from its row-group statistics (a pass over
    x, y when a row group has none, or inside ``bbox``)."""
    from ..io._store_tables import _stat_range, iter_row_groups, open_parquet

    pf = open_parquet(path)
    names = pf.schema_arrow.names
    md = pf.metadata
    rx = [_stat_range(md.row_group(i), names.index("x")) for i in range(md.num_row_groups)]
    ry = [_stat_range(md.row_group(i), names.index("y")) for i in range(md.num_row_groups)]
    if bbox is None and md.num_row_groups and all(r is not None for r in rx + ry):
        return (min(r[0] for r in rx), max(r[1] for r in rx), min(r[0] for r in ry), max(r[1] for r in ry))
    lo = [np.inf, np.inf]
    hi = [-np.inf, -np.inf]
    for t in iter_row_groups(path, ["x", "y"], bbox):
        for j, c in enumerate(("x", "y")):
            v = t.column(c).to_numpy()
            v = v[np.isfinite(v)]
            if v.size:
                lo[j], hi[j] = min(lo[j], v.min()), max(hi[j], v.max())
    if not np.isfinite(lo[0]):
        raise ElementError("no localizations to take the render extent from; pass extent_nm", path=str(path),
                           field="extent_nm")
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def _columns(method: str, precision, weights, split_by, stored: list[str]) -> list[str]:
    cols = ["x", "y"]
    if method == "gaussian":
        if precision is None:
            cols += ["precision_x", "precision_y"] if {"precision_x", "precision_y"} <= set(stored) else ["precision"]
        elif isinstance(precision, str):
            cols.append(precision)
    cols += [c for c in (weights, split_by) if c is not None]
    missing = [c for c in cols if c not in stored]
    if missing:
        hint = "; pass precision=<nm> or precision=<column name>" if missing[0].startswith("precision") else ""
        raise ElementError(f"the stored table has no column {missing[0]!r} (columns {stored}){hint}",
                           field=missing[0])
    return list(dict.fromkeys(cols))


def render_element(
    scene,
    element: str,
    method: str = "histogram",
    *,
    like=None,
    pixel_size_nm=None,
    extent_nm=None,
    origin_nm=None,
    shape=None,
    convention: str = "center",
    split_by: str | None = None,
    weights: str | None = None,
    precision=None,
    min_precision_nm: float = 0.0,
    n_sigma: float = 5.0,
    bbox: Sequence[float] | None = None,
    max_rows: int | None = None,
    name: str | None = None,
):
    """Render stored localization element ``element`` of ``scene`` without loading the table.

    Parameters
    ----------
    method
        ``"histogram"`` or ``"gaussian"``; the other arguments as in
        :func:`~correlate.render.render_histogram` / :func:`~correlate.render.render_gaussian`
        (the grid defaults to the stored extent, from the row-group statistics).
    bbox
        ``(x0, y0, x1, y1)`` nm: only the row groups and rows inside.
    max_rows
        Rows read at once at most (whole row groups; default one row group, 250 000 rows).

    Returns
    -------
    xarray.DataArray
        The Image element :func:`~correlate.render.render` gives for the same rows.
    """
    from ..io._store_tables import iter_row_groups, table_group_meta
    from ._common import image_of
    from ._gaussian import _sigmas, gaussian_counts
    from ._grid import as_grid
    from ._histogram import histogram_counts

    if method not in ("histogram", "gaussian"):
        raise ElementError(f"unknown render method {method!r}; expected 'histogram' or 'gaussian'", field="method")
    if scene.kind(element) != "localizations":
        raise ElementError(f"{element!r} is a {scene.kind(element)}, not localizations", path=element)
    path = scene._abs(scene._entry(element)["path"], f"element {element!r}", must_exist=True)
    stored = [c["name"] for c in table_group_meta(path).get("columns", [])]
    cols = _columns(method, precision, weights, split_by, stored)
    gk: dict[str, Any] = dict(like=like, pixel_size_nm=pixel_size_nm, extent_nm=extent_nm, origin_nm=origin_nm,
                              shape=shape, convention=convention)
    if like is None and extent_nm is None and origin_nm is None:
        gk["extent_nm"] = stored_extent(path, bbox)
    grid = as_grid(**gk)
    planes: dict[Any, np.ndarray] = {}
    inside: dict[Any, int] = {}
    total: dict[Any, int] = {}
    for t in iter_row_groups(path, cols, bbox, max_rows=max_rows):
        df = t.to_pandas()
        groups = [(element, df)] if split_by is None else list(df.groupby(split_by, sort=False, dropna=True))
        for key, part in groups:
            x, y = part["x"].to_numpy(np.float64), part["y"].to_numpy(np.float64)
            w = None if weights is None else part[weights].to_numpy(np.float64)
            out = planes.setdefault(key, np.zeros(grid.shape, np.float64))
            if method == "histogram":
                k = histogram_counts(x, y, grid, weights=w, out=out)[1]
            else:
                sx, sy = _sigmas(part, element, precision, min_precision_nm)
                gaussian_counts(x, y, sx, sy, grid, weights=w, n_sigma=n_sigma, out=out)
                k = int(grid.contains(x, y).sum())
            inside[key] = inside.get(key, 0) + int(k)
            total[key] = total.get(key, 0) + len(part)
    keys = list(planes)
    if split_by is not None:
        try:
            keys = sorted(keys)
        except TypeError:
            pass
    elif not keys:
        keys = [element]
        planes[element] = np.zeros(grid.shape, np.float64)
    names = [str(k) for k in keys]
    extra = {"n_sigma": float(n_sigma), "min_precision_nm": float(min_precision_nm)} if method == "gaussian" else {}
    extra["streamed"] = True
    return image_of(names, [planes[k] for k in keys], {str(k): inside.get(k, 0) for k in keys},
                    {str(k): total.get(k, 0) for k in keys}, split_by is not None, grid, method=method,
                    name=name, extra_attrs=extra)


#: Largest side (pixels) an estimated pixel size gives.
MAX_SIDE_PX = 8192


def estimate_pixel_size(path, extent: Sequence[float]) -> dict:
    """A pixel size for rendering a stored table: half the median localization precision (of the
    first row group), coarsened so that neither side exceeds :data:`MAX_SIDE_PX` pixels.

    Returns ``{"pixel_size_nm", "median_precision_nm", "limited_by"}``.

    Raises
    ------
    ElementError
        Without a precision column (pass a pixel size, ``--pixel-size``).
    """
    from ..io._store_tables import iter_row_groups, table_group_meta

    stored = [c["name"] for c in table_group_meta(path).get("columns", [])]
    col = next((c for c in ("precision", "precision_x") if c in stored), None)
    if col is None:
        raise ElementError(f"no precision column to choose a pixel size from (columns {stored}); pass "
                           "pixel_size_nm= (--pixel-size NM)", path=str(path), field="pixel_size_nm")
    first = next(iter_row_groups(path, [col]), None)
    v = first.column(col).to_numpy() if first is not None else np.empty(0)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        raise ElementError(f"column {col!r} holds no positive precision; pass pixel_size_nm= (--pixel-size NM)",
                           path=str(path), field="pixel_size_nm")
    med = float(np.median(v))
    span = max(float(extent[1] - extent[0]), float(extent[3] - extent[2]))
    px, why = med / 2.0, "half the median precision"
    if span / px > MAX_SIDE_PX:
        px, why = span / MAX_SIDE_PX, f"at most {MAX_SIDE_PX} pixels a side"
    return {"pixel_size_nm": px, "median_precision_nm": med, "limited_by": why}
