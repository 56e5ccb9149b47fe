"""The reader plug-ins installed (``correlate.readers`` entry points), remembered across processes.

Scanning the entry points reads the metadata of every installed distribution (0.2-0.3 s with a
few hundred, more than parsing a mid-sized file). The result is kept in
``$XDG_CACHE_HOME/correlate/reader_plugins.json`` (default ``~/.cache``) keyed by the
modification times of the ``sys.path`` folders holding distributions, which change whenever a
distribution is installed or removed; the scan runs again then, or when ``CORRELATE_NO_CACHE=1`` is set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["plugin_entry_points"]

GROUP = "correlate.readers"


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "correlate" / "reader_plugins.json"


def _key() -> list:
    key: list = [sys.version, sys.prefix]
    for entry in sys.path:
        folder = entry or "."
        try:
            st = os.stat(folder)
            holds = any(n.endswith((".dist-info", ".egg-info")) for n in os.listdir(folder))
        except OSError:
            continue
        if holds:  # only folders with distributions carry entry points
            key.append([os.path.abspath(folder), st.st_mtime_ns])
    return key


def _scan() -> list[tuple[str, str]]:
    from importlib import metadata

    return [(ep.name, ep.value) for ep in metadata.entry_points(group=GROUP)]


def _entry_points_replaced() -> bool:
    # someone (a test, a plug-in manager) put their own entry_points in place: ask it, not the cache
    md = sys.modules.get("importlib.metadata")
    return md is not None and getattr(md.entry_points, "__module__", "importlib.metadata") != "importlib.metadata"


def plugin_entry_points() -> list[tuple[str, str]]:
    """``(name, "module:attr")`` of every ``correlate.readers`` entry point installed."""
    if os.environ.get("CORRELATE_NO_CACHE") == "1" or _entry_points_replaced():
        return _scan()
    path, key = _cache_file(), _key()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return [tuple(e) for e in cached["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache yet, or an unreadable one: scan
    eps = _scan()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "entry_points": eps}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the scan next time
    return eps


def load(value: str):
    """The object an entry point ``"module:attr.sub"`` names."""
    import importlib

    module, _, attr = value.partition(":")
    obj = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj
