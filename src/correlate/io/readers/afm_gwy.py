"""Gwyddion native files (``.gwy``, magic ``GWYP``): own parser of the serialised object tree.

The format (documented by Gwyddion, "GWY file format"): a ``GwyContainer`` of components, each a
NUL-terminated name, a one-letter type (``b c i q d s o`` or arrays ``C I Q D S O`` prefixed by a
uint32 count), little-endian. Channels are ``/N/data`` (``GwyDataField``: ``xres``, ``yres``,
``xreal``, ``yreal``, ``xoff``, ``yoff``, ``si_unit_xy``, ``si_unit_z``, ``data`` as ``yres`` rows
of ``xres`` doubles in SI base units) with titles in ``/N/data/title``.

Non-square images are reshaped ``(yres, xres)`` and the pixel size is ``xreal/xres`` and
``yreal/yres`` separately (AFMReader 0.0.7 reshapes ``(xres, yres)`` and uses one size: wrong for
non-square images). Row 0 is the top of the image as Gwyddion shows it; no flip.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ...errors import FormatError
from ...units import to_nm_factor
from ._afm_header import afm_reader, build_afm_image, scan_pixel_size, values_in_nm
from ._image_common import file_size, parse_overrides, pick_index

__all__ = ["read_gwy", "parse_gwy", "READERS"]

_MAGIC = b"GWYP"
_SCALAR = {"b": ("<?", 1), "c": ("<c", 1), "i": ("<i", 4), "q": ("<q", 8), "d": ("<d", 8)}
_ARRAY = {"C": ("u1", 1), "I": ("<i4", 4), "Q": ("<i8", 8), "D": ("<f8", 8)}


def _can_open(path: Path, head: bytes) -> bool:
    return head.startswith(_MAGIC)


class _Reader:
    def __init__(self, buf: bytes, path: Path):
        self.buf, self.path = buf, path

    def fail(self, pos: int, what: str):
        raise FormatError(f"truncated or malformed GWY data at byte {pos}: {what}", path=self.path)

    def cstring(self, pos: int) -> tuple[str, int]:
        end = self.buf.find(b"\x00", pos)
        if end < 0:
            self.fail(pos, "unterminated string")
        return self.buf[pos:end].decode("utf-8", errors="replace"), end + 1

    def need(self, pos: int, n: int, what: str):
        if pos + n > len(self.buf):
            self.fail(pos, f"{what} needs {n} bytes, {len(self.buf) - pos} left")

    def obj(self, pos: int, depth: int = 0) -> tuple[dict, int]:
        if depth > 64:
            self.fail(pos, "objects nested too deeply")
        name, pos = self.cstring(pos)
        self.need(pos, 4, "object size")
        (size,) = struct.unpack_from("<I", self.buf, pos)
        pos += 4
        end = pos + size
        if end > len(self.buf):
            self.fail(pos, f"object {name!r} claims {size} bytes, {len(self.buf) - pos} left")
        out: dict = {"__type__": name}
        while pos < end:
            key, pos = self.cstring(pos)
            self.need(pos, 1, "component type")
            t = chr(self.buf[pos])
            pos += 1
            if t in _SCALAR:
                fmt, n = _SCALAR[t]
                self.need(pos, n, f"component {key!r}")
                out[key] = struct.unpack_from(fmt, self.buf, pos)[0]
                pos += n
            elif t == "s":
                out[key], pos = self.cstring(pos)
            elif t == "o":
                out[key], pos = self.obj(pos, depth + 1)
            elif t in _ARRAY or t in "SO":
                self.need(pos, 4, f"array {key!r} length")
                (count,) = struct.unpack_from("<I", self.buf, pos)
                pos += 4
                if t in _ARRAY:
                    dt, n = _ARRAY[t]
                    self.need(pos, count * n, f"array {key!r} of {count}")
                    out[key] = np.frombuffer(self.buf, dtype=dt, count=count, offset=pos)
                    pos += count * n
                elif t == "S":
                    items = []
                    for _ in range(count):
                        s, pos = self.cstring(pos)
                        items.append(s)
                    out[key] = items
                else:
                    items = []
                    for _ in range(count):
                        o, pos = self.obj(pos, depth + 1)
                        items.append(o)
                    out[key] = items
            else:
                self.fail(pos - 1, f"unknown component type {t!r} for {key!r}")
        if pos != end:
            self.fail(pos, f"object {name!r} overruns its declared size")
        return out, end


def parse_gwy(path: Path) -> dict:
    """Parse a ``.gwy`` file into nested dicts (``__type__`` = Gwyddion class name)."""
    buf = Path(path).read_bytes()
    if not buf:
        raise FormatError("file is empty (0 bytes)", path=path)
    if not buf.startswith(_MAGIC):
        if buf.startswith(b"GWYO"):
            raise FormatError("old Gwyddion 1.x format (GWYO) is not supported; re-save it with Gwyddion 2", path=path)
        raise FormatError("not a Gwyddion file (no 'GWYP' magic)", path=path)
    root, _ = _Reader(buf, Path(path)).obj(4)
    return root


def _unit(field: dict, key: str) -> str:
    u = field.get(key)
    if isinstance(u, dict):
        return str(u.get("unitstr", ""))
    return ""


def read_gwy(path, **overrides):
    """Read one channel of a Gwyddion ``.gwy`` file as an AFM Image.

    Parameters
    ----------
    path
        ``.gwy`` file.
    **overrides
        ``channel=`` (title or index among the ``/N/data`` channels; default the first whose
        title mentions height/topography, else ``/0/data``), ``pixel_size_nm=``, ``modality=``
        (default ``"afm"``), ``name=``.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    file_size(path)
    root = parse_gwy(path)
    if root.get("__type__") != "GwyContainer":
        raise FormatError(f"top object is {root.get('__type__')!r}, expected GwyContainer", path=path)
    ids = sorted(
        int(m.group(1)) for k in root if (m := re.fullmatch(r"/(\d+)/data", k)) and isinstance(root[k], dict)
        and root[k].get("__type__") == "GwyDataField"
    )
    if not ids:
        raise FormatError("no image channel (/N/data GwyDataField) in the file", path=path)
    titles = [str(root.get(f"/{i}/data/title", f"channel {i}")) for i in ids]
    if ov.channel is None:
        hits = [k for k, t in enumerate(titles) if re.search(r"height|topo|^z\b", t, re.I)]
        ci = hits[0] if hits else 0
    else:
        ci = pick_index(path, ov.channel, titles, "channel")
    f = root[f"/{ids[ci]}/data"]
    try:
        xres, yres = int(f["xres"]), int(f["yres"])
        xreal, yreal = float(f["xreal"]), float(f["yreal"])
        data = np.asarray(f["data"], dtype=np.float64)
    except KeyError as exc:
        raise FormatError(f"channel {titles[ci]!r} lacks {exc.args[0]!r}", path=path, field=exc.args[0]) from exc
    if xres <= 0 or yres <= 0 or data.size != xres * yres:
        raise FormatError(f"channel {titles[ci]!r}: {data.size} values for xres {xres} x yres {yres}", path=path, field="data")
    values = data.reshape(yres, xres)
    uxy, uz = _unit(f, "si_unit_xy"), _unit(f, "si_unit_z")
    notes: list[str] = []
    px = None
    why = None
    if uxy:
        fxy = to_nm_factor(uxy, path=path, field="si_unit_xy")
        px = scan_pixel_size(yreal, xreal, yres, xres, fxy)
    else:
        why = "si_unit_xy is empty (lateral unit unknown)"
    origin = None
    if px is not None and ("xoff" in f or "yoff" in f):
        origin = {"y": float(f.get("yoff", 0.0)) * fxy + px["y"] / 2, "x": float(f.get("xoff", 0.0)) * fxy + px["x"] / 2}
        notes.append("origin = xoff/yoff (pixel corner) + half a pixel")
    values, value_unit = values_in_nm(values, uz, path=path, field="si_unit_z")
    raw_cal = {"xres": xres, "yres": yres, "xreal": xreal, "yreal": yreal, "si_unit_xy": uxy, "si_unit_z": uz,
               "xoff": f.get("xoff"), "yoff": f.get("yoff"), "channels": titles}
    return build_afm_image(
        values, path=path, ov=ov, source_format="gwy", pixel_size_nm=px, value_unit=value_unit, channel=titles[ci],
        notes=notes, raw_calibration=raw_cal, uncalibrated_reason=why, origin_nm=origin,
    )


READERS = [afm_reader("gwy", (".gwy",), read_gwy, _can_open, "Gwyddion .gwy (own parser; non-square images handled)")]
