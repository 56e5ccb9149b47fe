"""Shared test fixtures: the real sample files in ../shared/data/formats and their manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

FORMATS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "formats"


@pytest.fixture(scope="session")
def formats_dir() -> Path:
    """The folder of real sample files; skips the test (saying why) where it is absent."""
    if not (FORMATS_DIR / "MANIFEST.tsv").exists():
        pytest.skip(f"real sample files not present at {FORMATS_DIR} (CI has ../shared beside the checkout)")
    return FORMATS_DIR


@pytest.fixture(scope="session")
def manifest(formats_dir: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows keyed by ``rel_path`` (e.g. ``"em/HAADFscan.mrc"``)."""
    with open(formats_dir / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {r["rel_path"]: r for r in rows}
