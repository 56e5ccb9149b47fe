"""What the steps of the per-particle analysis share: the run of the whole analysis
(:class:`ParticleRun`), the run of one label (:class:`LabelRun`) and a named step
(:class:`ParticleStep`). Lengths nm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._particle_options import LabelOptions, ParticleOptions

__all__ = ["LabelRun", "ParticleRun", "ParticleStep"]


@dataclass(frozen=True)
class ParticleStep:
    """One named step of the per-particle analysis.

    Attributes
    ----------
    name
        Its name in the pipeline (unique).
    run
        ``run(state)`` for a step over the whole analysis, ``run(state, label_run)`` for a
        per-label step; it reads and extends ``state`` (:class:`ParticleRun`) in place.
    per_label
        Consecutive per-label steps run label by label: all of them for the first label, then for
        the next (so each label's columns stay together in the table).
    """

    name: str
    run: Callable[..., None]
    per_label: bool = False


@dataclass
class LabelRun:
    """One label (colour) in the analysis; its fields are filled by the per-label steps.

    Attributes
    ----------
    name, options, locs
        The label's element name, its :class:`LabelOptions` and its localizations.
    info
        The label's summary (``summary["labels"][name]``).
    transform
        From the label's own frame to the structure's frame.
    xy, xy_s
        (N, 2) positions (nm) in the label's frame and mapped into the structure's.
    fiducial
        (N,) on a persistent (fiducial-like) track: never assigned.
    tre_fun, tre_loc
        Predicted RMS TRE (nm) as a function of points of the label's frame (None: no term), and
        its value at the localizations.
    particle, particle_id, ambiguous, events
        (N,) row of the assigned particle in the table (-1 none), its particle_id (-1 none),
        within the shell of two particles, blink event index.
    n_localizations, n_ambiguous, n_events, radial_mean_nm
        Per particle row.
    events_per_molecule, calibration
        The blink calibration used.
    """

    name: str
    options: LabelOptions
    locs: pd.DataFrame
    info: dict = field(default_factory=dict)
    transform: Any = None
    xy: np.ndarray | None = None
    xy_s: np.ndarray | None = None
    fiducial: np.ndarray | None = None
    tre_fun: Callable | None = None
    tre_loc: np.ndarray | None = None
    precision: np.ndarray | None = None
    particle: np.ndarray | None = None
    particle_id: np.ndarray | None = None
    ambiguous: np.ndarray | None = None
    events: np.ndarray | None = None
    n_localizations: np.ndarray | None = None
    n_ambiguous: np.ndarray | None = None
    n_events: np.ndarray | None = None
    radial_mean_nm: np.ndarray | None = None
    events_per_molecule: float = float("nan")
    calibration: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of localizations."""
        return len(self.locs)

    @property
    def assigned(self) -> np.ndarray:
        """(N,) assigned to a particle (not ambiguous)."""
        return self.particle >= 0


@dataclass
class ParticleRun:
    """The state of one per-particle analysis, passed from step to step.

    Attributes
    ----------
    scene, structure, labels, options
        The inputs.
    image, modality
        The structure image and its modality.
    segmentation, table
        The :class:`~correlate.analysis.Segmentation` and the per-particle table (one row per
        particle; columns added by the steps).
    summary, notes
        Plain-dict summary and the notes gathered on the way.
    assignments
        Per label: DataFrame aligned with its localizations (see ``ParticleAnalysis``).
    label_runs
        Per label: its :class:`LabelRun`.
    field_nm
        (x_lo, x_hi, y_lo, y_hi) of the structure image (nm, pixel edges).
    tre_columns
        The per-label TRE columns (``tre_nm`` is their maximum).
    fiducial_sources
        How many fiducial positions came from where (``summary["fiducials"]``).
    """

    scene: Any
    structure: str
    labels: list[str]
    options: ParticleOptions
    image: Any = None
    modality: Any = None
    segmentation: Any = None
    table: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    assignments: dict[str, pd.DataFrame] = field(default_factory=dict)
    label_runs: dict[str, LabelRun] = field(default_factory=dict)
    field_nm: tuple[float, float, float, float] = (np.nan, np.nan, np.nan, np.nan)
    tre_columns: list[str] = field(default_factory=list)
    fiducial_sources: dict = field(default_factory=dict)

    @property
    def n_particles(self) -> int:
        """Number of particles (table rows)."""
        return 0 if self.table is None else len(self.table)

    @property
    def particle_id(self) -> np.ndarray:
        """(P,) particle ids of the table rows."""
        return self.table["particle_id"].to_numpy(np.int64)

    @property
    def centroids(self) -> np.ndarray:
        """(P, 2) particle centroids (nm, structure frame)."""
        return self.table[["x", "y"]].to_numpy(float)

    @property
    def radii(self) -> np.ndarray:
        """(P,) half the equivalent diameters (nm)."""
        return 0.5 * self.table["equivalent_diameter_nm"].to_numpy(float)

    def label_run(self, name: str) -> LabelRun:
        """The :class:`LabelRun` of label ``name`` (made on first use, with its localizations and
        its entry in ``summary["labels"]``)."""
        if name not in self.label_runs:
            locs = self.scene.get(name)
            info: dict[str, Any] = {"n_localizations": int(len(locs))}
            self.label_runs[name] = LabelRun(name=name, options=self.options.label(name), locs=locs, info=info)
            self.summary.setdefault("labels", {})[name] = info
        return self.label_runs[name]
