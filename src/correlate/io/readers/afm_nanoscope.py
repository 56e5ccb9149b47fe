"""Bruker / Veeco Nanoscope AFM images (``.spm`` and the numbered ``.000``, ``.001``... files).

Own parser of the text header (no pySPM/AFMReader dependency):

* The header is ``\\key: value`` lines in sections (``\\*Ciao image list`` per channel), ending at
  ``\\*File list end``; its length is the first ``\\Data length``.
* Per image: ``Data offset``, ``Data length``, ``Bytes/pixel`` (2 or 4, little-endian signed
  integers), ``Samps/line`` x ``Number of lines``, ``Scan size: X Y unit`` (``~m`` = µm),
  ``@2:Image Data: S [Height] "Height"`` (the channel name).
* Heights: ``raw * (Z scale value / 2**(8*bytes per pixel)) * sensitivity``, where ``@2:Z scale:
  V [Sens. Zscan] (hard V/LSB) value V`` names the sensitivity (``@Sens. Zscan: V 15.068 nm/V``).
* Orientation: flipped up-down as AFMReader/pySPM do (the first stored line is the bottom of the
  image); the header's ``Frame direction`` is recorded.
* Offsets and lengths are checked against the file size before reading.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import FormatError
from ...units import to_nm_factor
from ._afm_header import NUMBER as _NUM
from ._afm_header import afm_reader, build_afm_image, choose_channel, scan_pixel_size, values_in_nm
from ._image_common import parse_overrides, read_head, require_bytes

__all__ = ["read_nanoscope", "parse_nanoscope_header", "READERS"]

_MAGIC = (b"\\*File list", b"\\*EC File list", b"?*File list")
_END = b"\\*File list end"
_SCALE_RE = re.compile(
    rf"^\s*(?P<type>[A-Z])\s*(?:\[(?P<soft>[^\]]*)\])?\s*(?:\((?P<hard>{_NUM})\s*(?P<hardunit>[^)]*)\))?\s*(?P<value>{_NUM})\s*(?P<unit>.*?)\s*$"
)


def _can_open(path: Path, head: bytes) -> bool:
    return any(head.startswith(m) for m in _MAGIC)


def parse_nanoscope_header(path: Path, text: str) -> tuple[dict, list[dict]]:
    """Split a Nanoscope header into global keys and a list of image sections (dicts of str)."""
    glob: dict[str, str] = {}
    images: list[dict] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("\\"):
            continue
        if line.startswith("\\*"):
            sec = line[2:].strip().lower()
            if sec == "ciao image list" or sec == "afm image list":
                current = {}
                images.append(current)
            else:
                current = None
            continue
        body = line[1:].lstrip("@")
        m = re.match(r"^(\d+:)?([^:]*):(.*)$", body)
        if not m:
            continue
        key = ((m.group(1) or "") + m.group(2)).strip()
        value = m.group(3).strip()
        if current is not None:
            current.setdefault(key, value)
        else:
            glob.setdefault(key, value)
    return glob, images


def _parse_scale(s: str) -> dict | None:
    m = _SCALE_RE.match(s)
    if not m:
        return None
    d = m.groupdict()
    return {
        "soft": (d["soft"] or "").strip(),
        "hard": float(d["hard"]) if d["hard"] else None,
        "hard_unit": (d["hardunit"] or "").strip(),
        "value": float(d["value"]),
        "unit": (d["unit"] or "").strip(),
    }


def _channel_name(sec: dict) -> str:
    for k, v in sec.items():
        if k.endswith("Image Data"):
            m = re.search(r'"([^"]*)"', v)
            if m:
                return m.group(1)
            m = re.search(r"\[([^\]]*)\]", v)
            if m:
                return m.group(1)
    return sec.get("Image data", "unknown").strip('"')


def _z_scale_key(sec: dict) -> str | None:
    for k in sec:
        if k.endswith("Z scale"):
            return k
    return None


def read_nanoscope(path, **overrides):
    """Read one channel of a Bruker Nanoscope file as an AFM Image (heights in nm).

    Parameters
    ----------
    path
        ``.spm`` or numbered ``.000``/``.001``... file.
    **overrides
        ``channel=`` (name such as ``"Height"`` or index; default ``Height``), ``pixel_size_nm=``,
        ``modality=`` (default ``"afm"``), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)``, float64 heights in nm (other channels keep their unit).
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size, head = read_head(path, 1 << 20)
    if not _can_open(path, head):
        raise FormatError("not a Nanoscope file (no '\\*File list' header)", path=path)
    end = head.find(_END)
    if end < 0:
        raise FormatError("header has no '\\*File list end' (truncated header?)", path=path)
    text = head[:end].decode("latin-1")
    glob, sections = parse_nanoscope_header(path, text)
    if not sections:
        raise FormatError("no '\\*Ciao image list' section: not an image file (force curve?)", path=path)
    names = [_channel_name(s) for s in sections]
    ci = choose_channel(path, ov.channel, names, "Height")
    sec = sections[ci]
    notes: list[str] = []
    try:
        offset = int(sec["Data offset"])
        length = int(sec["Data length"])
        bpp = int(sec.get("Bytes/pixel", glob.get("Bytes/pixel", "2")))
        ncols = int(sec["Samps/line"])
        nrows = int(sec.get("Number of lines", glob.get("Lines", "0")))
    except KeyError as exc:
        raise FormatError(f"channel {names[ci]!r}: header lacks {exc.args[0]!r}", path=path, field=exc.args[0]) from exc
    except ValueError as exc:
        raise FormatError(f"channel {names[ci]!r}: malformed header number ({exc})", path=path) from exc
    if bpp not in (2, 4):
        raise FormatError(f"Bytes/pixel {bpp} not supported (2 or 4)", path=path, field="Bytes/pixel")
    if ncols <= 0 or nrows <= 0:
        raise FormatError(f"invalid image size {nrows} lines x {ncols} samples", path=path, field="Samps/line")
    if offset < 0:
        raise FormatError(f"negative Data offset {offset}", path=path, field="Data offset")
    need = ncols * nrows * bpp
    if length < need:
        raise FormatError(f"Data length {length} < {nrows}x{ncols}x{bpp} bytes", path=path, field="Data length")
    require_bytes(path, offset + need, f"channel {names[ci]!r} ({nrows}x{ncols}, {bpp} B/px at offset {offset})", size)
    with open(path, "rb") as fh:
        fh.seek(offset)
        buf = fh.read(need)
    raw = np.frombuffer(buf, dtype="<i2" if bpp == 2 else "<i4").reshape(nrows, ncols)

    # z scaling
    zkey = _z_scale_key(sec)
    raw_cal: dict = {"channel": names[ci], "channels": names, "Bytes/pixel": bpp, "Frame direction": sec.get("Frame direction"),
                     "Line direction": sec.get("Line direction"), "Version": glob.get("Version")}
    if zkey is None:
        raise FormatError(f"channel {names[ci]!r}: no 'Z scale' in its section", path=path, field="Z scale")
    zs = _parse_scale(sec[zkey])
    if zs is None:
        raise FormatError(f"cannot parse Z scale {sec[zkey]!r}", path=path, field=zkey)
    raw_cal["Z scale"] = sec[zkey]
    per_lsb = zs["value"] / 2 ** (8 * bpp)
    if zs["soft"]:
        sens_s = glob.get(zs["soft"]) or sec.get(zs["soft"])
        if sens_s is None:
            raise FormatError(f"Z scale refers to {zs['soft']!r}, which the header lacks", path=path, field=zs["soft"])
        sens = _parse_scale(sens_s)
        if sens is None:
            raise FormatError(f"cannot parse {zs['soft']!r} = {sens_s!r}", path=path, field=zs["soft"])
        raw_cal[zs["soft"]] = sens_s
        sunit = sens["unit"].split("/")[0].strip()
        factor = per_lsb * sens["value"]
        unit = sunit
    else:
        factor = per_lsb
        unit = zs["unit"]
    values, value_unit = values_in_nm(raw.astype(np.float64) * factor, unit, path=path, field=f"{names[ci]} unit")
    values = np.flipud(values)
    notes.append(f"flipped up-down as AFMReader/pySPM do (Frame direction: {sec.get('Frame direction')})")

    # lateral calibration
    ss = sec.get("Scan size") or sec.get("Scan Size") or glob.get("Scan size") or glob.get("Scan Size")
    px = None
    why = None
    if ss:
        raw_cal["Scan size"] = ss
        m = re.match(rf"^\s*({_NUM})\s+(?:({_NUM})\s+)?(.+?)\s*$", ss)
        if not m:
            raise FormatError(f"cannot parse Scan size {ss!r}", path=path, field="Scan size")
        sx = float(m.group(1))
        f = to_nm_factor(m.group(3), path=path, field="Scan size unit")
        if m.group(2) is not None:
            sy = float(m.group(2))
        else:
            sy = sx * nrows / ncols
            notes.append("Scan size gives one length: square pixels assumed")
        px = scan_pixel_size(sy, sx, nrows, ncols, f)
    else:
        why = "no 'Scan size' in the header"
    return build_afm_image(
        values, path=path, ov=ov, source_format="nanoscope", pixel_size_nm=px, value_unit=value_unit, channel=names[ci],
        notes=notes, raw_calibration=raw_cal, uncalibrated_reason=why,
    )


READERS = [
    afm_reader(
        "nanoscope", (".spm",) + tuple(f".{i:03d}" for i in range(1000)), read_nanoscope, _can_open,
        "Bruker/Veeco Nanoscope (.spm, .000-.999): heights = raw x Z scale x Sens. Zscan, in nm",
    )
]
