"""EM particle segmentation in blocks with overlap, for images that do not fit in memory.

The labels equal those of :func:`~correlate.analysis.segment_em` on the whole image, pixel for
pixel and id for id:

- image-wide statistics (polarity, log floor, background, noise, threshold) come from the same
  estimators (:mod:`correlate.analysis._segment_background`), gathered in passes over the lazy
  array (window medians window by window, noise on the statistics sub-grid block by block);
- each block is segmented with an overlap of the largest particle allowed plus the distance
  over which objects influence each other (:func:`~correlate.analysis._segment_plan.overlap_px`),
  and the smoothed signal is computed with its own support beyond that, so every object that
  stays clear of the extended block's edge is computed from the same pixels as in the whole image;
- a cluster of objects (objects within the interaction distance of each other) that touches a
  block's interior and reaches the edge of its extended block is larger than the overlap: an
  error naming the options, never a cut particle;
- an object belongs to the block whose interior holds its first basin pixel (raster order);
  particles are numbered by their first labelled pixel in raster order, as the whole-image path
  numbers them.

Lengths nm unless named px.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from ..errors import CorrelateError
from ._segment_background import (MASK_HALO, Background, background_grid, gather_background, grid_part,
                                  particle_mask, robust_sigma, smooth_radius, stat_stride)
from ._segment_em import (_blur_px, _contrast_of, _finite_fill, _min_sep_px, _polarity_of, _square_pixel, base_signal,
                          polarity_step)
from ._segment_plan import BlockPlan, interaction_px, overlap_px, plan_blocks
from ._segment_signal import TiledSegmentation, _Globals, _grow_slices, _Reader, _signal

__all__ = ["TiledSegmentation", "segment_em_tiled"]


def _noise_pass(read: _Reader, g: _Globals, bg: Background, plan: BlockPlan) -> np.ndarray:
    """The smoothed signal on the statistics sub-grid, block by block."""
    parts = []
    for ys, xs in plan.interiors():
        _, sm, _ = _signal(read, g, bg, ys, xs)
        parts.append(grid_part(sm, ys.start, xs.start, g.stride))
    return np.concatenate(parts)


def _masked_window(read: _Reader, g: _Globals, bg1: Background, noise1: float):
    """window(ys, xs): the base signal of a window with the particle mask of the first
    background estimate set to NaN."""
    def window(ys: slice, xs: slice) -> np.ndarray:
        ry, rx = _grow_slices(ys, xs, MASK_HALO, g.shape)
        base, sm, _ = _signal(read, g, bg1, ry, rx)
        masked = np.where(particle_mask(sm, noise1), np.float32(np.nan), base)
        return masked[ys.start - ry.start : ys.stop - ry.start, xs.start - rx.start : xs.stop - rx.start]
    return window


def _globals(img, read: _Reader, plan: BlockPlan, *, polarity, contrast, background_nm, smooth_nm, threshold,
             k_sigma) -> tuple[_Globals, float]:
    """Polarity, contrast, background and threshold of the whole image, in passes over blocks;
    returns them and the threshold."""
    px_d, px = _square_pixel(img)
    shape = tuple(int(n) for n in img.shape)
    stride = stat_stride(shape)
    stat = read.strided(stride)
    fill = _finite_fill(stat)
    read.fill = fill
    stat = np.where(np.isfinite(stat), stat, np.float32(fill))
    if polarity == "auto":
        step = polarity_step(shape)
        polarity = _polarity_of(read.strided(step), step, stat)
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    contrast, floor = _contrast_of(stat, contrast)
    smooth_px = 1.5 if smooth_nm is None else float(smooth_nm) / px
    g = _Globals(shape, px, px_d, fill, -1.0 if polarity == "dark" else 1.0, contrast, floor, smooth_px,
                 smooth_radius(smooth_px), stride, {"polarity": polarity, "contrast": contrast})
    fill_b = float(np.median(base_signal(stat, contrast, floor)))
    if not background_nm:
        bg = Background(background_grid(shape, max(shape)), np.full((2, 2), np.nan), fill_b)
        sample = _noise_pass(read, g, bg, plan)
    else:
        grid = background_grid(shape, round(float(background_nm) / px))
        bg1 = gather_background(grid, lambda ys, xs: base_signal(read(ys, xs), contrast, floor), fill_b)
        noise1 = robust_sigma(_noise_pass(read, g, bg1, plan))
        bg = gather_background(grid, _masked_window(read, g, bg1, noise1), fill_b)
        sample = _noise_pass(read, g, bg, plan)
    g.bg = bg
    noise = robust_sigma(sample)
    if isinstance(threshold, str):
        if threshold == "noise":
            thr = float(k_sigma * noise)
        elif threshold == "otsu":
            from skimage.filters import threshold_otsu

            thr = float(threshold_otsu(sample))
        elif threshold == "local":
            raise CorrelateError("threshold='local' (Sauvola) is not available in blocks: use threshold='noise', "
                                 "'otsu' or a number, or segment the whole image (a larger --memory-budget)",
                                 field="threshold")
        else:
            raise ValueError(f"threshold must be 'noise', 'otsu', 'local' or a number, got {threshold!r}")
    else:
        thr = float(threshold)
    g.info.update(noise=float(noise), detection_threshold=thr, smooth_px=float(smooth_px), stat_stride=int(stride))
    return g, thr


def segment_em_tiled(
    image,
    *,
    block_px: int | None = None,
    memory_budget=None,
    overlap_nm: float | None = None,
    labels_path: str | Path | None = None,
    in_workdir: bool = False,
    polarity: str = "auto",
    contrast: str = "log",
    background_nm: float | None = 500.0,
    smooth_nm: float | None = None,
    threshold="noise",
    k_sigma: float = 6.0,
    min_diameter_nm: float = 20.0,
    max_diameter_nm: float | None = None,
    split_touching: bool = True,
    min_separation_nm: float | None = None,
    edge_fraction: float = 0.5,
    shape_model: str = "sphere",
    psf_sigma_nm: float | None = None,
    exclude_fiducials: bool = True,
    fiducial_ratio: float = 3.0,
    exclude_at: np.ndarray | None = None,
) -> TiledSegmentation:
    """Segment particles in an EM image block by block (labels equal to :func:`segment_em`'s).

    Parameters
    ----------
    image
        Image element (y, x), typically dask-backed (a store's image); never loaded whole.
    block_px
        Side (px) of the block interiors; default chosen from ``memory_budget``.
    memory_budget
        Bytes (or ``"2GiB"``) a block may use; default a quarter of the available memory, at most
        2 GiB.
    overlap_nm
        Overlap (nm) read beyond each block; default from the largest particle allowed
        (``max_diameter_nm``, else ``background_nm``, which must exceed the largest particle) and
        the distance objects influence each other over.
    labels_path
        Zarr array (a new folder) the labels are written to block by block; None keeps them in
        memory (small images, tests) unless ``in_workdir``.
    in_workdir
        Write the labels to a zarr array in a temporary folder that lives as long as the result
        (the particle pipeline: the store step copies them block by block).
    polarity, contrast, background_nm, smooth_nm, threshold, k_sigma, min_diameter_nm,
    max_diameter_nm, split_touching, min_separation_nm, edge_fraction, shape_model,
    psf_sigma_nm, exclude_fiducials, fiducial_ratio, exclude_at
        As in :func:`segment_em` (``threshold="local"`` is not available in blocks).

    Returns
    -------
    TiledSegmentation
        ``info`` records the estimated statistics and the block plan (``block_px``,
        ``overlap_px``, ``memory_budget``, ``n_blocks``).

    Raises
    ------
    CorrelateError
        When an object (or a cluster of touching objects) is larger than the overlap.
    """
    from ._segment_blocks import run_blocks
    from ._segmentation import _image_2d

    img = _image_2d(image)
    px_d, px = _square_pixel(img)
    min_sep_px = _min_sep_px(min_separation_nm, min_diameter_nm, px)
    largest = max_diameter_nm if max_diameter_nm is not None else background_nm
    if overlap_nm is not None:
        ov, ov_src = int(math.ceil(float(overlap_nm) / px)), "overlap_nm"
    elif largest:
        ov, ov_src = overlap_px(float(largest), px, min_sep_px), (
            "max_diameter_nm" if max_diameter_nm is not None else "background_nm")
    else:
        raise CorrelateError("segmenting in blocks needs the largest particle diameter: give max_diameter_nm "
                             "(--max-diameter-nm) or overlap_nm", field="max_diameter_nm")
    plan = plan_blocks(img.shape, ov, block_px=block_px, memory_budget=memory_budget)
    read = _Reader(img)
    g, thr = _globals(img, read, plan, polarity=polarity, contrast=contrast, background_nm=background_nm,
                      smooth_nm=smooth_nm, threshold=threshold, k_sigma=k_sigma)
    blur_px = _blur_px(img, psf_sigma_nm, px, g.smooth_px)
    info = {"modality": "em", **g.info, "edge_fraction": float(edge_fraction), "shape_model": shape_model,
            "psf_sigma_nm": blur_px["psf"] * px, "blur_sigma_nm": blur_px["blur"] * px,
            **plan.as_dict(), "overlap_source": ov_src, "overlap_nm": plan.overlap * px,
            "interaction_px": interaction_px(min_sep_px, 0.0)}
    params = dict(thr=thr, threshold=threshold, k_sigma=k_sigma, min_diameter_nm=min_diameter_nm,
                  max_diameter_nm=max_diameter_nm, split_touching=split_touching, min_sep_px=min_sep_px,
                  edge_fraction=float(edge_fraction), shape_model=shape_model, blur_px=blur_px,
                  exclude_fiducials=exclude_fiducials, fiducial_ratio=fiducial_ratio, exclude_at=exclude_at)
    tmp = tempfile.TemporaryDirectory(prefix="correlate-seg-")
    if in_workdir:
        labels_path = Path(tmp.name) / "labels.zarr"
    try:
        res = run_blocks(img, read, g, plan, params, info, Path(tmp.name), labels_path)
    except BaseException:
        tmp.cleanup()
        raise
    if in_workdir:
        res.workdir = tmp
    else:
        tmp.cleanup()
    return res
