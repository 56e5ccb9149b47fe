"""The outcome of a point-based fit, :class:`Fit`: the transform and its error model.

The predicted target registration error is first-order covariance propagation through the
fitted parameters (linear models) or the spline's smoother (TPS), plus the model-error terms
the calibration sets (:mod:`correlate.registration._calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..transforms import Transform, from_ngff
from ._containment import containment_radius
from ._deformation import affine_kriging_var
from ._models import model_jacobian
from ._tps import tps_kriging_var

__all__ = ["Fit"]


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
        deformation (:func:`~correlate.registration._deformation.affine_kriging_var`), ``theta`` the
        REML estimate of :func:`~correlate.registration._deformation.deformation_reml` (a deformation
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
            s, kap = tps_kriging_var(self.source, self.tps["smoothing"], self.tps["weights"], p)
            cov = np.einsum("mn,nij->mij", s**2, self.res_cov) * self.noise_scale
            if self.model_scale > 0:
                cov = cov + (self.model_scale * kap)[:, None, None] * np.eye(self.ndim)
        else:
            j = model_jacobian(self.model, self.linear, self.center, p)
            cov = np.einsum("mip,pq,mjq->mij", j, self.param_cov, j)
            if self.model_scale > 0:
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
