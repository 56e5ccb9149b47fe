"""Readers for microscopy files, localization exporters, and the OME-Zarr scene store.

``correlate.io.read(path)`` detects the format and returns an element in nm;
``correlate.io.write_localizations(path, table, format=...)`` writes a localization table for
Picasso or ThunderSTORM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._registry import ReaderSpec, available_readers, find_reader, read

__all__ = ["ReaderSpec", "available_readers", "find_reader", "read", "write_localizations"]


def write_localizations(path: str | Path, table, *, format: str = "thunderstorm", **options: Any):
    """Write a localization table (nm, 0-based frames) in another tool's format.

    Parameters
    ----------
    path
        Output file (``.csv`` for ThunderSTORM, ``.hdf5`` for Picasso, which also gets a ``.yaml``).
    format
        ``"thunderstorm"`` (CSV with ``x [nm]``-style unit labels, frames from 1) or ``"picasso"``
        (HDF5 + YAML, positions in camera pixels: needs ``pixel_size_nm=`` or the table's
        ``camera_pixel_size_nm``).
    **options
        Picasso only: ``pixel_size_nm=``, ``float32=``, ``origin_nm=`` ((x0, y0) nm of the
        camera's first pixel corner, or ``"min"`` for the table's smallest x, y; recorded as
        ``Origin (nm)`` in the YAML, which the project's Picasso reader adds back).

    Returns
    -------
    The path(s) written.
    """
    from ..errors import CorrelateError
    from ._export_smlm import write_picasso, write_thunderstorm

    if format == "thunderstorm":
        if options:
            raise CorrelateError(f"unexpected option(s) {sorted(options)} for a ThunderSTORM export", path=path)
        return write_thunderstorm(path, table)
    if format == "picasso":
        return write_picasso(path, table, **options)
    raise CorrelateError(f"unknown export format {format!r}; expected 'thunderstorm' or 'picasso'", path=path,
                         field="format")
