"""MRC / MRCS / CCP4 maps (``.mrc``, ``.mrcs``, ``.map``, ``.rec``, ``.st``, ``.ali``) via mrcfile.

* The header is parsed by :mod:`mrcfile` (``permissive=True``); the pixels are then memory-mapped
  by numpy, so nothing is loaded until a chunk is computed.
* Voxel size is ``cella / (mx, my, mz)`` in **Å**, converted to nm. ``nz == 1`` means a single
  2-D image: dims ``(y, x)`` (its ``voxel_size.z``, often 0, is not used). A volume (``nz > 1``)
  whose ``voxel_size.z`` is 0 needs ``pixel_size_nm=`` with a z size.
* Axis order: ``mapc/mapr/maps`` say which physical axis the columns, rows and sections run along;
  mrcfile ignores it (mrcfile#23), we transpose to ``(z, y, x)``.
* Origin: the header ``origin`` (Å) if it is non-zero, otherwise ``nxstart/nystart/nzstart`` times
  the voxel size; the choice is written to ``attrs["notes"]``.
* An image stack (``ispg == 0`` and ``nz > 1``, as in ``.mrcs``) is not a volume: pass ``frame=``
  to pick one image (the z axis of a stack has no spatial meaning).
* FEI/Thermo extended headers (``FEI1``/``FEI2``) are summarised in ``attrs["fei_extended_header"]``
  and their pixel size (m) is cross-checked against the main header.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import FormatError
from .._registry import ReaderSpec
from ._image_common import build_image, dask_name, file_size, parse_overrides, pick_index, require_bytes, to_py

__all__ = ["read_mrc", "READERS"]

_SUFFIXES = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali", ".ccp4")
#: bytes per voxel per MRC mode (mode 101 = 4-bit packed is not supported)
_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}
_FEI_FIELDS = (
    "Microscope type", "HT", "Magnification", "Pixel size X", "Pixel size Y", "Dose",
    "Alpha tilt", "Beta tilt", "X-Stage", "Y-Stage", "Z-Stage", "Defocus", "Camera name",
    "STEM Detector name", "Dwell time", "Integration time", "Binning Width", "Binning Height",
)


def _header_ints(head: bytes):
    """(nx, ny, nz, mode, nsymbt, byteorder) from the first 1024 bytes, or None."""
    if len(head) < 224:
        return None
    stamp = head[212]
    order = ">" if stamp == 0x11 else "<"
    nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
    if not (0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24) and order == "<":
        order = ">"
        nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
    nsymbt = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
    return int(nx), int(ny), int(nz), int(mode), nsymbt, order


def _can_open(path: Path, head: bytes) -> bool:
    h = _header_ints(head)
    if h is None:
        return False
    nx, ny, nz, mode, nsymbt, _ = h
    if head[208:212] == b"MAP ":
        return True
    return 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24 and mode in _MODE_BYTES and nsymbt >= 0


def _mrcfile_header(path: Path):
    """(dtype, voxel size Å per axis, mapc/mapr/maps, n*start, origin Å, ispg, exttyp, cella Å,
    mx/my/mz, FEI extended-header fields) as mrcfile reads them (permissive)."""
    import mrcfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except Exception as exc:  # mrcfile raises ValueError on malformed headers
            raise FormatError(f"mrcfile cannot open it: {exc}", path=path) from exc
    try:
        if mrc.data is None:
            raise FormatError("mrcfile found no data block (header inconsistent with file size?)", path=path)
        hdr = mrc.header
        vs = mrc.voxel_size
        exttyp = bytes(hdr.exttyp).decode("latin-1", errors="replace").strip("\x00 ")
        fei = {}
        if exttyp in ("FEI1", "FEI2"):
            try:
                ext = mrc.indexed_extended_header
                if ext is not None and len(ext):
                    names = ext.dtype.names or ()
                    fei = {k: to_py(ext[0][k]) for k in _FEI_FIELDS if k in names}
            except Exception:  # extended header unreadable: keep going, note it
                fei = {"error": "FEI extended header could not be decoded"}
        return (
            mrc.data.dtype,
            {"x": float(vs.x), "y": float(vs.y), "z": float(vs.z)},
            (int(hdr.mapc), int(hdr.mapr), int(hdr.maps)),
            (int(hdr.nxstart), int(hdr.nystart), int(hdr.nzstart)),
            (float(hdr.origin.x), float(hdr.origin.y), float(hdr.origin.z)),
            int(hdr.ispg),
            exttyp,
            (float(hdr.cella.x), float(hdr.cella.y), float(hdr.cella.z)),
            (int(hdr.mx), int(hdr.my), int(hdr.mz)),
            fei,
        )
    finally:
        mrc.close()


def _to_zyx(data, mapcrs: tuple[int, int, int], notes: list[str]):
    """``data`` transposed to (z, y, x) from its (section, row, column) order, which runs along
    the physical axes (maps, mapr, mapc) with 1 = x, 2 = y, 3 = z; and the mapcrs used."""
    if sorted(mapcrs) != [1, 2, 3]:
        notes.append(f"mapc/mapr/maps = {mapcrs} invalid; assumed 1, 2, 3")
        mapcrs = (1, 2, 3)
    phys_of_data_axis = {0: mapcrs[2], 1: mapcrs[1], 2: mapcrs[0]}  # data axis -> physical axis
    if mapcrs != (1, 2, 3):
        perm = [next(a for a, p in phys_of_data_axis.items() if p == want) for want in (3, 2, 1)]
        data = data.transpose(perm)
        notes.append(f"axes transposed to (z, y, x) from mapc/mapr/maps = {mapcrs}")
    return data, mapcrs


def _cross_check_fei(fei: dict, vox_a: dict[str, float], notes: list[str]) -> None:
    """Note where the FEI extended header's pixel size (m) differs from the main header's (Å)."""
    for ax in ("X", "Y"):
        v = fei.get(f"Pixel size {ax}")
        if isinstance(v, (int, float)) and v > 0 and vox_a[ax.lower()] > 0:
            rel = abs(v * 1e10 - vox_a[ax.lower()]) / vox_a[ax.lower()]
            if rel > 1e-3:
                notes.append(
                    f"FEI extended header pixel size {ax} {v * 1e9:.6g} nm differs from the main "
                    f"header {vox_a[ax.lower()] / 10:.6g} nm by {rel:.1%}; the main header is used"
                )


def read_mrc(path, **overrides):
    """Read an MRC-family file as an EM Image (lazy, memory-mapped).

    Parameters
    ----------
    path
        ``.mrc``, ``.mrcs``, ``.map``, ``.rec``... file.
    **overrides
        ``pixel_size_nm=`` (replaces the header voxel size), ``modality=`` (default ``"em"``),
        ``frame=`` (index into an image stack), ``name=``.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x)`` or ``(z, y, x)``, coordinates in nm at pixel centres.
    """
    path = Path(path)
    ov = parse_overrides(path, overrides)
    size = file_size(path)
    require_bytes(path, 1024, "the 1024-byte MRC header", size)
    with open(path, "rb") as fh:
        head = fh.read(1024)
    h = _header_ints(head)
    nx, ny, nz, mode, nsymbt, order = h
    if mode not in _MODE_BYTES:
        raise FormatError(f"unsupported MRC mode {mode} (supported: {sorted(_MODE_BYTES)})", path=path, field="mode")
    if mode in (3, 4):
        raise FormatError(f"MRC mode {mode} holds complex (Fourier) data, not an image", path=path, field="mode")
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise FormatError(f"invalid dimensions nx, ny, nz = {nx}, {ny}, {nz}", path=path, field="nx/ny/nz")
    data_offset = 1024 + max(nsymbt, 0)
    require_bytes(path, data_offset + nx * ny * nz * _MODE_BYTES[mode], f"a {nz}x{ny}x{nx} mode-{mode} array", size)

    dtype, vox_a, mapcrs, nstart, hdr_origin, ispg, exttyp, cella, mxyz, fei = _mrcfile_header(path)

    notes: list[str] = []
    arr = np.memmap(path, dtype=dtype, mode="r", offset=data_offset, shape=(nz, ny, nx))
    import dask.array as da

    data = da.from_array(arr, chunks="auto", name=dask_name("mrc", path, data_offset, str(dtype), nx, ny, nz))

    data, mapcrs = _to_zyx(data, mapcrs, notes)
    # nstart: first column / row / section index -> physical axes
    start_phys = {{1: "x", 2: "y", 3: "z"}[mapcrs[i]]: nstart[i] for i in range(3)}

    is_stack = ispg == 0 and nz > 1 and path.suffix.lower() != ".rec"
    single = not is_stack and data.shape[0] == 1
    raw = {
        "voxel_size_A": vox_a, "cella_A": cella, "mx_my_mz": mxyz, "nx_ny_nz": (nx, ny, nz),
        "mapc_mapr_maps": mapcrs, "nxstart_nystart_nzstart": nstart, "origin_A": hdr_origin,
        "ispg": ispg, "mode": mode, "exttyp": exttyp, "nsymbt": nsymbt,
    }
    attrs = {}
    if fei:
        attrs["fei_extended_header"] = fei
        _cross_check_fei(fei, vox_a, notes)

    if is_stack:
        if ov.frame is None:
            if data.shape[0] > 1:
                raise FormatError(
                    f"image stack of {data.shape[0]} images (ispg 0); pass frame=<index> to pick one",
                    path=path,
                    field="frame",
                )
            fi = 0
        else:
            fi = pick_index(path, ov.frame, [str(i) for i in range(data.shape[0])], "frame")
        data = data[fi]
        attrs["frame"] = fi
        dims = ("y", "x")
    elif single:
        data = data[0]
        dims = ("y", "x")
    else:
        dims = ("z", "y", "x")

    spatial = [d for d in dims]
    # calibrated axes only: a partial override (pixel_size_nm={"z": ...}) keeps the others
    px = {d: vox_a[d] / 10.0 for d in spatial if vox_a[d] > 0} or None
    bad = [d for d in spatial if not vox_a[d] > 0]
    reason = f"header voxel size along {bad} is {[vox_a[d] for d in bad]} Å (cella/mx..)" if bad else None

    origin = None
    origin_px = None
    if any(hdr_origin):
        origin = {d: hdr_origin["xyz".index(d)] / 10.0 for d in spatial}
        notes.append("origin from the header 'origin' field (Å)")
    elif any(start_phys[d] for d in spatial):
        origin_px = {d: float(start_phys[d]) for d in spatial}
        notes.append("origin = nxstart/nystart/nzstart x voxel size")
    return build_image(
        data, path=path, ov=ov, dims=dims, pixel_size_nm=px, default_modality="em", source_format="mrc",
        origin_nm=origin, origin_px=origin_px, value_unit="", notes=notes, raw_calibration=raw,
        uncalibrated_reason=reason, attrs=attrs,
    )


READERS = [
    ReaderSpec(
        name="mrc",
        suffixes=_SUFFIXES,
        modality="em",
        read=read_mrc,
        can_open=_can_open,
        priority=10,
        description="MRC2014 / CCP4 maps, tomograms and image stacks (mrcfile); voxel size Å -> nm",
    )
]
