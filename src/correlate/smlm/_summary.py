"""One-call description of a localization table, for ``correlate info`` and reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["summary"]


def summary(df: pd.DataFrame, *, nena: bool = True, frc: bool = True, fiducials: bool = True) -> dict:
    """Numbers that describe a localization table (all lengths in nm).

    Keys: ``n_localizations``, ``frames`` ([first, last] or None), ``n_frames``, ``extent_nm``
    ([x0, y0, x1, y1]), ``median_precision_nm``, ``median_photons``, ``n_fiducials``,
    ``nena_precision_nm`` (+ ``nena_precision_err_nm``), ``frc_resolution_nm`` and, for steps that
    could not run, ``<step>_error`` with the reason. Cheap enough for ``correlate info``: NeNA is
    one KD-tree query, FRC one pair of FFTs of at most 2048 pixels.
    """
    from ._fiducials import find_fiducials
    from ._frc import frc as _frc
    from ._nena import nena as _nena

    out: dict = {"n_localizations": len(df)}
    if len(df) == 0:
        return out
    if "frame" in df.columns:
        f = df["frame"].to_numpy()
        out["frames"] = [int(f.min()), int(f.max())]
        out["n_frames"] = int(f.max() - f.min() + 1)
    x = df["x"].to_numpy(float)
    y = df["y"].to_numpy(float)
    out["extent_nm"] = [float(x.min()), float(y.min()), float(x.max()), float(y.max())]
    if "precision" in df.columns:
        out["median_precision_nm"] = float(np.nanmedian(df["precision"].to_numpy(float)))
    if "photons" in df.columns:
        out["median_photons"] = float(np.nanmedian(df["photons"].to_numpy(float)))
    if "n_merged" in df.columns:
        out["merged"] = True
    if fiducials and "frame" in df.columns:
        try:
            out["n_fiducials"] = len(find_fiducials(df))
        except CorrelateError as exc:
            out["fiducials_error"] = str(exc)
    if nena and "frame" in df.columns and "n_merged" not in df.columns:
        try:
            out.update({k: v for k, v in _nena(df).as_dict().items() if k in ("nena_precision_nm", "nena_precision_err_nm")})
        except CorrelateError as exc:
            out["nena_error"] = str(exc)
    if frc:
        try:
            r = _frc(df, split="blocks" if "frame" in df.columns else "random", max_pixels=2048)
            out["frc_resolution_nm"] = r.resolution_nm
        except CorrelateError as exc:
            out["frc_error"] = str(exc)
    return out
