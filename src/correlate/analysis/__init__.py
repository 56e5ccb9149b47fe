"""Joint analysis per particle: segmentation, morphology, assignment of localizations, molecule
counts, colocalization and spatial statistics.

>>> from correlate.analysis import particles
>>> table = particles(scene, structure="em", labels=["antibody", "corona"])   # doctest: +SKIP

The per-particle analysis runs as named steps (:data:`PARTICLE_STEPS`, :func:`insert_step`),
each with its own options object gathered in :class:`ParticleOptions` (per label:
:class:`LabelOptions`). The work lives in private modules named after what they do; their public
names are gathered here. Lengths are nm throughout.
"""

from ._assign import assign_localizations, persistent_clusters
from ._clusters import ClusterOptions, ClusterResult, cluster_localizations, estimate_eps
from ._colocalization import cbc
from ._molecules import (
    calibrate_blinking,
    calibrate_isolated,
    count_molecules,
    group_blinks,
    qpaint,
)
from ._sites import count_sites, emitter_sites
from ._morphology import feret_diameters, measure_particles, size_summary
from ._particle_options import (
    AssignOptions,
    ColocalizeOptions,
    CountOptions,
    LabelOptions,
    ParticleOptions,
    SegmentOptions,
    StoreOptions,
)
from ._particle_state import LabelRun, ParticleRun, ParticleStep
from ._aggregate_steps import AggregateOptions
from ._fractions import ExchangeFit, exchange_dispersion, fit_exchange, label_fractions
from ._accessibility import AccessibilityFit, accessibility, fit_size_dependence
from ._carrier_state import CarrierState, carrier_state, intact_fraction
from ._carrier_clusters import cluster_structures, structures_from_scene
from ._proximity import ProximityOptions, ProximityResult, proximity
from ._particles import ParticleAnalysis, analyze_particles, particles, to_xarray
from ._pipeline import PARTICLE_STEPS, insert_step
from ._segment import Segmentation, segment_em, segment_particles
from ._segment_afm import level_afm, segment_afm
from ._segment_volume import VolumeSegmentation, segment_volume
from ._morphology3d import measure_volume
from ._assign3d import assign_localizations_3d, localization_cov, particles_3d, z_per_particle
from ._spatial import nearest_neighbor_distances, pair_correlation, ripley

__all__ = [
    "AccessibilityFit",
    "CarrierState",
    "accessibility",
    "carrier_state",
    "cluster_structures",
    "exchange_dispersion",
    "fit_size_dependence",
    "intact_fraction",
    "structures_from_scene",
    "ExchangeFit",
    "fit_exchange",
    "label_fractions",
    "AggregateOptions",
    "ProximityOptions",
    "ProximityResult",
    "proximity",
    "PARTICLE_STEPS",
    "AssignOptions",
    "ClusterOptions",
    "ClusterResult",
    "ColocalizeOptions",
    "CountOptions",
    "LabelOptions",
    "LabelRun",
    "ParticleAnalysis",
    "ParticleOptions",
    "ParticleRun",
    "ParticleStep",
    "SegmentOptions",
    "StoreOptions",
    "Segmentation",
    "analyze_particles",
    "assign_localizations",
    "calibrate_blinking",
    "calibrate_isolated",
    "cbc",
    "cluster_localizations",
    "count_molecules",
    "count_sites",
    "emitter_sites",
    "estimate_eps",
    "feret_diameters",
    "group_blinks",
    "insert_step",
    "level_afm",
    "measure_particles",
    "nearest_neighbor_distances",
    "pair_correlation",
    "particles",
    "persistent_clusters",
    "qpaint",
    "ripley",
    "segment_afm",
    "segment_em",
    "segment_particles",
    "size_summary",
    "to_xarray",
    "VolumeSegmentation",
    "segment_volume",
    "measure_volume",
    "assign_localizations_3d",
    "localization_cov",
    "particles_3d",
    "z_per_particle",
]

from ..render import composite, render, render_gaussian, render_histogram

__all__ += ["composite", "render", "render_gaussian", "render_histogram"]
