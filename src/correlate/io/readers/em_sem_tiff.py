"""SEM TIFFs from FEI/Thermo Fisher and Zeiss, calibrated from their private tags (tifffile).

FEI / Thermo (tag 34682 ``FEI_HELIOS`` or 34680 ``FEI_SFEG``)
    Pixel size ``Scan.PixelWidth`` / ``Scan.PixelHeight`` in **metres**; navigation-camera images
    without a ``Scan`` section fall back to ``IRBeam.HFW`` (or ``EBeam.HFW``) / ``Image.ResolutionX``.
    The databar is stored as extra rows below the image: rows beyond ``Image.ResolutionY`` are
    cropped and the count is cross-checked against ``PrivateFei.DatabarHeight``.
Zeiss SmartSEM (tag 34118 ``CZ_SEM``)
    Pixel size at full precision: ``CZ_SEM[''][3] * 1024 / ncols`` (metres) cross-checked with
    ``ap_width / ncols``. ``ap_image_pixel_size`` is a 4-digit display value (2615 nm for
    2614.51 nm): it is used only where it disagrees with both by more than its rounding. ``ap_pixel_size`` is **not** used: it refers to a
    1024-px-wide store and is wrong for other widths. The data zone is burned into the image, so it
    is found from intensity: the first row in the lower half with >= 95 % of pixels <= 10 (a black
    rule) followed by a bright row (mean > 200); rows from there down are cropped. Palette
    (Photometric 3) images keep their stored indices.

``attrs["databar_rows_cropped"]`` records how many rows were removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FormatError
from ...units import to_nm_factor
from .._registry import ReaderSpec
from ._image_common import build_image, check_tiff_complete, file_size, parse_overrides, tiff_series_dask, to_py

__all__ = ["read_sem_tiff", "READERS", "detect_zeiss_data_zone"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_FEI_TAGS = (34680, 34682)
_ZEISS_TAG = 34118


def _first_page_tags(path: Path) -> set[int]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return {t.code for t in tif.pages.first.tags.values()}
    except Exception:
        return set()


def _can_open(path: Path, head: bytes) -> bool:
    if head[:4] not in _TIFF_MAGIC:
        return False
    codes = _first_page_tags(path)
    return bool(codes & ({*_FEI_TAGS, _ZEISS_TAG}))


def detect_zeiss_data_zone(plane: np.ndarray, dark: float = 10, dark_fraction: float = 0.95, bright_mean: float = 200) -> int | None:
    """Row index where a Zeiss data zone starts, or ``None``.

    The zone begins with a full-width black rule (>= ``dark_fraction`` of pixels <= ``dark``)
    followed by a bright row (mean > ``bright_mean``); only the lower half is searched.
    Vectorised over rows.
    """
    p = np.asarray(plane)
    h = p.shape[0]
    if h < 4:
        return None
    frac_dark = (p <= dark).mean(axis=1)
    means = p.mean(axis=1)
    rows = np.arange(h // 2, h - 1)
    hit = rows[(frac_dark[rows] >= dark_fraction) & (means[rows + 1] > bright_mean)]
    return int(hit[0]) if hit.size else None


def _fei_calibration(path: Path, meta: dict, ncols: int, notes: list[str]):
    raw: dict = {}
    scan = meta.get("Scan") or {}
    if not isinstance(scan, dict):
        raise FormatError("the FEI metadata section [Scan] is not a key = value section", path=path, field="Scan")
    pw, ph = scan.get("PixelWidth"), scan.get("PixelHeight")
    raw.update({"Scan.PixelWidth_m": pw, "Scan.PixelHeight_m": ph, "Scan.HorFieldsize_m": scan.get("HorFieldsize")})
    if isinstance(pw, (int, float)) and pw > 0:
        if not (isinstance(ph, (int, float)) and ph > 0):
            ph = pw
            notes.append("Scan.PixelHeight missing: square pixels assumed")
        return {"y": float(ph) * 1e9, "x": float(pw) * 1e9}, raw, None
    for sec in ("IRBeam", "EBeam", "Beam"):
        hfw = (meta.get(sec) or {}).get("HFW")
        resx = (meta.get("Image") or {}).get("ResolutionX") or ncols
        if isinstance(hfw, (int, float)) and hfw > 0:
            raw[f"{sec}.HFW_m"] = hfw
            px = float(hfw) / float(resx) * 1e9
            notes.append(f"no Scan.PixelWidth: pixel size = {sec}.HFW / ResolutionX ({resx}), square pixels assumed")
            return {"y": px, "x": px}, raw, None
    return None, raw, "FEI metadata has neither Scan.PixelWidth nor a beam HFW"


def _zeiss_value(meta: dict, key: str):
    v = meta.get(key)
    if isinstance(v, tuple) and len(v) >= 3 and isinstance(v[1], (int, float)):
        return float(v[1]), str(v[2])
    return None


def _zeiss_calibration(path: Path, meta: dict, ncols: int, notes: list[str]):
    raw: dict = {}
    for k in ("ap_image_pixel_size", "ap_pixel_size", "ap_width", "ap_height"):
        v = _zeiss_value(meta, k)
        raw[k] = None if v is None else list(v)
    cz = meta.get("")
    cz3 = float(cz[3]) if isinstance(cz, tuple) and len(cz) > 3 and isinstance(cz[3], (int, float)) else None
    raw["CZ_SEM[''][3]_m"] = cz3
    px = None
    from_cz = cz3 * 1e9 * 1024 / ncols if cz3 is not None and cz3 > 0 else None
    w = _zeiss_value(meta, "ap_width")
    from_width = w[0] * to_nm_factor(w[1], path=path, field="ap_width") / ncols if w is not None and w[0] > 0 else None
    v = _zeiss_value(meta, "ap_image_pixel_size")
    if v is not None and v[0] > 0:
        shown = v[0] * to_nm_factor(v[1], path=path, field="ap_image_pixel_size")
        full = from_cz if from_cz is not None else from_width
        if full is not None and abs(full - shown) <= 1e-3 * shown:
            # ap_image_pixel_size is a 4-digit display value; the same size at full precision
            px, src = full, ("CZ_SEM[''][3] x 1024 / ncols" if full is from_cz else "ap_width / ncols") + (
                f" (ap_image_pixel_size {shown:g} nm is its rounded display value)")
        else:
            px, src = shown, "ap_image_pixel_size"
    elif from_cz is not None and from_width is not None:
        rel = abs(from_cz - from_width) / from_width
        if rel <= 0.01:
            px, src = from_cz, f"CZ_SEM[''][3] x 1024 / {ncols} columns (agrees with ap_width / ncols within {rel:.2%})"
        else:
            px, src = from_width, f"ap_width / {ncols} columns (CZ_SEM[''][3] x 1024/ncols = {from_cz:.6g} nm disagrees by {rel:.1%})"
    elif from_width is not None:
        px, src = from_width, f"ap_width / {ncols} columns"
    elif from_cz is not None:
        px, src = from_cz, f"CZ_SEM[''][3] x 1024 / {ncols} columns"
    if px is None:
        return None, raw, "Zeiss metadata has no ap_image_pixel_size, ap_width or CZ_SEM pixel size"
    notes.append(f"pixel size from {src}; ap_pixel_size is not used (wrong for stores not 1024 px wide); square pixels assumed")
    return {"y": px, "x": px}, raw, None


def read_sem_tiff(path, **overrides):
    """Read an FEI/Thermo or Zeiss SEM TIFF as an EM Image with the databar cropped.

    Parameters
    ----------
    path
        TIFF written by FEI/Thermo (xT, Helios, Quanta...) or Zeiss SmartSEM.
    **overrides
        ``pixel_size_nm=`` (replaces the file's calibration), ``modality=`` (default ``"em"``),
        ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)`` (``(c, y, x)`` for RGB), nm coordinates; ``attrs["databar_rows_cropped"]``.
    """
    import tifffile

    path = Path(path)
    ov = parse_overrides(path, overrides)
    file_size(path)
    notes: list[str] = []
    try:
        with tifffile.TiffFile(path) as tif:
            check_tiff_complete(path, tif)
            page = tif.pages.first
            photometric = int(page.photometric)
            codes = {t.code for t in page.tags.values()}
            fei = tif.fei_metadata if codes & set(_FEI_TAGS) else None
            zeiss = tif.sem_metadata if _ZEISS_TAG in codes else None
            nseries = len(tif.series)
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"not a readable TIFF: {exc}", path=path) from exc
    data, axes = tiff_series_dask(path, 0)
    if "S" in axes:
        data = data.transpose([axes.index("S")] + [i for i, a in enumerate(axes) if a != "S"])
        axes = "S" + axes.replace("S", "")
    if axes not in ("YX", "SYX"):
        raise FormatError(f"SEM TIFF with axes {axes!r} (shape {data.shape}); expected one image", path=path)
    if nseries > 1:
        notes.append(f"file holds {nseries} series; the first is read")
    nrows, ncols = data.shape[-2], data.shape[-1]
    attrs: dict = {"photometric": photometric}
    cropped = 0
    if fei is not None:
        vendor = "fei"
        px, raw, why = _fei_calibration(path, fei, ncols, notes)
        image = fei.get("Image") or {}
        resy = image.get("ResolutionY")
        dbh = (fei.get("PrivateFei") or {}).get("DatabarHeight")
        raw.update({"Image.ResolutionX": image.get("ResolutionX"), "Image.ResolutionY": resy, "PrivateFei.DatabarHeight": dbh})
        if isinstance(resy, (int, float)) and 0 < resy < nrows:
            cropped = nrows - int(resy)
            if isinstance(dbh, (int, float)) and int(dbh) != cropped:
                notes.append(f"databar: cropped {cropped} rows to Image.ResolutionY={resy}, but PrivateFei.DatabarHeight says {dbh}")
            else:
                notes.append(f"databar: {cropped} rows below Image.ResolutionY={resy} cropped")
        elif isinstance(resy, (int, float)) and resy > nrows:
            raise FormatError(
                f"Image.ResolutionY={resy} exceeds the {nrows} stored rows (truncated or edited file?)",
                path=path, field="Image.ResolutionY",
            )
        elif isinstance(resy, (int, float)):
            notes.append("no databar rows (stored rows == Image.ResolutionY)")
        elif isinstance(dbh, (int, float)) and 0 < dbh < nrows:
            cropped = int(dbh)
            notes.append(f"no Image.ResolutionY: cropped PrivateFei.DatabarHeight = {cropped} rows")
        else:
            notes.append("neither Image.ResolutionY nor PrivateFei.DatabarHeight: nothing cropped")
        attrs["fei_metadata"] = {k: to_py(fei.get(k)) for k in ("Scan", "Image", "PrivateFei", "Beam", "EBeam", "System") if k in fei}
    elif zeiss is not None:
        vendor = "zeiss"
        px, raw, why = _zeiss_calibration(path, zeiss, ncols, notes)
        plane = np.asarray(data[0] if data.ndim == 3 else data)
        start = detect_zeiss_data_zone(plane)
        if start is not None:
            cropped = nrows - start
            notes.append(f"Zeiss data zone detected from intensity at row {start} (black rule + bright panel); {cropped} rows cropped")
        else:
            notes.append("no Zeiss data zone detected (no black rule followed by a bright row in the lower half); nothing cropped")
        if photometric == 3:
            notes.append("palette (Photometric 3) TIFF: values are the stored palette indices, not RGB")
        attrs["zeiss_metadata"] = {k: to_py(v) for k, v in zeiss.items() if k.startswith("ap_") or k.startswith("sv_")}
    else:
        raise FormatError("TIFF has neither FEI (34680/34682) nor Zeiss (34118) SEM metadata", path=path)
    if cropped:
        data = data[..., : nrows - cropped, :]
    attrs["databar_rows_cropped"] = int(cropped)
    attrs["vendor"] = vendor
    dims = ("c", "y", "x") if data.ndim == 3 else ("y", "x")
    return build_image(
        data, path=path, ov=ov, dims=dims, pixel_size_nm=px, default_modality="em",
        source_format=f"sem_tiff_{vendor}",
        channel_names=["R", "G", "B", "A"][: data.shape[0]] if data.ndim == 3 else None, value_unit="counts",
        notes=notes, raw_calibration=raw, uncalibrated_reason=why, attrs=attrs,
    )


READERS = [
    ReaderSpec(
        name="sem_tiff",
        suffixes=(".tif", ".tiff"),
        modality="em",
        read=read_sem_tiff,
        can_open=_can_open,
        priority=20,
        description="FEI/Thermo and Zeiss SEM TIFF (pixel size from private tags, databar cropped)",
    )
]
