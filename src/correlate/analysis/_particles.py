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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import CorrelateError, ElementError
from ._particle_options import KEYWORD_DEFAULTS, ParticleOptions, options_from_keywords
from ._particle_state import ParticleRun, ParticleStep

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

    def _repr_html_(self) -> str:
        from .._repr import particles_html

        return particles_html(self.table, self.summary)

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
    aggregate: Sequence[str] = (),
    event_rate: bool = False,
    precision_nm: float | Mapping[str, float] | None = None,
    options: ParticleOptions | None = None,
    steps: Sequence[ParticleStep] | None = None,
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
        Blink grouping (default radius: per pair of localizations, 2 x the root sum square of
        their precisions).
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
    aggregate
        ``COLUMN:STAT`` specs: a localization column aggregated per particle and label
        (``mean``, ``median``, ``std``, ``wmean``, ``qNN``, ``frac>V``...; columns
        ``<stat>_<column>_<label>``, see :mod:`correlate.analysis._aggregate_steps`).
    event_rate
        Add ``event_rate_L`` (on-events per nm^2 of particle surface per frame) with its exact
        95 % Poisson interval.
    precision_nm
        Localization precision (nm, per axis) in place of the table's, one number or per label;
        default: the ``precision`` column, else estimated by NeNA (``summary["labels"][L]``
        says which and the value). With neither a column nor frames the label raises.
    options
        All the options above as one :class:`~correlate.analysis.ParticleOptions` (per-label ones
        as :class:`~correlate.analysis.LabelOptions` keyed by label); then leave the keyword
        options at their defaults (giving both raises :class:`~correlate.errors.CorrelateError`).
    steps
        The steps to run (default :data:`~correlate.analysis.PARTICLE_STEPS`; see
        :func:`~correlate.analysis.insert_step` to add one).

    Returns
    -------
    ParticleAnalysis
    """
    from ._pipeline import PARTICLE_STEPS, run_steps

    keywords = {k: v for k, v in locals().items() if k in KEYWORD_DEFAULTS}
    if isinstance(labels, str):
        labels = [s for s in labels.split(",") if s]
    labels = list(labels or [])
    if options is None:
        options = options_from_keywords(labels, **keywords)
    else:
        _check_no_keywords(options, keywords)
    _check_inputs(scene, structure, labels, options)
    state = ParticleRun(scene=scene, structure=structure, labels=labels, options=options)
    run_steps(state, PARTICLE_STEPS if steps is None else steps)
    return ParticleAnalysis(table=state.table, segmentation=state.segmentation, assignments=state.assignments,
                            summary=state.summary)


def _same(value, default) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):
        return False


def _check_no_keywords(options, keywords: dict) -> None:
    """Raise when keyword options are given beside ``options=`` (which one would win is not
    obvious)."""
    if not isinstance(options, ParticleOptions):
        raise CorrelateError(f"options must be a ParticleOptions, got {type(options).__name__}", field="options")
    given = sorted(k for k, v in keywords.items() if not _same(v, KEYWORD_DEFAULTS[k]))
    if given:
        raise CorrelateError(f"give the analysis options either as options= or as keywords, not both; "
                             f"keywords given: {given}", field="options")


def _check_inputs(scene, structure: str, labels: list[str], options: ParticleOptions) -> None:
    """The structure is an image and every label a localization element of the scene, each placed
    with the structure (or given a transform, or ``assume_aligned``)."""
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
    transforms = options.transforms
    for L in labels:
        if not (transforms and transforms.get(L) is not None):
            scene.require_joinable(L, structure, assume_aligned=options.assume_aligned,
                                   action="assign localizations of")


def particles(scene, structure: str = "em", labels: Sequence[str] | str | None = ("antibody", "corona"), **kwargs) -> pd.DataFrame:
    """Per-particle table of a Scene: :func:`analyze_particles` (same arguments) ``.table``.

    Returns
    -------
    pandas.DataFrame
        One row per particle; see :mod:`correlate.analysis._particles` for the columns.
    """
    return analyze_particles(scene, structure, labels, **kwargs).table
