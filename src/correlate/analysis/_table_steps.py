"""The closing steps of the per-particle analysis: the overall TRE column, colocalization between
labels, the finished table and storing it in the scene. Lengths nm."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._particle_state import ParticleRun

__all__ = ["colocalize_step", "store_step", "table_step", "tre_step"]


def tre_step(state: ParticleRun) -> None:
    """``tre_nm``: the largest of the labels' predicted TREs at each particle."""
    cols = state.tre_columns
    state.table["tre_nm"] = state.table[cols].max(axis=1) if cols else 0.0


def _pair_columns(state: ParticleRun, A: str, B: str, r_cbc: float, n_steps: int) -> None:
    """``cbc_mean_A_B`` and ``nn_median_nm_A_B`` of A's localizations on each particle."""
    from scipy.spatial import cKDTree

    from ._colocalization import cbc

    table, pid, n_part = state.table, state.particle_id, state.n_particles
    asg_a, asg_b = state.assignments[A], state.assignments[B]
    sel_a = ~asg_a["fiducial"].to_numpy()
    sel_b = ~asg_b["fiducial"].to_numpy()
    col = f"cbc_mean_{A}_{B}"
    if sel_a.sum() == 0 or sel_b.sum() == 0:
        table[col] = np.nan
        return
    pa = state.label_runs[A].xy_s[sel_a]
    pb = state.label_runs[B].xy_s[sel_b]
    vals = cbc(pa, pb, radius=r_cbc, n_steps=n_steps)
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


def colocalize_step(state: ParticleRun) -> None:
    """CBC colocalization and nearest-neighbour distances per ordered pair of labels (radius
    ``options.colocalize.cbc_radius_nm``, default the median particle diameter, at least 50 nm)."""
    labels, opts = state.labels, state.options.colocalize
    if len(labels) < 2 or not state.n_particles:
        return
    r_cbc = float(opts.cbc_radius_nm) if opts.cbc_radius_nm else max(50.0, float(np.nanmedian(2 * state.radii)))
    state.summary["cbc_radius_nm"] = r_cbc
    for A in labels:
        for B in labels:
            if A != B:
                _pair_columns(state, A, B, r_cbc, opts.cbc_steps)


def table_step(state: ParticleRun) -> None:
    """The finished table: a correlate table annotated with the label image, frame, labels and
    notes; the notes go into the summary too."""
    from ..elements import make_table

    structure = state.structure
    label_image = f"{structure}/labels/{state.options.store.label_name}"
    table = state.table
    table.attrs = {
        "kind": "table",
        "label_image": label_image,
        "coordinate_system": structure,
        "structure": structure,
        "labels": ",".join(state.labels),
        "notes": "; ".join(state.notes),
    }
    state.table = make_table(table, label_image=label_image, coordinate_system=structure)
    state.summary["notes"] = state.notes


def store_step(state: ParticleRun) -> None:
    """Write the label image and the table into the scene in one transaction (``options.store``;
    default: when the scene is writable), with a history record."""
    opts, scene = state.options.store, state.scene
    do_store = (getattr(scene, "mode", "r") == "r+") if opts.store is None else bool(opts.store)
    if not do_store:
        return
    lab = state.segmentation.labels
    lab_store = lab.copy()
    lab_store.attrs = {k: v for k, v in lab.attrs.items() if isinstance(v, (str, int, float, bool, list, dict))}
    label_image = f"{state.structure}/labels/{opts.label_name}"
    with scene.transaction(f"particle analysis {opts.table_name!r}"):
        scene.add_labels(state.structure, opts.label_name, lab_store, overwrite=opts.overwrite)
        scene.add_table(opts.table_name, state.table, label_image=label_image, overwrite=opts.overwrite)
        try:
            scene.add_history(opts.table_name, {"step": "analysis.particles", "structure": state.structure,
                                                "labels": state.labels, "n_particles": int(state.n_particles)})
        except Exception as exc:  # noqa: BLE001 - history is a nicety, the results are stored
            warnings.warn(f"could not record the history of {opts.table_name!r}: {exc}", stacklevel=4)
