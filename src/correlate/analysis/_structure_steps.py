"""The structure steps of the per-particle analysis: segment the structure image (fiducials left
out) and measure its particles. Lengths nm."""

from __future__ import annotations

import warnings
from typing import Any

from ._particle_state import ParticleRun

__all__ = ["measure_step", "segment_step"]


def segment_step(state: ParticleRun) -> None:
    """Segment the structure image (:func:`~correlate.analysis.segment_particles` with
    ``options.segment.params``), leaving out the objects at known fiducial positions; sets
    ``state.image``, ``state.modality``, ``state.segmentation`` and the exclusion notes."""
    from ._fiducial_exclusion import exclusion_notes, structure_exclusions
    from ._segment import segment_particles

    opts = state.options.segment
    img = state.scene.get(state.structure)
    modality = img.attrs.get("modality")
    if modality not in ("em", "afm"):
        warnings.warn(f"structure {state.structure!r} has modality {modality!r}; segmenting it as EM", stacklevel=4)
    params = dict(opts.params)
    tiling = {k: params.pop(k, None) for k in ("memory_budget", "block_px", "tiled")}
    seg_kw, fid_src = structure_exclusions(state.scene, state.structure, opts.fiducials,
                                           from_landmarks=opts.fiducials_from_landmarks, segmentation=params)
    plan = _whole_or_tiled(img, modality, tiling)
    if plan["tiled"]:
        from ._segment_tiled import segment_em_tiled

        seg = segment_em_tiled(img, block_px=tiling["block_px"], memory_budget=plan["memory_budget"], in_workdir=True,
                               **seg_kw)
        state.notes.append(
            f"{state.structure!r} ({img.sizes['y']} x {img.sizes['x']} px) segmented in {seg.info['n_blocks']} blocks "
            f"of {seg.info['block_px']} px with {seg.info['overlap_px']} px overlap (from {seg.info['overlap_source']}) "
            f"for a memory budget of {plan['memory_budget'] / 2**20:.0f} MiB ({plan['source']})")
    else:
        seg = segment_particles(img.compute() if hasattr(img.data, "compute") else img, **seg_kw)
    seg.info["segmentation_plan"] = plan
    state.image, state.modality, state.segmentation = img, modality, seg
    state.fiducial_sources = fid_src
    state.notes.extend(exclusion_notes(state.structure, fid_src, seg))


def _whole_or_tiled(img, modality, tiling: dict) -> dict:
    """Whether the structure is segmented whole or in blocks: in blocks when asked
    (``tiled=True``) or when the whole-image segmentation would need more than the memory
    budget (``memory_budget``, default a quarter of the available memory, at most 2 GiB);
    EM only."""
    from ..errors import CorrelateError
    from ._segment_plan import BYTES_PER_PIXEL, default_budget, parse_memory

    budget = parse_memory(tiling.get("memory_budget"))
    source = "given" if budget is not None else "default: a quarter of the available memory, at most 2 GiB"
    budget = default_budget() if budget is None else budget
    need = int(img.sizes["y"]) * int(img.sizes["x"]) * BYTES_PER_PIXEL
    tiled = tiling.get("tiled")
    tiled = bool(tiled) if tiled is not None else (need > budget or tiling.get("block_px") is not None)
    if tiled and modality == "afm":
        if tiling.get("tiled"):
            raise CorrelateError("AFM height maps are segmented whole; tiled segmentation is for EM", field="tiled")
        tiled = False
    return {"tiled": tiled, "memory_budget": int(budget), "source": source, "whole_image_bytes": need}


def measure_step(state: ParticleRun) -> None:
    """Measure the segmented particles (the first columns of the table) and start the summary:
    particles, edge particles, fiducials excluded, size distribution."""
    from ..elements import origin as _origin
    from ..elements import pixel_size as _pixel_size
    from ._morphology import size_summary

    seg, img = state.segmentation, state.image
    morph = seg.measure()
    n_part = len(morph)
    if n_part == 0:
        state.notes.append(
            f"no particles found in {state.structure!r} (noise {seg.info.get('noise', float('nan')):.3g}, "
            f"threshold {seg.info.get('detection_threshold', seg.info.get('threshold_nm', float('nan'))):.3g})"
        )
    table = morph.copy()
    px = _pixel_size(img)
    org = _origin(img)
    state.field_nm = (org["x"] - 0.5 * px["x"], org["x"] + (img.sizes["x"] - 0.5) * px["x"],
                      org["y"] - 0.5 * px["y"], org["y"] + (img.sizes["y"] - 0.5) * px["y"])
    fid_src = state.fiducial_sources
    labels = state.summary.get("labels", {})
    summary: dict[str, Any] = {
        "structure": state.structure,
        "modality": state.modality,
        "n_particles": int(n_part),
        "n_edge": int(table["edge"].sum()) if n_part else 0,
        "n_fiducials_excluded": len(seg.fiducials),
        "fiducials": {**fid_src, "n_excluded_at_positions": int(seg.info.get("n_fiducials_at_positions", 0)),
                      "n_positions_without_object": int(seg.info.get("n_exclude_at_unmatched", 0))},
        "height_fit": morph.attrs.get("height_fit"),
        "size": size_summary(table.loc[~table["edge"], "equivalent_diameter_nm"]) if n_part else size_summary([]),
        "labels": labels,
    }
    state.summary.clear()
    state.summary.update(summary)
    state.table = table
