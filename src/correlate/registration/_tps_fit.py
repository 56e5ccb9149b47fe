"""The smoothing thin-plate spline fit of paired fiducials and the choice of its smoothing."""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ._fit_result import Fit
from ._linear_fit import _COV_FLOOR, _chi2_sf, _fit_linear
from ._tps import _basis, _frame, _lam_u, _system_inverse, _to_spline, tps_smoother

__all__ = ["fit_tps"]


def fit_tps(x, y, cx, cy, *, smoothing="loo", noise_known=True, noise_scale=None):
    """Fit a smoothing thin-plate spline (see :func:`~correlate.registration.fit_model`)."""
    n, d = x.shape
    lin = _fit_linear("affine", x, y, cx, cy)
    a = lin.linear
    cres = cy + _COV_FLOOR * np.eye(d) + np.einsum("ij,njk,lk->nil", a, cx, a)
    var = np.trace(cres, axis1=1, axis2=2) / d
    w = (1.0 / var) / np.mean(1.0 / var)
    x0, L = _frame(x)
    u = (x - x0) / L
    notes = []
    if isinstance(smoothing, str):
        if smoothing not in ("loo", "gcv"):
            raise RegistrationError(f"smoothing must be 'loo', 'gcv' or a number, got {smoothing!r}", field="smoothing")
        grid = np.logspace(-7, 3, 41)
        wm = np.linalg.inv(cres)
        best = (np.inf, None)
        for lam in grid:
            inv = _system_inverse(u, lam, w)
            h = _basis(u, u) @ inv
            r = y - h @ y
            if smoothing == "loo":
                hii = np.diag(h)
                if np.any(hii > 1 - 1e-9):
                    continue
                e = r / (1 - hii)[:, None]
                score = float(np.einsum("ni,nij,nj->", e, wm, e))
            else:
                tr = np.trace(h)
                score = n * float(np.einsum("ni,nij,nj->", r, wm, r)) / max(n - tr, 1e-9) ** 2
            if score < best[0]:
                best = (score, lam)
        if best[1] is None:
            raise RegistrationError("could not choose a TPS smoothing (every fold degenerate)", field="smoothing")
        lam_u = best[1]
        notes.append(f"TPS smoothing chosen by {smoothing} (lambda_u = {lam_u:.3g})")
    else:
        lam_u = _lam_u(float(smoothing), L, d)
    tps = _to_spline(x, y, lam_u, w)
    h = tps_smoother(x, tps.smoothing, w, x)
    r = y - tps.apply(x)
    wm = np.linalg.inv(cres)
    chi2 = float(np.einsum("ni,nij,nj->", r, wm, r))
    dof = float(n * d - d * np.trace(h))
    fit = Fit(
        model="tps",
        transform=tps,
        ndim=d,
        center=lin.center,
        linear=tps.affine[:, :d].copy(),
        param_cov=None,
        source=x,
        target=y,
        res_cov=cres,
        residuals=r,
        chi2=chi2,
        dof=dof,
        pvalue=_chi2_sf(chi2, dof),
        tps={"smoothing": tps.smoothing, "weights": w},
        notes=notes,
        noise_known=noise_known,
    )
    if not noise_known and noise_scale is None:
        # as _chi2_sf: below one residual degree of freedom chi2/dof is no estimate of the noise
        noise_scale = chi2 / dof if dof >= 1 else float("nan")
        if not np.isfinite(noise_scale):
            fit.notes.append("fewer than 1 residual degree of freedom: noise level (and TRE) not available")
    if noise_scale is not None:
        fit.noise_scale = float(noise_scale)
    return fit
