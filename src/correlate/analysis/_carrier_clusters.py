"""Structures labelled in several colours, from SMLM alone: the localizations of all the labels
clustered together, then counted per label (blink events grouped into molecules within each
colour), with each structure's state (:mod:`._carrier_state`) from its emitter sites.

Molecules per structure are its blink events over the label's mean events per molecule, estimated
over all structures (events / emitter sites) unless given: site counts of single structures are
biased where a molecule's many events split into two sites or two molecules merge into one (a few
minority molecules on a structure counted double turn a mixing of 2.5 % into 3 %), while the
ratio over the whole sample is common to all structures and cancels in the fractions.

The colours are separate acquisitions (or channels): their frames are kept apart so that no blink
event joins localizations of two colours. Labels in other frames than the first label's are
mapped into it, which needs them placed in one frame (or the user's word that they are aligned).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ..smlm._precision import localization_precision
from ._clusters import ClusterOptions, ClusterResult, _events_and_sites, _group_table, cluster_localizations

__all__ = ["cluster_structures", "structures_from_scene"]


def _events_per_molecule(given: Mapping[str, float] | None, name: str, table: pd.DataFrame,
                         n_clu: int) -> tuple[float, str]:
    if given is not None and name in given:
        mu = float(given[name])
        if not (np.isfinite(mu) and mu > 0):
            raise CorrelateError(f"events_per_molecule[{name!r}] must be a positive number, got {given[name]!r}",
                                 field="events_per_molecule")
        return mu, "user"
    sites = float(table[f"n_sites_{name}"].sum())
    if sites <= 0:
        return float("nan"), f"no emitter sites of {name!r} in any structure"
    return float(table[f"n_events_{name}"].sum()) / sites, "estimated (events / emitter sites over all structures)"


def _state_sites(xy: np.ndarray, prec: np.ndarray, lab: np.ndarray, site: np.ndarray, z_max: float) -> np.ndarray:
    """(N,) molecule of each localization for the state's null model: the emitter sites, with
    sites closer than ``z_max`` combined errors merged (a molecule's many events split into two
    sites would count as two independent shell positions and make the null too regular)."""
    from ._sites import emitter_sites

    sxy, sp2, scl = _group_table(xy, prec**2, lab, site)
    merged = emitter_sites(sxy, np.sqrt(sp2), groups=scl, z_max=z_max)
    _, glob = np.unique(np.column_stack([scl, merged]), axis=0, return_inverse=True)
    out = np.full(len(lab), -1, np.int64)
    out[site >= 0] = glob.ravel()[site[site >= 0]]
    return out


def cluster_structures(locs: Mapping[str, pd.DataFrame], options: ClusterOptions | None = None, *,
                       state: bool = True, state_kwargs: dict[str, Any] | None = None,
                       events_per_molecule: Mapping[str, float] | None = None, state_site_z: float = 4.0,
                       **kwargs: Any) -> ClusterResult:
    """Cluster the localizations of several labels together into structures and count each label.

    Parameters
    ----------
    locs
        ``{label: localizations}`` (``x, y`` nm; ``frame``, ``precision`` where present), one frame.
    options, **kwargs
        :class:`ClusterOptions` for the joint clustering (and keyword overrides).
    state
        Add the carrier state columns (:func:`~correlate.analysis.carrier_state`, ``shape``
        statistic on the sites of all labels) and put its summary in ``parameters["state"]``.
    state_kwargs
        Options of :func:`~correlate.analysis.carrier_state` (``alpha``, ``threshold``, ...).
    events_per_molecule
        ``{label: mean blink events per molecule}`` (a calibration of the dye); a label not given
        is estimated as its events over its emitter sites summed over all structures.
    state_site_z
        For the state only: emitter sites closer than this many combined errors are one molecule
        of the null model (fragments of one molecule merged; merging two molecules only makes the
        test more conservative).

    Returns
    -------
    ClusterResult
        ``table`` with the cluster columns (``equivalent_diameter_nm``, ``label_radius_nm``, ...)
        and per label ``n_localizations_<label>``, ``n_events_<label>`` (blink events),
        ``n_sites_<label>`` (emitter sites) and ``n_molecules_<label>`` (events over the label's
        events per molecule);
        ``labels`` is ``{label: (N,) cluster index or -1}``.
    """
    names = list(locs)
    if not names:
        raise CorrelateError("no labels to cluster", field="labels")
    parts, offset = [], 0
    for name in names:
        df = locs[name]
        if not {"x", "y"} <= set(df.columns):
            raise CorrelateError(f"label {name!r} has no x, y columns", field="labels")
        keep = [c for c in ("x", "y", "frame", "precision", "precision_x", "precision_y") if c in df.columns]
        d = df[keep].copy()
        if "frame" in d.columns:
            d["frame"] = d["frame"].to_numpy(np.int64) + offset
            offset = int(d["frame"].max()) + 10 if len(d) else offset
        parts.append(d)
    frames_in_all = all("frame" in p.columns for p in parts)
    joint = pd.concat(parts, ignore_index=True)
    if not frames_in_all and "frame" in joint.columns:
        joint = joint.drop(columns="frame")
    res = cluster_localizations(joint, options, **kwargs)
    n_clu = len(res.table)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    table = res.table.copy()
    per_label, site_rows, n_site_total, calib = {}, [], 0, {}
    opts = options or ClusterOptions()
    for j, name in enumerate(names):
        lab = res.labels[bounds[j]:bounds[j + 1]]
        sub = locs[name].reset_index(drop=True)
        prec = (localization_precision(sub, opts.precision_nm, what=f"localizations {name!r}",
                                       flag="precision_nm").values if len(sub) else np.zeros(0))
        table[f"n_localizations_{name}"] = np.bincount(lab[lab >= 0], minlength=n_clu)
        if len(sub) and (lab >= 0).any():
            event, site = _events_and_sites(sub, lab, prec)
            xy = sub[["x", "y"]].to_numpy(float)
            _, _, scl = _group_table(xy, prec**2, lab, site)
            _, _, ecl_ = _group_table(xy, prec**2, lab, event)
            table[f"n_events_{name}"] = np.bincount(ecl_, minlength=n_clu)
            m = lab >= 0
            merged = _state_sites(xy, prec, lab, site, state_site_z)
            exy, ep2, ecl, esite = xy[m], prec[m] ** 2, lab[m], merged[m] + n_site_total
            n_site_total += int(merged.max()) + 1
        else:
            scl = ecl = esite = np.zeros(0, np.int64)
            table[f"n_events_{name}"] = 0
            exy, ep2 = np.zeros((0, 2)), np.zeros(0)
        table[f"n_sites_{name}"] = np.bincount(scl, minlength=n_clu)
        mu, mu_src = _events_per_molecule(events_per_molecule, name, table, n_clu)
        table[f"n_molecules_{name}"] = table[f"n_events_{name}"] / mu if np.isfinite(mu) else np.nan
        calib[name] = {"events_per_molecule": mu, "source": mu_src}
        site_rows.append((exy, ep2, ecl, esite))
        per_label[name] = lab
    params = {**res.parameters, "labels": names, "counting": calib, "state_site_z": float(state_site_z)}
    if state and n_clu:
        from ._carrier_state import carrier_state

        exy, ep2, ecl, esite = (np.concatenate([s[i] for s in site_rows]) for i in range(4))
        st = carrier_state(exy, ep2, ecl, table["particle_id"].to_numpy(), table["label_radius_nm"].to_numpy(),
                           site=esite, **(state_kwargs or {}))
        table = table.merge(st.table.drop(columns="n_sites"), on="particle_id", how="left")
        params["state"] = st.summary
    table.attrs = {**res.table.attrs, "labels": ",".join(names)}
    return ClusterResult(per_label, table, params)  # type: ignore[arg-type]


def structures_from_scene(scene, labels: list[str], options: ClusterOptions | None = None, *,
                          exclude_fiducial_tracks: bool = True, fiducial_kwargs: dict[str, Any] | None = None,
                          store: bool | None = None, table_name: str = "carriers", overwrite: bool = True,
                          state_kwargs: dict[str, Any] | None = None,
                          events_per_molecule: Mapping[str, float] | None = None, assume_aligned: bool = False,
                          **kwargs: Any) -> ClusterResult:
    """:func:`cluster_structures` on localization elements of a store; the table is stored as
    ``table_name`` (default ``carriers``) in one transaction when the scene is writable.

    Labels in different frames are mapped into the first label's frame, which needs them placed
    in one frame (a colour registration, or ``Scene.declare_aligned``) or ``assume_aligned``
    (the colours of one acquisition, already aligned); UnplacedError otherwise."""
    from ._clusters_scene import _frame_name, _jsonable

    for name in labels:
        if name not in scene or scene.kind(name) != "localizations":
            raise CorrelateError(f"no localization element {name!r}; localization elements: "
                                 f"{', '.join(scene.names('localizations')) or 'none'}", field="labels")
    frames = {_frame_name(scene, n) for n in labels}
    locs, n_fid = {}, 0
    for name in labels:
        df = scene.get(name)
        if exclude_fiducial_tracks and len(df) and "frame" in df.columns:
            from ._assign import persistent_clusters

            fid = persistent_clusters(df, **(fiducial_kwargs or {}))
            n_fid += int(fid.sum())
            df = df.loc[~fid].reset_index(drop=True)
        if len(frames) > 1 and name != labels[0]:  # into the first label's frame (refuses unplaced ones)
            xy = scene.map_points(df[["x", "y"]].to_numpy(float), name, labels[0], assume_aligned=assume_aligned)
            df = df.assign(x=xy[:, 0], y=xy[:, 1])
        locs[name] = df
    frame = _frame_name(scene, labels[0])
    res = cluster_structures(locs, options, state_kwargs=state_kwargs, events_per_molecule=events_per_molecule,
                             **kwargs)
    params = {**res.parameters, "n_fiducial_track": n_fid, "coordinate_system": frame, "table": table_name}
    from ..elements import make_table

    t = res.table
    t.attrs = {"kind": "table", "structure": "clusters", "labels": ",".join(labels), "source": "clusters",
               "clustering": _jsonable({k: v for k, v in params.items() if k != "state"})}
    t = make_table(t, coordinate_system=frame)
    do_store = (getattr(scene, "mode", "r") == "r+") if store is None else bool(store)
    if do_store:
        with scene.transaction(f"structures of {', '.join(labels)} into table {table_name!r}"):
            scene.add_table(table_name, t, overwrite=overwrite)
            scene.add_history(table_name, {"step": "analysis.structures", "labels": list(labels),
                                           "n_particles": int(len(t)), "params": _jsonable(params)})
    return ClusterResult(res.labels, t, params)
