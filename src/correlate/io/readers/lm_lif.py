"""Leica LIF (LAS X / LAS AF) images through liffile.

* A LIF holds several images: ``series=`` picks one by index or name (default: the first).
* liffile coordinates are in metres for X/Y/Z: pixel size = coordinate step, origin = first
  coordinate, both converted to nm. A negative step (a flipped scan) is made positive by flipping
  the data, noted in ``attrs["notes"]``.
* ``C`` (channels) and the spectral axes ``λ`` (emission) and ``Λ`` (excitation) are **not
  spatial**: they become the ``c`` dim, with the wavelength in the channel names
  (``"λ 550 nm"``). ``T``, mosaic ``M`` and other axes of length > 1 need ``frame=``.
* The pixels are read on first compute (one dask.delayed task); with ``frame=`` or ``channel=``
  only the selected frames are read (``LifImage.frame``), not the whole image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FormatError
from .._registry import ReaderSpec
from ._lazy import guarded_loader
from ._image_common import build_image, file_size, parse_overrides, pick_index, require_bytes

__all__ = ["read_lif", "READERS"]

_SPECTRAL = {"λ": "λ", "Λ": "Λ"}


def _can_open(path: Path, head: bytes) -> bool:
    # LIF: int32 0x70 test value, then the XML header in UTF-16
    return len(head) >= 8 and head[:4] == b"\x70\x00\x00\x00"


def _load(path: str, index: int, fixed: dict[str, int] | None = None) -> np.ndarray:
    """Pixels of image ``index``, with the axes in ``fixed`` (name -> index) already selected.

    A selection is read frame by frame (``LifImage.frame``), so picking one time point or tile
    does not read the whole image.
    """
    import itertools

    import liffile

    try:
        with liffile.LifFile(path) as lif:
            im = lif.images[index]
            if not fixed:
                return im.asarray()
            dims = tuple(im.dims)
            fdims = tuple(im.frames.frame_sizes)
            lead = len(dims) - len(fdims)
            if not fdims or dims[lead:] != fdims or any(d in fdims for d in fixed):
                # unusual memory layout: read everything, then select
                return im.asarray()[tuple(fixed.get(d, slice(None)) for d in dims)]
            rest = [d for d in dims[:lead] if d not in fixed]
            sizes = [int(im.sizes[d]) for d in rest]
            out = np.empty(tuple(sizes) + tuple(int(im.sizes[d]) for d in fdims), im.dtype)
            for idx in itertools.product(*(range(n) for n in sizes)):
                out[idx] = im.frame(**fixed, **dict(zip(rest, idx)))
            return out
    except Exception as exc:  # liffile raises many kinds on damaged files
        raise FormatError(f"liffile cannot read image {index}: {type(exc).__name__}: {exc}", path=path) from exc


def read_lif(path, **overrides):
    """Read one image of a Leica LIF file as a light-microscopy Image.

    Parameters
    ----------
    path
        ``.lif`` file.
    **overrides
        ``series=`` (image index or name), ``frame=`` (time point / tile), ``channel=`` (index or
        name along ``c``), ``pixel_size_nm=``, ``modality=`` (default ``"lm"``), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims a subset of ``(c, z, y, x)``; ``attrs["lif_dims"]`` gives the file's own axes.
    """
    import dask
    import dask.array as da
    import liffile

    path = Path(path)
    ov = parse_overrides(path, overrides)
    size = file_size(path)
    require_bytes(path, 64, "a LIF header", size)
    notes: list[str] = []
    try:
        with liffile.LifFile(path) as lif:
            images = list(lif.images)
            if not images:
                raise FormatError("the LIF file holds no image", path=path)
            names = [im.name for im in images]
            si = 0 if ov.series is None else pick_index(path, ov.series, names, "series")
            im = images[si]
            dims = tuple(im.dims)
            shape = tuple(im.shape)
            dtype = im.dtype
            coords = {k: np.asarray(v) for k, v in im.coords.items()}
            mb = im.memory_block
            block_end = int(mb.offset) + int(mb.size) if mb is not None else 0
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"liffile cannot read it: {type(exc).__name__}: {exc}", path=path) from exc
    require_bytes(path, block_end, f"image {names[si]!r} memory block", size)
    if len(images) > 1 and ov.series is None:
        notes.append(f"file holds {len(images)} images {names}; read #0 {names[0]!r} (series= picks another)")
    sel: list = [slice(None)] * len(dims)
    keep: list[str] = []
    cdim = None
    for i, d in enumerate(dims):
        n = shape[i]
        if d in ("X", "Y"):
            keep.append(d.lower())
        elif d == "Z":
            if n > 1:
                keep.append("z")
            else:
                sel[i] = 0
        elif d in ("C", "S") or d in _SPECTRAL:
            if n == 1:
                sel[i] = 0
            elif cdim is not None:
                raise FormatError(f"two channel-like axes {cdim!r} and {d!r} in {dims}; not supported", path=path)
            else:
                cdim = d
                keep.append("c")
        else:
            if n == 1:
                sel[i] = 0
            elif ov.frame is None:
                raise FormatError(
                    f"image {names[si]!r} has axis {d!r} of length {n} (dims {dims}); pass frame=<index> to pick one",
                    path=path,
                    field="frame",
                )
            else:
                fi = pick_index(path, ov.frame, [str(k) for k in range(n)], "frame")
                sel[i] = fi
                notes.append(f"frame {fi} of {n} along {d!r}")
    raw: dict = {}
    chans = None
    if cdim is not None:
        n = shape[dims.index(cdim)]
        c = coords.get(cdim)
        if cdim in _SPECTRAL and c is not None and len(c) == n:
            kind = "emission" if cdim == "λ" else "excitation"
            chans = [f"{cdim} {v * 1e9:.4g} nm" for v in c]
            notes.append(f"axis {cdim!r} is a spectral ({kind} wavelength) axis, kept as channels, not space")
            raw[cdim] = {"first_m": float(c[0]), "step_m": float(c[1] - c[0]) if n > 1 else None, "n": n}
        else:
            chans = [f"c{i}" for i in range(n)]
        if ov.channel is not None:
            ci = pick_index(path, ov.channel, chans, "channel")
            sel[dims.index(cdim)] = ci
            keep.remove("c")
            notes.append(f"channel {chans[ci]!r} selected")
            chans = None
    # the axes picked by an index (length-1 axes, frame=, channel=) are selected while reading
    fixed = {d: int(v) for d, v in zip(dims, sel) if not isinstance(v, slice)}
    kept_shape = tuple(n for n, v in zip(shape, sel) if isinstance(v, slice))
    data = da.from_delayed(dask.delayed(guarded_loader(_load, path))(str(path), si, fixed), shape=kept_shape, dtype=dtype)
    order = [keep.index(a) for a in ("c", "z", "y", "x") if a in keep]
    data = data.transpose(order)
    out_dims = tuple(a for a in ("c", "z", "y", "x") if a in keep)

    px: dict = {}
    origin: dict = {}
    for d in ("Z", "Y", "X"):
        if d.lower() not in out_dims:
            continue
        c = coords.get(d)
        if c is None or c.size < 2:
            raise FormatError(f"no coordinates for axis {d}", path=path, field=d)
        step = float(c[1] - c[0])
        raw[d] = {"first_m": float(c[0]), "step_m": step, "n": int(c.size)}
        if step < 0:
            data = da.flip(data, axis=out_dims.index(d.lower()))
            notes.append(f"axis {d}: negative coordinate step {step:g} m; data flipped so that it increases")
            origin[d.lower()] = float(c[-1]) * 1e9
            step = -step
        else:
            origin[d.lower()] = float(c[0]) * 1e9
        px[d.lower()] = step * 1e9
    # origin ~1e-20 m round-off noise from Leica
    origin = {k: (0.0 if abs(v) < 1e-6 else v) for k, v in origin.items()}
    return build_image(
        data, path=path, ov=ov, dims=out_dims, pixel_size_nm=px, default_modality="lm", source_format="lif",
        origin_nm=origin, channel_names=chans, value_unit="counts", notes=notes, raw_calibration=raw,
        attrs={"series": si, "series_name": names[si], "lif_dims": "".join(dims)},
    )


READERS = [
    ReaderSpec(
        name="lif",
        suffixes=(".lif",),
        modality="lm",
        read=read_lif,
        can_open=_can_open,
        priority=10,
        description="Leica LIF (liffile); spectral λ/Λ axes kept as channels",
    )
]
