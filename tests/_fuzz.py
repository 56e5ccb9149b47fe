"""Reader fuzzing: seeded mutants of the real sample files, each read in a guarded worker process.

The worker reads one path per request with ``correlate.io.read`` (and computes a corner of an
image, so errors of a lazy loader surface), under an address-space limit and a per-file alarm;
the parent kills and restarts a worker that does not answer in time. Used by
``tests/test_read_fuzz.py``; ``python tests/_fuzz.py N`` prints the counts for N mutants per file.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Files that belong together: mutating one keeps its sibling beside it.
SIBLINGS = {".hdf5": [".yaml"], ".yaml": [".hdf5"], ".ser": [".emi"], ".emi": [".ser"]}
#: The extra address space a read may take (bytes) before it counts as a blow-up.
MEMORY_BUDGET = 1 << 30
TIMEOUT_S = 10.0

WORKER = r"""
import json, logging, os, resource, signal, sys, traceback, warnings
logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")
budget = int(sys.argv[1])
import numpy as np
import correlate.io as cio
from correlate.errors import CorrelateError
def usage():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()
base = usage()
resource.setrlimit(resource.RLIMIT_AS, (base + budget, base + budget))
def alarm(*_):
    raise TimeoutError("alarm")
signal.signal(signal.SIGALRM, alarm)
timeout = int(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    out = {"path": path}
    signal.alarm(timeout)
    try:
        el = cio.read(path)
        if hasattr(el, "dims"):
            idx = {d: slice(0, 2) for d in el.dims}
            np.asarray(el.isel(idx).values)
            idx = {d: slice(-2, None) for d in el.dims}
            np.asarray(el.isel(idx).values)
        out["result"] = "ok"
    except CorrelateError as exc:
        msg = str(exc)
        ctx, depth = exc.__context__, 0
        while ctx is not None and depth < 10:
            if isinstance(ctx, (MemoryError, TimeoutError)):
                out.update(result="memory" if isinstance(ctx, MemoryError) else "hang", type=type(exc).__name__)
                break
            ctx, depth = ctx.__context__, depth + 1
        if "result" in out:
            print(json.dumps(out), flush=True)
            continue
        out.update(result="error", type=type(exc).__name__, names_file=os.path.dirname(path) in msg,
                   length=len(msg))
    except MemoryError:
        out.update(result="memory")
    except TimeoutError:
        out.update(result="hang")
    except BaseException as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else "?"
        out.update(result="escaped", type=type(exc).__name__, message=str(exc)[:200], where=where)
    finally:
        signal.alarm(0)
    print(json.dumps(out), flush=True)
"""


@dataclass
class Outcome:
    path: str
    result: str
    info: dict


class GuardedReader:
    """A worker process that reads files with a memory budget; restarted after a crash or hang."""

    def __init__(self, budget: int = MEMORY_BUDGET, timeout: float = TIMEOUT_S) -> None:
        self.budget, self.timeout = budget, timeout
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(self.budget), str(int(self.timeout))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self._readline(120.0)

    def _readline(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline()

    def read(self, path: Path) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        t0 = time.monotonic()
        line = self._readline(self.timeout + 5.0)
        if not line:
            self.close()
            kind = "hang" if time.monotonic() - t0 >= self.timeout else "crash"
            return Outcome(str(path), kind, {})
        info = json.loads(line)
        return Outcome(str(path), info.pop("result"), info)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One seeded mutation: a truncation, bit flips, a zeroed or 0xFF run, a byte duplication, or a
    changed digit (text headers and sizes)."""
    b = bytearray(data)
    n = len(b)
    op = int(rng.integers(6))
    if n == 0:
        return bytes(b)
    if op == 0:  # truncation
        return bytes(b[: int(rng.integers(0, n))])
    if op == 1:  # bit flips, mostly near the start (headers)
        for _ in range(int(rng.integers(1, 9))):
            i = int(min(n - 1, rng.exponential(min(n, 4096))))
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if op == 2:  # a run of zeros or 0xFF
        i = int(rng.integers(n))
        k = int(rng.integers(1, 64))
        b[i : i + k] = bytes([0 if rng.random() < 0.5 else 255]) * len(b[i : i + k])
        return bytes(b)
    if op == 3:  # duplicate a block
        i = int(rng.integers(n))
        k = int(rng.integers(1, 512))
        return bytes(b[:i] + b[i : i + k] + b[i:])
    if op == 4:  # change digits (sizes, counts, calibrations in text headers)
        digits = [i for i in range(min(n, 65536)) if 48 <= b[i] <= 57]
        for _ in range(int(rng.integers(1, 4))):
            if digits:
                i = digits[int(rng.integers(len(digits)))]
                b[i] = 48 + int(rng.integers(10))
        return bytes(b)
    # op 5: overwrite 4 or 8 bytes with a large or odd integer (binary sizes, offsets)
    i = int(min(n - 1, rng.exponential(min(n, 2048))))
    val = [2**31 - 1, 2**32 - 1, 2**63 - 1, 0, 1 << 40, 0x7FF0000000000000][int(rng.integers(6))]
    w = 8 if rng.random() < 0.5 else 4
    raw = int(val & ((1 << (8 * w)) - 1)).to_bytes(w, "little")
    b[i : i + w] = raw[: len(b[i : i + w])]
    return bytes(b)


def sample_files(formats_dir: Path, max_bytes: int = 4 << 20) -> list[Path]:
    """The real sample files a reader claims (sidecars excluded), at most ``max_bytes`` each."""
    out = []
    for p in sorted(formats_dir.rglob("*")):
        if not p.is_file() or p.name in ("MANIFEST.tsv", "NOTES.md") or p.suffix == ".yaml":
            continue
        if p.suffix == ".ser":  # read through its .emi
            continue
        if p.stat().st_size <= max_bytes:
            out.append(p)
    return out


def mutants(src: Path, n: int, seed: int, workdir: Path) -> list[Path]:
    """``n`` mutants of ``src`` (each in its own folder, siblings copied unchanged)."""
    rng = np.random.default_rng([seed, sum(src.name.encode())])
    data = src.read_bytes()
    paths = []
    for k in range(n):
        d = workdir / f"{src.stem}-{k}"
        d.mkdir(parents=True, exist_ok=True)
        target = d / src.name
        target.write_bytes(mutate(data, rng))
        for suf in SIBLINGS.get(src.suffix, []):
            sib = src.with_suffix(suf)
            if sib.exists():
                if src.suffix == ".hdf5" and rng.random() < 0.5:  # mutate the YAML sidecar instead
                    target.write_bytes(data)
                    (d / sib.name).write_bytes(mutate(sib.read_bytes(), rng))
                else:
                    shutil.copyfile(sib, d / sib.name)
        paths.append(target)
    return paths


def run(formats_dir: Path, n: int, seed: int, workdir: Path) -> list[Outcome]:
    reader = GuardedReader()
    out: list[Outcome] = []
    try:
        for src in sample_files(formats_dir):
            for p in mutants(src, n, seed, workdir / src.parent.name):
                out.append(reader.read(p))
    finally:
        reader.close()
    return out


if __name__ == "__main__":
    import tempfile
    from collections import Counter

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    fmt = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "formats"
    with tempfile.TemporaryDirectory() as tmp:
        res = run(fmt, n, 0, Path(tmp))
    print(Counter(o.result for o in res))
    for o in res:
        if o.result not in ("ok", "error") or (o.result == "error" and not o.info.get("names_file")):
            print(o.result, os.path.basename(os.path.dirname(o.path)), o.info)
