"""The base image and label rasters of an overlay: the displayed plane and grid, rendered
localizations, nearest-neighbour tiling and sampling, particle outlines (nm grids)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ElementError

__all__ = ["base_plane", "display_grid", "render_labels", "tile", "boundaries", "sample_labels"]


def base_plane(image):
    """(y, x) plane of an Image: first channel, maximum over z."""
    img = image
    if "c" in img.dims:
        img = img.isel(c=0)
    if "z" in img.dims:
        img = img.max("z")
    return img.transpose("y", "x")


def display_grid(base, region, max_pixels, load: bool = True):
    """Grid of the (cropped, maybe coarsened) base and its (ny, nx) float pixel values."""
    from ..render import grid_from_image

    plane = base_plane(base)
    grid = grid_from_image(plane)
    if region is not None:
        sub = grid.crop(region)
        rows, cols = grid.index_slices(sub)
        plane = plane.isel(y=rows, x=cols)
        grid = sub
    factor = max(1, int(math.ceil(max(grid.shape) / float(max_pixels)))) if max_pixels else 1
    if factor > 1:
        ny, nx = (grid.shape[0] // factor) * factor, (grid.shape[1] // factor) * factor
        plane = plane.isel(y=slice(0, ny), x=slice(0, nx)).coarsen(y=factor, x=factor).mean()
        grid = grid_from_image(plane)
    values = np.asarray(plane.values, dtype=float) if load else None
    return grid, values, factor


def render_labels(labels, grid, method):
    from scipy import ndimage

    from ..render import render_gaussian, render_histogram

    if not labels:
        return None
    if method == "gaussian":
        return render_gaussian(dict(labels), like=grid, min_precision_nm=min(grid.pixel_size))
    img = render_histogram(dict(labels), like=grid)
    if method == "histogram":
        return img
    if method != "blur":
        raise ElementError(f"unknown render method {method!r}; expected 'blur', 'histogram' or 'gaussian'", field="method")
    planes = []
    for df, plane in zip(labels.values(), np.asarray(img.values)):
        prec = None
        for c in ("precision", "precision_x"):
            if c in df.columns and len(df):
                v = df[c].to_numpy(float)
                v = v[np.isfinite(v)]
                if v.size:
                    prec = float(np.median(v))
                    break
        s = (prec if prec else 10.0) / np.asarray(grid.pixel_size[::-1])
        planes.append(ndimage.gaussian_filter(plane, sigma=np.maximum(s, 1.0)))
    return img.copy(data=np.stack(planes))


def tile(values, pixel_scale):
    """Nearest-neighbour upscaling by an integer factor (so a base pixel is a square of PNG pixels)."""
    if pixel_scale == 1:
        return values
    return np.repeat(np.repeat(values, pixel_scale, axis=0), pixel_scale, axis=1)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels on the outline of each labelled particle (label differs from a 4-neighbour)."""
    lab = np.asarray(labels)
    b = np.zeros(lab.shape, bool)
    dv = lab[1:, :] != lab[:-1, :]
    dh = lab[:, 1:] != lab[:, :-1]
    b[1:, :] |= dv & (lab[1:, :] > 0)
    b[:-1, :] |= dv & (lab[:-1, :] > 0)
    b[:, 1:] |= dh & (lab[:, 1:] > 0)
    b[:, :-1] |= dh & (lab[:, :-1] > 0)
    return b


def sample_labels(arr, lgrid, grid, transform=None):
    """Nearest-neighbour sample of a label image (on ``lgrid``) at the pixel centres of ``grid``
    (optionally mapped by ``transform`` from grid space to label space first)."""
    X, Y = np.meshgrid(grid.centers("x"), grid.centers("y"))
    pts = np.column_stack([X.ravel(), Y.ravel()])
    if transform is not None:
        pts = transform.apply(pts)
    i = np.floor((pts[:, 0] - lgrid.origin[0]) / lgrid.pixel_size[0] + 0.5).astype(np.int64)
    j = np.floor((pts[:, 1] - lgrid.origin[1]) / lgrid.pixel_size[1] + 0.5).astype(np.int64)
    ok = (i >= 0) & (i < arr.shape[1]) & (j >= 0) & (j < arr.shape[0])
    out = np.zeros(pts.shape[0], dtype=arr.dtype)
    out[ok] = arr[j[ok], i[ok]]
    return out.reshape(grid.shape)
