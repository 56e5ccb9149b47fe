"""One figure per registration record: the fiducial residual vectors after the fit (moving
fiducials mapped onto the fixed frame minus where they were found there, drawn scaled, the scale
stated) and the predicted TRE against distance from the fiducials' centroid (nm)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import CorrelateError
from ._records import pick

__all__ = ["plot_registration", "residual_vectors", "tre_profile"]


def _fit_of(record: Mapping[str, Any]):
    em = record.get("error_model")
    if not isinstance(em, Mapping):
        raise CorrelateError(
            f"registration record {record.get('id')!r} carries no error model; re-run `correlate register` "
            "to store one", field="error_model")
    from ..registration import Fit

    return Fit.from_error_model(dict(em))


def residual_vectors(record: Mapping[str, Any], landmarks) -> tuple[np.ndarray, np.ndarray]:
    """(target positions (N, D), residuals (N, D)) in the fixed frame (nm): the record's transform
    applied to the moving fiducials minus the fixed fiducials."""
    fit = _fit_of(record)
    src = np.asarray(landmarks.source, float)[:, : fit.ndim]
    dst = np.asarray(landmarks.target, float)[:, : fit.ndim]
    return dst, fit.transform.apply(src) - dst


def tre_profile(record: Mapping[str, Any], landmarks=None, *, n_directions: int = 24, n_radii: int = 60,
                extent: float = 1.5) -> dict[str, np.ndarray]:
    """Predicted RMS TRE (nm) along rays from the centroid of the used moving fiducials.

    Rays in ``n_directions`` directions reach ``extent`` times the farthest fiducial. Returns
    ``distance`` (nm), ``median``, ``min``, ``max`` over directions (nm), ``fiducial_distance``
    (nm, each used fiducial) and ``centroid`` (moving frame, nm).
    """
    fit = _fit_of(record)
    if landmarks is not None:
        used = np.asarray(landmarks.used, bool)
        src = np.asarray(landmarks.source, float)[used, : fit.ndim]
    else:
        src = np.asarray(fit.source, float)
    if not len(src):
        raise CorrelateError(f"registration record {record.get('id')!r} stores no fiducial positions (no landmark "
                             "pairs in the store, none in its error model): pass its landmarks", field="landmarks")
    c = src.mean(axis=0)
    r_fid = np.hypot(src[:, 0] - c[0], src[:, 1] - c[1])
    r = np.linspace(0.0, extent * max(float(r_fid.max()), 1.0), n_radii)
    ang = np.linspace(0.0, 2 * np.pi, n_directions, endpoint=False)
    R, A = np.meshgrid(r, ang)  # (directions, radii)
    pts = np.column_stack([c[0] + (R * np.cos(A)).ravel(), c[1] + (R * np.sin(A)).ravel()])
    if fit.ndim == 3:
        pts = np.column_stack([pts, np.full(len(pts), c[2])])
    tre = np.asarray(fit.tre_rms(pts), float).reshape(R.shape)
    return {"distance": r, "median": np.median(tre, axis=0), "min": tre.min(axis=0), "max": tre.max(axis=0),
            "fiducial_distance": r_fid, "centroid": c}


def _residual_scale(pos: np.ndarray, res: np.ndarray) -> float:
    """A round factor making the median residual about 8 % of the fiducials' spread."""
    from ._scalebar import nice_length_nm

    d = np.hypot(res[:, 0], res[:, 1])
    d = d[np.isfinite(d) & (d > 0)]
    span = float(np.ptp(pos[:, 0]) + np.ptp(pos[:, 1])) / 2 if len(pos) > 1 else 1.0
    if not d.size or span <= 0:
        return 1.0
    k = 0.08 * span / float(np.median(d))
    return float(nice_length_nm(k, 1.0)) if k >= 1 else k


def plot_registration(record: Mapping[str, Any], landmarks=None, *, residual_scale: float | None = None,
                      figsize: tuple[float, float] = (10.0, 4.2), dpi: int = 100):
    """Residual vectors and predicted TRE of one registration record.

    Parameters
    ----------
    record
        A registration record (``scene.registrations()``), with its ``error_model``.
    landmarks
        Its fiducial pairs (``scene.get_landmarks(moving, fixed)``; source in the moving frame,
        target in the fixed frame, nm). Without them the residual panel says so.
    residual_scale
        Factor the residual vectors are drawn longer by (default: a round number making the
        median residual ~8 % of the fiducials' spread); stated in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        With ``correlate_residuals`` ((N, D) nm or None), ``correlate_residual_scale`` and
        ``correlate_tre_profile`` (:func:`tre_profile`).
    """
    from ._figure import new_figure

    src = pick(record, "moving", "source") or "?"
    dst = pick(record, "fixed", "target") or "?"
    name = f"{src} → {dst}" + (f" (record {record['id']})" if record.get("id") else "")
    fig = new_figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax_r, ax_t = fig.subplots(1, 2)
    fig.suptitle(f"{name}: model {pick(record, 'model') or '?'}", fontsize=11)
    fig.correlate_residuals, fig.correlate_residual_scale = None, None
    if landmarks is not None and len(landmarks):
        pos, res = residual_vectors(record, landmarks)
        scale = float(residual_scale) if residual_scale is not None else _residual_scale(pos, res)
        _draw_residuals(ax_r, pos, res, np.asarray(landmarks.used, bool), scale, dst)
        fig.correlate_residuals, fig.correlate_residual_scale = res, scale
    else:
        ax_r.text(0.5, 0.5, "no fiducial pairs stored for this registration", ha="center", va="center",
                  transform=ax_r.transAxes)
        ax_r.set_axis_off()
    prof = tre_profile(record, landmarks)
    _draw_profile(ax_t, prof, record)
    fig.correlate_tre_profile = prof
    return fig


def _draw_residuals(ax, pos, res, used, scale: float, fixed: str) -> None:
    from ._scalebar import nice_length_nm

    d = np.hypot(res[:, 0], res[:, 1])
    first = None
    for sel, col, lab in ((used, "C0", "used"), (~used, "red", "outliers")):
        if not sel.any():
            continue
        ax.scatter(pos[sel, 0], pos[sel, 1], s=18, c=col, label=f"fiducials ({lab}, {int(sel.sum())})", zorder=3)
        q = ax.quiver(pos[sel, 0], pos[sel, 1], res[sel, 0] * scale, res[sel, 1] * scale, angles="xy",
                      scale_units="xy", scale=1.0, color=col, width=0.005, zorder=4)
        first = first or q
    fin = d[np.isfinite(d) & (d > 0)]
    if first is not None and fin.size:
        key = nice_length_nm(float(np.median(fin)), 1.0)
        ax.quiverkey(first, 0.82, 0.04, key * scale, f"{key:g} nm residual", labelpos="N", coordinates="axes",
                     fontproperties={"size": 8})
    ax.set_aspect("equal", adjustable="datalim")
    ax.invert_yaxis()
    ax.set_xlabel(f"x in {fixed} (nm)")
    ax.set_ylabel(f"y in {fixed} (nm)")
    fre = float(np.sqrt(np.mean(d[used] ** 2))) if used.any() else float("nan")
    ax.set_title(f"residuals after the fit, drawn × {scale:g} (RMS {fre:.3g} nm, max {np.nanmax(d):.3g} nm)",
                 fontsize=9)
    ax.legend(fontsize=8, loc="best")


def _draw_profile(ax, prof: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> None:
    r = prof["distance"]
    ax.fill_between(r, prof["min"], prof["max"], color="C1", alpha=0.25, label="range over directions")
    ax.plot(r, prof["median"], color="C1", label="predicted RMS TRE (median over directions)")
    ymax = float(np.nanmax(prof["max"])) if np.isfinite(prof["max"]).any() else 1.0
    ax.plot(prof["fiducial_distance"], np.zeros_like(prof["fiducial_distance"]), "|", color="k", ms=12,
            label="fiducials")
    loo = pick(record, "loo_rms_nm")
    if loo is not None and np.isfinite(float(loo)):
        ax.axhline(float(loo), color="C2", ls="--", lw=1, label=f"leave-one-out RMS {float(loo):.3g} nm")
        ymax = max(ymax, float(loo))
    ax.set_ylim(0, 1.1 * ymax if ymax > 0 else 1.0)
    ax.set_xlim(0, float(r[-1]) if r[-1] > 0 else 1.0)
    ax.set_xlabel("distance from the fiducials' centroid (nm, moving frame)")
    ax.set_ylabel("predicted TRE (nm)")
    ax.set_title("predicted TRE against distance", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
