"""SIM image: diffraction-limited (~120 nm) rendering of the labels and fiducials, own frame."""

from __future__ import annotations

import numpy as np

from ..transforms import Transform
from ._config import SampleConfig
from ._geometry import corners_bbox

__all__ = ["render_sim", "deposit_bilinear"]


def deposit_bilinear(image: np.ndarray, origin, pixel: float, xy: np.ndarray, weights: np.ndarray) -> None:
    """Add ``weights`` at sub-pixel positions ``xy`` (nm, x, y) into ``image`` (bilinear), in place."""
    h, w = image.shape
    f = (np.asarray(xy, float) - np.asarray(origin, float)) / pixel
    i0 = np.floor(f).astype(np.int64)
    t = f - i0
    flat = image.reshape(-1)
    for dxi, dyi in ((0, 0), (1, 0), (0, 1), (1, 1)):
        c = i0[:, 0] + dxi
        r = i0[:, 1] + dyi
        wt = (t[:, 0] if dxi else 1 - t[:, 0]) * (t[:, 1] if dyi else 1 - t[:, 1])
        ok = (c >= 0) & (c < w) & (r >= 0) & (r < h)
        np.add.at(flat, r[ok] * w + c[ok], (weights[ok] * wt[ok]).astype(image.dtype))


def render_sim(cfg: SampleConfig, rng: np.random.Generator, sim_t: Transform, emit_world: np.ndarray,
               emit_weight: np.ndarray, beads_sim: np.ndarray | None = None, bead_sigma_nm: np.ndarray | None = None,
               bead_weight: np.ndarray | None = None):
    """Render the SIM image in its own frame.

    Point emitters (molecules) at ``emit_world`` (world nm) with ``emit_weight`` (molecule
    equivalents) are blurred by the PSF (FWHM ``sim_resolution_nm``); beads at ``beads_sim``
    (SIM frame nm) are pixel-integrated Gaussians of ``bead_sigma_nm`` (the PSF and the bead's
    own size) and ``bead_weight`` molecule equivalents.

    Returns (data float32 (H, W), origin (x0, y0) nm of pixel (0, 0) in the SIM frame).
    """
    from scipy.ndimage import gaussian_filter

    from ._beads import gaussian_pixel_profile
    from ._splat import splat

    px = float(cfg.sim_pixel_nm)
    m = float(cfg.sim_margin_nm)
    _, hi = corners_bbox(sim_t.inverse(), -m, cfg.field_nm + m)
    shape = (int(np.ceil(hi[1] / px)) + 1, int(np.ceil(hi[0] / px)) + 1)
    origin = (0.0, 0.0)
    img = np.zeros(shape, np.float64)
    xy = sim_t.inverse().apply(np.asarray(emit_world, float).reshape(-1, 2))
    deposit_bilinear(img, origin, px, xy, np.asarray(emit_weight, float) * cfg.sim_photons_per_molecule)
    sigma_px = cfg.sim_resolution_nm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / px
    img = gaussian_filter(img, sigma_px, truncate=4.0)
    if beads_sim is not None and len(beads_sim):
        sg = np.asarray(bead_sigma_nm, float).ravel()
        wt = np.asarray(bead_weight, float).ravel() * cfg.sim_photons_per_molecule
        splat(img, origin, px, np.asarray(beads_sim, float), 4.5 * sg + px, gaussian_pixel_profile(px),
              np.column_stack([sg, wt]), mode="add")
    img += cfg.sim_background
    img = rng.poisson(np.clip(img, 0, None)).astype(np.float32)
    img += rng.normal(0.0, cfg.sim_read_noise, img.shape).astype(np.float32)
    return img, origin
