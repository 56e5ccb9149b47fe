"""What a registration saw: a JSON of every stage's diagnostics and a figure of both elements'
detections with the matches of the (best) pose hypothesis, written whether or not it succeeded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ._json import jsonable

__all__ = ["detection_summary", "write_diagnostics"]


def detection_summary(fiducials: pd.DataFrame | None) -> dict[str, Any]:
    """``{"n", "estimated", "source"}`` of a fiducial table (its detector's attrs)."""
    if fiducials is None:
        return {}
    return {
        "n": int(len(fiducials)),
        "estimated": dict(fiducials.attrs.get("estimated") or {}),
        "source": dict(fiducials.attrs.get("source") or {}),
    }


def _matrix(hyp: Mapping[str, Any]) -> np.ndarray | None:
    for key in ("matrix", "transform_matrix", "affine"):
        m = hyp.get(key)
        if m is None:
            continue
        try:
            a = np.asarray(m, float)
        except (TypeError, ValueError):
            continue
        if a.shape in ((2, 3), (3, 3)):
            return a
    return None


def _pairs(hyp: Mapping[str, Any]) -> np.ndarray:
    for key in ("pairs", "matches", "inlier_pairs"):
        p = hyp.get(key)
        if p is None:
            continue
        try:
            a = np.asarray(p, int)
        except (TypeError, ValueError):
            continue
        if a.ndim == 2 and a.shape[1] == 2:
            return a
    return np.zeros((0, 2), int)


def _best_hypothesis(diag: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("best_hypothesis", "best_pose", "hypothesis", "best"):
        h = diag.get(key)
        if isinstance(h, Mapping):
            return h
    return {}


def _candidates(diag: Mapping[str, Any]) -> pd.DataFrame | None:
    for key in ("best_candidates", "candidates"):
        c = diag.get(key)
        if isinstance(c, list) and c and isinstance(c[0], Mapping):
            df = pd.DataFrame(c)
            if {"x", "y"} <= set(df.columns):
                return df
    return None


def _background(ax, element, max_px: int = 512) -> None:
    from ..elements import element_kind

    if element is None:
        return
    try:
        if element_kind(element) == "image":
            img = element
            for d in [d for d in img.dims if d not in ("y", "x")]:
                img = img.isel({d: 0})
            sy, sx = max(1, img.sizes["y"] // max_px), max(1, img.sizes["x"] // max_px)
            img = img[::sy, ::sx]
            a = np.asarray(img.values, float)
            xs, ys = img.coords["x"].values, img.coords["y"].values
            lo, hi = np.nanpercentile(a, [1, 99.5])
            ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, origin="upper",
                      extent=(xs[0], xs[-1], ys[-1], ys[0]), interpolation="nearest")
        else:
            xy = element[["x", "y"]].to_numpy(float)
            if len(xy):
                h, ex, ey = np.histogram2d(xy[:, 0], xy[:, 1], bins=256)
                ax.imshow(np.log1p(h.T), cmap="magma", origin="lower", extent=(ex[0], ex[-1], ey[0], ey[-1]))
                ax.invert_yaxis()
    except Exception:  # noqa: BLE001 - the detections are drawn without a background
        return


def _figure(path: Path, *, names: tuple[str, str], elements, fiducials, hyp, cand, reg) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, role, name in zip(axes, ("moving", "fixed"), names):
        _background(ax, elements.get(role))
        f = fiducials.get(role)
        if f is not None and len(f):
            ax.scatter(f["x"], f["y"], s=40, facecolors="none", edgecolors="cyan", label=f"detected ({len(f)})")
        c = cand.get(role)
        if c is not None:
            ax.scatter(c["x"], c["y"], s=25, marker="x", color="orange", label=f"best candidates ({len(c)})")
        ax.set_title(f"{role}: {name}")
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
        ax.set_aspect("equal")
    ax = axes[1]
    fm, ff = fiducials.get("moving"), fiducials.get("fixed")
    if reg is not None:
        lm = reg.landmarks
        mapped = reg.transform.apply(lm.source)
        used = np.asarray(lm.used, bool)
        ax.scatter(mapped[:, 0], mapped[:, 1], s=12, color="magenta", label=f"moving mapped ({len(lm)} pairs)")
        for p, q, u in zip(mapped, lm.target, used):
            ax.plot([p[0], q[0]], [p[1], q[1]], color="lime" if u else "red", lw=1)
    elif fm is not None and len(fm) and _matrix(hyp) is not None:
        m = _matrix(hyp)
        xy = fm[["x", "y"]].to_numpy(float)
        mapped = xy @ m[:2, :2].T + m[:2, 2]
        ax.scatter(mapped[:, 0], mapped[:, 1], s=12, color="magenta", label="moving under the best hypothesis")
        pairs = _pairs(hyp)
        if ff is not None and len(pairs):
            ok = (pairs[:, 0] < len(mapped)) & (pairs[:, 1] < len(ff))
            t = ff[["x", "y"]].to_numpy(float)
            for i, j in pairs[ok]:
                ax.plot([mapped[i, 0], t[j, 0]], [mapped[i, 1], t[j, 1]], color="lime", lw=1)
    for a in axes:
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_diagnostics(
    out_dir: str | os.PathLike,
    *,
    moving: str,
    fixed: str,
    fiducials: Mapping[str, pd.DataFrame | None],
    elements: Mapping[str, Any] | None = None,
    error: Exception | None = None,
    registration=None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``<moving>__<fixed>_diagnostics.json`` and ``..._diagnostics.png`` into ``out_dir``.

    The JSON holds the status, the error (message, stage, hint, diagnostics) when it failed,
    each side's detection summary (count, estimated parameters and their source) and the
    registration record when it succeeded. The figure shows both elements with their
    detections (and a failed detector's best candidates), and in the fixed frame the moving
    fiducials under the fitted transform (or the best pose hypothesis) with the matches.

    Returns
    -------
    dict
        ``{"json": path, "figure": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{moving}__{fixed}_diagnostics"
    diag = dict(getattr(error, "diagnostics", None) or {})
    doc: dict[str, Any] = {
        "moving": moving,
        "fixed": fixed,
        "status": "failed" if error is not None else "ok",
        "detection": {role: detection_summary(f) for role, f in fiducials.items()},
    }
    if error is not None:
        doc["error"] = {"message": str(error), "type": type(error).__name__, "stage": getattr(error, "stage", None),
                        "hint": getattr(error, "hint", None), "diagnostics": diag}
    if record is not None:
        doc["record"] = dict(record)
    jpath = out / f"{stem}.json"
    jpath.write_text(json.dumps(jsonable(doc), indent=2, default=str), encoding="utf-8")
    role = diag.get("role")
    cand = {role: _candidates(diag)} if role in ("moving", "fixed") else {}
    fpath = _figure(out / f"{stem}.png", names=(moving, fixed), elements=dict(elements or {}),
                    fiducials=dict(fiducials), hyp=_best_hypothesis(diag), cand=cand, reg=registration)
    return {"json": jpath, "figure": fpath}
