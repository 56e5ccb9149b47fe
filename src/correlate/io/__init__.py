"""Readers for microscopy files and the OME-Zarr scene store.

``correlate.io.read(path)`` detects the format and returns an element in nm.
"""

from ._registry import ReaderSpec, available_readers, find_reader, read

__all__ = ["ReaderSpec", "available_readers", "find_reader", "read"]
