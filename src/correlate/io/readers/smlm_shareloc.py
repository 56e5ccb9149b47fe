"""ShareLoc ``.smlm`` files (ZIP archive + ``manifest.json``, format version 0.2).

Coordinate origin: the format stores positions in nm without saying where the camera pixel
origin is; positions are kept as written.

Frame base: the specification does not fix one; 0 is assumed (real files, e.g. those written by
locan, start at 0) and recorded in ``attrs["notes"]``.

What real files do that the specification does not say (handled here):

* binary tables are row-interleaved records in the reference implementation and in real files,
  while the specification says column-major; when the manifest gives per-column ``min``/``max``
  both layouts are tried and the one that reproduces them is used, otherwise records are assumed;
* locan writes ``position_x``/``position_y`` headers and ``int8`` dtypes;
* ``units`` may be a list of empty strings or a dict: lengths are then nm (the specification's
  default; locan also states nm in its ``locdata_meta``).

Security: member names from the manifest are only looked up inside the archive, never used as
filesystem paths; declared sizes are checked against the member size before anything is read.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError, UnitError
from ._smlm_common import check_options, finish, is_length_unit, length_factor, smlm_reader

__all__ = ["read_smlm", "READERS"]

MANIFEST_MAX_BYTES = 64 * 1024 * 1024

_DTYPES = {
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8",
    "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8",
    "float32": "f4", "float64": "f8",
}

_CANONICAL = {
    "x": "x", "position_x": "x", "x_position": "x",
    "y": "y", "position_y": "y", "y_position": "y",
    "z": "z", "position_z": "z", "z_position": "z",
    "frame": "frame",
    "x_precision": "precision_x", "y_precision": "precision_y", "z_precision": "precision_z",
    "uncertainty": "precision", "uncertainty_x": "precision_x", "uncertainty_y": "precision_y",
    "uncertainty_z": "precision_z",
}
_LENGTH_COLUMNS = {"x", "y", "z", "precision", "precision_x", "precision_y", "precision_z"}


def can_open(path: Path, head: bytes) -> bool:
    """A ZIP archive whose central directory lists ``manifest.json``."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return "manifest.json" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _int(value: Any, what: str, path: Path) -> int:
    try:
        out = int(str(value).strip())
    except (TypeError, ValueError):
        raise FormatError(f"expected an integer, got {value!r}", path=path, field=what) from None
    if out < 0:
        raise FormatError(f"must not be negative, got {out}", path=path, field=what)
    return out


def _units_of(fmt: dict, headers: list[str], manifest: dict) -> dict[str, str]:
    raw = fmt.get("units", [])
    units: dict[str, str] = {}
    if isinstance(raw, list):
        units = {h: (u or "") for h, u in zip(headers, raw)}
    elif isinstance(raw, dict):
        units = {h: (raw.get(h) or "") for h in headers}
    meta_units = manifest.get("locdata_meta", {}).get("unit", [])
    if isinstance(meta_units, list):
        for entry in meta_units:
            if isinstance(entry, dict) and entry.get("property") in units and not units[entry["property"]]:
                units[entry["property"]] = str(entry.get("unit", ""))
    return units


def _decode_binary(buf: bytes, headers, dtypes, shapes, rows, offsets, info, path, notes) -> pd.DataFrame:
    fields = []
    for h, d, s in zip(headers, dtypes, shapes):
        code = _DTYPES.get(str(d).lower())
        if code is None:
            raise FormatError(f"unknown dtype {d!r}; expected one of {sorted(_DTYPES)}", path=path, field=h)
        shape = tuple(_int(v, h, path) for v in (s if isinstance(s, list) else [s]))
        fields.append((h, "<" + code, shape if shape != (1,) else ()))
    rec = np.dtype([(h, c, s) if s else (h, c) for h, c, s in fields])
    expected = rows * rec.itemsize
    if len(buf) != expected:
        raise FormatError(
            f"binary table holds {len(buf)} bytes but the manifest declares {rows} rows of {rec.itemsize} bytes "
            f"({expected} bytes)",
            path=path,
        )
    records = np.frombuffer(buf, dtype=rec, count=rows)
    # Column-major alternative: each column stored contiguously.
    colmajor = {}
    pos = 0
    for h, c, s in fields:
        n = rows * int(np.prod(s or (1,)))
        colmajor[h] = np.frombuffer(buf, dtype=c, count=n, offset=pos).reshape((rows,) + s)
        pos += n * np.dtype(c).itemsize

    def _matches(cols) -> bool | None:
        mins, maxs = info.get("min"), info.get("max")
        if not isinstance(mins, dict) or not isinstance(maxs, dict) or rows == 0:
            return None
        for h, _, s in fields:
            if s or h not in mins or h not in maxs:
                continue
            v = np.asarray(cols[h], dtype=np.float64)
            for got, want in ((np.nanmin(v), mins[h]), (np.nanmax(v), maxs[h])):
                try:
                    w = float(want)
                except (TypeError, ValueError):
                    continue
                if not np.isclose(got, w, rtol=1e-5, atol=1e-6 * max(1.0, abs(w))):
                    return False
        return True

    as_records = {h: records[h] for h, _, _ in fields}
    rec_ok, col_ok = _matches(as_records), _matches(colmajor)
    if rec_ok is None:
        chosen, layout = as_records, "row-interleaved records (assumed: no min/max in the manifest to check)"
    elif rec_ok:
        chosen, layout = as_records, "row-interleaved records (checked against the manifest min/max)"
    elif col_ok:
        chosen, layout = colmajor, "column-major (checked against the manifest min/max)"
    else:
        raise FormatError(
            "neither a row-interleaved nor a column-major reading reproduces the manifest's min/max; "
            "the table or its manifest is damaged",
            path=path,
        )
    notes.append(f"binary table read as {layout}")
    out = {}
    for h, _, s in fields:
        if s:
            notes.append(f"column '{h}' has per-row shape {s} and is not a table column; skipped")
            continue
        v = np.array(chosen[h])  # own, writeable copy
        off = offsets.get(h, 0) if isinstance(offsets, dict) else 0
        if off:
            v = v.astype(np.float64) + float(off)
        out[h] = v
    return pd.DataFrame(out)


def _decode_text(buf: bytes, fmt: dict, path: Path) -> pd.DataFrame:
    import io

    delim = fmt.get("delimiter", ",")
    comments = fmt.get("comments") or None
    header_row = int(fmt.get("header_row", 0))
    transform = fmt.get("header_transform") or {}
    try:
        df = pd.read_csv(
            io.BytesIO(buf), sep=delim, comment=comments, header=None if header_row < 0 else header_row, engine="c"
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"cannot parse the text table: {str(exc).splitlines()[0]}", path=path) from None
    if transform:
        mapping = {}
        for k, v in transform.items():
            key = int(k) if header_row < 0 and str(k).lstrip("-").isdigit() else k
            mapping[key] = v
        df = df.rename(columns=mapping)
    df.columns = [str(c) for c in df.columns]
    return df


#: Largest ratio of a member's declared size to its compressed size (localization tables compress
#: a few times; a bomb declares a thousand).
MAX_ZIP_EXPANSION = 100


def _check_member(member: zipfile.ZipInfo, path: Path) -> None:
    """Refuse a member whose declared size is out of proportion to its compressed size."""
    if member.file_size > MAX_ZIP_EXPANSION * max(member.compress_size, 1) + (1 << 20):
        raise FormatError(
            f"member {member.filename[:80]!r} declares {member.file_size} bytes from {member.compress_size} compressed; "
            f"refusing an expansion over {MAX_ZIP_EXPANSION}x",
            path=path, field=member.filename[:80],
        )


def read_smlm(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read a ShareLoc ``.smlm`` archive into Localizations (nm, 0-based frames).

    Tables of several files (channels) are concatenated with their manifest ``channel`` name in
    ``channel`` (a single table named ``default`` gets no channel column).

    Parameters
    ----------
    path
        The ``.smlm`` file.
    pixel_size_nm
        Camera pixel size (nm) for columns declared in pixels.
    channel
        A channel name for every row.
    """
    path = Path(path)
    check_options(path, options)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"not a readable ZIP archive ({exc}); the file may be truncated", path=path) from None
    notes: list[str] = []
    with z:
        try:
            minfo = z.getinfo("manifest.json")
        except KeyError:
            raise FormatError("the archive has no manifest.json", path=path, field="manifest.json") from None
        if minfo.file_size > MANIFEST_MAX_BYTES:
            raise FormatError(f"manifest.json is {minfo.file_size} bytes; refusing more than {MANIFEST_MAX_BYTES}", path=path)
        try:
            manifest = json.loads(z.read(minfo).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise FormatError(f"manifest.json is not valid UTF-8 JSON: {exc}", path=path, field="manifest.json") from None
        if not isinstance(manifest, dict):
            raise FormatError("manifest.json must hold a JSON object", path=path, field="manifest.json")
        formats = manifest.get("formats")
        files = manifest.get("files")
        if not isinstance(formats, dict) or not isinstance(files, list):
            raise FormatError("manifest.json needs 'formats' (object) and 'files' (list)", path=path, field="manifest.json")
        tables = []
        members = set(z.namelist())
        for i, info in enumerate(files):
            if not isinstance(info, dict) or info.get("type", "table") != "table":
                notes.append(f"manifest file entry {i} is not a table; skipped")
                continue
            name = info.get("name")
            fmt = formats.get(info.get("format"))
            if not isinstance(fmt, dict):
                raise FormatError(f"file entry {name!r} names unknown format {info.get('format')!r}", path=path, field="formats")
            # Archive member names are looked up in the archive only, never joined to a path.
            if not isinstance(name, str) or name not in members:
                raise FormatError(f"table {name!r} listed in manifest.json is not in the archive", path=path, field="files")
            member = z.getinfo(name)
            mode = fmt.get("mode", "binary")
            if mode == "binary":
                headers = list(fmt.get("headers", []))
                dtypes = fmt.get("dtype", [])
                shapes = fmt.get("shape", [1] * len(headers))
                if not headers or len(dtypes) != len(headers) or len(shapes) != len(headers):
                    raise FormatError(
                        f"format of {name!r} needs equal-length 'headers', 'dtype' and 'shape'", path=path, field="formats"
                    )
                rows = _int(info.get("rows"), f"files[{i}].rows", path)
                row_bytes = 0
                for h, d, s in zip(headers, dtypes, shapes):
                    code = _DTYPES.get(str(d).lower())
                    if code is None:
                        raise FormatError(f"unknown dtype {d!r}", path=path, field=h)
                    n = int(np.prod([_int(v, h, path) for v in (s if isinstance(s, list) else [s])]))
                    row_bytes += np.dtype(code).itemsize * n
                if rows * row_bytes != member.file_size:
                    raise FormatError(
                        f"table {name!r} is {member.file_size} bytes in the archive but the manifest declares "
                        f"{rows} rows x {row_bytes} bytes = {rows * row_bytes}; truncated or inconsistent",
                        path=path,
                    )
                _check_member(member, path)
                try:
                    buf = z.read(member)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise FormatError(f"cannot extract {name!r}: {exc}; the archive may be truncated", path=path) from None
                df = _decode_binary(buf, headers, dtypes, shapes, rows, info.get("offset") or {}, info, path, notes)
                units = _units_of(fmt, headers, manifest)
            elif mode == "text":
                _check_member(member, path)
                buf = z.read(member)
                df = _decode_text(buf, fmt, path)
                units = _units_of(fmt, list(df.columns), manifest)
            else:
                raise FormatError(f"unknown table mode {mode!r}; expected 'binary' or 'text'", path=path, field="mode")
            tables.append((df, units, info.get("channel")))
    if not tables:
        raise FormatError("manifest.json lists no localization table", path=path, field="files")
    frames = []
    all_units: dict[str, str] = {}
    assumed_nm = False
    for df, units, ch in tables:
        rename = {}
        for col in df.columns:
            target = _CANONICAL.get(col, col)
            if target in rename.values():
                raise FormatError(f"two columns map to '{target}'", path=path, field=col)
            rename[col] = target
            unit = units.get(col, "")
            if target in _LENGTH_COLUMNS:
                if unit and not is_length_unit(unit):
                    raise UnitError(f"unknown length unit {unit!r}", path=path, field=col)
                if not unit and not assumed_nm:
                    assumed_nm = True
                    notes.append("no length unit given for positions: nm assumed (the .smlm specification's default)")
                f = length_factor(unit or "nm", path=path, field=col, pixel_size_nm=pixel_size_nm)
                df[col] = df[col].to_numpy(dtype=np.float64) * f
            elif unit:
                all_units[target] = unit
        df = df.rename(columns=rename)
        if len(tables) > 1 or (ch not in (None, "", "default")):
            df["channel"] = ch
        frames.append(df)
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    notes.append("frame base assumed 0 (the .smlm specification does not fix one)")
    return finish(
        df, path=path, source_format="smlm", frame_base=0,
        camera_pixel_size_nm=float(pixel_size_nm) if pixel_size_nm is not None else None, units=all_units,
        notes=notes, channel=channel, extra_attrs={"origin": "as written (the .smlm format states none)"},
    )


READERS = [
    smlm_reader(
        "smlm", (".smlm",), read_smlm, can_open, 20,
        "ShareLoc .smlm (ZIP + manifest.json, binary table; nm)",
    )
]
