"""Zeiss CZI (ZEN) images through pylibCZIrw (optional dependency).

* ``pip install pylibCZIrw`` (ZEISS' own libCZI binding, LGPL); without it a ``.czi`` raises a
  :class:`FormatError` telling you so.
* Pixel size: ``Metadata/Scaling/Items/Distance[@Id="X"|"Y"|"Z"]/Value``, which the CZI schema
  stores in **metres** (ZEN writes e.g. ``1.0378e-07`` with ``DefaultUnitFormat`` ``µm`` for
  display only). A value of 1 mm or more per pixel is not a microscope pixel: pylibCZIrw's
  ``write_metadata`` documents its ``scale_x`` in µm but stores it unchanged, so such files carry
  µm in a metre field. Such an axis is treated as uncalibrated (``pixel_size_nm=`` needed).
* Channel names from ``Information/Image/Dimensions/Channels/Channel/@Name``.
* A CZI can hold several scenes: ``series=`` picks one (default the first, noted). ``C`` becomes
  the ``c`` dim; ``Z`` is kept as ``z`` with the Z distance as spacing; ``T`` and the other
  non-spatial dimensions (``R I H V B``) of length > 1 need ``frame=``.
* BGR pixel types (``Bgr24``, ``Bgr48``, ``Bgr96Float``) of a single-channel file become
  ``c`` = R, G, B.
* Planes are read on first compute (one dask chunk per plane, the file reopened per chunk).
* Pyramid levels and the subblock pixel offset in the mosaic are not used (the offset is kept in
  ``raw_calibration``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from .._registry import ReaderSpec
from ._lazy import guarded_loader
from ._image_common import (
    build_image,
    file_size,
    optional_import,
    parse_overrides,
    pick_index,
    require_bytes,
)

__all__ = ["READERS", "czi_channel_names_from_xml", "czi_scaling_from_xml", "read_czi"]

_MAGIC = b"ZISRAWFILE"
#: a CZI Distance Value at or above this (metres per pixel) is taken as not in metres
_MAX_PLAUSIBLE_M = 1e-3
_OTHER_DIMS = ("T", "R", "I", "H", "V", "B")
_BGR = {"Bgr24", "Bgr48", "Bgr96Float"}


def _can_open(path: Path, head: bytes) -> bool:
    # every CZI starts with the file-header segment id "ZISRAWFILE" (16 bytes, NUL padded)
    return head.startswith(_MAGIC)


def _import_pylibczirw(path: Path):
    return optional_import("pylibCZIrw.czi", path, what="Zeiss CZI", package="pylibCZIrw", extra="czi")


def czi_scaling_from_xml(xml: str, path: Path | str = "<czi>") -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """Pixel sizes in nm from the CZI metadata XML.

    Parameters
    ----------
    xml
        The document's metadata XML (``CziReader.raw_metadata``).
    path
        For error messages.

    Returns
    -------
    pixel_size_nm, raw, problems
        ``{"x": nm, "y": nm[, "z": nm]}`` for every axis with a plausible value in metres;
        ``raw`` = the stored values (``{"X": {"value": 6.5e-08, "unit": "m"}}``, plus
        ``DefaultUnitFormat`` where given); ``problems`` = why an axis was left out.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FormatError(f"metadata XML cannot be parsed: {exc}", path=path, field="Metadata") from exc
    px: dict[str, float] = {}
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for dist in root.iterfind(".//Scaling/Items/Distance"):
        axis = str(dist.get("Id", "")).upper()
        if axis not in ("X", "Y", "Z"):
            continue
        val_el = dist.find("Value")
        unit_el = dist.find("DefaultUnitFormat")
        text = None if val_el is None or val_el.text is None else val_el.text.strip()
        entry: dict[str, Any] = {"value": text, "unit": "m"}
        if unit_el is not None and unit_el.text:
            entry["DefaultUnitFormat"] = unit_el.text.strip()
        raw[axis] = entry
        try:
            v = float(text) if text else float("nan")
        except ValueError:
            problems.append(f"Scaling Distance {axis} Value {text!r} is not a number")
            continue
        if not np.isfinite(v) or v <= 0:
            problems.append(f"Scaling Distance {axis} Value {text!r} is not a positive length")
        elif v >= _MAX_PLAUSIBLE_M:
            problems.append(
                f"Scaling Distance {axis} Value {v:g} (m per pixel) is not a microscope pixel "
                "(probably µm written into the metre field, as pylibCZIrw's write_metadata does)"
            )
        else:
            entry["value"] = v
            px[axis.lower()] = v * 1e9
    return px, raw, problems


def czi_channel_names_from_xml(xml: str, n: int) -> list[str] | None:
    """The ``n`` channel names (``Name``, else ``Id``) from the metadata XML, or ``None``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    chans = root.findall(".//Information/Image/Dimensions/Channels/Channel")
    if len(chans) != n:
        return None
    names = [str(c.get("Name") or c.get("Id") or f"c{i}") for i, c in enumerate(chans)]
    return names if len(set(names)) == n else [f"{i}: {s}" for i, s in enumerate(names)]


def _load_plane(path: str, plane: dict, scene: int | None, roi: tuple[int, int, int, int]):
    from pylibCZIrw import czi as pyczi

    with pyczi.open_czi(path) as czi:
        return czi.read(plane=plane, scene=scene, roi=roi)


def _scene_roi(path: Path, series: Any, scenes: dict, whole, notes: list[str]) -> tuple[int | None, tuple[int, int, int, int]]:
    """The scene to read (``series=``; ``None`` for a file without scenes) and its bounding
    rectangle ``(x, y, w, h)`` in pixels."""
    scene_ids = sorted(scenes)
    if scene_ids:
        si = 0 if series is None else pick_index(path, series, [str(s) for s in scene_ids], "series")
        scene: int | None = scene_ids[si]
        rect = scenes[scene]
        if len(scene_ids) > 1 and series is None:
            notes.append(f"file holds {len(scene_ids)} scenes {scene_ids}; read scene {scene} (series= picks another)")
    else:
        if series not in (None, 0, "0"):
            raise FormatError(f"the CZI has no scenes; series={series!r} cannot be used", path=path, field="series")
        scene, rect = None, whole
    roi = (int(rect.x), int(rect.y), int(rect.w), int(rect.h))
    if roi[2] <= 0 or roi[3] <= 0:
        raise FormatError(f"empty bounding rectangle {roi} (no image subblocks)", path=path, field="X/Y")
    return scene, roi


def _fixed_plane(path: Path, frame: Any, box: dict, notes: list[str]) -> dict[str, int]:
    """Index of every non-spatial dimension (T, R, I, ...): its only value, or ``frame=``."""
    plane0: dict[str, int] = {}
    for d in _OTHER_DIMS:
        if d not in box:
            continue
        lo, hi = int(box[d][0]), int(box[d][1])
        if hi - lo <= 1:
            plane0[d] = lo
            continue
        if frame is None:
            raise FormatError(
                f"the CZI has dimension {d!r} of length {hi - lo} (sizes {box}); pass frame=<index> to pick one",
                path=path,
                field="frame",
            )
        others = [o for o in _OTHER_DIMS if o != d and o in box and box[o][1] - box[o][0] > 1]
        if others:
            raise FormatError(f"several non-spatial dimensions {[d] + others} of length > 1; not supported", path=path)
        fi = pick_index(path, frame, [str(k) for k in range(hi - lo)], "frame")
        plane0[d] = lo + fi
        notes.append(f"frame {fi} of {hi - lo} along {d!r}")
    return plane0


def _pixel_type(path: Path, pixel_types: dict[int, str], n_c: int) -> tuple[str, type]:
    """The one pixel type of the ``n_c`` channels and its numpy dtype."""
    ptypes = {pixel_types.get(c, "Invalid") for c in range(n_c)} or {"Invalid"}
    if len(ptypes) > 1:
        raise FormatError(f"channels have different pixel types {sorted(ptypes)}; not supported", path=path, field="PixelType")
    ptype = ptypes.pop()
    if ptype in _BGR and n_c > 1:
        raise FormatError(f"{n_c} channels of BGR pixel type {ptype}; not supported", path=path, field="PixelType")
    probe_dtype = {"Gray8": np.uint8, "Gray16": np.uint16, "Gray32Float": np.float32, "Bgr24": np.uint8,
                   "Bgr48": np.uint16, "Bgr96Float": np.float32}.get(ptype)
    if probe_dtype is None:
        raise FormatError(f"pixel type {ptype!r} is not supported (Gray8/16/32Float, Bgr24/48/96Float are)", path=path,
                          field="PixelType")
    return ptype, probe_dtype


def read_czi(path, **overrides):
    """Read one scene of a Zeiss CZI file as a light-microscopy Image.

    Parameters
    ----------
    path
        ``.czi`` file.
    **overrides
        ``series=`` (scene index), ``frame=`` (time point or other non-spatial index),
        ``channel=`` (index or name), ``pixel_size_nm=``, ``modality=`` (default ``"lm"``),
        ``name=``.

    Returns
    -------
    xarray.DataArray
        dims a subset of ``(c, z, y, x)``; ``attrs["czi_dims"]`` gives the file's own sizes.
    """
    import dask
    import dask.array as da

    path = Path(path)
    ov = parse_overrides(path, overrides)
    size = file_size(path)
    require_bytes(path, 32, "the CZI file header segment", size)
    with open(path, "rb") as fh:
        if not fh.read(16).startswith(_MAGIC):
            raise FormatError("not a CZI file (no 'ZISRAWFILE' header segment)", path=path)
    pyczi = _import_pylibczirw(path)
    notes: list[str] = []
    try:
        with pyczi.open_czi(str(path)) as czi:
            box = dict(czi.total_bounding_box_no_pyramid)
            scenes = dict(czi.scenes_bounding_rectangle_no_pyramid)
            whole = czi.total_bounding_rectangle_no_pyramid
            xml = czi.raw_metadata
            pixel_types = {int(k): str(v) for k, v in czi.pixel_types.items()}
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"pylibCZIrw cannot read it: {type(exc).__name__}: {exc}", path=path) from exc

    scene, roi = _scene_roi(path, ov.series, scenes, whole, notes)
    n_c = int(box.get("C", (0, 1))[1] - box.get("C", (0, 1))[0])
    n_z = int(box.get("Z", (0, 1))[1] - box.get("Z", (0, 1))[0])
    plane0 = _fixed_plane(path, ov.frame, box, notes)
    c0, z0 = int(box.get("C", (0, 1))[0]), int(box.get("Z", (0, 1))[0])
    ptype, probe_dtype = _pixel_type(path, pixel_types, n_c)
    rgb = ptype in _BGR
    ns = 3 if rgb else 1
    h, w = roi[3], roi[2]
    planes = []
    for c in range(n_c):
        zs = []
        for z in range(n_z):
            plane = {**plane0, "C": c0 + c, "Z": z0 + z}
            arr = da.from_delayed(dask.delayed(guarded_loader(_load_plane, path))(str(path), plane, scene, roi), shape=(h, w, ns),
                                  dtype=probe_dtype)
            zs.append(arr)
        planes.append(da.stack(zs, axis=0))
    data = da.stack(planes, axis=0)  # (c, z, y, x, s)
    if rgb:
        data = data[0, ..., ::-1]  # BGR -> RGB
        data = da.moveaxis(data, -1, 0)  # (c=RGB, z, y, x)
        chans: list[str] | None = ["R", "G", "B"]
        notes.append(f"pixel type {ptype}: BGR samples returned as channels R, G, B")
    else:
        data = data[..., 0]
        chans = czi_channel_names_from_xml(xml, n_c) or [f"c{i}" for i in range(n_c)]
    dims = ["c", "z", "y", "x"]
    if data.shape[1] == 1:
        data = data[:, 0]
        dims.remove("z")
    if data.shape[0] == 1 and ov.channel is None:
        data = data[0]
        dims.remove("c")
        if chans:
            notes.append(f"single channel {chans[0]!r}")
        chans = None
    elif ov.channel is not None:
        ci = pick_index(path, ov.channel, chans, "channel")
        data = data[ci]
        dims.remove("c")
        notes.append(f"channel {chans[ci]!r} selected")
        chans = None

    px, raw, problems = czi_scaling_from_xml(xml, path)
    px = {k: v for k, v in px.items() if k in dims}
    notes.extend(problems)
    missing = [d for d in dims if d in ("z", "y", "x") and d not in px]
    reason = None
    if missing:
        reason = "; ".join(problems) if problems else f"no Scaling Distance for axes {[m.upper() for m in missing]}"
    raw["bounding_rectangle_px"] = {"x": roi[0], "y": roi[1], "w": roi[2], "h": roi[3]}
    return build_image(
        data, path=path, ov=ov, dims=tuple(dims), pixel_size_nm=px or None, default_modality="lm",
        source_format="czi", channel_names=chans, value_unit="counts", notes=notes, raw_calibration=raw,
        uncalibrated_reason=reason,
        attrs={"series": scene if scene is not None else 0, "czi_dims": {k: [int(a), int(b)] for k, (a, b) in box.items()},
               "pixel_type": ptype},
    )


READERS = [
    ReaderSpec(
        name="czi",
        suffixes=(".czi",),
        modality="lm",
        read=read_czi,
        can_open=_can_open,
        priority=10,
        description="Zeiss CZI (pylibCZIrw, optional); Scaling Distance in m -> nm, scenes via series=",
    )
]
