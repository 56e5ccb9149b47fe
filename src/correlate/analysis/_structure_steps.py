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
    seg_kw, fid_src = structure_exclusions(state.scene, state.structure, opts.fiducials,
                                           from_landmarks=opts.fiducials_from_landmarks, segmentation=opts.params)
    seg = segment_particles(img.compute() if hasattr(img.data, "compute") else img, **seg_kw)
    state.image, state.modality, state.segmentation = img, modality, seg
    state.fiducial_sources = fid_src
    state.notes.extend(exclusion_notes(state.structure, fid_src, seg))


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
