"""Fiducials in SMLM localization tables, as a registration fiducial table.

The detection itself is :func:`~correlate.registration._persistent.find_persistent_emitters`
(the one persistent-emitter detector, shared with drift correction and the particle analysis).
Position = precision-weighted mean of one localization per frame; covariance = the standard
error of that mean from the fiducial's own scatter. On a table that is not drift-corrected the
scatter includes the drift (``attrs["estimated"]["scatter_includes_drift"]``), so the covariance
is then conservative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RegistrationError
from ._fiducials import fiducial_table
from ._persistent import find_persistent_emitters

__all__ = ["detect_smlm_fiducials"]

HINT = "--min-persistence or --fiducials-moving"


def detect_smlm_fiducials(
    locs: pd.DataFrame,
    *,
    min_persistence: float | None = None,
    radius_nm: float | None = None,
    min_photons: float | None = None,
    min_frames: int | None = None,
    min_span_frames: int | None = None,
    block_frames: int | None = None,
    max_step_z: float | None = None,
    min_frame_fraction: float | None = None,
) -> pd.DataFrame:
    """Find persistent bright emitters (fiducials) in a localization table.

    Parameters
    ----------
    locs
        Localizations (``x, y[, z]`` nm, ``frame``; ``photons`` and ``precision`` used if present).
    min_persistence
        Fraction of frames, within its own active span, a fiducial is on in; None: estimated
        from the table's persistence distribution.
    radius_nm
        Grid cell of the track linking (nm); None: from the localization precision.
    min_photons
        Minimum median photons of a fiducial; None: no photon criterion.
    min_frames, min_span_frames, block_frames, max_step_z
        As :func:`find_persistent_emitters` takes them (None: estimated).
    min_frame_fraction
        An older name of ``min_persistence``.

    Returns
    -------
    pandas.DataFrame
        One row per fiducial: ``x, y[, z]`` (nm, the table's frame), ``cov_*`` (nm^2, standard
        error of the mean), ``n_localizations``, ``n_frames_on``, ``first_frame``,
        ``last_frame``, ``persistence``, ``frame_fraction``, ``photons`` (median),
        ``scatter_nm`` (RMS distance from the mean), ``jitter_nm`` (RMS distance from the
        running track), ``track_extent_nm``, ``step_z``. ``attrs["estimated"]`` holds the
        parameters used, ``attrs["source"]`` where each came from.

    Raises
    ------
    RegistrationError
        ``stage="detection"`` when no fiducial is found, with the persistence distribution and
        the best tracks in ``diagnostics``.
    """
    if min_persistence is None:
        min_persistence = min_frame_fraction
    res = find_persistent_emitters(locs, min_persistence=min_persistence, radius_nm=radius_nm,
                                   min_photons=min_photons, min_frames=min_frames, min_span_frames=min_span_frames,
                                   block_frames=block_frames, max_step_z=max_step_z)
    est = dict(res.estimated)
    if len(res) == 0:
        q = res.diagnostics.get("persistence_quantiles_long_lived")
        seen = (f"{res.diagnostics.get('n_long_lived', 0)} long-lived tracks, "
                f"{res.diagnostics.get('n_single_emitter_long_lived', 0)} of one emitter"
                + (f"; their persistence q50 {q['q50']:.3g}, max {q['max']:.3g}" if q else ""))
        thr = est.get("min_persistence", float("nan"))
        need = (f"persistence >= {thr:.3g}" if np.isfinite(thr) else
                f"a population standing out ({est.get('threshold_rule', 'no candidates')})")
        raise RegistrationError(
            f"no SMLM fiducials among {len(locs)} localizations in {res.n_frames} frames: {seen}; "
            f"needed {need} over >= {est.get('min_frames')} frames and a span of "
            f">= {est.get('min_span_frames')} frames",
            field="frame", stage="detection", hint=HINT,
            diagnostics={**res.diagnostics, "estimated": est, "source": dict(res.source)},
        )
    st = res.stats
    df = fiducial_table(res.centers, res.cov, **{c: st[c].to_numpy() for c in st.columns})
    df.attrs.update({
        "detector": "smlm-persistent",
        "n_frames": res.n_frames,
        "radius_nm": res.radius_nm,
        "estimated": est,
        "source": dict(res.source),
        "diagnostics": res.diagnostics,
        "covariance": ("standard error of the mean from the fiducial's own scatter"
                       + ("; the table is not drift-corrected, so the scatter includes drift"
                          if est.get("scatter_includes_drift") else "")),
    })
    return df.sort_values(["y", "x"]).reset_index(drop=True)
