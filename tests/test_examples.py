"""The scripts in examples/ run as notebooks (small sizes), show their figures inline and write what
they promise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FORMATS = ROOT.parent / "shared" / "data" / "formats"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _build_notebooks():
    return _load(EXAMPLES / "build_notebooks.py")


def _site_shows_figures(tmp_path: Path, nb, n_figures: int) -> None:
    """The strict MkDocs build of a docs copy holding this executed notebook shows its figures."""
    import json
    import re
    import shutil
    import subprocess
    import sys

    pytest.importorskip("mkdocs", reason="mkdocs not installed (test or docs extra)")
    import nbformat

    root = tmp_path / "docs-build"
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("examples"))
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    (root / "docs" / "examples").mkdir()
    nbformat.write(nb, root / "docs" / "examples" / "01_demo_walkthrough.ipynb")
    for other in sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))[1:]:  # the others as empty executed notebooks
        empty = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
        (root / "docs" / "examples" / f"{other.stem}.ipynb").write_text(json.dumps(empty), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(root / "site")], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    page = root / "site" / "examples" / "01_demo_walkthrough" / "index.html"
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page.read_text(encoding="utf-8"))
    assert len(srcs) == n_figures and all((page.parent / s).resolve().is_file() for s in srcs), srcs


def test_every_example_is_covered():
    scripts = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    assert scripts == ["01_demo_walkthrough.py", "02_real_file_import.py"]
    for s in scripts:
        head = (EXAMPLES / s).read_text(encoding="utf-8").splitlines()[:8]
        assert any("format_name: percent" in line for line in head), f"{s} lacks the jupytext header"


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")


def test_01_demo_walkthrough_as_a_notebook(tmp_path, monkeypatch):
    """Executed as a notebook in a kernel: every figure cell shows its figure inline (PNG), the
    scene shows its HTML summary, and the files are written."""
    pytest.importorskip("nbclient", reason="nbclient/jupytext not installed (test extra)")
    out = tmp_path / "ex01"
    out.mkdir()
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = _build_notebooks().execute(EXAMPLES / "01_demo_walkthrough.py", out, small=True, timeout=900)
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 5, f"{len(pngs)} inline figures"
    # the docs page of this notebook (docs/gen_examples.py) shows every figure as a PNG file
    gen = _load(ROOT / "docs" / "gen_examples.py")
    page, files = gen.notebook_markdown(nb, "01_demo_walkthrough", tmp_path / "page_files")
    assert len(files) == len(pngs) and all(f.read_bytes().startswith(b"\x89PNG") for f in files)
    assert page.count("](01_demo_walkthrough_files/") == len(pngs) and "antibody -&gt; em" in page
    _site_shows_figures(tmp_path, nb, len(pngs))
    htmls = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "text/html" in o.get("data", {})]
    assert any("correlate scene" in h and "antibody -&gt; em" in h for h in htmls)
    stdout = _stdout(nb)
    for name in ("sample.ome.zarr", "smlm_render.png", "overlay.png", "size_distribution.png",
                 "counts_vs_size.png", "radial_profiles.png", "gallery.png", "particles.csv", "report.html"):
        p = out / name
        assert p.exists() and (p.is_dir() or p.stat().st_size > 0), name
    assert "histogram: counted {'antibody': " in stdout
    # every localization of the camera frame counted (the render grid is the data's extent)
    line = next(l for l in stdout.splitlines() if l.startswith("histogram: counted"))
    counted, total = line.split(" of ")
    assert counted.split("counted ")[1] == total
    assert "antibody -> em: model" in stdout
    import pandas as pd

    table = pd.read_csv(out / "particles.csv")
    assert len(table) > 0 and {"equivalent_diameter_nm", "n_molecules_antibody"} <= set(table.columns)


def test_02_real_file_import_as_a_notebook(tmp_path, monkeypatch):
    """Executed as a notebook: the import summary, the store and both figures inline."""
    if not (FORMATS / "MANIFEST.tsv").exists():
        pytest.skip(f"real sample files not present at {FORMATS}")
    pytest.importorskip("nbclient", reason="nbclient/jupytext not installed (test extra)")
    out = tmp_path / "ex02"
    out.mkdir()
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("CORRELATE_FORMATS_DIR", str(FORMATS))
    nb = _build_notebooks().execute(EXAMPLES / "02_real_file_import.py", out, small=True, timeout=900)
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2, f"{len(pngs)} inline figures (SMLM render and EM expected)"
    for name in ("import_summary.tsv", "imported.ome.zarr", "smlm_render.png", "em.png"):
        assert (out / name).exists(), name
    summary = (out / "import_summary.tsv").read_text(encoding="utf-8").splitlines()
    assert len(summary) == 1 + 3  # header + the three files of the small selection
    stdout = _stdout(nb)
    assert "localizations" in stdout and "counted in the histogram" in stdout
