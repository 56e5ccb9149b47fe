"""Pieces the benchmark scripts share: a worker run in a fresh process, the load average."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def run_worker(cmd: list[str], label: str, env: dict | None = None) -> dict:
    """Run ``cmd`` (a worker printing one JSON line last) in its own process; its JSON plus
    ``process_s``, the whole-process wall time."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{label} worker failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
