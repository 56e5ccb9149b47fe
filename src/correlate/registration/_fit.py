"""Weighted point-based fits (translation, rigid, similarity, affine) with parameter covariance.

Every linear model is written ``T(x) = A (x - c) + t`` with ``c`` the weighted centroid of the
moving (source) fiducials, which decouples the translation from the linear part and keeps the
normal equations well conditioned in nm. The estimate is the generalised (errors-in-variables,
first-order) least-squares solution

    minimise  sum_i r_i^T C_i^-1 r_i,   r_i = y_i - T(x_i),   C_i = Sigma_y,i + A Sigma_x,i A^T

seeded by the closed form (weighted Umeyama / weighted LS) and refined by Gauss-Newton with a
local parameterisation (left rotation increment, log-scale, affine increment, translation). The
parameter covariance is the inverse of the normal matrix at convergence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RegistrationError
from ..transforms import Affine, Transform

__all__ = [
    "LINEAR_MODELS",
    "MODELS",
    "Fit",
    "fit_model",
    "min_pairs",
    "model_jacobian",
    "n_params",
]

#: Models in order of increasing flexibility (the order ``model="auto"`` tries them).
MODELS: tuple[str, ...] = ("translation", "rigid", "similarity", "affine", "tps")
LINEAR_MODELS: tuple[str, ...] = MODELS[:4]

_COV_FLOOR = 1e-6  # nm^2, keeps weights finite for exact (noise-free) inputs


def n_params(model: str, ndim: int) -> int:
    """Number of free parameters of a linear ``model`` in ``ndim`` dimensions."""
    d = ndim
    nrot = 1 if d == 2 else 3
    return {
        "translation": d,
        "rigid": nrot + d,
        "similarity": nrot + 1 + d,
        "affine": d * d + d,
    }[_check_model(model)]


def min_pairs(model: str, ndim: int) -> int:
    """Smallest number of fiducial pairs that determines ``model``."""
    d = ndim
    return {
        "translation": 1,
        "rigid": 2 if d == 2 else 3,
        "similarity": 2 if d == 2 else 3,
        "affine": d + 1,
        "tps": d + 2,
    }[_check_model(model, allow_tps=True)]


def _check_model(model: str, allow_tps: bool = False) -> str:
    ok = MODELS if allow_tps else LINEAR_MODELS
    if model not in ok:
        raise RegistrationError(f"unknown registration model {model!r}; expected one of {ok}", field="model")
    return model


def _skew(v: np.ndarray) -> np.ndarray:
    """(N, 3) vectors -> (N, 3, 3) cross-product matrices [v]_x."""
    z = np.zeros(len(v))
    return np.stack(
        [
            np.stack([z, -v[:, 2], v[:, 1]], -1),
            np.stack([v[:, 2], z, -v[:, 0]], -1),
            np.stack([-v[:, 1], v[:, 0], z], -1),
        ],
        1,
    )


def _rotvec_to_matrix(w: np.ndarray) -> np.ndarray:
    if w.size == 1:
        c, s = np.cos(w[0]), np.sin(w[0])
        return np.array([[c, -s], [s, c]])
    th = np.linalg.norm(w)
    k = _skew(w[None])[0]
    if th < 1e-12:
        return np.eye(3) + k
    return np.eye(3) + np.sin(th) / th * k + (1 - np.cos(th)) / th**2 * (k @ k)


def model_jacobian(model: str, linear: np.ndarray, center: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Derivative of ``T(x) = A (x - c) + t`` with respect to the model's local parameters.

    Parameters
    ----------
    model
        One of :data:`LINEAR_MODELS`.
    linear
        (D, D) current linear part ``A``.
    center
        (D,) centre ``c`` (nm).
    points
        (N, D) positions ``x`` (nm) in the moving frame.

    Returns
    -------
    numpy.ndarray
        (N, D, p) Jacobian; the parameters are ordered [rotation (1 in 2-D, 3 in 3-D), log-scale,
        vec(dA) row-major, translation] as the model has them.
    """
    p = np.atleast_2d(np.asarray(points, float))
    n, d = p.shape
    q = p - center
    aq = q @ np.asarray(linear, float).T
    blocks = []
    if model in ("rigid", "similarity"):
        if d == 2:
            blocks.append(np.stack([-aq[:, 1], aq[:, 0]], -1)[:, :, None])
        else:
            blocks.append(-_skew(aq))
        if model == "similarity":
            blocks.append(aq[:, :, None])
    elif model == "affine":
        ja = np.zeros((n, d, d * d))
        for k in range(d):
            ja[:, k, k * d : (k + 1) * d] = q
        blocks.append(ja)
    elif model != "translation":
        _check_model(model)
    blocks.append(np.broadcast_to(np.eye(d), (n, d, d)))
    return np.concatenate(blocks, axis=2)


def _update(model: str, linear: np.ndarray, t: np.ndarray, delta: np.ndarray):
    d = len(t)
    nrot = 1 if d == 2 else 3
    a = linear
    i = 0
    if model in ("rigid", "similarity"):
        a = _rotvec_to_matrix(delta[:nrot]) @ a
        i = nrot
        if model == "similarity":
            a = a * np.exp(delta[i])
            i += 1
    elif model == "affine":
        a = a + delta[: d * d].reshape(d, d)
        i = d * d
    return a, t + delta[i:]


def _weighted_centroid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w[:, None] * x).sum(0) / w.sum()


def _closed_form(model: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, c: np.ndarray, reflection: bool | None = False):
    """Seed: weighted closed form with scalar weights. Returns (A, t, reflection_flag).

    ``reflection``: rigid/similarity only; False forces det A > 0, True det A < 0, None takes
    whichever handedness fits best (the unconstrained Procrustes solution).
    """
    d = x.shape[1]
    wn = w / w.sum()
    q = x - c
    my = (wn[:, None] * y).sum(0)
    if model == "translation":
        return np.eye(d), my, False
    qy = y - my
    if model == "affine":
        sw = np.sqrt(wn)[:, None]
        sol, *_ = np.linalg.lstsq(sw * q, sw * qy, rcond=None)
        return sol.T, my, False
    # Umeyama with the handedness guard.
    cov = (wn[:, None, None] * qy[:, :, None] * q[:, None, :]).sum(0)
    u, s, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sv = np.ones(d)
    if reflection is not None and (sign < 0) != bool(reflection):
        sv[-1] = -1
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt) * np.prod(sv))
    r = u @ np.diag(sv) @ vt
    scale = 1.0
    if model == "similarity":
        var = (wn * (q**2).sum(1)).sum()
        scale = float((s * sv).sum() / var) if var > 0 else 1.0
        if scale <= 0:
            scale = 1.0
    return scale * r, my, bool(sign < 0)


@dataclass
class Fit:
    """A fitted transform from moving (source) to fixed (target) fiducials, with its error model.

    Attributes
    ----------
    model
        ``"translation"``, ``"rigid"``, ``"similarity"``, ``"affine"`` or ``"tps"``.
    transform
        The fitted :class:`~correlate.transforms.Transform`, moving frame -> fixed frame (nm).
    ndim
        2 or 3.
    center
        (D,) centre ``c`` of the parameterisation ``A (x - c) + t`` (nm).
    linear
        (D, D) linear part ``A`` (for ``tps``: its affine part).
    param_cov
        (p, p) covariance of the local parameters (linear models), already multiplied by
        ``noise_scale``.
    source, target
        (N, D) fiducial pairs used in the fit (nm).
    res_cov
        (N, D, D) covariance of each residual, ``Sigma_y + A Sigma_x A^T`` (nm^2), before
        ``noise_scale``.
    residuals
        (N, D) ``target - T(source)`` (nm).
    chi2, dof, pvalue
        Goodness of fit ``sum r^T C^-1 r`` against chi-square with ``dof`` degrees of freedom.
    noise_scale
        Factor applied to the stated fiducial covariances in the TRE prediction (1 unless the
        covariances were unknown or inflated to match the residuals).
    model_var
        Linear models: constant isotropic variance per axis (nm^2) added to the predicted TRE
        for a deformation the model does not follow (the leave-one-out excess over the noise,
        when significant; set by :func:`fit_landmarks` / :func:`select_model`). 0 for a TPS.
    model_scale
        Scale ``theta`` (nm^2) of a smooth deformation's error, added as ``theta * kappa(p) * I``.
        TPS: ``kappa`` is the spline's kriging variance
        (:func:`~correlate.registration._tps.tps_kriging_var`: ~0 at the fiducials, growing
        between them and outside their hull), ``theta`` the maximum-likelihood fit of the
        leave-one-out errors. Linear models: ``kappa`` is what an affine fit leaves of such a
        deformation (:func:`~correlate.registration._excess.affine_kriging_var`), ``theta`` the
        REML estimate of :func:`~correlate.registration._excess.deformation_reml` (a deformation
        too weak to call for a spline still moves the targets). Set by :func:`fit_landmarks` /
        :func:`select_model`; 0 otherwise.
    excess_fle_nm
        Per-axis standard deviation (nm) of the systematic per-fiducial error (both sides
        combined) added as ``excess_fle_nm^2 I`` to every residual covariance ``res_cov``, and so
        carried into ``param_cov`` and the predicted TRE; 0.0 if none is needed
        (see :mod:`correlate.registration._excess`).
    tps
        For ``model="tps"``: ``{"smoothing": lambda, "weights": (N,)}``.
    """

    model: str
    transform: Transform
    ndim: int
    center: np.ndarray
    linear: np.ndarray
    param_cov: np.ndarray | None
    source: np.ndarray
    target: np.ndarray
    res_cov: np.ndarray
    residuals: np.ndarray
    chi2: float
    dof: float
    pvalue: float
    noise_scale: float = 1.0
    noise_known: bool = True
    model_var: float = 0.0
    model_scale: float = 0.0
    excess_fle_nm: float = 0.0
    tps: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    # -- error prediction -------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of fiducial pairs in the fit."""
        return len(self.source)

    @property
    def fre_rms(self) -> float:
        """Fiducial registration error: RMS residual distance (nm)."""
        return float(np.sqrt(np.mean(np.sum(self.residuals**2, axis=1)))) if self.n else float("nan")

    def tre_cov(self, points, target_cov=None) -> np.ndarray:
        """First-order predicted TRE covariance (nm^2) at ``points`` of the moving frame.

        Parameters
        ----------
        points
            (M, D) positions (nm) in the moving (source) frame, x, y[, z].
        target_cov
            Optional (M, D, D) or (D, D) localisation covariance of the targets themselves in the
            moving frame (nm^2); it is mapped through the transform and added (the error of
            where a *measured* target lands).

        Returns
        -------
        numpy.ndarray
            (M, D, D) covariance of the mapped position in the fixed frame (nm^2).
        """
        p = np.atleast_2d(np.asarray(points, float))[:, : self.ndim]
        if self.model == "tps":
            from ._tps import tps_kriging_var

            s, kap = tps_kriging_var(self.source, self.tps["smoothing"], self.tps["weights"], p)
            cov = np.einsum("mn,nij->mij", s**2, self.res_cov) * self.noise_scale
            if self.model_scale > 0:
                cov = cov + (self.model_scale * kap)[:, None, None] * np.eye(self.ndim)
        else:
            j = model_jacobian(self.model, self.linear, self.center, p)
            cov = np.einsum("mip,pq,mjq->mij", j, self.param_cov, j)
            if self.model_scale > 0:
                from ._excess import affine_kriging_var

                w = 1.0 / (np.trace(self.res_cov, axis1=1, axis2=2) / self.ndim)
                kap = affine_kriging_var(self.source, w / w.mean(), p)
                cov = cov + (self.model_scale * kap)[:, None, None] * np.eye(self.ndim)
        if self.model_var > 0:
            cov = cov + self.model_var * np.eye(self.ndim)
        if target_cov is not None:
            tc = np.asarray(target_cov, float)
            if tc.ndim == 2:
                tc = np.broadcast_to(tc, (len(p), self.ndim, self.ndim))
            cov = cov + self.transform.propagate_covariance(p, tc)
        return cov

    def tre_rms(self, points, target_cov=None) -> np.ndarray:
        """Predicted RMS TRE ``sqrt(trace Sigma_TRE)`` (nm) at ``points`` (M, D) -> (M,)."""
        return np.sqrt(np.trace(self.tre_cov(points, target_cov), axis1=1, axis2=2))

    def tre_radius(self, points, level: float = 0.95, target_cov=None) -> np.ndarray:
        """Radius R (nm) with P(|TRE| < R) = ``level`` at each of ``points`` (M, D) -> (M,)."""
        from ._error import containment_radius

        return containment_radius(self.tre_cov(points, target_cov), level)

    # -- serialisation ----------------------------------------------------------------------
    def error_model(self) -> dict[str, Any]:
        """JSON-ready dict holding what :func:`Fit.from_error_model` needs to recompute TRE."""
        d: dict[str, Any] = {
            "model": self.model,
            "ndim": self.ndim,
            "center_nm": self.center.tolist(),
            "linear": self.linear.tolist(),
            "noise_scale": float(self.noise_scale),
            "model_var_nm2": float(self.model_var),
            "model_scale_nm2": float(self.model_scale),
            "excess_fle_nm": float(self.excess_fle_nm),
            "transform": self.transform.to_ngff(),
        }
        if self.model == "tps":
            d["source_nm"] = self.source.tolist()
            d["residual_cov_nm2"] = self.res_cov.tolist()
            d["smoothing"] = float(self.tps["smoothing"])
            d["weights"] = np.asarray(self.tps["weights"]).tolist()
        else:
            d["param_cov"] = self.param_cov.tolist()
            if self.model_scale > 0:
                d["source_nm"] = self.source.tolist()
                d["residual_cov_nm2"] = self.res_cov.tolist()
        return d

    @classmethod
    def from_error_model(cls, d: dict[str, Any]) -> Fit:
        """Rebuild a (prediction-only) :class:`Fit` from :meth:`error_model` output."""
        from ..transforms import from_ngff

        ndim = int(d["ndim"])
        model = d["model"]
        tr = from_ngff(d["transform"], ndim)
        src = np.asarray(d.get("source_nm", np.zeros((0, ndim))), float).reshape(-1, ndim)
        rc = np.asarray(d.get("residual_cov_nm2", np.zeros((0, ndim, ndim))), float).reshape(-1, ndim, ndim)
        tps = None
        if model == "tps":
            tps = {"smoothing": float(d["smoothing"]), "weights": np.asarray(d["weights"], float)}
        return cls(
            model=model,
            transform=tr,
            ndim=ndim,
            center=np.asarray(d["center_nm"], float),
            linear=np.asarray(d["linear"], float),
            param_cov=None if "param_cov" not in d else np.asarray(d["param_cov"], float),
            source=src,
            target=np.full_like(src, np.nan),
            res_cov=rc,
            residuals=np.zeros_like(src),
            chi2=float("nan"),
            dof=float("nan"),
            pvalue=float("nan"),
            noise_scale=_num(d.get("noise_scale", 1.0)),
            model_var=_num(d.get("model_var_nm2", 0.0), 0.0),
            model_scale=_num(d.get("model_scale_nm2", 0.0), 0.0),
            excess_fle_nm=_num(d.get("excess_fle_nm", 0.0), 0.0),
            tps=tps,
        )

    def summary(self) -> dict[str, Any]:
        """Scalar summary: model, n, FRE, chi2, dof, p."""
        return {
            "model": self.model,
            "n_pairs": self.n,
            "fre_rms_nm": self.fre_rms,
            "chi2": self.chi2,
            "dof": self.dof,
            "pvalue": self.pvalue,
            "noise_scale": self.noise_scale,
            "model_var_nm2": self.model_var,
            "model_scale_nm2": self.model_scale,
            "excess_fle_nm": self.excess_fle_nm,
        }


def _num(v, missing: float = float("nan")) -> float:
    """A stored number; JSON ``null`` (how the store writes NaN) -> ``missing``."""
    return missing if v is None else float(v)


def _prepare(source, target, source_cov, target_cov):
    x = np.atleast_2d(np.asarray(source, float))
    y = np.atleast_2d(np.asarray(target, float))
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] not in (2, 3):
        raise RegistrationError(
            f"source {x.shape} and target {y.shape} fiducials must both be (N, 2) or (N, 3)", field="landmarks"
        )
    n, d = x.shape
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise RegistrationError("fiducial positions contain NaN or inf", field="landmarks")

    def cov_of(c):
        if c is None:
            return np.zeros((n, d, d))
        c = np.asarray(c, float)
        if c.ndim == 0:
            return np.broadcast_to(c * np.eye(d), (n, d, d)).copy()
        if c.ndim == 1:
            return c[:, None, None] * np.eye(d)[None]
        if c.shape == (d, d):
            return np.broadcast_to(c, (n, d, d)).copy()
        if c.shape != (n, d, d):
            raise RegistrationError(f"covariance must be (N, D, D) = ({n}, {d}, {d}), got {c.shape}", field="cov")
        return c

    cx, cy = cov_of(source_cov), cov_of(target_cov)
    known = bool(np.any(cx != 0) or np.any(cy != 0))
    return x, y, cx, cy, known


def _chi2_sf(chi2: float, dof: float) -> float:
    from scipy.stats import chi2 as _c2

    if not np.isfinite(chi2) or dof < 1:  # an (almost) interpolating spline: no test possible
        return float("nan")
    return float(_c2.sf(chi2, dof))


def fit_model(
    source,
    target,
    model: str = "similarity",
    source_cov=None,
    target_cov=None,
    *,
    smoothing: float | str = "loo",
    noise_scale: float | None = None,
    check_reflection: bool = True,
    reflection: bool = False,
    max_iter: int = 30,
    excess_fle_nm: float | str = 0.0,
) -> Fit:
    """Fit ``model`` mapping moving ``source`` fiducials onto fixed ``target`` fiducials.

    Parameters
    ----------
    source, target
        (N, D) corresponding fiducial positions (nm), x, y[, z], D = 2 or 3.
    model
        ``"translation"``, ``"rigid"``, ``"similarity"``, ``"affine"`` or ``"tps"``.
    source_cov, target_cov
        Localisation covariance of each fiducial (nm^2): (N, D, D), (D, D), (N,) variances or a
        scalar. Both default to unknown: then unit weights are used and the noise level is
        estimated from the residuals (``noise_known=False``).
    smoothing
        TPS only: ``"loo"`` (leave-one-out choice, default), ``"gcv"`` or a number.
    noise_scale
        Multiply the stated covariances by this factor in the TRE prediction; default 1 (or the
        residual-based estimate when the covariances are unknown).
    check_reflection
        With ``reflection=False``: raise :class:`~correlate.errors.RegistrationError` if the pairs
        fit a mirror image (significantly better than any proper rotation); never silently fixed.
        ``check_reflection=False`` (refits of an already decided fit: leave-one-out, outlier
        flags) neither checks nor constrains: rigid/similarity take the handedness that fits best.
    reflection
        True when pairing found the frames mirrored: rigid/similarity are fitted as improper
        transforms (weighted Umeyama with det -1, then Gauss-Newton, which keeps the sign) and an
        affine fit may have det A < 0.
    excess_fle_nm
        Systematic per-fiducial error (per-axis standard deviation, nm, both sides combined)
        added as ``excess_fle_nm^2 I`` to every pair's covariance; ``"estimate"`` solves
        ``chi2/dof = 1`` on this model's own residuals (linear models; see
        :func:`~correlate.registration._excess.paule_mandel`). Default 0: the stated
        covariances as they are. With unknown covariances a number makes ``excess_fle_nm^2 I``
        the (known) noise.

    Returns
    -------
    Fit

    Raises
    ------
    RegistrationError
        Too few pairs, degenerate (collinear / coplanar) geometry, or a reflection.
    """
    x, y, cx, cy, known = _prepare(source, target, source_cov, target_cov)
    n, d = x.shape
    need = min_pairs(model, d)
    if n < need:
        raise RegistrationError(
            f"a {d}-D {model} fit needs at least {need} fiducial pairs, got {n}", field="landmarks"
        )
    from ._excess import excess_arg

    s2, estimate = excess_arg(excess_fle_nm, model, known)
    if not known and s2 > 0:
        cx, cy, known = np.zeros((n, d, d)), np.zeros((n, d, d)), True
    if not known:
        cx = np.zeros((n, d, d))
        cy = np.broadcast_to(np.eye(d), (n, d, d)).copy()
    if model == "tps":
        from ._excess import add_excess
        from ._tps import fit_tps

        fit = fit_tps(x, y, cx, add_excess(cy, s2), smoothing=smoothing, noise_known=known, noise_scale=noise_scale)
        fit.excess_fle_nm = float(np.sqrt(s2))
        return fit
    handed = True if reflection else (False if check_reflection else None)
    if estimate:
        from ._excess import paule_mandel

        s2, fit = paule_mandel(model, x, y, cx, cy, max_iter=max_iter, reflection=handed)
        fit.notes.append(f"excess fiducial error {np.sqrt(s2):.3g} nm per axis (chi2/dof = 1 on the {model} residuals)")
    else:
        from ._excess import add_excess

        fit = _fit_linear(model, x, y, cx, add_excess(cy, s2), max_iter=max_iter, reflection=handed)
    fit.excess_fle_nm = float(np.sqrt(s2))
    cy = cy + s2 * np.eye(d)
    if reflection and model in ("rigid", "similarity"):
        fit.notes.append(f"{model} fitted as a reflection (det A < 0): pairing found the frames mirrored")
    if check_reflection and not reflection and model in ("rigid", "similarity", "affine"):
        _check_reflection(model, x, y, cx, cy, fit, max_iter)
    if not known:
        s2 = fit.chi2 / fit.dof if fit.dof > 0 else float("nan")
        fit.noise_known = False
        fit.notes.append("fiducial covariances unknown: noise estimated from the residuals")
        if noise_scale is None:
            if not np.isfinite(s2):
                fit.notes.append("no residual degrees of freedom: TRE prediction not available")
                s2 = float("nan")
            noise_scale = s2
    if noise_scale is not None:
        fit.noise_scale = float(noise_scale)
        fit.param_cov = fit.param_cov * fit.noise_scale
    return fit


def _fit_linear(model, x, y, cx, cy, max_iter=30, reflection: bool | None = False) -> Fit:
    n, d = x.shape
    cyf = cy + _COV_FLOOR * np.eye(d)
    w = 1.0 / np.maximum(np.trace(cx + cyf, axis1=1, axis2=2) / d, 1e-12)
    c = _weighted_centroid(x, w)
    a, t, _ = _closed_form(model, x, y, w, c, reflection)
    p = n_params(model, d)
    for _ in range(max_iter):
        cres = cyf + np.einsum("ij,njk,lk->nil", a, cx, a)
        wm = np.linalg.inv(cres)
        r = y - ((x - c) @ a.T + t)
        j = model_jacobian(model, a, c, x)
        nm = np.einsum("nip,nij,njq->pq", j, wm, j)
        g = np.einsum("nip,nij,nj->p", j, wm, r)
        try:
            delta = np.linalg.solve(nm, g)
        except np.linalg.LinAlgError:
            delta = np.linalg.lstsq(nm, g, rcond=None)[0]
        if not np.all(np.isfinite(delta)):
            break
        if model in ("rigid", "similarity"):  # keep Gauss-Newton steps in the linear regime
            k = p - d
            delta[:k] = np.clip(delta[:k], -0.5, 0.5)
        a, t = _update(model, a, t, delta)
        scale = np.concatenate([np.full(p - d, 1.0), np.full(d, 1e-3)])
        if np.all(np.abs(delta) * scale < 1e-12):
            break
    cres = cyf + np.einsum("ij,njk,lk->nil", a, cx, a)
    wm = np.linalg.inv(cres)
    r = y - ((x - c) @ a.T + t)
    j = model_jacobian(model, a, c, x)
    nm = np.einsum("nip,nij,njq->pq", j, wm, j)
    dg = np.sqrt(np.abs(np.diag(nm)))
    if np.any(dg == 0):
        cond = np.inf
    else:
        cond = np.linalg.cond(nm / np.outer(dg, dg))
    if not np.isfinite(cond) or cond > 1e10:
        shape = "collinear" if d == 2 or model != "affine" else "coplanar"
        raise RegistrationError(
            f"the {d}-D {model} fit is undetermined: the {n} fiducials are {shape} or coincident "
            f"(condition number {cond:.3g})",
            field="landmarks",
        )
    pcov = np.linalg.inv(nm)
    pcov = 0.5 * (pcov + pcov.T)
    chi2 = float(np.einsum("ni,nij,nj->", r, wm, r))
    dof = n * d - p
    tr = Affine.from_parts(a, t - a @ c)
    return Fit(
        model=model,
        transform=tr,
        ndim=d,
        center=c,
        linear=a,
        param_cov=pcov,
        source=x,
        target=y,
        res_cov=cres,
        residuals=r,
        chi2=chi2,
        dof=float(dof),
        pvalue=_chi2_sf(chi2, dof),
    )


def _check_reflection(model, x, y, cx, cy, fit: Fit, max_iter: int) -> None:
    d = x.shape[1]
    if model == "affine":
        det = np.linalg.det(fit.linear)
        if det < 0:
            raise RegistrationError(
                f"the affine fit of {len(x)} fiducial pairs is a reflection (det A = {det:.3g} < 0): one "
                "image is mirrored relative to the other; flip it explicitly (e.g. a Scale(-1, 1) "
                "transform) before registering",
                field="landmarks",
            )
        return
    flip = np.ones(d)
    flip[0] = -1
    try:
        mirrored = _fit_linear(model, x * flip, y, cx * np.outer(flip, flip), cy, max_iter)
    except RegistrationError:
        return
    # A mirrored fit that explains the data much better than any proper rotation: a reflection.
    thresh = max(25.0, 0.5 * fit.chi2)
    if mirrored.chi2 + thresh < fit.chi2 and mirrored.chi2 < 0.1 * fit.chi2:
        raise RegistrationError(
            f"the {len(x)} fiducial pairs match only as a mirror image (chi-square {mirrored.chi2:.3g} "
            f"mirrored vs {fit.chi2:.3g} for the best proper {model} transform): one image is "
            "reflected; flip it explicitly before registering",
            field="landmarks",
        )
