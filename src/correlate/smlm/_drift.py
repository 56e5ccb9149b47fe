"""Drift: estimation from fiducials (or by RCC), applying it, its residual and plot.

The trace type is :class:`~correlate.smlm._drift_trace.Drift`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._drift_trace import Drift
from ._rcc import drift_rcc

__all__ = [
    "apply_drift",
    "correct_drift",
    "drift_from_fiducials",
    "estimate_drift",
    "plot_drift",
    "residual_drift",
]


def _weights(df: pd.DataFrame) -> np.ndarray:
    if "precision" in df.columns:
        p = df["precision"].to_numpy(float)
    elif "precision_x" in df.columns:
        p = np.sqrt(0.5 * (df["precision_x"].to_numpy(float) ** 2 + df["precision_y"].to_numpy(float) ** 2))
    else:
        return np.ones(len(df))
    w = 1.0 / np.where(np.isfinite(p) & (p > 0), p, np.nan) ** 2
    return np.where(np.isfinite(w), w, 0.0)


def _whittaker(y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """Whittaker smoother on a regular grid: argmin_z sum w (y - z)^2 + lam sum (second diff z)^2.

    One banded (pentadiagonal) solve, O(n); grid points with w = 0 are interpolated.
    """
    from scipy.linalg import solveh_banded

    n = len(y)
    # D^T D for the second difference operator, in upper banded form (3 rows: k=2,1,0)
    d0 = np.full(n, 6.0)
    d0[[0, -1]] = 1.0
    if n > 2:
        d0[[1, -2]] = 5.0
    d1 = np.full(n - 1, -4.0)
    if n > 2:
        d1[[0, -1]] = -2.0
    d2 = np.ones(n - 2)
    ab = np.zeros((3, n))
    ab[0, 2:] = lam * d2
    ab[1, 1:] = lam * d1
    ab[2, :] = lam * d0 + w
    return solveh_banded(ab, w * y, lower=False, check_finite=False)


def _smooth_cv(y: np.ndarray, w: np.ndarray, lam: float | None = None):
    """Whittaker-smooth ``y`` (one value per frame, weight 0 where missing).

    With ``lam`` None the smoothing is chosen by two-fold cross-validation (fit on even frames,
    predict odd ones and the reverse) over a log grid. Returns (smoothed, lam, half-fit
    difference) where the difference of the two half-data fits estimates twice the error of the
    full fit.
    """
    n = len(y)
    idx = np.arange(n)
    even = (idx % 2 == 0).astype(float)
    odd = 1.0 - even
    wn = w / max(w[w > 0].mean(), 1e-300)
    if lam is None:
        grid = 10.0 ** np.arange(-1.0, 12.01, 0.25)
        best = (np.inf, grid[0])
        for g in grid:
            ze = _whittaker(y, wn * even, g)
            zo = _whittaker(y, wn * odd, g)
            err = np.sum(wn * odd * (y - ze) ** 2) + np.sum(wn * even * (y - zo) ** 2)
            if err < best[0]:
                best = (err, g)
        lam_half = best[1]
        lam = lam_half / 2.0  # the full data carry twice the weight of each half
    else:
        lam_half = 2.0 * lam
    z = _whittaker(y, wn, lam)
    diff = _whittaker(y, wn * even, lam_half) - _whittaker(y, wn * odd, lam_half)
    return z, float(lam), diff


def drift_from_fiducials(
    df: pd.DataFrame,
    *,
    fiducials=None,
    min_persistence: float | None = None,
    search_radius: float | None = None,
    smoothing: float | str | None = "auto",
    min_fraction: float | None = None,
    outlier_sigma: float = 5.0,
) -> Drift:
    """Drift trace from fiducials (persistent bright emitters).

    Each fiducial's localizations are taken relative to its mean position; the fiducials are
    combined per frame with precision weights (1/precision^2), solving jointly for the fiducial
    means and the per-frame drift (fiducials missing in some frames do not bias it). Outlying
    localizations (> ``outlier_sigma`` robust sigmas off) are dropped. The per-frame estimates are
    smoothed by a weighted Whittaker smoother (a discrete smoothing spline: penalised second
    differences, one banded solve) whose smoothing is chosen by cross-validation.

    Parameters
    ----------
    df
        Localizations (x, y[, z] nm, frame, optionally precision and photons).
    fiducials
        A :class:`~correlate.smlm.Fiducials` from :func:`find_fiducials`; found if None.
    min_persistence, search_radius
        Passed to :func:`find_fiducials` when fiducials are not given (None: estimated);
        ``min_fraction`` is an older name of ``min_persistence``.
    smoothing
        ``"auto"``/None (chosen by two-fold cross-validation, even vs odd frames), a number (the
        Whittaker smoother's lambda: weight of the squared second differences, per-frame
        weights normalised to mean 1), or ``"none"`` (the raw per-frame estimate, linearly
        interpolated over frames without fiducials).

    Returns
    -------
    Drift

    Raises
    ------
    CorrelateError
        No fiducials found, or too few frames with a fiducial.
    """
    from ._fiducials import find_fiducials

    if min_persistence is None:
        min_persistence = min_fraction
    if fiducials is None:
        fiducials = find_fiducials(df, min_fraction=min_persistence, search_radius=search_radius)
    if len(fiducials) == 0:
        est = fiducials.estimated
        raise CorrelateError(
            f"no fiducials found: no persistent emitter among the {fiducials.n_frames} frames "
            f"(needed persistence >= {est.get('min_persistence', float('nan')):.3g} within its span, "
            f">= {est.get('min_frames')} frames on over >= {est.get('min_span_frames')} frames, "
            f"grid {fiducials.search_radius:.3g} nm); use method='rcc' or set min_fraction",
            field="frame",
        )
    cols = ["x", "y"] + (["z"] if "z" in df.columns else [])
    lab = fiducials.labels
    sel = lab >= 0
    p = df[cols].to_numpy(float)[sel]
    k = lab[sel]
    fr = df["frame"].to_numpy(np.int64)[sel]
    w = _weights(df)[sel]
    if not (w > 0).any():
        w = np.ones_like(w)
    f0, f1 = int(df["frame"].min()), int(df["frame"].max())
    nf = f1 - f0 + 1
    fi = fr - f0
    K = len(fiducials)
    d = np.zeros((nf, len(cols)))
    good = w > 0
    for it in range(12):
        ww = np.where(good, w, 0.0)
        wk = np.bincount(k, ww, K)
        m = np.column_stack([np.bincount(k, ww * (p[:, c] - d[fi, c]), K) for c in range(len(cols))]) / np.maximum(wk, 1e-300)[:, None]
        wf = np.bincount(fi, ww, nf)
        d_new = np.column_stack([np.bincount(fi, ww * (p[:, c] - m[k, c]), nf) for c in range(len(cols))])
        has = wf > 0
        d_new[has] /= wf[has, None]
        d_new[~has] = 0.0
        d_new -= (d_new[has] * wf[has, None]).sum(0) / wf[has].sum()
        delta = np.abs(d_new - d).max()
        d = d_new
        if it in (3, 7):  # outlier gate on residuals, with robust sigma per axis
            r = p - m[k] - d[fi]
            sig = 1.4826 * np.median(np.abs(r[good]), axis=0)
            sig = np.maximum(sig, 1e-6)
            good = (w > 0) & np.all(np.abs(r) <= outlier_sigma * sig, axis=1)
        elif delta < 1e-6:
            break
    ww = np.where(good, w, 0.0)
    wf = np.bincount(fi, ww, nf)
    has = wf > 0
    n_frames_with = int(has.sum())
    if n_frames_with < 10:
        raise CorrelateError(f"only {n_frames_with} frames hold a fiducial localization; need >= 10", field="frame")
    frames_all = np.arange(f0, f1 + 1)
    fx = frames_all[has]
    raw = d[has]
    wts = wf[has]
    smooth_vals = np.zeros((nf, len(cols)))
    unc = np.full(nf, np.nan)
    lam_used = None
    if isinstance(smoothing, str) and smoothing.lower() == "none":
        for c in range(len(cols)):
            smooth_vals[:, c] = np.interp(frames_all, fx, raw[:, c])
    else:
        lam = None if smoothing in (None, "auto") else float(smoothing)
        diffs = []
        lams = []
        for c in range(len(cols)):
            z, lam_c, diff = _smooth_cv(d[:, c], wf, lam)
            smooth_vals[:, c] = z
            diffs.append(diff)
            lams.append(lam_c)
        lam_used = float(np.median(lams))
        # two independent half-data fits differ by ~2x the error of the full fit
        unc[:] = float(np.sqrt(np.mean(np.square(diffs)))) / 2.0
    mean = smooth_vals.mean(0)
    smooth_vals -= mean
    raw = raw - mean
    per_frame_noise = np.sqrt(np.mean((raw - smooth_vals[has]) ** 2))
    return Drift(
        frames=frames_all,
        values=smooth_vals,
        uncertainty=unc,
        method="fiducials",
        points_frames=fx,
        points_values=raw,
        points_weights=wts,
        info={
            "n_fiducials": K,
            "fiducial_centers_nm": fiducials.centers.tolist(),
            "n_frames_with_fiducials": n_frames_with,
            "n_fiducial_localizations_used": int(good.sum()),
            "n_fiducial_localizations_rejected": int((~good).sum()),
            "per_frame_noise_nm": float(per_frame_noise),
            "smoothing_lambda": lam_used,
        },
    )


def estimate_drift(df: pd.DataFrame, method: str = "auto", **kwargs) -> Drift:
    """Estimate drift from fiducials or by redundant cross-correlation (RCC).

    Parameters
    ----------
    df
        Localizations (x, y[, z] nm, frame).
    method
        ``"fiducials"``, ``"rcc"``, or ``"auto"``: fiducials when some are found, RCC otherwise.
    **kwargs
        Passed to :func:`drift_from_fiducials` or :func:`drift_rcc` (only the ones each takes).

    Returns
    -------
    Drift
    """
    import inspect

    from ._fiducials import find_fiducials

    if "frame" not in df.columns:
        raise CorrelateError("drift correction needs a 'frame' column", field="frame")
    method = method.lower()
    if method not in ("auto", "fiducials", "rcc"):
        raise CorrelateError(f"unknown drift method {method!r}; expected auto, fiducials or rcc", field="method")

    def pick(fn):
        names = set(inspect.signature(fn).parameters)
        return {k: v for k, v in kwargs.items() if k in names}

    known = set(inspect.signature(drift_from_fiducials).parameters) | set(inspect.signature(drift_rcc).parameters)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise CorrelateError(f"drift estimation takes no option {', '.join(unknown)}", field=unknown[0])
    if method in ("auto", "fiducials"):
        fk = pick(drift_from_fiducials)
        fids = find_fiducials(df, min_fraction=fk.get("min_persistence", fk.get("min_fraction")),
                              search_radius=fk.get("search_radius"))
        if len(fids) or method == "fiducials":
            return drift_from_fiducials(df, fiducials=fids, **pick(drift_from_fiducials))
    return drift_rcc(df, **pick(drift_rcc))


def apply_drift(df: pd.DataFrame, drift: Drift, *, keep_columns: bool = True) -> pd.DataFrame:
    """Subtract the drift at each localization's frame: ``p - drift.at(frame)``.

    Returns a new table (the input is unchanged) with columns ``drift_x, drift_y[, drift_z]``
    holding what was subtracted (nm) unless ``keep_columns`` is False.
    """
    out = df.copy()
    d = drift.at(df["frame"].to_numpy(np.int64))
    for c, a in enumerate("xyz"[: drift.ndim]):
        if a not in out.columns:
            continue
        out[a] = out[a].to_numpy(float) - d[:, c]
        if keep_columns:
            prev = out[f"drift_{a}"].to_numpy(float) if f"drift_{a}" in out.columns else 0.0
            out[f"drift_{a}"] = prev + d[:, c]
    out.attrs = dict(df.attrs)
    notes = list(out.attrs.get("notes", []))
    notes.append(f"drift-corrected ({drift.method})")
    out.attrs["notes"] = notes
    return out


def residual_drift(df_corrected: pd.DataFrame, method: str = "rcc", **kwargs) -> float:
    """RMS (nm, over frames, x and y combined) of the drift re-estimated on corrected data.

    Useful as an independent check with the *other* method (data corrected with fiducials,
    checked by RCC); re-estimating with the same method mostly returns its own smoothing.
    Returns NaN if the re-estimate fails (too sparse...).
    """
    try:
        again = estimate_drift(df_corrected, method=method, **kwargs)
    except CorrelateError:
        return float("nan")
    return float(np.sqrt(np.mean(np.sum(again.values[:, :2] ** 2, axis=1))))


def correct_drift(df: pd.DataFrame, method: str = "auto", **kwargs) -> tuple[pd.DataFrame, Drift]:
    """Estimate drift (:func:`estimate_drift`) and apply it (:func:`apply_drift`).

    Returns
    -------
    (pandas.DataFrame, Drift)
        The corrected table (with ``drift_*`` columns) and the trace; the estimated residual
        drift (nm RMS, the trace's error: split-half for fiducials, least-squares covariance of
        the bins for RCC) is ``drift.summary()["residual_drift_rms_nm"]``.
    """
    drift = estimate_drift(df, method=method, **kwargs)
    return apply_drift(df, drift), drift


def plot_drift(drift: Drift, path=None, *, title: str | None = None, truth: pd.DataFrame | None = None):
    """Plot the drift trace (nm vs frame) per axis; save a PNG at ``path`` if given.

    ``truth`` (columns frame, dx, dy) is drawn dashed, mean-removed, when known (simulations).
    Returns the matplotlib Figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    axes = "xyz"[: drift.ndim]
    fig, ax = plt.subplots(len(axes), 1, figsize=(7, 2.2 * len(axes) + 0.6), sharex=True, squeeze=False)
    for k, a in enumerate(axes):
        axk = ax[k, 0]
        if drift.method == "rcc":
            axk.plot(drift.points_frames, drift.points_values[:, k], "o", ms=4, color="C1", label="time bins")
        else:
            axk.plot(drift.points_frames, drift.points_values[:, k], ".", ms=1.5, alpha=0.35, color="C0",
                     label="per frame")
        axk.plot(drift.frames, drift.values[:, k], "-", color="k", lw=1.2, label=f"drift ({drift.method})")
        if np.all(np.isfinite(drift.uncertainty)):
            axk.fill_between(drift.frames, drift.values[:, k] - drift.uncertainty,
                             drift.values[:, k] + drift.uncertainty, color="k", alpha=0.15, lw=0)
        if truth is not None and f"d{a}" in truth.columns:
            t = truth[f"d{a}"].to_numpy(float)
            axk.plot(truth["frame"], t - t.mean(), "--", color="C3", lw=1, label="truth")
        axk.set_ylabel(f"d{a} (nm)")
        axk.grid(alpha=0.3)
    ax[0, 0].legend(loc="best", fontsize=7)
    ax[-1, 0].set_xlabel("frame")
    s = drift.summary()
    fig.suptitle(title or f"drift ({drift.method}); est. error {s['uncertainty_rms_nm']:.2g} nm RMS", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
