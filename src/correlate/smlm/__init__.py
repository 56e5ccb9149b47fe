"""SMLM processing before correlation: drift, blink merging, filtering, precision, resolution,
colour alignment and the record of every step.

Functions work on Localizations tables (pandas DataFrames, nm, 0-based frames); the
``*_element`` functions run a step on a :class:`correlate.scene.Scene` element, write the result
as a new element (the input stays) and record the step in the element's history.

Drift
    :func:`estimate_drift` (``method="auto" | "fiducials" | "rcc"``), :func:`drift_from_fiducials`,
    :func:`drift_rcc`, :func:`apply_drift`, :func:`correct_drift`, :func:`residual_drift`,
    :func:`plot_drift`, :class:`Drift`; fiducials: :func:`find_fiducials`, :func:`fiducial_mask`.
Blinks
    :func:`merge_blinks`, :func:`link_events`.
Filtering
    :func:`filter_localizations`, :func:`check_expression`; :func:`filter_stored` (a stored element, bounded memory).
Quality
    :func:`nena` (localization precision), :func:`frc` (resolution), :func:`summary`.
Colours
    :func:`align_colours` (beads detected, paired and fitted by :mod:`correlate.registration`).
Provenance
    :func:`make_step`, :func:`record_step`, :func:`processing_history`.
"""

from __future__ import annotations

from ._colour import ColourAlignment, align_colours
from ._drift import (
    apply_drift,
    correct_drift,
    drift_from_fiducials,
    estimate_drift,
    plot_drift,
    residual_drift,
)
from ._drift_trace import Drift
from ._fiducials import Fiducials, fiducial_mask, find_fiducials
from ._filter import check_expression, filter_localizations, parse_frames, parse_roi
from ._filter_stream import filter_stored
from ._frc import FrcResult, frc, frc_curve
from ._history import make_step, processing_history, record_step
from ._merge import link_events, merge_blinks
from ._nena import NenaResult, adjacent_frame_distances, nena
from ._rcc import drift_rcc
from ._scene_ops import (
    align_colour_elements,
    drift_correct_element,
    filter_element,
    merge_element,
)
from ._summary import summary

__all__ = [
    "ColourAlignment",
    "Drift",
    "Fiducials",
    "FrcResult",
    "NenaResult",
    "adjacent_frame_distances",
    "align_colour_elements",
    "align_colours",
    "apply_drift",
    "check_expression",
    "correct_drift",
    "drift_correct_element",
    "drift_from_fiducials",
    "drift_rcc",
    "estimate_drift",
    "fiducial_mask",
    "filter_element",
    "filter_localizations",
    "filter_stored",
    "find_fiducials",
    "frc",
    "frc_curve",
    "link_events",
    "make_step",
    "merge_blinks",
    "merge_element",
    "nena",
    "parse_frames",
    "parse_roi",
    "plot_drift",
    "processing_history",
    "record_step",
    "residual_drift",
    "summary",
]
