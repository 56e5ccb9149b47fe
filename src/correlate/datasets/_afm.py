"""AFM height map of a sub-region: flattened particles, gold beads, tip dilation, tilt, noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..transforms import Transform
from ._config import SampleConfig
from ._splat import splat

__all__ = ["render_afm", "particle_height", "flattening"]


def flattening(cfg: SampleConfig, hard=None) -> np.ndarray | float:
    """Height / diameter on the substrate: 1 for hard particles, ``afm_flattening`` for soft ones."""
    if hard is None:
        return float(cfg.afm_flattening)
    return np.where(np.asarray(hard, bool), 1.0, float(cfg.afm_flattening))


def particle_height(cfg: SampleConfig, diameter_nm: np.ndarray, hard=None) -> np.ndarray:
    """Apparent height (nm) of a particle on the substrate: ``d`` for a hard particle
    (``hard`` True), ``afm_flattening * d`` for a soft one (all soft when ``hard`` is None)."""
    return flattening(cfg, hard) * np.asarray(diameter_nm, float)


def _ellipsoid(dx, dy, p):
    # p[..., 0]: height H, p[..., 1]: lateral semi-axis R. Resting ellipsoid top surface.
    h = p[..., 0]
    r = p[..., 1]
    q = 1.0 - (dx * dx + dy * dy) / (r * r)
    return np.where(q > 0, 0.5 * h * (1.0 + np.sqrt(np.clip(q, 0, None))), 0.0)


def _tip_structure(radius_nm: float, px: float, half_angle_deg: float | None = None,
                   max_height: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Footprint and (negative) surface height of the tip: a sphere of ``radius_nm``, continued
    by a cone of ``half_angle_deg`` (tangent to it) out to where it rises above ``max_height``."""
    r = float(radius_nm)
    if half_angle_deg:
        a = np.deg2rad(float(half_angle_deg))
        rho_t = r * np.cos(a)
        s_t = r - np.sqrt(r * r - rho_t * rho_t)
        rho_max = max(rho_t + max(max_height - s_t, 0.0) * np.tan(a), r)
    else:
        rho_max = r
    k = max(int(np.ceil(rho_max / px)), 1)
    o = np.arange(-k, k + 1) * px
    rho = np.sqrt(o[None, :] ** 2 + o[:, None] ** 2)
    foot = rho <= rho_max
    if half_angle_deg:
        s = np.where(rho <= rho_t, r - np.sqrt(np.clip(r * r - rho * rho, 0, None)), s_t + (rho - rho_t) / np.tan(a))
    else:
        s = r - np.sqrt(np.clip(r * r - rho * rho, 0, None))
    return foot, -np.where(foot, s, 0.0)


def render_afm(cfg: SampleConfig, rng: np.random.Generator, afm_t: Transform, particles: pd.DataFrame, fiducials: pd.DataFrame):
    """Height map (nm, float32) of the AFM region in its own frame.

    Soft particles are resting ellipsoids of height ``afm_flattening * d`` with the volume of the
    sphere, hard ones (column ``hard``) spheres; gold beads are rigid spheres. The map is
    dilated by a spherical tip of radius ``afm_tip_radius_nm`` (continued by a cone of
    ``afm_tip_half_angle_deg`` if set), then a tilted plane, line offsets and noise are added.

    Returns (data (H, W) float32, origin (x0, y0) nm of pixel (0, 0) in the AFM frame).
    """
    from scipy.ndimage import grey_dilation

    px = float(cfg.afm_pixel_nm)
    n = int(round(cfg.afm_field / px))
    origin = (0.0, 0.0)
    h = np.zeros((n, n), np.float64)
    inv = afm_t.inverse()
    if len(particles):
        c = inv.apply(particles[["x", "y"]].to_numpy(float))
        d = particles["diameter_nm"].to_numpy(float)
        hard = particles["hard"].to_numpy(bool) if "hard" in particles.columns else None
        hh = particle_height(cfg, d, hard)
        f = np.maximum(flattening(cfg, hard), 1e-3)
        rl = 0.5 * d / np.sqrt(f)
        splat(h, origin, px, c, rl, _ellipsoid, np.column_stack([hh, rl]), mode="max")
    if len(fiducials):
        c = inv.apply(fiducials[["x", "y"]].to_numpy(float))
        d = fiducials["diameter_nm"].to_numpy(float)
        splat(h, origin, px, c, 0.5 * d, _ellipsoid, np.column_stack([d, 0.5 * d]), mode="max")
    if cfg.afm_tip_radius_nm and cfg.afm_tip_radius_nm > 0:
        foot, struct = _tip_structure(float(cfg.afm_tip_radius_nm), px, cfg.afm_tip_half_angle_deg, float(h.max()))
        h = grey_dilation(h, footprint=foot, structure=struct)
    coords = origin[0] + px * np.arange(n)
    tx, ty = cfg.afm_tilt
    h += cfg.afm_offset_nm + tx * coords[None, :] + ty * coords[:, None]
    h += rng.normal(0.0, cfg.afm_line_noise_nm, (n, 1))
    h += rng.normal(0.0, cfg.afm_noise_nm, (n, n))
    return h.astype(np.float32), origin
