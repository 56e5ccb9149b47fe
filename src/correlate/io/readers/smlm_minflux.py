"""Abberior MINFLUX localization exports (Imspector ``.npy`` and ``.json``).

Two layouts exist, both read:

* **nested** (Imspector m2205 and earlier): one record per localization event; the top-level
  fields ``tid`` (trace id), ``tim`` (s), ``vld`` (valid), ``gri``, ``sqi`` hold one value per event
  and ``itr`` is itself a record of M iterations (``loc`` (M, 3) in metres, ``lnc``, ``efo``,
  ``efc``, ``eco``, ``ecc``, ``cfr``, ``dcr``, ``fbg``, ``tic``...). The localization of an event is
  its **last** iteration.
* **flat** (m2410): one record per iteration, ``itr`` the iteration index and ``fnl`` true on the
  final iteration of an event; ``loc`` (3,) in metres. Events are the records with ``fnl``
  (without ``fnl``: the records of the largest ``itr``).

Mapping: ``loc`` × 1e9 -> ``x, y, z`` (nm; z as written, no refractive-index or foreshortening
correction: pass ``z_scale=`` for one); ``tid`` -> ``track_id``; ``tim`` -> ``time_s``; ``efo``,
``efc``, ``eco``, ``ecc``, ``cfr``, ``dcr``, ``fbg`` of the final iteration keep their names. Only
valid events (``vld``) are kept unless ``include_invalid=True`` (then ``vld`` is a column). A
z of exactly 0 in every event (a 2-D measurement) is left out. There is no camera and no frame:
MINFLUX tables have no ``frame`` column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError
from ._smlm_common import check_options, finish, smlm_reader

__all__ = ["read_minflux", "READERS"]

_NPY_MAGIC = b"\x93NUMPY"
_QUALITY = ("efo", "efc", "eco", "ecc", "cfr", "dcr", "fbg")
#: Largest JSON export read whole (bytes).
JSON_MAX_BYTES = 2 << 30


def _npy_fields(path: Path) -> tuple[str, ...]:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read(fh)
    return tuple(dtype.names or ())


def can_open(path: Path, head: bytes) -> bool:
    if path.suffix.lower() == ".npy":
        if not head.startswith(_NPY_MAGIC):
            return False
        try:
            names = _npy_fields(path)
        except (ValueError, OSError, SyntaxError):
            return False
        return {"itr", "tid", "vld"} <= set(names)
    text = head.lstrip()[:2048]
    return text.startswith((b"[", b"{")) and b'"itr"' in text and b'"tid"' in text


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise FormatError(f"not a readable NumPy structured array ({exc})", path=path) from None
    if arr.dtype.names is None or arr.ndim != 1:
        raise FormatError(f"expected a 1-D structured array, got dtype {str(arr.dtype)[:80]} shape {arr.shape}", path=path)
    return arr


def _load_json(path: Path) -> list[dict]:
    if path.stat().st_size > JSON_MAX_BYTES:
        raise FormatError(f"JSON export larger than {JSON_MAX_BYTES} bytes; export as .npy", path=path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"not valid UTF-8 JSON ({str(exc)[:120]})", path=path) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise FormatError("expected a list of localization records (objects)", path=path)
    return data


def _column(rec: Any, name: str, path: Path, *, required: bool = True):
    if isinstance(rec, np.ndarray):
        if name in (rec.dtype.names or ()):
            return np.asarray(rec[name])
    elif name in rec:
        try:
            return np.asarray(rec[name], dtype=float)
        except (TypeError, ValueError):
            raise FormatError(f"field '{name}' is not a regular numeric array", path=path, field=name) from None
    if required:
        raise FormatError(f"missing field '{name}'", path=path, field=name)
    return None


def _events(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Per event: loc (N, 3) m, tid, tim, vld and final-iteration quality fields."""
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        top = arr
        itr_field = arr["itr"] if "itr" in arr.dtype.names else None
        nested = itr_field is not None and itr_field.dtype.names is not None
    else:
        records = _load_json(path)
        nested = bool(records) and isinstance(records[0].get("itr"), dict)
        if nested:
            top = {k: [r.get(k) for r in records] for k in ("tid", "tim", "vld")}
            itr_field = {k: [r["itr"].get(k) for r in records] for k in ("loc",) + _QUALITY if k in records[0]["itr"]}
        else:
            top = {k: [r.get(k) for r in records] for k in records[0]} if records else {}
            itr_field = None
    out: dict[str, np.ndarray] = {}
    if nested:
        loc = _column(itr_field, "loc", path)
        if loc.ndim != 3 or loc.shape[2] != 3:
            raise FormatError(f"itr.loc must have shape (events, iterations, 3), got {loc.shape}", path=path, field="itr.loc")
        out["loc"] = np.asarray(loc[:, -1, :], float)
        for q in _QUALITY:
            v = _column(itr_field, q, path, required=False)
            if v is not None and v.ndim == 2 and v.shape[0] == len(loc):
                out[q] = np.asarray(v[:, -1], float)
        layout = f"nested, {loc.shape[1]} iterations per event (the last one kept)"
    else:
        loc = _column(top, "loc", path)
        itr = _column(top, "itr", path)
        if loc.ndim != 2 or loc.shape[1] != 3 or itr.shape != (len(loc),):
            raise FormatError(f"loc must be (records, 3) and itr (records,), got {loc.shape} and {itr.shape}",
                              path=path, field="loc")
        fnl = _column(top, "fnl", path, required=False)
        final = fnl.astype(bool) if fnl is not None else (itr == itr.max() if len(itr) else np.zeros(0, bool))
        out["loc"] = np.asarray(loc[final], float)
        for q in _QUALITY:
            v = _column(top, q, path, required=False)
            if v is not None and v.shape == (len(loc),):
                out[q] = np.asarray(v[final], float)
        top = {k: (_column(top, k, path, required=False)) for k in ("tid", "tim", "vld")}
        top = {k: (None if v is None else v[final]) for k, v in top.items()}
        layout = "flat, one record per iteration (" + ("fnl records kept)" if fnl is not None else "records of the last itr kept)")
    n = len(out["loc"])
    for k in ("tid", "tim", "vld"):
        v = _column(top, k, path, required=k in ("tid", "vld"))
        if v is not None:
            v = np.asarray(v).ravel()
            if v.shape != (n,):
                raise FormatError(f"field '{k}' has {v.size} values for {n} events", path=path, field=k)
            out[k] = v
    return out, layout


def read_minflux(path: str | Path, *, include_invalid: bool = False, z_scale: float = 1.0, channel: Any = None,
                 **options: Any) -> pd.DataFrame:
    """Read an Abberior MINFLUX export into Localizations (nm).

    Parameters
    ----------
    path
        ``.npy`` (structured array) or ``.json`` export.
    include_invalid
        Keep events with ``vld`` false (a ``vld`` column tells them apart).
    z_scale
        Factor applied to z (e.g. a foreshortening correction); 1 keeps z as written.
    channel
        A channel name for every row.

    Returns
    -------
    pandas.DataFrame
        ``x, y[, z]`` (nm), ``track_id`` (MINFLUX trace id), ``time_s`` and the final iteration's
        ``efo, efc, eco, ecc, cfr, dcr, fbg`` where present.
    """
    path = Path(path)
    check_options(path, options, allowed=("include_invalid", "z_scale"))
    ev, layout = _events(path)
    vld = ev["vld"].astype(bool)
    keep = np.ones(len(vld), bool) if include_invalid else vld
    loc = ev["loc"][keep] * 1e9
    cols: dict[str, np.ndarray] = {"x": loc[:, 0], "y": loc[:, 1]}
    notes = [f"MINFLUX {layout}; {int(vld.sum())} valid of {len(vld)} events"
             + ("" if include_invalid else ", invalid ones dropped")]
    if len(loc) and np.any(loc[:, 2] != 0):
        if not (np.isfinite(z_scale) and z_scale > 0):
            raise FormatError(f"z_scale must be a positive number, got {z_scale!r}", path=path, field="z_scale")
        cols["z"] = loc[:, 2] * float(z_scale)
        notes.append("z as written" if z_scale == 1.0 else f"z multiplied by z_scale={z_scale}")
    tid = ev["tid"][keep]
    if tid.size and not np.all(np.isfinite(tid.astype(float))):
        raise FormatError("trace ids (tid) must be finite integers", path=path, field="tid")
    cols["track_id"] = tid.astype(np.int64)
    if "tim" in ev:
        cols["time_s"] = ev["tim"][keep].astype(float)
    for q in _QUALITY:
        if q in ev:
            cols[q] = ev[q][keep]
    if include_invalid:
        cols["vld"] = vld[keep]
    df = pd.DataFrame(cols)
    return finish(df, path=path, source_format="minflux", frame_base=None, units={"time_s": "s"}, notes=notes,
                  channel=channel, extra_attrs={"origin": "MINFLUX sample coordinates (loc, metres) as written"})


READERS = [
    smlm_reader(
        "minflux", (".npy", ".json"), read_minflux, can_open, 10,
        "Abberior MINFLUX export (Imspector .npy / .json; last valid iteration, loc in metres -> nm)",
    )
]
