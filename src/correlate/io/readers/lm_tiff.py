"""OME-TIFF, ImageJ TIFF and plain TIFF images (tifffile, read lazily through its zarr interface).

Calibration, in order of trust:

* **OME-TIFF**: ``Pixels@PhysicalSizeX/Y/Z`` with ``PhysicalSize*Unit`` (default µm, as the OME
  schema says); channel names from ``Channel@Name``; several ``Image`` elements -> ``series=``.
* **ImageJ TIFF**: ``XResolution``/``YResolution`` are pixels per ``unit`` (ImageJ's ``unit`` key:
  'micron', 'um', '\\u00B5m', 'nm'...), ``spacing`` is the z step in the same unit.
* **Plain TIFF**: ``ResolutionUnit`` = centimetre gives pixels per cm (used, noted); inch (dpi) or
  none is a print resolution, not a calibration: the file is treated as uncalibrated and
  ``pixel_size_nm=`` is required.

Axes: ``C`` and RGB samples ``S`` become the ``c`` dim; ``Z`` -> ``z``; a time/other axis of length
> 1 needs ``frame=``. Default modality ``"lm"`` (override ``modality="sim"``/``"sted"``...).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


from ...errors import FormatError, UnitError
from ...units import to_nm_factor
from .._registry import ReaderSpec
from ._image_common import build_image, file_size, parse_overrides, pick_index, tiff_series_dask

__all__ = ["read_tiff", "READERS"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _can_open(path: Path, head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def _ome_can_open(path: Path, head: bytes) -> bool:
    if head[:4] not in _TIFF_MAGIC:
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:
        return False


def _rational(v) -> float | None:
    if isinstance(v, tuple) and len(v) == 2:
        return v[0] / v[1] if v[1] else None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _imagej_unit(u: str) -> str:
    u = str(u)
    if "\\u" in u:
        try:
            u = u.encode("latin-1").decode("unicode_escape")
        except UnicodeError:
            pass
    return u


def _ome_calibration(path: Path, xml: str, series: int):
    """Per-axis pixel size (nm) and channel names of OME Image ``series``; raw values."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FormatError(f"malformed OME-XML: {exc}", path=path, field="ImageDescription") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    images = root.findall(f"{ns}Image")
    if series >= len(images):
        return None, None, {}, [im.get("Name", f"Image{i}") for i, im in enumerate(images)]
    pix = images[series].find(f"{ns}Pixels")
    if pix is None:
        raise FormatError(f"OME Image {series} has no Pixels element", path=path, field="OME/Image/Pixels")
    px: dict = {}
    raw: dict = {}
    for ax in ("X", "Y", "Z"):
        v = pix.get(f"PhysicalSize{ax}")
        u = pix.get(f"PhysicalSize{ax}Unit", "µm")
        raw[f"PhysicalSize{ax}"] = v
        raw[f"PhysicalSize{ax}Unit"] = u
        if v is not None:
            try:
                val = float(v)
            except ValueError:
                raise FormatError(f"expected a number, got {v!r}", path=path, field=f"OME PhysicalSize{ax}") from None
            if val > 0:
                px[ax.lower()] = val * to_nm_factor(u, path=path, field=f"PhysicalSize{ax}Unit")
    chans = [c.get("Name") or c.get("ID") or f"c{i}" for i, c in enumerate(pix.findall(f"{ns}Channel"))]
    return px, chans, raw, [im.get("Name", f"Image{i}") for i, im in enumerate(images)]


def _calibration(path: Path, ome_xml: str | None, ij: dict | None, tags: dict, si: int, notes: list[str]):
    """(source format, pixel size nm or None, channel names, raw values, why uncalibrated) from
    the OME-XML if any, else the ImageJ metadata if any, else the TIFF resolution tags."""
    px: dict | None = None
    why = None
    if ome_xml:
        px, chans, raw, _ = _ome_calibration(path, ome_xml, si)
        if not px or not ("x" in px and "y" in px):
            px, why = None, "OME metadata has no PhysicalSizeX/Y"
        return "ome_tiff", px, chans, raw, why
    xr_, yr_ = _rational(tags.get("XResolution")), _rational(tags.get("YResolution"))
    if ij is not None:
        unit = _imagej_unit(ij.get("unit", ""))
        raw = {"unit": unit, "XResolution": xr_, "YResolution": yr_, "spacing": ij.get("spacing")}
        if unit and unit.lower() not in ("pixel", "pixels", "px", "") and xr_:
            f = to_nm_factor(unit, path=path, field="ImageJ unit")
            px = {"x": f / xr_, "y": f / (yr_ or xr_)}
            if ij.get("spacing"):
                px["z"] = float(ij["spacing"]) * f
        else:
            why = f"ImageJ TIFF without a length unit (unit {unit!r})"
        return "imagej_tiff", px, None, raw, why
    ru = tags.get("ResolutionUnit")
    ru = int(ru) if ru is not None else 1
    raw = {"ResolutionUnit": ru, "XResolution": xr_, "YResolution": yr_}
    if ru == 3 and xr_:
        px = {"x": 1e7 / xr_, "y": 1e7 / (yr_ or xr_)}
        notes.append("pixel size from the TIFF resolution tags (pixels per centimetre)")
    else:
        why = (
            "plain TIFF: its resolution tags are "
            + ("a print resolution in dots per inch" if ru == 2 else "absent or unitless")
            + ", not a calibration"
        )
    return "tiff", px, None, raw, why


def _to_czyx(path: Path, data, axes: str, frame, notes: list[str]):
    """``data`` (tifffile axes string ``axes``, upper case) with its axes mapped onto (c, z, y, x):
    length-1 axes dropped, a time/other axis of length > 1 indexed by ``frame=``; and its dims."""
    sel: list = []
    keep_axes = ""
    for i, a in enumerate(axes):
        n = data.shape[i]
        if a in "YX":
            keep_axes += a
        elif a in "CS":
            keep_axes += "C" if n > 1 else ""
            if n == 1:
                sel.append((i, 0))
        elif a == "Z":
            if n > 1:
                keep_axes += "Z"
            else:
                sel.append((i, 0))
        else:  # T, I, Q, R, ...
            if n == 1:
                sel.append((i, 0))
            elif frame is None:
                raise FormatError(
                    f"axis {a!r} of length {n} (time points or other frames); pass frame=<index> to pick one",
                    path=path,
                    field="frame",
                )
            else:
                fi = pick_index(path, frame, [str(k) for k in range(n)], "frame")
                sel.append((i, fi))
                notes.append(f"frame {fi} of {n} along axis {a!r}")
    if keep_axes.count("C") > 1:
        raise FormatError(f"both channels and RGB samples in axes {axes!r}; not supported", path=path)
    index = [slice(None)] * data.ndim
    for i, v in sel:
        index[i] = v
    data = data[tuple(index)]
    order = [keep_axes.index(a) for a in "CZYX" if a in keep_axes]
    return data.transpose(order), tuple(a.lower() for a in "CZYX" if a in keep_axes)


def read_tiff(path, **overrides):
    """Read an OME-TIFF, ImageJ TIFF or plain TIFF as a light-microscopy Image (lazy).

    Parameters
    ----------
    path
        ``.ome.tif``, ``.tif``, ``.tiff``...
    **overrides
        ``pixel_size_nm=`` (required for uncalibrated TIFFs; replaces the file's calibration),
        ``modality=`` (default ``"lm"``), ``series=``, ``channel=``, ``frame=``, ``name=``.

    Returns
    -------
    xarray.DataArray
        dims a subset of ``(c, z, y, x)`` in that order, nm coordinates at pixel centres.
    """
    import tifffile

    path = Path(path)
    ov = parse_overrides(path, overrides)
    file_size(path)
    notes: list[str] = []
    try:
        with tifffile.TiffFile(path) as tif:
            nseries = len(tif.series)
            is_ome, is_imagej = bool(tif.is_ome), bool(tif.is_imagej)
            ome_xml = tif.ome_metadata if is_ome else None
            ij = dict(tif.imagej_metadata or {}) if is_imagej else {}
            series_names = [s.name or f"series{i}" for i, s in enumerate(tif.series)]
            si = 0 if ov.series is None else pick_index(path, ov.series, series_names, "series")
            page = tif.series[si].keyframe
            tags = {t.name: t.value for t in page.tags.values() if t.name in ("XResolution", "YResolution", "ResolutionUnit")}
    except (FormatError, UnitError):
        raise
    except Exception as exc:
        raise FormatError(f"not a readable TIFF: {type(exc).__name__}: {exc}", path=path) from exc
    if nseries > 1 and ov.series is None:
        notes.append(f"file holds {nseries} series {series_names}; the first is read (series= picks another)")
    data, axes = tiff_series_dask(path, si)
    fmt, px, chans, raw, why = _calibration(path, ome_xml if is_ome else None, ij if is_imagej else None, tags, si, notes)

    axes = axes.upper()
    data, dims = _to_czyx(path, data, axes, ov.frame, notes)
    if "c" in dims:
        n = data.shape[0]
        if chans is None or len(chans) != n:
            chans = ["R", "G", "B", "A"][:n] if "S" in axes and n in (3, 4) else [f"c{i}" for i in range(n)]
        if ov.channel is not None:
            ci = pick_index(path, ov.channel, chans, "channel")
            data = data[ci]
            dims = dims[1:]
            notes.append(f"channel {chans[ci]!r} selected")
            chans = None
    else:
        chans = None
    if px is not None and "z" in dims and "z" not in px:
        why = "the file gives no z step for its z stack (pass pixel_size_nm={'z': ...} or (z, y, x))"
    if px is not None:
        px = {d: px[d] for d in dims if d != "c" and d in px}
    return build_image(
        data, path=path, ov=ov, dims=dims, pixel_size_nm=px, default_modality="lm", source_format=fmt,
        channel_names=chans, value_unit="counts", notes=notes, raw_calibration=raw, uncalibrated_reason=why,
        attrs={"series": si, "tiff_axes": axes},
    )


READERS = [
    ReaderSpec(
        name="ome_tiff",
        suffixes=(".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.tf8", ".ome.btf"),
        modality="lm",
        read=read_tiff,
        can_open=_ome_can_open,
        priority=15,
        description="OME-TIFF (tifffile; PhysicalSize with units, channels, z)",
    ),
    ReaderSpec(
        name="tiff",
        suffixes=(".tif", ".tiff", ".btf", ".tf8"),
        modality="lm",
        read=read_tiff,
        can_open=_can_open,
        priority=5,
        description="ImageJ or plain TIFF (tifffile); pixel_size_nm= needed when uncalibrated",
    ),
]
