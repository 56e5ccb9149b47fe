"""Per-channel colour composites of rendered images (additive colour mixing)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ElementError

__all__ = ["DEFAULT_COLORS", "channel_colors", "composite"]

#: Colours given to channels in order (colour-blind-friendly pair first: magenta and green).
DEFAULT_COLORS: tuple[str, ...] = ("#ff00ff", "#00ff00", "#00c8ff", "#ffc800", "#ff5000", "#ffffff")


def _rgb(color) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    try:
        return tuple(float(v) for v in to_rgb(color))  # type: ignore[return-value]
    except ValueError as exc:
        raise ElementError(f"not a colour: {color!r}", field="colors") from exc


def channel_colors(names: Sequence[str], colors: Sequence[Any] | Mapping[str, Any] | None = None) -> dict[str, tuple[float, float, float]]:
    """RGB colour (0-1 floats) per channel name: from ``colors`` (a list in channel order or a
    mapping name -> colour, any matplotlib colour spec) or :data:`DEFAULT_COLORS`."""
    out = {}
    for i, n in enumerate(names):
        if isinstance(colors, Mapping) and n in colors:
            c = colors[n]
        elif colors is not None and not isinstance(colors, Mapping) and i < len(colors):
            c = colors[i]
        else:
            c = DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
        out[str(n)] = _rgb(c)
    return out


def _planes(image) -> tuple[list[str], np.ndarray]:
    """(names, (C, ny, nx) float array) from an Image element or a numpy array."""
    if hasattr(image, "dims"):
        if "c" in image.dims:
            names = [str(c) for c in image.coords["c"].values]
            arr = np.asarray(image.transpose("c", "y", "x").values, dtype=float)
        else:
            names = [str(image.name or "localizations")]
            arr = np.asarray(image.transpose("y", "x").values, dtype=float)[None]
        return names, arr
    arr = np.asarray(image, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ElementError(f"expected a (c, y, x) or (y, x) image, got shape {arr.shape}")
    return [f"c{i}" for i in range(arr.shape[0])], arr


def composite(
    image,
    colors: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    limits: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    percentile: float = 99.5,
    gamma: float = 1.0,
    alpha: bool = False,
    floor: float = 1e-3,
) -> np.ndarray:
    """Colour composite of a (multi-channel) rendered image.

    Each channel is scaled to 0-1 between its limits (default: 0 and the ``percentile`` of its
    pixels above ``floor``), raised to ``1/gamma``, tinted with its colour and the channels are added.

    Parameters
    ----------
    image
        Image element with dims ``(c, y, x)`` or ``(y, x)``, or a numpy array of that shape.
    colors
        Per-channel colours (list in channel order or mapping channel name -> colour).
    limits
        ``(lo, hi)`` for all channels or a mapping per channel name.
    percentile
        Upper limit percentile when ``limits`` is not given.
    gamma
        Display gamma (> 1 brightens faint pixels).
    alpha
        Return RGBA whose alpha is the brightest scaled channel, for laying over another image.
    floor
        Pixels at or below ``lo + floor`` are left out when the percentile is taken (the faint
        tails of Gaussian renders would otherwise pull it down).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx, 3)`` (or ``(ny, nx, 4)`` with ``alpha``) float RGB in [0, 1], row 0 = y pixel 0.
    """
    names, arr = _planes(image)
    cols = channel_colors(names, colors)
    rgb = np.zeros(arr.shape[1:] + (3,), dtype=float)
    amax = np.zeros(arr.shape[1:], dtype=float)
    for n, plane in zip(names, arr):
        if isinstance(limits, Mapping):
            lo, hi = limits.get(n, (None, None))
        elif limits is not None:
            lo, hi = limits
        else:
            lo, hi = None, None
        if lo is None:
            lo = 0.0
        if hi is None:
            nz = plane[plane > lo + floor]
            hi = float(np.percentile(nz, percentile)) if nz.size else lo + 1.0
        if hi <= lo:
            hi = lo + 1.0
        s = np.clip((plane - lo) / (hi - lo), 0.0, 1.0)
        if gamma != 1.0:
            s = s ** (1.0 / gamma)
        rgb += s[..., None] * np.asarray(cols[n])[None, None, :]
        amax = np.maximum(amax, s)
    rgb = np.clip(rgb, 0.0, 1.0)
    if alpha:
        return np.concatenate([rgb, amax[..., None]], axis=-1)
    return rgb
