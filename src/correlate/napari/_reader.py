"""The napari reader contribution: a correlate scene opened as layers in world nm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

__all__ = ["napari_get_reader", "is_scene"]


def is_scene(path: str | Path) -> bool:
    """True when ``path`` is a folder whose root ``zarr.json`` carries correlate's metadata."""
    root = Path(path) / "zarr.json"
    try:
        if not root.is_file() or root.stat().st_size > 64 << 20:
            return False
        with open(root, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return False
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return isinstance(attrs, dict) and isinstance(attrs.get("correlate"), dict)


def _read(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    from ._layers import layer_data

    paths = [path] if isinstance(path, str) else list(path)
    out = []
    for p in paths:
        out.extend(layer_data(p))
    return out


def napari_get_reader(path: str | list[str]) -> Callable | None:
    """napari's reader hook: a function that reads ``path`` if it is a correlate scene, else None
    (napari then asks other readers)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(is_scene(p) for p in paths):
        return None
    return _read
