"""The per-label placing and assigning steps of the per-particle analysis: map a label's
localizations into the structure's frame with their predicted registration error, then assign
them to particles and group their blinks. Lengths nm."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._particle_state import LabelRun, ParticleRun

__all__ = ["assign_step", "place_step"]


def _tre_function(scene, label: str, structure: str):
    """Predicted RMS TRE (nm) at points of the label's own frame when carried into the
    structure's frame: the error covariances of every stored registration on the way (the
    label's chain to world and the structure's, shared links cancelling), or (None, None) when no
    registration places either element."""
    try:
        from ..registration._map import predicted_tre_between, registration_chain

        chain = registration_chain(scene, label) + registration_chain(scene, structure)
    except Exception:  # noqa: BLE001 - a scene without records
        return None, None

    def f(points):
        return np.asarray(predicted_tre_between(scene, label, structure, np.asarray(points, float))[0], float)

    if not np.isfinite(f(np.zeros((1, 2)))).all():  # no registration links the frames: unknown
        return None, None
    return f, (chain[0] if chain else {"id": "declared placement"})


def _check_field(state: ParticleRun, lab: LabelRun) -> None:
    """Record the fraction of the label inside the structure's field; raise when none is."""
    x_lo, x_hi, y_lo, y_hi = state.field_nm
    xy_s, fid, L, structure = lab.xy_s, lab.fiducial, lab.name, state.structure
    inside = (xy_s[:, 0] >= x_lo) & (xy_s[:, 0] <= x_hi) & (xy_s[:, 1] >= y_lo) & (xy_s[:, 1] <= y_hi)
    frac_in = float(inside[~fid].mean()) if (~fid).any() else float(inside.mean())
    lab.info["fraction_in_field"] = frac_in
    if not inside.any():
        lo, hi = xy_s.min(axis=0), xy_s.max(axis=0)
        raise CorrelateError(
            f"localizations {L!r} mapped into {structure!r} space span x {lo[0]:.0f}..{hi[0]:.0f}, "
            f"y {lo[1]:.0f}..{hi[1]:.0f} nm, which does not overlap the {structure!r} field "
            f"x {x_lo:.0f}..{x_hi:.0f}, y {y_lo:.0f}..{y_hi:.0f} nm: register {L!r} to {structure!r} "
            "first (correlate register) or pass transforms=",
            field="labels",
        )
    if frac_in < 0.05:
        state.notes.append(f"only {100 * frac_in:.1f} % of {L!r} falls inside the {structure!r} field: check the registration")


def place_step(state: ParticleRun, lab: LabelRun) -> None:
    """Map the label into the structure's frame (``options.transforms`` or the scene's), mark its
    fiducial tracks, check that it overlaps the field and set its predicted TRE (``tre_nm``:
    ``"auto"`` from the registrations, a number, or None)."""
    from ._assign import persistent_clusters

    L, n, locs = lab.name, lab.n, lab.locs
    transforms = state.options.transforms
    t = (transforms or {}).get(L) if transforms else None
    if t is None:
        t = state.scene.transform(L, state.structure)
    lab.transform = t
    lab.xy = locs[["x", "y"]].to_numpy(float)
    lab.xy_s = t.apply(lab.xy) if n else np.zeros((0, 2))
    exclude = state.options.assign.exclude_fiducial_tracks
    lab.fiducial = persistent_clusters(locs) if (exclude and n) else np.zeros(n, bool)
    if n:
        _check_field(state, lab)
    tre_val = lab.options.tre_nm
    tre_fun = None
    if tre_val == "auto":
        tre_fun, rec = _tre_function(state.scene, L, state.structure)
        lab.info["tre_source"] = f"registration {rec.get('id')}" if rec else "unknown"
        if rec is None:
            state.notes.append(f"predicted TRE of {L!r} is unknown (no registration links it to {state.structure!r}): "
                               "the assignment shell has no registration term and tre_nm is NaN")
    elif tre_val is not None:
        c = float(tre_val)
        tre_fun = lambda p, c=c: np.full(len(p), c)  # noqa: E731
        lab.info["tre_source"] = "given"
    lab.tre_fun = tre_fun
    lab.tre_loc = tre_fun(lab.xy) if (tre_fun is not None and n) else np.zeros(n)
    _set_precision(lab)


def _set_precision(lab: LabelRun) -> None:
    """The label's precision per localization (its column, ``precision_nm`` given, or NeNA),
    recorded in the summary; an estimated or given value also becomes the ``precision`` column
    that blink grouping and site counting read."""
    from ..smlm._precision import localization_precision

    if lab.n == 0:
        lab.precision = None
        return
    pr = localization_precision(lab.locs, lab.options.precision_nm, what=f"localizations {lab.name!r}",
                                flag="precision_nm (--precision-nm)")
    lab.precision = pr.values
    lab.info["precision_nm"], lab.info["precision_source"] = pr.median_nm, pr.source
    if pr.source != "column 'precision'":
        lab.locs = lab.locs.assign(precision=pr.values)


def _events(locs: pd.DataFrame, opts, groups: np.ndarray) -> tuple[np.ndarray, str]:
    """Event index of each localization and where it came from: a tracking id (MINFLUX traces,
    tracked rapidSTORM: one trace is one on-event), blink grouping of consecutive frames, or,
    with neither, one event per localization (said in the summary)."""
    from ._molecules import group_blinks

    n = len(locs)
    if "track_id" in locs.columns:
        return pd.factorize(locs["track_id"].to_numpy())[0].astype(np.int64), "track_id (one trace = one event)"
    if n and "frame" in locs.columns:
        ev = group_blinks(locs, radius_nm=opts.blink_radius_nm, max_dark_frames=opts.max_dark_frames, groups=groups)
        return ev, "blink grouping of consecutive frames"
    return np.arange(n), "one event per localization (no frame and no track_id column)"


def assign_step(state: ParticleRun, lab: LabelRun) -> None:
    """Assign the label's localizations to particles (shell: linker + ``n_sigma`` x the combined
    TRE and precision), group their blinks within each particle, and add ``n_localizations_L``,
    ``n_ambiguous_L``, ``n_events_L`` to the table."""
    from scipy.spatial import cKDTree

    from ._assign import assign_localizations

    L, locs = lab.name, lab.locs
    opts = state.options.assign
    n_part, pid, cent = state.n_particles, state.particle_id, state.centroids
    xy_s = lab.xy_s
    # per-axis TRE (RMS in 2-D = sqrt(2) sigma per axis) combined with the precision per axis
    a = assign_localizations(
        xy_s, cent, state.radii, linker_nm=float(lab.options.linker_nm), n_sigma=opts.n_sigma,
        precision_nm=lab.precision, tre_nm=lab.tre_loc / np.sqrt(2.0), exclude=lab.fiducial,
    )
    part = a["particle"].to_numpy()
    pid_loc = np.where(part >= 0, pid[np.clip(part, 0, max(n_part - 1, 0))] if n_part else -1, -1)
    ev, lab.info["events_from"] = _events(locs, opts, pid_loc)
    amb_rows = a["ambiguous"].to_numpy()
    state.assignments[L] = pd.DataFrame({"x_s": xy_s[:, 0], "y_s": xy_s[:, 1], "particle_id": pid_loc,
                                         "ambiguous": amb_rows, "fiducial": lab.fiducial, "event": ev})
    lab.particle, lab.particle_id, lab.ambiguous, lab.events = part, pid_loc, amb_rows, ev
    good = part >= 0
    cnt = np.bincount(part[good], minlength=n_part)[:n_part] if n_part else np.zeros(0, np.int64)
    # ambiguous ones are counted against their nearest particle
    amb_cnt = np.zeros(n_part, np.int64)
    if n_part and amb_rows.any():
        _, near = cKDTree(cent).query(xy_s[amb_rows])
        amb_cnt = np.bincount(near, minlength=n_part)[:n_part]
    n_ev = np.zeros(n_part, np.int64)
    if n_part and good.any():
        key = np.unique(part[good].astype(np.int64) * (int(ev.max()) + 1) + ev[good])
        n_ev = np.bincount(key // (int(ev.max()) + 1), minlength=n_part)[:n_part]
    lab.n_localizations, lab.n_ambiguous, lab.n_events = cnt, amb_cnt, n_ev
    state.table[f"n_localizations_{L}"] = cnt.astype(np.int64)
    state.table[f"n_ambiguous_{L}"] = amb_cnt.astype(np.int64)
    state.table[f"n_events_{L}"] = n_ev.astype(np.int64)
