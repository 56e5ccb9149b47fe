"""A simulated 3-D correlative sample: an EM volume (tomogram-like z-stack) and 3-D localizations.

The volume holds spherical and ellipsoidal particles (liposomes as membrane shells, solid
particles) and gold beads, rendered with partial-volume edges, an anisotropic blur (the z
resolution of a tomogram is worse than the lateral one) and Gaussian noise, on anisotropic voxels
drawn from the ranges labs use (0.5-4 nm in x/y, 1-8 nm in z). The localizations are antibody
labels on the particle surfaces (astigmatic STORM: z precision 2-3x the lateral one; MINFLUX-like:
near isotropic), background localizations and the same gold beads seen as persistent emitters, in
an SMLM frame related to the EM frame by a random 3-D similarity (any rotation, optionally
mirrored). Everything is drawn from one seed; the ground truth comes back with it. Lengths nm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..transforms import Affine

__all__ = ["VOLUME_RANGES", "VolumeSample", "simulate_volume", "write_mrc", "random_rotation"]

#: What :func:`simulate_volume` draws (uniform unless said otherwise; lengths nm).
VOLUME_RANGES: dict[str, Any] = {
    "voxel_xy_nm": (0.5, 4.0),          # log-uniform
    "voxel_z_nm": (1.0, 8.0),           # log-uniform, at least the lateral size
    "particle_diameter_nm": (20.0, 160.0),
    "min_voxels_across_z": 8,           # a particle spans at least this many z sections
    "max_voxels_across_xy": 70,         # and at most this many voxels laterally (volume budget)
    "ellipsoid_aspect": (1.0, 1.5),
    "membrane_nm": (4.0, 6.0),
    "blur_xy_voxels": (0.6, 1.2),
    "blur_z_factor": (1.0, 1.8),        # z blur over x/y blur (missing-wedge elongation), nm; at
                                        # least the x/y blur in voxels on the coarser z voxels
    "snr": (1.5, 4.0),                  # particle contrast over the voxel noise
    "gold_diameter_nm": (6.0, 15.0),
    "gold_contrast": (4.0, 8.0),
    "n_beads": (6, 10),
    "bead_min_lateral_nm": 60.0,        # bead spacing in the SMLM (camera) x, y: one bead per PSF
    "lateral_precision_nm": {"astigmatic": (4.0, 10.0), "minflux": (2.0, 5.0)},
    "z_over_lateral": {"astigmatic": (2.0, 3.0), "minflux": (1.0, 1.3)},
    "linker_nm": (0.0, 10.0),
    "molecules_per_1000nm2": (0.5, 2.0),
    "events_per_molecule": (2.0, 6.0),
    "background_fraction": (0.02, 0.08),
    "gap_sigmas": (4.0, 6.0),           # surface gap: this many precisions plus two linkers
    "max_voxels": 6_000_000,
}


_N_FRAMES = 4000


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3-D rotation matrix (3, 3), det +1."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass
class VolumeSample:
    """A simulated 3-D sample with its ground truth.

    Attributes
    ----------
    volume
        (nz, ny, nx) float32 EM volume; voxel ``(k, j, i)`` sits at ``voxel_nm * (i, j, k)`` (nm).
    voxel_nm
        (x, y, z) voxel size (nm).
    polarity
        ``"dark"`` (dense material darker than the background, cryo-ET) or ``"bright"``.
    particles
        Truth per particle: ``particle_id`` (1-based), ``x, y, z`` centre (nm, EM frame),
        ``a, b, c`` semi-axes (nm), ``r00..r22`` rotation of the axes, ``kind``
        (``"liposome"``/``"solid"``), ``volume_nm3``, ``surface_nm2``, ``equivalent_diameter_nm``.
    beads
        Gold beads: ``x, y, z`` (nm, EM frame), ``diameter_nm``.
    localizations
        SMLM table in its own frame: ``x, y, z`` (nm), ``precision_x/_y/_z`` (nm), ``frame``,
        ``photons``, ``particle_id`` truth (0 background, -1 bead) and ``x_em, y_em, z_em`` (true
        emitter position mapped to the EM frame, nm).
    smlm_to_em
        The true 3-D transform SMLM frame -> EM frame.
    beads_smlm
        Bead centres in the SMLM frame (nm).
    params
        Every drawn parameter.
    """

    volume: np.ndarray
    voxel_nm: tuple[float, float, float]
    polarity: str
    particles: pd.DataFrame
    beads: pd.DataFrame
    localizations: pd.DataFrame
    smlm_to_em: Affine
    beads_smlm: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def write_mrc(self, path) -> Path:
        """Write the volume as MRC with its voxel size (see :func:`write_mrc`)."""
        return write_mrc(path, self.volume, self.voxel_nm)


def write_mrc(path, volume: np.ndarray, voxel_nm) -> Path:
    """Write a (nz, ny, nx) volume as MRC mode 2 with voxel size ``voxel_nm`` (x, y, z nm; stored in Å)."""
    import mrcfile

    path = Path(path)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        vx, vy, vz = (float(v) * 10.0 for v in voxel_nm)
        mrc.voxel_size = (vx, vy, vz)
    return path


def _log_uniform(rng, lo, hi) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw_geometry(rng, r, voxel_nm=None) -> dict[str, Any]:
    vxy = _log_uniform(rng, *r["voxel_xy_nm"])
    if voxel_nm is not None:  # the sizes follow the voxel asked for, not the one drawn
        vxy = float(min(voxel_nm[0], voxel_nm[1]))
    d_hi = min(r["particle_diameter_nm"][1], r["max_voxels_across_xy"] * vxy)
    d_lo = max(r["particle_diameter_nm"][0], 0.5 * d_hi)
    vz_hi = min(r["voxel_z_nm"][1], d_lo / r["min_voxels_across_z"])
    vz_lo = min(max(r["voxel_z_nm"][0], vxy), vz_hi)
    vz = _log_uniform(rng, vz_lo, vz_hi) if vz_hi > vz_lo else vz_lo
    if voxel_nm is not None:
        return {"voxel_nm": tuple(float(x) for x in voxel_nm), "diameter_range_nm": (d_lo, d_hi)}
    return {"voxel_nm": (vxy, vxy, vz), "diameter_range_nm": (d_lo, d_hi)}


def _place(rng, radii: np.ndarray, gap_xy: float, gap_z: float, box: np.ndarray, tries: int = 3000) -> np.ndarray:
    """Random centres (K, 3) in ``box`` (3,): two particles are apart laterally by their radii plus
    ``gap_xy`` or axially by their radii plus ``gap_z``; fewer than asked when the box is full."""
    out = np.zeros((0, 3))
    kept = np.zeros(0)
    margin = np.array([0.5 * gap_xy, 0.5 * gap_xy, 0.0])
    for rad in radii:
        lo = rad + margin
        hi = box - rad - margin
        if np.any(hi < lo):
            continue
        c = rng.uniform(lo, hi, (tries, 3))
        if len(out):
            dxy = np.linalg.norm(c[:, None, :2] - out[None, :, :2], axis=2)
            dz = np.abs(c[:, None, 2] - out[None, :, 2])
            ok = ((dxy > kept + rad + gap_xy) | (dz > kept + rad + gap_z)).all(1)
            if not ok.any():
                continue
            c = c[ok]
        out = np.vstack([out, c[:1]])
        kept = np.append(kept, rad)
    return out


def _signed_distance(pts: np.ndarray, centre, axes, rot) -> np.ndarray:
    """Approximate signed distance (nm, outside positive) of points (N, 3) to an ellipsoid."""
    u = (pts - centre) @ rot
    rho = np.sqrt(np.sum((u / axes) ** 2, axis=1))
    grad = np.linalg.norm(u / axes**2, axis=1) / np.maximum(rho, 1e-12)
    return np.where(rho > 1e-9, (rho - 1.0) / np.maximum(grad, 1e-12), -np.min(axes))


def _render(shape, voxel, objects, pad_nm: float) -> np.ndarray:
    """Density (nz, ny, nx): sum over objects of contrast x voxel-averaged occupancy (partial-volume edges)."""
    from scipy.special import erfc

    vol = np.zeros(shape, np.float32)
    v = np.asarray(voxel, float)
    for o in objects:  # a few dozen objects, each vectorised over its bounding box
        ext = np.max(o["axes"]) + pad_nm
        lo = np.maximum(np.floor((o["centre"] - ext) / v).astype(int), 0)
        hi = np.minimum(np.ceil((o["centre"] + ext) / v).astype(int) + 1, np.array(shape[::-1]))
        if np.any(hi <= lo):
            continue
        kk, jj, ii = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in (2, 1, 0)), indexing="ij")
        pts = np.column_stack([ii.ravel() * v[0], jj.ravel() * v[1], kk.ravel() * v[2]])
        sd = _signed_distance(pts, o["centre"], o["axes"], o["rot"])
        # occupancy averaged over the voxel box: across a surface of unit normal n that box has a
        # standard deviation sqrt(sum (n_a v_a)^2 / 12), which smooths the edge (no point sampling)
        nrm = ((pts - o["centre"]) @ o["rot"] / o["axes"] ** 2) @ o["rot"].T
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        soft = np.sqrt(np.sum((nrm * v) ** 2, axis=1) / 12.0)
        occ = 0.5 * erfc(sd / (np.sqrt(2) * soft))
        if o["shell_nm"] > 0:
            occ = occ - 0.5 * erfc((sd + o["shell_nm"]) / (np.sqrt(2) * soft))
        vol[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] += (o["contrast"] * occ).reshape(kk.shape).astype(np.float32)
    return vol


def _ellipsoid_surface(a, b, c) -> np.ndarray:
    p = 1.6075  # Knud Thomsen's approximation, within about 1 %
    return 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _surface_points(rng, n: int, centre, axes, rot) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in area on an ellipsoid (rejection on the sphere), and their outward normals."""
    m = max(4 * n, 16)
    u = rng.standard_normal((m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = u * axes
    nrm = u / axes
    g = np.linalg.norm(nrm, axis=1)
    keep = rng.uniform(0, 1, m) < g * np.min(axes)  # area element of the stretched sphere
    s, nrm, g = s[keep][:n], nrm[keep][:n], g[keep][:n]
    return centre + s @ rot.T, (nrm / g[:, None]) @ rot.T


def _particles(rng, r, geo, n_max: int, gap_xy: float, gap_z: float, box: np.ndarray) -> pd.DataFrame:
    d_lo, d_hi = geo["diameter_range_nm"]
    diam = rng.uniform(d_lo, d_hi, n_max)
    aspect = rng.uniform(*r["ellipsoid_aspect"], n_max)
    aspect = np.where(rng.uniform(0, 1, n_max) < 0.5, 1.0, aspect)  # half spheres, half ellipsoids
    # semi-axes (a, b, c) = r * (aspect^(2/3), aspect^(-1/3), aspect^(-1/3)): the equivalent diameter kept
    ax = np.column_stack([aspect ** (2 / 3), aspect ** (-1 / 3), aspect ** (-1 / 3)]) * diam[:, None] / 2
    centres = _place(rng, ax.max(1), gap_xy, gap_z, box)
    k = len(centres)
    ax = ax[:k]
    rots = np.array([random_rotation(rng) for _ in range(k)]).reshape(k, 3, 3)
    kind = np.where(rng.uniform(0, 1, k) < 0.5, "liposome", "solid")
    df = pd.DataFrame({"particle_id": np.arange(1, k + 1), "x": centres[:, 0], "y": centres[:, 1],
                       "z": centres[:, 2], "a": ax[:, 0], "b": ax[:, 1], "c": ax[:, 2], "kind": kind})
    for i in range(3):
        for j in range(3):
            df[f"r{i}{j}"] = rots[:, i, j]
    df["volume_nm3"] = 4 / 3 * np.pi * ax.prod(1)
    df["surface_nm2"] = _ellipsoid_surface(ax[:, 0], ax[:, 1], ax[:, 2])
    df["equivalent_diameter_nm"] = 2 * np.cbrt(ax.prod(1))
    return df


def _rot_of(row) -> np.ndarray:
    return np.array([[row[f"r{i}{j}"] for j in range(3)] for i in range(3)])


def _smlm_frame(rng, box, mirror: bool) -> Affine:
    """SMLM frame -> EM frame: any rotation, a scale near 1, a shift; optionally mirrored (z flip)."""
    rot = random_rotation(rng)
    flip = np.diag([1.0, 1.0, -1.0]) if mirror else np.eye(3)
    lin = float(rng.uniform(0.95, 1.05)) * rot @ flip
    centre = box / 2
    t = centre + rng.uniform(-0.2, 0.2, 3) * box - lin @ (rng.uniform(-500, 500, 3))
    return Affine.from_parts(lin, t)


def _draw_label(rng, r, kind: str) -> dict[str, float]:
    return {"sigma_lateral_nm": float(rng.uniform(*r["lateral_precision_nm"][kind])),
            "z_over_lateral": float(rng.uniform(*r["z_over_lateral"][kind])),
            "linker_nm": float(rng.uniform(*r["linker_nm"])),
            "molecules_per_nm2": float(rng.uniform(*r["molecules_per_1000nm2"])) / 1000.0,
            "events_per_molecule": float(rng.uniform(*r["events_per_molecule"])),
            "background_fraction": float(rng.uniform(*r["background_fraction"]))}


def _label_localizations(rng, lab: dict[str, float], particles: pd.DataFrame, box) -> pd.DataFrame:
    pos, pid = [np.zeros((0, 3))], [np.zeros(0, int)]
    for row in particles.itertuples():  # one draw per particle (tens), vectorised inside
        axes = np.array([row.a, row.b, row.c]) + lab["linker_nm"]
        n_mol = max(3, int(rng.poisson(lab["molecules_per_nm2"] * row.surface_nm2)))
        p, _ = _surface_points(rng, n_mol, np.array([row.x, row.y, row.z]), axes, _rot_of(row._asdict()))
        pos.append(p)
        pid.append(np.full(len(p), row.particle_id))
    mol, mid = np.concatenate(pos), np.concatenate(pid)
    n_ev = rng.poisson(lab["events_per_molecule"] - 1, len(mol)) + 1
    src = np.repeat(np.arange(len(mol)), n_ev)
    true, ids = mol[src], mid[src]
    n_bg = int(len(true) * lab["background_fraction"])
    true = np.concatenate([true, rng.uniform(0, 1, (n_bg, 3)) * box])
    ids = np.concatenate([ids, np.zeros(n_bg, int)])
    photons = rng.lognormal(np.log(2000.0), 0.4, len(true))
    sxy = lab["sigma_lateral_nm"] * np.sqrt(2000.0 / photons)
    return pd.DataFrame({"x_em": true[:, 0], "y_em": true[:, 1], "z_em": true[:, 2], "particle_id": ids,
                         "photons": photons, "sxy": sxy, "sz": lab["z_over_lateral"] * sxy,
                         "frame": _bleaching_frames(rng, len(true))})


def _bleaching_frames(rng, n: int) -> np.ndarray:
    """Frames of dye events: the dye bleaches, events thin out with a time constant of 10-30 % of the run."""
    tau = rng.uniform(0.1, 0.3) * _N_FRAMES
    return (rng.exponential(tau, n) % _N_FRAMES).astype(np.int64)


def _bead_localizations(rng, beads_em: np.ndarray, n_frames: int, zr: float) -> pd.DataFrame:
    """Beads on through the whole run, missing from a random 5-15 % of frames (blinks, failed fits)."""
    k = len(beads_em)
    on = rng.uniform(0, 1, (k, n_frames)) > rng.uniform(0.05, 0.15)
    src, frame = np.nonzero(on)
    sxy = np.full(len(src), float(rng.uniform(1.0, 3.0)))
    return pd.DataFrame({"x_em": beads_em[src, 0], "y_em": beads_em[src, 1], "z_em": beads_em[src, 2],
                         "particle_id": -1, "photons": 50000.0, "sxy": sxy, "sz": zr * sxy, "frame": frame})


def simulate_volume(seed: int, *, kind: str | None = None, voxel_nm=None, n_particles: int | None = None,
                    polarity: str | None = None, mirror: bool | None = None, beads: bool = True,
                    ranges: dict[str, Any] | None = None) -> VolumeSample:
    """Simulate an EM volume with particles and gold beads, and 3-D localizations of them.

    Parameters
    ----------
    seed
        Everything is drawn from it (over :data:`VOLUME_RANGES`, or ``ranges`` updating them).
    kind
        ``"astigmatic"`` (z precision 2-3x the lateral) or ``"minflux"`` (near isotropic);
        None draws one.
    voxel_nm
        (x, y, z) voxel size (nm); None draws one.
    n_particles
        Particles asked for (fewer when the volume budget is full); None draws 3-10.
    polarity
        ``"dark"`` or ``"bright"`` dense material; None draws one.
    mirror
        Mirror the SMLM frame (z flip) relative to the EM frame; None draws one.
    beads
        Put gold beads in the volume and as persistent emitters in the localizations.

    Returns
    -------
    VolumeSample
    """
    from scipy.ndimage import gaussian_filter

    r = dict(VOLUME_RANGES, **(ranges or {}))
    rng = np.random.default_rng([int(seed), 0x3D])
    kind = kind or str(rng.choice(["astigmatic", "minflux"]))
    geo = _draw_geometry(rng, r, voxel_nm)
    v = np.asarray(geo["voxel_nm"], float)
    lab = _draw_label(rng, r, kind)
    gs = float(rng.uniform(*r["gap_sigmas"]))
    gap_xy = gs * lab["sigma_lateral_nm"] * 1.5 + 2 * lab["linker_nm"]
    gap_z = gap_xy * lab["z_over_lateral"]
    d_hi = geo["diameter_range_nm"][1]
    n_ask = int(n_particles or rng.integers(3, 11))
    cell = d_hi + gap_xy
    thick = 2.0 * d_hi  # a slab (thin ice, a section): particles mostly side by side
    side = min(np.sqrt(n_ask) * cell * 1.3, np.sqrt(r["max_voxels"] / (thick / v[2])) * v[0])
    side = max(side, 2.2 * d_hi + 1.2 * gap_xy)  # room for two particles at least
    box = np.array([side, side, thick])
    parts = _particles(rng, r, geo, n_ask, gap_xy, gap_z, box)
    mirror = bool(rng.uniform() < 0.5) if mirror is None else bool(mirror)
    to_em = _smlm_frame(rng, box, mirror)
    gold_d = float(rng.uniform(*r["gold_diameter_nm"]))
    n_beads = int(rng.integers(*r["n_beads"], endpoint=True)) if beads else 0
    gold = _place_beads(rng, n_beads, gold_d, float(r["bead_min_lateral_nm"]), box, to_em.inverse(), parts)
    shape = tuple(int(np.ceil(b / s)) for b, s in zip(box[::-1], v[::-1]))
    objects = [dict(centre=np.array([p.x, p.y, p.z]), axes=np.array([p.a, p.b, p.c]), rot=_rot_of(p._asdict()),
                    shell_nm=float(rng.uniform(*r["membrane_nm"])) if p.kind == "liposome" else 0.0,
                    contrast=1.0 if p.kind == "liposome" else float(rng.uniform(0.5, 1.0)))
               for p in parts.itertuples()]
    gc = float(rng.uniform(*r["gold_contrast"]))
    objects += [dict(centre=g, axes=np.full(3, gold_d / 2), rot=np.eye(3), shell_nm=0.0, contrast=gc) for g in gold]
    vol = _render(shape, v, objects, pad_nm=4 * float(v.max()))
    blur_xy = float(rng.uniform(*r["blur_xy_voxels"]))
    # z: worse than x/y in nm, and never finer than the z sampling (in voxels, as in x/y): a
    # section or tomogram is sampled at about its resolution, a sharper z profile would alias
    blur_z = max(blur_xy * v[0] * rng.uniform(*r["blur_z_factor"]), blur_xy * v[2])
    blur_nm = np.array([blur_xy * v[0], blur_xy * v[1], blur_z])
    vol = gaussian_filter(vol, np.maximum(blur_nm / v, 0.3)[::-1], mode="constant")  # nothing beyond the volume
    snr = float(rng.uniform(*r["snr"]))
    polarity = polarity or str(rng.choice(["dark", "bright"]))
    sign = -1.0 if polarity == "dark" else 1.0
    vol = (10.0 + sign * vol + rng.standard_normal(vol.shape).astype(np.float32) / snr).astype(np.float32)
    locs = _label_localizations(rng, lab, parts, box)
    if len(gold):
        locs = pd.concat([locs, _bead_localizations(rng, gold, _N_FRAMES, lab["z_over_lateral"])], ignore_index=True)
    locs = _to_smlm(rng, locs, to_em)
    params = dict(kind=kind, voxel_nm=tuple(v), polarity=polarity, mirror=mirror, snr=snr, blur_nm=tuple(blur_nm),
                  gold_diameter_nm=gold_d, gold_contrast=gc, gap_xy_nm=gap_xy, gap_z_nm=gap_z, box_nm=tuple(box),
                  **lab)
    return VolumeSample(volume=vol, voxel_nm=tuple(float(x) for x in v), polarity=polarity, particles=parts,
                        beads=pd.DataFrame({"x": gold[:, 0], "y": gold[:, 1], "z": gold[:, 2],
                                            "diameter_nm": gold_d}),
                        localizations=locs, smlm_to_em=to_em, beads_smlm=to_em.inverse().apply(gold)
                        if len(gold) else np.zeros((0, 3)), params=params)


def _place_beads(rng, n: int, gold_d: float, min_lateral_nm: float, box: np.ndarray, to_camera: Affine,
                 parts: pd.DataFrame, tries: int = 4000) -> np.ndarray:
    """Bead centres (K, 3) nm in the EM box, clear of every particle (two bead diameters from its
    bounding sphere) and at least ``min_lateral_nm`` apart in the SMLM camera x, y (two beads
    within a PSF would be one spot there); fewer than ``n`` when the box has no room."""
    if n == 0:
        return np.zeros((0, 3))
    rad = gold_d / 2
    c = rng.uniform(rad, box - rad, (tries, 3))
    if len(parts):
        pc = parts[["x", "y", "z"]].to_numpy()
        pr = parts[["a", "b", "c"]].to_numpy().max(1)
        c = c[(np.linalg.norm(c[:, None] - pc[None], axis=2) - pr[None] > 2 * gold_d).all(1)]
    cam = to_camera.apply(c)[:, :2] if len(c) else np.zeros((0, 2))
    free = np.ones(len(c), bool)
    out = []
    for _ in range(n):  # a few beads
        ok = np.flatnonzero(free)
        if not len(ok):
            break
        out.append(ok[0])
        free &= np.linalg.norm(cam - cam[ok[0]], axis=1) >= min_lateral_nm
    return c[out].reshape(-1, 3)


def _to_smlm(rng, locs: pd.DataFrame, to_em: Affine) -> pd.DataFrame:
    """Map true positions into the SMLM frame and add the (axis-aligned there) localization noise."""
    true = to_em.inverse().apply(locs[["x_em", "y_em", "z_em"]].to_numpy())
    sd = locs[["sxy", "sxy", "sz"]].to_numpy()
    noisy = true + rng.standard_normal(true.shape) * sd
    out = pd.DataFrame({"x": noisy[:, 0], "y": noisy[:, 1], "z": noisy[:, 2],
                        "precision_x": sd[:, 0], "precision_y": sd[:, 1], "precision_z": sd[:, 2],
                        "frame": locs["frame"].to_numpy().astype(np.int64), "photons": locs["photons"].to_numpy(),
                        "particle_id": locs["particle_id"].to_numpy().astype(np.int64)})
    for c in ("x_em", "y_em", "z_em"):
        out[c] = locs[c].to_numpy()
    return out
