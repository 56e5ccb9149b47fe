"""Fiducials in SMLM data: persistent emitters, found by the one detector of
:mod:`correlate.registration` (:func:`~correlate.registration._persistent.find_persistent_emitters`)
so that drift correction, NeNA, FRC, colour alignment, registration and the particle analysis
all see the same fiducials."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Fiducials", "fiducial_mask", "find_fiducials"]


@dataclass
class Fiducials:
    """Persistent emitters found in a localization table.

    Attributes
    ----------
    centers
        (K, D) mean position of each fiducial, nm (x, y[, z]).
    occupancy
        (K,) fraction of the acquisition's frames in which the fiducial was localized.
    labels
        (N,) fiducial index per row of the table, -1 elsewhere; at most one row per fiducial and
        frame (the brightest on its track).
    n_frames
        Number of frames of the acquisition (max - min + 1).
    search_radius
        Grid cell (nm) of the detector: a fiducial's localizations lie within about this of its
        (drifting) track.
    members
        (N,) bool: rows on a fiducial's track in space and time (None when built by hand).
    persistence
        (K,) fraction of frames on within the fiducial's own active span.
    estimated, source
        Parameters the detector used and where each came from ("estimated" | "user").
    """

    centers: np.ndarray
    occupancy: np.ndarray
    labels: np.ndarray
    n_frames: int
    search_radius: float
    members: np.ndarray | None = None
    persistence: np.ndarray | None = None
    estimated: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.centers)


def find_fiducials(
    df: pd.DataFrame,
    *,
    min_fraction: float | None = None,
    search_radius: float | None = None,
    **kwargs,
) -> Fiducials:
    """Find fiducials (persistent emitters) with the registration's detector.

    Parameters
    ----------
    df
        Localizations (x, y[, z] nm; frame; ``photons`` and ``precision`` used when present).
    min_fraction
        Smallest fraction of frames, within its own active span, a fiducial is on in
        (``min_persistence`` of the detector); None: estimated from the data.
    search_radius
        Grid cell (nm, ``radius_nm`` of the detector); None: from the localization precision.
    **kwargs
        Further parameters of :func:`~correlate.registration._persistent.find_persistent_emitters`
        (``min_photons``, ``min_frames``, ``min_span_frames``, ``block_frames``, ``max_step_z``).

    Returns
    -------
    Fiducials
        Possibly empty (``len(result) == 0``).
    """
    from ..registration._persistent import find_persistent_emitters

    if "min_persistence" in kwargs:
        min_fraction = kwargs.pop("min_persistence") if min_fraction is None else min_fraction
    if "radius_nm" in kwargs:
        search_radius = kwargs.pop("radius_nm") if search_radius is None else search_radius
    res = find_persistent_emitters(df, min_persistence=min_fraction, radius_nm=search_radius, **kwargs)
    st = res.stats
    return Fiducials(
        centers=res.centers,
        occupancy=st["frame_fraction"].to_numpy(float) if len(res) else np.zeros(0),
        labels=res.labels,
        n_frames=res.n_frames,
        search_radius=res.radius_nm,
        members=res.members | (res.labels >= 0),
        persistence=st["persistence"].to_numpy(float) if len(res) else np.zeros(0),
        estimated=dict(res.estimated),
        source=dict(res.source),
    )


def fiducial_mask(df: pd.DataFrame, fiducials: Fiducials | None = None, **kwargs) -> np.ndarray:
    """(N,) bool: localizations on a fiducial's track (found with ``**kwargs`` if not given).

    A :class:`Fiducials` without ``members`` (built by hand) masks the localizations within
    ``search_radius`` of its centres instead.
    """
    from scipy.spatial import cKDTree

    if fiducials is None:
        fiducials = find_fiducials(df, **kwargs)
    if len(fiducials) == 0:
        return np.zeros(len(df), bool)
    if fiducials.members is not None and len(fiducials.members) == len(df):
        return np.asarray(fiducials.members, bool).copy()
    tree = cKDTree(fiducials.centers[:, :2])
    d, _ = tree.query(df[["x", "y"]].to_numpy(float), k=1, distance_upper_bound=fiducials.search_radius)
    return np.isfinite(d)
