"""Localizations, per-particle tables and landmarks as Parquet inside the store.

One group per table (``correlate/localizations/<name>/``, ``correlate/tables/<name>/``,
``correlate/landmarks/<a>__<b>/``)::

    zarr.json      attributes: {correlate: {kind, schema_version, n_rows, columns: [{name, dtype,
                   unit}], coordinate_system, attrs (the DataFrame's attrs), ...}}
    part-0.parquet zstd; rows sorted by spatial tile (Morton order of a coarse x, y grid) so a
                   bounding-box read skips row groups; no dictionary encoding on float columns;
                   a ``__correlate_row`` column restores the original row order on reading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ElementError, StoreError
from ._atomic import from_jsonable, to_jsonable

__all__ = ["TABLE_SCHEMA_VERSION", "write_table_group", "read_table_group", "table_group_meta", "open_parquet",
           "bbox_row_groups", "iter_row_groups"]

TABLE_SCHEMA_VERSION = 1
ROW_COLUMN = "__correlate_row"
PARQUET_NAME = "part-0.parquet"
ROW_GROUP_SIZE = 250_000


def _morton2(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Interleave the bits of two non-negative 16-bit integer arrays (vectorised)."""

    def spread(v):
        v = v.astype(np.uint64) & np.uint64(0xFFFF)
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        v = (v | (v << np.uint64(1))) & np.uint64(0x55555555)
        return v

    return spread(ix) | (spread(iy) << np.uint64(1))


def tile_side(n: int, rows_per_tile: int = ROW_GROUP_SIZE // 16) -> int:
    """Tiles per side of the square Morton grid for ``n`` rows (0: too few rows to sort)."""
    if n <= rows_per_tile:
        return 0
    return int(min(1 << 15, max(2, np.ceil(np.sqrt(n / rows_per_tile)))))


def tile_keys(x: np.ndarray, y: np.ndarray, extent: Sequence[float], n_side: int) -> np.ndarray:
    """Morton key of each point's tile on an ``n_side`` grid over ``extent`` = (x0, x1, y0, y1) nm."""
    x0, x1, y0, y1 = (float(v) for v in extent)
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ix = np.clip(((x - x0) / max(x1 - x0, 1e-12) * n_side).astype(np.int64), 0, n_side - 1)
    iy = np.clip(((y - y0) / max(y1 - y0, 1e-12) * n_side).astype(np.int64), 0, n_side - 1)
    return _morton2(ix, iy)


def tile_order(x: np.ndarray, y: np.ndarray, rows_per_tile: int = ROW_GROUP_SIZE // 16) -> np.ndarray:
    """Row order that groups points by spatial tile (Morton order over a square grid)."""
    n_side = tile_side(len(x), rows_per_tile)
    if not n_side:
        return np.arange(len(x))
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    extent = (np.nanmin(x), np.nanmax(x), np.nanmin(y), np.nanmax(y))
    return np.argsort(tile_keys(x, y, extent, n_side), kind="stable")


def _columns_meta(df: pd.DataFrame, units: dict) -> list[dict]:
    return [
        {"name": str(c), "dtype": str(df[c].dtype), "unit": str(units.get(c, "")) if units else ""}
        for c in df.columns
    ]


def write_table_group(
    path: Path,
    df: pd.DataFrame,
    *,
    kind: str,
    extra_meta: dict | None = None,
    spatial: bool = True,
) -> dict:
    """Write ``df`` (and its attrs) as a Parquet table group at ``path`` (a new folder)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True)
    out = df
    index_names: list[str] | None = None
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1):
        index_names = [n if n is not None else f"__index_level_{i}__" for i, n in enumerate(df.index.names)]
        out = df.copy()
        out.index = out.index.set_names(index_names)
        out = out.reset_index()
    else:
        out = df.reset_index(drop=True)
    if ROW_COLUMN in out.columns:
        raise StoreError(f"column name {ROW_COLUMN!r} is reserved", path=path, field=ROW_COLUMN)
    if spatial and "x" in out.columns and "y" in out.columns and len(out):
        order = tile_order(out["x"].to_numpy(float), out["y"].to_numpy(float))
    else:
        order = np.arange(len(out))
    sorted_df = out.take(order).reset_index(drop=True)
    sorted_df[ROW_COLUMN] = order.astype(np.int64)
    sorted_df.attrs = {}
    table = pa.Table.from_pandas(sorted_df, preserve_index=False)
    dict_cols = [
        f.name
        for f in table.schema
        if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    pq.write_table(
        table,
        path / PARQUET_NAME,
        compression="zstd",
        use_dictionary=dict_cols if dict_cols else False,
        row_group_size=ROW_GROUP_SIZE,
        write_statistics=True,
    )
    attrs = dict(df.attrs)
    meta: dict[str, Any] = {
        "kind": kind,
        "schema_version": TABLE_SCHEMA_VERSION,
        "n_rows": int(len(df)),
        "columns": _columns_meta(df, attrs.get("units", {}) or {}),
        "index": index_names,
        "format": "parquet",
        "files": [PARQUET_NAME],
        "attrs": attrs,
    }
    if extra_meta:
        meta.update(extra_meta)
    with open(path / "zarr.json", "w", encoding="utf-8") as fh:
        json.dump(
            {"zarr_format": 3, "node_type": "group", "attributes": {"correlate": to_jsonable(meta)}},
            fh,
            indent=2,
            allow_nan=False,
        )
    return meta


def table_group_meta(path: Path) -> dict:
    """The ``correlate`` attributes of a table group."""
    from ._store_remote import RemotePath, read_json_any

    path = path if isinstance(path, RemotePath) else Path(path)
    try:
        return from_jsonable(read_json_any(path / "zarr.json")["attributes"]["correlate"])
    except (FileNotFoundError, KeyError) as exc:
        raise StoreError("not a correlate table group (no zarr.json with a 'correlate' key)", path=path) from exc


def read_table_group(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Read a table group back as a DataFrame (original row order, dtypes and attrs).

    Parameters
    ----------
    columns
        Only these columns (Parquet column pruning).
    bbox
        ``(x0, y0, x1, y1)`` in nm: only rows inside (row groups outside are skipped).
    """
    import pyarrow as pa

    from ._store_remote import RemotePath

    path = path if isinstance(path, RemotePath) else Path(path)
    meta = table_group_meta(path)
    index = meta.get("index")
    stored = [c["name"] for c in meta.get("columns", [])] + list(index or [])
    wanted = list(columns or []) + (["x", "y"] if bbox is not None else [])
    missing = [c for c in wanted if c not in stored] if stored else []
    if missing:
        raise ElementError(
            f"no column {missing[0]!r}{' (bbox needs x and y)' if bbox is not None and missing[0] in ('x', 'y') else ''}; "
            f"the table has {[c for c in stored if c not in (index or [])]}",
            path=path,
            field=missing[0],
        )
    cols = None
    if columns is not None:
        cols = list(dict.fromkeys(list(columns) + list(index or []) + [ROW_COLUMN]))
        if bbox is not None:
            cols = list(dict.fromkeys(cols + ["x", "y"]))
    try:
        pf = open_parquet(path)
        if bbox is None:
            table = pf.read(columns=cols)
        else:
            table = pf.read_row_groups(bbox_row_groups(pf, bbox), columns=cols)
            table = table.filter(pa.array(_bbox_mask(table, bbox)))
            if cols is not None:
                table = table.select([c for c in cols if c in list(columns) + list(index or []) + [ROW_COLUMN]])
    except FileNotFoundError as exc:
        raise StoreError("table data file is missing", path=path / PARQUET_NAME) from exc
    df = table.to_pandas()
    row = df.pop(ROW_COLUMN).to_numpy()
    if bbox is None and len(row) == meta.get("n_rows", len(row)):
        inv = np.empty_like(row)
        inv[row] = np.arange(len(row))
        df = df.take(inv).reset_index(drop=True)
    else:
        df = df.take(np.argsort(row, kind="stable")).reset_index(drop=True)
    if index:
        df = df.set_index(index)
        df.index = df.index.set_names([None if n.startswith("__index_level_") else n for n in index])
    df.attrs = dict(meta.get("attrs", {}))
    return df


def open_parquet(path: Path):
    """The ``pyarrow.parquet.ParquetFile`` of table group ``path`` (local or remote)."""
    import pyarrow.parquet as pq

    from ._store_remote import parquet_source

    source, filesystem = parquet_source(path / PARQUET_NAME)
    if filesystem is not None:
        return pq.ParquetFile(filesystem.open_input_file(source))
    return pq.ParquetFile(source)


def _stat_range(rg, col: int) -> tuple[float, float] | None:
    st = rg.column(col).statistics
    if st is None or not st.has_min_max:
        return None
    return float(st.min), float(st.max)


def bbox_row_groups(pf, bbox: Sequence[float]) -> list[int]:
    """Row groups of ``pf`` whose x, y statistics meet ``bbox`` = (x0, y0, x1, y1) nm.

    A row group without statistics for x or y is kept (it may hold rows in the box).
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    names = pf.schema_arrow.names
    ix, iy = names.index("x"), names.index("y")
    md = pf.metadata
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        rx, ry = _stat_range(rg, ix), _stat_range(rg, iy)
        if rx is not None and (rx[1] < x0 or rx[0] > x1):
            continue
        if ry is not None and (ry[1] < y0 or ry[0] > y1):
            continue
        out.append(i)
    return out


def _bbox_mask(table, bbox: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in bbox)
    x = table.column("x").to_numpy()
    y = table.column("y").to_numpy()
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def iter_row_groups(path: Path, columns: Sequence[str], bbox: Sequence[float] | None = None, *,
                    max_rows: int | None = None):
    """Yield the stored table at ``path`` as pyarrow Tables of ``columns``, in stored order.

    Only the named columns are read (column pruning) and, with ``bbox`` = (x0, y0, x1, y1) nm,
    only the row groups whose statistics meet the box, filtered to its rows. ``max_rows`` groups
    consecutive row groups up to that many rows per yielded table (default: one row group each).
    """
    import pyarrow as pa

    pf = open_parquet(path)
    cols = list(dict.fromkeys(list(columns) + (["x", "y"] if bbox is not None else [])))
    groups = bbox_row_groups(pf, bbox) if bbox is not None else list(range(pf.metadata.num_row_groups))
    batch: list[int] = []
    rows = 0
    for i in groups + [None]:
        n = pf.metadata.row_group(i).num_rows if i is not None else 0
        if batch and (i is None or max_rows is None or rows + n > max_rows):
            t = pf.read_row_groups(batch, columns=cols)
            if bbox is not None:
                t = t.filter(pa.array(_bbox_mask(t, bbox)))
            yield t.select(list(columns))
            batch, rows = [], 0
        if i is not None:
            batch.append(i)
            rows += n
