"""The documentation: the CLI reference is generated from the parser and matches --help; the site
builds without warnings when MkDocs is installed."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sections(md: str) -> dict[str, str]:
    """``name -> text`` of each ``## correlate NAME`` section's code block ('' for the top)."""
    out = {}
    top = re.search(r"```text\n(.*?)\n```", md, re.S)
    out[""] = top.group(1)
    for m in re.finditer(r"^## correlate (\S+)\n\n```text\n(.*?)\n```", md, re.S | re.M):
        out[m.group(1)] = m.group(2)
    return out


def test_cli_reference_equals_each_help_output(capsys, monkeypatch):
    from correlate.cli import build_parser, main

    gen = _gen()
    md = gen.render()
    sections = _sections(md)
    names = list(gen.subcommands(build_parser()))
    assert names and set(sections) == {""} | set(names)
    monkeypatch.setenv("COLUMNS", str(gen.WIDTH))
    for name in [""] + names:
        argv = [name, "--help"] if name else ["--help"]
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        printed = capsys.readouterr().out
        assert printed.rstrip("\n") == sections[name], f"correlate {name} --help differs from docs/cli.md"


def test_cli_reference_matches_the_console_command():
    gen = _gen()
    sections = _sections(gen.render())
    env = {"COLUMNS": str(gen.WIDTH), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "correlate", "overlay", "--help"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") == sections["overlay"]


def test_committed_cli_reference_is_current():
    gen = _gen()
    committed = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert committed == gen.render(), "docs/cli.md is stale: run `python docs/gen_cli.py`"


def test_nav_pages_exist():
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for item in nav:
            for v in item.values():
                if isinstance(v, list):
                    yield from pages(v)
                else:
                    yield v

    # the example pages are written from the executed notebooks by docs/gen_examples.py
    listed = list(pages(cfg["nav"]))
    missing = [p for p in listed if not p.startswith("examples/") and not (DOCS / p).exists()]
    assert not missing, f"pages named in mkdocs.yml but absent from docs/: {missing}"
    scripts = sorted(p.stem for p in (ROOT / "examples").glob("[0-9][0-9]_*.py"))
    assert [Path(p).stem for p in listed if p.startswith("examples/")] == scripts, "every example is a page"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for p in ("formats-smlm.md", "formats-images.md", "registration.md", "analysis.md", "smlm-processing.md",
              "cli.md", "figures.md"):
        assert f"({p})" in index, f"index.md does not link {p}"


def _png(seed: int) -> bytes:
    """A small valid PNG (8 x 8 grey noise), without matplotlib."""
    import struct
    import zlib

    import numpy as np

    rows = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _executed_notebook(title: str, n_figures: int) -> dict:
    """A tiny executed notebook (nbformat 4): markdown, printed text, figures, an HTML summary."""
    import base64

    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "\n", "What it shows."]},
             {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["print('fitted ```x```')"],
              "outputs": [{"output_type": "stream", "name": "stdout", "text": ["fitted ```x```\n"]}]},
             {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "scene",
              "outputs": [{"output_type": "execute_result", "execution_count": 2, "metadata": {},
                           "data": {"text/html": "<table><tr><td>em</td></tr></table>", "text/plain": "Scene"}}]}]
    for k in range(n_figures):
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": 3 + k, "source": f"fig{k}",
                      "outputs": [{"output_type": "display_data", "metadata": {},
                                   "data": {"image/png": base64.b64encode(_png(k)).decode(), "text/plain": "<Figure>"}}]})
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def _docs_copy(tmp_path: Path, notebooks: bool) -> Path:
    """A copy of docs/ and mkdocs.yml (hooks never touch the checkout), with tiny executed
    notebooks for every example page of the nav when ``notebooks``."""
    import json

    yaml = pytest.importorskip("yaml")
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install mkdocs, the docs extra)")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("examples"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    if notebooks:
        (tmp_path / "docs" / "examples").mkdir()
        pages = _gen_examples().example_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
        for k, page in enumerate(pages):
            nb = _executed_notebook(Path(page).stem, n_figures=2 + k)
            (tmp_path / "docs" / page).with_suffix(".ipynb").write_text(json.dumps(nb), encoding="utf-8")
    return tmp_path


def _gen_examples():
    spec = importlib.util.spec_from_file_location("gen_examples", DOCS / "gen_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _build(root: Path) -> subprocess.CompletedProcess:
    # no -q: it hides the warnings from --strict
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(root / "site")],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_docs_build_without_warnings(tmp_path):
    """The strict build succeeds, and every example page holds its notebook's figures as <img>
    whose files are in the site."""
    root = _docs_copy(tmp_path, notebooks=True)
    r = _build(root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    site = root / "site"
    assert (site / "index.html").exists()
    assert (site / "cli" / "index.html").exists()
    for k, nb in enumerate(sorted((root / "docs" / "examples").glob("*.ipynb"))):
        page = site / "examples" / nb.stem / "index.html"
        html = page.read_text(encoding="utf-8")
        srcs = re.findall(r'<img [^>]*src="([^"]+)"', html)
        assert len(srcs) == 2 + k, srcs
        for src in srcs:
            png = (page.parent / src).resolve()
            assert png.is_file() and png.read_bytes().startswith(b"\x89PNG"), src
        assert "<td>em</td>" in html and "fitted ```x```" in html.replace("&#96;", "`")
        assert (site / "examples" / nb.name).is_file()  # the notebook itself, linked from its page


def test_missing_notebooks_give_a_warning_naming_the_command(tmp_path, caplog):
    """The hook warns (the strict build then stops) and writes a page saying how to build the notebook."""
    gen = _gen_examples()
    nav = [{"User guide": "index.md"}, {"Examples": [{"Walkthrough": "examples/01_demo_walkthrough.md"}]}]
    with caplog.at_level("WARNING", logger="mkdocs"):
        gen.on_pre_build({"docs_dir": str(tmp_path), "nav": nav})
    assert "examples/build_notebooks.py" in caplog.text and "01_demo_walkthrough.ipynb" in caplog.text
    assert caplog.records[0].name.startswith("mkdocs.")  # counted by --strict
    page = (tmp_path / "examples" / "01_demo_walkthrough.md").read_text(encoding="utf-8")
    assert "has not been executed" in page and "examples/build_notebooks.py" in page


def test_notebook_page_keeps_every_output(tmp_path):
    gen = _gen_examples()
    files = tmp_path / "demo_files"
    files.mkdir()
    (files / "stale.png").write_bytes(b"old")
    text, pngs = gen.notebook_markdown(_executed_notebook("Demo", 3), "demo", files)
    assert [p.name for p in sorted(files.iterdir())] == sorted(p.name for p in pngs) and len(pngs) == 3
    assert text.startswith("# Demo\n") and "demo.ipynb" in text.splitlines()[2]
    assert text.count("](demo_files/") == 3
    assert "````text\nfitted ```x```\n````" in text  # a fence longer than the output's backticks
