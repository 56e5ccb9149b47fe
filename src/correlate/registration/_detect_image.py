"""Fiducial beads / gold particles in images, with every parameter taken from the data.

1. Blob candidates across scales, from about a pixel to ``max_diameter_nm`` (1 um): a
   scale-normalised DoG (~LoG) over a geometric series of widths on a 2x pyramid (:mod:`._scalespace`),
   bright and dark blobs from the same responses, each with its best scale;
2. a vectorised Gaussian + background fit of every candidate on the level where it is 2-4 pixels
   wide (:func:`fit_gaussians`): sub-pixel position with covariance, width, amplitude;
3. the fiducials are the compact population whose contrast per size stands clear of the rest
   (:mod:`._population`): gold absorbs far more per nm than organic particles, beads outshine
   labelled particles. Polarity, when not given, is the sign whose blobs show that population more
   clearly. In light microscopy the PSF width comes from the selected spots unless the user or
   the file states it.

What was estimated is in ``df.attrs["estimated"]``, where each value came from in
``df.attrs["source"]`` ("estimated", "user" or "metadata"). Positions are in nm in the image's own
frame (its coordinates), covariances in nm^2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RegistrationError
from ._bead_fit import fit_candidates, select_fiducials
from ._fiducials import fiducial_table
from ._gaussfit import fit_gaussians
from ._scalespace import build_pyramid, level_for_sigma, log_candidates, sigma_series, suppress

__all__ = ["BEAD_DEFAULTS", "detect_beads", "fit_gaussians"]

#: Polarity each modality usually shows; only breaks a tie when both signs show a population
#: equally clearly. Sizes are always measured (``diameter_nm`` None).
BEAD_DEFAULTS: dict[str, dict] = {
    "em": {"diameter_nm": None, "polarity": "dark"},
    "sim": {"diameter_nm": None, "polarity": "bright"},
    "sted": {"diameter_nm": None, "polarity": "bright"},
    "lm": {"diameter_nm": None, "polarity": "bright"},
    "afm": {"diameter_nm": None, "polarity": "bright"},
}

_NOT_LM = {"em", "sem", "tem", "stem", "afm", "xray"}
_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Gaussian width fitted to a projected sphere, per unit diameter (0.27 thin - 0.31 opaque)
_SPHERE_SIGMA_PER_D = 0.29
HINT = "--bead-diameter/--polarity/--psf-fwhm"


def _default_threshold(n_pixels: int) -> float:
    """Detection threshold (standard deviations) with ~0.1 expected false blob per image."""
    from scipy.special import ndtri

    return float(max(5.0, -ndtri(0.1 / max(n_pixels, 1))))


def _image_geometry(image):
    img = image
    if "c" in img.dims:
        img = img.isel(c=0)
    if "z" in img.dims:
        raise RegistrationError("bead detection works on 2-D images; pick a z plane", field="z", stage="detection")
    xs, ys = img.coords["x"].values, img.coords["y"].values
    if len(xs) < 8 or len(ys) < 8:
        raise RegistrationError(f"image of {len(ys)} x {len(xs)} pixels is too small for bead detection",
                                field="x", stage="detection")
    px_x = float(xs[1] - xs[0])
    px_y = float(ys[1] - ys[0])
    return img, px_x, px_y, float(xs[0]), float(ys[0])


def _expected_widths(is_lm, diameter_nm, psf_fwhm_nm, px):
    """(expected fitted width nm or None, expected LoG width nm or None)."""
    if is_lm:
        if psf_fwhm_nm is None:
            return None, None
        s = np.hypot(psf_fwhm_nm / _FWHM, 0.0 if diameter_nm is None else diameter_nm / np.sqrt(20.0))
        return float(s), float(s)
    if diameter_nm is None:
        return None, None
    return float(np.hypot(_SPHERE_SIGMA_PER_D * diameter_nm, 0.5 * px)), float(diameter_nm / (2 * np.sqrt(2)))


def detect_beads(
    image,
    *,
    diameter_nm: float | None = None,
    polarity: str | None = None,
    psf_fwhm_nm: float | None = None,
    threshold: float | None = None,
    min_contrast: float | None = None,
    size_tolerance: float = 1.6,
    max_candidates: int = 5000,
    noise: str = "white",
    floor_nm: float | None = None,
    max_diameter_nm: float = 1000.0,
    min_gap: float = 3.0,
) -> pd.DataFrame:
    """Detect fiducial beads (or gold particles) in a 2-D image, with sub-pixel positions.

    Parameters
    ----------
    image
        An Image element (xarray, dims ``(y, x)``, nm coordinates), or one with a ``c`` axis
        (the first channel is used).
    diameter_nm
        Bead diameter (nm); None: measured. Given, it limits the scales searched and the widths
        accepted (within ``size_tolerance``); in light microscopy it is removed from the spot width
        when the PSF width is estimated.
    polarity
        ``"dark"`` (transmission EM gold), ``"bright"`` (fluorescent beads, AFM height, HAADF) or
        None / ``"auto"``: the sign whose blobs hold the clearer fiducial population.
    psf_fwhm_nm
        Light microscopy PSF FWHM (nm); None: ``attrs["resolution_nm"]`` of the image if present,
        else estimated from the selected spots.
    threshold
        Detection threshold in robust standard deviations of the LoG response (and minimum fit
        SNR); None: from the image size, so that about 0.1 noise blob per image passes (>= 5).
    min_contrast
        Override of the automatic population split: keep blobs whose contrast is at least this
        fraction of the third strongest.
    size_tolerance
        Factor around the expected width (given diameter / PSF) and largest spread of the size mode.
    max_candidates
        Largest number of blobs fitted per polarity (the strongest responses).
    noise
        ``"white"`` (pixel noise from a high-pass of the fit residuals) or ``"residual"``; see
        :func:`fit_gaussians`.
    floor_nm
        Systematic localisation floor (nm per axis) added in quadrature to each covariance;
        default 1 % of the spot FWHM in light microscopy, 0 for EM and AFM.
    max_diameter_nm
        Largest blob searched for (nm).
    min_gap
        Gap, in spreads of the top group, that the fiducials' score must keep from the rest.

    Returns
    -------
    pandas.DataFrame
        One row per bead: ``x, y`` (nm, image frame), ``cov_xx, cov_xy, cov_yy`` (nm^2),
        ``amplitude`` (image units, sign-corrected), ``sigma_nm`` (fitted Gaussian width),
        ``background``, ``snr``, ``contrast`` (optical density or excess), ``score``.
        ``attrs["estimated"]`` / ``attrs["source"]`` record the parameters used.

    Raises
    ------
    RegistrationError
        ``stage="detection"`` when no fiducial population is found; ``diagnostics`` holds the
        strongest candidates of each polarity tried.
    """
    img, px_x, px_y, x0, y0 = _image_geometry(image)
    px = 0.5 * (abs(px_x) + abs(px_y))
    modality = str(img.attrs.get("modality", "lm")).lower()
    is_lm = modality not in _NOT_LM
    source: dict[str, str] = {}
    if diameter_nm is not None:
        source["diameter_nm"] = "user"
    if psf_fwhm_nm is not None:
        source["psf_fwhm_nm"] = "user"
    elif is_lm and img.attrs.get("resolution_nm") is not None:
        psf_fwhm_nm = float(img.attrs["resolution_nm"])
        source["psf_fwhm_nm"] = "metadata"
    if polarity == "auto":
        polarity = None
    if polarity is not None and polarity not in ("dark", "bright"):
        raise RegistrationError(f"polarity {polarity!r}; expected 'dark', 'bright' or None", field="polarity",
                                stage="detection", hint="--polarity")
    source["polarity"] = "user" if polarity is not None else "estimated"
    exp_fit_nm, exp_log_nm = _expected_widths(is_lm, diameter_nm, psf_fwhm_nm, px)

    data = np.asarray(img.values, dtype=np.float32)
    finite = np.isfinite(data)
    n_bad = int(data.size - np.count_nonzero(finite))
    if n_bad:  # blurs would spread NaN over whole strips: fill with the median, and say so
        if n_bad == data.size:
            raise RegistrationError(f"image '{img.name or ''}' has no finite pixel", field="image", stage="detection")
        data = np.where(finite, data, np.float32(np.median(data[finite])))
    del finite
    h, w = data.shape
    lo_px, hi_px = 1.0, min(max_diameter_nm / (2 * np.sqrt(2)) / px, min(h, w) / 8.0)
    if exp_log_nm is not None:
        lo_px = max(0.8, exp_log_nm / size_tolerance / px)
        hi_px = min(hi_px, exp_log_nm * size_tolerance / px)
    hi_px = max(hi_px, lo_px)
    sigmas = sigma_series(lo_px, hi_px)
    n_levels = int(level_for_sigma(sigmas.max())) + 1
    levels = build_pyramid(data, n_levels)
    thr = [_default_threshold(lv.size) if threshold is None else float(threshold) for lv in levels]
    source["threshold"] = "user" if threshold is not None else "estimated"
    cands, scale_info = log_candidates(levels, sigmas, np.array(thr))

    pols = [polarity] if polarity is not None else ["dark", "bright"]
    sel_kw = dict(px_nm=px, min_snr=thr[0], expected_sigma_nm=exp_fit_nm, size_tolerance=size_tolerance,
                  min_gap=min_gap, min_contrast=min_contrast)
    results = {pol: _one_polarity(levels, cands[pol], pol, max_candidates, noise, sel_kw) for pol in pols}
    del levels
    diag = {
        "modality": modality, "pixel_nm": px, "sigma_range_nm": [float(sigmas.min() * px), float(sigmas.max() * px)],
        "threshold_sigma": thr[0], "n_nonfinite_pixels": n_bad, "scales": scale_info,
        "polarities": {p: {k: v for k, v in r[1].items() if k not in ("mask", "z", "contrast", "snr")} for p, r in results.items()},
    }
    polarity = _choose_polarity(results, modality, diag, img.name or "", px)
    fit, sel = results[polarity]
    return _table(img, fit, sel, polarity, modality, is_lm, px, px_x, px_y, x0, y0, diameter_nm, psf_fwhm_nm,
                  floor_nm, source, thr[0], diag)


def _one_polarity(levels, cand, pol, max_candidates, noise, sel_kw):
    """Suppress, fit and select the candidates of one sign: (fits, selection dict)."""
    n_raw = len(cand)
    # a blob's own extent is ~1.4 LoG widths: weaker extrema inside it are parts of it
    cand = cand.take(np.nonzero(suppress(cand.y, cand.x, 1.5 * cand.sigma, cand.strength))[0])
    n_blobs = len(cand)
    if len(cand) > max_candidates:
        cand = cand.take(np.argsort(-cand.strength)[:max_candidates])
    fit = fit_candidates(levels, cand, -1.0 if pol == "dark" else 1.0, noise=noise, min_snr=sel_kw["min_snr"])
    sel = select_fiducials(fit, dark=pol == "dark", **sel_kw)
    sel.update(n_extrema=n_raw, n_candidates=n_blobs, n_fitted_candidates=len(cand))
    return fit, sel


def _choose_polarity(results: dict, modality: str, diag: dict, name: str, px: float) -> str:
    """The sign whose population stands clearer (gap ratio); the modality breaks a tie."""
    found = {p: r for p, r in results.items() if r[1]["mask"] is not None}
    if not found:
        why = "; ".join(f"{p}: {r[1].get('reason', 'no population')}" for p, r in results.items())
        raise RegistrationError(
            f"no fiducial population in image '{name}' ({modality}, {px:.3g} nm/px): {why}",
            field="image", stage="detection", hint=HINT, diagnostics=diag,
        )
    if len(found) == 1:
        return next(iter(found))
    ra, rb = found["dark"][1]["gap_ratio"], found["bright"][1]["gap_ratio"]
    if max(ra, rb) > 1.1 * min(ra, rb):
        return "dark" if ra > rb else "bright"
    diag["polarity_tie_break"] = f"modality {modality}"
    return BEAD_DEFAULTS.get(modality, BEAD_DEFAULTS["lm"])["polarity"]


def _table(img, fit, sel, polarity, modality, is_lm, px, px_x, px_y, x0, y0, diameter_nm, psf_fwhm_nm, floor_nm,
           source, thr, diag) -> pd.DataFrame:
    m = sel["mask"]
    sig_nm = fit["sigma"][m] * px
    sigma_med = float(np.median(sig_nm))
    est: dict = {"polarity": polarity, "sigma_nm": sigma_med, "threshold_sigma": thr}
    if is_lm:
        spot_fwhm = _FWHM * sigma_med
        est["spot_fwhm_nm"] = float(spot_fwhm)
        if psf_fwhm_nm is None:
            d2 = 0.0 if diameter_nm is None else diameter_nm**2 / 20.0
            psf_fwhm_nm = float(_FWHM * np.sqrt(max(sigma_med**2 - d2, 0.25 * sigma_med**2)))
            source["psf_fwhm_nm"] = "estimated"
        est["psf_fwhm_nm"] = float(psf_fwhm_nm)
        est["diameter_nm"] = None if diameter_nm is None else float(diameter_nm)
        if floor_nm is None:
            floor_nm = 0.01 * spot_fwhm
            source["floor_nm"] = "estimated"
    else:
        est["psf_fwhm_nm"] = None
        if diameter_nm is None:
            diameter_nm = sigma_med / _SPHERE_SIGMA_PER_D
            source["diameter_nm"] = "estimated"
        est["diameter_nm"] = float(diameter_nm)
        if floor_nm is None:
            floor_nm = 0.0
            source["floor_nm"] = "estimated"
    source.setdefault("floor_nm", "user")
    est.update(
        floor_nm=float(floor_nm), n_candidates=int(sel["n_candidates"]), n_significant=int(sel["n_significant"]),
        n_selected=int(m.sum()), gap_ratio=float(sel["gap_ratio"]), contrast_kind=sel["contrast_kind"],
        rule=sel["rule"],
    )
    scale = np.array([px_x, px_y])
    pos = np.column_stack([x0 + fit["x"][m] * px_x, y0 + fit["y"][m] * px_y])
    cov = fit["cov"][m] * np.outer(scale, scale)[None] + float(floor_nm) ** 2 * np.eye(2)[None]
    df = fiducial_table(
        pos, cov, amplitude=fit["amp"][m], sigma_nm=sig_nm, background=fit["bg"][m], snr=sel["snr"][m],
        contrast=sel["contrast"][m], score=sel["z"][m],
    )
    df.attrs.update(
        {
            "detector": "image-scalespace-log-gaussian",
            "modality": modality,
            "polarity": polarity,
            "expected_sigma_nm": sigma_med,
            "floor_nm": float(floor_nm),
            "frame": img.name or "",
            "estimated": est,
            "source": dict(source),
            "diagnostics": diag,
        }
    )
    return df.sort_values(["y", "x"]).reset_index(drop=True)
