"""Outlier flagging and the fit of paired fiducials: :func:`fit_landmarks`, :func:`select_model`.

Outliers are flagged by their normalised leave-one-out residual under total noise: the stated
covariance plus a robustly estimated common excess (:func:`~correlate.registration._excess.robust_excess`),
and the statistics are divided by their median over the chi-square median, so that neither an
excess common to all beads nor a misstated noise level reads as outliers. The model choice is in
:mod:`correlate.registration._model_choice`, the TRE calibration in
:mod:`correlate.registration._calibration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..elements import Landmarks
from ..errors import RegistrationError
from ._calibration import calibrate_error
from ._error import loo_residuals
from ._excess import robust_excess
from ._fit import LINEAR_MODELS, MODELS, Fit, fit_model, min_pairs
from ._linear_fit import _prepare
from ._model_choice import choose, deformation_test, set_deformation_error
from ._tps import tps_model_scale

__all__ = [
    "Registration",
    "fit_landmarks",
    "flag_outliers",
    "select_model",
]


@dataclass
class Registration:
    """Outcome of fitting (and choosing) a model on paired fiducials.

    Attributes
    ----------
    fit
        The chosen :class:`Fit` (moving -> fixed), fitted on the inlier pairs.
    landmarks
        All pairs, with ``used`` (False for flagged outliers) and ``residual`` (nm) filled in.
    candidates
        One dict per model tried: model, chi2, dof, pvalue, fre_rms_nm, loo_rms_nm, accepted.
    reason
        Why this model was chosen, in words.
    outliers
        Ids of the pairs flagged as outliers.
    loo
        (N_used, D) leave-one-out error vectors of the chosen model (nm).
    excess
        What the error model estimated: ``excess_fle_nm`` (nm per axis), its ``source``
        (``"estimated"`` | ``"user"``), the ``method`` and, where tested, the smooth-deformation
        test (``deformation``: REML ``pvalue``, ``lr``, ``theta``, ``s2``).
    """

    fit: Fit
    landmarks: Landmarks
    candidates: list[dict[str, Any]]
    reason: str
    outliers: list
    loo: np.ndarray
    alpha: float = 0.01
    excess: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pairing: dict[str, Any] = field(default_factory=dict)
    fiducials: dict[str, Any] = field(default_factory=dict)
    mirrored: bool = False

    @property
    def model(self) -> str:
        return self.fit.model

    @property
    def transform(self):
        """The fitted transform, moving frame -> fixed frame (nm)."""
        return self.fit.transform

    @property
    def loo_rms(self) -> float:
        """RMS leave-one-out error (nm); includes the left-out fiducial's own localisation error."""
        e = np.sum(self.loo**2, axis=1)
        e = e[np.isfinite(e)]
        return float(np.sqrt(e.mean())) if e.size else float("nan")

    def tre_over(self, points) -> dict[str, float]:
        """Median and 95th percentile of predicted RMS TRE and of the 95 % radius at ``points``."""
        rms = self.fit.tre_rms(points)
        r95 = self.fit.tre_radius(points, 0.95)
        return {
            "tre_rms_median_nm": float(np.median(rms)),
            "tre_rms_p95_nm": float(np.percentile(rms, 95)),
            "tre_r95_median_nm": float(np.median(r95)),
            "tre_r95_p95_nm": float(np.percentile(r95, 95)),
        }

    def summary(self) -> str:
        """Human-readable summary (what the CLI prints)."""
        lm = self.landmarks
        lines = [
            f"pairs: {len(lm)} ({int(lm.used.sum())} used, {len(self.outliers)} outlier(s) rejected"
            + (f": ids {list(self.outliers)})" if self.outliers else ")"),
            f"model: {self.model} - {self.reason}",
            f"FRE (RMS residual): {self.fit.fre_rms:.2f} nm; leave-one-out RMS: {self.loo_rms:.2f} nm",
            f"excess fiducial error: {self.fit.excess_fle_nm:.2f} nm per axis"
            + (f" ({self.excess.get('source')}: {self.excess.get('method')})" if self.excess else ""),
        ]
        for c in self.candidates:
            lines.append(
                f"  {c['model']:<11} chi2 {c['chi2']:10.1f} dof {c['dof']:6.1f} p {c['pvalue']:9.3g} "
                f"FRE {c['fre_rms_nm']:7.2f} nm LOO {c['loo_rms_nm']:7.2f} nm"
                + (f"  ({c['test']})" if c.get("test") else "")
            )
        return "\n".join(lines)


def _normalised_loo(fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    e = loo_residuals(fit)
    if fit.model == "tps":  # exact leave-one-out noise + the spline's own interpolation error
        theta, noise, kap = tps_model_scale(fit, e)
        cov = noise + (theta * kap)[:, None, None] * np.eye(fit.ndim)
    else:
        cov = fit.res_cov * fit.noise_scale + fit.tre_cov(fit.source)
    with np.errstate(invalid="ignore"):
        t = np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)
    return t, e


def flag_outliers(
    source, target, source_cov, target_cov, model: str = "auto", *, level: float = 1e-3, max_fraction: float = 0.2,
    excess_fle_nm: float | None = None,
) -> np.ndarray:
    """Iteratively flag outlier pairs by their normalised leave-one-out residual.

    ``C_i`` is the stated residual covariance plus ``s^2 I``, the common excess (``excess_fle_nm``
    or, when None, the robust estimate of :func:`~correlate.registration._excess.robust_excess`
    on the pairs still in). The statistic ``t_i = e_i^T (C_i + Sigma_TRE,i)^-1 e_i`` of the worst pair is compared with
    the chi-square(D) quantile at ``1 - level / N`` after dividing all ``t`` by their median over
    the chi-square median (robust to a global misstatement of the fiducial noise); the worst pair
    is dropped and the fit repeated, at most ``max_fraction`` of the pairs.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True for inliers.
    """
    from scipy.stats import chi2

    x = np.asarray(source, float)
    n, d = x.shape
    keep = np.ones(n, bool)
    if model == "auto":
        model = "affine" if n >= 6 else "similarity"
    max_out = int(np.floor(max_fraction * n))
    for _ in range(max_out):
        idx = np.flatnonzero(keep)
        if len(idx) - 1 < min_pairs(model, d) + 2:
            break
        xi, yi, sci, tci = x[idx], np.asarray(target, float)[idx], _sub(source_cov, idx), _sub(target_cov, idx)
        try:
            s = _robust_excess_nm(model, xi, yi, sci, tci, excess_fle_nm)
            f = fit_model(xi, yi, model, sci, tci, check_reflection=False, excess_fle_nm=s)
        except RegistrationError:
            break
        t, _ = _normalised_loo(f)
        t = np.where(np.isfinite(t), t, 0)
        robust = max(1.0, np.median(t) / chi2.median(d))
        t = t / robust
        worst = int(np.argmax(t))
        if t[worst] <= chi2.ppf(1 - level / len(idx), d):
            break
        keep[idx[worst]] = False
    return keep


def _robust_excess_nm(model: str, x, y, source_cov, target_cov, given: float | None) -> float:
    """Excess (nm) used while flagging: the given one, or the robust estimate (0 without covariances)."""
    if given is not None:
        return float(given)
    x, y, cx, cy, known = _prepare(x, y, source_cov, target_cov)
    if not known:
        return 0.0
    lin = model if model in LINEAR_MODELS else "affine"
    return float(np.sqrt(robust_excess(lin, x, y, cx, cy)))


def _sub(cov, idx):
    if cov is None:
        return None
    c = np.asarray(cov, float)
    return c[idx] if c.ndim in (1, 3) else c


def select_model(
    source,
    target,
    source_cov=None,
    target_cov=None,
    models: Sequence[str] = MODELS,
    *,
    alpha: float = 0.01,
    reflection: bool = False,
    excess_fle_nm: float | None = None,
) -> tuple[Fit, list[dict[str, Any]], str, np.ndarray]:
    """Fit every candidate model and choose the simplest adequate one.

    With stated covariances (see :mod:`correlate.registration._model_choice`):

    1. The excess fiducial error ``s`` (systematic per-bead error, nm per axis) is estimated on
       the most flexible linear candidate (affine) by ``chi2(s)/dof = 1``
       (:func:`~correlate.registration._excess.paule_mandel`), or taken from ``excess_fle_nm``.
    2. Every linear model is fitted with the total noise ``C_i + s^2 I``; from the simplest, the
       first whose extra-parameter test against the reference passes (``p >= alpha``; an F test
       when ``s`` was estimated, chi-square of the chi2 difference when the noise is taken as
       stated) is chosen.
    3. A TPS replaces it only when the affine residuals are spatially correlated beyond noise +
       excess (REML likelihood-ratio test of a smooth deformation,
       :func:`~correlate.registration._deformation.deformation_reml`, ``p < alpha``) and the spline
       lowers the leave-one-out error below every linear model; its excess is the REML one.

    Without stated covariances the choice is by leave-one-out error alone (the simplest model
    within 10 % of the lowest) and no excess is separated from the noise.

    Returns
    -------
    (fit, candidates, reason, loo)
    """
    fit, cands, reason, loo, _info = choose(source, target, source_cov, target_cov, models, alpha=alpha,
                                            excess_fle_nm=excess_fle_nm, reflection=reflection)
    return fit, cands, reason, loo


def fit_landmarks(
    landmarks: Landmarks,
    model: str = "auto",
    *,
    alpha: float = 0.01,
    reject_outliers: bool = True,
    outlier_level: float = 1e-3,
    reflection: bool = False,
    excess_fle_nm: float | None = None,
) -> Registration:
    """Flag outliers, fit (and with ``model="auto"`` choose) a model on paired fiducials.

    Parameters
    ----------
    landmarks
        Pairs: ``source`` = moving frame, ``target`` = fixed frame (nm), with covariances.
        Pairs with ``used=False`` on input are left out.
    model
        ``"auto"`` or one of ``translation, rigid, similarity, affine, tps``.
    alpha
        Level of the model-choice tests: a simpler model is adequate when the test of the extra
        parameters has ``p >= alpha``; a TPS needs the deformation test at ``p < alpha``.
    reject_outliers
        Flag outliers by normalised leave-one-out residual before fitting.
    reflection
        The frames are mirrored (pairing found it): fit improper rigid/similarity transforms
        and allow an affine with det < 0 (see :func:`fit_model`).
    excess_fle_nm
        Systematic per-fiducial error (per-axis standard deviation, nm, both sides combined)
        added to every pair's stated covariance. None (default): estimated from the data
        (:mod:`correlate.registration._excess`); what was estimated is in
        ``Registration.excess`` and ``Fit.excess_fle_nm``.

    Returns
    -------
    Registration
    """
    lm = landmarks
    base = np.asarray(lm.used, bool).copy()
    idx = np.flatnonzero(base)
    keep = np.ones(len(idx), bool)
    if reject_outliers and len(idx) >= 5:
        flag_model = "auto" if model == "auto" else model
        keep = flag_outliers(
            lm.source[idx], lm.target[idx], lm.source_cov[idx], lm.target_cov[idx], flag_model, level=outlier_level,
            excess_fle_nm=excess_fle_nm,
        )
    use = idx[keep]
    covs_known = bool(np.any(lm.source_cov != 0) or np.any(lm.target_cov != 0))
    sc = lm.source_cov[use] if covs_known else None
    tc = lm.target_cov[use] if covs_known else None
    if model == "auto":
        fit, cands, reason, loo, info = choose(lm.source[use], lm.target[use], sc, tc, MODELS, alpha=alpha,
                                               excess_fle_nm=excess_fle_nm, reflection=reflection)
    else:
        fit, info = _fit_requested(model, lm.source[use], lm.target[use], sc, tc, excess_fle_nm, reflection)
        loo = loo_residuals(fit)
        loo_rms = float(np.sqrt(np.nanmean(np.sum(loo**2, axis=1))))
        calibrate_error(fit, loo)
        cands = [dict(fit.summary(), loo_rms_nm=loo_rms, accepted=True)]
        reason = "requested by the user"
    used = np.zeros(len(lm), bool)
    used[use] = True
    residual = np.linalg.norm(lm.target - fit.transform.apply(lm.source), axis=1)
    out = Landmarks(
        lm.source, lm.target, lm.source_cov, lm.target_cov, ids=lm.ids, used=used, residual=residual,
        source_system=lm.source_system, target_system=lm.target_system, attrs=dict(lm.attrs),
    )
    outliers = [x.item() if hasattr(x, "item") else x for x in lm.ids[idx[~keep]]]
    return Registration(fit=fit, landmarks=out, candidates=cands, reason=reason, outliers=outliers, loo=loo, alpha=alpha,
                        excess=info)


def _fit_requested(model: str, x, y, sc, tc, excess_fle_nm: float | None,
                   reflection: bool = False) -> tuple[Fit, dict[str, Any]]:
    """A user-chosen model; the excess is estimated on its own residuals (linear: chi2/dof = 1;
    TPS: REML with a smooth deformation component) unless given."""
    known = sc is not None or tc is not None
    if excess_fle_nm is not None:
        info = {"excess_fle_nm": float(excess_fle_nm), "source": "user", "method": "given"}
        return fit_model(x, y, model, sc, tc, excess_fle_nm=float(excess_fle_nm), reflection=reflection), info
    if not known:
        info = {"excess_fle_nm": 0.0, "source": "not separable",
                "method": "none: without stated covariances the residuals set the whole noise level"}
        return fit_model(x, y, model, sc, tc, reflection=reflection), info
    xx, yy, cx, cy, _ = _prepare(x, y, sc, tc)
    try:
        ref = fit_model(xx, yy, "affine" if model == "tps" else model, cx, cy, check_reflection=False)
        reml = deformation_test(xx, yy, cx, cy, ref, None)
    except RegistrationError:
        reml = None
    if model != "tps":
        fit = fit_model(x, y, model, sc, tc, excess_fle_nm="estimate", reflection=reflection)
        set_deformation_error(fit, reml)
        info = {"excess_fle_nm": fit.excess_fle_nm, "source": "estimated",
                "method": f"chi2/dof = 1 on the {model} residuals"}
    else:
        s2 = reml["s2"] if reml is not None else 0.0
        fit = fit_model(x, y, "tps", sc, tc, excess_fle_nm=float(np.sqrt(s2)), reflection=reflection)
        info = {"excess_fle_nm": fit.excess_fle_nm, "source": "estimated",
                "method": "REML with a smooth deformation component" if reml is not None
                else "none: too few pairs for the deformation test"}
    if reml is not None:
        info["deformation"] = reml
    return fit, info

