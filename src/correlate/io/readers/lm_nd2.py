"""Nikon ND2 (NIS-Elements) images through the ``nd2`` package (optional dependency).

* ``pip install nd2`` (BSD); without it a ``.nd2`` raises a :class:`FormatError` telling you so.
* ``ND2File.sizes`` names the axes (``T P Z C Y X S``, length-1 axes dropped) in the order of
  ``ND2File.to_dask()``; ``ND2File.voxel_size()`` is **(x, y, z) in µm** (nd2's docstring), taken
  from channel 0's ``volume.axesCalibration``. nd2 returns ``(1, 1, 1)`` when the file has no
  metadata, and ``volume.axesCalibrated`` says whether X/Y/Z were calibrated: an uncalibrated axis
  needs ``pixel_size_nm=``.
* ``C`` becomes ``c`` (names from ``metadata.channels[i].channel.name``); RGB samples ``S``
  become ``c`` = R, G, B (a file with both ``C`` and ``S`` is refused). ``Z`` is kept as ``z`` with
  the Z step as spacing. ``P`` (XY positions of a multi-point run) is chosen with ``series=``;
  ``T`` and other loops need ``frame=``.
* :func:`nd2_layout` is the pure mapping from nd2's metadata to our dims, selection and pixel
  size; it is what the tests check (no real ND2 file was available to test the file-level read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from .._registry import ReaderSpec
from ._image_common import (
    AxisLayout,
    build_image,
    optional_import,
    parse_overrides,
    pick_index,
    read_head,
)

__all__ = ["READERS", "nd2_layout", "read_nd2"]

_NEW_MAGIC = b"\xda\xce\xbe\x0a"  # chunk magic 0x0ABECEDA, little-endian
_OLD_MAGIC = b"\x00\x00\x00\x0cjP  "  # legacy (JPEG 2000 based) ND2
_SPATIAL = {"X": "x", "Y": "y", "Z": "z"}


def _can_open(path: Path, head: bytes) -> bool:
    # the legacy magic is the JPEG 2000 signature box: only claim it for .nd2 files
    return head.startswith(_NEW_MAGIC) or (head.startswith(_OLD_MAGIC) and path.name.lower().endswith(".nd2"))


def nd2_layout(
    sizes: Mapping[str, int],
    voxel_size_um: Sequence[float] | None,
    channel_names: Sequence[str] | None = None,
    *,
    calibrated: Sequence[bool] | None = None,
    position_names: Sequence[str] | None = None,
    series: Any = None,
    frame: Any = None,
    channel: Any = None,
    path: Path | str = "<nd2>",
) -> AxisLayout:
    """Map nd2's ``sizes``, ``voxel_size()`` and channel names onto our Image layout.

    Parameters
    ----------
    sizes
        ``ND2File.sizes``, e.g. ``{"T": 3, "Z": 5, "C": 2, "Y": 512, "X": 512}`` (ordered as the array).
    voxel_size_um
        ``ND2File.voxel_size()``: ``(x, y, z)`` in µm; ``None`` if unknown.
    channel_names
        One name per ``C`` (``metadata.channels[i].channel.name``).
    calibrated
        ``(x, y, z)`` flags (``metadata.channels[0].volume.axesCalibrated``); ``None`` = all calibrated
        if a voxel size is given.
    position_names
        Names of the XY positions (``P``), for ``series=`` by name.
    series, frame, channel
        The user's selections (index or name).
    path
        For error messages.
    """
    lay = AxisLayout()
    axes = list(sizes)
    for a in ("X", "Y"):
        if a not in sizes:
            raise FormatError(f"no {a} axis of length > 1 in sizes {dict(sizes)} (a line scan or a point?)", path=path,
                              field=a)
    if "C" in sizes and "S" in sizes:
        raise FormatError(f"both channels C and RGB samples S in sizes {dict(sizes)}; not supported", path=path,
                          field="S")
    loops = [a for a in axes if a not in ("X", "Y", "Z", "C", "S", "P")]
    long_loops = [a for a in loops if int(sizes[a]) > 1]
    if frame is not None and not long_loops:
        raise FormatError(f"frame={frame!r} given but the file has no time/other loop (sizes {dict(sizes)})", path=path,
                          field="frame")
    if len(long_loops) > 1:
        raise FormatError(f"several non-spatial loops {long_loops} of length > 1; not supported", path=path,
                          field="frame")
    chans: list[str] | None = None
    for a in axes:
        n = int(sizes[a])
        if a in _SPATIAL:
            lay.index.append(slice(None))
            lay.dims.append(_SPATIAL[a])
        elif a in ("C", "S"):
            if a == "S":
                chans = ["R", "G", "B", "A"][:n] if n in (3, 4) else [f"s{i}" for i in range(n)]
                lay.notes.append(f"RGB samples (axis S, {n}) returned as channels {chans}")
            else:
                names = [str(s) for s in (channel_names or [])]
                chans = names if len(names) == n and len(set(names)) == n else [f"c{i}" for i in range(n)]
            if channel is not None:
                ci = pick_index(path, channel, chans, "channel")
                lay.index.append(ci)
                lay.notes.append(f"channel {chans[ci]!r} selected")
                chans = None
            else:
                lay.index.append(slice(None))
                lay.dims.append("c")
        elif a == "P":
            names = [str(s) for s in position_names] if position_names and len(position_names) == n else [
                str(i) for i in range(n)]
            if series is None:
                pi = 0
                lay.notes.append(f"file holds {n} XY positions {names}; read #0 (series= picks another)")
            else:
                pi = pick_index(path, series, names, "series")
                lay.notes.append(f"XY position {pi} ({names[pi]!r}) of {n}")
            lay.index.append(pi)
            lay.raw["position"] = pi
        else:
            if frame is None:
                raise FormatError(
                    f"the ND2 has loop {a!r} of length {n} (sizes {dict(sizes)}); pass frame=<index> to pick one",
                    path=path,
                    field="frame",
                )
            fi = pick_index(path, frame, [str(k) for k in range(n)], "frame")
            lay.index.append(fi)
            lay.notes.append(f"frame {fi} of {n} along {a!r}")
    if series is not None and "P" not in sizes and series not in (0, "0"):
        raise FormatError(f"series={series!r} given but the file has a single XY position", path=path, field="series")
    lay.order = [lay.dims.index(d) for d in ("c", "z", "y", "x") if d in lay.dims]
    lay.channel_names = chans if "c" in lay.dims else None

    lay.raw["sizes"] = {str(k): int(v) for k, v in sizes.items()}
    if voxel_size_um is None:
        lay.uncalibrated_reason = "nd2 reports no voxel size (no metadata)"
        return lay
    vx = [float(v) for v in voxel_size_um]
    if len(vx) != 3:
        raise FormatError(f"voxel_size() gave {voxel_size_um!r}, expected (x, y, z) in µm", path=path,
                          field="voxel_size")
    flags = [True, True, True] if calibrated is None else [bool(f) for f in calibrated]
    lay.raw["voxel_size_um"] = {"x": vx[0], "y": vx[1], "z": vx[2]}
    lay.raw["axes_calibrated"] = None if calibrated is None else {"x": flags[0], "y": flags[1], "z": flags[2]}
    bad = []
    for d, v, ok in zip(("x", "y", "z"), vx, flags):
        if d not in lay.dims:
            continue
        if not ok:
            bad.append(f"axis {d.upper()} is not calibrated (axesCalibrated false)")
        elif not np.isfinite(v) or v <= 0:
            bad.append(f"axis {d.upper()} voxel size {v!r} µm is not a positive length")
        else:
            lay.pixel_size_nm[d] = v * 1e3
    if bad:
        lay.uncalibrated_reason = "; ".join(bad)
        lay.notes.extend(bad)
    return lay


def _import_nd2(path: Path):
    return optional_import("nd2", path, what="Nikon ND2", package="nd2", extra="nd2")


def read_nd2(path, **overrides):
    """Read a Nikon ND2 file as a light-microscopy Image.

    Parameters
    ----------
    path
        ``.nd2`` file.
    **overrides
        ``series=`` (XY position, index or name), ``frame=`` (time point / other loop index),
        ``channel=`` (index or name), ``pixel_size_nm=``, ``modality=`` (default ``"lm"``), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims a subset of ``(c, z, y, x)``; ``attrs["nd2_sizes"]`` gives the file's own axes.

    Notes
    -----
    Not tested on a real ND2 file (none was available); the metadata mapping
    (:func:`nd2_layout`) is tested on its own.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size, head = read_head(path, 16, 16, "an ND2 header")
    if not _can_open(path, head):
        raise FormatError("not an ND2 file (no ND2 chunk or JPEG 2000 magic)", path=path)
    nd2 = _import_nd2(path)
    try:
        f = nd2.ND2File(str(path))
    except Exception as exc:
        raise FormatError(f"nd2 cannot open it: {type(exc).__name__}: {exc}", path=path) from exc
    try:
        sizes = dict(f.sizes)
        meta = f.metadata
        chs = getattr(meta, "channels", None) or []
        names = [str(getattr(getattr(c, "channel", None), "name", "") or "") for c in chs]
        calibrated = None
        voxel = None
        if chs:
            voxel = tuple(f.voxel_size())
            vol = getattr(chs[0], "volume", None)
            cal = getattr(vol, "axesCalibrated", None)
            if cal is not None and len(cal) == 3:
                calibrated = tuple(bool(c) for c in cal)
        # names of the XY points (a private nd2 helper; fall back to indices if it changes)
        pos_fn = getattr(f, "_position_names", None)
        pos = pos_fn() if ("P" in sizes and callable(pos_fn)) else None
        # plain dask array: each chunk reopens the (closed) file itself, see ND2File._dask_block
        data = f.to_dask(wrapper=False)
    except Exception as exc:
        raise FormatError(f"nd2 cannot read its metadata: {type(exc).__name__}: {exc}", path=path) from exc
    finally:
        f.close()
    if data.ndim != len(sizes):
        raise FormatError(f"array has {data.ndim} axes but sizes {sizes} has {len(sizes)}", path=path, field="sizes")
    lay = nd2_layout(sizes, voxel, names, calibrated=calibrated, position_names=pos, series=ov.series,
                     frame=ov.frame, channel=ov.channel, path=path)
    data = data[tuple(lay.index)].transpose(lay.order)
    return build_image(
        data, path=path, ov=ov, dims=lay.out_dims, pixel_size_nm=lay.pixel_size_nm or None, default_modality="lm",
        source_format="nd2", channel_names=lay.channel_names, value_unit="counts", notes=lay.notes,
        raw_calibration=lay.raw, uncalibrated_reason=lay.uncalibrated_reason,
        attrs={"nd2_sizes": sizes, "series": lay.raw.get("position", 0)},
    )


READERS = [
    ReaderSpec(
        name="nd2",
        suffixes=(".nd2",),
        modality="lm",
        read=read_nd2,
        can_open=_can_open,
        priority=10,
        description="Nikon ND2 (nd2, optional); voxel_size() µm -> nm, XY positions via series=",
    )
]
