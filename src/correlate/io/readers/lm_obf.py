"""Abberior Imspector OBF / MSR images through ``msr-reader`` (optional dependency).

* ``pip install msr-reader`` (MIT, numpy only); without it an ``.obf``/``.msr`` raises a
  :class:`FormatError` telling you so.
* An OBF/MSR file is a chain of named **stacks** (one per detector channel, plus helper stacks):
  ``series=`` picks one by index or name; the default is the first stack with at least two
  spatial axes longer than one pixel (noted). Channels stored as separate stacks are **not** merged.
* Each stack header gives per axis (Fortran order, x first): the number of pixels ``size``, the
  physical ``length`` of the whole axis and its ``offset``; the pixel size is ``length / size``
  (as msr-reader's ``pixel_sizes``). Stack footers (version >= 2) give each axis an SI unit: an
  axis with metre exponent 1 is spatial and its lengths are taken in metres (→ nm); the unit's
  scale factor is recorded but not applied (msr-reader ignores it too). Older stacks carry no unit:
  the first three axes are taken as x, y, z in metres (noted).
* Axis labels (``"ExpControl X"``...) decide x / y / z where they end in X, Y or Z; otherwise the
  order x, y, z of the spatial axes is assumed (noted). A non-spatial axis longer than one
  (time, ...) needs ``frame=``.
* :func:`obf_layout` is the pure mapping from the stack header/footer to our Image; it is what the
  tests check on stub metadata and on small files the tests write from the documented layout
  (no real Imspector file was available).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from .._registry import ReaderSpec
from ._lazy import guarded_loader
from ._image_common import (
    AxisLayout,
    build_image,
    optional_import,
    parse_overrides,
    pick_index,
    read_head,
    require_bytes,
)

__all__ = ["READERS", "obf_layout", "read_obf"]

_MAGIC = b"OMAS_BF\n\xff\xff"


def _can_open(path: Path, head: bytes) -> bool:
    # OBF files and the OBF part of MSR files start with the magic (msr-reader requires it at byte 0)
    return head.startswith(_MAGIC)


def _label_axis(label: str) -> str | None:
    m = re.search(r"(?:^|[\s_:.-])([XYZ])$", label.strip(), re.IGNORECASE)
    return m.group(1).lower() if m else None


def obf_layout(
    size: Sequence[int],
    lengths: Sequence[float],
    offsets: Sequence[float],
    labels: Sequence[str] | None = None,
    metre_exponents: Sequence[float | None] | None = None,
    scale_factors: Sequence[float | None] | None = None,
    *,
    samples_per_pixel: int = 1,
    frame: Any = None,
    channel: Any = None,
    path: Path | str = "<obf>",
) -> AxisLayout:
    """Map one OBF stack's header/footer onto our Image layout.

    Parameters
    ----------
    size, lengths, offsets
        Stack header fields, **Fortran order** (x first): pixels, physical length of the whole axis
        and offset, in the axis' SI unit.
    labels
        Footer dimension labels (``"ExpControl X"``...), same order; ``None`` if absent.
    metre_exponents
        Per axis, the metre exponent of the footer's SI unit (``None`` when the stack version has
        no units).
    scale_factors
        Per axis, the SI unit's scale factor (recorded only).
    samples_per_pixel
        3 or 4 for RGB(A) stacks (an extra last array axis).
    frame, channel
        The user's selections.
    path
        For error messages.
    """
    lay = AxisLayout()
    n = len(size)
    if not (len(lengths) == len(offsets) == n):
        raise FormatError(f"stack header has {n} sizes, {len(lengths)} lengths, {len(offsets)} offsets", path=path,
                          field="length")
    labels = list(labels) if labels is not None and len(labels) == n else [""] * n
    exps = list(metre_exponents) if metre_exponents is not None and len(metre_exponents) == n else [None] * n
    scales = list(scale_factors) if scale_factors is not None and len(scale_factors) == n else [None] * n
    names: list[str | None] = [None] * n
    spatial_f = []
    for i in range(n):
        if exps[i] is None:
            if i < 3 and not (labels[i].strip() and _label_axis(labels[i]) is None):
                spatial_f.append(i)
        elif float(exps[i]) == 1.0:
            spatial_f.append(i)
    if any(e is None for e in exps[: min(n, 3)]):
        lay.notes.append("stack has no SI units (footer version < 2): its first axes are taken as x, y, z in metres")
    by_label = {i: _label_axis(labels[i]) for i in spatial_f}
    used: set[str] = set()
    for i in spatial_f:
        a = by_label[i]
        if a and a not in used:
            names[i] = a
            used.add(a)
    free = [a for a in ("x", "y", "z") if a not in used]
    guessed = []
    for i in spatial_f:
        if names[i] is None and free:
            names[i] = free.pop(0)
            guessed.append(f"{labels[i] or f'axis {i}'} -> {names[i]}")
    if guessed:
        lay.notes.append("spatial axes named by position (x, y, z order): " + ", ".join(guessed))
    long_other = [i for i in range(n) if names[i] is None and int(size[i]) > 1]
    if len(long_other) > 1:
        raise FormatError(f"several non-spatial axes {[labels[i] or i for i in long_other]} longer than 1; not supported",
                          path=path, field="frame")
    if frame is not None and not long_other:
        raise FormatError(f"frame={frame!r} given but the stack has no non-spatial axis (sizes {list(size)})", path=path,
                          field="frame")
    for a in ("x", "y"):
        if a not in names or int(size[names.index(a)]) < 2:
            raise FormatError(f"stack has no spatial {a} axis longer than one pixel (sizes {list(size)}, labels {labels})",
                              path=path, field="size")
    # C order: reversed Fortran order, then the sample axis
    for i in reversed(range(n)):
        nm_ = names[i]
        ni = int(size[i])
        if nm_ is not None:
            if nm_ == "z" and ni == 1:
                lay.index.append(0)
                continue
            lay.index.append(slice(None))
            lay.dims.append(nm_)
            step = float(lengths[i]) / ni
            lay.raw[nm_] = {"label": labels[i], "size": ni, "length": float(lengths[i]), "offset": float(offsets[i]),
                            "si_metre_exponent": exps[i], "si_scale_factor": scales[i]}
            if np.isfinite(step) and step > 0:
                lay.pixel_size_nm[nm_] = step * 1e9
                lay.origin_nm[nm_] = float(offsets[i]) * 1e9 + step * 1e9 / 2
            else:
                msg = f"axis {labels[i] or nm_!r}: length {lengths[i]!r} over {ni} pixels is not a positive pixel size"
                lay.notes.append(msg)
                lay.uncalibrated_reason = msg
        elif ni == 1:
            lay.index.append(0)
        else:
            if frame is None:
                raise FormatError(
                    f"stack has non-spatial axis {labels[i] or i!r} of length {ni}; pass frame=<index> to pick one",
                    path=path, field="frame")
            fi = pick_index(path, frame, [str(k) for k in range(ni)], "frame")
            lay.index.append(fi)
            lay.notes.append(f"frame {fi} of {ni} along {labels[i] or f'axis {i}'!r}")
    if lay.origin_nm:
        lay.notes.append("origin = stack offset (pixel edge) + half a pixel")
    if samples_per_pixel > 1:
        chans = ["R", "G", "B", "A"][:samples_per_pixel]
        if channel is not None:
            ci = pick_index(path, channel, chans, "channel")
            lay.index.append(ci)
            lay.notes.append(f"channel {chans[ci]!r} selected")
        else:
            lay.index.append(slice(None))
            lay.dims.append("c")
            lay.channel_names = chans
    elif channel is not None and channel not in (0, "0"):
        raise FormatError("an OBF stack holds one channel; channels are separate stacks, pick one with series=",
                          path=path, field="channel")
    lay.order = [lay.dims.index(d) for d in ("c", "z", "y", "x") if d in lay.dims]
    return lay


def _import_msr(path: Path):
    return optional_import("msr_reader", path, what="Abberior OBF/MSR", package="msr-reader", extra="obf")


def _load(path: str, index: int, shape: tuple[int, ...], dtype):
    from msr_reader import OBFFile

    with OBFFile(path) as f:
        return np.asarray(f.read_stack(index), dtype=dtype).reshape(shape)


def _stack_info(f, k: int) -> dict:
    from msr_reader.obffile import _parse_dtype

    h = f.stack_headers[k]
    foot = f.stack_footers[k]
    dtype, spp = _parse_dtype(h.dtype)
    si = foot.si_dimensions
    exps = scales = None
    if si is not None:
        exps = [u.meters.numerator / u.meters.denominator if u.meters.denominator else None for u in si[: len(h.size)]]
        scales = [float(u.scale_factor) for u in si[: len(h.size)]]
    return {"name": h.name, "size": list(h.size), "length": list(h.length), "offset": list(h.offset),
            "labels": list(foot.dimension_labels), "exps": exps, "scales": scales, "dtype": np.dtype(dtype),
            "spp": int(spp), "version": int(h.stack_version), "end": int(h.data_position) + int(h.data_length)}


def read_obf(path, **overrides):
    """Read one stack of an Abberior Imspector ``.obf`` / ``.msr`` file as a light-microscopy Image.

    Parameters
    ----------
    path
        ``.obf`` or ``.msr`` file.
    **overrides
        ``series=`` (stack index or name), ``frame=`` (index along a non-spatial axis),
        ``channel=`` (RGB stacks only), ``pixel_size_nm=``, ``modality=`` (default ``"lm"``;
        ``"sted"`` for STED data), ``name=``.

    Notes
    -----
    Not tested on a file written by Imspector (none was available).
    """
    import dask
    import dask.array as da

    path = Path(path)
    ov = parse_overrides(path, overrides)
    size, head = read_head(path, 4096, 26, "the OBF file header")
    if not _can_open(path, head):
        raise FormatError("not an OBF/MSR file (no 'OMAS_BF' magic)", path=path)
    msr_reader = _import_msr(path)
    try:
        with msr_reader.OBFFile(str(path)) as f:
            infos = [_stack_info(f, k) for k in range(f.num_stacks)]
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"msr-reader cannot read it (truncated or damaged?): {type(exc).__name__}: {exc}",
                          path=path) from exc
    if not infos:
        raise FormatError("the file holds no stack", path=path)
    names = [s["name"] for s in infos]
    notes: list[str] = []
    if ov.series is None:
        good = [k for k, s in enumerate(infos) if sum(int(v) > 1 for v in s["size"][:3]) >= 2]
        si = good[0] if good else 0
        if len(infos) > 1:
            notes.append(f"file holds {len(infos)} stacks {names}; read #{si} {names[si]!r} (series= picks another)")
    else:
        si = pick_index(path, ov.series, names, "series")
    s = infos[si]
    require_bytes(path, s["end"], f"stack {s['name']!r} data", size)
    lay = obf_layout(s["size"], s["length"], s["offset"], s["labels"], s["exps"], s["scales"],
                     samples_per_pixel=s["spp"], frame=ov.frame, channel=ov.channel, path=path)
    shape = tuple(int(v) for v in reversed(s["size"])) + ((s["spp"],) if s["spp"] > 1 else ())
    data = da.from_delayed(dask.delayed(guarded_loader(_load, path))(str(path), si, shape, s["dtype"]), shape=shape, dtype=s["dtype"])
    data = data[tuple(lay.index)].transpose(lay.order)
    return build_image(
        data, path=path, ov=ov, dims=lay.out_dims, pixel_size_nm=lay.pixel_size_nm or None, default_modality="lm",
        source_format="obf", origin_nm=lay.origin_nm or None, channel_names=lay.channel_names, value_unit="counts",
        notes=notes + lay.notes, raw_calibration=lay.raw, uncalibrated_reason=lay.uncalibrated_reason,
        attrs={"series": si, "series_name": names[si], "obf_stack_version": s["version"]},
    )


READERS = [
    ReaderSpec(
        name="obf",
        suffixes=(".obf", ".msr"),
        modality="lm",
        read=read_obf,
        can_open=_can_open,
        priority=10,
        description="Abberior Imspector OBF/MSR (msr-reader, optional); stack length/size in m -> nm, stacks via series=",
    )
]
