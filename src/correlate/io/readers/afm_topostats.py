"""TopoStats ``.topostats`` files (HDF5) read with h5py.

``/image`` (2-D heights in nm, already flattened by TopoStats) and ``/pixel_to_nm_scaling``
(nm per pixel, both axes). ``channel=`` picks another 2-D dataset at the top level (for example
``image_original`` in newer files). ``topostats_file_version`` is recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FormatError
from ._afm_header import afm_reader, build_afm_image, choose_channel
from ._hdf5 import read_dataset
from ._image_common import file_size, parse_overrides

__all__ = ["read_topostats", "READERS"]

_HDF5 = b"\x89HDF\r\n\x1a\n"


def _can_open(path: Path, head: bytes) -> bool:
    if not head.startswith(_HDF5):
        return False
    if path.name.lower().endswith(".topostats"):
        return True
    try:  # an HDF5 file with another suffix: only if it has TopoStats' keys
        import h5py

        with h5py.File(path, "r") as h5:
            return "pixel_to_nm_scaling" in h5 and "image" in h5
    except Exception:
        return False


def read_topostats(path, **overrides):
    """Read a ``.topostats`` file as an AFM Image (heights in nm).

    Parameters
    ----------
    path
        ``.topostats`` (HDF5).
    **overrides
        ``channel=`` (top-level 2-D dataset; default ``image``), ``pixel_size_nm=``,
        ``modality=`` (default ``"afm"``), ``name=``.
    """
    import h5py

    path = Path(path)
    ov = parse_overrides(path, overrides)
    file_size(path)
    try:
        with h5py.File(path, "r") as h5:
            images = [k for k, v in h5.items() if isinstance(v, h5py.Dataset) and v.ndim == 2 and v.dtype.kind in "fiu"]
            if not images:
                raise FormatError("no 2-D image dataset at the top level (expected 'image')", path=path, field="image")
            key = images[choose_channel(path, ov.channel, images, "image")]
            values = np.asarray(read_dataset(h5[key], path, key), dtype=np.float64)
            scale = h5.get("pixel_to_nm_scaling")
            scale = None if scale is None else float(np.asarray(scale[()]).ravel()[0])
            version = h5.get("topostats_file_version")
            version = None if version is None else np.asarray(version[()]).ravel()[0]
            version = version.decode() if isinstance(version, bytes) else (None if version is None else version.item() if hasattr(version, "item") else version)
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"not a readable TopoStats HDF5 file: {type(exc).__name__}: {exc}", path=path) from exc
    notes = []
    if ov.channel is None and key != "image":
        notes.append(f"no 'image' dataset; read {key!r}")
    px = None if scale is None or not scale > 0 else {"y": scale, "x": scale}
    return build_afm_image(
        values, path=path, ov=ov, source_format="topostats", pixel_size_nm=px, value_unit="nm", channel=key,
        notes=notes, raw_calibration={"pixel_to_nm_scaling": scale, "datasets": images},
        uncalibrated_reason="no positive 'pixel_to_nm_scaling'", attrs={"topostats_file_version": version},
    )


READERS = [
    afm_reader("topostats", (".topostats",), read_topostats, _can_open, "TopoStats HDF5 (.topostats): image + pixel_to_nm_scaling")
]
