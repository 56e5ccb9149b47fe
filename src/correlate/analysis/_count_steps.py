"""The per-label counting steps of the per-particle analysis: molecules per particle (blink
calibration, emitter sites or events), the label's distances and TRE at each particle, qPAINT,
and the label's summary. Lengths nm."""

from __future__ import annotations

import numpy as np

from ..errors import CorrelateError, ElementError
from ._particle_state import LabelRun, ParticleRun

__all__ = ["count_step", "locate_step", "qpaint_step", "summarize_label_step"]


def _calibration(state: ParticleRun, lab: LabelRun) -> tuple[float, dict]:
    """Events per molecule of the label and its calibration record: a number; the name of a
    sparse calibration element in the scene; or ``"auto"`` (estimated from the label's events)."""
    from ._assign import persistent_clusters
    from ._molecules import calibrate_blinking, calibrate_isolated

    epm, L, scene = lab.options.events_per_molecule, lab.name, state.scene
    cal: dict = {}
    if isinstance(epm, str) and epm != "auto":
        names = list(scene.names())
        if epm not in names or scene.kind(epm) != "localizations":
            raise ElementError(
                f"events_per_molecule for {L!r} must be a number, 'auto' or the name of a "
                f"calibration localization element in the scene; got {epm!r}",
                field="events_per_molecule",
            )
        cal_locs = scene.get(epm)
        cal = calibrate_isolated(cal_locs, exclude=persistent_clusters(cal_locs))
        epm_v = float(cal.get("events_per_molecule", np.nan))
        if not np.isfinite(epm_v):
            raise CorrelateError(
                f"calibration element {epm!r} has only {cal.get('n_clusters', 0)} isolated molecules; "
                "need at least 10 for events per molecule",
                field="events_per_molecule",
            )
        cal["source"] = epm
    elif isinstance(epm, str):
        cal = calibrate_blinking(lab.locs, lab.events, groups=lab.particle_id,
                                 exclude=lab.fiducial | lab.ambiguous) if lab.n else {}
        epm_v = float(cal.get("events_per_molecule", np.nan))
        if not np.isfinite(epm_v):
            state.notes.append(f"{L!r}: too few events on particles to calibrate events per molecule; n_molecules is NaN")
    else:
        epm_v = float(epm)
    return epm_v, cal


def count_step(state: ParticleRun, lab: LabelRun) -> None:
    """Molecules per particle: ``n_molecules_L`` (and ``n_sites_L`` with
    ``count_method="sites"``) from the label's events and its events per molecule."""
    from ._molecules import _event_precision, _event_table, count_molecules
    from ._sites import count_sites

    L, n, n_part = lab.name, lab.n, state.n_particles
    epm_v, cal = _calibration(state, lab)
    lab.events_per_molecule, lab.calibration = epm_v, cal
    lab.info["events_per_molecule"] = epm_v
    lab.info["blink_calibration"] = (
        {k: (v if isinstance(v, str) else float(v)) for k, v in cal.items()} if cal else "given"
    )
    de = float(lab.options.detection_efficiency)
    table = state.table
    method = str(lab.options.count_method)
    if method not in ("events", "sites"):
        raise CorrelateError(f"count_method for {L!r} must be 'events' or 'sites', got {method!r}",
                             field="count_method")
    lab.info["count_method"] = method
    if method == "sites" and n_part and n and np.isfinite(epm_v):
        ev, part, good = lab.events, lab.particle, lab.assigned
        # events (camera frame positions and errors) of the assigned localizations, per particle row
        ev_on = np.unique(ev[good])
        ev_tab = _event_table(lab.locs, ev)
        ev_sig = _event_precision(lab.locs, ev)
        if ev_on.size and not np.isfinite(ev_sig[ev_on]).any():
            raise CorrelateError(f"no finite localization precision for {L!r}, needed to group its events "
                                 "into sites: pass precision_nm (--precision-nm) or count_method='events'",
                                 field="precision")
        ev_row = np.full(len(ev_tab), -1, np.int64)
        ev_row[ev[good]] = part[good]
        cs = count_sites(ev_tab[["x", "y"]].to_numpy(float)[ev_on], ev_sig[ev_on], ev_row[ev_on],
                         events_per_molecule=epm_v, detection_efficiency=de, n_groups=n_part)
        table[f"n_sites_{L}"] = cs["n_sites"].to_numpy()
        lab.info["site_scale"] = float(cs.attrs.get("scale", 1.0))
        table[f"n_molecules_{L}"] = cs["n_molecules"].to_numpy()
    else:
        if method == "sites":  # nothing to group (no localizations or no calibration)
            table[f"n_sites_{L}"] = np.zeros(n_part, np.int64)
        table[f"n_molecules_{L}"] = (count_molecules(lab.n_events, events_per_molecule=epm_v, detection_efficiency=de)
                                     if np.isfinite(epm_v) else np.full(n_part, np.nan))


def locate_step(state: ParticleRun, lab: LabelRun) -> None:
    """``radial_mean_nm_L`` (mean distance of the assigned localizations from the centroid) and
    ``tre_nm_L`` (predicted TRE at the centroids, mapped back into the label's frame)."""
    L, n, n_part = lab.name, lab.n, state.n_particles
    part, good, cent, xy_s = lab.particle, lab.assigned, state.centroids, lab.xy_s
    radial = np.full(n_part, np.nan)
    if n_part and good.any():
        d = np.hypot(xy_s[good, 0] - cent[part[good], 0], xy_s[good, 1] - cent[part[good], 1])
        s = np.bincount(part[good], weights=d, minlength=n_part)[:n_part]
        radial = np.where(lab.n_localizations > 0, s / np.maximum(lab.n_localizations, 1), np.nan)
    lab.radial_mean_nm = radial
    table = state.table
    table[f"radial_mean_nm_{L}"] = radial
    if lab.tre_fun is not None and n_part:
        try:
            back = lab.transform.inverse().apply(cent)
            table[f"tre_nm_{L}"] = lab.tre_fun(back)
        except Exception:  # noqa: BLE001 - a transform without a usable inverse
            table[f"tre_nm_{L}"] = float(np.median(lab.tre_loc)) if n else np.nan
    else:
        table[f"tre_nm_{L}"] = np.nan
    state.tre_columns.append(f"tre_nm_{L}")


def qpaint_step(state: ParticleRun, lab: LabelRun) -> None:
    """``n_qpaint_L`` from the dark times, with ``options.count.qpaint`` (DNA-PAINT-like data)."""
    from ._molecules import qpaint

    if not state.options.count.qpaint:
        return
    n, part = lab.n, lab.particle
    q = qpaint(lab.locs["frame"].to_numpy() if n else np.zeros(0), np.where(part >= 0, part, -1),
               n_groups=state.n_particles, max_dark_frames=state.options.assign.max_dark_frames,
               tau_d1_frames=lab.options.tau_d1_frames or lab.calibration.get("dark_time_frames"))
    state.table[f"n_qpaint_{lab.name}"] = q["n_qpaint"].to_numpy()


def summarize_label_step(state: ParticleRun, lab: LabelRun) -> None:
    """The label's assignment fractions in its summary, and notes on a label that is empty or
    lies near no particle."""
    L, n, n_part = lab.name, lab.n, state.n_particles
    fid, good, amb_rows = lab.fiducial, lab.assigned, lab.ambiguous
    n_valid = int((~fid).sum())
    lab.info.update(
        n_fiducial_track=int(fid.sum()),
        n_assigned=int(good.sum()),
        n_ambiguous=int(amb_rows.sum()),
        fraction_assigned=float(good.sum() / n_valid) if n_valid else float("nan"),
        fraction_ambiguous=float(amb_rows.sum() / n_valid) if n_valid else float("nan"),
        detection_efficiency=float(lab.options.detection_efficiency),
    )
    if n and n_part and good.sum() == 0:
        state.notes.append(f"no localization of {L!r} lies near any particle of {state.structure!r}")
    if n == 0:
        state.notes.append(f"label {L!r} has no localizations")
