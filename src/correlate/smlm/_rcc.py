"""Drift by redundant cross-correlation (RCC) of time-binned renderings (Wang et al. 2014 idea)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._drift_trace import Drift

__all__ = ["drift_rcc"]


def _peak_subpixel(win: np.ndarray) -> tuple[float, float, float]:
    """Sub-pixel peak of a 2-D map: least-squares quadratic fit to log values in a 5x5 patch.

    Returns (dy, dx, snr) in pixels relative to the window centre and the peak height over the
    window's robust noise.
    """
    h, w = win.shape
    cy, cx = h // 2, w // 2
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    base = float(np.median(win))
    noise = 1.4826 * float(np.median(np.abs(win - base))) + 1e-12
    snr = (float(win[iy, ix]) - base) / noise
    r = 2
    y0, y1 = max(iy - r, 0), min(iy + r + 1, h)
    x0, x1 = max(ix - r, 0), min(ix + r + 1, w)
    patch = win[y0:y1, x0:x1] - base
    yy, xx = np.mgrid[y0:y1, x0:x1]
    m = patch > 0.05 * patch.max()
    if m.sum() < 6:
        return float(iy - cy), float(ix - cx), snr
    v = np.log(patch[m])
    wts = patch[m]  # weight by value: log of small values is noisy
    dy = (yy[m] - iy).astype(float)
    dx = (xx[m] - ix).astype(float)
    a = np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy]) * wts[:, None]
    coef, *_ = np.linalg.lstsq(a, v * wts, rcond=None)
    _, bx, by, cxx, cyy, cxy = coef
    hess = np.array([[2 * cxx, cxy], [cxy, 2 * cyy]])
    if np.all(np.linalg.eigvalsh(hess) < 0):
        off = np.linalg.solve(hess, -np.array([bx, by]))
        if np.all(np.abs(off) <= 1.5):
            return float(iy - cy + off[1]), float(ix - cx + off[0]), snr
    return float(iy - cy), float(ix - cx), snr


def drift_rcc(
    df: pd.DataFrame,
    *,
    n_bins: int | None = None,
    pixel_size: float | None = None,
    max_drift: float = 500.0,
    min_locs_per_bin: int = 1000,
    min_snr: float = 6.0,
    outlier_px: float | None = None,
    exclude_fiducials: bool = False,
    max_pixels: int = 1024,
) -> Drift:
    """Drift by redundant cross-correlation of time-binned renderings (2-D: x, y).

    The acquisition is cut into ``n_bins`` time bins holding equal numbers of localizations;
    each is rendered as a histogram; every pair of bins is cross-correlated by FFT; the peak
    near zero shift is located to sub-pixel precision; the overdetermined system
    ``d_j - d_i = r_ij`` is solved by least squares with iterative rejection of pairs whose
    residual is large; the bin drifts are interpolated per frame by a cubic spline through the
    bins' mean frames.

    Parameters
    ----------
    df
        Localizations (x, y nm; frame).
    n_bins
        Number of time bins. Default: ``min(20, N // (1.25 min_locs_per_bin))``, at least 3.
    pixel_size
        Rendering pixel (nm). Default ``clip(median precision, 5, 20)``, enlarged so the
        rendering is at most ``max_pixels`` across (cost grows with bins^2 x pixels).
    max_drift
        Largest drift (nm) between any two bins that is searched for.
    min_locs_per_bin
        Fewer localizations in a bin than this is an error (not a silent zero drift).
    min_snr
        Cross-correlation peaks lower than this (peak over the robust noise of the search window)
        are flat: such pairs are dropped, and a bin left without valid pairs is an error.
    outlier_px
        Residual (pixels) beyond which a pair is rejected; default ``max(1, 4 robust sigma)``.
    exclude_fiducials
        Leave out persistent emitters (the correlation is then of the sample only).

    Returns
    -------
    Drift
        ``points_*`` hold the per-bin estimates; ``uncertainty`` per frame comes from the
        least-squares covariance, interpolated.

    Raises
    ------
    CorrelateError
        Too few localizations per bin, flat correlation peaks, or a system that the remaining
        pairs cannot determine.
    """
    if "frame" not in df.columns:
        raise CorrelateError("RCC drift needs a 'frame' column", field="frame")
    if exclude_fiducials:
        from ._fiducials import fiducial_mask

        df = df.loc[~fiducial_mask(df)]
    n = len(df)
    if n_bins is None:
        n_bins = int(min(20, n // max(1.25 * min_locs_per_bin, 1)))
    if n_bins < 3:
        raise CorrelateError(
            f"RCC needs at least 3 time bins of >= {min_locs_per_bin} localizations; there are only "
            f"{n} localizations (lower min_locs_per_bin only if the structures are dense)",
            field="frame",
        )
    frame = df["frame"].to_numpy(np.int64)
    xy = df[["x", "y"]].to_numpy(float)
    order, cuts, sizes, centres = _time_bins(frame, n_bins, min_locs_per_bin)
    n_bins = len(sizes)
    lo, pixel_size, shape = _rendering_grid(df, xy, pixel_size, max_drift, max_pixels)
    pi, pj, r, snr, at_edge = _pair_shifts(xy, order, cuts, lo, pixel_size, shape, max_drift)
    valid = snr >= min_snr
    if at_edge.sum() > len(snr) // 2:
        raise CorrelateError(
            f"RCC correlation peaks of {int(at_edge.sum())} of {len(snr)} bin pairs lie at the edge of the "
            f"+-{max_drift:g} nm search window: the drift is larger than max_drift; increase it",
            field="frame",
        )
    if not valid.any():
        raise CorrelateError(
            f"RCC cross-correlation peaks are flat (best peak {snr.max():.1f} x noise, need {min_snr}); "
            "the structure does not repeat between time bins: too sparse or too few localizations per bin",
            field="frame",
        )
    d, valid, res, bin_err = _solve_pairs(pi, pj, r, snr, valid, n_bins, min_snr, outlier_px, pixel_size)
    frames_all, vals, mean = _per_frame(centres, d, frame)
    unc = np.interp(frames_all, centres, bin_err)
    return Drift(
        frames=frames_all,
        values=vals,
        uncertainty=unc,
        method="rcc",
        points_frames=centres,
        points_values=d - mean,
        points_weights=None,
        info={
            "n_bins": n_bins,
            "pixel_size_nm": float(pixel_size),
            "n_pairs": len(pi),
            "n_pairs_used": int(valid.sum()),
            "n_pairs_flat": int((snr < min_snr).sum()),
            "pair_residual_rms_nm": float(np.sqrt(np.mean(res[valid] ** 2))),
            "min_peak_snr": float(snr.min()),
            "locs_per_bin_min": int(sizes.min()),
        },
    )


def _time_bins(frame: np.ndarray, n_bins: int, min_locs_per_bin: int):
    """Equal-count time bins cut between frames (one frame never spans two bins).

    Returns (order, cuts, sizes, centres): the frame sort order, bin boundaries into it, the
    localizations per bin and each bin's mean frame.
    """
    n = len(frame)
    order = np.argsort(frame, kind="stable")
    cuts = np.searchsorted(frame[order], frame[order][np.linspace(0, n, n_bins + 1).astype(int)[1:-1]], side="left")
    cuts = np.unique(np.concatenate([[0], cuts, [n]]))
    if len(cuts) - 1 < 3:
        raise CorrelateError(f"only {len(cuts) - 1} distinct time bins can be formed (too few frames)", field="frame")
    n_bins = len(cuts) - 1
    sizes = np.diff(cuts)
    if sizes.min() < min_locs_per_bin:
        raise CorrelateError(
            f"time bin {int(np.argmin(sizes))} holds {int(sizes.min())} localizations, fewer than "
            f"min_locs_per_bin={min_locs_per_bin}; use fewer bins",
            field="frame",
        )
    bin_of = np.empty(n, np.int64)
    for b in range(n_bins):
        bin_of[order[cuts[b]:cuts[b + 1]]] = b
    centres = np.bincount(bin_of, frame.astype(float), n_bins) / sizes
    return order, cuts, sizes, centres


def _rendering_grid(df: pd.DataFrame, xy: np.ndarray, pixel_size: float | None, max_drift: float, max_pixels: int):
    """(lower corner nm, pixel nm, (ny, nx)) of the histogram every time bin is rendered on."""
    import scipy.fft as sfft

    lo = xy.min(0) - max_drift
    hi = xy.max(0) + max_drift
    if pixel_size is None:
        if "precision" in df.columns:
            pixel_size = float(np.clip(np.nanmedian(df["precision"].to_numpy(float)), 5.0, 20.0))
        else:
            pixel_size = 10.0
        pixel_size = max(pixel_size, float((hi - lo).max()) / max_pixels)
    shape = tuple(sfft.next_fast_len(int(v), real=True) for v in np.ceil((hi - lo) / pixel_size)[::-1])  # (ny, nx)
    return lo, pixel_size, shape


def _pair_shifts(xy, order, cuts, lo, pixel_size: float, shape, max_drift: float):
    """Cross-correlate every pair of time-bin renderings and locate the peak near zero shift.

    Returns (i, j, shift (P, 2) nm as x, y, snr, at_edge) per bin pair ``i < j``; a peak on the
    border of the search window gets snr 0.
    """
    import scipy.fft as sfft
    from scipy.ndimage import gaussian_filter

    n_bins = len(cuts) - 1
    iy = np.clip(((xy[:, 1] - lo[1]) / pixel_size).astype(np.int64), 0, shape[0] - 1)
    ix = np.clip(((xy[:, 0] - lo[0]) / pixel_size).astype(np.int64), 0, shape[1] - 1)
    flat = iy * shape[1] + ix
    ffts = []
    for b in range(n_bins):
        sel = order[cuts[b]:cuts[b + 1]]
        img = np.bincount(flat[sel], minlength=shape[0] * shape[1]).astype(np.float32).reshape(shape)
        ffts.append(sfft.rfft2(img))
    wr = int(np.ceil(max_drift / pixel_size))
    wr = min(wr, shape[0] // 2 - 3, shape[1] // 2 - 3)
    idx_y = np.arange(-wr, wr + 1) % shape[0]
    idx_x = np.arange(-wr, wr + 1) % shape[1]
    pairs_i, pairs_j, meas, snrs, edge = [], [], [], [], []
    for i in range(n_bins):
        for j in range(i + 1, n_bins):
            cc = sfft.irfft2(ffts[j] * np.conj(ffts[i]), s=shape)
            win = cc[np.ix_(idx_y, idx_x)].astype(float)
            win = gaussian_filter(win, 1.0)
            dy, dx, snr = _peak_subpixel(win)
            edge.append(max(abs(dy), abs(dx)) > wr - 2)
            pairs_i.append(i)
            pairs_j.append(j)
            meas.append((dx * pixel_size, dy * pixel_size))
            snrs.append(snr)
    del ffts
    at_edge = np.asarray(edge)
    snr = np.where(at_edge, 0.0, np.asarray(snrs))  # a peak on the border of the search window is not a peak
    return np.asarray(pairs_i), np.asarray(pairs_j), np.asarray(meas), snr, at_edge


def _pair_matrix(pi: np.ndarray, pj: np.ndarray, valid: np.ndarray, n_bins: int) -> np.ndarray:
    """Design matrix of ``d_j - d_i = r_ij`` over the valid pairs."""
    a = np.zeros((int(valid.sum()), n_bins))
    a[np.arange(a.shape[0]), pj[valid]] = 1.0
    a[np.arange(a.shape[0]), pi[valid]] = -1.0
    return a


def _solve_pairs(pi, pj, r, snr, valid, n_bins: int, min_snr: float, outlier_px: float | None, pixel_size: float):
    """Least-squares bin drifts from the pair shifts, rejecting the worst pair while it is an outlier.

    Returns (d (B, 2) nm, valid pairs, pair residuals nm, per-bin standard error nm).
    """
    thr_px = outlier_px
    d = None
    for _ in range(10):
        a = _pair_matrix(pi, pj, valid, n_bins)
        # fix the gauge: zero-sum drift over bins (added as one more equation)
        a_full = np.vstack([a, np.ones((1, n_bins))])
        if np.linalg.matrix_rank(a) < n_bins - 1:
            missing = sorted(set(range(n_bins)) - set(pi[valid]) - set(pj[valid]))
            raise CorrelateError(
                f"RCC cannot determine the drift: after dropping flat or inconsistent correlation peaks "
                f"the bins are not all linked (bins without a valid pair: {missing}); "
                "too few localizations per bin or too sparse structure",
                field="frame",
            )
        b_full = np.vstack([r[valid], np.zeros((1, 2))])
        d, *_ = np.linalg.lstsq(a_full, b_full, rcond=None)
        res = np.linalg.norm(r - (d[pj] - d[pi]), axis=1)
        sig = 1.4826 * np.median(res[valid]) + 1e-9
        thr = (thr_px * pixel_size) if thr_px is not None else max(pixel_size, 4.0 * sig)
        new_valid = (snr >= min_snr) & (res <= thr)
        if np.array_equal(new_valid, valid):
            break
        # never drop below a connected system: drop only the worst pair per iteration
        worst = np.argmax(np.where(valid, res, -1.0))
        if res[worst] <= thr:
            break
        valid = valid.copy()
        valid[worst] = False
    a = _pair_matrix(pi, pj, valid, n_bins)
    res = np.linalg.norm(r - (d[pj] - d[pi]), axis=1)
    dof = max(int(valid.sum()) - (n_bins - 1), 1)
    s2 = float(np.sum(res[valid] ** 2) / (2 * dof))  # per-axis variance of one pair measurement
    cov = np.linalg.pinv(a.T @ a) * s2
    bin_err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return d, valid, res, bin_err


def _per_frame(centres: np.ndarray, d: np.ndarray, frame: np.ndarray):
    """Bin drifts interpolated per frame (cubic spline, linear beyond the first and last bin),
    zero mean. Returns (frames, values (F, 2) nm, the mean that was removed)."""
    from scipy.interpolate import CubicSpline

    n_bins = len(centres)
    f0, f1 = int(frame.min()), int(frame.max())
    frames_all = np.arange(f0, f1 + 1)
    vals = np.zeros((len(frames_all), 2))
    for c in range(2):
        cs = CubicSpline(centres, d[:, c], bc_type="not-a-knot" if n_bins >= 4 else "natural")
        v = cs(frames_all.astype(float))
        # linear (not cubic) extrapolation beyond the first and last bin centres
        left = frames_all < centres[0]
        right = frames_all > centres[-1]
        v[left] = cs(centres[0]) + cs(centres[0], 1) * (frames_all[left] - centres[0])
        v[right] = cs(centres[-1]) + cs(centres[-1], 1) * (frames_all[right] - centres[-1])
        vals[:, c] = v
    mean = vals.mean(0)
    vals -= mean
    return frames_all, vals, mean
