"""Options of the per-particle analysis, one small frozen object per step.

:class:`ParticleOptions` gathers them; per-label options (:class:`LabelOptions`) are keyed by the
label's name, so two colours can have their own linker, calibration and counting. Lengths nm.

>>> from correlate.analysis import LabelOptions, ParticleOptions
>>> opts = ParticleOptions(labels={"antibody": LabelOptions(linker_nm=12.0)})   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._aggregate_steps import AggregateOptions

__all__ = [
    "KEYWORD_DEFAULTS",
    "AssignOptions",
    "ColocalizeOptions",
    "CountOptions",
    "LabelOptions",
    "ParticleOptions",
    "SegmentOptions",
    "StoreOptions",
]


@dataclass(frozen=True)
class SegmentOptions:
    """Segmentation of the structure image and the fiducials left out of its particles.

    Attributes
    ----------
    params
        Keyword arguments for :func:`~correlate.analysis.segment_particles` (e.g.
        ``{"psf_sigma_nm": 2.4, "min_diameter_nm": 20.0}``; lengths nm); empty: every parameter
        as that function estimates or defaults it.
    fiducials
        Fiducial positions (K, 2) nm, or a table with x, y, in the structure's own frame, whose
        objects are not particles.
    fiducials_from_landmarks
        Also leave out the objects at the landmarks of every stored registration of the structure.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    fiducials: Any = None
    fiducials_from_landmarks: bool = True


@dataclass(frozen=True)
class LabelOptions:
    """Options of one label (one colour of localizations).

    Attributes
    ----------
    linker_nm
        Distance of the label outside the particle edge (nm).
    tre_nm
        ``"auto"`` (predicted TRE from the registrations that place the label; NaN, unknown, when
        none links it to the structure), a number (nm, RMS), or None (no registration term).
    events_per_molecule
        A number; the name of a sparse calibration localization element in the scene; or
        ``"auto"`` (estimated from the data, approximate).
    detection_efficiency
        Fraction of molecules that blink at all (1 counts detected molecules).
    count_method
        ``"sites"`` (events grouped into emitter sites) or ``"events"``.
    tau_d1_frames
        Single-site mean dark time (frames) for qPAINT; None: from the blink calibration.
    precision_nm
        Localization precision (nm, per axis) used in place of the table's; None: the
        ``precision`` column (or ``precision_x``, ``precision_y``), else estimated by NeNA.
    """

    linker_nm: float = 10.0
    tre_nm: float | str | None = "auto"
    events_per_molecule: float | str = "auto"
    detection_efficiency: float = 1.0
    count_method: str = "sites"
    tau_d1_frames: float | None = None
    precision_nm: float | None = None


@dataclass(frozen=True)
class AssignOptions:
    """Assignment of localizations to particles and their blink grouping.

    Attributes
    ----------
    n_sigma
        Multiple of ``sqrt(tre^2 + precision^2)`` added to the assignment shell.
    exclude_fiducial_tracks
        Never assign localizations of persistent (fiducial-like) spots.
    blink_radius_nm
        Blink grouping radius (nm); None: per pair of localizations, 2 x the root sum square of
        their precisions.
    max_dark_frames
        Frames an on-event may miss and still be one event.
    """

    n_sigma: float = 2.0
    exclude_fiducial_tracks: bool = True
    blink_radius_nm: float | None = None
    max_dark_frames: int = 1


@dataclass(frozen=True)
class CountOptions:
    """Molecule counting beyond the per-label options.

    Attributes
    ----------
    qpaint
        Add ``n_qpaint_L`` from dark times (meaningful for DNA-PAINT-like data only).
    """

    qpaint: bool = False


@dataclass(frozen=True)
class ColocalizeOptions:
    """Colocalization between labels.

    Attributes
    ----------
    cbc_radius_nm
        CBC radius (nm); None: the median particle diameter, at least 50 nm.
    cbc_steps
        Number of CBC radius steps.
    """

    cbc_radius_nm: float | None = None
    cbc_steps: int = 10


@dataclass(frozen=True)
class StoreOptions:
    """Where the results go in the scene.

    Attributes
    ----------
    store
        Write the label image and the table into the scene; None: when the scene is writable.
    table_name, label_name
        Names of the table and of the label image (``<structure>/labels/<label_name>``).
    overwrite
        Replace a table or label image of the same name.
    """

    store: bool | None = None
    table_name: str = "particles"
    label_name: str = "particles"
    overwrite: bool = True


@dataclass(frozen=True)
class ParticleOptions:
    """All options of :func:`~correlate.analysis.analyze_particles`, one object per step.

    Attributes
    ----------
    segment, assign, count, colocalize, store
        The options of those steps.
    labels
        ``{label name: LabelOptions}``; a label not in it takes ``default_label``.
    default_label
        Options of every label not named in ``labels``.
    transforms
        Optional ``{label: Transform}`` from the label's own frame to the structure's frame.
    assume_aligned
        Join labels that no registration placed with the structure.
    """

    segment: SegmentOptions = field(default_factory=SegmentOptions)
    assign: AssignOptions = field(default_factory=AssignOptions)
    count: CountOptions = field(default_factory=CountOptions)
    colocalize: ColocalizeOptions = field(default_factory=ColocalizeOptions)
    store: StoreOptions = field(default_factory=StoreOptions)
    aggregate: AggregateOptions = field(default_factory=AggregateOptions)
    labels: Mapping[str, LabelOptions] = field(default_factory=dict)
    default_label: LabelOptions = field(default_factory=LabelOptions)
    transforms: Mapping[str, Any] | None = None
    assume_aligned: bool = False

    def label(self, name: str) -> LabelOptions:
        """The options of label ``name``."""
        return self.labels.get(name, self.default_label)

    def replace(self, **changes: Any) -> ParticleOptions:
        """A copy with the given fields replaced."""
        return replace(self, **changes)

    @classmethod
    def from_keywords(cls, labels: list[str], **keywords: Any) -> ParticleOptions:
        """The options of :func:`~correlate.analysis.analyze_particles`' keyword arguments (e.g.
        ``linker_nm={"antibody": 12.0}``), resolved for ``labels``."""
        return options_from_keywords(labels, **keywords)


def _per_label(value, label: str, default):
    if isinstance(value, Mapping):
        return value.get(label, default)
    return default if value is None else value


KEYWORD_DEFAULTS: dict[str, Any] = {
    "segmentation": None, "transforms": None, "linker_nm": 10.0, "n_sigma": 2.0, "tre_nm": "auto",
    "blink_radius_nm": None, "max_dark_frames": 1, "events_per_molecule": "auto", "detection_efficiency": 1.0,
    "count_method": "sites", "exclude_fiducial_tracks": True, "qpaint": False, "tau_d1_frames": None,
    "cbc_radius_nm": None, "cbc_steps": 10, "fiducials": None, "fiducials_from_landmarks": True, "store": None,
    "table_name": "particles", "label_name": "particles", "overwrite": True, "assume_aligned": False,
    "aggregate": (), "event_rate": False, "precision_nm": None,
}
"""The keyword options of :func:`~correlate.analysis.analyze_particles` and their defaults."""


def options_from_keywords(labels: list[str], **keywords: Any) -> ParticleOptions:
    """The :class:`ParticleOptions` of :func:`~correlate.analysis.analyze_particles`' keyword
    arguments (one value, or ``{label: value}`` for the per-label ones, see
    :data:`KEYWORD_DEFAULTS`), resolved per label."""
    unknown = sorted(set(keywords) - set(KEYWORD_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown analysis options {unknown}; known: {sorted(KEYWORD_DEFAULTS)}")
    k = {**KEYWORD_DEFAULTS, **keywords}
    linker_nm, tre_nm, events_per_molecule = k["linker_nm"], k["tre_nm"], k["events_per_molecule"]
    detection_efficiency, count_method, tau_d1_frames = k["detection_efficiency"], k["count_method"], k["tau_d1_frames"]

    def one(L: str) -> LabelOptions:
        return LabelOptions(
            linker_nm=_per_label(linker_nm, L, 10.0),
            tre_nm=_per_label(tre_nm, L, "auto") if isinstance(tre_nm, Mapping) else tre_nm,
            events_per_molecule=_per_label(events_per_molecule, L, "auto"),
            detection_efficiency=_per_label(detection_efficiency, L, 1.0),
            count_method=_per_label(count_method, L, "sites"),
            tau_d1_frames=_per_label(tau_d1_frames, L, None),
            precision_nm=_per_label(k["precision_nm"], L, None),
        )

    return ParticleOptions(
        segment=SegmentOptions(params=dict(k["segmentation"] or {}), fiducials=k["fiducials"],
                               fiducials_from_landmarks=k["fiducials_from_landmarks"]),
        assign=AssignOptions(n_sigma=k["n_sigma"], exclude_fiducial_tracks=k["exclude_fiducial_tracks"],
                             blink_radius_nm=k["blink_radius_nm"], max_dark_frames=k["max_dark_frames"]),
        count=CountOptions(qpaint=k["qpaint"]),
        colocalize=ColocalizeOptions(cbc_radius_nm=k["cbc_radius_nm"], cbc_steps=k["cbc_steps"]),
        aggregate=AggregateOptions(specs=tuple(k["aggregate"] or ()), event_rate=bool(k["event_rate"])),
        store=StoreOptions(store=k["store"], table_name=k["table_name"], label_name=k["label_name"],
                           overwrite=k["overwrite"]),
        labels={L: one(L) for L in labels},
        transforms=k["transforms"],
        assume_aligned=k["assume_aligned"],
    )
