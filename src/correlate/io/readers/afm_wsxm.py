"""WSxM AFM images (``.top``, ``.stp``, ``.ch1``...): own parser of the text header.

* Header: ``Image header size: N`` then ``Key: value`` lines in ``[Sections]`` up to
  ``[Header end]``; the binary data (little-endian, ``Image Data Type`` short/integer/float/double)
  follow at byte N, ``Number of rows`` x ``Number of columns``, in stored row order (no flip; note
  that Gwyddion rotates WSxM images by 180° on import).
* Lateral size: ``X Amplitude`` / columns and ``Y Amplitude`` / rows (units such as nm, µm, Å).
* Heights for integer data follow Gwyddion's ``wsxmfile`` rule:
  ``raw * Z Amplitude / (max(raw) - min(raw))`` in the unit of ``Z Amplitude``. AFMReader 0.0.7 is
  wrong here (it min-max normalises to ``[0, int(Z Amplitude)]``). Floating-point data are taken
  to be in the unit of ``Z Amplitude`` already (noted; no sample file tested).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import FormatError
from ...units import to_nm_factor
from ._afm_header import NUMBER as _NUM
from ._afm_header import afm_reader, build_afm_image, scan_pixel_size
from ._image_common import parse_overrides, read_head, require_bytes

__all__ = ["read_wsxm", "READERS"]

_MAGIC = b"WSxM file copyright"
_DTYPES = {"short": "<i2", "integer": "<i4", "int": "<i4", "float": "<f4", "double": "<f8"}


def _can_open(path: Path, head: bytes) -> bool:
    return head.startswith(_MAGIC)


def _quantity(path: Path, header: dict, key: str) -> tuple[float, str]:
    s = header.get(key)
    if s is None:
        raise FormatError(f"header lacks {key!r}", path=path, field=key)
    m = re.match(rf"^\s*({_NUM})\s*(.*?)\s*$", s)
    if not m:
        raise FormatError(f"cannot parse {key} = {s!r}", path=path, field=key)
    return float(m.group(1)), m.group(2)


def read_wsxm(path, **overrides):
    """Read a WSxM image as an AFM Image (heights in nm).

    Parameters
    ----------
    path
        ``.top``/``.stp``/... file (one channel per file).
    **overrides
        ``pixel_size_nm=``, ``modality=`` (default ``"afm"``), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)``, float64 heights in nm in stored row order.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size, head = read_head(path, 1 << 16)
    if not head.startswith(_MAGIC):
        raise FormatError("not a WSxM file (no 'WSxM file copyright' line)", path=path)
    m = re.search(rb"Image header size:\s*(\d+)", head)
    if not m:
        raise FormatError("header lacks 'Image header size'", path=path, field="Image header size")
    hsize = int(m.group(1))
    require_bytes(path, hsize, "the header", size)
    with open(path, "rb") as fh:
        text = fh.read(hsize).decode("latin-1")
    if "[Header end]" not in text:
        raise FormatError("header has no '[Header end]' within 'Image header size' bytes", path=path)
    header: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key and not key.startswith("["):
            header.setdefault(key.strip(), value.strip())
    size_of = {}
    for key in ("Number of columns", "Number of rows"):
        if key not in header:
            raise FormatError(f"header lacks {key!r}", path=path, field=key)
        try:
            size_of[key] = int(header[key])
        except ValueError:
            raise FormatError(f"expected a whole number, got {header[key]!r}", path=path, field=key) from None
        if size_of[key] <= 0:
            raise FormatError(f"expected a positive number, got {size_of[key]}", path=path, field=key)
    ncols, nrows = size_of["Number of columns"], size_of["Number of rows"]
    dtype_name = header.get("Image Data Type", "short").strip().lower()
    if dtype_name not in _DTYPES:
        raise FormatError(f"unknown Image Data Type {dtype_name!r} (expected {sorted(_DTYPES)})", path=path, field="Image Data Type")
    dt = np.dtype(_DTYPES[dtype_name])
    need = nrows * ncols * dt.itemsize
    require_bytes(path, hsize + need, f"{nrows}x{ncols} {dtype_name} data after the {hsize}-byte header", size)
    with open(path, "rb") as fh:
        fh.seek(hsize)
        raw = np.frombuffer(fh.read(need), dtype=dt).reshape(nrows, ncols)
    notes: list[str] = []
    zamp, zunit = _quantity(path, header, "Z Amplitude")
    zf = to_nm_factor(zunit, path=path, field="Z Amplitude unit")
    if dt.kind in "iu":
        rmin, rmax = float(raw.min()), float(raw.max())
        if rmax > rmin:
            scale = zamp / (rmax - rmin)
        else:
            scale = 0.0
            notes.append("constant image (max == min): heights set to 0")
        values = raw.astype(np.float64) * scale * zf
        notes.append("heights = raw x Z Amplitude / (max - min) (Gwyddion wsxmfile rule)")
    else:
        values = raw.astype(np.float64) * zf
        notes.append(f"floating-point data taken to be in the Z Amplitude unit ({zunit})")
    xamp, xunit = _quantity(path, header, "X Amplitude")
    yamp, yunit = _quantity(path, header, "Y Amplitude")
    px = scan_pixel_size(
        yamp * to_nm_factor(yunit, path=path, field="Y Amplitude unit"),
        xamp * to_nm_factor(xunit, path=path, field="X Amplitude unit"),
        nrows, ncols,
    )
    notes.append("stored row order kept (AFMReader does the same; Gwyddion rotates by 180 degrees)")
    raw_cal = {k: header.get(k) for k in ("X Amplitude", "Y Amplitude", "Z Amplitude", "Image Data Type", "Acquisition channel",
                                          "X scanning direction", "Y scanning direction", "Conversion Factor 00", "Z Gain")}
    return build_afm_image(
        values, path=path, ov=ov, source_format="wsxm", pixel_size_nm=px, value_unit="nm",
        channel=header.get("Acquisition channel", ""), notes=notes, raw_calibration=raw_cal,
    )


READERS = [
    afm_reader(
        "wsxm", (".top", ".stp", ".ch1", ".ch2", ".ch3", ".ch4"), read_wsxm, _can_open,
        "WSxM image (.top/.stp): heights raw x Z Amplitude/(max-min), Gwyddion's rule",
    )
]
