"""Localization tables written for other SMLM tools: Picasso HDF5 + YAML and ThunderSTORM CSV.

Both keep positions as they are in the table (nm in its own frame, or mapped before export): the
round trip through the project's readers returns the same numbers (to 1e-6 nm with the default
float64 columns). Conventions of the targets:

* **Picasso** (``*_locs.hdf5`` + ``*_locs.yaml``): a structured ``locs`` dataset with ``frame``
  (0-based), ``x, y, lpx, lpy, sx, sy`` in **camera pixels** (nm / ``pixel_size_nm``), ``photons``,
  ``bg``, ``z`` and ``lpz`` in nm; the YAML's last document holds ``Pixelsize`` (nm), ``Width``,
  ``Height``, ``Frames``. Picasso writes float32; ``float32=True`` does too (a 0.5 um field then
  keeps ~1e-4 nm).
* **ThunderSTORM** (``.csv``): quoted ``name [unit]`` labels (``x [nm]``, ``uncertainty [nm]``,
  ``intensity [photon]``...), frames counted from 1, an ``id`` column from 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["write_picasso", "write_thunderstorm"]

_TS_COLUMNS = [
    ("x", "x [nm]"), ("y", "y [nm]"), ("z", "z [nm]"), ("sigma", "sigma [nm]"),
    ("photons", "intensity [photon]"), ("background", "offset [photon]"), ("precision", "uncertainty [nm]"),
    ("precision_z", "uncertainty_z [nm]"),
]


def _require(df: pd.DataFrame, cols, fmt: str, path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise CorrelateError(f"a {fmt} export needs column(s) {missing}; the table has {list(df.columns)[:20]}",
                             path=path, field=missing[0])


def _precision(df: pd.DataFrame) -> np.ndarray | None:
    if "precision" in df.columns:
        return df["precision"].to_numpy(float)
    cols = [c for c in ("precision_x", "precision_y") if c in df.columns]
    return np.sqrt(np.mean(df[cols].to_numpy(float) ** 2, axis=1)) if cols else None


def write_thunderstorm(path: str | Path, df: pd.DataFrame) -> Path:
    """Write localizations (nm, 0-based frames) as a ThunderSTORM CSV with unit labels."""
    path = Path(path)
    _require(df, ("x", "y", "frame"), "ThunderSTORM", path)
    out = pd.DataFrame({"id": np.arange(1, len(df) + 1), "frame": df["frame"].to_numpy(np.int64) + 1})
    prec = _precision(df)
    for col, label in _TS_COLUMNS:
        if col == "precision" and prec is not None:
            out[label] = prec
        elif col in df.columns:
            out[label] = df[col].to_numpy(float)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(f'"{c}"' for c in out.columns) + "\n")
        out.to_csv(fh, header=False, index=False, float_format="%.17g", lineterminator="\n")
    return path


def write_picasso(path: str | Path, df: pd.DataFrame, *, pixel_size_nm: float | None = None,
                  float32: bool = False) -> tuple[Path, Path]:
    """Write localizations as a Picasso ``.hdf5`` + ``.yaml`` pair.

    Parameters
    ----------
    path
        The ``.hdf5`` file; the sidecar is the same path with suffix ``.yaml``.
    df
        Localizations (nm, 0-based frames).
    pixel_size_nm
        Camera pixel size (nm); default the table's ``attrs["camera_pixel_size_nm"]``. Required:
        Picasso's positions are in camera pixels.
    float32
        Store floats as float32, as Picasso does (default float64, exact round trip).

    Returns
    -------
    (hdf5 path, yaml path)
    """
    import h5py
    import yaml

    path = Path(path)
    _require(df, ("x", "y", "frame"), "Picasso", path)
    px = pixel_size_nm if pixel_size_nm is not None else df.attrs.get("camera_pixel_size_nm")
    if isinstance(px, (list, tuple)):
        px = px[0] if len(set(px)) == 1 else None
    if px is None or not np.isfinite(float(px)) or float(px) <= 0:
        raise CorrelateError("a Picasso export needs the camera pixel size (nm): pass pixel_size_nm=",
                             path=path, field="pixel_size_nm")
    px = float(px)
    f = np.float32 if float32 else np.float64
    cols: dict[str, np.ndarray] = {"frame": df["frame"].to_numpy(np.uint32),
                                   "x": df["x"].to_numpy(float) / px, "y": df["y"].to_numpy(float) / px}
    prec_x = df["precision_x"].to_numpy(float) if "precision_x" in df.columns else _precision(df)
    prec_y = df["precision_y"].to_numpy(float) if "precision_y" in df.columns else _precision(df)
    if prec_x is not None:
        cols["lpx"], cols["lpy"] = prec_x / px, prec_y / px
    if "sigma" in df.columns:
        cols["sx"] = cols["sy"] = df["sigma"].to_numpy(float) / px
    for src, dst in (("photons", "photons"), ("background", "bg"), ("z", "z"), ("precision_z", "lpz")):
        if src in df.columns:
            cols[dst] = df[src].to_numpy(float)
    dtype = [(k, np.uint32 if k == "frame" else f) for k in cols]
    locs = np.zeros(len(df), dtype=dtype)
    for k, v in cols.items():
        locs[k] = v
    with h5py.File(path, "w") as h5:
        h5.create_dataset("locs", data=locs)
    width = float(np.nanmax(cols["x"])) + 1 if len(df) else 0.0
    height = float(np.nanmax(cols["y"])) + 1 if len(df) else 0.0
    meta = {
        "Generated by": "correlate export",
        "Pixelsize": px,
        "Width": int(df.attrs.get("camera_width", np.ceil(width))),
        "Height": int(df.attrs.get("camera_height", np.ceil(height))),
        "Frames": int(df["frame"].max()) + 1 if len(df) else 0,
    }
    side = path.with_suffix(".yaml")
    with open(side, "w", encoding="utf-8") as fh:
        yaml.safe_dump(meta, fh, sort_keys=False)
    return path, side
