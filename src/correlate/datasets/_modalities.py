"""The stages of :func:`~correlate.datasets.simulate_sample` after the geometry: SMLM
localizations, the SIM and AFM images, and the fiducials' truth in every frame (nm)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from ..elements import make_image, make_localizations
from ..transforms import Transform
from ._afm import flattening, render_afm
from ._beads import LIGHT_FRAMES, bead_sigma
from ._config import SampleConfig
from ._geometry import image_extent
from ._sim import render_sim
from ._smlm import LABELS, LOC_COLUMNS, localizations_for_label, make_drift, make_molecules

__all__ = ["simulate_smlm", "count_per_particle", "simulate_sim", "simulate_afm", "fiducial_truth", "spurious_truth"]


def _smlm_acquisition(beads: dict, fiducials: pd.DataFrame, inv: Transform, label: str, rng) -> dict[str, Any]:
    """The bead and spurious-spot inputs of one SMLM colour (camera frame ``inv`` of world)."""
    sp = beads["spurious"][beads["spurious"]["modality"] == "smlm"]
    return {
        "offset": beads["offset"]["smlm" if label == "antibody" else "smlm_corona"],
        "seen": beads["seen"]["smlm"], "lit_frames": beads["lit_frames"],
        "diameter_nm": fiducials["diameter_nm"].to_numpy(float),
        "spurious_cam": inv.apply(sp[["x", "y"]].to_numpy(float)) if len(sp) else np.zeros((0, 2)),
        "spurious_diameter_nm": sp["diameter_nm"].to_numpy(float),
        "spurious_brightness": sp["brightness"].to_numpy(float),
        "spurious_lit_frames": sp["lit_frames"].to_numpy(), "rng": rng,
    }


def simulate_smlm(cfg: SampleConfig, rngs: dict, particles: pd.DataFrame, fiducials: pd.DataFrame, beads: dict,
                  transforms: dict[str, Transform], params: dict):
    """Molecules of both labels and, with ``cfg.make_smlm``, their localizations.

    Returns
    -------
    mol, smlm, fid_cam, drift
        The molecule truth (camera positions and event counts filled in), label ->
        Localizations, label -> fiducial centres in that camera frame (nm), the drift table.
        ``particles`` gains ``has_corona``.
    """
    mol = make_molecules(cfg, rngs["labels"], particles)
    particles["has_corona"] = mol.attrs.pop("has_corona")
    drift = make_drift(cfg, rngs["smlm"])
    mol["x_smlm"] = np.nan
    mol["y_smlm"] = np.nan
    mol["n_events"] = 0
    mol["n_localizations"] = 0
    fid_w = fiducials[["x", "y"]].to_numpy(float)
    smlm: dict[str, pd.DataFrame] = {}
    fid_cam: dict[str, np.ndarray] = {}
    ev_base = 0
    for ch, label in enumerate(LABELS):
        inv = transforms[label].inverse()
        sel = (mol["label"] == label).to_numpy()
        m = mol.loc[sel]
        mc = inv.apply(m[["x", "y"]].to_numpy(float)) if len(m) else np.zeros((0, 2))
        fc = inv.apply(fid_w) if len(fid_w) else np.zeros((0, 2))
        fid_cam[label] = fc
        acq = _smlm_acquisition(beads, fiducials, inv, label, rngs["acq"])
        mol.loc[sel, "x_smlm"] = mc[:, 0]
        mol.loc[sel, "y_smlm"] = mc[:, 1]
        if not cfg.make_smlm:
            continue
        df, n_ev, n_loc, n_ev_total = localizations_for_label(
            cfg, rngs["smlm"], label, ch, m, mc, fc, drift, params["camera_lo"], params["camera_hi"], ev_base, acq
        )
        ev_base += n_ev_total
        mol.loc[sel, "n_events"] = n_ev
        mol.loc[sel, "n_localizations"] = n_loc
        smlm[label] = make_localizations(
            df[LOC_COLUMNS], source_format="simulated", source=f"simulated:{label}",
            camera_pixel_size_nm=cfg.camera_pixel_nm, frame_base=0, coordinate_system=f"smlm_{label}",
            notes=[f"simulated {label} channel (channel={ch}); truth columns true_*"],
            name=label,
        )
        smlm[label].attrs["channel_name"] = label
        smlm[label].attrs["n_frames"] = int(cfg.n_frames)
    mol["n_events"] = mol["n_events"].astype(np.int64)
    mol["n_localizations"] = mol["n_localizations"].astype(np.int64)
    return mol, smlm, fid_cam, drift


def count_per_particle(particles: pd.DataFrame, mol: pd.DataFrame) -> None:
    """Add n_molecules_<label>, n_localizations_<label>, n_events_<label> to ``particles``."""
    pid = particles["particle_id"].to_numpy()
    for label in LABELS:
        m = mol[mol["label"] == label]
        idx = np.searchsorted(pid, m["particle_id"].to_numpy())
        for col, src in (("n_molecules", None), ("n_localizations", "n_localizations"), ("n_events", "n_events")):
            w = None if src is None else m[src].to_numpy(float)
            particles[f"{col}_{label}"] = np.bincount(idx, weights=w, minlength=len(pid)).astype(np.int64)


def simulate_sim(cfg: SampleConfig, rng, sim_t: Transform, fiducials: pd.DataFrame, beads: dict, mol: pd.DataFrame):
    """The SIM image: one channel per label of ``cfg.sim_labels``; the beads shine in every one."""
    labels = [cfg.sim_labels] if isinstance(cfg.sim_labels, str) else list(cfg.sim_labels)
    bxy, bsig, bwt = _sim_beads(cfg, sim_t, fiducials, beads)
    planes = []
    sim_org = None
    for label in labels:
        lm = mol[mol["label"] == label]
        plane, sim_org = render_sim(cfg, rng, sim_t, lm[["x", "y"]].to_numpy(float), np.ones(len(lm)), bxy, bsig, bwt)
        planes.append(plane)
    multi = len(planes) > 1
    return make_image(
        np.stack(planes) if multi else planes[0], pixel_size_nm=cfg.sim_pixel_nm,
        dims=("c", "y", "x") if multi else ("y", "x"), channel_names=labels if multi else None,
        origin_nm={"y": sim_org[1], "x": sim_org[0]},
        modality="sim", value_unit="photons", name="sim", source="simulated",
        attrs={"simulated": True, "seed": int(cfg.seed), "labels": labels,
               **({"resolution_nm": float(cfg.sim_resolution_nm)} if cfg.sim_resolution_metadata else {})},
    )


def simulate_afm(cfg: SampleConfig, rngs: dict, afm_t: Transform, particles: pd.DataFrame,
                 fiducials: pd.DataFrame, timings: dict[str, float]):
    """The AFM height image (None without ``cfg.make_afm``); ``particles`` gains ``in_afm``
    (wholly inside the AFM field, flattened outline)."""
    afm = None
    a_lo, a_hi = image_extent(cfg.afm_field, cfg.afm_pixel_nm)
    if cfg.make_afm:
        t = time.perf_counter()
        data, org = render_afm(cfg, rngs["afm"], afm_t, particles, fiducials)
        afm = make_image(
            data, pixel_size_nm=cfg.afm_pixel_nm, origin_nm={"y": org[1], "x": org[0]}, modality="afm",
            value_unit="nm", name="afm", source="simulated",
            attrs={"simulated": True, "seed": int(cfg.seed), "tip_radius_nm": float(cfg.afm_tip_radius_nm)},
        )
        timings["afm"] = time.perf_counter() - t
    pa = afm_t.inverse().apply(particles[["x", "y"]].to_numpy(float))
    hard = particles["hard"].to_numpy(bool)
    rl = 0.5 * particles["diameter_nm"].to_numpy(float) / np.sqrt(np.maximum(flattening(cfg, hard), 1e-3))
    particles["in_afm"] = (pa - rl[:, None] >= a_lo).all(1) & (pa + rl[:, None] <= a_hi).all(1)
    return afm


def fiducial_truth(cfg: SampleConfig, fiducials: pd.DataFrame, fid_cam: dict[str, np.ndarray],
                   transforms: dict[str, Transform], sim, beads: dict) -> pd.DataFrame:
    """Each fiducial's exact centre in every frame (NaN outside that image), whether SMLM and SIM
    see it, and its systematic offset per light frame (nm)."""
    fid = fiducials.copy()
    if len(fid):
        fid_w = fiducials[["x", "y"]].to_numpy(float)
        fid["x_smlm"], fid["y_smlm"] = fid_cam["antibody"][:, 0], fid_cam["antibody"][:, 1]
        fid["x_smlm_corona"], fid["y_smlm_corona"] = fid_cam["corona"][:, 0], fid_cam["corona"][:, 1]
        fs = transforms["sim"].inverse().apply(fid_w)
        if sim is not None:
            ext_lo = np.array([float(sim.x[0]), float(sim.y[0])])
            ext_hi = np.array([float(sim.x[-1]), float(sim.y[-1])])
            out = ~((fs >= ext_lo) & (fs <= ext_hi)).all(1)
            fs[out] = np.nan
        fid["x_sim"], fid["y_sim"] = fs[:, 0], fs[:, 1]
        a_lo, a_hi = image_extent(cfg.afm_field, cfg.afm_pixel_nm)
        fa = transforms["afm"].inverse().apply(fid_w)
        out = ~((fa >= a_lo) & (fa <= a_hi)).all(1)
        fa[out] = np.nan
        fid["x_afm"], fid["y_afm"] = fa[:, 0], fa[:, 1]
    else:
        for c in ("x_smlm", "y_smlm", "x_smlm_corona", "y_smlm_corona", "x_sim", "y_sim", "x_afm", "y_afm"):
            fid[c] = np.zeros(0)
    fid["seen_smlm"], fid["seen_sim"] = beads["seen"]["smlm"], beads["seen"]["sim"]
    for k in LIGHT_FRAMES:
        fid[f"dx_sys_{k}"], fid[f"dy_sys_{k}"] = beads["offset"][k][:, 0], beads["offset"][k][:, 1]
    return fid


def _sim_beads(cfg: SampleConfig, sim_t: Transform, fiducials: pd.DataFrame, beads: dict):
    """Seen beads and the spurious SIM spots: positions (SIM frame nm, with the systematic
    offsets), widths (nm, PSF and bead size) and brightness (molecule equivalents)."""
    psf = float(cfg.sim_resolution_nm) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    inv = sim_t.inverse()
    seen = beads["seen"]["sim"]
    f = fiducials[seen]
    fxy = inv.apply(f[["x", "y"]].to_numpy(float)) + beads["offset"]["sim"][seen] if len(f) else np.zeros((0, 2))
    sp = beads["spurious"][beads["spurious"]["modality"] == "sim"]
    sxy = inv.apply(sp[["x", "y"]].to_numpy(float)) if len(sp) else np.zeros((0, 2))
    xy = np.vstack([fxy, sxy])
    sig = bead_sigma(psf, np.concatenate([f["diameter_nm"].to_numpy(float), sp["diameter_nm"].to_numpy(float)]))
    wt = float(cfg.sim_fiducial_brightness) * np.concatenate([np.ones(len(f)), sp["brightness"].to_numpy(float)])
    return xy, sig, wt


def spurious_truth(spurious: pd.DataFrame, transforms: dict) -> pd.DataFrame:
    """Add each spurious spot's position in its modality's frame (x_frame, y_frame, nm)."""
    out = spurious.copy()
    out["x_frame"] = np.nan
    out["y_frame"] = np.nan
    for mod, key in (("smlm", "antibody"), ("sim", "sim")):
        sel = (out["modality"] == mod).to_numpy()
        if sel.any():
            q = transforms[key].inverse().apply(out.loc[sel, ["x", "y"]].to_numpy(float))
            out.loc[sel, "x_frame"], out.loc[sel, "y_frame"] = q[:, 0], q[:, 1]
    return out
