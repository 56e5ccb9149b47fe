"""The processing steps on elements of a Scene: read, process, write a new element, record it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CorrelateError, ElementError
from ._history import make_step, record_step

__all__ = ["align_colour_elements", "default_plot_path", "drift_correct_element", "filter_element", "merge_element"]


def _get_locs(scene, name: str):
    if name not in scene.names():
        raise ElementError(f"no element {name!r} in the store; elements are {scene.names()}", field=name)
    kind = scene.kind(name)
    if kind != "localizations":
        raise ElementError(f"element {name!r} is {kind}, not localizations", field=name)
    return scene.get(name)


def _write(scene, out: str, df, like: str, overwrite: bool) -> None:
    if out in scene.names() and not overwrite:
        raise CorrelateError(f"element {out!r} exists already; choose another --out or pass overwrite", field=out)
    try:
        t = scene.transform_to_world(like)
    except Exception:  # noqa: BLE001 - an element without a transform maps by identity
        t = None
    scene.add(out, df, transform=t, overwrite=overwrite)


def _store_path(scene) -> Path | None:
    for attr in ("path", "root", "store_path", "_path"):
        p = getattr(scene, attr, None)
        if isinstance(p, (str, Path)):
            return Path(p)
    return None


def default_plot_path(scene, name: str) -> Path | None:
    """``<store folder>/<store name>_<name>_drift.png`` beside the store (None if unknown)."""
    p = _store_path(scene)
    if p is None:
        return None
    stem = p.name
    for suf in (".zarr", ".ome"):
        stem = stem.removesuffix(suf)
    return p.parent / f"{stem}_{name}_drift.png"


def drift_correct_element(
    scene,
    name: str,
    *,
    method: str = "auto",
    out: str | None = None,
    plot: str | Path | None | bool = True,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict:
    """Drift-correct localization element ``name``; write ``out`` (default ``<name>_drift``).

    The raw element stays. The corrected table keeps ``drift_x, drift_y`` columns (what was
    subtracted, nm), gets the source element's transform to world, and a history record with
    the method, parameters and the residual drift estimate (``residual_drift_rms_nm``: the
    estimated error of the trace, i.e. the drift left in the corrected table). A PNG plot of the trace is written
    to ``plot`` (a path), beside the store (``True``), or not at all (``False``/None).

    Returns
    -------
    dict
        What was done: ``out``, ``method``, ``summary`` (numbers), ``plot`` (path or None).
    """
    from ._drift import correct_drift, plot_drift

    df = _get_locs(scene, name)
    out = out or f"{name}_drift"
    corrected, drift = correct_drift(df, method=method, **kwargs)
    _write(scene, out, corrected, name, overwrite)
    summ = drift.summary()
    params = {"method": method, "chosen_method": drift.method} | {k: v for k, v in kwargs.items()}
    record_step(scene, out, make_step("drift", params, source=name, results=summ), inherit_from=name)
    plot_path = None
    if plot:
        plot_path = default_plot_path(scene, name) if plot is True else Path(plot)
        if plot_path is not None:
            plot_drift(drift, plot_path, title=f"{name}: drift ({drift.method})")
    return {"out": out, "method": drift.method, "summary": summ, "plot": None if plot_path is None else str(plot_path),
            "drift": drift}


def merge_element(
    scene,
    name: str,
    *,
    radius: float | None = None,
    max_dark_frames: int = 1,
    out: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Blink-merge localization element ``name`` into ``out`` (default ``<name>_merged``)."""
    from ._merge import merge_blinks

    df = _get_locs(scene, name)
    out = out or f"{name}_merged"
    merged = merge_blinks(df, radius=radius, max_dark_frames=max_dark_frames)
    _write(scene, out, merged, name, overwrite)
    res = {"rows_in": len(df), "rows_out": len(merged), "radius_nm": merged.attrs.get("merge_radius_nm"),
           "mean_n_merged": float(merged["n_merged"].mean()) if len(merged) else 0.0}
    record_step(scene, out, make_step("merge", {"radius": radius, "max_dark_frames": max_dark_frames},
                                      source=name, results=res), inherit_from=name)
    return {"out": out, "summary": res}


def filter_element(
    scene,
    name: str,
    *,
    where: str | None = None,
    roi=None,
    frames=None,
    out: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Filter localization element ``name`` into ``out`` (default ``<name>_filtered``)."""
    from ._filter import filter_localizations

    if not where and roi is None and frames is None:
        raise CorrelateError("nothing to filter by: give a condition (--where), an ROI or a frame range", field="where")
    df = _get_locs(scene, name)
    out = out or f"{name}_filtered"
    kept = filter_localizations(df, where, roi=roi, frames=frames)
    if len(kept) == 0:
        raise CorrelateError(f"the filter keeps no localization of {name!r}; nothing written", field="where")
    _write(scene, out, kept, name, overwrite)
    res = {"rows_in": len(df), "rows_out": len(kept), "fraction_kept": len(kept) / max(len(df), 1)}
    params = {"where": where, "roi": None if roi is None else str(roi), "frames": None if frames is None else str(frames)}
    record_step(scene, out, make_step("filter", params, source=name, results=res), inherit_from=name)
    return {"out": out, "summary": res}


def align_colour_elements(
    scene,
    moving: str,
    reference: str,
    *,
    model: str = "auto",
    out: str | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict:
    """Align colour ``moving`` onto ``reference`` from shared beads; write ``out``
    (default ``<moving>_aligned``) in the reference's coordinates, with its transform to world."""
    from ._colour import align_colours

    mdf = _get_locs(scene, moving)
    rdf = _get_locs(scene, reference)
    out = out or f"{moving}_aligned"
    aligned, fit = align_colours(mdf, rdf, model=model, **kwargs)
    _write(scene, out, aligned, reference, overwrite)
    if fit.registration is not None:
        # The aligned table already sits in the reference's coordinates: the record carries the
        # alignment's error into every later TRE prediction (analysis, `correlate map`).
        from ..registration import registration_record

        # the bead pairs in the frames they were measured in: the moving colour's own and the reference's
        lm = fit.registration.landmarks
        lm.source_system, lm.target_system = moving, reference
        scene.add_landmarks(lm)
        scene.add_registration(registration_record(
            fit.registration, moving=out, fixed=reference,
            extra={"purpose": "colour_alignment", "source_element": moving, "applied_to_coordinates": True,
                   "landmarks": {"source_system": moving, "target_system": reference}},
        ))
    res = fit.summary()
    record_step(scene, out, make_step("colour_alignment", {"reference": reference, "model": model} | kwargs,
                                      source=moving, results=res), inherit_from=moving)
    return {"out": out, "summary": res, "alignment": fit}
