"""Sub-pixel fits of blob candidates on the pyramid level that suits their width, and the
fiducial population among them (one polarity at a time)."""

from __future__ import annotations

import numpy as np

from ._gaussfit import fit_gaussians
from ._population import contrast_score, gap_split, size_mode
from ._scalespace import Candidates, level_for_sigma, suppress

__all__ = ["fit_candidates", "select_fiducials"]

_FIT_LEVEL_LO = 2.0  # fit where the blob is 2-4 pixels wide on the level (level 0 below that)


def fit_candidates(levels: list[np.ndarray], cand: Candidates, sign: float, noise: str = "white",
                   min_snr: float | None = None) -> dict:
    """Fit every candidate (full-image pixel units) on its level; return full-image pixel results.

    With ``min_snr``, a second pass refits each candidate with the pixels of the other
    significant blobs (fitted in the first pass) left out of its window.

    Keys: ``x, y`` (px), ``cov`` (K, 2, 2) px^2, ``amp, amp_err, peak, peak_err, bg, noise`` (data
    units, sign-corrected: amplitude and peak > 0 for the requested polarity; ``bg`` as in the
    image), ``sigma`` (px, corrected for pixel integration), ``sigma_err``, ``ok``.
    """
    k = len(cand)
    out = {n: np.full(k, np.nan) for n in ("x", "y", "amp", "amp_err", "peak", "peak_err", "bg", "noise", "sigma", "sigma_err")}
    out["cov"] = np.full((k, 2, 2), np.nan)
    out["ok"] = np.zeros(k, bool)
    if k == 0:
        return out
    _fit_pass(levels, cand, np.arange(k), sign, noise, out, None)
    if min_snr is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            gi = np.nonzero(out["ok"] & (out["amp"] / out["amp_err"] >= min_snr))[0]
        # several candidates may converge on one blob (or on parts of a large one): keep the
        # strongest scale-space response of each, over the blob's extent (~2 fitted widths)
        keep = suppress(out["y"][gi], out["x"][gi], 2.0 * out["sigma"][gi], cand.strength[gi])
        out["ok"][gi[~keep]] = False
        gi = gi[keep]
        discs = np.column_stack([out["x"][gi], out["y"][gi], 2.0 * out["sigma"][gi] + 1.0])
        if len(discs) > 1:
            _fit_pass(levels, cand, gi, sign, noise, out, discs)
    return out


def _fit_pass(levels, cand, which, sign, noise, out, discs):
    cand = cand.take(which)
    lv = level_for_sigma(cand.sigma, lo=_FIT_LEVEL_LO, n_levels=len(levels))
    b = (2.0**lv)
    sb = cand.sigma / b
    half = np.maximum(3, np.ceil(3.0 * sb).astype(int) + 1)
    for key in np.unique(lv * 1000 + half):
        f, hw = divmod(int(key), 1000)
        idx = np.nonzero((lv == f) & (half == hw))[0]
        lev = levels[f]
        bf = 2.0**f
        rows = np.rint((cand.y[idx] - 0.5 * (bf - 1)) / bf).astype(np.int64)
        cols = np.rint((cand.x[idx] - 0.5 * (bf - 1)) / bf).astype(np.int64)
        inside = (rows >= hw) & (rows < lev.shape[0] - hw) & (cols >= hw) & (cols < lev.shape[1] - hw)
        idx, rows, cols = idx[inside], rows[inside], cols[inside]
        if len(idx) == 0:
            continue
        sb_idx = sb[idx]
        md, own, init = None, None, None
        if discs is not None:
            w_ = which[idx]
            own = (2.0 * out["sigma"][w_] + 1.0) / bf
            # start from the first pass (level pixels); sigma back to the level's fitted width
            init = np.column_stack([(out["x"][w_] - 0.5 * (bf - 1)) / bf, (out["y"][w_] - 0.5 * (bf - 1)) / bf,
                                    out["amp"][w_], np.sqrt((out["sigma"][w_] / bf) ** 2 + 1.0 / 12.0),
                                    sign * out["bg"][w_]])
            md = np.column_stack([(discs[:, 0] - 0.5 * (bf - 1)) / bf, (discs[:, 1] - 0.5 * (bf - 1)) / bf, discs[:, 2] / bf])
        p, cov, ok, ex = fit_gaussians(lev, rows, cols, 0.9 * sb_idx, hw, noise=noise, return_full=True, sign=sign,
                                       mask_discs=md, own_radius=own, init=init)
        idx = which[idx]
        pc = ex["param_cov"]
        out["x"][idx] = p[:, 0] * bf + 0.5 * (bf - 1)
        out["y"][idx] = p[:, 1] * bf + 0.5 * (bf - 1)
        out["cov"][idx] = cov * bf * bf
        out["amp"][idx] = p[:, 2]
        with np.errstate(invalid="ignore"):
            out["amp_err"][idx] = np.sqrt(pc[:, 2, 2])
            out["sigma_err"][idx] = np.sqrt(pc[:, 3, 3]) * bf
        out["peak"][idx] = ex["peak"]
        out["peak_err"][idx] = ex["peak_err"]
        out["bg"][idx] = sign * p[:, 4]
        out["noise"][idx] = ex["noise"]
        # a level pixel integrates a box of its width: variance 1/12 px^2 of that level
        s2 = np.maximum(p[:, 3] ** 2 - 1.0 / 12.0, 0.09)
        out["sigma"][idx] = np.sqrt(s2) * bf
        out["ok"][idx] = ok & (p[:, 3] < hw)


def _candidate_summary(fit: dict, z: np.ndarray, contrast: np.ndarray, px: float, idx: np.ndarray, n: int = 10) -> list[dict]:
    top = idx[np.argsort(-z[idx])][:n]
    return [
        {
            "x_px": round(float(fit["x"][i]), 1), "y_px": round(float(fit["y"][i]), 1),
            "sigma_nm": round(float(fit["sigma"][i] * px), 2), "contrast": float(f"{contrast[i]:.4g}"),
            "score": round(float(z[i]), 3), "snr": round(float(fit["amp"][i] / fit["amp_err"][i]), 1),
        }
        for i in top
    ]


def select_fiducials(
    fit: dict,
    *,
    dark: bool,
    px_nm: float,
    min_snr: float,
    expected_sigma_nm: float | None,
    size_tolerance: float,
    min_gap: float,
    min_contrast: float | None,
) -> dict:
    """The fiducial population of one polarity. Returns a dict with ``mask`` (over the fits, or
    None when no population), the split statistics and the best candidates seen."""
    sig_nm = fit["sigma"] * px_nm
    contrast, z, z_err, transmission = contrast_score(fit["peak"], fit["peak_err"], fit["bg"], fit["noise"], sig_nm, dark)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = fit["amp"] / fit["amp_err"]
    good = fit["ok"] & (snr >= min_snr) & (fit["sigma"] >= 0.5) & np.isfinite(z) & (contrast > 0)
    if expected_sigma_nm is not None:
        good &= np.abs(np.log(sig_nm / expected_sigma_nm)) <= np.log(size_tolerance)
    res = {
        "mask": None, "n_fitted": int(fit["ok"].sum()), "n_significant": int(good.sum()),
        "contrast_kind": "optical_density" if np.any(transmission[good]) and np.mean(transmission[good]) > 0.5 else "excess",
        "gap_ratio": 0.0, "rule": None,
    }
    res["best_candidates"] = _candidate_summary(fit, z, contrast, px_nm, np.nonzero(good)[0])
    gi = np.nonzero(good)[0]
    if len(gi) < 3:
        res["reason"] = f"{len(gi)} significant blob(s), need 3"
        return res
    zg, eg, ls = z[gi], z_err[gi], np.log(sig_nm[gi])
    if min_contrast is not None:
        ref = np.sort(contrast[gi])[::-1][2]
        top = contrast[gi] >= float(min_contrast) * ref
        res["rule"] = f"contrast >= {float(min_contrast):g} x 3rd strongest (user)"
    else:
        split = gap_split(zg, eg)
        res.update(gap_ratio=split["ratio"], gap_ratio_rest=split["ratio_rest"], gap=split["gap"],
                   spread_top=split["spread_top"])
        if split["k"] >= 3 and split["ratio"] >= min_gap and split["ratio_rest"] >= 0.5:
            top = zg > split["threshold"]
            res["rule"] = f"gap split: {split['ratio']:.1f} spreads of the top group above the rest"
        else:
            s_ls = 1.4826 * np.median(np.abs(ls - np.median(ls)))
            s_z = 1.4826 * np.median(np.abs(zg - np.median(zg)))
            res.update(single_spread_log_size=float(s_ls), single_spread_score=float(s_z))
            if s_ls <= 0.1 and s_z <= 0.2:
                top = np.ones(len(gi), bool)
                res["rule"] = "one compact population (no gap to split)"
            else:
                res["reason"] = (
                    f"no population stands clear: best gap {split['ratio']:.1f} top-group spreads "
                    f"(need {min_gap:g}), sizes spread {s_ls:.2f} and scores {s_z:.2f} (log units)"
                )
                return res
    members, med, spread = size_mode(ls, top, size_tolerance)
    if members.sum() < 3:
        res["reason"] = f"only {int(members.sum())} blob(s) in the size mode of the strongest group"
        return res
    # fiducials are chosen to stand far above the detection limit; a group at the limit is noise
    snr_med = float(np.median(snr[gi[members]]))
    res["population_snr"] = snr_med
    if snr_med < 2.0 * min_snr:
        res["reason"] = f"strongest group has median SNR {snr_med:.1f}, under twice the detection limit {min_snr:.1f}"
        return res
    mask = np.zeros(len(good), bool)
    mask[gi[members]] = True
    res.update(mask=mask, size_mode_sigma_nm=float(np.exp(med)), size_mode_spread=spread,
               n_selected=int(mask.sum()), n_rejected_by_size=int(top.sum() - members.sum()))
    res["z"] = z
    res["contrast"] = contrast
    res["snr"] = snr
    return res
