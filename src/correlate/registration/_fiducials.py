"""Fiducial tables: positions (nm) with a covariance per fiducial, as a DataFrame.

Columns: ``x, y[, z]`` (nm) and the upper triangle of the covariance ``cov_xx, cov_xy, cov_yy``
(``cov_xz, cov_yz, cov_zz`` in 3-D, nm^2), plus detector-specific quality columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RegistrationError

__all__ = ["fiducial_arrays", "fiducial_table"]


def fiducial_table(pos: np.ndarray, cov: np.ndarray, **extra) -> pd.DataFrame:
    """Build a fiducial table from (N, D) positions and (N, D, D) covariances (nm, nm^2)."""
    pos = np.asarray(pos, float)
    d = pos.shape[1] if pos.ndim == 2 else 2
    pos = pos.reshape(-1, d)
    axes = "xyz"[:d]
    cols = {a: pos[:, i] for i, a in enumerate(axes)}
    for i, a in enumerate(axes):
        for j, b in enumerate(axes):
            if j >= i:
                cols[f"cov_{a}{b}"] = np.asarray(cov, float)[:, i, j] if len(pos) else np.zeros(0)
    cols.update(extra)
    df = pd.DataFrame(cols)
    df.attrs["kind"] = "fiducials"
    return df


def fiducial_arrays(df: pd.DataFrame, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) positions and (N, D, D) covariances of a fiducial table (missing cov -> 0)."""
    if not {"x", "y"} <= set(df.columns):
        raise RegistrationError(f"fiducial table needs x, y columns (nm), found {list(df.columns)}", field="x")
    d = ndim or (3 if "z" in df.columns else 2)
    axes = "xyz"[:d]
    pos = np.column_stack([df[a].to_numpy(float) for a in axes]) if len(df) else np.zeros((0, d))
    cov = np.zeros((len(df), d, d))
    for i, a in enumerate(axes):
        for j, b in enumerate(axes):
            if j >= i:
                col = f"cov_{a}{b}"
                if col in df.columns:
                    cov[:, i, j] = cov[:, j, i] = df[col].to_numpy(float)
    return pos, cov
