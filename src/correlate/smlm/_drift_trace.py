"""The drift trace type: per-frame drift (nm), its uncertainty and the raw estimates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Drift"]


@dataclass
class Drift:
    """A per-frame drift trace: the sample's apparent displacement at each frame.

    A localization seen at ``p`` in frame ``f`` belongs at ``p - drift.at(f)``. The trace has
    zero mean over the acquisition's frames (a constant offset is left to registration).

    Attributes
    ----------
    frames
        (F,) consecutive frames ``first .. last`` (0-based).
    values
        (F, D) drift in nm, columns x, y[, z].
    uncertainty
        (F,) estimated standard error of the trace (nm, per axis, averaged over axes).
    method
        ``"fiducials"`` or ``"rcc"``.
    points_frames, points_values, points_weights
        The raw estimates the trace was smoothed / interpolated from (per frame for fiducials,
        per time bin for RCC), for plots and checks.
    info
        Method details (fiducial count, bins, rejected pairs, smoothing parameter...).
    """

    frames: np.ndarray
    values: np.ndarray
    uncertainty: np.ndarray
    method: str
    points_frames: np.ndarray
    points_values: np.ndarray
    points_weights: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.values.shape[1]

    def at(self, frame) -> np.ndarray:
        """(N, D) drift (nm) at the given frames (held constant outside the estimated range)."""
        f = np.asarray(frame, np.int64)
        i = np.clip(f - self.frames[0], 0, len(self.frames) - 1)
        return self.values[i]

    def to_dataframe(self) -> pd.DataFrame:
        """Columns frame, dx, dy[, dz], uncertainty (nm)."""
        cols = {"frame": self.frames}
        for k, a in enumerate("xyz"[: self.ndim]):
            cols[f"d{a}"] = self.values[:, k]
        cols["uncertainty"] = self.uncertainty
        return pd.DataFrame(cols)

    def summary(self) -> dict:
        """A few numbers for the history and the CLI: range and estimated error (nm)."""
        span = np.ptp(self.values, axis=0)
        out = {
            "method": self.method,
            "frames": [int(self.frames[0]), int(self.frames[-1])],
            "range_nm": {a: float(span[k]) for k, a in enumerate("xyz"[: self.ndim])},
            "uncertainty_rms_nm": float(np.sqrt(np.mean(self.uncertainty**2))),
            # the drift left after correcting with this trace is its own error: per axis RMS x sqrt(D)
            "residual_drift_rms_nm": float(np.sqrt(np.mean(self.uncertainty**2) * self.ndim)),
        }
        out.update({k: v for k, v in self.info.items() if np.ndim(v) == 0})
        return out
