"""Other images of a scene (SIM channels, AFM heights, ...) resampled onto an overlay's display
grid in the base image's space (nm) and drawn as semi-transparent layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ElementError

__all__ = ["ImageLayer", "default_images", "image_layers_on_grid", "draw_image_layers"]

#: Colour maps of successive layers by modality; others cycle through _CMAPS.
_MODALITY_CMAPS = {"afm": "afmhot", "sim": "viridis", "sted": "magma", "confocal": "cividis", "widefield": "cividis"}
#: Opacity of a layer's lowest values, as a fraction of ``image_alpha`` (its highest are opaque to it).
_FLOOR = 0.2
_CMAPS = ("viridis", "magma", "cividis", "plasma", "inferno")


@dataclass
class ImageLayer:
    """One image plane on the display grid.

    Attributes
    ----------
    name
        Legend text (element name, with ``[c=k]`` for one channel of several).
    values
        (ny, nx) values on the display grid; NaN outside the image.
    cmap
        Matplotlib colour map name.
    modality
        The element's modality (``""`` if unknown).
    coarse, step
        The sampled values, one per ``step`` x ``step`` block of display pixels (``values`` is
        them repeated and cropped to the grid).
    """

    name: str
    values: np.ndarray
    cmap: str
    modality: str = ""
    coarse: np.ndarray | None = None
    step: int = 1

    def expand(self, a: np.ndarray) -> np.ndarray:
        """An array on the coarse blocks repeated onto the display grid."""
        ny, nx = self.values.shape
        return np.repeat(np.repeat(a, self.step, axis=0), self.step, axis=1)[:ny, :nx]

    @property
    def coverage(self) -> float:
        """Fraction of the view the image covers."""
        return float(np.isfinite(self.values).mean())


def default_images(scene, base: str, *, assume_aligned: bool = False) -> tuple[list[str], list[str]]:
    """(image elements other than ``base`` placed in its frame, images left out as unplaced)."""
    from ..errors import UnplacedError

    names = [n for n in scene.names() if scene.kind(n) == "image" and n != base]
    if assume_aligned or not hasattr(scene, "require_joinable"):
        return names, []
    keep, out = [], []
    for n in names:
        try:
            scene.require_joinable(n, base, action="overlay")
        except UnplacedError:
            out.append(n)
            continue
        keep.append(n)
    return keep, out


def _planes(img) -> list[tuple[str, object]]:
    """(suffix, (y, x) plane) per channel: maximum over z."""
    if "z" in img.dims:
        img = img.max("z")
    if "c" in img.dims and img.sizes["c"] > 1:
        labels = [str(v) for v in img.coords["c"].values] if "c" in img.coords else [str(k) for k in range(img.sizes["c"])]
        return [(f"[c={lab}]", img.isel(c=k).transpose("y", "x")) for k, lab in enumerate(labels)]
    if "c" in img.dims:
        img = img.isel(c=0)
    return [("", img.transpose("y", "x"))]


def image_layers_on_grid(scene, base: str, grid, names: Sequence[str], *,
                         assume_aligned: bool = False) -> list[ImageLayer]:
    """Resample (bilinear) each named image's planes at the display grid's pixel centres mapped
    into the image's own frame (``scene.transform(base, name)``); where a layer pixel spans
    many display pixels, blocks of up to a quarter layer pixel share one value. Layers outside the view are
    returned with ``coverage`` 0; the caller decides whether to name them."""
    from scipy import ndimage

    from ..render import grid_from_image

    images = [n for n in scene.names() if scene.kind(n) == "image"]
    out = []
    for k, name in enumerate(names):
        if name not in images:
            raise ElementError(f"no image {name!r} to overlay (images: {images})", field="images")
        if name == base:
            raise ElementError(f"{name!r} is the base image; name other images as layers", field="images")
        if not assume_aligned:
            scene.require_joinable(name, base, action="overlay")
        img = scene.get(name)
        modality = str(img.attrs.get("modality") or "")
        to_img = scene.transform(base, name)
        for suffix, plane in _planes(img):
            g = grid_from_image(plane)
            step = _step(scene.transform(name, base), g, grid)
            cy, cx = (_block_centres(grid, a, step) for a in ("y", "x"))
            X, Y = np.meshgrid(cx, cy)
            q = to_img.apply(np.column_stack([X.ravel(), Y.ravel()]))
            col = (q[:, 0] - g.origin[0]) / g.pixel_size[0]
            row = (q[:, 1] - g.origin[1]) / g.pixel_size[1]
            ny, nx = g.shape
            inside = (col >= -0.5) & (col <= nx - 0.5) & (row >= -0.5) & (row <= ny - 0.5)
            vals = np.full(len(q), np.nan)
            if inside.any():
                arr = np.asarray(plane.values, dtype=float)
                vals[inside] = ndimage.map_coordinates(arr, [row[inside], col[inside]], order=1, mode="nearest")
            coarse = vals.reshape(X.shape)
            full = np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[: grid.shape[0], : grid.shape[1]]
            cmap = _MODALITY_CMAPS.get(modality.lower(), _CMAPS[k % len(_CMAPS)]) if not suffix else \
                _CMAPS[len(out) % len(_CMAPS)]
            out.append(ImageLayer(f"{name}{suffix}", full, cmap, modality, coarse, step))
    return out


def _step(to_base, g, grid) -> int:
    """Display pixels per sample: blocks of at most a quarter of the layer's pixel (in the base's
    space) share one interpolated value."""
    p0 = np.array([[g.origin[0], g.origin[1]], [g.origin[0] + g.pixel_size[0], g.origin[1]],
                   [g.origin[0], g.origin[1] + g.pixel_size[1]]])
    b = to_base.apply(p0)
    layer_px = min(np.hypot(*(b[1] - b[0])), np.hypot(*(b[2] - b[0])))
    return max(1, int(layer_px / (4.0 * max(grid.pixel_size))))


def _block_centres(grid, axis: str, step: int) -> np.ndarray:
    c = grid.centers(axis)
    n = -(-c.size // step)
    return c[0] + (np.arange(n) * step + (step - 1) / 2.0) * grid.pixel_size[0 if axis == "x" else 1]


def draw_image_layers(ax, layers: Sequence[ImageLayer], pixel_scale: int, extent, alpha: float,
                      handles: list) -> None:
    """Each layer in its colour map (1-99.5 % of its values in view), its highest values
    ``alpha`` opaque and its lowest a fifth of that, transparent outside the image; one legend
    entry per layer."""
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    from ._raster import tile

    if not 0.0 < alpha <= 1.0:
        raise ElementError(f"image_alpha must be in (0, 1], got {alpha}", field="image_alpha")
    for layer in layers:
        v = layer.coarse if layer.coarse is not None else layer.values
        fin = v[np.isfinite(v)]
        if not fin.size:
            continue
        lo, hi = np.percentile(fin, [1.0, 99.5])
        if hi <= lo:
            hi = lo + 1.0
        cm = colormaps[layer.cmap]
        norm = np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
        rgba = cm(norm)
        # signal shows, background stays faint: the footprint is visible, the base shows through
        rgba[..., 3] = np.where(np.isfinite(v), alpha * (_FLOOR + (1.0 - _FLOOR) * norm), 0.0)
        if layer.coarse is not None:
            rgba = layer.expand(rgba)
        ax.imshow(tile(rgba, pixel_scale), extent=extent, interpolation="nearest", origin="upper", resample=False)
        what = f" ({layer.modality})" if layer.modality and layer.modality.lower() not in layer.name.lower() else ""
        handles.append(Patch(facecolor=cm(0.7), edgecolor="none", alpha=alpha, label=f"{layer.name}{what}"))
