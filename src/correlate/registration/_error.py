"""Registration error: leave-one-out error and predicted-TRE maps (nm)."""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ._containment import containment_radius
from ._fit import fit_model
from ._models import min_pairs, model_jacobian
from ._tps import tps_loo_residuals

__all__ = ["containment_radius", "grid_points", "loo_residuals", "tre_map"]


def loo_residuals(fit, *, exact: bool = False) -> np.ndarray:
    """Leave-one-out error vectors (N, D) in nm: ``y_i - T_(-i)(x_i)``, each pair left out in turn.

    A TPS uses the exact linear-smoother identity at its chosen smoothing. A linear model uses
    the block deletion identity of weighted least squares at the fit's weights,
    ``e_i = (I - H_ii)^-1 r_i`` with ``H_ii = J_i N^-1 J_i^T W_i`` (``J`` the model Jacobian,
    ``N`` the normal matrix, ``W_i`` the inverse residual covariance): exact for translation and
    affine, first order in the left-out pair's pull on the rotation for rigid and similarity
    (which at nm residuals over um fields is far below the residuals). ``exact=True`` refits
    the model without each pair instead. A pair whose removal leaves the model undetermined
    gets NaN.
    """
    x, y = fit.source, fit.target
    n, d = x.shape
    if fit.model == "tps":
        e, _ = tps_loo_residuals(x, y, fit.tps["smoothing"], fit.tps["weights"])
        return e
    if n - 1 < min_pairs(fit.model, fit.ndim):
        return np.full_like(x, np.nan)
    out = np.full_like(x, np.nan)
    cres = fit.res_cov
    if not exact:
        j = model_jacobian(fit.model, fit.linear, fit.center, x)
        wm = np.linalg.inv(cres)
        nm = np.einsum("nip,nij,njq->pq", j, wm, j)
        try:
            ninv = np.linalg.inv(nm)
        except np.linalg.LinAlgError:
            return out
        h = np.einsum("nip,pq,nkq,nkj->nij", j, ninv, j, wm)
        m = np.eye(d) - h
        ok = np.linalg.cond(m) < 1e8  # leverage ~1: the model is undetermined without the pair
        out[ok] = np.linalg.solve(m[ok], fit.residuals[ok][..., None])[..., 0]
        return out
    for i in range(n):
        keep = np.arange(n) != i
        try:
            f = fit_model(x[keep], y[keep], fit.model, None, cres[keep], check_reflection=False, noise_scale=1.0)
        except RegistrationError:
            continue
        out[i] = y[i] - f.transform.apply(x[i : i + 1])[0]
    return out


def grid_points(origin, spacing, shape) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pixel-centre positions (N, D) x, y[, z] of a grid (origin, spacing nm and shape in x, y[, z])."""
    axes = [origin[i] + spacing[i] * np.arange(shape[i]) for i in range(len(shape))]
    g = np.meshgrid(*axes[::-1], indexing="ij")
    pts = np.column_stack([a.ravel() for a in g[::-1]])
    return pts, axes


def tre_map(fit, like=None, *, origin=None, spacing=None, shape=None, frame: str = "fixed",
            stat: str = "rms", level: float = 0.95, target_cov=None, max_size: int = 256):
    """Predicted TRE as an image (xarray, nm values, nm coordinates).

    Parameters
    ----------
    fit
        A :class:`~correlate.registration.Fit` (moving -> fixed).
    like
        An Image whose x, y extent defines the grid (sub-sampled to at most ``max_size`` pixels
        per axis); or give ``origin``, ``spacing``, ``shape`` (x, y order, nm).
    frame
        ``"fixed"``: grid positions are in the fixed frame (mapped back to the moving frame to
        evaluate); ``"moving"``: in the moving frame.
    stat
        ``"rms"`` (``sqrt(trace Sigma)``) or ``"radius"`` (containment radius at ``level``).

    Returns
    -------
    xarray.DataArray
        dims (y, x), coordinates in nm, attrs ``value_unit="nm"``, ``stat``, ``model``.
    """
    import xarray as xr

    if like is not None:
        xs = np.asarray(like.coords["x"].values, float)
        ys = np.asarray(like.coords["y"].values, float)
        step = max(1, int(np.ceil(max(len(xs), len(ys)) / max_size)))
        xs, ys = xs[::step], ys[::step]
        origin = (xs[0], ys[0])
        spacing = (xs[1] - xs[0] if len(xs) > 1 else 1.0, ys[1] - ys[0] if len(ys) > 1 else 1.0)
        shape = (len(xs), len(ys))
    if origin is None or spacing is None or shape is None:
        raise RegistrationError("tre_map needs an image or origin, spacing and shape", field="grid")
    pts, axes = grid_points(origin, spacing, shape)
    if fit.ndim == 3:
        pts = np.column_stack([pts, np.full(len(pts), fit.center[2])])
    src = fit.transform.inverse().apply(pts) if frame == "fixed" else pts
    cov = fit.tre_cov(src, target_cov)
    if stat == "rms":
        val = np.sqrt(np.trace(cov, axis1=1, axis2=2))
    elif stat == "radius":
        val = containment_radius(cov, level)
    else:
        raise RegistrationError(f"stat must be 'rms' or 'radius', got {stat!r}", field="stat")
    img = val.reshape(shape[1], shape[0])
    return xr.DataArray(
        img,
        dims=("y", "x"),
        coords={"y": ("y", axes[1], {"units": "nm"}), "x": ("x", axes[0], {"units": "nm"})},
        name="predicted_tre",
        attrs={"value_unit": "nm", "stat": stat, "level": level, "model": fit.model, "frame": frame},
    )
