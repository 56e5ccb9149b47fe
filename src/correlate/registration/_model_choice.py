"""Choice of the simplest adequate model under stated noise plus an estimated excess.

Method (stated covariances ``C_i``; assumptions of the excess in
:mod:`correlate.registration._excess`):

1. *Total noise.* The excess per-axis variance ``s^2`` is estimated on the most flexible linear
   candidate (the reference, normally affine) by ``chi2(s)/dof = 1`` (Paule-Mandel), or given
   by the user. A fit that needs ``s > 0`` is not "inconsistent with the noise": the total
   noise ``C_i + s^2 I`` is what every model is tested against.
2. *Linear models, nested tests.* Each simpler model ``m`` (``p_m`` parameters) is compared with
   the reference (``p_r``): ``F = [(chi2_m - chi2_r) / (p_r - p_m)] / (chi2_r / dof_r)`` against
   ``F(p_r - p_m, dof_r)`` when ``s`` was estimated from the same residuals (its uncertainty is
   what the F distribution allows for), and ``chi2_m - chi2_r`` against ``chi2(p_r - p_m)`` when
   the noise is taken as stated (``s = 0`` estimated, or ``s`` given). The first model from the
   simplest with ``p >= alpha`` is chosen. The reference's own chi-square is tested too: it can
   fail only when the excess is fixed (given, or 0); then no linear model is adequate.
3. *Non-linear model.* A smooth deformation shows as spatial correlation of the affine residuals,
   which a white excess does not have: the REML likelihood ratio of a thin-plate deformation
   component (:func:`~correlate.registration._deformation.deformation_reml`) is tested at ``alpha``.
   The TPS (fitted with the REML excess, the excess left once the deformation is modelled) is
   chosen only when that test passes *and* the spline's leave-one-out error is below every
   linear model's.
4. No adequate model at all (fixed excess too small, no deformation found): the reference with
   its TRE inflated by ``chi2/dof``, said in the reason.

Without stated covariances the noise level comes from the residuals; an excess cannot be told
apart from it, so none is estimated (the model with a leave-one-out error within 10 % of the
lowest wins, the simplest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import RegistrationError
from ._calibration import calibrate_error, inflate_noise
from ._deformation import deformation_reml
from ._error import loo_residuals
from ._excess import paule_mandel
from ._fit import LINEAR_MODELS, Fit, fit_model, min_pairs, n_params
from ._linear_fit import _prepare

__all__ = ["choose"]


def _loo_rms(e: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(np.sum(e**2, axis=1))))


def _candidate(m: str, f: Fit, e: np.ndarray, pvalue: float, test: str) -> dict[str, Any]:
    return {
        "model": m,
        "chi2": f.chi2,
        "dof": f.dof,
        "pvalue": pvalue,
        "test": test,
        "p_fit": f.pvalue,
        "excess_fle_nm": f.excess_fle_nm,
        "fre_rms_nm": f.fre_rms,
        "loo_rms_nm": _loo_rms(e),
        "accepted": False,
        "_loo": e,
    }


def _fit_or_reason(x, y, m, cx, cy, s: float, errors: dict[str, str], reflection: bool = False) -> Fit | None:
    try:
        f = fit_model(x, y, m, cx, cy, excess_fle_nm=s, reflection=reflection)
    except RegistrationError as exc:
        if "mirror" in str(exc) or "reflection" in str(exc):
            raise
        errors[m] = str(exc)
        return None
    if not (f.dof > 0):
        errors[m] = "no residual degrees of freedom"
        return None
    return f


def _reference_excess(x, y, cx, cy, lin: list[str], errors: dict[str, str],
                      reflection: bool = False) -> tuple[str | None, float]:
    """Most flexible linear model that fits, and its Paule-Mandel excess (nm^2)."""
    for m in reversed(lin):
        try:
            s2, _ = paule_mandel(m, x, y, cx, cy, reflection=True if reflection else False)
        except RegistrationError as exc:
            errors[m] = str(exc)
            continue
        return m, s2
    return None, 0.0


def _nested_p(f: Fit, ref: Fit, estimated: bool) -> tuple[float, str]:
    from scipy.stats import chi2, f as fdist

    d = f.ndim
    dp = n_params(ref.model, d) - n_params(f.model, d)
    dchi = max(0.0, f.chi2 - ref.chi2)
    if estimated:
        stat = (dchi / dp) / (ref.chi2 / ref.dof)
        return float(fdist.sf(stat, dp, ref.dof)), f"F test vs {ref.model}"
    return float(chi2.sf(dchi, dp)), f"chi2 difference vs {ref.model}"


def choose(source, target, source_cov, target_cov, models: Sequence[str], *, alpha: float,
           excess_fle_nm: float | None = None, reflection: bool = False):
    """Model choice; returns ``(fit, candidates, reason, loo, info)`` with ``info`` what was
    estimated (``excess_fle_nm``, its ``source``, the deformation test)."""
    x, y, cx, cy, known = _prepare(source, target, source_cov, target_cov)
    n, d = x.shape
    if excess_fle_nm is not None and not (np.isfinite(excess_fle_nm) and excess_fle_nm >= 0):
        raise RegistrationError(f"excess_fle_nm must be finite and >= 0 nm, got {excess_fle_nm!r}", field="excess_fle_nm")
    if not known and not excess_fle_nm:
        return _choose_unknown(x, y, models, reflection)
    errors: dict[str, str] = {}
    lin = [m for m in LINEAR_MODELS if m in models and n >= min_pairs(m, d) + 1]
    estimated = excess_fle_nm is None
    if estimated:
        ref_model, s2 = _reference_excess(x, y, cx, cy, lin, errors, reflection)
    else:
        ref_model, s2 = (lin[-1] if lin else None), float(excess_fle_nm) ** 2
    fits: dict[str, Fit] = {}
    cands: list[dict[str, Any]] = []
    for m in lin:
        f = _fit_or_reason(x, y, m, cx, cy, float(np.sqrt(s2)), errors, reflection)
        if f is not None:
            fits[m] = f
    if ref_model not in fits and fits:
        ref_model = list(fits)[-1]
    ref = fits.get(ref_model)
    for m, f in fits.items():
        p, test = (f.pvalue, "chi2 fit") if m == ref_model else _nested_p(f, ref, estimated and s2 > 0)
        cands.append(_candidate(m, f, loo_residuals(f), p, test))
    s_lin = float(np.sqrt(s2))
    info: dict[str, Any] = {
        "excess_fle_nm": s_lin, "source": "estimated" if estimated else "user", "reference": ref_model,
        "excess_linear_nm": s_lin,
        "method": f"chi2/dof = 1 on the {ref_model} residuals" if estimated else "given",
    }
    reml = deformation_test(x, y, cx, cy, ref, None if estimated else s2) if ref is not None else None
    if reml is not None:
        info["deformation"] = reml
    tps = _tps_candidate(x, y, cx, cy, models, reml, errors)
    if tps is not None:
        fits["tps"] = tps[0]
        cands.append(tps[1])
    if not cands:
        raise RegistrationError(
            f"no model can be fitted to {n} fiducial pairs: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
            field="landmarks", stage="fit", diagnostics={"n_pairs": n, "errors": errors},
        )
    chosen, reason = _decide(cands, fits, ref_model, s_lin, estimated, alpha)
    if chosen["model"] == "tps":
        info["excess_fle_nm"] = fits["tps"].excess_fle_nm
        info["method"] = "REML with a smooth deformation component" if estimated else "given"
    else:
        set_deformation_error(fits[chosen["model"]], reml)
    return _finish(chosen, cands, fits, reason, info)


def deformation_test(x, y, cx, cy, ref: Fit, s2_fixed: float | None) -> dict[str, float] | None:
    """REML smooth-deformation test on the stated residual covariances of the ``ref`` fit's
    linear part (see :func:`~correlate.registration._deformation.deformation_reml`); None if N is
    too small."""
    a = ref.linear
    reml = deformation_reml(x, y, cy + np.einsum("ij,njk,lk->nil", a, cx, a), s2_fixed=s2_fixed)
    return {k: float(v) for k, v in reml.items()} if np.isfinite(reml["pvalue"]) else None


def set_deformation_error(fit: Fit, reml: dict[str, float] | None) -> None:
    """A linear fit keeps the REML deformation scale as ``model_scale`` (its targets move with a
    deformation the model does not follow, even one too weak to call for a spline)."""
    if fit.model == "tps" or reml is None or not reml["theta"] > 0:
        return
    fit.model_scale = float(reml["theta"])
    fit.notes.append(
        f"smooth deformation not followed by the {fit.model} fit: theta * kappa(p) added to the predicted TRE "
        f"(theta = {reml['theta']:.3g} nm^2, REML; deformation test p = {reml['pvalue']:.2g})"
    )


def _tps_candidate(x, y, cx, cy, models, reml, errors):
    n, d = x.shape
    if "tps" not in models or n < min_pairs("tps", d) + 2 or reml is None:
        return None
    f = _fit_or_reason(x, y, "tps", cx, cy, float(np.sqrt(reml["s2"])), errors)
    if f is None:
        return None
    e = loo_residuals(f)
    cand = _candidate("tps", f, e, reml["pvalue"], "REML deformation vs white excess")
    return f, cand


def _decide(cands, fits, ref_model, s_lin: float, estimated: bool, alpha: float):
    lin = [c for c in cands if c["model"] != "tps"]
    tps = next((c for c in cands if c["model"] == "tps"), None)
    how = "estimated, chi2/dof = 1 on " + str(ref_model) if estimated else "given"
    chosen, rejected = None, []
    ref_ok = bool(lin) and lin[-1]["pvalue"] >= alpha
    if ref_ok:
        for c in lin:
            if c["pvalue"] >= alpha:
                chosen = c
                break
            rejected.append(f"{c['model']} p={c['pvalue']:.2g}")
    best_lin = min(lin, key=lambda c: c["loo_rms_nm"]) if lin else None
    tps_txt = ""
    if tps is not None:
        tps_txt = f"smooth-deformation test (REML, excess {tps['excess_fle_nm']:.2g} nm): p = {tps['pvalue']:.2g}"
        if tps["pvalue"] < alpha and (best_lin is None or tps["loo_rms_nm"] < best_lin["loo_rms_nm"]):
            reason = (
                f"smooth deformation beyond noise + excess ({tps_txt} < {alpha}) and the TPS lowers the "
                f"leave-one-out error ({tps['loo_rms_nm']:.2f} vs {best_lin['loo_rms_nm']:.2f} nm for "
                f"{best_lin['model']})" if best_lin else f"smooth deformation beyond noise + excess ({tps_txt} < {alpha})"
            )
            if not fits["tps"].dof >= 1:
                reason += ("; tps (almost) interpolates the fiducials (< 1 residual degree of freedom: no "
                           "chi-square test, its FRE is ~0 by construction)")
            return tps, reason
        if tps["pvalue"] < alpha:
            tps_txt += (f" < {alpha}, but the TPS did not lower the leave-one-out error "
                        f"({tps['loo_rms_nm']:.2f} vs {best_lin['loo_rms_nm']:.2f} nm)")
        else:
            tps_txt += f" >= {alpha}: no non-linear model needed"
    if chosen is not None:
        reason = (
            f"simplest model consistent with the fiducial noise plus an excess of {s_lin:.2g} nm per axis "
            f"({how}): {chosen['test']} p = {chosen['pvalue']:.2g} >= {alpha}"
        )
        if rejected:
            reason += "; rejected: " + ", ".join(rejected)
    else:
        chosen = lin[-1] if lin else tps
        reason = (
            f"no model is consistent with the fiducial noise plus the {how} excess of {s_lin:.2g} nm "
            f"(the {chosen['model']} chi-square p = {chosen['p_fit']:.2g} < {alpha}); kept {chosen['model']}"
        )
        f = fits[chosen["model"]]
        if f.model != "tps" and f.dof > 0:
            inflate = max(1.0, f.chi2 / f.dof)
            inflate_noise(f, inflate)
            reason += f"; predicted TRE inflated by sqrt(chi2/dof) = {np.sqrt(inflate):.2f}"
    if tps_txt:
        reason += "; " + tps_txt
    return chosen, reason


def _finish(chosen, cands, fits, reason, info):
    chosen["accepted"] = True
    loo = chosen["_loo"]
    fit = fits[chosen["model"]]
    calibrate_error(fit, loo)
    for c in cands:
        c.pop("_loo")
    return fit, cands, reason, loo, info


def _choose_unknown(x, y, models, reflection: bool = False):
    """No stated covariances: the simplest model within 10 % of the lowest leave-one-out error."""
    n, d = x.shape
    fits: dict[str, Fit] = {}
    cands: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for m in models:
        if n < min_pairs(m, d) + (1 if m != "tps" else 2):
            errors[m] = f"needs more than {min_pairs(m, d)} pairs"
            continue
        f = _fit_or_reason(x, y, m, None, None, 0.0, errors, reflection)
        if f is None:
            continue
        fits[m] = f
        cands.append(_candidate(m, f, loo_residuals(f), f.pvalue, "none (noise unknown)"))
    if not cands:
        raise RegistrationError(
            f"no model can be fitted to {n} fiducial pairs: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
            field="landmarks", stage="fit", diagnostics={"n_pairs": n, "errors": errors},
        )
    best = min(c["loo_rms_nm"] for c in cands)
    chosen = next(c for c in cands if c["loo_rms_nm"] <= 1.1 * best)
    reason = (
        "fiducial covariances unknown: simplest model whose leave-one-out error is within 10 % of "
        f"the lowest ({chosen['loo_rms_nm']:.2f} vs {best:.2f} nm)"
    )
    info = {"excess_fle_nm": 0.0, "source": "not separable",
            "method": "none: without stated covariances the residuals set the whole noise level"}
    return _finish(chosen, cands, fits, reason, info)
