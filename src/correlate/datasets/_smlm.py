"""SMLM: labelled molecules on particle surfaces, blinking, localizations, drift, fiducials."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._config import SampleConfig

__all__ = ["make_molecules", "make_drift", "blink", "mortensen_precision", "localizations_for_label"]

LABELS = ("antibody", "corona")
LOC_COLUMNS = [
    "x", "y", "frame", "photons", "background", "precision", "sigma", "channel",
    "true_particle_id", "true_molecule_id", "true_event_id", "true_fiducial_id",
]


def _on_sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def make_molecules(cfg: SampleConfig, rng: np.random.Generator, particles: pd.DataFrame) -> pd.DataFrame:
    """Label molecules on particle surfaces (world nm).

    Antibodies sit on a shell of radius r + ``antibody_linker_nm``, corona proteins at r +
    ``corona_offset_nm`` on a fraction ``corona_fraction`` of the particles. Counts are Poisson with
    a mean proportional to d² (surface area), times a gamma factor (mean 1, CV ``label_cv``). Returns molecule_id, label, particle_id, x, y, z
    (height above the particle centre, nm).
    """
    d = particles["diameter_nm"].to_numpy(float)
    r = 0.5 * d
    rel_area = (d / float(cfg.diameter_median_nm)) ** 2
    has_corona = rng.random(len(d)) < float(cfg.corona_fraction)
    frames = []
    spec = {
        "antibody": (cfg.antibody_per_particle * rel_area, r + cfg.antibody_linker_nm),
        "corona": (cfg.corona_per_particle * rel_area * has_corona, r + cfg.corona_offset_nm),
    }
    cv = float(cfg.label_cv)
    for label in LABELS:
        mean, shell = spec[label]
        if cv > 0:
            k = 1.0 / cv**2
            mean = mean * rng.gamma(k, 1.0 / k, len(d))
        counts = rng.poisson(mean)
        idx = np.repeat(np.arange(len(d)), counts)
        u = _on_sphere(rng, len(idx))
        pos = particles[["x", "y"]].to_numpy(float)[idx] + shell[idx, None] * u[:, :2]
        frames.append(
            pd.DataFrame(
                {
                    "label": label,
                    "particle_id": particles["particle_id"].to_numpy()[idx].astype(np.int64),
                    "x": pos[:, 0],
                    "y": pos[:, 1],
                    "z": shell[idx] * u[:, 2],
                }
            )
        )
    mol = pd.concat(frames, ignore_index=True)
    mol.insert(0, "molecule_id", np.arange(len(mol), dtype=np.int64))
    mol.attrs["has_corona"] = has_corona
    return mol


def make_drift(cfg: SampleConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Per-frame drift (nm, camera frame) added to every localization; zero at frame 0."""
    n = int(cfg.n_frames)
    t = np.arange(n, dtype=float)
    dx = np.zeros(n)
    dy = np.zeros(n)
    if cfg.drift:
        p = dict(cfg.drift)
        ang = np.deg2rad(float(p.get("direction_deg", 30.0)))
        lin = float(p.get("linear_nm", 0.0))
        frac = t / max(n - 1, 1)
        dx += lin * frac * np.cos(ang)
        dy += lin * frac * np.sin(ang)
        osc = float(p.get("oscillation_nm", 0.0))
        if osc:
            period = float(p.get("oscillation_period_frames", max(n / 3.0, 1.0)))
            oang = ang + np.deg2rad(float(p.get("oscillation_angle_deg", 60.0)))
            s = osc * np.sin(2 * np.pi * t / period)
            dx += s * np.cos(oang)
            dy += s * np.sin(oang)
        rw = float(p.get("random_walk_nm", 0.0))
        if rw:
            steps = rng.standard_normal((n, 2)) * rw / np.sqrt(max(n, 1))
            walk = np.cumsum(steps, axis=0)
            dx += walk[:, 0] - walk[0, 0]
            dy += walk[:, 1] - walk[0, 1]
    return pd.DataFrame({"frame": np.arange(n, dtype=np.int64), "dx": dx, "dy": dy})


def mortensen_precision(sigma_nm, photons, background, pixel_nm):
    """Localization precision (nm) of a 2-D Gaussian fit (Mortensen et al. 2010, least squares,
    no EMCCD excess noise): sqrt(sa²/N (16/9 + 8 pi sa² b / (N a²))), sa² = s² + a²/12."""
    sa2 = np.asarray(sigma_nm, float) ** 2 + pixel_nm**2 / 12.0
    n = np.asarray(photons, float)
    return np.sqrt(sa2 / n * (16.0 / 9.0 + 8.0 * np.pi * sa2 * np.asarray(background, float) / (n * pixel_nm**2)))


def blink(cfg: SampleConfig, rng: np.random.Generator, n_mol: int):
    """On-events of ``n_mol`` molecules.

    Each molecule is detected with ``detection_efficiency``; a detected one has a geometric number
    of events (mean ``events_mean``), each lasting a geometric number of frames (mean
    ``on_frames_mean``), separated by dark times of 1 + floor(Exp(``dark_frames_mean``)) frames;
    the train starts at a uniform random frame so that it fits in the run (events past the last
    frame are cut).

    Returns
    -------
    ev_mol, ev_start, ev_len : per event (molecule index, first frame, number of frames)
    n_events : (n_mol,) events per molecule that fall inside the run
    """
    n_frames = int(cfg.n_frames)
    det = rng.random(n_mol) < float(cfg.detection_efficiency)
    p_ev = 1.0 / max(float(cfg.events_mean), 1.0)
    n_target = np.where(det, rng.geometric(p_ev, n_mol), 0)
    ev_mol = np.repeat(np.arange(n_mol), n_target)
    e = len(ev_mol)
    p_on = 1.0 / max(float(cfg.on_frames_mean), 1.0)
    on = rng.geometric(p_on, e).astype(np.int64)
    dark = 1 + np.floor(rng.exponential(float(cfg.dark_frames_mean), e)).astype(np.int64)
    first_idx = np.cumsum(n_target) - n_target  # index of each molecule's first event
    is_first = np.zeros(e, bool)
    is_first[first_idx[n_target > 0]] = True
    on_prev = np.concatenate([[0], on[:-1]])
    inc = np.where(is_first, 0, on_prev + dark)
    cs = np.cumsum(inc)
    start_rel = cs - cs[first_idx[ev_mol]] if e else cs
    last_idx = first_idx + n_target - 1
    span = np.zeros(n_mol, np.int64)
    has = n_target > 0
    span[has] = start_rel[last_idx[has]] + on[last_idx[has]]
    slack = np.maximum(n_frames - span, 1)
    offset = np.floor(rng.random(n_mol) * slack).astype(np.int64)
    start = offset[ev_mol] + start_rel
    keep = start < n_frames
    ev_mol, start, on = ev_mol[keep], start[keep], np.minimum(on[keep], n_frames - start[keep])
    n_events = np.bincount(ev_mol, minlength=n_mol)
    return ev_mol, start, on, n_events


def localizations_for_label(
    cfg: SampleConfig,
    rng: np.random.Generator,
    label: str,
    channel: int,
    mol: pd.DataFrame,
    mol_cam: np.ndarray,
    fid_cam: np.ndarray,
    drift: pd.DataFrame,
    cam_lo: np.ndarray,
    cam_hi: np.ndarray,
    event_id_base: int,
    beads: dict | None = None,
):
    """All localizations of one colour in its camera frame (nm).

    ``beads`` (optional) describes the bead acquisition of this colour: ``offset`` (N, 2)
    systematic offset (nm, camera axes) added to the bead emitters, ``seen`` (N,) bool,
    ``lit_frames`` (N,) or None, ``diameter_nm`` (N,), ``spurious_cam`` (K, 2) persistent spots
    (camera nm) with ``spurious_diameter_nm``, ``spurious_brightness``, ``spurious_lit_frames``
    (-1: not bleaching), and ``rng``, the generator of these extra draws.

    Returns the DataFrame (sorted by frame), the per-molecule event counts and the per-molecule
    localization counts.
    """
    from ._beads import bead_sigma, presence_matrix

    n_frames = int(cfg.n_frames)
    a = float(cfg.camera_pixel_nm)
    ev_mol, ev_start, ev_len, n_events = blink(cfg, rng, len(mol))
    n_loc = int(ev_len.sum())
    ev_ids = np.arange(len(ev_mol), dtype=np.int64)
    loc_ev = np.repeat(ev_ids, ev_len)
    first = np.cumsum(ev_len) - ev_len
    within = np.arange(n_loc) - first[loc_ev]
    frame = ev_start[loc_ev] + within
    loc_mol = ev_mol[loc_ev]
    photons = np.exp(np.log(cfg.photons_median) + cfg.photons_sigma * rng.standard_normal(n_loc))
    partial = (within == 0) | (within == ev_len[loc_ev] - 1)
    photons = np.where(partial, photons * rng.uniform(0.3, 1.0, n_loc), photons)
    # nonspecific background localizations, uniform over the camera field and the run
    area_um2 = float(np.prod(cam_hi - cam_lo)) / 1e6
    n_bg = int(rng.poisson(max(cfg.nonspecific_density_per_um2, 0.0) * area_um2))
    bg_xy = rng.uniform(cam_lo, cam_hi, size=(n_bg, 2))
    bg_frame = rng.integers(0, n_frames, n_bg)
    bg_ph = np.exp(np.log(cfg.photons_median) + cfg.photons_sigma * rng.standard_normal(n_bg)) * 0.6
    # fiducials: present in most frames, bright
    n_fid = len(fid_cam)
    b = beads or {}
    present = presence_matrix(cfg, rng, n_fid, b.get("lit_frames"))
    if "seen" in b:
        present &= np.asarray(b["seen"], bool)[:, None]
    f_idx, f_frame = np.nonzero(present)
    n_f = len(f_idx)
    f_ph = np.exp(np.log(cfg.fiducial_photons) + 0.15 * rng.standard_normal(n_f))
    f_xy = fid_cam[f_idx].reshape(-1, 2) + (np.asarray(b["offset"])[f_idx] if "offset" in b else 0.0)
    f_diam = np.asarray(b.get("diameter_nm", np.zeros(n_fid)), float)[f_idx]
    # spurious persistent spots (extra stream: without them the sample is unchanged)
    sp = np.asarray(b.get("spurious_cam", np.zeros((0, 2))), float).reshape(-1, 2)
    if len(sp):
        lit = np.asarray(b["spurious_lit_frames"])
        s_idx, s_frame = np.nonzero(presence_matrix(cfg, b["rng"], len(sp), lit if (lit >= 0).all() else None))
        s_ph = np.asarray(b["spurious_brightness"])[s_idx] * np.exp(
            np.log(cfg.fiducial_photons) + 0.15 * b["rng"].standard_normal(len(s_idx)))
        s_diam = np.asarray(b["spurious_diameter_nm"], float)[s_idx]
    else:
        s_idx = s_frame = np.zeros(0, np.int64)
        s_ph = s_diam = np.zeros(0)
    n_s = len(s_idx)

    true_xy = np.concatenate([mol_cam[loc_mol].reshape(-1, 2), bg_xy, f_xy, sp[s_idx]])
    frames = np.concatenate([frame, bg_frame, f_frame, s_frame]).astype(np.int64)
    ph = np.concatenate([photons, bg_ph, f_ph, s_ph])
    n_all = len(frames)
    bgp = np.exp(np.log(cfg.background_photons) + 0.2 * rng.standard_normal(n_all))
    sig = cfg.psf_sigma_nm * np.clip(1.0 + 0.05 * rng.standard_normal(n_all), 0.7, 1.3)
    k0 = n_loc + n_bg
    sig[k0:] = bead_sigma(sig[k0:], np.concatenate([f_diam, s_diam]))
    prec = mortensen_precision(sig, ph, bgp, a)
    xy = true_xy + prec[:, None] * rng.standard_normal((n_all, 2))
    dxy = drift[["dx", "dy"]].to_numpy(float)
    xy += dxy[frames]
    pid_of_mol = mol["particle_id"].to_numpy(np.int64)
    mid_of_mol = mol["molecule_id"].to_numpy(np.int64)
    df = pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "frame": frames,
            "photons": ph.astype(np.float32),
            "background": bgp.astype(np.float32),
            "precision": prec.astype(np.float32),
            "sigma": sig.astype(np.float32),
            "channel": np.full(n_all, channel, np.int64),
            "true_particle_id": np.concatenate(
                [pid_of_mol[loc_mol], np.full(n_bg, -1, np.int64), np.full(n_f, -2, np.int64),
                 np.full(n_s, -3, np.int64)]
            ),
            "true_molecule_id": np.concatenate([mid_of_mol[loc_mol], np.full(n_bg + n_f + n_s, -1, np.int64)]),
            "true_event_id": np.concatenate([loc_ev + event_id_base, np.full(n_bg + n_f + n_s, -1, np.int64)]),
            "true_fiducial_id": np.concatenate([np.full(n_loc + n_bg, -1, np.int64), f_idx.astype(np.int64),
                                                np.full(n_s, -1, np.int64)]),
        }
    )
    order = np.argsort(frames, kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    n_loc_per_mol = np.bincount(loc_mol, minlength=len(mol))
    return df, n_events, n_loc_per_mol, len(ev_mol)
