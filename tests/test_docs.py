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

    missing = [p for p in pages(cfg["nav"]) if not (DOCS / p).exists()]
    assert not missing, f"pages named in mkdocs.yml but absent from docs/: {missing}"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for p in ("formats-smlm.md", "formats-images.md", "registration.md", "analysis.md", "smlm-processing.md",
              "cli.md", "figures.md"):
        assert f"({p})" in index, f"index.md does not link {p}"


def test_docs_build_without_warnings(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None and importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install mkdocs, the docs extra)")
    # build a copy, so that the hook regenerating cli.md never touches the checkout (no -q: it
    # hides the warnings from --strict)
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "cli" / "index.html").exists()
