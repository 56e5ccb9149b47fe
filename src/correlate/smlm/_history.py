"""Processing provenance: one record per SMLM processing step, kept in the store."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["make_step", "processing_history", "record_step"]


def _jsonable(value: Any) -> Any:
    """Plain JSON types for a parameter value (numpy scalars/arrays, tuples, paths...)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def make_step(
    step: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    source: str | None = None,
    results: Mapping[str, Any] | None = None,
) -> dict:
    """A provenance record for one processing step.

    Parameters
    ----------
    step
        Name of the step (``"drift"``, ``"merge"``, ``"filter"``, ``"colour_alignment"``...).
    parameters
        The parameters the step ran with (JSON-serialisable after conversion).
    source
        Name of the element the step read.
    results
        A few numbers describing the outcome (rows in/out, residual drift in nm...).

    Returns
    -------
    dict
        ``{step, parameters, results, source, version, time}``; ``time`` is UTC ISO 8601.
    """
    from .. import __version__

    rec = {
        "step": str(step),
        "parameters": _jsonable(dict(parameters or {})),
        "results": _jsonable(dict(results or {})),
        "source": source,
        "version": f"correlate {__version__}",
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
    }
    json.dumps(rec)  # fail here, not in the store, if something is not serialisable
    return rec


def record_step(scene, element: str, step: dict, *, inherit_from: str | None = None) -> None:
    """Write ``step`` into the history of ``element`` in ``scene``.

    With ``inherit_from``, the history of that element is copied first, so a derived element
    carries the full chain of steps that produced it (raw import -> drift -> merge -> ...).
    """
    if inherit_from is not None:
        try:
            earlier = scene.history(inherit_from)
        except Exception:  # noqa: BLE001 - an element without history has none to inherit
            earlier = []
        existing = _safe_history(scene, element)
        if not existing:
            for rec in earlier:
                scene.add_history(element, dict(rec))
    scene.add_history(element, step)


def _safe_history(scene, element: str) -> list[dict]:
    try:
        return list(scene.history(element))
    except Exception:  # noqa: BLE001
        return []


def processing_history(scene, element: str) -> list[dict]:
    """The processing steps recorded for ``element``, oldest first (empty list if none)."""
    return _safe_history(scene, element)
