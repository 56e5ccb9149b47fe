"""Large synthetic EM micrographs with ground truth, written block by block into a zarr array
(never whole in memory): the simulator's EM model (projected-thickness contrast of spheres,
Beer-Lambert attenuation, a smooth uneven illumination, Gaussian blur, shot and read noise),
evaluated per block from the particle table. Lengths nm; pixel (i, j) centre at
``pixel_nm * (j, i)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._splat import chord, splat

__all__ = ["em_particle_field", "write_em_blocks"]


def em_particle_field(shape: tuple[int, int], pixel_nm: float, *, n_particles: int, diameter_nm=(20.0, 200.0),
                      touching_fraction: float = 0.2, seed: int = 0, margin_nm: float = 0.0) -> pd.DataFrame:
    """Particles (x, y, diameter_nm, nm) spread over an image of ``shape`` px: log-uniform sizes,
    no two overlapping; a fraction placed touching an earlier one (centre distance = sum of radii).

    Returns
    -------
    pandas.DataFrame
        x, y, diameter_nm, touching (bool).
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    h, w = shape
    lo, hi = float(diameter_nm[0]), float(diameter_nm[1])
    n_free = int(round(n_particles * (1 - touching_fraction)))
    xy = rng.uniform([margin_nm, margin_nm], [w * pixel_nm - margin_nm, h * pixel_nm - margin_nm], (n_free, 2))
    d = np.exp(rng.uniform(np.log(lo), np.log(hi), n_free))
    # drop free particles that overlap (vectorised: pairs within the largest diameter)
    pairs = cKDTree(xy).query_pairs(hi + 2.0, output_type="ndarray")
    if len(pairs):
        gap = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T) - 0.5 * (d[pairs[:, 0]] + d[pairs[:, 1]])
        bad = pairs[gap < 2.0 * pixel_nm]
        keep = np.ones(n_free, bool)
        keep[bad[:, 1]] = False
        xy, d = xy[keep], d[keep]
    n_t = int(round(n_particles * touching_fraction))
    n_t = min(n_t, len(xy))
    parent = rng.choice(len(xy), n_t, replace=False) if n_t else np.zeros(0, int)  # pairs, not chains
    dt = np.exp(rng.uniform(np.log(lo), np.log(hi), n_t))
    ang = rng.uniform(0, 2 * np.pi, n_t)
    dist = 0.5 * (d[parent] + dt)
    xyt = xy[parent] + dist[:, None] * np.c_[np.cos(ang), np.sin(ang)]
    all_xy = np.vstack([xy, xyt])
    all_d = np.concatenate([d, dt])
    touching = np.concatenate([np.zeros(len(xy), bool), np.ones(n_t, bool)])
    touching[parent] = True
    # a touching particle may land on a third one: keep the first of any overlapping pair
    tree = cKDTree(all_xy)
    pairs = tree.query_pairs(hi + 2.0, output_type="ndarray")
    keep = np.ones(len(all_xy), bool)
    if len(pairs):
        gap = np.hypot(*(all_xy[pairs[:, 0]] - all_xy[pairs[:, 1]]).T) - 0.5 * (all_d[pairs[:, 0]] + all_d[pairs[:, 1]])
        keep[pairs[gap < -0.5 * pixel_nm, 1]] = False
    inside = ((all_xy[:, 0] >= 0) & (all_xy[:, 0] <= (w - 1) * pixel_nm) & (all_xy[:, 1] >= 0)
              & (all_xy[:, 1] <= (h - 1) * pixel_nm))
    keep &= inside
    return pd.DataFrame({"x": all_xy[keep, 0], "y": all_xy[keep, 1], "diameter_nm": all_d[keep],
                         "touching": touching[keep]})


def _illumination(ys: slice, xs: slice, shape, gradient: float, seed: int) -> np.ndarray:
    """The simulator's smooth relative background (a ramp and three low-frequency modes) on a block."""
    rng = np.random.default_rng([seed, 7])
    h, w = shape
    uy = (np.arange(ys.start, ys.stop) / max(h - 1, 1) - 0.5).astype(np.float32)
    ux = (np.arange(xs.start, xs.stop) / max(w - 1, 1) - 0.5).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    bg = np.add.outer(gradient * np.sin(ang) * uy, 1.0 + gradient * np.cos(ang) * ux).astype(np.float32)
    for _ in range(3):
        kx, ky = rng.uniform(0.5, 2.0, 2) * np.pi
        px, py = rng.uniform(0, 2 * np.pi, 2)
        a = 0.5 * gradient * rng.uniform(0.5, 1.0)
        bg += np.multiply.outer((a * np.cos(ky * uy + py)).astype(np.float32), np.cos(kx * ux + px).astype(np.float32))
    return bg


def write_em_blocks(path: str | Path, particles: pd.DataFrame, shape: tuple[int, int], pixel_nm: float, *,
                    block: int = 2048, chunk: int = 1024, dose: float = 400.0, mu: float = 0.006,
                    psf_px: float = 1.2, gradient: float = 0.1, read_noise: float = 2.0, seed: int = 0):
    """Render the micrograph of ``particles`` block by block into a new zarr array (uint16).

    Parameters
    ----------
    path
        Folder of the new zarr (v3) array.
    particles
        x, y, diameter_nm (nm) as :func:`em_particle_field` gives.
    shape, pixel_nm
        Image shape (px) and pixel size (nm).
    block, chunk
        Rendering block and stored chunk side (px); a block holds whole chunks.
    dose, mu, psf_px, gradient, read_noise
        Electrons per pixel, attenuation per nm of thickness, blur sigma (px), illumination
        variation, read noise (counts).

    Returns
    -------
    zarr.Array
    """
    import zarr
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    h, w = int(shape[0]), int(shape[1])
    block = max(chunk, (int(block) // chunk) * chunk)
    z = zarr.create_array(store=str(path), shape=(h, w), chunks=(min(chunk, h), min(chunk, w)), dtype="uint16",
                          fill_value=0, compressors=zarr.codecs.ZstdCodec(level=1), zarr_format=3,
                          dimension_names=("y", "x"))
    c = particles[["x", "y"]].to_numpy(float)
    r = 0.5 * particles["diameter_nm"].to_numpy(float)
    tree = cKDTree(c) if len(c) else None
    r_max = float(r.max()) if len(r) else 0.0
    halo = int(np.ceil(3.5 * psf_px)) + 1
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            ys, xs = slice(max(0, y0 - halo), min(h, y0 + block + halo)), slice(max(0, x0 - halo), min(w, x0 + block + halo))
            att = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
            if tree is not None:
                centre = np.array([(xs.start + xs.stop - 1) / 2, (ys.start + ys.stop - 1) / 2]) * pixel_nm
                half = 0.5 * np.hypot(xs.stop - xs.start, ys.stop - ys.start) * pixel_nm + r_max
                sel = np.asarray(tree.query_ball_point(centre, half), int)
                if sel.size:
                    prof = lambda dx, dy, p: mu * chord(dx * dx + dy * dy, p[..., 0])  # noqa: E731
                    splat(att, (xs.start * pixel_nm, ys.start * pixel_nm), pixel_nm, c[sel], r[sel], prof,
                          r[sel][:, None], mode="add")
            img = _illumination(ys, xs, (h, w), gradient, seed) * np.float32(dose) * np.exp(-att)
            if psf_px > 0:
                img = gaussian_filter(img, float(psf_px), truncate=3.5)
            iy, ix = slice(y0 - ys.start, min(h, y0 + block) - ys.start), slice(x0 - xs.start, min(w, x0 + block) - xs.start)
            img = img[iy, ix]
            rng = np.random.default_rng([seed, y0, x0])
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.sqrt(np.maximum(img, 0) + read_noise**2)
            z[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = np.clip(np.round(img), 0, 65535).astype(np.uint16)
    return z
