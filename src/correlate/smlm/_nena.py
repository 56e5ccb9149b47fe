"""NeNA: localization precision from nearest neighbours in adjacent frames (Endesfelder 2014)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["NenaResult", "adjacent_frame_distances", "nena"]


@dataclass
class NenaResult:
    """Result of :func:`nena`.

    Attributes
    ----------
    precision_nm
        Fitted localization precision sigma (nm, per axis).
    precision_err_nm
        Its standard error (nm) from the curvature of the likelihood.
    fraction_same
        Fitted fraction of distances that are pairs of the same molecule (the rest is background).
    n_distances
        Number of adjacent-frame nearest-neighbour distances used.
    bin_edges, counts, model
        Histogram of distances (nm), counts, and the fitted model's expected counts per bin.
    radius_nm
        Largest distance considered.
    """

    precision_nm: float
    precision_err_nm: float
    fraction_same: float
    n_distances: int
    radius_nm: float
    bin_edges: np.ndarray
    counts: np.ndarray
    model: np.ndarray

    def as_dict(self) -> dict:
        return {
            "nena_precision_nm": self.precision_nm,
            "nena_precision_err_nm": self.precision_err_nm,
            "nena_fraction_same": self.fraction_same,
            "nena_n_distances": self.n_distances,
        }


def adjacent_frame_distances(
    xy: np.ndarray, frame: np.ndarray, radius: float
) -> np.ndarray:
    """Distance (nm) from each localization to its nearest neighbour in the next frame.

    One KD-tree over all localizations with frames shifted back by one and stacked along an
    extra axis far apart, one query: no loop over frames. Localizations without a neighbour
    within ``radius`` are dropped.
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, float)
    frame = np.asarray(frame, np.int64)
    if len(frame) == 0:
        return np.zeros(0)
    sep = 2.0 * radius + 1.0  # frames lie this far apart along the extra axis (> radius)
    f0 = (frame - frame.min()).astype(float)
    tree = cKDTree(np.column_stack([xy, (f0 - 1.0) * sep]))
    d, _ = tree.query(np.column_stack([xy, f0 * sep]), k=1, distance_upper_bound=radius)
    return d[np.isfinite(d)]


def _cdf_rayleigh(r, s):
    # distance between two localizations, each N(0, sigma^2) per axis: Rayleigh with scale sigma*sqrt(2)
    return 1.0 - np.exp(-(r * r) / (4.0 * s * s))


def nena(
    df: pd.DataFrame,
    *,
    radius: float | None = None,
    bin_width: float | None = None,
    exclude_fiducials: bool = True,
) -> NenaResult:
    """Localization precision by NeNA (nearest neighbour in adjacent frames).

    For each localization in frame f, the nearest localization in frame f+1 is found. Pairs from
    the same molecule are at a distance whose distribution is Rayleigh with scale
    ``sigma * sqrt(2)``: ``p(d) = d / (2 sigma^2) exp(-d^2 / (4 sigma^2))``; pairs from different
    molecules add a background that grows linearly with ``d``. Both are fitted to the
    histogram of distances by maximum likelihood (binned, truncated at ``radius``).

    Parameters
    ----------
    df
        Localizations with x, y (nm) and frame.
    radius
        Largest distance considered (nm). Default: 20 x the median ``precision`` (60-500 nm), else 150.
    bin_width
        Histogram bin width (nm). Default radius / 150.
    exclude_fiducials
        Drop persistent emitters (fiducials; found as for drift correction) first, since they are
        far more precise than the sample's fluorophores and on in every frame.

    Returns
    -------
    NenaResult
        ``precision_nm`` is the sigma per axis.

    Raises
    ------
    CorrelateError
        Too few adjacent-frame pairs (< 100) or a fit that does not converge.
    """
    from scipy.optimize import minimize

    if "frame" not in df.columns:
        raise CorrelateError("NeNA needs a 'frame' column", field="frame")
    if exclude_fiducials and len(df):
        from ._fiducials import fiducial_mask

        try:
            df = df.loc[~fiducial_mask(df)]
        except CorrelateError:
            pass
    if radius is None:
        if "precision" in df.columns and len(df):
            radius = float(np.clip(20.0 * np.nanmedian(df["precision"].to_numpy(float)), 60.0, 500.0))
        else:
            radius = 150.0
    d = adjacent_frame_distances(df[["x", "y"]].to_numpy(float), df["frame"].to_numpy(), radius)
    if d.size < 100:
        raise CorrelateError(
            f"NeNA needs at least 100 nearest-neighbour pairs in adjacent frames within {radius:.0f} nm, "
            f"found {d.size}",
            field="frame",
        )
    bw = radius / 150.0 if bin_width is None else float(bin_width)
    edges = np.arange(0.0, radius + bw * 0.5, bw)
    edges[-1] = radius
    counts, _ = np.histogram(d, edges)
    lo, hi = edges[:-1], edges[1:]

    def probs(theta):
        s, logit = theta
        s = np.exp(s)
        w = 1.0 / (1.0 + np.exp(-logit))
        same = (_cdf_rayleigh(hi, s) - _cdf_rayleigh(lo, s)) / _cdf_rayleigh(radius, s)
        bg = (hi**2 - lo**2) / radius**2
        return w * same + (1 - w) * bg

    def nll(theta):
        p = np.clip(probs(theta), 1e-300, None)
        return -np.sum(counts * np.log(p))

    s0 = np.median(d) / (2.0 * np.sqrt(np.log(2.0)))  # median of the Rayleigh(sigma*sqrt 2)
    best = None
    for s_init in (s0, 0.5 * s0, 0.25 * s0):
        res = minimize(nll, x0=[np.log(max(s_init, bw)), 1.0], method="Nelder-Mead",
                       options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    ls, logit = best.x
    sigma = float(np.exp(ls))
    if not np.isfinite(sigma) or sigma <= 0 or sigma > radius / 2:
        raise CorrelateError(f"NeNA fit did not converge (sigma {sigma!r} nm for radius {radius} nm)")
    # standard error from the numerical curvature in log-sigma
    h = 1e-3
    f0 = nll(best.x)
    curv = (nll([ls + h, logit]) - 2 * f0 + nll([ls - h, logit])) / h**2
    err = float(sigma / np.sqrt(curv)) if curv > 0 else float("nan")
    model = probs(best.x) * counts.sum()
    return NenaResult(
        precision_nm=sigma,
        precision_err_nm=err,
        fraction_same=float(1.0 / (1.0 + np.exp(-logit))),
        n_distances=int(d.size),
        radius_nm=float(radius),
        bin_edges=edges,
        counts=counts,
        model=model,
    )
