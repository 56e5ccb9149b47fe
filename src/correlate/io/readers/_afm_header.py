"""What the AFM readers (``afm_*.py``) share once their header is parsed.

Each AFM format stores one height map per channel with a lateral scan size and a height unit in
its own header layout; the readers parse their header and hand the numbers to these helpers, so
that every AFM reader picks its default channel, converts heights and lateral sizes to nm and
builds the ``(y, x)`` Image the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnitError
from ...units import to_nm_factor
from .._registry import ReaderSpec
from ._image_common import ImageOverrides, build_image, pick_index

__all__ = ["NUMBER", "afm_reader", "build_afm_image", "choose_channel", "scan_pixel_size", "values_in_nm"]

#: A decimal number as AFM headers write it (``15``, ``-0.5``, ``.25``, ``4.9e-7``).
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def choose_channel(path: Path, override: Any, names: Sequence[str], preferred: str) -> int:
    """Index of the channel to read: the ``channel=`` override (name or index) if given, else
    ``preferred`` if the file has it, else the first channel."""
    if override is not None:
        return pick_index(path, override, names, "channel")
    return list(names).index(preferred) if preferred in names else 0


def values_in_nm(values: np.ndarray, unit: str, *, path: Path, field: str) -> tuple[np.ndarray, str]:
    """Heights in nm and their unit (``"nm"``) when ``unit`` is a length; other units (V, deg)
    and an empty unit leave the values as stored, with ``unit`` returned unchanged."""
    if not unit:
        return values, unit
    try:
        return values * to_nm_factor(unit, path=path, field=field), "nm"
    except UnitError:
        return values, unit


def scan_pixel_size(
    length_y: float, length_x: float, rows: int, cols: int, nm_per_unit: float = 1.0
) -> dict[str, float]:
    """Pixel size (nm) per axis from the scan lengths (in a unit of ``nm_per_unit`` nm) over the
    number of rows and columns; non-square pixels are kept."""
    return {"y": length_y * nm_per_unit / rows, "x": length_x * nm_per_unit / cols}


def build_afm_image(
    values: np.ndarray,
    *,
    path: Path,
    ov: ImageOverrides,
    source_format: str,
    pixel_size_nm: Mapping[str, float] | None,
    value_unit: str,
    channel: str,
    notes: Sequence[str],
    raw_calibration: Mapping[str, Any],
    uncalibrated_reason: str | None = None,
    origin_nm: Mapping[str, float] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """The ``(y, x)`` AFM Image of one channel's heights (``attrs["channel"]`` = ``channel``)."""
    import dask.array as da

    return build_image(
        da.from_array(values, chunks="auto"),
        path=path,
        ov=ov,
        dims=("y", "x"),
        pixel_size_nm=pixel_size_nm,
        default_modality="afm",
        source_format=source_format,
        origin_nm=origin_nm,
        value_unit=value_unit,
        notes=notes,
        raw_calibration=raw_calibration,
        uncalibrated_reason=uncalibrated_reason,
        attrs={"channel": channel, **dict(attrs or {})},
    )


def afm_reader(
    name: str,
    suffixes: tuple[str, ...],
    read: Callable[..., Any],
    can_open: Callable[[Path, bytes], bool],
    description: str,
) -> ReaderSpec:
    """The registry entry of an AFM format (modality ``"afm"``, priority 10)."""
    return ReaderSpec(
        name=name, suffixes=suffixes, modality="afm", read=read, can_open=can_open, priority=10, description=description
    )
