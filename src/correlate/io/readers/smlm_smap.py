"""SMAP localization files (``*_sml.mat``, MATLAB v7.3 = HDF5).

Coordinate origin: SMAP's ``xnm``/``ynm`` are its camera-pixel positions ``xpix``/``ypix`` times
the pixel size (checked on a real file: the ratio is exactly the camera pixel size); where SMAP
puts pixel 0 (corner or centre) was not verified, so positions are kept as written.

Frame base: 1 (``frame`` counts from 1, stored as float64); ``frame`` is returned 0-based.

Fields are (1, N) arrays under ``saveloc/loc``: ``xnm, ynm, znm`` (nm), ``frame``, ``channel``,
``phot``, ``bg``, ``locprecnm``, ``locprecznm``, ``xnmerr``, ``ynmerr``, ``PSFxnm``... Every
field of length N is kept (canonical ones renamed). ``locprecnm`` is heavy-tailed in real data
(outliers up to 1e6 nm), so summaries should use its median. Only v7.3 (HDF5) files are read;
older MATLAB formats must be re-saved with ``-v7.3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import FormatError
from ._hdf5 import hdf5_file, read_dataset
from ._smlm_common import check_options, finish, hdf5_has, smlm_reader

__all__ = ["read_smap", "READERS"]

_CANONICAL = {
    "xnm": "x",
    "ynm": "y",
    "znm": "z",
    "frame": "frame",
    "channel": "channel",
    "phot": "photons",
    "bg": "background",
    "locprecnm": "precision",
    "locprecznm": "precision_z",
}
_NM_FIELDS = {"xnmerr", "ynmerr", "znmerr", "PSFxnm", "PSFynm", "zerr"}


def can_open(path: Path, head: bytes) -> bool:
    return hdf5_has(path, head, "saveloc/loc")


def read_smap(path: str | Path, *, pixel_size_nm: float | None = None, channel: Any = None, **options: Any):
    """Read a SMAP ``_sml.mat`` (v7.3) into Localizations (nm, 0-based frames).

    Parameters
    ----------
    path
        The ``.mat`` file.
    pixel_size_nm
        Camera pixel size (nm) to record, overriding ``saveloc/file/info/cam_pixelsize_um``.
    channel
        A channel name for every row (replaces SMAP's ``channel``).
    """
    import h5py

    path = Path(path)
    check_options(path, options)
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB 5.0") or (head.startswith(b"MATLAB") and b"7.3" not in head[:20]):
        raise FormatError("a MATLAB v5/v7 .mat file; only v7.3 (HDF5) SMAP files are read (save with -v7.3)", path=path)
    notes: list[str] = []
    with hdf5_file(path, "MATLAB v7.3/HDF5") as f:
        if "saveloc/loc" not in f or not isinstance(f["saveloc/loc"], h5py.Group):
            raise FormatError("not a SMAP file: group 'saveloc/loc' is missing", path=path, field="saveloc/loc")
        loc = f["saveloc/loc"]
        for req in ("xnm", "ynm", "frame"):
            if req not in loc:
                raise FormatError(f"missing required field 'saveloc/loc/{req}'", path=path, field=req)
        n = int(np.prod(loc["xnm"].shape or (0,)))
        cols: dict[str, np.ndarray] = {}
        for name, ds in loc.items():
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiub":
                continue
            if ds.attrs.get("MATLAB_empty", 0):
                continue
            shape = ds.shape or ()
            if int(np.prod(shape)) != n or (len(shape) == 2 and min(shape) != 1 and n):
                notes.append(f"field '{name}' has shape {shape}, not (1, {n}); skipped")
                continue
            cols[_CANONICAL.get(name, name)] = read_dataset(ds, path, f"saveloc/loc/{name}").ravel()
        cam = None
        info = "saveloc/file/info/cam_pixelsize_um"
        if info in f and isinstance(f[info], h5py.Dataset) and f[info].dtype.kind == "f":
            v = np.asarray(f[info][()], dtype=float).ravel()
            if v.size and np.all(np.isfinite(v)) and np.all(v > 0):
                cam = [float(v[0] * 1000.0), float(v[-1] * 1000.0)]
                if cam[0] == cam[1]:
                    cam = cam[0]
    for c in ("x", "y", "z"):
        if c in cols:
            cols[c] = cols[c].astype(np.float64)
    df = pd.DataFrame(cols)
    units = {k: "nm" for k in df.columns if k in _NM_FIELDS}
    units.update({k: "camera px" for k in df.columns if k.endswith("pix") or k.endswith("pixerr")})
    if pixel_size_nm is not None:
        cam = float(pixel_size_nm)
    return finish(
        df, path=path, source_format="smap", frame_base=1, camera_pixel_size_nm=cam, units=units, notes=notes,
        channel=channel,
        extra_attrs={"origin": "xnm = xpix x camera pixel size as written by SMAP (pixel-corner/centre not verified)"},
    )


READERS = [
    smlm_reader(
        "smap", (".mat",), read_smap, can_open, 20,
        "SMAP _sml.mat (MATLAB v7.3/HDF5; saveloc/loc xnm, ynm, znm; frame 1-based)",
    )
]
