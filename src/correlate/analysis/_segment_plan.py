"""How a tiled EM segmentation is cut: the overlap the method needs, the block side a memory
budget allows, and the global statistics both segmentation paths share. Lengths px unless
named nm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CorrelateError

BYTES_PER_PIXEL = 160
"""Working memory of the segmentation per pixel of an extended block (float32 signals, float64
distance maps with their indices, watershed queues), measured loosely with ``/usr/bin/time -v``."""


def parse_memory(value) -> int | None:
    """Bytes from ``None`` (None), a number of bytes or a size like ``"2GiB"``, ``"500M"``."""
    from ..io._memory_budget import parse_bytes

    return None if value is None else parse_bytes(value)


def default_budget() -> int:
    """A quarter of the available memory, at most 2 GiB: room for the rest of the pipeline."""
    from ..io._memory_budget import available_memory

    return int(min(2 * 2**30, available_memory() // 4))


def interaction_px(min_sep_px: float, max_grow_px: float) -> int:
    """Distance (px) over which one object's result depends on another's pixels: the distance
    map's smoothing (4 px) and the seed window (half side ``round(min_sep)``, diagonal sqrt 2),
    and the growth of a core out to its model edge."""
    r = max(1, int(round(float(min_sep_px))))
    return int(max(math.ceil(r * math.sqrt(2.0) + 4.0) + 1, math.ceil(max_grow_px) + 1))


def overlap_px(max_diameter_nm: float, px: float, min_sep_px: float) -> int:
    """Overlap (px) a block needs beyond its interior: a touching pair of the largest objects
    (``max_diameter_nm``, one watershed basin region) plus the interaction distance (growth
    bounded by the object's radius)."""
    d = float(max_diameter_nm) / px
    return int(math.ceil(2 * d + interaction_px(min_sep_px, 0.5 * d)) + 2)


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of side ``block`` px (interiors) over an image of ``shape``, each read with
    ``overlap`` px more on every side; ``source`` says where the block side came from."""

    shape: tuple[int, int]
    block: int
    overlap: int
    budget: int
    source: str

    @property
    def n_blocks(self) -> int:
        return int(np.ceil(self.shape[0] / self.block) * np.ceil(self.shape[1] / self.block))

    def interiors(self):
        """(ys, xs) slices of every block interior, in raster order."""
        h, w = self.shape
        for y0 in range(0, h, self.block):
            for x0 in range(0, w, self.block):
                yield slice(y0, min(h, y0 + self.block)), slice(x0, min(w, x0 + self.block))

    def extended(self, ys: slice, xs: slice, extra: int = 0) -> tuple[slice, slice]:
        """The interior grown by the overlap (+ ``extra``), clipped to the image."""
        h, w = self.shape
        o = self.overlap + int(extra)
        return (slice(max(0, ys.start - o), min(h, ys.stop + o)), slice(max(0, xs.start - o), min(w, xs.stop + o)))

    def as_dict(self) -> dict:
        return {"block_px": int(self.block), "overlap_px": int(self.overlap), "memory_budget": int(self.budget),
                "block_source": self.source, "n_blocks": self.n_blocks}


def plan_blocks(shape, overlap: int, *, block_px: int | None = None, memory_budget=None, align: int = 256) -> BlockPlan:
    """The block side: ``block_px`` if given, else the largest multiple of ``align`` whose
    extended block fits ``memory_budget`` (default :func:`default_budget`). Raises when the
    budget cannot hold even a block as wide as the overlap."""
    budget = parse_memory(memory_budget)
    src = "memory_budget" if budget is not None else "default memory budget"
    if budget is None:
        budget = default_budget()
    h, w = int(shape[0]), int(shape[1])
    if block_px is not None:
        b = int(block_px)
        if b < 1:
            raise CorrelateError(f"block size must be positive, got {block_px}", field="block_px")
        return BlockPlan((h, w), b, int(overlap), int(budget), "block_px")
    side = int(math.sqrt(budget / BYTES_PER_PIXEL)) - 2 * int(overlap)
    b = (side // align) * align if side >= align else side
    if b < max(64, int(overlap)):
        raise CorrelateError(
            f"a memory budget of {budget / 2**20:.0f} MiB holds blocks of {max(side, 0)} px, less than the "
            f"{overlap} px overlap the largest particle needs: raise the memory budget (--memory-budget) or "
            "lower the largest particle diameter (--max-diameter-nm)", field="memory_budget")
    return BlockPlan((h, w), int(min(b, max(h, w))), int(overlap), int(budget), src)
