"""What the blocks of a tiled EM segmentation share: the image-wide parameters, the reader of
float32 blocks from the lazy image, the flattened and smoothed signal of a block (equal to the
whole image's on it) and the result. Lengths nm unless named px."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._segment_background import Background, flattened, smoothed
from ._segment_em import base_signal


@dataclass
class TiledSegmentation:
    """Result of :func:`segment_em_tiled`: ``labels`` (int32 xarray on the image grid, dask-backed
    when written to a zarr array), the morphology table (as :func:`measure_particles` gives it),
    the fiducials left out and the diagnostics (with the block plan)."""

    labels: Any
    table: pd.DataFrame
    fiducials: pd.DataFrame
    info: dict = field(default_factory=dict)
    workdir: Any = None

    @property
    def n_particles(self) -> int:
        return int(len(self.table))

    def measure(self, **kwargs) -> pd.DataFrame:
        """The per-particle morphology (measured block by block during the segmentation)."""
        if kwargs:
            raise CorrelateError(f"a tiled segmentation was measured as it was made; options {sorted(kwargs)} "
                                 "cannot be applied afterwards", field="measure")
        return self.table.copy()


@dataclass
class _Globals:
    """What every block needs from the whole image."""

    shape: tuple[int, int]
    px: float
    px_d: dict
    fill: float
    sign: float
    contrast: str
    floor: np.float32
    smooth_px: float
    r_g: int
    stride: int
    info: dict
    bg: Background | None = None


class _Reader:
    """Float32 blocks of the lazy 2-D image, non-finite pixels set to the fill value."""

    def __init__(self, img, fill: float | None = None):
        self.data = img.data
        self.fill = fill

    def __call__(self, ys: slice, xs: slice) -> np.ndarray:
        a = self.data[ys, xs]
        a = np.asarray(a.compute() if hasattr(a, "compute") else a, np.float32)
        if self.fill is not None and not np.isfinite(a).all():
            a = np.where(np.isfinite(a), a, np.float32(self.fill))
        return a

    def strided(self, s: int) -> np.ndarray:
        return self(slice(None, None, s), slice(None, None, s))


def _grow_slices(ys: slice, xs: slice, r: int, shape) -> tuple[slice, slice]:
    return (slice(max(0, ys.start - r), min(shape[0], ys.stop + r)), slice(max(0, xs.start - r), min(shape[1], xs.stop + r)))


def _signal(read: _Reader, g: _Globals, bg: Background, ys: slice, xs: slice, halo: int | None = None):
    """(sig, sm) on [ys, xs] from raw pixels read ``halo`` px (default the smoothing support)
    beyond, so that the smoothed values equal the whole image's."""
    halo = g.r_g if halo is None else halo
    ry, rx = _grow_slices(ys, xs, halo, g.shape)
    base = base_signal(read(ry, rx), g.contrast, g.floor)
    sig = flattened(base, bg.block(ry, rx), g.sign, g.contrast)
    sm = smoothed(sig, g.smooth_px)
    cy, cx = slice(ys.start - ry.start, ys.stop - ry.start), slice(xs.start - rx.start, xs.stop - rx.start)
    return base[cy, cx], sm[cy, cx], (ry, rx, base, sm)
