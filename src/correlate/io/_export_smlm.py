"""Localization tables written for other SMLM tools: Picasso HDF5 + YAML and ThunderSTORM CSV.

Both keep positions as they are in the table (nm in its own frame, or mapped before export): the
round trip through the project's readers returns the same numbers (to 1e-6 nm with the default
float64 columns). Conventions of the targets:

* **Picasso** (``*_locs.hdf5`` + ``*_locs.yaml``): a structured ``locs`` dataset with ``frame``
  (0-based), ``x, y, lpx, lpy, sx, sy`` in **camera pixels** (nm / ``pixel_size_nm``), ``photons``,
  ``bg``, ``z`` and ``lpz`` in nm, ``group`` (int32) when the table has one; the YAML holds
  ``Pixelsize`` (nm), ``Width``, ``Height``, ``Frames``. Picasso writes float32; ``float32=True``
  does too (a 0.5 um field then keeps ~1e-4 nm). ``picasso.io.load_locs`` silently drops every row
  with a NaN, a position outside ``0 <= x < Width``, ``0 <= y < Height`` or a negative precision,
  photon count or PSF width (``lib.ensure_sanity``): the export refuses such rows instead, and
  ``origin_nm=`` shifts positions that lie left of or above the origin.
* **ThunderSTORM** (``.csv``): quoted ``name [unit]`` labels (``x [nm]``, ``uncertainty [nm]``,
  ``intensity [photon]``...), frames counted from 1, an ``id`` column from 1. ThunderSTORM reads
  every column as a number.

A ``channel`` column is written as integer codes (``channel``; numeric channels as they are, names
as their index in sorted order, listed under ``Channels`` in the Picasso YAML). Columns that are NaN
on every row are left out (Picasso would drop every row); a column NaN on some rows is an error.
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
#: Picasso columns ``lib.ensure_sanity`` requires to be >= 0.
_PICASSO_NONNEGATIVE = ("x", "y", "lpx", "lpy", "lpz", "photons", "sx", "sy")


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


def _channel_codes(df: pd.DataFrame, path: Path) -> tuple[np.ndarray | None, list[str] | None]:
    """Integer channel codes and, for named channels, the names indexed by code."""
    if "channel" not in df.columns:
        return None, None
    ch = df["channel"]
    if pd.api.types.is_numeric_dtype(ch) and not pd.api.types.is_bool_dtype(ch):
        v = ch.to_numpy(float)
        if not np.all(np.isfinite(v) & (v == np.round(v))):
            raise CorrelateError("a numeric channel column must hold whole numbers to be exported",
                                 path=path, field="channel")
        return v.astype(np.int32), None
    if ch.isna().any():
        raise CorrelateError(f"{int(ch.isna().sum())} localizations have no channel", path=path, field="channel")
    names = sorted(map(str, pd.unique(ch.astype(str))))
    return np.searchsorted(np.asarray(names), ch.astype(str).to_numpy()).astype(np.int32), names


def _drop_empty(cols: dict[str, np.ndarray], path: Path, fmt: str) -> list[str]:
    """Remove columns NaN on every row (returned); raise on columns NaN on some rows."""
    omitted, partial = [], {}
    for k, v in list(cols.items()):
        if v.dtype.kind != "f":
            continue
        bad = int(np.count_nonzero(~np.isfinite(v)))
        if bad == len(v) and len(v) and k not in ("x", "y"):
            omitted.append(k)
            del cols[k]
        elif bad:
            partial[k] = bad
    if partial:
        raise CorrelateError(
            f"a {fmt} export needs finite values; non-finite rows per column: {partial} of "
            f"{len(next(iter(cols.values())))}: drop those rows or the column before exporting",
            path=path, field=next(iter(partial)))
    return omitted


def write_thunderstorm(path: str | Path, df: pd.DataFrame) -> Path:
    """Write localizations (nm, 0-based frames) as a ThunderSTORM CSV with unit labels.

    Returns
    -------
    The path written.
    """
    path = Path(path)
    _require(df, ("x", "y", "frame"), "ThunderSTORM", path)
    cols: dict[str, np.ndarray] = {"id": np.arange(1, len(df) + 1),
                                   "frame": df["frame"].to_numpy(np.int64) + 1}
    prec = _precision(df)
    for col, label in _TS_COLUMNS:
        if col == "precision" and prec is not None:
            cols[label] = prec
        elif col in df.columns:
            cols[label] = df[col].to_numpy(float)
    codes, _ = _channel_codes(df, path)
    if codes is not None:
        cols["channel"] = codes
    _drop_empty(cols, path, "ThunderSTORM")
    out = pd.DataFrame(cols)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(f'"{c}"' for c in out.columns) + "\n")
        out.to_csv(fh, header=False, index=False, float_format="%.17g", lineterminator="\n")
    return path


def _pixel_size(df: pd.DataFrame, pixel_size_nm: float | None, path: Path) -> float:
    px = pixel_size_nm if pixel_size_nm is not None else df.attrs.get("camera_pixel_size_nm")
    if isinstance(px, (list, tuple)):
        px = px[0] if len(set(px)) == 1 else None
    if px is None or not np.isfinite(float(px)) or float(px) <= 0:
        raise CorrelateError("a Picasso export needs the camera pixel size (nm): pass pixel_size_nm=",
                             path=path, field="pixel_size_nm")
    return float(px)


def _origin(df: pd.DataFrame, origin_nm, px: float, path: Path) -> tuple[float, float]:
    if origin_nm is None:
        return 0.0, 0.0
    if isinstance(origin_nm, str):
        if origin_nm != "min":
            raise CorrelateError(f"origin_nm={origin_nm!r}: expected (x0, y0) in nm or 'min'", path=path,
                                 field="origin_nm")
        lo = [float(np.nanmin(df[c].to_numpy(float))) if len(df) else 0.0 for c in ("x", "y")]
        return tuple(float(np.floor(v / px) * px) for v in lo)  # whole camera pixels keep the pixel grid
    x0, y0 = (float(v) for v in origin_nm)
    return x0, y0


def _picasso_columns(df: pd.DataFrame, px: float, origin: tuple[float, float]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {"frame": df["frame"].to_numpy(np.uint32),
                                   "x": (df["x"].to_numpy(float) - origin[0]) / px,
                                   "y": (df["y"].to_numpy(float) - origin[1]) / px}
    prec_x = df["precision_x"].to_numpy(float) if "precision_x" in df.columns else _precision(df)
    prec_y = df["precision_y"].to_numpy(float) if "precision_y" in df.columns else _precision(df)
    if prec_x is not None:
        cols["lpx"], cols["lpy"] = prec_x / px, prec_y / px
    if "sigma" in df.columns:
        cols["sx"] = cols["sy"] = df["sigma"].to_numpy(float) / px
    for src, dst in (("photons", "photons"), ("background", "bg"), ("z", "z"), ("precision_z", "lpz")):
        if src in df.columns:
            cols[dst] = df[src].to_numpy(float)
    if "group" in df.columns:
        cols["group"] = df["group"].to_numpy(np.int32)
    return cols


def _check_picasso_sanity(cols: dict[str, np.ndarray], width: int, height: int, origin, px: float,
                          path: Path) -> None:
    """Raise when ``picasso.lib.ensure_sanity`` would drop rows on load (it does so without a word)."""
    reasons = {}
    for k in _PICASSO_NONNEGATIVE:
        if k in cols and (n := int(np.count_nonzero(cols[k] < 0))):
            reasons[f"{k} < 0"] = n
    for k, lim in (("x", width), ("y", height)):
        if n := int(np.count_nonzero(cols[k] >= lim)):
            reasons[f"{k} >= {lim} px"] = n
    if reasons:
        lo = (float(np.min(cols["x"])) * px + origin[0], float(np.min(cols["y"])) * px + origin[1])
        raise CorrelateError(
            f"Picasso would drop localizations on load: {reasons} of {len(cols['x'])} (origin {origin} nm, "
            f"smallest x, y {lo[0]:.1f}, {lo[1]:.1f} nm); pass origin_nm='min' or origin_nm=(x0, y0) to write "
            "positions relative to an origin (recorded in the YAML), or select the rows to export",
            path=path, field="origin_nm" if any(r.startswith(("x <", "y <")) for r in reasons) else None)


def write_picasso(path: str | Path, df: pd.DataFrame, *, pixel_size_nm: float | None = None,
                  float32: bool = False, origin_nm: tuple[float, float] | str | None = None) -> tuple[Path, Path]:
    """Write localizations as a Picasso ``.hdf5`` + ``.yaml`` pair that ``picasso.io.load_locs`` reads whole.

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
    origin_nm
        ``(x0, y0)`` (nm) subtracted from the positions before they are written, or ``"min"``: the
        smallest x and y rounded down to whole camera pixels. Default none (positions as they are;
        rows Picasso would drop are an error). A non-zero origin is recorded in the YAML as
        ``Origin (nm)``.

    Returns
    -------
    (hdf5 path, yaml path)
    """
    import h5py
    import yaml

    path = Path(path)
    _require(df, ("x", "y", "frame"), "Picasso", path)
    px = _pixel_size(df, pixel_size_nm, path)
    origin = _origin(df, origin_nm, px, path)
    cols = _picasso_columns(df, px, origin)
    codes, names = _channel_codes(df, path)
    if codes is not None:
        cols["channel"] = codes
    omitted = _drop_empty(cols, path, "Picasso")
    n = len(df)
    width = max(int(df.attrs.get("camera_width") or 0), int(np.floor(np.max(cols["x"]))) + 1 if n else 0)
    height = max(int(df.attrs.get("camera_height") or 0), int(np.floor(np.max(cols["y"]))) + 1 if n else 0)
    _check_picasso_sanity(cols, width, height, origin, px, path)
    f = np.float32 if float32 else np.float64
    locs = np.zeros(n, dtype=[(k, v.dtype if v.dtype.kind in "iu" else f) for k, v in cols.items()])
    for k, v in cols.items():
        locs[k] = v
    with h5py.File(path, "w") as h5:
        h5.create_dataset("locs", data=locs)
    meta = {"Generated by": "correlate export", "Pixelsize": px, "Width": width, "Height": height,
            "Frames": int(df["frame"].max()) + 1 if n else 0}
    if origin != (0.0, 0.0):
        meta["Origin (nm)"] = [origin[0], origin[1]]
    if names is not None:
        meta["Channels"] = names
    if omitted:
        meta["Columns left out (NaN on every row)"] = omitted
    side = path.with_suffix(".yaml")
    with open(side, "w", encoding="utf-8") as fh:
        yaml.safe_dump(meta, fh, sort_keys=False)
    return path, side
