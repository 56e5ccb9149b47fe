"""Execute the examples as notebooks and keep them, figures included, in docs/examples/.

    .venv/bin/python examples/build_notebooks.py [--small]

Each ``examples/NN_*.py`` (jupytext percent format) is converted to a notebook, executed in a
fresh kernel with its outputs written under ``example-output/``, and saved as
``docs/examples/NN_*.ipynb``, which the docs build turns into pages with their figures
(docs/gen_examples.py). tests/test_examples.py executes the examples the same way.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def execute(script: Path, out: Path, small: bool, timeout: int = 1800):
    """The executed notebook of ``script`` (outputs under ``out``)."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(script)
    os.environ["CORRELATE_EXAMPLE_OUT"] = str(out)
    os.environ["CORRELATE_EXAMPLE_SMALL"] = "1" if small else "0"
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(out.parent)}}).execute()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the small sample sizes (as in the tests)")
    args = ap.parse_args(argv)
    import nbformat

    dest = ROOT / "docs" / "examples"
    dest.mkdir(parents=True, exist_ok=True)
    for script in sorted((ROOT / "examples").glob("[0-9][0-9]_*.py")):
        out = ROOT / "example-output" / script.stem
        out.mkdir(parents=True, exist_ok=True)
        nb = execute(script, out, args.small)
        nbformat.write(nb, dest / f"{script.stem}.ipynb")
        print(f"wrote {dest / (script.stem + '.ipynb')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
