"""Particle segmentation in EM micrographs (projected-thickness contrast): background flattening,
detection, watershed split, the per-particle edge_fraction contour with the blurred-sphere edge
model, and gold fiducials. See :mod:`correlate.analysis._segment` for the method. Lengths nm.

Image-wide statistics (polarity, percentiles, noise, Otsu) come from
:mod:`correlate.analysis._segment_background` (a regular pixel sub-grid, all pixels up to
2048^2), and labels are numbered by their first pixel in raster order, so that
:func:`correlate.analysis._segment_tiled.segment_em_tiled` gives the same labels block by block.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..elements import origin as _origin
from ..elements import pixel_size as _pixel_size
from ..errors import ElementError
from ._segment_background import (background_grid, flattened, gather_background, grid_part, particle_mask,
                                  robust_sigma, smoothed, stat_stride)
from ._segment_contour import _edge_contour, _grow, _model_radius
from ._segmentation import (Segmentation, _as_labels_array, _as_signal, _edge_ids, _empty_segmentation,
                            _fiducial_table, _image_2d, _watershed_split)

__all__ = ["segment_em"]


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
        Labels numbered 1..N by their first pixel in raster order.
    """
    img = _image_2d(image)
    stride = stat_stride(img.shape)
    raw, px_d, px = _em_pixels(img, stride)
    base, polarity, contrast, _ = _em_contrast(raw, polarity, contrast, stride)
    sign = -1.0 if polarity == "dark" else 1.0
    smooth_px = 1.5 if smooth_nm is None else float(smooth_nm) / px
    sig, sm, noise = _flatten(base, sign, contrast, background_nm, px, smooth_px, stride)
    thr = _threshold(sm, noise, threshold, k_sigma, stride)
    det = _detection(sm, thr, threshold, noise, k_sigma, min_diameter_nm, max_diameter_nm, px)
    min_sep_px = _min_sep_px(min_separation_nm, min_diameter_nm, px)
    info: dict[str, Any] = {
        "modality": "em", "polarity": polarity, "contrast": contrast, "noise": float(noise),
        "detection_threshold": float(thr), "smooth_px": float(smooth_px), "edge_fraction": float(edge_fraction),
        "shape_model": shape_model, "stat_stride": int(stride),
    }
    blur_px = _blur_px(img, psf_sigma_nm, px, smooth_px)
    cand = _candidates(sm, det, thr, split_touching, min_sep_px, float(edge_fraction), shape_model, blur_px)
    n0 = cand["n0"]
    if n0 == 0:
        return _empty_segmentation(img, sm, info)
    diam_nm = 2 * cand["R"] * px
    is_fid = _gold(cand["valid"], cand["peak"], diam_nm, fiducial_ratio) if exclude_fiducials else np.zeros(n0, bool)
    x0 = _origin(img)
    at_pos = np.zeros(n0, bool)
    if exclude_fiducials:
        from ._fiducial_exclusion import as_positions, objects_at

        pos = as_positions(exclude_at)
        at_pos, matched = objects_at(pos, cand["basins"], cand["cx"], cand["cy"], cand["r_eq"],
                                     origin_nm=x0, pixel_nm=px_d)
        info.update(n_exclude_at=len(pos), n_exclude_at_unmatched=int((~matched).sum()))
    by_contrast = is_fid & ~at_pos
    is_fid = is_fid | at_pos
    order = np.argsort(cand["first_basin"], kind="stable")
    fids = _fiducial_table(x0, px_d, cand["cx"][order], cand["cy"][order], diam_nm[order], at_pos[order],
                           by_contrast[order], "contrast")
    keep = _keep(cand, is_fid, diam_nm, thr, min_diameter_nm, max_diameter_nm)
    info.update(psf_sigma_nm=blur_px["psf"] * px, blur_sigma_nm=blur_px["blur"] * px, n_candidates=int(n0),
                n_fiducials=int(is_fid.sum()), n_fiducials_at_positions=int(at_pos.sum()))
    sig_da = _as_signal(sm, img, "em", "log-contrast" if contrast == "log" else "relative")
    return _kept_segmentation(img, cand, keep, fids, info, sig_da)


def _min_sep_px(min_separation_nm, min_diameter_nm, px: float) -> float:
    return (float(min_separation_nm) if min_separation_nm else 0.5 * float(min_diameter_nm)) / px


def _blur_px(img, psf_sigma_nm, px: float, smooth_px: float) -> dict:
    """The microscope blur (``psf_sigma_nm`` or the image's attrs, else 0) and, combined with our
    smoothing, the blur the edge model corrects (px)."""
    psf_px = float(psf_sigma_nm if psf_sigma_nm is not None else img.attrs.get("psf_sigma_nm", 0.0) or 0.0) / px
    return {"psf": psf_px, "blur": float(np.hypot(psf_px, smooth_px))}


def _keep(cand: dict, is_fid, diam_nm, thr: float, min_diameter_nm, max_diameter_nm) -> np.ndarray:
    """Candidates kept as particles: a valid edge, no fiducial, the size filter, and the
    (noise-averaged) peak estimate clearing the detection threshold."""
    keep = cand["valid"] & ~is_fid & (diam_nm >= float(min_diameter_nm)) & (cand["peak"] >= thr)
    if max_diameter_nm is not None:
        keep &= diam_nm <= float(max_diameter_nm)
    return keep


def _candidates(sm, det, thr: float, split_touching: bool, min_sep_px: float, edge_fraction: float,
                shape_model: str, blur_px: dict, offset: tuple[int, int] = (0, 0), width: int | None = None) -> dict:
    """Every object of the detection before the keep rules: basins, measured cores and the cores
    grown to the model edge (``full``); per candidate its peak, centroid (whole-image px), contour
    and model radius (px), validity and first basin pixel (raster index in an image ``width`` px
    wide, ``sm[0, 0]`` at ``offset``)."""
    basins = _basins(det, sm, thr, split_touching, min_sep_px)
    n0 = int(basins.max())
    out: dict[str, Any] = {"basins": basins, "n0": n0}
    if n0 == 0:
        out["full"] = basins
        return out
    peak, core, cx, cy = _edge_contour(sm, basins, n0, edge_fraction, shape_model, blur_px["blur"], offset)
    area = np.bincount(core.ravel(), minlength=n0 + 1)[1:].astype(float)
    r_f = np.sqrt(area / np.pi)
    R = _model_radius(r_f, edge_fraction, shape_model, blur_px["blur"])
    grow = np.concatenate([[0.0], np.maximum(R - r_f, 0.0)])
    full = _grow(core, grow, limit=basins > 0)
    out.update(peak=peak, core=core, cx=cx, cy=cy, area=area, r_f=r_f, R=R, full=full,
               r_eq=np.where(np.isfinite(R), R, r_f), valid=np.isfinite(R) & (area > 0) & (peak > 0),
               grow=grow, first_basin=_first_pixels(basins, n0, offset, width),
               first_full=_first_pixels(full, n0, offset, width))
    return out


def _first_pixels(lab: np.ndarray, n: int, offset: tuple[int, int] = (0, 0), width: int | None = None) -> np.ndarray:
    """(n,) raster index (int64, in an image ``width`` px wide with ``lab[0, 0]`` at ``offset``)
    of the first pixel of each label 1..n; -1 for a label without pixels."""
    flat = lab.ravel()
    nz = np.flatnonzero(flat)
    labs, first = np.unique(flat[nz], return_index=True)
    out = np.full(n, -1, np.int64)
    iy, ix = np.divmod(nz[first], lab.shape[1])
    w = lab.shape[1] if width is None else int(width)
    out[labs - 1] = (iy + int(offset[0])) * w + ix + int(offset[1])
    return out


def _em_pixels(img, stride: int = 1) -> tuple[np.ndarray, dict, float]:
    """The image as float32 (non-finite pixels set to the median of the statistics sub-grid),
    its pixel sizes and the square pixel size (nm)."""
    px_d, px = _square_pixel(img)
    raw = np.asarray(img.values, dtype=np.float32)
    if raw.size == 0:
        raise ElementError("empty image", field=str(img.name))
    finite = np.isfinite(raw)
    if not finite.all():
        raw = np.where(finite, raw, np.float32(_finite_fill(raw[::stride, ::stride])))
    return raw, px_d, px


def _finite_fill(sample: np.ndarray) -> float:
    """The value non-finite pixels take: the median of the finite ones of the sample."""
    s = np.asarray(sample, np.float32)
    s = s[np.isfinite(s)]
    return float(np.median(s)) if s.size else 0.0


def _square_pixel(img) -> tuple[dict, float]:
    px_d = _pixel_size(img)
    if not np.isclose(px_d["x"], px_d["y"], rtol=1e-3):
        raise ElementError(f"non-square pixels {px_d} are not supported for segmentation", field=str(img.name))
    return px_d, float(np.sqrt(px_d["x"] * px_d["y"]))


def polarity_step(shape) -> int:
    """Stride of the sub-grid the polarity is decided on (at most about 2048 px a side)."""
    return max(1, int(np.ceil(max(shape) / 2048)))


def _auto_polarity(raw: np.ndarray) -> str:
    """``"dark"`` or ``"bright"`` of a whole image (see :func:`_polarity_of`)."""
    raw = np.asarray(raw, np.float32)
    return _polarity_of(raw[:: polarity_step(raw.shape), :: polarity_step(raw.shape)], polarity_step(raw.shape),
                        raw[:: stat_stride(raw.shape), :: stat_stride(raw.shape)])


def _polarity_of(sub: np.ndarray, step: int, stat: np.ndarray) -> str:
    """``"dark"`` or ``"bright"``: the side with more strong outliers (beyond 6 robust sigmas) of
    the image (``sub``: every ``step``-th pixel) smoothed at 2 px, after removing its variation
    over an eighth of the field (illumination; far larger than a particle, whatever the pixel
    size). Objects covering under 1 % of the field decide it, where a percentile tail of the raw
    pixels does not; without outliers on either side, the side of the longer percentile tail of
    the statistics sample ``stat``."""
    from scipy import ndimage as ndi

    img = np.asarray(sub, np.float32)
    hp = ndi.gaussian_filter(img, 2.0 / step) - ndi.gaussian_filter(img, min(img.shape) / 8.0)
    med = float(np.median(hp))
    sig = 1.4826 * float(np.median(np.abs(hp - med)))
    n_dark, n_bright = int(np.sum(hp < med - 6 * sig)), int(np.sum(hp > med + 6 * sig))
    if max(n_dark, n_bright) >= 20:
        return "dark" if n_dark > n_bright else "bright"
    p1, p50, p99 = np.percentile(stat, [0.5, 50, 99.5])
    return "dark" if (p50 - p1) > (p99 - p50) else "bright"


def _contrast_of(stat: np.ndarray, contrast: str) -> tuple[str, np.float32]:
    """The contrast actually used (log needs positive intensities) and the log floor, from the
    statistics sample of the raw image."""
    if contrast not in ("log", "linear"):
        raise ValueError(f"contrast must be 'log' or 'linear', got {contrast!r}")
    floor = np.float32(max(np.percentile(stat, 50) * 1e-3, 1e-6))
    if contrast == "log" and np.percentile(stat, 1) <= 0:
        contrast = "linear"
    return contrast, floor


def base_signal(raw: np.ndarray, contrast: str, floor: np.float32) -> np.ndarray:
    """Log intensity (or the intensity for linear contrast), float32."""
    return np.log(np.maximum(raw, floor)) if contrast == "log" else raw


def _em_contrast(raw: np.ndarray, polarity: str, contrast: str, stride: int = 1):
    """The polarity (``"auto"``: :func:`_polarity_of`), the contrast, the base signal and the log
    floor."""
    stat = raw[::stride, ::stride]
    if polarity == "auto":
        step = polarity_step(raw.shape)
        polarity = _polarity_of(raw[::step, ::step], step, stat)
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    contrast, floor = _contrast_of(stat, contrast)
    return base_signal(raw, contrast, floor), polarity, contrast, floor


def _flatten(base, sign: float, contrast: str, background_nm, px: float, smooth_px: float, stride: int = 1):
    """Background-flattened signal (particles positive), its smoothed version and the robust noise
    of the latter on the statistics sub-grid; the background is estimated twice, the second time
    with the particles masked."""
    from ._segment_background import Background

    h, w = base.shape
    fill = float(np.median(grid_part(base, 0, 0, stride)))
    if not background_nm:
        grid = background_grid(base.shape, max(h, w))
        bgs = [Background(grid, np.full((2, 2), np.nan), fill)]
    else:
        grid = background_grid(base.shape, round(float(background_nm) / px))
        bgs = [gather_background(grid, lambda ys, xs: base[ys, xs], fill)]
    sig = flattened(base, bgs[0].block(slice(0, h), slice(0, w)), sign, contrast)
    sm = smoothed(sig, smooth_px)
    noise = robust_sigma(grid_part(sm, 0, 0, stride))
    if background_nm:
        masked = np.where(particle_mask(sm, noise), np.float32(np.nan), base)
        bg = gather_background(grid, lambda ys, xs: masked[ys, xs], fill)
        del masked
        sig = flattened(base, bg.block(slice(0, h), slice(0, w)), sign, contrast)
        sm = smoothed(sig, smooth_px)
        noise = robust_sigma(grid_part(sm, 0, 0, stride))
    return sig, sm, noise


def _threshold(sm, noise: float, threshold, k_sigma: float, stride: int = 1) -> float:
    """Detection threshold (signal units): ``k_sigma`` x noise, Otsu on the statistics sample, or
    the given number (``"local"``: the noise floor of the local threshold)."""
    if isinstance(threshold, str):
        if threshold in ("noise", "local"):
            return float(k_sigma * noise)
        if threshold == "otsu":
            from skimage.filters import threshold_otsu

            return float(threshold_otsu(grid_part(sm, 0, 0, stride)))
        raise ValueError(f"threshold must be 'noise', 'otsu', 'local' or a number, got {threshold!r}")
    return float(threshold)


def _detection(sm, thr: float, threshold, noise: float, k_sigma: float, min_diameter_nm: float, max_diameter_nm,
               px: float):
    """The detection mask (opened, holes filled)."""
    from scipy import ndimage as ndi

    if isinstance(threshold, str) and threshold == "local":
        from skimage.filters import threshold_sauvola

        win = int(2 * round((max_diameter_nm or 4 * max(min_diameter_nm, 50.0)) / px) + 1)
        loc = threshold_sauvola(sm, window_size=max(win, 15))
        det = (sm > loc) & (sm > thr)
    else:
        det = sm > thr
    return ndi.binary_fill_holes(ndi.binary_opening(det, iterations=1))


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


def canonical_lut(keep: np.ndarray, first_full: np.ndarray) -> np.ndarray:
    """(n0 + 1,) int32 map from candidate label to particle id: kept candidates numbered 1..N by
    the raster index of their first labelled pixel, 0 for the others."""
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(first_full[kept], kind="stable")]
    lut = np.zeros(len(keep) + 1, np.int32)
    lut[order + 1] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut


def _kept_segmentation(img, cand: dict, keep, fids, info, sig_da) -> Segmentation:
    """The Segmentation of the kept objects: cores grown out to their model edge inside their
    basins, numbered 1..N by their first pixel in raster order."""
    R, r_f = cand["R"], cand["r_f"]
    scale = np.where(r_f > 0, R / np.maximum(r_f, 1e-9), 1.0)
    lut = canonical_lut(keep, cand["first_full"])
    full_r = lut[cand["full"]]
    core_r = lut[cand["core"]]
    by_id = np.argsort(np.where(lut[1:] > 0, lut[1:], np.iinfo(np.int32).max), kind="stable")[: int(keep.sum())]
    edge = _edge_ids(full_r)
    labels = _as_labels_array(full_r, img, n=int(keep.sum()), edge_ids=edge, modality="em", extra={})
    return Segmentation(
        labels=labels,
        signal=sig_da,
        core=core_r,
        length_scale=np.concatenate([[1.0], scale[by_id]]),
        fiducials=fids,
        info=info,
        peak=np.concatenate([[0.0], cand["peak"][by_id]]),
    )
