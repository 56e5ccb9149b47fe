"""Particle segmentation in AFM height maps (value unit nm): levelling, detection, fiducials.

See :mod:`correlate.analysis._segment` for the method; heights are measured by
:mod:`correlate.analysis._afm_heights`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..elements import origin as _origin
from ..elements import pixel_size as _pixel_size
from ._segmentation import (Segmentation, _as_labels_array, _as_signal, _edge_ids, _empty_segmentation,
                            _fiducial_table, _image_2d, _label_max, _relabel, _robust_sigma, _watershed_split)

__all__ = ["level_afm", "segment_afm"]


def level_afm(
    height: np.ndarray,
    *,
    method: Literal["plane", "line", "plane+line", "none"] = "plane+line",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Level an AFM height map (nm): subtract a least-squares plane and/or the median of each
    scan line (row), computed over pixels not in ``mask`` (particles). Returns float64 nm."""
    h = np.asarray(height, dtype=float)
    bgm = np.ones(h.shape, bool) if mask is None else ~mask
    if bgm.sum() < 3:
        bgm = np.ones(h.shape, bool)
    out = h.copy()
    if method in ("plane", "plane+line"):
        yy, xx = np.indices(h.shape)
        A = np.column_stack([np.ones(bgm.sum()), xx[bgm], yy[bgm]])
        coef, *_ = np.linalg.lstsq(A, out[bgm], rcond=None)
        out = out - (coef[0] + coef[1] * xx + coef[2] * yy)
    if method in ("line", "plane+line"):
        m = np.where(bgm, out, np.nan)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(m, axis=1)
        med = np.where(np.isfinite(med), med, np.nanmedian(med) if np.isfinite(med).any() else 0.0)
        out = out - med[:, None]
    elif method not in ("plane", "none"):
        raise ValueError(f"level must be 'plane', 'line', 'plane+line' or 'none', got {method!r}")
    return out


def segment_afm(
    image,
    *,
    level: Literal["plane", "line", "plane+line", "none"] = "plane+line",
    threshold_nm: float | None = None,
    k_sigma: float = 5.0,
    smooth_nm: float | None = None,
    min_diameter_nm: float = 10.0,
    max_diameter_nm: float | None = None,
    split_touching: bool = True,
    min_separation_nm: float | None = None,
    exclude_at: np.ndarray | None = None,
    exclude_fiducials: bool = True,
    fiducial_height_ratio: float | None = None,
) -> Segmentation:
    """Segment particles in an AFM height map (value unit nm).

    Parameters
    ----------
    image
        Image element (y, x); values are heights in nm (``attrs['value_unit']`` 'nm').
    level
        Background levelling (see :func:`level_afm`), iterated with particles masked.
    threshold_nm
        Height (nm) above the levelled substrate that makes a particle pixel; default
        ``max(1 nm, k_sigma * noise)``.
    smooth_nm
        Gaussian smoothing (nm) for detection; default 0.75 px. Heights are measured on the
        unsmoothed levelled map (``Segmentation.height``).
    min_diameter_nm, max_diameter_nm
        Size filter on the equivalent diameter of the thresholded region (tip-broadened).
    exclude_at
        (K, 2) positions (x, y nm, this image's frame) of known fiducials, e.g. the landmarks of
        a registration of this image: objects holding one are reported in
        ``Segmentation.fiducials`` (``reason`` "position") and not labelled.
    exclude_fiducials
        False labels every object (``exclude_at`` and the shape rule are ignored).
    fiducial_height_ratio
        Opt-in shape rule (None: off): objects whose height / equivalent width exceeds it are
        taken for fiducials (``reason`` "shape"). It also drops hard particles (silica, polymer,
        metal cores keep their height as gold does): use it only where every hard object is gold.

    Returns
    -------
    Segmentation
        ``signal`` is the smoothed levelled height the particles were found in, ``height`` the
        unsmoothed levelled height (nm) the heights are measured on.
    """
    from scipy import ndimage as ndi

    from ._fiducial_exclusion import as_positions, objects_at

    img = _image_2d(image)
    unit = str(img.attrs.get("value_unit", "nm") or "nm")
    from ..units import to_nm_factor

    fac = to_nm_factor(unit) if unit not in ("", "nm") else 1.0
    px_d = _pixel_size(img)
    px = float(np.sqrt(px_d["x"] * px_d["y"]))
    raw = np.asarray(img.values, dtype=float) * fac
    if not np.isfinite(raw).all():
        raw = np.where(np.isfinite(raw), raw, np.nanmedian(raw))
    smooth_px = 0.75 if smooth_nm is None else float(smooth_nm) / px
    pos = as_positions(exclude_at)
    mask = None
    h = raw
    for _ in range(3):
        h = level_afm(raw, method=level, mask=mask)
        sm = ndi.gaussian_filter(h, smooth_px) if smooth_px > 0 else h
        noise = float(1.4826 * np.median(np.abs(h[~mask] - np.median(h[~mask])))) if mask is not None else _robust_sigma(h)
        thr = float(threshold_nm) if threshold_nm is not None else max(1.0, k_sigma * noise)
        mask = ndi.binary_dilation(sm > 0.5 * thr, iterations=2)
    det = ndi.binary_fill_holes(ndi.binary_opening(sm > thr, iterations=1))
    info: dict[str, Any] = {"modality": "afm", "noise_nm": noise, "threshold_nm": thr, "level": level,
                            "smooth_px": smooth_px, "shape_model": "flat",
                            "fiducial_height_ratio": fiducial_height_ratio, "n_exclude_at": len(pos)}
    min_sep_px = (float(min_separation_nm) if min_separation_nm else 0.5 * float(min_diameter_nm)) / px
    if split_touching:
        lab = _watershed_split(det, min_sep_px)
    else:
        lab, _ = ndi.label(det)
        lab = lab.astype(np.int32)
    n0 = int(lab.max())
    if n0 == 0:
        info.update(n_candidates=0, n_fiducials=0, n_exclude_at_unmatched=len(pos))
        seg = _empty_segmentation(img, sm, info)
        seg.height = _as_signal(h, img, "afm", "nm")
        return seg
    idx = np.arange(1, n0 + 1)
    area = np.bincount(lab.ravel(), minlength=n0 + 1)[1:]
    r_px = np.sqrt(area / np.pi)
    d_nm = 2 * r_px * px
    peak = _label_max(sm, lab, n0)[1:]
    keep = d_nm >= float(min_diameter_nm)
    if max_diameter_nm is not None:
        keep &= d_nm <= float(max_diameter_nm)
    cy = np.asarray(ndi.mean(np.indices(lab.shape)[0], lab, idx), float)
    cx = np.asarray(ndi.mean(np.indices(lab.shape)[1], lab, idx), float)
    x0 = _origin(img)
    at_pos = np.zeros(n0, bool)
    by_shape = np.zeros(n0, bool)
    matched = np.zeros(len(pos), bool)
    if exclude_fiducials:
        at_pos, matched = objects_at(pos, lab, cx, cy, r_px, origin_nm=x0, pixel_nm=px_d)
        if fiducial_height_ratio:
            by_shape = (peak / np.maximum(d_nm, 1e-9) > float(fiducial_height_ratio)) & ~at_pos
    is_fid = at_pos | by_shape
    fids = _fiducial_table(x0, px_d, cx, cy, d_nm, at_pos, by_shape)
    keep &= ~is_fid
    keep_l = np.concatenate([[False], keep])
    lab = _relabel(np.where(keep_l[lab], lab, 0), keep_l)
    n = int(keep.sum())
    info.update(n_candidates=n0, n_fiducials=int(is_fid.sum()), n_fiducials_at_positions=int(at_pos.sum()),
                n_fiducials_by_shape=int(by_shape.sum()), n_exclude_at_unmatched=int((~matched).sum()))
    edge = _edge_ids(lab)
    return Segmentation(
        labels=_as_labels_array(lab, img, n=n, edge_ids=edge, modality="afm", extra={}),
        signal=_as_signal(sm, img, "afm", "nm"),
        core=lab.copy(),
        length_scale=np.ones(n + 1),
        fiducials=fids,
        info=info,
        peak=np.concatenate([[0.0], peak[keep]]),
        height=_as_signal(h, img, "afm", "nm"),
    )
