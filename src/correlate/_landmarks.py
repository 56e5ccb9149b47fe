"""Landmarks: paired fiducial positions in two coordinate systems with per-point covariances
(nm, nm^2); re-exported by :mod:`correlate.elements`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ElementError

__all__ = ["Landmarks"]


@dataclass
class Landmarks:
    """Pairs of fiducial positions in two coordinate systems, each with its own covariance.

    Attributes
    ----------
    source, target
        (N, D) positions in nm, columns x, y[, z], in the ``source_system`` and ``target_system``.
    source_cov, target_cov
        (N, D, D) covariance of each position (nm^2).
    ids
        (N,) identifiers.
    used
        (N,) True where the pair takes part in the fit (False: outlier or held out).
    residual
        (N,) residual distance (nm) after the fit; NaN before.
    """

    source: np.ndarray
    target: np.ndarray
    source_cov: np.ndarray | None = None
    target_cov: np.ndarray | None = None
    ids: np.ndarray | None = None
    used: np.ndarray | None = None
    residual: np.ndarray | None = None
    source_system: str = "source"
    target_system: str = "target"
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = np.atleast_2d(np.asarray(self.source, dtype=float))
        self.target = np.atleast_2d(np.asarray(self.target, dtype=float))
        n, d = self.source.shape
        if self.target.shape != (n, d):
            raise ElementError(
                f"source {self.source.shape} and target {self.target.shape} landmarks differ in shape",
                field="landmarks",
            )
        if d not in (2, 3):
            raise ElementError(f"landmarks must be 2-D or 3-D, got {d} columns", field="landmarks")
        for nm, arr in (("source", self.source), ("target", self.target)):
            if not np.all(np.isfinite(arr)):
                raise ElementError(f"{nm} positions contain non-finite values", field="landmarks")
        for nm in ("source_cov", "target_cov"):
            cov = getattr(self, nm)
            if cov is None:
                cov = np.zeros((n, d, d))
            cov = np.asarray(cov, dtype=float)
            if cov.ndim == 1 and cov.shape == (n,):  # isotropic variance per point
                cov = cov[:, None, None] * np.eye(d)[None]
            if cov.shape != (n, d, d):
                raise ElementError(f"{nm} must have shape ({n}, {d}, {d}), got {cov.shape}", field="landmarks")
            setattr(self, nm, cov)
        self.ids = np.arange(n) if self.ids is None else np.asarray(self.ids)
        self.used = np.ones(n, bool) if self.used is None else np.asarray(self.used, bool)
        self.residual = (
            np.full(n, np.nan) if self.residual is None else np.asarray(self.residual, float)
        )

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.source.shape[1]

    def __len__(self) -> int:
        return self.source.shape[0]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per pair: id, source/target x, y[, z], covariances (nm^2), used, residual (nm)."""
        axes = "xyz"[: self.ndim]
        cols: dict[str, Any] = {"id": self.ids}
        for side, pos, cov in (("source", self.source, self.source_cov), ("target", self.target, self.target_cov)):
            for i, a in enumerate(axes):
                cols[f"{side}_{a}"] = pos[:, i]
            for i, a in enumerate(axes):
                for j, b in enumerate(axes):
                    if j >= i:
                        cols[f"{side}_cov_{a}{b}"] = cov[:, i, j]
        cols["used"] = self.used
        cols["residual_nm"] = self.residual
        df = pd.DataFrame(cols)
        df.attrs = {
            "kind": "landmarks",
            "source_system": self.source_system,
            "target_system": self.target_system,
        } | dict(self.attrs)
        return df

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame) -> "Landmarks":
        """Inverse of :meth:`to_dataframe`."""
        d = 3 if "source_z" in df.columns else 2
        axes = "xyz"[:d]
        out = {}
        for side in ("source", "target"):
            pos = np.column_stack([df[f"{side}_{a}"].to_numpy(float) for a in axes])
            cov = np.zeros((len(df), d, d))
            for i, a in enumerate(axes):
                for j, b in enumerate(axes):
                    if j >= i:
                        col = f"{side}_cov_{a}{b}"
                        v = df[col].to_numpy(float) if col in df.columns else 0.0
                        cov[:, i, j] = v
                        cov[:, j, i] = v
            out[side] = pos
            out[f"{side}_cov"] = cov
        attrs = dict(df.attrs)
        return cls(
            ids=df["id"].to_numpy() if "id" in df.columns else None,
            used=df["used"].to_numpy(bool) if "used" in df.columns else None,
            residual=df["residual_nm"].to_numpy(float) if "residual_nm" in df.columns else None,
            source_system=attrs.pop("source_system", "source"),
            target_system=attrs.pop("target_system", "target"),
            attrs={k: v for k, v in attrs.items() if k != "kind"},
            **out,
        )
