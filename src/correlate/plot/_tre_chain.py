"""The registrations that place an overlay's localizations on its base image, and the
predicted-TRE map of the one that contributes the largest error (nm, base image's space).

A label reaches the base through the chain of records :meth:`Scene.placement` follows (a colour
alignment onto the reference colour, then that colour's registration onto the EM, ...). Every
registration record on the label's chain that is not also on the base's chain contributes to the
error of the shown positions; the base's own registrations contribute when the label does not
share them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import CorrelateError
from ._records import pick

__all__ = ["placing_records", "record_tre_on_points", "tre_on_grid"]


def _is_registration(link: Mapping[str, Any]) -> bool:
    return bool(link.get("moving")) and bool(link.get("fixed")) and link.get("kind") != "derived"


def _key(rec: Mapping[str, Any]) -> Any:
    return rec.get("id") or (rec.get("moving"), rec.get("fixed"), rec.get("created"))


def placing_records(scene, labels: Sequence[str], base: str) -> list[dict]:
    """Registration records between ``labels`` and ``base`` along the placement chains
    (:meth:`~correlate.scene.Scene.placement`), each once, nearest to a label first."""
    base_links = [dict(r) for r in scene.placement(base).links if _is_registration(r)]
    base_keys = {_key(r) for r in base_links}
    out: dict[Any, dict] = {}
    shared: set = set()
    for n in labels:
        links = [dict(r) for r in scene.placement(n).links if _is_registration(r)]
        for r in links:
            if _key(r) in base_keys:
                shared.add(_key(r))
            else:
                out.setdefault(_key(r), r)
    for r in base_links:
        if _key(r) not in shared and labels:
            out.setdefault(_key(r), r)
    return list(out.values())


def record_tre_on_points(scene, rec: Mapping[str, Any], pts: np.ndarray, base: str) -> np.ndarray | None:
    """Predicted RMS TRE (nm) of record ``rec`` at (M, 2) points of the base's space; None when
    the record carries no error model."""
    em = rec.get("error_model")
    if not isinstance(em, Mapping):
        return None
    from ..registration import Fit

    fit = Fit.from_error_model(dict(em))
    fixed = str(pick(rec, "fixed", "target", "target_system") or base)
    if fixed != base:
        pts = scene.transform(base, fixed).apply(pts)
    if fit.ndim == 3:
        pts = np.column_stack([pts, np.full(len(pts), fit.center[2])])
    moving_pts = fit.transform.inverse().apply(pts)
    return np.asarray(fit.tre_rms(moving_pts), dtype=float)


def _rec_name(rec: Mapping[str, Any]) -> str:
    src = pick(rec, "moving", "source") or "?"
    dst = pick(rec, "fixed", "target") or "?"
    rid = rec.get("id")
    return f"{src}→{dst}" + (f" (record {rid})" if rid else "")


def tre_on_grid(scene, base: str, grid, records, labels=(), n: int = 64) -> dict | None:
    """Predicted RMS TRE map (nm) over the view from the registration that places ``labels`` on
    ``base`` with the largest median error over the view.

    Returns a dict ``x``, ``y`` (1-D grid, nm), ``tre`` (n x n, nm), ``name`` and ``legend`` (which registration), ``record`` (the
    record used), ``candidates`` (``[(name, median TRE nm)]`` of every contributing record with an
    error model) and ``missing`` (contributing records without a usable one, with why); only
    ``record`` (None) and ``missing`` when none has one; None when no registration contributes. ``records`` is used only for scenes without
    placement (the latest record of one of the labels).
    """
    if hasattr(scene, "placement"):
        chain = placing_records(scene, list(labels), base)
    else:
        mine = [r for r in records if pick(r, "moving", "source") in set(labels)]
        chain = (mine or list(records))[-1:]
    xs = np.linspace(grid.centers("x")[0], grid.centers("x")[-1], n)
    ys = np.linspace(grid.centers("y")[0], grid.centers("y")[-1], n)
    X, Y = np.meshgrid(xs, ys)
    pts = np.column_stack([X.ravel(), Y.ravel()])
    best, cands, missing = None, [], []
    for rec in chain:
        try:
            tre = record_tre_on_points(scene, rec, pts, base)
        except (CorrelateError, np.linalg.LinAlgError, ValueError, KeyError) as exc:
            missing.append(f"{_rec_name(rec)}: {exc}")
            continue
        if tre is None or tre.size != X.size or not np.isfinite(tre).any():
            missing.append(f"{_rec_name(rec)}: no error model")
            continue
        med = float(np.nanmedian(tre))
        cands.append((_rec_name(rec), med))
        if best is None or med > best[0]:
            best = (med, rec, tre)
    if best is None:
        return {"record": None, "missing": missing} if missing else None
    _, rec, tre = best
    return {"x": xs, "y": ys, "tre": tre.reshape(X.shape), "name": _rec_name(rec),
            "legend": f"predicted TRE {_rec_name(rec)} (nm)",
            "record": rec, "candidates": cands, "missing": missing}
