"""DECODE emitter sets (``.h5`` written by ``decode.utils.emitter_io.save_h5``).

Coordinate origin: DECODE works in camera pixels with the centre of pixel 0 at 0 (its default
frame extent is (-0.5, W - 0.5)); positions are kept as written, multiplied by the pixel size.

Frame base: 0 (``frame_ix``).

Layout: group ``meta`` with attributes ``xy_unit`` (``'px'`` or ``'nm'``) and ``px_size``
``[x, y]`` (nm, may be non-square); group ``data`` with ``xyz`` (N, 3), ``xyz_sig``, ``xyz_cr``,
``phot``, ``phot_sig``, ``phot_cr``, ``bg``, ``bg_sig``, ``bg_cr``, ``frame_ix``, ``id``,
``prob``. ``xy_unit`` applies to x and y only: **z is always nm** (DECODE pads the px factor
with 1 for z), and the same holds for ``xyz_sig``/``xyz_cr``. All-NaN datasets are stored as
``h5py.Empty`` (shape ``None``) and are left out.

An empty file (0 emitters) gives an empty but valid Localizations table with the usual columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError, UnitError
from ._hdf5 import hdf5_file, read_dataset
from ._smlm_common import check_options, finish, hdf5_has, length_factor, require_pixel_size, smlm_reader

__all__ = ["read_decode", "READERS"]


def can_open(path: Path, head: bytes) -> bool:
    return hdf5_has(path, head, "data/xyz")


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return str(v)


def read_decode(path: str | Path, *, pixel_size_nm: Any = None, channel: Any = None, **options: Any):
    """Read a DECODE ``.h5`` into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.h5`` file.
    pixel_size_nm
        Pixel size (nm), a number or ``(x, y)``, overriding ``meta.px_size`` (needed only if the
        file has no ``px_size`` and ``xy_unit`` is ``'px'``).
    channel
        A channel name for every row.

    Returns
    -------
    pandas.DataFrame
        ``x, y, z, frame, photons, background, precision_x/_y/_z`` (from ``xyz_sig``) in nm, and
        ``id``, ``prob``, ``phot_sig``, ``bg_sig``, ``phot_cr``, ``bg_cr``, ``cr_x/_y/_z`` where
        present.
    """
    import h5py

    path = Path(path)
    check_options(path, options)
    notes: list[str] = []
    with hdf5_file(path, "DECODE HDF5") as f:
        if "data" not in f or "xyz" not in f["data"]:
            raise FormatError("not a DECODE file: dataset 'data/xyz' is missing", path=path, field="data/xyz")
        meta = dict(f["meta"].attrs) if "meta" in f else {}
        version = _attr_str(f["decode"].attrs.get("version", "")) if "decode" in f else ""
        xy_unit = _attr_str(meta.get("xy_unit", "")).strip()
        if not xy_unit:
            raise UnitError("meta.xy_unit is missing; expected 'px' or 'nm'", path=path, field="meta/xy_unit")
        px = None
        if pixel_size_nm is not None:
            given = np.ravel(np.asarray(pixel_size_nm, dtype=object))
            if given.size not in (1, 2):
                raise UnitError(
                    f"pixel_size_nm must be one number or (x, y) in nm, got {pixel_size_nm!r}",
                    path=path,
                    field="pixel_size_nm",
                )
            px = np.array([require_pixel_size(v, path=path, field="pixel_size_nm") for v in given], dtype=float)
            px = np.repeat(px, 2) if px.size == 1 else px
            notes.append(f"pixel size {px.tolist()} nm given by the caller")
        elif "px_size" in meta and meta["px_size"] is not None:
            px = np.asarray(meta["px_size"], dtype=float).ravel()
            if px.size == 1:
                px = np.repeat(px, 2)
            if px.size != 2 or not np.all(np.isfinite(px)) or np.any(px <= 0):
                raise UnitError(f"meta.px_size must be two positive numbers [x, y], got {meta['px_size']!r}", path=path, field="meta/px_size")
        if xy_unit == "px":
            if px is None:
                length_factor("px", path=path, field="meta/px_size", pixel_size_nm=None)  # raises
            fx, fy = float(px[0]), float(px[1])
            notes.append(f"x, y converted from px with px_size [x={fx}, y={fy}] nm; z is nm as stored")
        else:
            fx = fy = length_factor(xy_unit, path=path, field="meta/xy_unit", pixel_size_nm=None)
        data = f["data"]

        def get(name):
            if name not in data:
                return None
            ds = data[name]
            if ds.shape is None:  # h5py.Empty: an all-NaN column DECODE did not store
                notes.append(f"data/{name} is empty (h5py.Empty) and left out")
                return None
            return read_dataset(ds, path, f"data/{name}")

        xyz = get("xyz")
        if xyz is None or xyz.ndim != 2 or xyz.shape[1] not in (2, 3):
            raise FormatError(f"data/xyz must have shape (N, 3), got {None if xyz is None else xyz.shape}", path=path, field="data/xyz")
        n = xyz.shape[0]
        cols: dict[str, np.ndarray] = {
            "x": xyz[:, 0].astype(np.float64) * fx,
            "y": xyz[:, 1].astype(np.float64) * fy,
        }
        if xyz.shape[1] == 3:
            cols["z"] = xyz[:, 2].astype(np.float64)
        for name, prefix in (("xyz_sig", "precision_"), ("xyz_cr", "cr_")):
            v = get(name)
            if v is None:
                continue
            if v.shape[0] != n:
                raise FormatError(f"has {v.shape[0]} rows, expected {n} like data/xyz", path=path, field=f"data/{name}")
            for j, (ax, fac) in enumerate(zip("xyz", (fx, fy, 1.0))):
                if j < v.shape[1]:
                    cols[prefix + ax] = v[:, j].astype(np.float64) * fac
        mapping = {"frame_ix": "frame", "phot": "photons", "bg": "background"}
        for name in ("frame_ix", "phot", "bg", "id", "prob", "phot_sig", "phot_cr", "bg_sig", "bg_cr"):
            v = get(name)
            if v is None:
                continue
            v = np.asarray(v)
            if v.ndim != 1 or v.shape[0] != n:
                raise FormatError(f"has shape {v.shape}, expected ({n},) like data/xyz", path=path, field=f"data/{name}")
            cols[mapping.get(name, name)] = v
    if "frame" not in cols:
        raise FormatError("dataset 'data/frame_ix' is missing", path=path, field="data/frame_ix")
    df = pd.DataFrame(cols)
    if n == 0:
        notes.append("the file holds 0 emitters: an empty Localizations table")
    units = {k: "nm" for k in ("cr_x", "cr_y", "cr_z") if k in df.columns}
    units.update({k: "photon" for k in ("phot_sig", "phot_cr", "bg_sig", "bg_cr") if k in df.columns})
    return finish(
        df, path=path, source_format="decode", frame_base=0,
        camera_pixel_size_nm=[float(px[0]), float(px[1])] if px is not None else None, units=units, notes=notes,
        channel=channel,
        extra_attrs={
            "origin": "centre of camera pixel (0, 0) at (0, 0) (DECODE frame extent -0.5..W-0.5)",
            "decode_version": version,
            "xy_unit_in_file": xy_unit,
        },
    )


READERS = [
    smlm_reader(
        "decode", (".h5", ".hdf5"), read_decode, can_open, 20,
        "DECODE emitter set (.h5; x, y in px x px_size [x, y], z in nm, frame_ix 0-based)",
    )
]
