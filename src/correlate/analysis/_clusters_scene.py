"""Particles from one localization element of a store: fiducial tracks left out, clustered, measured,
and stored as a per-particle table in the label's own frame, in one transaction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._clusters import ClusterOptions, ClusterResult, cluster_localizations

__all__ = ["cluster_label", "cluster_table_summary"]


def _frame_name(scene, label: str) -> str:
    try:
        cs = scene._entry(label).get("coordinate_system")
    except Exception:  # noqa: BLE001 - a scene-like object without a catalogue entry
        cs = None
    if isinstance(cs, dict) and cs.get("name"):
        return str(cs["name"])
    return f"world_{label}"


def cluster_label(scene, label: str, options: ClusterOptions | None = None, *, exclude_fiducial_tracks: bool = True,
                  fiducial_kwargs: dict[str, Any] | None = None, store: bool | None = None,
                  table_name: str | None = None, overwrite: bool = True, **kwargs: Any) -> ClusterResult:
    """Cluster the localizations of element ``label`` into particles (SMLM alone).

    Parameters
    ----------
    scene
        An open :class:`~correlate.scene.Scene`.
    label
        Name of a localization element.
    options, **kwargs
        :class:`ClusterOptions` (``eps_nm``, ``min_samples``, ``model``, ``label_offset_nm``,
        ``precision_nm``; nm) and keyword overrides of its fields.
    exclude_fiducial_tracks
        Leave out the localizations of persistent emitters (beads) found by the one
        persistent-emitter detector (``fiducial_kwargs`` go to it, e.g. ``min_persistence``).
    store
        Write the table into the store (default: when the scene is open for writing).
    table_name
        Name of the stored table (default ``clusters_<label>``).

    Returns
    -------
    ClusterResult
        ``table`` with ``particle_id, x, y`` (nm, the label's own frame),
        ``equivalent_diameter_nm``, ``n_localizations_<label>``, ``n_molecules_<label>`` and the
        shape columns; ``labels`` per localization of the element (-1: background or fiducial);
        ``parameters`` with what was estimated and from where, ``n_fiducial_track``.
    """
    if scene.kind(label) != "localizations":
        raise CorrelateError(f"{label!r} is a {scene.kind(label)}, not localizations; clustering needs an SMLM "
                             f"element (elements: {', '.join(scene.names('localizations')) or 'none'})",
                             path=label, field="labels")
    locs = scene.get(label)
    n = len(locs)
    fid = np.zeros(n, bool)
    if exclude_fiducial_tracks and n and "frame" in locs.columns:
        from ._assign import persistent_clusters

        fid = persistent_clusters(locs, **(fiducial_kwargs or {}))
    res = cluster_localizations(locs.loc[~fid].reset_index(drop=True), options, **kwargs)
    lab = np.full(n, -1, np.int64)
    lab[~fid] = res.labels
    frame = _frame_name(scene, label)
    t = res.table.rename(columns={"n_localizations": f"n_localizations_{label}",
                                  "n_molecules": f"n_molecules_{label}"})
    params = {**res.parameters, "label": label, "n_fiducial_track": int(fid.sum()),
              "exclude_fiducial_tracks": bool(exclude_fiducial_tracks), "coordinate_system": frame}
    from ..elements import make_table

    t.attrs = {"kind": "table", "structure": label, "labels": label, "source": "clusters",
               "clustering": params}
    t = make_table(t, coordinate_system=frame)
    name = table_name or f"clusters_{label}"
    params["table"] = name
    do_store = (getattr(scene, "mode", "r") == "r+") if store is None else bool(store)
    if do_store:
        with scene.transaction(f"clustering {label!r} into table {name!r}"):
            scene.add_table(name, t, overwrite=overwrite)
            scene.add_history(name, {"step": "analysis.clusters", "label": label, "n_particles": int(len(t)),
                                     "params": _jsonable(params)})
    return ClusterResult(lab, t, params)


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _jsonable(v)
        elif isinstance(v, (list, tuple)):
            out[k] = [x.item() if isinstance(x, (np.integer, np.floating)) else x for x in v]
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        else:
            out[k] = str(v)
    return out


def cluster_table_summary(res: ClusterResult, label: str) -> dict[str, Any]:
    """What the command line prints: parameters, their sources and the size distribution (nm)."""
    t: pd.DataFrame = res.table
    d = t["equivalent_diameter_nm"].to_numpy(float) if len(t) else np.zeros(0)
    m = t[f"n_molecules_{label}"].to_numpy(float) if len(t) else np.zeros(0)
    q = (lambda v, p: float(np.nanpercentile(v, p)) if v.size and np.isfinite(v).any() else float("nan"))
    return {"label": label, "n_particles": int(len(t)), **_jsonable(res.parameters),
            "diameter_nm": {"D10": q(d, 10), "D50": q(d, 50), "D90": q(d, 90)},
            "molecules_per_particle": {"median": q(m, 50), "q25": q(m, 25), "q75": q(m, 75)}}
