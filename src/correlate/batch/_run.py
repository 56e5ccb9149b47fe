"""Run a manifest's samples as tasks on ``dask.distributed`` and gather one table."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CorrelateError
from ..io._atomic import write_json_atomic
from ._manifest import SampleSpec, read_manifest
from ._sample import TABLE_NAME, run_sample, sample_dir

__all__ = ["BatchResult", "run_batch", "combined_table"]


@dataclass
class BatchResult:
    """What :func:`run_batch` did.

    Attributes
    ----------
    samples
        One row per sample: ``sample``, ``status`` (``ok``, ``skipped``, ``failed``), ``seconds``,
        ``message``, ``log``, ``folder``.
    table
        The per-particle tables of all completed samples, with a leading ``sample`` column.
    out
        The output folder.
    """

    samples: pd.DataFrame
    table: pd.DataFrame
    out: Path
    files: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """Names of the samples that failed."""
        return self.samples.loc[self.samples["status"] == "failed", "sample"].tolist()


def combined_table(out: str | Path, specs: list[SampleSpec]) -> pd.DataFrame:
    """Concatenate the completed samples' per-particle tables, ``sample`` first."""
    parts = []
    for spec in specs:
        path = sample_dir(out, spec.name) / TABLE_NAME
        if spec.structure and path.is_file():
            t = pd.read_parquet(path)
            t.insert(0, "sample", spec.name)
            parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"sample": pd.Series(dtype=str)})


def _cluster(workers: int, scheduler: str | None):
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    # Each task waits on a child process that does the work, so worker threads are enough.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
    return Client(cluster), cluster


def _run_distributed(specs, out, workers, scheduler, threads, rerun, show_progress, report):
    from distributed import as_completed, progress

    client, cluster = _cluster(workers, scheduler)
    try:
        futures = [client.submit(run_sample, s, str(out), threads=threads, rerun=rerun, key=f"sample-{s.name}",
                                 pure=False) for s in specs]
        if show_progress:
            progress(futures)
        results = []
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as exc:  # a worker lost or a task that could not run at all
                name = fut.key.removeprefix("sample-")
                res = {"sample": name, "status": "failed", "seconds": float("nan"),
                       "message": f"task failed: {type(exc).__name__}: {exc}", "log": "", "folder": ""}
            report(res)
            results.append(res)
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_batch(
    manifest: str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_sample: int | None = None,
    rerun: bool = False,
    progress: bool | None = None,
    verbose: bool = True,
) -> BatchResult:
    """Run every sample of ``manifest`` (see :mod:`correlate.batch._manifest`) into ``out``.

    Each sample is one task: its own process runs ``correlate import``, ``register`` and
    ``particles`` into ``out/<sample>/scene.ome.zarr``. A failing sample is reported and the
    others go on; a completed sample whose inputs and row are unchanged is skipped on a rerun.

    Parameters
    ----------
    workers
        Samples run at once on a ``LocalCluster``; default: this machine's cores, at most one per
        sample; ``0`` runs them one after the other in this process (no cluster).
    scheduler
        Address of an existing ``dask.distributed`` scheduler instead of a ``LocalCluster`` (its
        workers must see the files and ``out``).
    threads_per_sample
        Threads each sample's kernels may use; default: the cores divided by ``workers``.
    rerun
        Run completed samples again.
    progress
        Show dask's progress bar (default: when stdout is a terminal).

    Returns
    -------
    BatchResult
        Per-sample status and the combined per-particle table; both are also written to
        ``out/batch.json``, ``out/particles.parquet`` and ``out/particles.csv``.
    """
    specs = read_manifest(manifest)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ncpu = os.cpu_count() or 1
    if workers is None:
        workers = min(ncpu, len(specs))
    if workers < 0:
        raise CorrelateError(f"workers must be >= 0, got {workers}", field="workers")
    threads = threads_per_sample or (max(1, ncpu // max(workers, 1)) if workers or scheduler else None)
    show = sys.stdout.isatty() if progress is None else progress

    def report(res: dict[str, Any]) -> None:
        if verbose:
            extra = f": {res['message']}" if res["status"] == "failed" else ""
            print(f"  {res['sample']}: {res['status']} ({res['seconds']:.1f} s){extra}", flush=True)

    if verbose:
        where = scheduler or (f"a LocalCluster of {workers} workers" if workers else "this process, one at a time")
        print(f"batch: {len(specs)} samples from {manifest} on {where}; {threads or 'all'} thread(s) each", flush=True)
    if workers == 0 and not scheduler:
        results = []
        for s in specs:
            results.append(run_sample(s, out, threads=threads, rerun=rerun))
            report(results[-1])
    else:
        results = _run_distributed(specs, out, workers, scheduler, threads, rerun, show, report)
    order = {s.name: i for i, s in enumerate(specs)}
    results.sort(key=lambda r: order.get(r["sample"], len(order)))
    samples = pd.DataFrame(results)[["sample", "status", "seconds", "message", "log", "folder"]]
    table = combined_table(out, specs)
    files = {"batch": str(out / "batch.json")}
    write_json_atomic(out / "batch.json", {"manifest": str(Path(manifest).resolve()), "samples": results})
    if len(table):
        table.to_parquet(out / "particles.parquet", index=False)
        table.to_csv(out / "particles.csv", index=False)
        files.update(table=str(out / "particles.parquet"), csv=str(out / "particles.csv"))
        from ..plot._batch import plot_batch_summary
        from ..plot._overlay import save_figure

        save_figure(plot_batch_summary(table), out / "summary.png")
        files["plot"] = str(out / "summary.png")
    if verbose:
        counts = samples["status"].value_counts().to_dict()
        print(f"batch: {counts.get('ok', 0)} ok, {counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed; "
              f"{len(table)} particles in {out / 'particles.parquet'}", flush=True)
    return BatchResult(samples=samples, table=table, out=out, files=files)
