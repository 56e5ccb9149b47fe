"""Fiducial tables from CSV files: positions the user measured (or knows) instead of detection."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import FormatError
from ._fiducials import fiducial_table

__all__ = ["read_fiducials_csv", "as_fiducial_table"]

_COV = ("cov_xx", "cov_xy", "cov_yy", "cov_xz", "cov_yz", "cov_zz")


def read_fiducials_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a fiducial table from a CSV file.

    Columns: ``x, y[, z]`` (nm, in the element's own frame) and optionally the covariance
    ``cov_xx, cov_xy, cov_yy`` (``cov_xz, cov_yz, cov_zz`` in 3-D, nm^2) or an isotropic
    ``sigma_nm`` (standard deviation per axis, nm). Without either the covariances are zero and
    the fit estimates the noise from its residuals, as for manual landmark pairs.

    Returns
    -------
    pandas.DataFrame
        A fiducial table; ``attrs["source"]`` = ``{"fiducials": "user"}``, ``attrs["estimated"]``
        records the file and the count.

    Raises
    ------
    FormatError
        Missing file, unreadable CSV, missing x/y, non-numeric or non-finite values, negative
        variances or sigma.
    """
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise FormatError("fiducial file does not exist", path=path) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FormatError(f"cannot read the fiducial CSV ({type(exc).__name__}: {exc})", path=path) from exc
    out = as_fiducial_table(df, path=path)
    out.attrs["estimated"] = {"file": str(path), "n_selected": len(out)}
    return out


def as_fiducial_table(df: pd.DataFrame, *, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Check a user table of fiducials (``x, y[, z]`` nm, optional ``cov_*`` nm^2 or
    ``sigma_nm``) and return it as a fiducial table with covariances."""
    df = df.rename(columns={c: c.strip() for c in df.columns})
    missing = [c for c in ("x", "y") if c not in df.columns]
    if missing:
        raise FormatError(f"a fiducial table needs columns x, y (nm); found {list(df.columns)[:8]}",
                          path=path, field=missing[0])
    d = 3 if "z" in df.columns else 2
    axes = "xyz"[:d]
    cols = [*axes] + [c for c in _COV if c in df.columns and all(a in axes for a in c[4:])]
    if "sigma_nm" in df.columns:
        cols.append("sigma_nm")
    try:
        num = df[cols].apply(pd.to_numeric, errors="raise").to_numpy(float)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"columns {cols} must be numbers ({exc})", path=path, field=cols[0]) from None
    if len(num) == 0:
        raise FormatError("the fiducial table has no rows", path=path, field="x")
    bad = ~np.isfinite(num)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise FormatError(f"row {r + 1} has no finite value in column {cols[c]!r}", path=path, field=cols[c])
    vals = dict(zip(cols, num.T))
    pos = np.column_stack([vals[a] for a in axes])
    cov = np.zeros((len(pos), d, d))
    if "sigma_nm" in vals:
        if (vals["sigma_nm"] < 0).any():
            raise FormatError("sigma_nm must be >= 0 (nm)", path=path, field="sigma_nm")
        cov[:] = np.eye(d) * (vals["sigma_nm"] ** 2)[:, None, None]
    for i, a in enumerate(axes):
        for j, b in enumerate(axes):
            key = f"cov_{a}{b}"
            if j >= i and key in vals:
                cov[:, i, j] = cov[:, j, i] = vals[key]
    if (np.diagonal(cov, axis1=1, axis2=2) < 0).any():
        raise FormatError("variances cov_xx, cov_yy[, cov_zz] must be >= 0 (nm^2)", path=path, field="cov_xx")
    extra = {c: df[c].to_numpy() for c in df.columns if c not in cols and c not in axes}
    out = fiducial_table(pos, cov, **extra)
    out.attrs["source"] = {"fiducials": "user"}
    out.attrs["estimated"] = {"n_selected": len(out)}
    return out
