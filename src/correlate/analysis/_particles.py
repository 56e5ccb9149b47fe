"""The per-particle pipeline: segment the structure image, measure, map and assign the labels'
localizations, count molecules, colocalize, and store one table.

Columns of the table (one row per particle; lengths nm, in the structure element's own space):

``particle_id`` (the label value in the label image), ``x``, ``y`` (centroid), ``area_nm2``,
``equivalent_diameter_nm``, ``feret_min_nm``, ``feret_max_nm``, ``circularity``,
``eccentricity``, ``edge`` (touches the image border: its size is a lower bound); AFM adds
``height_max_nm``, ``height_mean_nm``, ``volume_nm3``. Per label ``L``: ``n_localizations_L``
(assigned, not ambiguous), ``n_ambiguous_L`` (within the shell of this and another particle),
``n_events_L`` (blink-grouped on-events), ``n_molecules_L`` (events / events per molecule /
detection efficiency, or from emitter sites: ``count_method``), ``radial_mean_nm_L`` (mean
distance of the assigned localizations from the centroid), ``tre_nm_L`` (predicted registration error at the centroid, RMS nm); ``tre_nm`` is the
largest of these; with ``qpaint=True`` also ``n_qpaint_L``. Per ordered pair of labels ``A, B``:
``cbc_mean_A_B``, the mean CBC value (Malkusch 2012) of A's localizations assigned to the
particle with respect to all of B's localizations (NaN where A has none with a defined value), and
``nn_median_nm_A_B``, the median distance from those localizations to the nearest of B's.
With ``count_method="sites"`` also ``n_sites_L`` (emitter sites found among the particle's events)
and ``n_molecules_L`` comes from :func:`~correlate.analysis.count_sites`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError, ElementError

__all__ = ["ParticleAnalysis", "analyze_particles", "particles", "to_xarray"]


@dataclass
class ParticleAnalysis:
    """Everything :func:`analyze_particles` computed.

    Attributes
    ----------
    table
        The per-particle DataFrame (see the module docstring for the columns).
    segmentation
        The :class:`~correlate.analysis.Segmentation` of the structure image.
    assignments
        Per label: a DataFrame aligned with the label's localizations: ``x_s, y_s`` (mapped into
        the structure space), ``particle_id`` (-1 none), ``ambiguous``, ``fiducial``, ``event``.
    summary
        Plain-dict summary: particles, size distribution, label statistics, calibrations.
    """

    table: pd.DataFrame
    segmentation: Any
    assignments: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def to_xarray(self):
        """The table as an :class:`xarray.Dataset` indexed by ``particle_id``."""
        return to_xarray(self.table)


def to_xarray(table: pd.DataFrame):
    """A per-particle table as an :class:`xarray.Dataset` (dim ``particle_id``; attrs kept,
    units in each variable's ``attrs['units']``)."""
    import xarray as xr

    ds = xr.Dataset.from_dataframe(table.set_index("particle_id"))
    for name in ds.data_vars:
        unit = _unit_of(str(name))
        if unit:
            ds[name].attrs["units"] = unit
    ds.attrs = {k: v for k, v in table.attrs.items() if isinstance(v, (str, int, float, bool))}
    return ds


def _unit_of(col: str) -> str:
    if col in ("x", "y") or "_nm_" in col or col.endswith("_nm"):
        return "nm"
    if col.endswith("_nm2") or "_nm2" in col:
        return "nm^2"
    if col.endswith("_nm3"):
        return "nm^3"
    return ""


def _per_label(value, label: str, default):
    if isinstance(value, Mapping):
        return value.get(label, default)
    return default if value is None else value


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


def analyze_particles(
    scene,
    structure: str = "em",
    labels: Sequence[str] | str | None = ("antibody", "corona"),
    *,
    segmentation: Mapping[str, Any] | None = None,
    transforms: Mapping[str, Any] | None = None,
    linker_nm: float | Mapping[str, float] = 10.0,
    n_sigma: float = 2.0,
    tre_nm: float | Mapping[str, float] | str | None = "auto",
    blink_radius_nm: float | None = None,
    max_dark_frames: int = 1,
    events_per_molecule: float | Mapping[str, float] | str = "auto",
    detection_efficiency: float | Mapping[str, float] = 1.0,
    count_method: str | Mapping[str, str] = "sites",
    exclude_fiducial_tracks: bool = True,
    qpaint: bool = False,
    tau_d1_frames: float | Mapping[str, float] | None = None,
    cbc_radius_nm: float | None = None,
    cbc_steps: int = 10,
    fiducials: Any = None,
    fiducials_from_landmarks: bool = True,
    store: bool | None = None,
    table_name: str = "particles",
    label_name: str = "particles",
    overwrite: bool = True,
    assume_aligned: bool = False,
) -> ParticleAnalysis:
    """Run the joint per-particle analysis on a Scene.

    Parameters
    ----------
    scene
        An open :class:`correlate.scene.Scene`.
    structure
        Name of the EM or AFM image whose particles are measured.
    labels
        Names of localization elements (one per colour); empty for morphology only.
    segmentation
        Keyword arguments for :func:`segment_particles` (e.g. ``{"psf_sigma_nm": 2.4}``).
    transforms
        Optional ``{label: Transform}`` from the label's own frame to the structure's frame;
        default ``scene.transform(label, structure)``.
    linker_nm
        Distance of the label outside the particle edge (nm); one number or per label.
    n_sigma
        Multiple of ``sqrt(tre^2 + precision^2)`` added to the assignment shell.
    tre_nm
        ``"auto"`` (predicted TRE from the registrations that place the label; NaN, unknown,
        when none links it to the structure),
        a number (nm, RMS) or per label.
    blink_radius_nm, max_dark_frames
        Blink grouping (default radius 2.5 x the median precision).
    events_per_molecule
        A number; the name of a localization element of a sparse calibration acquisition in the
        scene (same dye and imaging; :func:`~correlate.analysis.calibrate_isolated`); or
        ``"auto"`` (estimated from the data, :func:`~correlate.analysis.calibrate_blinking`;
        approximate). One value or a ``{label: value}`` mapping.
    detection_efficiency
        Fraction of molecules that blink at all (a labelling calibration; 1 counts detected
        molecules).
    count_method
        ``"sites"`` (default): events grouped into emitter sites by position, each site counting
        the molecules its event count implies, scaled so that the total over all particles
        matches the events (:func:`~correlate.analysis.count_sites`; adds ``n_sites_L``; more
        accurate per particle on the simulator, see docs/analysis.md); ``"events"``:
        ``n_events / (events_per_molecule x detection_efficiency)``. One value or per label.
    exclude_fiducial_tracks
        Never assign localizations of persistent (fiducial-like) spots.
    qpaint, tau_d1_frames
        Add ``n_qpaint_L`` from dark times (meaningful for DNA-PAINT-like data only).
    cbc_radius_nm, cbc_steps
        CBC radius (default: the median particle diameter, at least 50 nm) and steps.
    fiducials, fiducials_from_landmarks
        Fiducial positions (K, 2) nm, or a table with x, y, in the structure's own frame, whose
        objects are left out of the particles; with ``fiducials_from_landmarks`` (default) also
        the landmarks of every stored registration of the structure (the pairs its fit used).
        ``summary["fiducials"]`` records how many came from where.
    store
        Write the label image (``<structure>/labels/<label_name>``) and the table
        (``table_name``) into the scene; default: when the scene is writable.

    assume_aligned
        Join labels that no registration placed with the structure (the frames are already
        aligned); otherwise such a label raises :class:`~correlate.errors.UnplacedError`.

    Returns
    -------
    ParticleAnalysis
    """
    from scipy.spatial import cKDTree

    from ..elements import make_table
    from ..elements import origin as _origin
    from ..elements import pixel_size as _pixel_size
    from ._assign import assign_localizations, persistent_clusters
    from ._colocalization import cbc
    from ._fiducial_exclusion import exclusion_notes, structure_exclusions
    from ._molecules import (
        _event_precision,
        _event_table,
        calibrate_blinking,
        calibrate_isolated,
        count_molecules,
        count_sites,
        group_blinks,
    )
    from ._molecules import qpaint as _qpaint
    from ._morphology import size_summary
    from ._segment import segment_particles

    if isinstance(labels, str):
        labels = [s for s in labels.split(",") if s]
    labels = list(labels or [])
    names = list(scene.names())
    if structure not in names:
        imgs = [n for n in names if scene.kind(n) == "image"]
        raise ElementError(
            f"no structure image {structure!r} in the scene; images present: {imgs}", path=str(getattr(scene, "path", "")),
            field="structure",
        )
    if scene.kind(structure) != "image":
        raise ElementError(f"structure {structure!r} is a {scene.kind(structure)}, expected an EM or AFM image",
                           field="structure")
    for L in labels:
        if L not in names:
            locs_present = [n for n in names if scene.kind(n) == "localizations"]
            raise ElementError(f"no localizations named {L!r} in the scene; present: {locs_present}", field="labels")
        if scene.kind(L) != "localizations":
            raise ElementError(f"label {L!r} is a {scene.kind(L)}, expected localizations", field="labels")
    if len(set(labels)) != len(labels):
        raise ElementError(f"labels repeated: {labels}", field="labels")
    for L in labels:
        if not (transforms and transforms.get(L) is not None):
            scene.require_joinable(L, structure, assume_aligned=assume_aligned, action="assign localizations of")
    img = scene.get(structure)
    modality = img.attrs.get("modality")
    if modality not in ("em", "afm"):
        warnings.warn(f"structure {structure!r} has modality {modality!r}; segmenting it as EM", stacklevel=2)
    seg_kw, fid_src = structure_exclusions(scene, structure, fiducials, from_landmarks=fiducials_from_landmarks,
                                           segmentation=segmentation)
    seg = segment_particles(img.compute() if hasattr(img.data, "compute") else img, **seg_kw)
    morph = seg.measure()
    n_part = len(morph)
    notes: list[str] = exclusion_notes(structure, fid_src, seg)
    if n_part == 0:
        notes.append(f"no particles found in {structure!r} (noise {seg.info.get('noise', float('nan')):.3g}, "
                     f"threshold {seg.info.get('detection_threshold', seg.info.get('threshold_nm', float('nan'))):.3g})")
    table = morph.copy()
    pid = table["particle_id"].to_numpy(np.int64)
    cent = table[["x", "y"]].to_numpy(float)
    radii = 0.5 * table["equivalent_diameter_nm"].to_numpy(float)
    px = _pixel_size(img)
    org = _origin(img)
    x_lo, x_hi = org["x"] - 0.5 * px["x"], org["x"] + (img.sizes["x"] - 0.5) * px["x"]
    y_lo, y_hi = org["y"] - 0.5 * px["y"], org["y"] + (img.sizes["y"] - 0.5) * px["y"]
    summary: dict[str, Any] = {
        "structure": structure,
        "modality": modality,
        "n_particles": int(n_part),
        "n_edge": int(table["edge"].sum()) if n_part else 0,
        "n_fiducials_excluded": len(seg.fiducials),
        "fiducials": {**fid_src, "n_excluded_at_positions": int(seg.info.get("n_fiducials_at_positions", 0)),
                      "n_positions_without_object": int(seg.info.get("n_exclude_at_unmatched", 0))},
        "height_fit": morph.attrs.get("height_fit"),
        "size": size_summary(table.loc[~table["edge"], "equivalent_diameter_nm"]) if n_part else size_summary([]),
        "labels": {},
    }
    assignments: dict[str, pd.DataFrame] = {}
    mapped: dict[str, np.ndarray] = {}
    tre_cols = []
    for L in labels:
        locs = scene.get(L)
        n = len(locs)
        lab_info: dict[str, Any] = {"n_localizations": int(n)}
        t = (transforms or {}).get(L) if transforms else None
        if t is None:
            t = scene.transform(L, structure)
        xy = locs[["x", "y"]].to_numpy(float)
        xy_s = t.apply(xy) if n else np.zeros((0, 2))
        fid = persistent_clusters(locs) if (exclude_fiducial_tracks and n) else np.zeros(n, bool)
        if n:
            inside = (xy_s[:, 0] >= x_lo) & (xy_s[:, 0] <= x_hi) & (xy_s[:, 1] >= y_lo) & (xy_s[:, 1] <= y_hi)
            frac_in = float(inside[~fid].mean()) if (~fid).any() else float(inside.mean())
            lab_info["fraction_in_field"] = frac_in
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
                notes.append(f"only {100 * frac_in:.1f} % of {L!r} falls inside the {structure!r} field: check the registration")
        # TRE
        tre_val = _per_label(tre_nm, L, "auto") if isinstance(tre_nm, Mapping) else tre_nm
        tre_fun = None
        if tre_val == "auto":
            tre_fun, rec = _tre_function(scene, L, structure)
            lab_info["tre_source"] = f"registration {rec.get('id')}" if rec else "unknown"
            if rec is None:
                notes.append(f"predicted TRE of {L!r} is unknown (no registration links it to {structure!r}): "
                             "the assignment shell has no registration term and tre_nm is NaN")
        elif tre_val is not None:
            c = float(tre_val)
            tre_fun = lambda p, c=c: np.full(len(p), c)
            lab_info["tre_source"] = "given"
        tre_loc = tre_fun(xy) if (tre_fun is not None and n) else np.zeros(n)
        prec = locs["precision"].to_numpy(float) if "precision" in locs.columns else (
            np.sqrt(0.5 * (locs["precision_x"].to_numpy(float) ** 2 + locs["precision_y"].to_numpy(float) ** 2))
            if {"precision_x", "precision_y"} <= set(locs.columns) else None
        )
        # per-axis TRE (RMS in 2-D = sqrt(2) sigma per axis) combined with the precision per axis
        a = assign_localizations(
            xy_s, cent, radii, linker_nm=float(_per_label(linker_nm, L, 10.0)), n_sigma=n_sigma,
            precision_nm=prec, tre_nm=tre_loc / np.sqrt(2.0), exclude=fid,
        )
        part = a["particle"].to_numpy()
        pid_loc = np.where(part >= 0, pid[np.clip(part, 0, max(n_part - 1, 0))] if n_part else -1, -1)
        # blink grouping (within each particle; all others together)
        ev = group_blinks(locs, radius_nm=blink_radius_nm, max_dark_frames=max_dark_frames, groups=pid_loc) if n and "frame" in locs.columns else np.arange(n)
        assignments[L] = pd.DataFrame({"x_s": xy_s[:, 0], "y_s": xy_s[:, 1], "particle_id": pid_loc,
                                       "ambiguous": a["ambiguous"].to_numpy(), "fiducial": fid, "event": ev})
        mapped[L] = xy_s
        # per-particle counts (bincount over the row index of the particle)
        good = part >= 0
        cnt = np.bincount(part[good], minlength=n_part)[:n_part] if n_part else np.zeros(0, np.int64)
        amb_rows = a["ambiguous"].to_numpy()
        # ambiguous ones are counted against their nearest particle
        amb_cnt = np.zeros(n_part, np.int64)
        if n_part and amb_rows.any():
            _, near = cKDTree(cent).query(xy_s[amb_rows])
            amb_cnt = np.bincount(near, minlength=n_part)[:n_part]
        n_ev = np.zeros(n_part, np.int64)
        if n_part and good.any():
            key = np.unique(part[good].astype(np.int64) * (int(ev.max()) + 1) + ev[good])
            n_ev = np.bincount(key // (int(ev.max()) + 1), minlength=n_part)[:n_part]
        epm = _per_label(events_per_molecule, L, "auto")
        cal = {}
        if isinstance(epm, str) and epm != "auto":
            # the name of a sparse calibration acquisition in the scene
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
            cal = calibrate_blinking(locs, ev, groups=pid_loc, exclude=fid | amb_rows) if n else {}
            epm_v = float(cal.get("events_per_molecule", np.nan))
            if not np.isfinite(epm_v):
                notes.append(f"{L!r}: too few events on particles to calibrate events per molecule; n_molecules is NaN")
        else:
            epm_v = float(epm)
        lab_info["events_per_molecule"] = epm_v
        lab_info["blink_calibration"] = (
            {k: (v if isinstance(v, str) else float(v)) for k, v in cal.items()} if cal else "given"
        )
        de = float(_per_label(detection_efficiency, L, 1.0))
        radial = np.full(n_part, np.nan)
        if n_part and good.any():
            d = np.hypot(xy_s[good, 0] - cent[part[good], 0], xy_s[good, 1] - cent[part[good], 1])
            s = np.bincount(part[good], weights=d, minlength=n_part)[:n_part]
            radial = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
        table[f"n_localizations_{L}"] = cnt.astype(np.int64)
        table[f"n_ambiguous_{L}"] = amb_cnt.astype(np.int64)
        table[f"n_events_{L}"] = n_ev.astype(np.int64)
        method = str(_per_label(count_method, L, "sites"))
        if method not in ("events", "sites"):
            raise CorrelateError(f"count_method for {L!r} must be 'events' or 'sites', got {method!r}",
                                 field="count_method")
        lab_info["count_method"] = method
        if method == "sites" and n_part and n and np.isfinite(epm_v):
            # events (camera frame positions and errors) of the assigned localizations, per particle row
            ev_on = np.unique(ev[good])
            ev_tab = _event_table(locs, ev)
            ev_sig = _event_precision(locs, ev)
            if not np.isfinite(ev_sig).any():
                ev_sig = np.full(len(ev_tab), 10.0)  # no precision column: a generic 10 nm
            ev_row = np.full(len(ev_tab), -1, np.int64)
            ev_row[ev[good]] = part[good]
            cs = count_sites(ev_tab[["x", "y"]].to_numpy(float)[ev_on], ev_sig[ev_on], ev_row[ev_on],
                             events_per_molecule=epm_v, detection_efficiency=de, n_groups=n_part)
            table[f"n_sites_{L}"] = cs["n_sites"].to_numpy()
            lab_info["site_scale"] = float(cs.attrs.get("scale", 1.0))
            table[f"n_molecules_{L}"] = cs["n_molecules"].to_numpy()
        else:
            if method == "sites":  # nothing to group (no localizations or no calibration)
                table[f"n_sites_{L}"] = np.zeros(n_part, np.int64)
            table[f"n_molecules_{L}"] = count_molecules(n_ev, events_per_molecule=epm_v, detection_efficiency=de) if np.isfinite(epm_v) else np.full(n_part, np.nan)
        table[f"radial_mean_nm_{L}"] = radial
        # TRE at the particle centroids (mapped back into the label's own frame)
        if tre_fun is not None and n_part:
            try:
                back = t.inverse().apply(cent)
                table[f"tre_nm_{L}"] = tre_fun(back)
            except Exception:  # noqa: BLE001 - a transform without a usable inverse
                table[f"tre_nm_{L}"] = float(np.median(tre_loc)) if n else np.nan
        else:
            table[f"tre_nm_{L}"] = np.nan
        tre_cols.append(f"tre_nm_{L}")
        if qpaint:
            q = _qpaint(locs["frame"].to_numpy() if n else np.zeros(0), np.where(part >= 0, part, -1),
                        n_groups=n_part, max_dark_frames=max_dark_frames,
                        tau_d1_frames=_per_label(tau_d1_frames, L, None) or cal.get("dark_time_frames"))
            table[f"n_qpaint_{L}"] = q["n_qpaint"].to_numpy()
        n_valid = int((~fid).sum())
        lab_info.update(
            n_fiducial_track=int(fid.sum()),
            n_assigned=int(good.sum()),
            n_ambiguous=int(amb_rows.sum()),
            fraction_assigned=float(good.sum() / n_valid) if n_valid else float("nan"),
            fraction_ambiguous=float(amb_rows.sum() / n_valid) if n_valid else float("nan"),
            detection_efficiency=de,
        )
        if n and n_part and good.sum() == 0:
            notes.append(f"no localization of {L!r} lies near any particle of {structure!r}")
        if n == 0:
            notes.append(f"label {L!r} has no localizations")
        summary["labels"][L] = lab_info
    table["tre_nm"] = table[tre_cols].max(axis=1) if tre_cols else 0.0
    # colocalization per ordered label pair
    if len(labels) >= 2 and n_part:
        r_cbc = float(cbc_radius_nm) if cbc_radius_nm else max(50.0, float(np.nanmedian(2 * radii)))
        summary["cbc_radius_nm"] = r_cbc
        for A in labels:
            for B in labels:
                if A == B:
                    continue
                asg_a, asg_b = assignments[A], assignments[B]
                sel_a = ~asg_a["fiducial"].to_numpy()
                sel_b = ~asg_b["fiducial"].to_numpy()
                col = f"cbc_mean_{A}_{B}"
                if sel_a.sum() == 0 or sel_b.sum() == 0:
                    table[col] = np.nan
                    continue
                pa = mapped[A][sel_a]
                pb = mapped[B][sel_b]
                vals = cbc(pa, pb, radius=r_cbc, n_steps=cbc_steps)
                part_a = asg_a["particle_id"].to_numpy()[sel_a]
                row = np.full(len(part_a), -1)
                ok = (part_a >= 0) & np.isfinite(vals)
                row[ok] = np.searchsorted(pid, part_a[ok])
                s = np.bincount(row[ok], weights=vals[ok], minlength=n_part)[:n_part]
                c = np.bincount(row[ok], minlength=n_part)[:n_part]
                table[col] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
                # nearest-neighbour distance from A's localizations on the particle to B's
                on = part_a >= 0
                nn = cKDTree(pb).query(pa[on], k=1)[0]
                med = pd.Series(nn).groupby(np.searchsorted(pid, part_a[on])).median()
                nn_col = np.full(n_part, np.nan)
                nn_col[med.index.to_numpy()] = med.to_numpy()
                table[f"nn_median_nm_{A}_{B}"] = nn_col
    label_image = f"{structure}/labels/{label_name}"
    table.attrs = {
        "kind": "table",
        "label_image": label_image,
        "coordinate_system": structure,
        "structure": structure,
        "labels": ",".join(labels),
        "notes": "; ".join(notes),
    }
    table = make_table(table, label_image=label_image, coordinate_system=structure)
    summary["notes"] = notes
    do_store = (getattr(scene, "mode", "r") == "r+") if store is None else bool(store)
    if do_store:
        lab = seg.labels
        lab_store = lab.copy()
        lab_store.attrs = {k: v for k, v in lab.attrs.items() if isinstance(v, (str, int, float, bool, list, dict))}
        with scene.transaction(f"particle analysis {table_name!r}"):
            scene.add_labels(structure, label_name, lab_store, overwrite=overwrite)
            scene.add_table(table_name, table, label_image=label_image, overwrite=overwrite)
            try:
                scene.add_history(table_name, {"step": "analysis.particles", "structure": structure, "labels": labels,
                                               "n_particles": int(n_part)})
            except Exception as exc:  # noqa: BLE001 - history is a nicety, the results are stored
                warnings.warn(f"could not record the history of {table_name!r}: {exc}", stacklevel=2)
    return ParticleAnalysis(table=table, segmentation=seg, assignments=assignments, summary=summary)


def particles(scene, structure: str = "em", labels: Sequence[str] | str | None = ("antibody", "corona"), **kwargs) -> pd.DataFrame:
    """Per-particle table of a Scene: :func:`analyze_particles` (same arguments) ``.table``.

    Returns
    -------
    pandas.DataFrame
        One row per particle; see :mod:`correlate.analysis._particles` for the columns.
    """
    return analyze_particles(scene, structure, labels, **kwargs).table
