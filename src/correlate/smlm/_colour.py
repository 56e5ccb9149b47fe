"""Colour (channel) alignment: map one SMLM colour onto another from beads seen in both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError, RegistrationError

__all__ = ["ColourAlignment", "align_colours", "bead_positions", "fit_colour_alignment", "pair_beads"]


@dataclass
class ColourAlignment:
    """A fitted map from the moving colour's coordinates to the reference colour's (nm).

    Attributes
    ----------
    transform
        :class:`correlate.transforms.Transform` moving -> reference.
    model
        ``"translation"``, ``"affine"`` or ``"tps"``.
    moving_beads, reference_beads
        (K, 2) paired bead positions (nm).
    residuals
        (K,) distance (nm) after mapping, per bead pair.
    loo_error_nm
        Leave-one-out RMS error (nm): each bead predicted by a fit without it.
    info
        Fitter used, models compared, pairing details.
    """

    transform: Any
    model: str
    moving_beads: np.ndarray
    reference_beads: np.ndarray
    residuals: np.ndarray
    loo_error_nm: float
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "model": self.model,
            "n_beads": len(self.residuals),
            "fre_rms_nm": float(np.sqrt(np.mean(self.residuals**2))),
            "loo_rms_nm": float(self.loo_error_nm),
        } | {k: v for k, v in self.info.items() if np.ndim(v) == 0}


def bead_positions(df: pd.DataFrame, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Bead (fiducial) centres in one colour and their variance of the mean.

    Returns
    -------
    (centers (K, 2) nm, variance (K,) nm^2 per axis)
    """
    from ._fiducials import find_fiducials

    fids = find_fiducials(df, **kwargs)
    if len(fids) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    lab = fids.labels
    m = lab >= 0
    xy = df[["x", "y"]].to_numpy(float)[m]
    k = lab[m]
    cnt = np.bincount(k, minlength=len(fids)).astype(float)
    c = np.column_stack([np.bincount(k, xy[:, i], len(fids)) / cnt for i in range(2)])
    r2 = ((xy - c[k]) ** 2).sum(1) / 2.0  # per-axis squared deviation
    var = np.bincount(k, r2, len(fids)) / cnt
    return c, var / cnt


def pair_beads(moving: np.ndarray, reference: np.ndarray, *, coarse_gate: float = 1000.0, gate: float = 100.0):
    """Pair beads of two colours: nearest neighbours, median offset, then mutual nearest within ``gate``.

    Returns
    -------
    (index into moving, index into reference) arrays of equal length.
    """
    from scipy.spatial import cKDTree

    if len(moving) == 0 or len(reference) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    tree = cKDTree(reference)
    d, j = tree.query(moving, k=1, distance_upper_bound=coarse_gate)
    ok = np.isfinite(d)
    if not ok.any():
        return np.zeros(0, int), np.zeros(0, int)
    off = np.median(reference[j[ok]] - moving[ok], axis=0)
    shifted = moving + off
    d, j = tree.query(shifted, k=1, distance_upper_bound=gate)
    back = cKDTree(shifted)
    ok = np.isfinite(d)
    i = np.flatnonzero(ok)
    j = j[ok]
    _, i_back = back.query(reference[j], k=1)
    mutual = i_back == i
    return i[mutual], j[mutual]


def _weighted_affine(src: np.ndarray, dst: np.ndarray, w: np.ndarray):
    from ..transforms import Affine

    a = np.hstack([src, np.ones((len(src), 1))])
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(a * sw, dst * sw, rcond=None)
    return Affine(np.vstack([coef.T, [0, 0, 1]]))


def _fit(model: str, src, dst, w, smoothing=None):
    from ..transforms import ThinPlateSpline, Translation

    if model == "translation":
        return Translation(np.average(dst - src, axis=0, weights=w))
    if model == "affine":
        return _weighted_affine(src, dst, w)
    if model == "tps":
        return ThinPlateSpline.fit(src, dst, smoothing=smoothing or 0.0, weights=w / w.mean())
    raise CorrelateError(f"unknown colour alignment model {model!r}", field="model")


def _loo(model: str, src, dst, w, smoothing=None) -> float:
    err = []
    n = len(src)
    for k in range(n):  # K beads (tens), not localizations
        m = np.arange(n) != k
        t = _fit(model, src[m], dst[m], w[m], smoothing)
        err.append(np.linalg.norm(t.apply(src[k:k + 1])[0] - dst[k]))
    return float(np.sqrt(np.mean(np.square(err))))


def fit_colour_alignment(
    moving: np.ndarray,
    reference: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    model: str = "auto",
) -> ColourAlignment:
    """Fit the map moving -> reference from paired bead positions.

    ``model="auto"`` compares translation, affine and (with >= 10 beads) a smoothing thin-plate
    spline by leave-one-out error and keeps the simplest within 10 % of the best. The TPS
    smoothing is chosen by leave-one-out over a small grid. When helper registration code
    (:mod:`correlate.registration`) provides a fitter, it is not required: this is a small
    self-contained weighted least-squares fit over the bead pairs.

    Parameters
    ----------
    moving, reference
        (K, 2) paired bead positions, nm.
    variance
        (K,) positional variance (nm^2) of each pair (moving + reference); weights are 1/variance.
    model
        ``"auto"``, ``"translation"``, ``"affine"`` or ``"tps"``.
    """
    src = np.asarray(moving, float)
    dst = np.asarray(reference, float)
    k = len(src)
    need = {"translation": 1, "affine": 3, "tps": 4, "auto": 1}
    if model not in need:
        raise CorrelateError(f"unknown colour alignment model {model!r}; expected auto, translation, affine or tps", field="model")
    if k < need[model]:
        raise RegistrationError(f"{model} colour alignment needs >= {need[model]} bead pairs, found {k}", field="beads")
    if variance is None or not np.all(np.isfinite(variance)) or np.any(np.asarray(variance) <= 0):
        w = np.ones(k)
    else:
        v = np.asarray(variance, float)
        w = 1.0 / np.maximum(v, np.median(v) * 0.1)
    candidates: list[tuple[str, float | None]] = []
    if model == "auto":
        candidates.append(("translation", None))
        if k >= 4:
            candidates.append(("affine", None))
        if k >= 10:
            candidates.append(("tps", None))
    else:
        candidates.append((model, None))
    scores: dict[str, float] = {}
    smooth_for: dict[str, float | None] = {}
    for name, _ in candidates:
        if name == "tps":
            best = (np.inf, 0.0)
            for lam in (0.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7):
                if k < 5:
                    break
                e = _loo("tps", src, dst, w, lam)
                if e < best[0]:
                    best = (e, lam)
            if k < 5:
                best = (np.nan, 0.0)
            scores[name], smooth_for[name] = best
        else:
            scores[name] = _loo(name, src, dst, w) if k > need[name] + 1 else float("nan")
            smooth_for[name] = None
    finite = {n: s for n, s in scores.items() if np.isfinite(s)}
    if model == "auto":
        if finite:
            best_score = min(finite.values())
            chosen = next(n for n, _ in candidates if n in finite and finite[n] <= 1.1 * best_score + 0.05)
        else:
            chosen = candidates[-1][0]
    else:
        chosen = model
    t = _fit(chosen, src, dst, w, smooth_for.get(chosen))
    res = np.linalg.norm(t.apply(src) - dst, axis=1)
    return ColourAlignment(
        transform=t,
        model=chosen,
        moving_beads=src,
        reference_beads=dst,
        residuals=res,
        loo_error_nm=float(scores.get(chosen, np.nan)),
        info={"fitter": "correlate.smlm (weighted least squares / transforms.ThinPlateSpline)",
              "loo_by_model": {n: float(s) for n, s in scores.items()},
              "tps_smoothing": smooth_for.get("tps")},
    )


def align_colours(
    moving: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    model: str = "auto",
    min_fraction: float = 0.5,
    search_radius: float = 150.0,
    gate: float = 100.0,
    fitter: str = "auto",
) -> tuple[pd.DataFrame, ColourAlignment]:
    """Map the ``moving`` colour's localizations onto the ``reference`` colour's coordinates.

    Beads are found in both colours (persistent emitters, as for drift correction; correct drift
    first), paired, and a map is fitted (:func:`fit_colour_alignment`); it is applied to every
    localization of ``moving``. Two-colour colocalization is then free of the chromatic offset.

    ``fitter="registration"`` uses :mod:`correlate.registration` (SMLM fiducial detection with
    covariances, automatic pairing, weighted model fit with chi-square model choice incl.
    smoothing TPS); ``"builtin"`` the small fitter here (:func:`fit_colour_alignment`);
    ``"auto"`` the registration package when it imports, else the builtin one.

    Returns
    -------
    (pandas.DataFrame, ColourAlignment)
        The aligned copy of ``moving`` (columns ``x_raw, y_raw`` keep the input coordinates) and
        the fit.

    Raises
    ------
    RegistrationError
        Fewer than one bead pair (or fewer than the model needs).
    """
    if fitter not in ("auto", "registration", "builtin"):
        raise CorrelateError(f"unknown fitter {fitter!r}; expected auto, registration or builtin", field="fitter")
    fit = None
    if fitter in ("auto", "registration"):
        try:
            fit = _align_with_registration(moving, reference, model=model, min_fraction=min_fraction)
        except ImportError:
            if fitter == "registration":
                raise
    if fit is None:
        fit = _align_builtin(moving, reference, model=model, min_fraction=min_fraction,
                             search_radius=search_radius, gate=gate)
    out = moving.copy()
    out["x_raw"] = moving["x"].to_numpy(float)
    out["y_raw"] = moving["y"].to_numpy(float)
    mapped = fit.transform.apply(moving[["x", "y"]].to_numpy(float))
    out["x"] = mapped[:, 0]
    out["y"] = mapped[:, 1]
    out.attrs = dict(moving.attrs)
    notes = list(out.attrs.get("notes", []))
    notes.append(f"colour-aligned onto reference ({fit.model}, {len(fit.residuals)} beads)")
    out.attrs["notes"] = notes
    return out, fit


def _align_builtin(moving, reference, *, model, min_fraction, search_radius, gate) -> ColourAlignment:
    bm, vm = bead_positions(moving, min_fraction=min_fraction, search_radius=search_radius)
    br, vr = bead_positions(reference, min_fraction=min_fraction, search_radius=search_radius)
    if len(bm) == 0 or len(br) == 0:
        raise RegistrationError(
            f"colour alignment needs beads in both colours; found {len(bm)} in the moving and "
            f"{len(br)} in the reference colour (persistent emitters on in >= {min_fraction:.0%} of frames)",
            field="beads",
        )
    i, j = pair_beads(bm, br, gate=gate)
    if len(i) == 0:
        raise RegistrationError(f"no bead pairs within {gate} nm after removing the median offset", field="beads")
    fit = fit_colour_alignment(bm[i], br[j], variance=vm[i] + vr[j], model=model)
    fit.info["n_beads_moving"] = len(bm)
    fit.info["n_beads_reference"] = len(br)
    return fit


def _align_with_registration(moving, reference, *, model, min_fraction) -> ColourAlignment:
    """Bead detection, pairing and fit by :mod:`correlate.registration` (helper E's machinery)."""
    from ..registration import (  # ImportError if not available
        detect_fiducials,
        register_points,
    )

    fm = detect_fiducials(moving, min_frame_fraction=min_fraction)
    fr = detect_fiducials(reference, min_frame_fraction=min_fraction)
    if len(fm) == 0 or len(fr) == 0:
        raise RegistrationError(
            f"colour alignment needs beads in both colours; found {len(fm)} in the moving and {len(fr)} "
            f"in the reference colour", field="beads")
    reg = register_points(fm, fr, model=model, scale_range=(0.95, 1.05), moving_name="moving", fixed_name="reference")
    lm = reg.landmarks
    used = np.asarray(lm.used, bool)
    return ColourAlignment(
        transform=reg.transform,
        model=reg.model,
        moving_beads=lm.source[used][:, :2],
        reference_beads=lm.target[used][:, :2],
        residuals=np.asarray(lm.residual, float)[used],
        loo_error_nm=float(reg.loo_rms),
        info={"fitter": "correlate.registration", "reason": reg.reason, "n_beads_moving": len(fm),
              "n_beads_reference": len(fr), "outliers": [str(o) for o in reg.outliers]},
    )
