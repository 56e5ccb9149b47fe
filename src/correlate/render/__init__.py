"""Rendering localizations to images.

Renders land on a pixel grid named by an existing Image element (``like=``: its nm coordinates)
or by a pixel size and an extent in nm, and come back as Image elements (modality ``"smlm"``,
value unit ``"localizations per pixel"``) that a :class:`~correlate.scene.Scene` can store.

Pixel convention (NGFF): pixel ``i`` covers ``[origin + (i - 0.5) px, origin + (i + 0.5) px)``
with ``origin`` the centre of pixel 0; ``convention="corner"`` accepts an origin at the low
corner of pixel 0 instead. The far edge of the grid is closed, so nothing inside an extent is lost.

* :func:`render_histogram`: exact counts per pixel (numba kernel).
* :func:`render_gaussian`: each localization as a Gaussian of its own precision, integrated over
  each pixel with erf differences.
* :func:`render`: either, by ``method=``.
* :func:`render_element`: a stored element of a scene, row group by row group (bounded memory).
* :func:`composite`: per-channel colour composite (RGB / RGBA numpy array).
* :class:`Grid`, :func:`grid_from_image`, :func:`grid_from_extent`: the pixel grid.
"""

from __future__ import annotations

from ._composite import DEFAULT_COLORS, channel_colors, composite
from ._gaussian import gaussian_counts, render_gaussian
from ._grid import Grid, as_grid, grid_from_extent, grid_from_image
from ._histogram import histogram_counts, render_histogram
from ._stream import render_element

__all__ = [
    "render",
    "render_histogram",
    "render_gaussian",
    "render_element",
    "histogram_counts",
    "gaussian_counts",
    "composite",
    "channel_colors",
    "DEFAULT_COLORS",
    "Grid",
    "as_grid",
    "grid_from_image",
    "grid_from_extent",
]


def render(locs, method: str = "histogram", **kwargs):
    """Render localizations with ``method="histogram"`` (:func:`render_histogram`) or
    ``"gaussian"`` (:func:`render_gaussian`); keyword arguments go to that function."""
    from ..errors import ElementError

    if method == "histogram":
        return render_histogram(locs, **kwargs)
    if method == "gaussian":
        return render_gaussian(locs, **kwargs)
    raise ElementError(f"unknown render method {method!r}; expected 'histogram' or 'gaussian'", field="method")
