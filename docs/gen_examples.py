"""Turn the executed example notebooks into pages of the docs, figures kept as image files.

``examples/build_notebooks.py`` executes every ``examples/NN_*.py`` and writes
``docs/examples/NN_*.ipynb`` with its outputs. This MkDocs hook (see mkdocs.yml) converts each
notebook that the nav lists as ``examples/NN_*.md`` into that page before every build: Markdown
cells as they are, code cells as Python blocks, printed text as text blocks, figures (PNG, JPEG or
SVG outputs) as files under ``docs/examples/NN_*_files/`` shown as Markdown images (so MkDocs
checks and rewrites their links), and HTML outputs (the scene's summary) as HTML. Reading the
notebooks needs only the standard library (they are JSON).

A notebook that has not been built gives a page saying so and a warning, which the strict build
(mkdocs.yml) turns into an error naming the command that builds it.

    python docs/gen_examples.py        # convert without building the site
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_COMMAND = ".venv/bin/python examples/build_notebooks.py"
log = logging.getLogger("mkdocs.hooks.gen_examples")
#: Image outputs kept as files, in order of preference.
_IMAGES = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg"}


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else str(v or "")


def _fence(text: str, lang: str) -> list[str]:
    """A fenced block longer than any backtick run inside ``text``."""
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return [f"{ticks}{lang}", text.rstrip("\n"), ticks, ""]


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write only new content (``mkdocs serve`` rebuilds on every change it sees)."""
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def _output(out: dict, stem: str, files: Path, index: str) -> tuple[list[str], Path | None]:
    """Markdown lines of one output and the image file it wrote, if any."""
    kind = out.get("output_type")
    if kind == "stream":
        return _fence(_text(out.get("text")), "text"), None
    if kind == "error":
        return _fence(f"{out.get('ename')}: {out.get('evalue')}", "text"), None
    data = out.get("data", {})
    for mime, suffix in _IMAGES.items():
        if mime in data:
            raw = _text(data[mime])
            img = files / f"{index}{suffix}"
            _write_if_changed(img, raw.encode() if suffix == ".svg" else base64.b64decode(raw))
            return [f"![output {index} of {stem}]({stem}_files/{img.name})", ""], img
    if "text/html" in data:
        return ['<div class="notebook-html">', _text(data["text/html"]).strip(), "</div>", ""], None
    if "text/markdown" in data:
        return [_text(data["text/markdown"]), ""], None
    if "text/plain" in data:
        return _fence(_text(data["text/plain"]), "text"), None
    return [], None


def notebook_markdown(nb: dict, stem: str, files: Path) -> tuple[str, list[Path]]:
    """The Markdown page of an executed notebook; its PNG outputs are written under ``files``.

    Parameters
    ----------
    nb
        The notebook (nbformat 4 JSON).
    stem
        Name of the page without suffix; images are linked as ``{stem}_files/N.png``.
    files
        Folder for the images (PNG, JPEG, SVG outputs); any other file in it (a figure of an older run) is removed.

    Returns
    -------
    (page text, image files written)
    """
    files.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    pngs: list[Path] = []
    for i, cell in enumerate(nb.get("cells", [])):
        src = _text(cell.get("source")).strip("\n")
        if cell.get("cell_type") == "markdown":
            lines += [src, ""]
            continue
        if cell.get("cell_type") != "code":
            continue
        if src.strip():
            lines += _fence(src, "python")
        for j, out in enumerate(cell.get("outputs", [])):
            md, png = _output(out, stem, files, f"{i:03d}_{j}")
            lines += md
            if png is not None:
                pngs.append(png)
    for stale in set(files.iterdir()) - set(pngs):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    note = (f"*This page is the executed notebook [`{stem}.ipynb`]({stem}.ipynb), built from "
            f"`examples/{stem}.py` by `{BUILD_COMMAND}`.*")
    head = next((k for k, block in enumerate(lines) if block.startswith("# ")), None)
    if head is None:
        lines[:0] = [note, ""]
    else:  # right under the title
        title, _, rest = lines[head].partition("\n")
        lines[head:head + 1] = [title, "", note, "", rest.lstrip("\n")]
    return "\n".join(lines).rstrip("\n") + "\n", pngs


def example_pages(nav) -> list[str]:
    """Pages of the nav under ``examples/`` (``examples/NN_name.md``)."""
    out: list[str] = []
    for item in nav or []:
        values = item.values() if isinstance(item, dict) else [item]
        for v in values:
            if isinstance(v, list):
                out += example_pages(v)
            elif isinstance(v, str) and v.startswith("examples/") and v.endswith(".md"):
                out.append(v)
    return out


def write_pages(docs_dir: Path, pages: list[str]) -> list[str]:
    """Write every example page from its notebook; the notebooks that are missing."""
    missing = []
    for page in pages:
        md = docs_dir / page
        nb_path = md.with_suffix(".ipynb")
        md.parent.mkdir(parents=True, exist_ok=True)
        if not nb_path.exists():
            missing.append(str(nb_path))
            _write_if_changed(md, (f"# {md.stem}\n\nThis example has not been executed for this build: run "
                                   f"`{BUILD_COMMAND}` (add `--small` for the small sizes), then build the docs "
                                   "again.\n").encode())
            continue
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        text, _ = notebook_markdown(nb, md.stem, md.parent / f"{md.stem}_files")
        _write_if_changed(md, text.encode())
    return missing


# MkDocs hook: convert before every build, so the pages always show the last executed notebooks.
def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001 - MkDocs hook signature
    missing = write_pages(Path(config["docs_dir"]), example_pages(config["nav"]))
    if missing:
        log.warning("the example notebook(s) %s have not been built: run `%s` (or with --small) before "
                    "`mkdocs build`", ", ".join(missing), BUILD_COMMAND)


if __name__ == "__main__":
    import yaml

    cfg = yaml.safe_load((HERE.parent / "mkdocs.yml").read_text(encoding="utf-8"))
    lost = write_pages(HERE, example_pages(cfg["nav"]))
    print(f"converted the example notebooks in {HERE / 'examples'}; missing: {lost or 'none'}", file=sys.stderr)
