"""Writing a localization table group from batches, in bounded memory (an external two-pass sort).

The result is the table group :func:`~correlate.io._store_tables.write_table_group` writes for
the whole table (same Morton tile order with input order inside a tile, same 250 000-row row
groups, same ``__correlate_row`` column), built without holding the table:

1. *Spill*: each batch (a DataFrame, input order) goes to an Arrow IPC file in ``workdir``; the
   row count, the x, y extent and each column's dtypes are tracked.
2. *Bucket*: with the extent known, each row's tile key is computed; a key histogram cuts the
   keys into contiguous ranges of at most ``bucket_rows`` rows, and every spill is split into
   one IPC file per range.
3. *Sort*: each bucket is read, sorted by (key, input row) and appended as row groups.

Columns whose dtype differs between batches (an integral ``id`` in one batch, fractional in
another) are stored as float64, as a whole-table read would give; text mixed with numbers is
refused.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import CorrelateError, StoreError
from ._atomic import to_jsonable
from ._store_tables import (
    PARQUET_NAME,
    ROW_COLUMN,
    ROW_GROUP_SIZE,
    TABLE_SCHEMA_VERSION,
    _columns_meta,
    tile_keys,
    tile_side,
)

__all__ = ["write_table_stream"]

_KEY = "__correlate_key"


def _final_dtypes(seen: dict[str, list[str]], path: Path) -> dict[str, str]:
    out = {}
    for col, dts in seen.items():
        kinds = {np.dtype(d).kind if d not in ("string", "category") else "O" for d in dts}
        if len(set(dts)) == 1:
            out[col] = dts[0]
        elif kinds <= set("iufb"):
            out[col] = "float64"
        else:
            raise CorrelateError(f"column {col!r} holds text in some batches and numbers in others ({sorted(set(dts))}); "
                                 "import it in memory (a larger memory_budget / --memory-budget)", path=path, field=col)
    return out


class _Spill:
    """Pass 1: batches to IPC files, with counts, extent, dtypes and the first batch's attrs."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.files: list[Path] = []
        self.n = 0
        self.columns: list[str] | None = None
        self.dtypes: dict[str, list[str]] = {}
        self.extent = [np.inf, -np.inf, np.inf, -np.inf]
        self.attrs: dict = {}
        self.notes: list[str] = []
        self.head: pd.DataFrame | None = None

    def add(self, df: pd.DataFrame, path: Path, rows_given: bool = False) -> None:
        import pyarrow as pa

        rows = None
        if rows_given:
            rows = df[ROW_COLUMN].to_numpy(np.int64)
            attrs = df.attrs
            df = df.drop(columns=[ROW_COLUMN])
            df.attrs = attrs
        if self.columns is None:
            self.columns = [str(c) for c in df.columns]
            self.attrs = dict(df.attrs)
            if ROW_COLUMN in self.columns:
                raise StoreError(f"column name {ROW_COLUMN!r} is reserved", path=path, field=ROW_COLUMN)
        elif [str(c) for c in df.columns] != self.columns:
            raise CorrelateError(f"a batch has columns {list(df.columns)}, the first had {self.columns}", path=path)
        for note in df.attrs.get("notes") or []:
            if note not in self.notes:
                self.notes.append(note)
        if len(df) == 0 and self.files:
            return
        for c in self.columns:
            d = str(df[c].dtype)
            lst = self.dtypes.setdefault(c, [])
            if d not in lst:
                lst.append(d)
        if len(df):
            x, y = df["x"].to_numpy(float), df["y"].to_numpy(float)
            self.extent = [min(self.extent[0], np.nanmin(x)), max(self.extent[1], np.nanmax(x)),
                           min(self.extent[2], np.nanmin(y)), max(self.extent[3], np.nanmax(y))]
        if self.head is None or (len(self.head) == 0 and len(df)):
            self.head = df.iloc[:1000].copy()
        t = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        if rows is None:
            rows = np.arange(self.n, self.n + len(df), dtype=np.int64)
        t = t.append_column(ROW_COLUMN, pa.array(rows))
        f = self.dir / f"spill-{len(self.files):06d}.arrow"
        with pa.OSFile(str(f), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)
        self.files.append(f)
        self.n += len(df)


def _read_ipc(f: Path, columns: list[str] | None = None):
    import pyarrow as pa

    with pa.memory_map(str(f), "r") as src:
        t = pa.ipc.open_file(src).read_all()
        return t.select(columns) if columns is not None else t


def _bucket_edges(spill: _Spill, n_side: int, bucket_rows: int) -> np.ndarray:
    """Key boundaries of buckets of at most ~``bucket_rows`` rows (from a key histogram)."""
    n_keys = int(tile_keys(np.array([spill.extent[1]]), np.array([spill.extent[3]]), spill.extent, n_side)[0]) + 1
    hist = np.zeros(n_keys, np.int64)
    for f in spill.files:
        t = _read_ipc(f, ["x", "y"])
        k = tile_keys(t.column("x").to_numpy(), t.column("y").to_numpy(), spill.extent, n_side)
        hist += np.bincount(k.astype(np.int64), minlength=n_keys)[:n_keys]
    cum = np.cumsum(hist)
    edges = [0]
    while edges[-1] < n_keys:
        base = cum[edges[-1] - 1] if edges[-1] else 0
        nxt = int(np.searchsorted(cum, base + bucket_rows, side="right"))
        edges.append(min(n_keys, max(nxt, edges[-1] + 1)))
    return np.asarray(edges, np.int64)


def _bucket(spill: _Spill, schema, n_side: int, edges: np.ndarray) -> list[Path]:
    """Pass 2: split every spill by key range into per-bucket IPC files (input order kept)."""
    import pyarrow as pa

    n_b = len(edges) - 1
    paths = [spill.dir / f"bucket-{b:05d}.arrow" for b in range(n_b)]
    key_schema = schema.append(pa.field(_KEY, pa.uint64()))
    sinks = [pa.OSFile(str(p), "wb") for p in paths]
    writers = [pa.ipc.new_file(s, key_schema) for s in sinks]
    try:
        for f in spill.files:
            t = _read_ipc(f).cast(schema)
            if n_side:
                k = tile_keys(t.column("x").to_numpy(), t.column("y").to_numpy(), spill.extent, n_side)
            else:
                k = np.zeros(t.num_rows, np.uint64)
            b = np.searchsorted(edges, k.astype(np.int64), side="right") - 1
            order = np.argsort(b, kind="stable")
            starts = np.searchsorted(b[order], np.arange(n_b + 1))
            t = t.append_column(_KEY, pa.array(k)).take(pa.array(order))
            for j in range(n_b):
                if starts[j + 1] > starts[j]:
                    writers[j].write_table(t.slice(starts[j], starts[j + 1] - starts[j]))
            f.unlink()
    finally:
        for w, s in zip(writers, sinks):
            w.close()
            s.close()
    return paths


def _final_schema(spill: _Spill, dtypes: dict[str, str]):
    import pyarrow as pa

    head = spill.head.reset_index(drop=True)
    for c, d in dtypes.items():
        if str(head[c].dtype) != d:
            head[c] = head[c].astype(d)
    head[ROW_COLUMN] = np.zeros(len(head), np.int64)
    head.attrs = {}
    return pa.Table.from_pandas(head, preserve_index=False).schema, head


def _bucket_tables(p: Path, sort: bool):
    """The rows of bucket file ``p`` in key order: sorted whole, or (one key) batch by batch."""
    import pyarrow as pa

    if sort:
        t = _read_ipc(p)
        yield t.take(pa.array(np.lexsort((t.column(ROW_COLUMN).to_numpy(), t.column(_KEY).to_numpy()))))
        return
    with pa.memory_map(str(p), "r") as src:
        r = pa.ipc.open_file(src)
        for i in range(r.num_record_batches):
            yield pa.Table.from_batches([r.get_batch(i)])


def _write_sorted(out: Path, buckets: list[Path], schema, sort: list[bool]) -> None:
    """Pass 3: sort each bucket by key (stable) and append 250 000-row row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dict_cols = [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
                 or pa.types.is_large_string(f.type)]
    with pq.ParquetWriter(str(out), schema, compression="zstd", use_dictionary=dict_cols if dict_cols else False,
                          write_statistics=True) as w:
        carry = None
        for p, srt in zip(buckets, sort):
            for t in _bucket_tables(p, srt):
                t = t.drop_columns([_KEY]).cast(schema)
                t = pa.concat_tables([carry, t]) if carry is not None else t
                full = (t.num_rows // ROW_GROUP_SIZE) * ROW_GROUP_SIZE
                if full:
                    w.write_table(t.slice(0, full), row_group_size=ROW_GROUP_SIZE)
                carry = t.slice(full).combine_chunks() if t.num_rows > full else None
                del t
            p.unlink()
        if carry is not None:
            w.write_table(carry, row_group_size=ROW_GROUP_SIZE)


def write_table_stream(
    path: Path,
    batches: Iterable[pd.DataFrame],
    *,
    kind: str,
    workdir: Path,
    bucket_rows: int,
    extra_meta: dict | None = None,
    attrs_update: dict | None = None,
    rows_given: bool = False,
) -> dict:
    """Write a table group at ``path`` (a new folder) from ``batches`` in input order.

    Parameters
    ----------
    batches
        DataFrames with the same columns (RangeIndex); the first one's attrs are the table's,
        with the notes of all batches.
    workdir
        Where the spills go (inside the transaction's staging folder); removed afterwards.
    bucket_rows
        Rows one sort pass holds at most (from the memory budget).
    attrs_update
        Attributes set on top of the batches' (e.g. the coordinate system the store gives).
    rows_given
        The batches carry ``__correlate_row`` (each row's place in input order, a permutation of
        0..n-1 over all batches) and may come in any order; otherwise arrival order is input order.

    Returns
    -------
    dict
        The group metadata (as :func:`write_table_group`), with ``n_rows``.
    """
    path.mkdir(parents=True)
    work = Path(workdir) / f"spill-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        spill = _Spill(work)
        for df in batches:
            spill.add(df, path, rows_given)
        if spill.columns is None:
            raise CorrelateError("no batch to write (an empty source)", path=path)
        dtypes = _final_dtypes(spill.dtypes, path)
        schema, head = _final_schema(spill, dtypes)
        n_side = tile_side(spill.n) if np.all(np.isfinite(spill.extent)) else 0
        edges = _bucket_edges(spill, n_side, max(1, int(bucket_rows))) if n_side else np.array([0, 1], np.int64)
        buckets = _bucket(spill, schema, n_side, edges)
        sort = [rows_given or (bool(n_side) and int(b - a) > 1) for a, b in zip(edges[:-1], edges[1:])]
        _write_sorted(path / PARQUET_NAME, buckets, schema, sort)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    attrs: dict[str, Any] = dict(spill.attrs)
    if spill.notes or "notes" in attrs:
        attrs["notes"] = list(spill.notes)
    attrs.update(attrs_update or {})
    head = head.drop(columns=[ROW_COLUMN])
    meta: dict[str, Any] = {
        "kind": kind, "schema_version": TABLE_SCHEMA_VERSION, "n_rows": int(spill.n),
        "columns": _columns_meta(head, attrs.get("units", {}) or {}), "index": None, "format": "parquet",
        "files": [PARQUET_NAME], "attrs": attrs,
    }
    meta.update(extra_meta or {})
    with open(path / "zarr.json", "w", encoding="utf-8") as fh:
        json.dump({"zarr_format": 3, "node_type": "group", "attributes": {"correlate": to_jsonable(meta)}},
                  fh, indent=2, allow_nan=False)
    return meta
