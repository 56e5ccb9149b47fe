"""Colour (channel) alignment: map one SMLM colour onto another from beads seen in both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import RegistrationError

__all__ = ["ColourAlignment", "align_colours"]


@dataclass
class ColourAlignment:
    """A fitted map from the moving colour's coordinates to the reference colour's (nm).

    Attributes
    ----------
    transform
        :class:`correlate.transforms.Transform` moving -> reference.
    model
        The registration model chosen (``"translation"`` ... ``"affine"``, ``"tps"``).
    moving_beads, reference_beads
        (K, 2) paired bead positions (nm).
    residuals
        (K,) distance (nm) after mapping, per bead pair.
    loo_error_nm
        Leave-one-out RMS error (nm): each bead predicted by a fit without it.
    info
        Fitter used, models compared, pairing details.
    registration
        The :class:`correlate.registration.Registration` behind the fit (its error model gives
        the alignment's predicted error).
    """

    transform: Any
    model: str
    moving_beads: np.ndarray
    reference_beads: np.ndarray
    residuals: np.ndarray
    loo_error_nm: float
    info: dict = field(default_factory=dict)
    registration: Any = None

    def summary(self) -> dict:
        return {
            "model": self.model,
            "n_beads": len(self.residuals),
            "fre_rms_nm": float(np.sqrt(np.mean(self.residuals**2))),
            "loo_rms_nm": float(self.loo_error_nm),
        } | {k: v for k, v in self.info.items() if np.ndim(v) == 0}


def align_colours(
    moving: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    model: str = "auto",
    min_fraction: float | None = None,
) -> tuple[pd.DataFrame, ColourAlignment]:
    """Map the ``moving`` colour's localizations onto the ``reference`` colour's coordinates.

    Beads (persistent emitters seen in both colours; correct drift first) are detected with
    their covariances, paired and fitted by :mod:`correlate.registration` (weighted fits with the
    chi-square choice of the simplest adequate model, including the smoothing thin-plate spline);
    the map is applied to every localization of ``moving``. Two-colour colocalization is then
    free of the chromatic offset.

    Parameters
    ----------
    model
        ``"auto"`` or a registration model name.
    min_fraction
        A bead must be on in at least this fraction of the frames of its active span; None:
        estimated by the fiducial detector.

    Returns
    -------
    (pandas.DataFrame, ColourAlignment)
        The aligned copy of ``moving`` (columns ``x_raw, y_raw`` keep the input coordinates) and
        the fit.

    Raises
    ------
    RegistrationError
        No beads in one colour, or fewer pairs than the model needs.
    """
    fit = _align_with_registration(moving, reference, model=model, min_fraction=min_fraction)
    out = moving.copy()
    out["x_raw"] = moving["x"].to_numpy(float)
    out["y_raw"] = moving["y"].to_numpy(float)
    mapped = fit.transform.apply(moving[["x", "y"]].to_numpy(float))
    out["x"] = mapped[:, 0]
    out["y"] = mapped[:, 1]
    out.attrs = dict(moving.attrs)
    notes = list(out.attrs.get("notes", []))
    notes.append(f"colour-aligned onto reference ({fit.model}, {len(fit.residuals)} beads)")
    out.attrs["notes"] = notes
    return out, fit


def _align_with_registration(moving, reference, *, model, min_fraction) -> ColourAlignment:
    """Bead detection, pairing and fit by :mod:`correlate.registration`."""
    from ..registration import detect_fiducials, register_points

    found = {}
    for which, df in (("moving", moving), ("reference", reference)):
        try:
            found[which] = detect_fiducials(df, min_persistence=min_fraction)
        except RegistrationError as exc:
            if exc.stage != "detection":
                raise
            raise RegistrationError(
                f"colour alignment needs beads in both colours; none found in the {which} colour ({exc})",
                field="beads", stage="detection", hint="min_fraction", diagnostics=exc.diagnostics,
            ) from exc
    fm, fr = found["moving"], found["reference"]
    if len(fm) == 0 or len(fr) == 0:
        raise RegistrationError(
            f"colour alignment needs beads in both colours; found {len(fm)} in the moving and {len(fr)} "
            f"in the reference colour", field="beads")
    reg = register_points(fm, fr, model=model, scale_range=(0.95, 1.05), moving_name="moving", fixed_name="reference")
    lm = reg.landmarks
    used = np.asarray(lm.used, bool)
    return ColourAlignment(
        transform=reg.transform,
        model=reg.model,
        moving_beads=lm.source[used][:, :2],
        reference_beads=lm.target[used][:, :2],
        residuals=np.asarray(lm.residual, float)[used],
        loo_error_nm=float(reg.loo_rms),
        info={"fitter": "correlate.registration", "reason": reg.reason, "n_beads_moving": len(fm),
              "n_beads_reference": len(fr), "outliers": [str(o) for o in reg.outliers]},
        registration=reg,
    )
