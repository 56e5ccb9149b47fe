"""Filtering a stored localization element into a new one in bounded memory.

Two passes over the stored row groups: the first reads only the columns the condition, the ROI
and the frame range use and marks the kept rows by their input-order number; the second reads
the kept rows whole, numbers them in input order among the kept (a cumulative count of the
marks) and streams them into the new element (:func:`~correlate._store.parts.add_localizations_stream`),
which sorts them by spatial tile. The result equals :func:`~correlate.smlm.filter_localizations`
of the whole table stored as a new element.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import CorrelateError, ElementError
from ._filter import check_expression, keep_mask, parse_frames, parse_roi

__all__ = ["filter_stored"]


def _used_columns(where: str | None, roi, frames, stored: list[str]) -> list[str]:
    cols: list[str] = []
    if where is not None and str(where).strip():
        cols += check_expression(where, stored)
    if roi is not None:
        cols += ["x", "y"]
    if frames is not None:
        if "frame" not in stored:
            raise CorrelateError("a frame range needs a 'frame' column", field="frame")
        cols.append("frame")
    return list(dict.fromkeys(cols))


def filter_stored(
    scene,
    name: str,
    where: str | None = None,
    *,
    roi: str | Sequence[float] | None = None,
    frames: str | Sequence[int | None] | None = None,
    out: str | None = None,
    overwrite: bool = False,
    memory_budget: Any = None,
) -> dict:
    """Filter stored element ``name`` into element ``out`` (default ``<name>_filtered``) without
    loading the table.

    Parameters
    ----------
    where, roi, frames
        As in :func:`~correlate.smlm.filter_localizations` (roi in nm, frames 0-based).
    memory_budget
        A size (``"4GiB"``) or None (half the available memory): rows read at once and the sort's
        bucket size follow from it.

    Returns
    -------
    dict
        ``{"out", "summary": {"rows_in", "rows_out", "fraction_kept"}, "memory_budget"}``.
    """
    from .._store import catalogue as _cat
    from .._store import parts as _parts
    from ..io._memory_budget import memory_budget as _budget
    from ..io._store_tables import ROW_COLUMN, iter_row_groups, table_group_meta
    from ._history import make_step, record_step

    if not where and roi is None and frames is None:
        raise CorrelateError("nothing to filter by: give a condition (--where), an ROI or a frame range", field="where")
    if scene.kind(name) != "localizations":
        raise ElementError(f"element {name!r} is {scene.kind(name)}, not localizations", field=name)
    parse_roi(roi), parse_frames(frames)
    out = out or f"{name}_filtered"
    path = scene._abs(scene._entry(name)["path"], f"element {name!r}", must_exist=True)
    meta = table_group_meta(path)
    stored = [c["name"] for c in meta["columns"]]
    n = int(meta["n_rows"])
    budget = _budget(memory_budget)
    row_bytes = 8 * (len(stored) + 1)
    max_rows = max(250_000, int(0.1 * budget.bytes / (4 * row_bytes)))
    used = _used_columns(where, roi, frames, stored)
    kept = np.zeros(n, bool)
    for t in iter_row_groups(path, used + [ROW_COLUMN], max_rows=max_rows):
        df = t.to_pandas()
        kept[df[ROW_COLUMN].to_numpy()[keep_mask(df, where, roi=roi, frames=frames)]] = True
    rank = np.cumsum(kept, dtype=np.int64 if n >= 2**31 else np.int32) - 1
    n_out = int(rank[-1]) + 1 if n else 0
    if n_out == 0:
        raise CorrelateError(f"the filter keeps no localization of {name!r}; nothing written", field="where")
    attrs = dict(meta.get("attrs", {}))

    def batches(work):
        for t in iter_row_groups(path, stored + [ROW_COLUMN], max_rows=max_rows):
            df = t.to_pandas()
            row = df[ROW_COLUMN].to_numpy()
            sel = kept[row]
            part = df.loc[sel].reset_index(drop=True)
            part[ROW_COLUMN] = rank[row[sel]].astype(np.int64)
            part.attrs = dict(attrs)
            yield part

    if out in scene.names() and not overwrite:
        raise CorrelateError(f"element {out!r} exists already; choose another --out or pass overwrite", field=out)
    try:
        transform = scene.transform_to_world(name)
    except Exception:  # noqa: BLE001 - an element without a transform maps by identity
        transform = None
    res = {"rows_in": n, "rows_out": n_out, "fraction_kept": n_out / max(n, 1)}
    with scene._change(f"filtering {name!r} (streamed)") as txn:
        _cat.check_new_name(scene._meta, out, overwrite, scene.path)
        bucket_rows = max(1000, int(0.25 * budget.bytes / (3 * row_bytes)))
        _parts.add_localizations_stream(txn, out, batches, transform, bucket_rows=bucket_rows, rows_given=True)
        if transform is not None:
            scene.declare_aligned(out, note="transform given to Scene.add", _implicit=True)
        params = {"where": where, "roi": None if roi is None else str(roi),
                  "frames": None if frames is None else str(frames)}
        record_step(scene, out, make_step("filter", params, source=name, results=res), inherit_from=name)
    return {"out": out, "summary": res, "memory_budget": budget.record()}
