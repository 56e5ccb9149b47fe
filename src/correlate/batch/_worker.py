"""One sample's pipeline in its own process: ``python -m correlate.batch._worker SPEC.json``.

Runs the ``correlate`` subcommands listed in the spec file one after the other, in the current
folder, and exits with the status of the first that fails. Running each sample in its own process
keeps a reader that crashes, or a sample that runs out of memory, from taking the batch with it.
"""

from __future__ import annotations

import json
import shlex
import sys
import time


def main(argv: list[str]) -> int:
    from correlate.cli import main as correlate_main

    with open(argv[0], encoding="utf-8") as fh:
        commands = json.load(fh)["commands"]
    for cmd in commands:
        print(f"$ correlate {shlex.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = correlate_main(cmd)
        print(f"# exit {rc} after {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
