"""EM micrograph: projected-thickness contrast, blur, uneven background, shot and read noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._config import SampleConfig
from ._splat import chord, shell_chord, splat

__all__ = ["render_em"]


def _background(cfg: SampleConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth relative background (mean ~1): a ramp plus a few low-frequency separable modes."""
    u = np.linspace(-0.5, 0.5, n)
    ang = rng.uniform(0, 2 * np.pi)
    g = float(cfg.em_gradient)
    # float32 throughout: one full-size temporary per term, written in place
    row = (1.0 + g * np.cos(ang) * u).astype(np.float32)  # varies along x
    col = (g * np.sin(ang) * u).astype(np.float32)  # varies along y
    bg = np.add.outer(col, row)
    tmp = np.empty_like(bg)
    for _ in range(3):
        kx, ky = rng.uniform(0.5, 2.0, 2) * np.pi
        px, py = rng.uniform(0, 2 * np.pi, 2)
        a = float(cfg.em_lowfreq) * rng.uniform(0.5, 1.0)
        np.multiply.outer((a * np.cos(ky * u + py)).astype(np.float32), np.cos(kx * u + px).astype(np.float32), out=tmp)
        bg += tmp
    return bg


def render_em(cfg: SampleConfig, rng: np.random.Generator, particles: pd.DataFrame, fiducials: pd.DataFrame):
    """Render the EM micrograph.

    Returns
    -------
    data : (H, W) float32 (or uint16) array; pixel (i, j) centre at ``px * (j, i)`` (world nm),
        so the image covers ``[-px/2, field - px/2]``.
    origin : (0, 0), the centre of pixel (0, 0).
    """
    from scipy.ndimage import gaussian_filter

    px = float(cfg.em_pixel_nm)
    n = int(round(cfg.field_nm / px))
    origin = (0.0, 0.0)
    att = np.zeros((n, n), np.float32)
    # particles
    if len(particles):
        c = particles[["x", "y"]].to_numpy(float)
        r = 0.5 * particles["diameter_nm"].to_numpy(float)
        mu = float(cfg.em_particle_mu)
        wall = cfg.em_shell_nm
        if wall:
            prof = lambda dx, dy, p: mu * shell_chord(dx * dx + dy * dy, p[..., 0], float(wall))  # noqa: E731
        else:
            prof = lambda dx, dy, p: mu * chord(dx * dx + dy * dy, p[..., 0])  # noqa: E731
        splat(att, origin, px, c, r, prof, r[:, None], mode="add")
    if len(fiducials):
        c = fiducials[["x", "y"]].to_numpy(float)
        r = 0.5 * fiducials["diameter_nm"].to_numpy(float)
        mu = float(cfg.em_gold_mu)
        prof = lambda dx, dy, p: mu * chord(dx * dx + dy * dy, p[..., 0])  # noqa: E731
        splat(att, origin, px, c, r, prof, r[:, None], mode="add")
    img = _background(cfg, rng, n)
    img *= np.float32(cfg.em_dose)
    np.exp(-att, out=att)
    img *= att
    del att
    if cfg.em_psf_px and cfg.em_psf_px > 0:
        img = gaussian_filter(img, float(cfg.em_psf_px), truncate=3.5)
    # shot noise (Gaussian approximation of Poisson at these doses) + read noise
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= np.sqrt(np.maximum(img, 0.0) + np.float32(cfg.em_read_noise) ** 2)
    img += noise
    del noise
    if cfg.em_dtype == "uint16":
        img = np.clip(np.round(img), 0, 65535).astype(np.uint16)
    else:
        img = img.astype(np.float32, copy=False)
    return img, origin
