"""Sample geometry: particle and fiducial positions, and the truth transforms between frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ..transforms import Affine, Identity, ThinPlateSpline, Transform, compose
from ._config import SampleConfig

__all__ = [
    "place_fiducials",
    "place_particles",
    "make_transforms",
    "image_extent",
    "corners_bbox",
]


def image_extent(side_nm: float, pixel_nm: float) -> tuple[float, float]:
    """(lo, hi) nm covered by a square image of ``round(side/pixel)`` pixels whose pixel centres
    sit at ``i * pixel`` (the reader convention): ``[-pixel/2, n * pixel - pixel/2]``."""
    n = int(round(side_nm / pixel_nm))
    return -0.5 * pixel_nm, (n - 0.5) * pixel_nm


def _similarity(scale: float, rotation_deg: float, offset) -> Affine:
    return Affine.similarity(scale=float(scale), rotation_rad=np.deg2rad(rotation_deg), offset=offset)


def afm_transform(cfg: SampleConfig) -> Affine:
    """AFM frame -> world: a rotation about the region centre and a shift. The AFM image has
    ``n = round(afm_field / afm_pixel_nm)`` pixels a side, pixel centres at ``i * afm_pixel_nm``
    in its own frame; its centre lands on ``afm_center``."""
    n = int(round(cfg.afm_field / cfg.afm_pixel_nm))
    half = 0.5 * (n - 1) * cfg.afm_pixel_nm
    rot = _similarity(1.0, cfg.afm_rotation_deg, (0.0, 0.0))
    cx, cy = cfg.afm_center
    centre_img = rot.apply(np.array([half, half]))
    return Affine.from_parts(rot.linear, np.array([cx, cy]) - centre_img)


def _dart(rng, n, lo, hi, min_sep, existing=None, max_tries=20000):
    """Draw ``n`` points uniformly in the box [lo, hi]^2 at least ``min_sep`` from each other and
    from ``existing``; relaxes ``min_sep`` if it cannot."""
    pts = [] if existing is None else [tuple(p) for p in np.asarray(existing).reshape(-1, 2)]
    base = len(pts)
    sep = float(min_sep)
    tries = 0
    while len(pts) - base < n:
        cand = rng.uniform(lo, hi, size=2)
        if pts:
            d = np.hypot(*(np.asarray(pts) - cand).T)
            ok = d.min() >= sep
        else:
            ok = True
        if ok:
            pts.append(tuple(cand))
        tries += 1
        if tries > max_tries:
            sep *= 0.8
            tries = 0
    return np.asarray(pts[base:], float).reshape(-1, 2)


def place_fiducials(cfg: SampleConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Gold fiducials spread over the field (not collinear), ``afm_min_fiducials`` of them inside
    the AFM region. Returns a DataFrame fiducial_id, x, y (world nm), diameter_nm."""
    n = int(cfg.n_fiducials)
    if n == 0:
        return pd.DataFrame({"fiducial_id": np.zeros(0, np.int64), "x": [], "y": [], "diameter_nm": []})
    L = float(cfg.field_nm)
    inset = max(0.06 * L, 2 * cfg.fiducial_diameter_nm)
    sep = 0.55 * L / np.sqrt(n)
    pts = np.zeros((0, 2))
    k_afm = min(int(cfg.afm_min_fiducials), n)  # also without AFM: same geometry either way
    if k_afm:
        t = afm_transform(cfg)
        a = cfg.afm_field
        local = _dart(rng, k_afm, 0.12 * a, 0.88 * a, 0.45 * a / np.sqrt(k_afm))
        world = t.apply(local)
        # keep inside the field as well
        world = np.clip(world, inset, L - inset)
        pts = world
    rest = n - len(pts)
    for _ in range(20):
        more = _dart(rng, rest, inset, L - inset, sep, existing=pts)
        allp = np.vstack([pts, more])
        c = allp - allp.mean(0)
        sv = np.linalg.svd(c, compute_uv=False) if len(allp) >= 3 else np.array([1.0, 1.0])
        if len(allp) < 3 or sv[-1] > 0.15 * sv[0]:
            break
    pts = allp
    d = np.full(n, float(cfg.fiducial_diameter_nm)) * rng.normal(1.0, 0.04, n)
    return pd.DataFrame({"fiducial_id": np.arange(n, dtype=np.int64), "x": pts[:, 0], "y": pts[:, 1], "diameter_nm": d})


def place_particles(cfg: SampleConfig, rng: np.random.Generator, fiducials: pd.DataFrame) -> pd.DataFrame:
    """Non-overlapping spheres (a few touching pairs) with lognormal diameters.

    Returns particle_id, x, y (world nm), diameter_nm, edge (cut by or outside the EM field),
    touching (id of the touching partner or -1).
    """
    n = int(cfg.n_particles)
    L = float(cfg.field_nm)
    m = float(cfg.sample_margin_nm)
    n_pairs = min(int(cfg.n_touching_pairs), n // 2)
    n_base = n - n_pairs
    diam = np.exp(np.log(cfg.diameter_median_nm) + cfg.diameter_sigma * rng.standard_normal(n))
    diam = np.clip(diam, cfg.diameter_min_nm, cfg.diameter_max_nm)
    fx = fiducials[["x", "y"]].to_numpy(float)
    fr = 0.5 * fiducials["diameter_nm"].to_numpy(float)
    gap = float(cfg.min_gap_nm)
    centers = np.full((n, 2), np.nan)
    radii = 0.5 * diam
    partner = np.full(n, -1, np.int64)
    placed = 0
    # batches of candidates; accept greedily (cheap: O(n^2) with n ~ 100)
    tries = 0
    n_edge = min(int(cfg.n_edge_particles), n_base)
    while placed < n_base:
        if placed < n_edge:  # straddling a random edge of the EM field
            side = rng.integers(0, 4, 64)
            along = rng.uniform(0.1 * L, 0.9 * L, 64)
            depth = rng.uniform(-0.5, 0.7, 64) * radii[placed]
            pos = np.where(side % 2 == 0, depth, L - depth)
            cands = np.where((side < 2)[:, None], np.column_stack([pos, along]), np.column_stack([along, pos]))
        else:
            cands = rng.uniform(-m, L + m, size=(64, 2))
        for c in cands:
            r = radii[placed]
            if len(fx):
                if np.any(np.hypot(*(fx - c).T) < r + fr + gap):
                    continue
            if placed:
                d = np.hypot(*(centers[:placed] - c).T)
                if np.any(d < r + radii[:placed] + gap):
                    continue
            centers[placed] = c
            placed += 1
            if placed == n_base or placed == n_edge:
                break
        tries += 1
        if tries > 300:
            raise CorrelateError(
                f"cannot place {n} non-overlapping particles in a {L:g} nm field; lower n_particles",
                field="n_particles",
            )
    # touching partners
    hosts = rng.permutation(n_base)
    k = 0
    for h in hosts:
        if placed >= n:
            break
        r = radii[placed]
        for _ in range(50):
            ang = rng.uniform(0, 2 * np.pi)
            dist = radii[h] + r + rng.uniform(0, cfg.touching_gap_nm)
            c = centers[h] + dist * np.array([np.cos(ang), np.sin(ang)])
            if not (-m <= c[0] <= L + m and -m <= c[1] <= L + m):
                continue
            if len(fx) and np.any(np.hypot(*(fx - c).T) < r + fr + gap):
                continue
            d = np.hypot(*(centers[:placed] - c).T)
            others = np.ones(placed, bool)
            others[h] = False
            if np.any(d[others] < r + radii[:placed][others] + gap):
                continue
            if partner[h] >= 0:
                continue
            centers[placed] = c
            partner[placed] = h
            partner[h] = placed
            placed += 1
            k += 1
            break
    if placed < n:  # no room for some partners (rare): they are dropped, the sample has fewer
        # than n_particles particles and fewer than n_touching_pairs pairs
        keep = np.arange(placed)
        centers, radii, partner, diam = centers[keep], radii[keep], partner[keep], diam[keep]
    lo, hi = image_extent(L, cfg.em_pixel_nm)
    edge = ((centers - radii[:, None] < lo) | (centers + radii[:, None] > hi)).any(1)
    return pd.DataFrame(
        {
            "particle_id": np.arange(len(centers), dtype=np.int64) + 1,
            "x": centers[:, 0],
            "y": centers[:, 1],
            "diameter_nm": diam,
            "edge": edge,
            "touching": np.where(partner >= 0, partner + 1, -1).astype(np.int64),
        }
    )


def corners_bbox(t: Transform, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min xy, max xy) of the square [lo, hi]^2 (sampled on its border) through ``t``."""
    s = np.linspace(lo, hi, 21)
    border = np.concatenate(
        [np.column_stack([s, np.full_like(s, lo)]), np.column_stack([s, np.full_like(s, hi)]),
         np.column_stack([np.full_like(s, lo), s]), np.column_stack([np.full_like(s, hi), s])]
    )
    q = t.apply(border)
    return q.min(0), q.max(0)


def _smooth_field(rng: np.random.Generator, pts: np.ndarray, lo: np.ndarray, hi: np.ndarray, amp: float) -> np.ndarray:
    """A smooth random displacement (a few low-frequency modes) at ``pts``, with its affine part
    removed and its largest magnitude scaled to ``amp`` nm."""
    span = np.maximum(hi - lo, 1.0)
    u = (pts - lo) / span  # 0..1
    disp = np.zeros_like(pts)
    for comp in range(2):
        for _ in range(3):
            kx, ky = rng.uniform(0.4, 1.2, 2) * np.pi
            ph = rng.uniform(0, 2 * np.pi)
            disp[:, comp] += rng.normal() * np.sin(kx * u[:, 0] + ky * u[:, 1] + ph)
    a = np.column_stack([pts, np.ones(len(pts))])
    coef, *_ = np.linalg.lstsq(a, disp, rcond=None)
    disp = disp - a @ coef
    mx = np.hypot(*disp.T).max()
    if mx > 0:
        disp *= amp / mx
    return disp


_MIRROR = np.diag([-1.0, 1.0])


def _smlm_similarity(cfg: SampleConfig, pad: float) -> Affine:
    """Camera -> world linear truth: the similarity, after the mirror x -> -x about the camera
    field centre when ``smlm_mirror`` (the camera field box is the same either way)."""
    L = float(cfg.field_nm)
    if cfg.smlm_offset_nm is None:  # camera field starts 4 camera pixels from the camera origin
        lin = _similarity(cfg.smlm_scale, cfg.smlm_rotation_deg, (0.0, 0.0))
        lo0, _ = corners_bbox(lin.inverse(), -pad, L + pad)
        target = np.full(2, 4.0 * float(cfg.camera_pixel_nm))
        sim = Affine.from_parts(lin.linear, lin.linear @ (lo0 - target))
    else:
        sim = _similarity(cfg.smlm_scale, cfg.smlm_rotation_deg, cfg.smlm_offset_nm)
    if not cfg.smlm_mirror:
        return sim
    lo, hi = corners_bbox(sim.inverse(), -pad, L + pad)
    # T(p) = A (F p + (lo_x + hi_x, 0)) + t: the box maps onto itself under the flip
    a = sim.linear
    t = sim.matrix[:2, 2]
    return Affine.from_parts(a @ _MIRROR, a @ np.array([lo[0] + hi[0], 0.0]) + t)


def make_transforms(cfg: SampleConfig, rng: np.random.Generator) -> tuple[dict[str, Transform], dict]:
    """Truth transforms own frame -> world: em, sim, afm, smlm (+ smlm_corona).

    Returns the dict and a dict of parameters (the similarity parts, the camera field box).
    """
    L = float(cfg.field_nm)
    m = float(cfg.sample_margin_nm)
    # SIM frame: pixel centres at i * sim_pixel_nm; the image covers the field + sim_margin_nm
    sim_lin = _similarity(cfg.sim_scale, cfg.sim_rotation_deg, (0.0, 0.0))
    if cfg.sim_mirror:
        sim_lin = Affine.from_parts(sim_lin.linear @ _MIRROR, np.zeros(2))
    s_lo, _ = corners_bbox(sim_lin.inverse(), -cfg.sim_margin_nm, L + cfg.sim_margin_nm)
    sim_t = Affine.from_parts(sim_lin.linear, sim_lin.linear @ s_lo)
    afm_t = afm_transform(cfg)
    # camera field: the sample region (+ a margin) seen from the camera
    pad = 0.05 * L + m
    smlm_sim = _smlm_similarity(cfg, pad)
    cam_lo, cam_hi = corners_bbox(smlm_sim.inverse(), -pad, L + pad)
    params: dict = {"smlm_similarity": smlm_sim, "camera_lo": cam_lo, "camera_hi": cam_hi,
                    "smlm_mirrored": bool(cfg.smlm_mirror), "sim_mirrored": bool(cfg.sim_mirror)}
    if cfg.distortion_nm and cfg.distortion_nm > 0:
        g = max(int(cfg.distortion_grid), 3)
        ext = 0.15 * (cam_hi - cam_lo)
        gx = np.linspace(cam_lo[0] - ext[0], cam_hi[0] + ext[0], g)
        gy = np.linspace(cam_lo[1] - ext[1], cam_hi[1] + ext[1], g)
        grid = np.column_stack([a.ravel() for a in np.meshgrid(gx, gy)])
        disp = _smooth_field(rng, grid, cam_lo, cam_hi, float(cfg.distortion_nm))
        smlm_t: Transform = ThinPlateSpline.fit(grid, smlm_sim.apply(grid + disp))
    else:
        smlm_t = smlm_sim
    transforms: dict[str, Transform] = {"em": Identity(2), "sim": sim_t, "afm": afm_t, "smlm": smlm_t}
    if cfg.chromatic:
        ch = dict(cfg.chromatic)
        centre = 0.5 * (cam_lo + cam_hi)
        lin = _similarity(ch.get("scale", 1.0), ch.get("rotation_deg", 0.0), (0.0, 0.0)).linear
        off = np.asarray(ch.get("offset_nm", (0.0, 0.0)), float)
        # corona camera -> antibody camera: p' = A (p - c) + c + off
        chrom = Affine.from_parts(lin, centre - lin @ centre + off)
        params["chromatic"] = chrom
        transforms["smlm_corona"] = compose(chrom, smlm_t)
    transforms["antibody"] = transforms["smlm"]
    transforms["corona"] = transforms.get("smlm_corona", transforms["smlm"])
    return transforms, params
