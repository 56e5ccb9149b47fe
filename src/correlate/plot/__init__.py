"""Figures: overlays of localizations on images, and plots of the per-particle results.

Every function returns a :class:`matplotlib.figure.Figure` (shown inline in notebooks) built without pyplot (no global
state, works headless); save it with :func:`save_figure` (PNG, PDF or SVG by suffix) or show it
in a notebook.

* :func:`plot_overlay` (from a Scene) / :func:`draw_overlay` (from plain inputs): base image,
  rendered localizations in colour, fiducials and residual vectors, particle outlines,
  predicted-TRE contours of the registration placing the localizations, other images (SIM,
  AFM) as semi-transparent layers, scale bar, caption with registration figures.
* :func:`plot_size_distribution`, :func:`plot_counts_vs_size`, :func:`radial_profiles` +
  :func:`plot_radial_profiles`, :func:`particle_gallery`, :func:`plot_colocalization`.
* :func:`plot_registration`: fiducial residual vectors and predicted TRE against distance of
  one registration record.
* :func:`plot_size_comparison` (SMLM cluster size against EM size per matched particle),
  :func:`plot_batch_summary` (per-sample distributions of a batch).
* :func:`plot_accessibility` (accessible fraction against size with the GLM fit),
  :func:`plot_carrier_state` (compactness against the shell model, intact/disassembled calls).
* :func:`make_report`: a self-contained HTML report of a scene (``correlate report``).
* :func:`add_scale_bar`, :func:`nice_length_nm`, :func:`format_length`.
"""

from __future__ import annotations

from ._overlay import Fiducials, draw_overlay, plot_overlay, registration_summary, save_figure
from ._particles import (
    count_columns,
    particle_gallery,
    plot_colocalization,
    plot_counts_vs_size,
    plot_radial_profiles,
    plot_size_distribution,
    radial_profiles,
    size_column,
)
from ._registration_plots import plot_registration
from ._report import figure_to_png_bytes, make_report
from ._scalebar import add_scale_bar, format_length, nice_length_nm
from ._batch import plot_batch_summary
from ._sizes import plot_size_comparison
from ._carriers import plot_accessibility, plot_carrier_state

__all__ = [
    "plot_overlay",
    "draw_overlay",
    "Fiducials",
    "registration_summary",
    "save_figure",
    "make_report",
    "plot_registration",
    "plot_size_comparison",
    "plot_accessibility",
    "plot_carrier_state",
    "plot_batch_summary",
    "figure_to_png_bytes",
    "plot_size_distribution",
    "plot_counts_vs_size",
    "radial_profiles",
    "plot_radial_profiles",
    "particle_gallery",
    "plot_colocalization",
    "size_column",
    "count_columns",
    "add_scale_bar",
    "nice_length_nm",
    "format_length",
]
