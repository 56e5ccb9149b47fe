"""JPK AFM images (``.jpk``, ``.jpk-qi-image``): a TIFF container, parsed with tifffile.

* Page 0 is a thumbnail carrying the scan grid: ``Grid-uLength``/``Grid-vLength`` (tags
  32834/32835, metres) over ``Grid-iLength``/``Grid-jLength`` (32838/32839, pixels) give the x/y
  pixel size (non-square allowed).
* Pages 1.. are channels: name (tag 32848), retrace flag (32849; 1 = retrace), so channels are
  called ``height_trace``, ``height_retrace``, ``phase_trace``... (default ``height_trace``,
  AFMReader's and TopoStats' default; ``channel=`` picks another).
* Calibration slots: the default slot (tag 32897, e.g. ``calibrated``) has an encoder with a unit,
  a multiplier and an offset: ``value = raw * multiplier + offset``. Encoders are not chained
  through parent slots. Lengths are converted to nm; other units (V, °) are kept as they are.
* Orientation: flipped up-down, as AFMReader does (JPK writes the first scan line at the bottom;
  page 0 tag 32843 says 'bottomUp'). The grid angle (32836) is recorded, not applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FormatError, UnitError
from ._afm_header import afm_reader, build_afm_image, choose_channel, scan_pixel_size, values_in_nm
from ._image_common import check_tiff_complete, file_size, parse_overrides

__all__ = ["read_jpk", "READERS", "jpk_channels"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_SLOT_BASE, _SLOT_STRIDE = 32912, 48


def _can_open(path: Path, head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def _tagdict(page) -> dict:
    return {t.code: t.value for t in page.tags.values()}


def jpk_channels(tags_per_page: list[dict]) -> list[str]:
    """Channel names (``<name>_trace`` / ``<name>_retrace``) of pages 1.. (page 0 is the thumbnail)."""
    names = []
    for t in tags_per_page[1:]:
        base = str(t.get(32848, "unknown"))
        names.append(f"{base}_{'retrace' if int(t.get(32849, 0) or 0) else 'trace'}")
    return names


def _scaling(path: Path, t: dict, channel: str):
    """(multiplier, offset, unit, slot name) of the page's default slot."""
    default = t.get(32897)
    nslots = int(t.get(32896, 0) or 0)
    for i in range(nslots):
        base = _SLOT_BASE + _SLOT_STRIDE * i
        if t.get(base) == default:
            enc = base + 16
            kind = t.get(enc + 3)
            if kind == "NullScaling" or kind is None:
                return 1.0, 0.0, "", str(default)
            if kind != "LinearScaling":
                raise FormatError(f"channel {channel!r}: unsupported JPK scaling {kind!r} in slot {default!r}", path=path)
            try:
                return float(t[enc + 4]), float(t[enc + 5]), str(t.get(enc + 2, "")), str(default)
            except KeyError as exc:
                raise FormatError(
                    f"channel {channel!r}: slot {default!r} lacks its multiplier/offset tags", path=path, field="JPK encoder"
                ) from exc
            except (TypeError, ValueError):
                raise FormatError(
                    f"channel {channel!r}: slot {str(default)[:40]!r} multiplier/offset tags are not numbers",
                    path=path, field="JPK encoder",
                ) from None
    raise FormatError(f"channel {channel!r}: default slot {default!r} not found among {nslots} slots", path=path, field="JPK slots")


def read_jpk(path, **overrides):
    """Read one channel of a JPK ``.jpk`` image as an AFM Image (heights in nm).

    Parameters
    ----------
    path
        ``.jpk`` or ``.jpk-qi-image`` file.
    **overrides
        ``channel=`` (name such as ``"height_trace"`` or page index among channels; default
        ``height_trace``), ``pixel_size_nm=``, ``modality=`` (default ``"afm"``), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)``, float64 values in nm for length channels (``attrs["value_unit"]``).
    """
    import tifffile

    path = Path(path)
    ov = parse_overrides(path, overrides)
    file_size(path)
    try:
        with tifffile.TiffFile(path) as tif:
            check_tiff_complete(path, tif)
            pages = list(tif.pages)
            tags = [_tagdict(p) for p in pages]
            channels = jpk_channels(tags)
            if not channels:
                raise FormatError("JPK file without channel pages", path=path)
            ci = choose_channel(path, ov.channel, channels, "height_trace")
            page = pages[ci + 1]
            raw = page.asarray()
    except (FormatError, UnitError):
        raise
    except Exception as exc:
        raise FormatError(f"not a readable JPK TIFF container: {type(exc).__name__}: {exc}", path=path) from exc
    g = tags[0]
    notes = []
    channel = channels[ci]
    if ov.channel is None and channel != "height_trace":
        notes.append(f"no height_trace channel; read {channel!r} (channels: {channels})")
    mult, off, unit, slot = _scaling(path, tags[ci + 1], channel)
    values, value_unit = values_in_nm(raw.astype(np.float64) * mult + off, unit, path=path, field=f"{channel} unit")
    values = np.flipud(values)
    notes.append(f"flipped up-down as AFMReader does (page-0 scan direction tag 32843 = {tags[0].get(32843)!r})")
    rows, cols = values.shape
    ulen, vlen = g.get(32834), g.get(32835)
    ilen, jlen = g.get(32838), g.get(32839)
    px = None
    why = None
    grid = {"uLength_m": ulen, "vLength_m": vlen, "iLength": ilen, "jLength": jlen, "angle_rad": g.get(32836), "origin_x_m": g.get(32832), "origin_y_m": g.get(32833), "tag32843": g.get(32843)}
    if isinstance(ulen, float) and isinstance(vlen, float) and ilen and jlen:
        if (int(jlen), int(ilen)) != (rows, cols):
            notes.append(f"grid {jlen}x{ilen} differs from the page shape {rows}x{cols}; page shape used")
        px = scan_pixel_size(vlen, ulen, rows, cols, 1e9)
    else:
        why = "no scan grid (Grid-uLength/vLength/iLength/jLength) in page 0"
    raw_cal = {"grid": grid, "slot": slot, "multiplier": mult, "offset": off, "unit": unit, "channels": channels}
    return build_afm_image(
        values, path=path, ov=ov, source_format="jpk", pixel_size_nm=px, value_unit=value_unit, channel=channel,
        notes=notes, raw_calibration=raw_cal, uncalibrated_reason=why,
    )


READERS = [
    afm_reader(
        "jpk", (".jpk", ".jpk-qi-image"), read_jpk, _can_open,
        "JPK AFM image (TIFF container; default calibration slot, heights in nm)",
    )
]
