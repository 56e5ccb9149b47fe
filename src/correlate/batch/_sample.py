"""Run one sample of a batch: a process of its own, outputs staged, then published in one rename.

Layout under the batch's output folder ``OUT``:

``OUT/<sample>/``
    A completed sample: ``scene.ome.zarr``, ``particles.parquet`` (when a particle step ran),
    ``log.txt`` (everything the steps printed) and ``done.json`` (status, fingerprint, timings).
``OUT/<sample>.partial/``
    A sample being run. A killed batch leaves it behind; the next run removes it and starts the
    sample again.
``OUT/<sample>.failed/``
    The last failed attempt, kept with its log; an earlier completed result stays in
    ``OUT/<sample>/`` untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ..io._atomic import _exchange, read_json, remove_tree, write_json_atomic
from ._manifest import SampleSpec

__all__ = ["run_sample", "sample_dir", "STORE_NAME", "TABLE_NAME"]

STORE_NAME = "scene.ome.zarr"
TABLE_NAME = "particles.parquet"
DONE_NAME = "done.json"
LOG_NAME = "log.txt"
_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def sample_dir(out: str | Path, name: str, state: str = "") -> Path:
    """Folder of sample ``name`` under ``out``: ``state`` is ``""`` (completed), ``"partial"`` or
    ``"failed"``."""
    return Path(out) / (f"{name}.{state}" if state else name)


def completed(out: str | Path, spec: SampleSpec) -> dict[str, Any] | None:
    """The done record of ``spec`` if it completed with the same fingerprint, else ``None``."""
    done = sample_dir(out, spec.name) / DONE_NAME
    if not done.is_file():
        return None
    try:
        rec = read_json(done)
    except (OSError, ValueError):
        return None
    return rec if rec.get("status") == "ok" and rec.get("fingerprint") == spec.fingerprint() else None


def _last_error(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errs = [ln for ln in lines if "error" in ln.lower()]
    return (errs or lines or ["(no output)"])[-1][:500]


def _publish(out: Path, spec: SampleSpec, partial: Path) -> Path:
    """Put the staged sample in place of its completed folder in one atomic step where the file
    system allows (a swap), so a kill leaves either the old result or the new one."""
    final = sample_dir(out, spec.name)
    if not final.exists():
        os.replace(partial, final)
    elif _exchange(partial, final):
        remove_tree(partial)
    else:
        trash = out / f".{spec.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(partial, final)
        remove_tree(trash)
    remove_tree(sample_dir(out, spec.name, "failed"))
    return final


def run_sample(spec: SampleSpec, out: str | Path, *, threads: int | None = None, rerun: bool = False) -> dict[str, Any]:
    """Run one sample's pipeline (import, register, particles) in a child process.

    Parameters
    ----------
    spec
        The sample (from :func:`~correlate.batch.read_manifest`).
    out
        The batch's output folder.
    threads
        Threads the sample's numerical kernels may use (numba, OpenMP, BLAS); ``None``: no limit.
    rerun
        Run even if a completed result with the same fingerprint exists.

    Returns
    -------
    dict
        ``sample``, ``status`` (``ok``, ``skipped``, ``failed``), ``seconds``, ``message``,
        ``log`` (path), ``folder``.
    """
    out = Path(out)
    t0 = time.perf_counter()
    rec = None if rerun else completed(out, spec)
    if rec is not None:
        folder = sample_dir(out, spec.name)
        return {**rec, "status": "skipped", "seconds": 0.0, "message": "completed earlier with the same inputs",
                "log": str(folder / LOG_NAME), "folder": str(folder)}
    partial = sample_dir(out, spec.name, "partial")
    remove_tree(partial)
    partial.mkdir(parents=True)
    log = partial / LOG_NAME
    missing = [p for p in spec.files.values() if not Path(p).is_file()]
    commands = spec.commands(STORE_NAME, TABLE_NAME)
    write_json_atomic(partial / "commands.json", {"sample": spec.name, "commands": commands})
    if missing:
        log.write_text("".join(f"error: input file not found: {p}\n" for p in missing))
        rc = 2
    else:
        env = dict(os.environ)
        if threads:
            env.update({k: str(threads) for k in _THREAD_VARS})
        with open(log, "w", encoding="utf-8") as fh:
            rc = subprocess.call([sys.executable, "-m", "correlate.batch._worker", "commands.json"],
                                 cwd=partial, stdout=fh, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - t0
    result = {"sample": spec.name, "fingerprint": spec.fingerprint(), "seconds": round(seconds, 3),
              "row": spec.row, "n_steps": len(commands)}
    if rc == 0:
        result.update(status="ok", message="")
        write_json_atomic(partial / DONE_NAME, result)
        folder = _publish(out, spec, partial)
    else:
        why = f"exit status {rc}" if rc > 0 else f"killed by signal {-rc}"
        result.update(status="failed", message=f"{_last_error(log)} ({why})")
        write_json_atomic(partial / "failed.json", result)
        folder = sample_dir(out, spec.name, "failed")
        remove_tree(folder)
        os.replace(partial, folder)
    return {**result, "log": str(folder / LOG_NAME), "folder": str(folder)}
