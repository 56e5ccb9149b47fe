"""Particle segmentation in EM micrographs (projected-thickness contrast): background flattening,
detection, watershed split, the per-particle edge_fraction contour with the blurred-sphere edge
model, and gold fiducials. See :mod:`correlate.analysis._segment` for the method. Lengths nm.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np

from ..elements import origin as _origin
from ..elements import pixel_size as _pixel_size
from ..errors import ElementError
from ._segmentation import (Segmentation, _as_labels_array, _as_signal, _edge_ids, _empty_segmentation,
                            _fiducial_table, _image_2d, _label_max, _relabel, _robust_sigma, _watershed_split)

__all__ = ["segment_em"]


def _block_background(img: np.ndarray, block: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Smooth background of a 2-D image: masked medians in windows of ``block`` px centred on a
    grid that includes the image borders (no extrapolation), interpolated by cubic splines."""
    import warnings

    from scipy import ndimage as ndi
    from scipy.interpolate import RectBivariateSpline

    h, w = img.shape
    block = int(max(8, min(block, max(h, w))))
    ny = max(2, int(np.ceil(h / block)) + 1)
    nx = max(2, int(np.ceil(w / block)) + 1)
    yc = np.linspace(0, h - 1, ny)
    xc = np.linspace(0, w - 1, nx)
    half = block // 2
    vals = np.full((ny, nx), np.nan)
    a = img.astype(np.float32)
    if mask is not None:
        a = np.where(mask, np.nan, a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, y in enumerate(yc):  # a loop over a few dozen windows, not pixels
            ys = slice(max(0, int(y) - half), min(h, int(y) + half + 1))
            for j, x in enumerate(xc):
                win = a[ys, max(0, int(x) - half) : min(w, int(x) + half + 1)]
                if np.isfinite(win).mean() >= 0.2:
                    vals[i, j] = np.nanmedian(win)
    bad = ~np.isfinite(vals)
    if bad.all():
        return np.full(img.shape, np.nanmedian(img))
    if bad.any():
        idx = ndi.distance_transform_edt(bad, return_distances=False, return_indices=True)
        vals = vals[tuple(idx)]
    ky, kx = min(3, ny - 1), min(3, nx - 1)
    spl = RectBivariateSpline(yc, xc, vals, kx=ky, ky=kx, s=0)
    return spl(np.arange(h), np.arange(w)).astype(np.float32)


@lru_cache(maxsize=8)
def _sphere_blur_model(f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a projected sphere (peak 1, radius 1) blurred by a Gaussian of sigma s (in radii):
    c(s) = mean of the blurred profile over the disc rho < 0.5 (peak estimator);
    q(s) = radius where the blurred profile equals f (contour at f x the unblurred peak).
    Computed numerically on a fine grid once; returns (s, c, q)."""
    from scipy import ndimage as ndi

    R = 40.0
    n = 161
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    rho = np.hypot(xx, yy) / R
    prof = np.sqrt(np.clip(1.0 - rho**2, 0, None))
    s_grid = np.linspace(0.0, 0.6, 31)
    c = np.empty_like(s_grid)
    q = np.empty_like(s_grid)
    row = n // 2
    xline = (np.arange(n) - (n - 1) / 2.0) / R
    inner = rho < 0.5
    for i, s in enumerate(s_grid):  # 31 small model blurs, cached
        b = ndi.gaussian_filter(prof, s * R, mode="constant") if s > 0 else prof
        c[i] = b[inner].mean()
        line = b[row, (n - 1) // 2 :]
        xs = xline[(n - 1) // 2 :]
        # first crossing below f going outwards
        k = np.flatnonzero(line < f)
        if k.size == 0 or k[0] == 0:
            q[i] = np.nan
        else:
            j = k[0]
            t = (line[j - 1] - f) / (line[j - 1] - line[j])
            q[i] = xs[j - 1] + t * (xs[j] - xs[j - 1])
    return s_grid, c, q


def _grow(core: np.ndarray, grow_px: np.ndarray, limit: np.ndarray | None = None) -> np.ndarray:
    """Grow each label of ``core`` by its own distance ``grow_px[label]`` (nearest-label rule)."""
    from scipy import ndimage as ndi

    if core.max() == 0:
        return core.copy()
    dist, idx = ndi.distance_transform_edt(core == 0, return_indices=True)
    nearest = core[idx[0], idx[1]]
    out = np.where(dist <= grow_px[nearest], nearest, 0).astype(np.int32)
    out[core > 0] = core[core > 0]
    if limit is not None:
        out[~limit] = 0
        out[core > 0] = core[core > 0]
    return out


def segment_em(
    image,
    *,
    polarity: Literal["auto", "dark", "bright"] = "auto",
    contrast: Literal["log", "linear"] = "log",
    background_nm: float | None = 500.0,
    smooth_nm: float | None = None,
    threshold: Literal["noise", "otsu", "local"] | float = "noise",
    k_sigma: float = 6.0,
    min_diameter_nm: float = 20.0,
    max_diameter_nm: float | None = None,
    split_touching: bool = True,
    min_separation_nm: float | None = None,
    edge_fraction: float = 0.5,
    shape_model: Literal["sphere", "flat"] = "sphere",
    psf_sigma_nm: float | None = None,
    exclude_fiducials: bool = True,
    fiducial_ratio: float = 3.0,
    exclude_at: np.ndarray | None = None,
) -> Segmentation:
    """Segment particles in an EM micrograph (see :mod:`correlate.analysis._segment` for the method).

    Parameters
    ----------
    image
        Image element (y, x) in nm coordinates.
    polarity
        ``"dark"`` particles on a bright background (TEM bright field), ``"bright"``, or ``"auto"``
        (the side of the histogram with the longer tail).
    contrast
        ``"log"`` (Beer-Lambert, signal proportional to thickness) or ``"linear"``.
    background_nm
        Block size (nm) of the background estimate; larger than the largest particle. None: no
        flattening (a constant background).
    smooth_nm
        Gaussian smoothing sigma (nm) before thresholding; default 1.5 px.
    threshold
        Detection threshold method or a value in signal units.
    k_sigma
        Noise multiple of ``threshold="noise"``.
    min_diameter_nm, max_diameter_nm
        Size filter on the model diameter (nm).
    split_touching, min_separation_nm
        Watershed splitting and the least distance between two particle centres it keeps apart
        (default ``min_diameter_nm / 2``).
    edge_fraction
        Contour level as a fraction of each particle's own peak (0.5: local half maximum).
    shape_model
        ``"sphere"`` (projected spheres/ellipsoids: sizes corrected to the physical edge) or
        ``"flat"`` (the ``edge_fraction`` contour is the edge).
    psf_sigma_nm
        Gaussian sigma (nm) of the microscope blur, for the edge correction; default
        ``image.attrs["psf_sigma_nm"]`` if present, else 0 (only our smoothing is corrected).
    exclude_fiducials, fiducial_ratio
        Recognise gold beads (attenuation per nm > ratio x median) and drop them from the labels.
    exclude_at
        (K, 2) positions (x, y nm, this image's frame) of known fiducials (e.g. the landmarks of a
        registration of this image): objects holding one are fiducials too (``reason``
        "position"), whatever their contrast. Ignored with ``exclude_fiducials=False``.

    Returns
    -------
    Segmentation
    """
    img = _image_2d(image)
    raw, px_d, px = _em_pixels(img)
    base, polarity, contrast = _em_contrast(raw, polarity, contrast)
    sign = -1.0 if polarity == "dark" else 1.0
    smooth_px = 1.5 if smooth_nm is None else float(smooth_nm) / px
    sig, sm, noise = _flatten(base, sign, contrast, background_nm, px, smooth_px)
    thr, det = _detect(sm, noise, threshold, k_sigma, min_diameter_nm, max_diameter_nm, px)
    min_sep_px = (float(min_separation_nm) if min_separation_nm else 0.5 * float(min_diameter_nm)) / px
    basins = _basins(det, sm, thr, split_touching, min_sep_px)
    n0 = int(basins.max())
    info: dict[str, Any] = {
        "modality": "em",
        "polarity": polarity,
        "contrast": contrast,
        "noise": float(noise),
        "detection_threshold": float(thr),
        "smooth_px": float(smooth_px),
        "edge_fraction": float(edge_fraction),
        "shape_model": shape_model,
    }
    if n0 == 0:
        return _empty_segmentation(img, sm, info)

    psf_px = float(psf_sigma_nm if psf_sigma_nm is not None else img.attrs.get("psf_sigma_nm", 0.0) or 0.0) / px
    blur_px = float(np.hypot(psf_px, smooth_px))
    peak, core, cx, cy = _edge_contour(sm, basins, n0, float(edge_fraction), shape_model, blur_px)
    area = np.bincount(core.ravel(), minlength=n0 + 1)[1:].astype(float)
    r_f = np.sqrt(area / np.pi)
    R = _model_radius(r_f, float(edge_fraction), shape_model, blur_px)
    diam_nm = 2 * R * px
    valid = np.isfinite(R) & (area > 0) & (peak > 0)
    is_fid = _gold(valid, peak, diam_nm, fiducial_ratio) if exclude_fiducials else np.zeros(n0, bool)
    x0 = _origin(img)
    at_pos = np.zeros(n0, bool)
    if exclude_fiducials:
        from ._fiducial_exclusion import as_positions, objects_at

        pos = as_positions(exclude_at)
        at_pos, matched = objects_at(pos, basins, cx, cy, np.where(np.isfinite(R), R, r_f),
                                     origin_nm=x0, pixel_nm=px_d)
        info.update(n_exclude_at=len(pos), n_exclude_at_unmatched=int((~matched).sum()))
    by_contrast = is_fid & ~at_pos
    is_fid = is_fid | at_pos
    fids = _fiducial_table(x0, px_d, cx, cy, diam_nm, at_pos, by_contrast, "contrast")
    # significance: the (noise-averaged) peak estimate must clear the detection threshold
    keep = valid & ~is_fid & (diam_nm >= float(min_diameter_nm)) & (peak >= thr)
    if max_diameter_nm is not None:
        keep &= diam_nm <= float(max_diameter_nm)
    info.update(
        psf_sigma_nm=psf_px * px,
        blur_sigma_nm=blur_px * px,
        n_candidates=int(n0),
        n_fiducials=int(is_fid.sum()),
        n_fiducials_at_positions=int(at_pos.sum()),
    )
    sig_da = _as_signal(sm, img, "em", "log-contrast" if contrast == "log" else "relative")
    return _kept_segmentation(img, core, basins, keep, R, r_f, peak, fids, info, sig_da)


def _em_pixels(img) -> tuple[np.ndarray, dict, float]:
    """The image as float32 (non-finite pixels set to the median), its pixel sizes and the
    square pixel size (nm)."""
    px_d = _pixel_size(img)
    px = float(np.sqrt(px_d["x"] * px_d["y"]))
    if not np.isclose(px_d["x"], px_d["y"], rtol=1e-3):
        raise ElementError(f"non-square pixels {px_d} are not supported for segmentation", field=str(img.name))
    raw = np.asarray(img.values, dtype=np.float32)
    if raw.size == 0:
        raise ElementError("empty image", field=str(img.name))
    finite = np.isfinite(raw)
    if not finite.all():
        raw = np.where(finite, raw, np.nanmedian(raw))
    return raw, px_d, px


def _auto_polarity(raw: np.ndarray) -> str:
    """``"dark"`` or ``"bright"``: the side with more strong outliers (beyond 6 robust sigmas) of
    the image smoothed at 2 px, after removing its variation over an eighth of the field
    (illumination; far larger than a particle, whatever the pixel size). Objects covering under
    1 % of the field decide it, where a percentile tail of the raw pixels does not; without
    outliers on either side, the side of the longer percentile tail."""
    from scipy import ndimage as ndi

    img = np.asarray(raw, np.float32)
    step = max(1, int(np.ceil(max(img.shape) / 2048)))
    img = img[::step, ::step]
    hp = ndi.gaussian_filter(img, 2.0 / step) - ndi.gaussian_filter(img, min(img.shape) / 8.0)
    med = float(np.median(hp))
    sig = 1.4826 * float(np.median(np.abs(hp - med)))
    n_dark, n_bright = int(np.sum(hp < med - 6 * sig)), int(np.sum(hp > med + 6 * sig))
    if max(n_dark, n_bright) >= 20:
        return "dark" if n_dark > n_bright else "bright"
    p1, p50, p99 = np.percentile(raw, [0.5, 50, 99.5])
    return "dark" if (p50 - p1) > (p99 - p50) else "bright"


def _em_contrast(raw: np.ndarray, polarity: str, contrast: str) -> tuple[np.ndarray, str, str]:
    """The polarity (``"auto"``: the side of the histogram with the longer tail) and the base
    signal (log intensity, or the intensity where log contrast cannot apply)."""
    if polarity == "auto":
        polarity = _auto_polarity(raw)
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    if contrast == "log":
        floor = max(np.percentile(raw, 50) * 1e-3, 1e-6)
        if np.percentile(raw, 1) <= 0:
            contrast = "linear"  # log contrast needs positive intensities
        base = np.log(np.maximum(raw, np.float32(floor))) if contrast == "log" else raw
    elif contrast == "linear":
        base = raw
    else:
        raise ValueError(f"contrast must be 'log' or 'linear', got {contrast!r}")
    return base, polarity, contrast


def _flatten(base, sign: float, contrast: str, background_nm, px: float, smooth_px: float):
    """Background-flattened signal (particles positive), its smoothed version and the robust noise
    of the latter; the background is estimated twice, the second time with the particles masked."""
    from scipy import ndimage as ndi

    mask = None
    if background_nm:
        block = round(float(background_nm) / px)
        for _ in range(2):
            bg = _block_background(base, block, mask)
            sig = sign * (base - bg) if contrast == "log" else sign * (base - bg) / np.where(bg != 0, np.abs(bg), 1)
            sm = ndi.gaussian_filter(sig, smooth_px) if smooth_px > 0 else sig
            noise = _robust_sigma(sm)
            mask = ndi.binary_dilation(sm > 2.5 * noise, iterations=3)
    else:
        bg = np.full_like(base, np.median(base))
        sig = sign * (base - bg) if contrast == "log" else sign * (base - bg) / max(abs(float(bg[0, 0])), 1e-12)
    sm = ndi.gaussian_filter(sig, smooth_px) if smooth_px > 0 else sig
    return sig, sm, _robust_sigma(sm)


def _detect(sm, noise: float, threshold, k_sigma: float, min_diameter_nm: float, max_diameter_nm, px: float):
    """Detection threshold (signal units) and the detection mask (opened, holes filled)."""
    from scipy import ndimage as ndi

    if isinstance(threshold, str):
        if threshold == "noise":
            thr = k_sigma * noise
            det = sm > thr
        elif threshold == "otsu":
            from skimage.filters import threshold_otsu

            thr = float(threshold_otsu(sm))
            det = sm > thr
        elif threshold == "local":
            from skimage.filters import threshold_sauvola

            win = int(2 * round((max_diameter_nm or 4 * max(min_diameter_nm, 50.0)) / px) + 1)
            loc = threshold_sauvola(sm, window_size=max(win, 15))
            thr = float(k_sigma * noise)
            det = (sm > loc) & (sm > thr)
        else:
            raise ValueError(f"threshold must be 'noise', 'otsu', 'local' or a number, got {threshold!r}")
    else:
        thr = float(threshold)
        det = sm > thr
    return thr, ndi.binary_fill_holes(ndi.binary_opening(det, iterations=1))


def _basins(det, sm, thr: float, split_touching: bool, min_sep_px: float) -> np.ndarray:
    """Seeds (the detection mask, split by watershed) grown into the lenient mask at half the
    threshold, so that faint edges are not cut by the detection mask."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    basin = sm > 0.5 * thr
    if split_touching:
        seeds = _watershed_split(det, min_sep_px, basin_mask=None)
    else:
        seeds, _ = ndi.label(det)
        seeds = seeds.astype(np.int32)
    return watershed(-sm, seeds, mask=basin | (seeds > 0)).astype(np.int32)


def _model_radius(r_f, edge_fraction: float, shape_model: str, blur_px: float):
    """Model edge radius (px) from the radius of the edge_fraction contour."""
    if shape_model != "sphere":
        return r_f
    s_grid, _, q_grid = _sphere_blur_model(edge_fraction)
    return _invert_contour(r_f, blur_px, s_grid, q_grid, float(np.sqrt(1.0 - edge_fraction**2)))


def _edge_contour(sm, basins, n0: int, edge_fraction: float, shape_model: str, blur_px: float):
    """Per-particle peak and edge_fraction contour, iterated (vectorised over labels; only the
    pixels of the basins take part). Returns (peak (n0,), core labels, cx, cy (px))."""
    s_grid, c_grid, q_grid = _sphere_blur_model(edge_fraction)
    q0 = float(np.sqrt(1.0 - edge_fraction**2))
    pix = np.flatnonzero(basins.ravel())
    lab_p = basins.ravel()[pix]
    sm_p = sm.ravel()[pix]
    py, px_i = np.divmod(pix, sm.shape[1])
    py = py.astype(float)
    px_i = px_i.astype(float)
    peak = _label_max(sm, basins, n0)[1:]
    R = np.sqrt(np.bincount(lab_p, minlength=n0 + 1)[1:] / np.pi)
    for _ in range(4):
        thr_l = np.concatenate([[np.inf], edge_fraction * peak])
        in_core = sm_p >= thr_l[lab_p]
        lc = lab_p[in_core]
        area = np.bincount(lc, minlength=n0 + 1)[1:].astype(float)
        cnt = np.maximum(area, 1)
        cy = np.bincount(lc, weights=py[in_core], minlength=n0 + 1)[1:] / cnt
        cx = np.bincount(lc, weights=px_i[in_core], minlength=n0 + 1)[1:] / cnt
        r_f = np.sqrt(area / np.pi)
        if shape_model == "sphere":
            R = _invert_contour(r_f, blur_px, s_grid, q_grid, q0)
            cfac = np.interp(np.clip(blur_px / np.maximum(R, 1e-9), 0, s_grid[-1]), s_grid, c_grid)
        else:
            R = r_f
            cfac = np.ones_like(R)
        # mean signal over the inner disc rho < 0.5 of each particle -> unblurred peak
        cyl = np.concatenate([[0.0], cy])
        cxl = np.concatenate([[0.0], cx])
        Rl = np.concatenate([[0.0], R])
        rho2 = ((py - cyl[lab_p]) ** 2 + (px_i - cxl[lab_p]) ** 2) / np.maximum(Rl[lab_p], 1e-9) ** 2
        inner = rho2 < 0.25
        s_in = np.bincount(lab_p[inner], weights=sm_p[inner], minlength=n0 + 1)[1:]
        n_in = np.bincount(lab_p[inner], minlength=n0 + 1)[1:]
        new_peak = np.where(n_in >= 3, s_in / np.maximum(n_in, 1) / cfac, peak)
        if np.allclose(new_peak, peak, rtol=1e-4):
            peak = new_peak
            break
        peak = new_peak
    thr_l = np.concatenate([[np.inf], edge_fraction * peak])
    core = np.zeros(sm.size, np.int32)
    core[pix] = np.where(sm_p >= thr_l[lab_p], lab_p, 0)
    return peak, core.reshape(sm.shape), cx, cy


def _gold(valid, peak, diam_nm, fiducial_ratio: float) -> np.ndarray:
    """Gold fiducials: attenuation per nm of diameter far above the median (twice: the second
    time the median of the non-gold objects, for when gold is numerous)."""
    mu = np.where(valid, peak / np.maximum(diam_nm, 1e-9), np.nan)
    is_fid = np.zeros(len(peak), bool)
    if np.isfinite(mu).sum() >= 3:
        med_mu = np.nanmedian(mu)
        is_fid = np.isfinite(mu) & (mu > fiducial_ratio * med_mu)
        if is_fid.any() and (~is_fid & valid).sum() >= 2:
            med_mu = np.nanmedian(mu[~is_fid])
            is_fid = np.isfinite(mu) & (mu > fiducial_ratio * med_mu)
    return is_fid


def _kept_segmentation(img, core, basins, keep, R, r_f, peak, fids, info, sig_da) -> Segmentation:
    """The Segmentation of the kept objects: cores grown out to their model edge inside their
    basins, renumbered 1..N."""
    keep_l = np.concatenate([[False], keep])
    scale = np.where(r_f > 0, R / np.maximum(r_f, 1e-9), 1.0)
    grow = np.concatenate([[0.0], np.maximum(R - r_f, 0.0)])
    full = _grow(core, grow, limit=basins > 0)
    full = np.where(keep_l[full], full, 0)
    core = np.where(keep_l[core], core, 0)
    full_r = _relabel(full, keep_l)
    core_r = _relabel(core, keep_l)
    edge = _edge_ids(full_r)
    labels = _as_labels_array(full_r, img, n=int(keep.sum()), edge_ids=edge, modality="em", extra={})
    return Segmentation(
        labels=labels,
        signal=sig_da,
        core=core_r,
        length_scale=np.concatenate([[1.0], scale[keep]]),
        fiducials=fids,
        info=info,
        peak=np.concatenate([[0.0], peak[keep]]),
    )


def _invert_contour(r_f, blur_px, s_grid, q_grid, q0):
    """Solve r_f = R q(blur / R) for R (fixed point; q from the blurred-sphere model)."""
    R = r_f / q0
    for _ in range(20):
        s = np.clip(blur_px / np.maximum(R, 1e-9), 0, s_grid[-1])
        q = np.interp(s, s_grid, q_grid)
        R_new = r_f / np.maximum(q, 1e-3)
        if np.allclose(R_new, R, rtol=1e-6, atol=1e-6):
            return R_new
        R = R_new
    return R
