"""Importing files into a scene, in memory or streamed, as a memory budget decides.

:func:`plan_import` looks at a file (its reader, its size in rows and columns) and the budget and
says how it will be read; :func:`import_file` carries the plan out inside the scene's
transaction (one commit point: a failure or a kill anywhere leaves the store as it was).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import CorrelateError
from ._memory_budget import IN_MEMORY_FACTOR, MemoryBudget, memory_budget

__all__ = ["ImportPlan", "plan_import", "import_file"]

#: Share of the budget one batch's in-memory read takes, and one sort bucket's rows.
BATCH_SHARE = 0.25
BUCKET_SHARE = 0.25
#: Bytes a row of the stored table takes per column (float64 / int64).
BYTES_PER_VALUE = 8


@dataclass
class ImportPlan:
    """How a file is read: ``mode`` ``"memory"`` or ``"stream"``, with the estimates behind it.

    Sizes in bytes; ``reason`` says in words why (printed by ``correlate import``).
    """

    path: str
    reader: str
    mode: str
    reason: str
    budget: dict
    est_rows: int | None = None
    est_columns: int | None = None
    est_memory_bytes: int | None = None
    batch_rows: int | None = None
    batch_bytes: int | None = None
    bucket_rows: int | None = None

    def record(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.mode == "memory":
            return f"read in memory ({self.reason})"
        return (f"streamed ({self.reason}); batches of ~{self.batch_rows:,} rows, sort buckets of "
                f"<= {self.bucket_rows:,} rows")


def plan_import(path: str | Path, *, format: str | None = None, memory_budget_bytes=None,
                stream: bool | None = None) -> ImportPlan:
    """Decide how ``path`` is imported.

    Parameters
    ----------
    memory_budget_bytes
        A size (``"4GiB"``, bytes) or a MemoryBudget; None: half the available memory.
    stream
        Force streaming (True) or an in-memory read (False); None decides from the budget: a
        table streams when its estimated in-memory peak (rows x columns x 8 bytes x
        :data:`IN_MEMORY_FACTOR`) exceeds the budget.

    Raises
    ------
    CorrelateError
        ``stream=True`` for a format that cannot be read in batches.
    """
    from ._registry import find_reader
    from .readers._smlm_stream import STREAMABLE, can_stream, estimate_rows

    path = Path(path)
    spec = find_reader(path, format)
    budget: MemoryBudget = memory_budget(memory_budget_bytes)
    plan = ImportPlan(str(path), spec.name, "memory", "", budget.record())
    if not can_stream(spec, path):
        if stream:
            raise CorrelateError(f"the {spec.name} reader cannot read in batches (streamable formats: "
                                 f"{sorted(STREAMABLE)}); import without --stream", path=path, field="stream")
        plan.reason = f"the {spec.name} format is read whole"
        return plan
    rows, cols = estimate_rows(path)
    row_bytes = max(1, cols) * BYTES_PER_VALUE
    est = int(rows * row_bytes * IN_MEMORY_FACTOR)
    plan.est_rows, plan.est_columns, plan.est_memory_bytes = rows, cols, est
    gib = 1024**3
    if stream is None:
        stream = est > budget.bytes
        plan.reason = (f"~{rows:,} rows x {cols} columns, in-memory peak ~{est / gib:.2f} GiB "
                       f"{'>' if stream else '<='} {budget.describe()}")
    else:
        plan.reason = f"{'streaming' if stream else 'in-memory read'} asked for; {budget.describe()}"
    if not stream:
        return plan
    plan.mode = "stream"
    plan.batch_rows = max(1000, int(BATCH_SHARE * budget.bytes / (row_bytes * IN_MEMORY_FACTOR)))
    size = path.stat().st_size
    plan.batch_bytes = max(1 << 16, int(plan.batch_rows * size / max(rows, 1)))
    plan.bucket_rows = max(1000, int(BUCKET_SHARE * budget.bytes / (3 * row_bytes)))
    return plan


def import_file(scene, path: str | Path, name: str, *, plan: ImportPlan | None = None, overwrite: bool = False,
                modality: str | None = None, format: str | None = None, memory_budget=None,
                stream: bool | None = None, **overrides: Any) -> dict:
    """Read ``path`` and add it to ``scene`` as element ``name`` (in memory or streamed).

    Parameters
    ----------
    plan
        A plan from :func:`plan_import` (made here from ``format``, ``memory_budget`` and
        ``stream`` when None).
    overrides
        Reader options (``pixel_size_nm=``, ``columns=``, ``unit=``...).

    Returns
    -------
    dict
        The plan's record with ``n_rows`` / ``columns`` (stream) or the element (memory, key
        ``element``).
    """
    from .._store import catalogue as _cat
    from .._store import parts as _parts
    from .._store.paths import check_name
    from ._registry import find_reader, read

    plan = plan or plan_import(path, format=format, memory_budget_bytes=memory_budget, stream=stream)
    if plan.mode == "memory":
        element = read(path, modality=modality, format=format, **overrides)
        scene.add(name, element, overwrite=overwrite)
        return {**plan.record(), "element": element}
    from .readers._smlm_stream import iter_batches

    spec = find_reader(path, plan.reader)
    if modality is not None:
        overrides["modality"] = modality
    check_name(name)

    def batches(work: Path):
        return iter_batches(spec, Path(path), work, batch_bytes=plan.batch_bytes, batch_rows=plan.batch_rows,
                            **overrides)

    with scene._change(f"importing {name!r} (streamed)") as txn:
        _cat.check_new_name(scene._meta, name, overwrite, scene.path)
        meta = _parts.add_localizations_stream(txn, name, batches, None, bucket_rows=plan.bucket_rows)
    return {**plan.record(), "n_rows": int(meta["n_rows"]), "columns": [c["name"] for c in meta["columns"]],
            "attrs": meta.get("attrs", {})}
