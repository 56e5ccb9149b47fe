"""Picasso localizations (``*_locs.hdf5`` + ``.yaml`` sidecar).

Coordinate origin: Picasso Localize adds the fitted offset to the integer index of the spot's
centre pixel, so the **centre** of camera pixel (0, 0) is at (0, 0) (pixel ``i`` spans
``i - 0.5 .. i + 0.5``). Positions are kept as written, multiplied by the pixel size.

Frame base: 0.

Units: ``x, y, lpx, lpy, sx, sy`` (and ``std_x``/``std_y`` of molecule maps) are in camera pixels;
``z`` and ``lpz`` are already nm. The pixel size is the ``Pixelsize`` key of the multi-document
YAML sidecar, resolved **last document first** (as Picasso does); ``Camera.Pixelsize`` (a
simulation setting) is never used. The YAML is read with ``yaml.safe_load_all`` and the table
with h5py as a structured dataset (no pickle, no pandas.read_hdf).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError
from ._hdf5 import hdf5_file, read_dataset
from ._smlm_common import check_options, finish, hdf5_has, require_pixel_size, smlm_reader

__all__ = ["read_picasso", "read_picasso_metadata", "READERS"]

YAML_MAX_BYTES = 64 * 1024 * 1024

_PX_COLUMNS = {"x": "x", "y": "y", "lpx": "precision_x", "lpy": "precision_y", "sx": "sx", "sy": "sy", "std_x": "std_x", "std_y": "std_y"}
_OTHER = {"lpz": "precision_z", "photons": "photons", "bg": "background", "frame": "frame", "z": "z"}


def can_open(path: Path, head: bytes) -> bool:
    return hdf5_has(path, head, "locs")


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".yaml")


def read_picasso_metadata(path: str | Path) -> list[dict]:
    """The documents of a Picasso YAML sidecar (``yaml.safe_load_all``), oldest first."""
    import yaml

    path = Path(path)
    if path.stat().st_size > YAML_MAX_BYTES:
        raise FormatError(f"sidecar is larger than {YAML_MAX_BYTES} bytes", path=path)
    class NoAliasLoader(yaml.SafeLoader):
        """Safe loading without aliases: an alias bomb expands to gigabytes from a few lines."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise FormatError(
                    f"YAML alias '*{str(event.anchor)[:40]}' at line {event.start_mark.line + 1}: aliases are not "
                    "accepted in a Picasso sidecar", path=path,
                )
            return super().compose_node(parent, index)

    try:
        with open(path, encoding="utf-8") as fh:
            docs = [d for d in yaml.load_all(fh, Loader=NoAliasLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise FormatError(f"cannot parse the YAML sidecar safely: {str(exc).splitlines()[0]}", path=path) from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"the YAML sidecar is not UTF-8 text: {exc}", path=path) from None
    return docs


def _resolve(docs: list[dict], key: str) -> Any:
    for d in reversed(docs):
        if isinstance(d, dict) and key in d:
            return d[key]
    return None


def read_picasso(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read Picasso ``.hdf5`` localizations (+ YAML sidecar) into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.hdf5`` file; its sidecar is the same path with suffix ``.yaml``.
    pixel_size_nm
        Camera pixel size (nm); overrides the sidecar's ``Pixelsize`` (and is required when
        there is no sidecar).
    channel
        A channel name for every row.

    Returns
    -------
    pandas.DataFrame
        ``x, y[, z], frame, photons, background, precision_x, precision_y[, precision_z]`` in nm,
        ``sx, sy`` (PSF sigma, nm) and Picasso's other columns under their own names.
    """
    import h5py

    path = Path(path)
    check_options(path, options)
    notes: list[str] = []
    side = _sidecar(path)
    docs: list[dict] = []
    if side.exists():
        try:
            docs = read_picasso_metadata(side)
        except FormatError:
            if pixel_size_nm is None:
                raise
            notes.append("YAML sidecar unreadable; pixel_size_nm given by the caller used")
    yaml_px = _resolve(docs, "Pixelsize")
    if pixel_size_nm is not None:
        px = require_pixel_size(pixel_size_nm, path=path, field="pixel_size_nm")
        try:
            same = yaml_px is None or float(yaml_px) == px
        except (TypeError, ValueError):  # a sidecar value that is not a number: overridden anyway
            same = False
        if not same:
            notes.append(f"pixel_size_nm={px} given by the caller overrides the sidecar's Pixelsize {yaml_px}")
    elif yaml_px is not None:
        px = require_pixel_size(yaml_px, path=side, field="Pixelsize")
        notes.append(f"pixel size {px} nm from the sidecar's 'Pixelsize' (last document first; Camera.Pixelsize ignored)")
    elif not side.exists():
        raise FormatError(
            f"the YAML sidecar {side.name} is missing, so the camera pixel size is unknown; "
            "pass pixel_size_nm=<camera pixel size in nm>",
            path=path,
            field="Pixelsize",
        )
    else:
        raise FormatError(
            "no document of the YAML sidecar has 'Pixelsize'; pass pixel_size_nm=<camera pixel size in nm>",
            path=side,
            field="Pixelsize",
        )
    with hdf5_file(path, "Picasso HDF5") as f:
        if "locs" not in f or not isinstance(f["locs"], h5py.Dataset):
            raise FormatError("not a Picasso file: dataset 'locs' is missing", path=path, field="locs")
        ds = f["locs"]
        if ds.dtype.names is None:
            raise FormatError("dataset 'locs' must be a structured (compound) table", path=path, field="locs")
        locs = read_dataset(ds, path, "locs")
    names = locs.dtype.names
    for req in ("x", "y", "frame"):
        if req not in names:
            raise FormatError(f"missing required column '{req}'; 'locs' has {list(names)}", path=path, field=req)
    cols: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for name in names:
        v = np.asarray(locs[name])
        if name in _PX_COLUMNS:
            target = _PX_COLUMNS[name]
            cols[target] = v.astype(np.float64) * px
            if target not in ("x", "y", "precision_x", "precision_y"):
                units[target] = "nm"
        elif name in _OTHER:
            target = _OTHER[name]
            cols[target] = v.astype(np.float64) if target in ("z", "precision_z") else v
        else:
            cols[name] = v
    origin = _resolve(docs, "Origin (nm)")
    if origin is not None:
        try:
            ox, oy = (float(v) for v in origin)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"'Origin (nm)' must be [x0, y0] in nm, got {origin!r}", path=side,
                              field="Origin (nm)") from exc
        cols["x"] = cols["x"] + ox
        cols["y"] = cols["y"] + oy
        notes.append(f"positions shifted by the sidecar's 'Origin (nm)' ({ox:g}, {oy:g}) nm")
    names_of = _resolve(docs, "Channels")
    if names_of is not None and "channel" in cols and channel is None:
        codes = np.asarray(cols["channel"])
        if not isinstance(names_of, list) or codes.dtype.kind not in "iu" or (
                codes.size and (codes.min() < 0 or codes.max() >= len(names_of))):
            raise FormatError(f"'Channels' {names_of!r} does not name every channel code of 'locs'", path=side,
                              field="Channels")
        cols["channel"] = np.asarray([str(v) for v in names_of], dtype=object)[codes]
    df = pd.DataFrame(cols)
    extra = {"origin": "centre of camera pixel (0, 0) at (0, 0) (Picasso convention)"
             + (f", shifted by 'Origin (nm)' {list(origin)}" if origin is not None else "")}
    for key in ("Width", "Height", "Frames"):
        val = _resolve(docs, key)
        if val is not None:
            extra[f"camera_{key.lower()}"] = val
    return finish(
        df, path=path, source_format="picasso", frame_base=0, camera_pixel_size_nm=px, units=units, notes=notes,
        channel=channel, extra_attrs=extra,
    )


READERS = [
    smlm_reader(
        "picasso", (".hdf5", ".h5"), read_picasso, can_open, 21,
        "Picasso localizations (.hdf5 'locs' + YAML sidecar; x, y in px x Pixelsize)",
    )
]
