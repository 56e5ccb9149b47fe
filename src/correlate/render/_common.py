"""Input handling shared by the renderers: localization tables -> channels, grid, output Image."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import ElementError
from ._grid import Grid, as_grid

VALUE_UNIT = "localizations per pixel"


def channels_of(locs, split_by: str | None) -> tuple[list[str], list[pd.DataFrame], bool]:
    """Normalise the ``locs`` argument into channel names and tables.

    Returns ``(names, tables, multichannel)``; ``multichannel`` is False for one plain table that
    was not split (the result then has no ``c`` axis).
    """
    if isinstance(locs, pd.DataFrame):
        if split_by is None:
            return [str(locs.attrs.get("name", "localizations"))], [locs], False
        if split_by not in locs.columns:
            raise ElementError(
                f"cannot split by {split_by!r}: no such column (columns: {list(locs.columns)})",
                field=split_by,
            )
        keys = pd.unique(locs[split_by].dropna())
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        names = [str(k) for k in keys]
        tables = [locs[locs[split_by] == k] for k in keys]
        return names, tables, True
    if isinstance(locs, Mapping):
        if not locs:
            raise ElementError("no localization tables given (empty mapping)")
        names, tables = [], []
        for k, v in locs.items():
            if not isinstance(v, pd.DataFrame):
                raise ElementError(f"channel {k!r} is a {type(v).__name__}, expected a localization DataFrame", field=str(k))
            names.append(str(k))
            tables.append(v)
        return names, tables, True
    raise ElementError(
        f"expected a localization DataFrame or a mapping name -> DataFrame, got {type(locs).__name__}"
    )


def xy(df: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    for c in ("x", "y"):
        if c not in df.columns:
            raise ElementError(f"localizations {name!r} lack column {c!r} (nm)", field=c)
    return df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64)


def resolve_grid(tables: list[pd.DataFrame], names: list[str], grid_kwargs: dict[str, Any]) -> Grid:
    pts = None
    if grid_kwargs.get("like") is None and grid_kwargs.get("extent_nm") is None and grid_kwargs.get("origin_nm") is None:
        xs = [xy(t, n)[0] for t, n in zip(tables, names)]
        ys = [xy(t, n)[1] for t, n in zip(tables, names)]
        x, y = np.concatenate(xs), np.concatenate(ys)
        ok = np.isfinite(x) & np.isfinite(y)
        pts = (x[ok], y[ok])
    return as_grid(points=pts, **grid_kwargs)


def render_channels(
    locs,
    *,
    split_by: str | None,
    grid_kwargs: dict[str, Any],
    per_channel: Callable[[pd.DataFrame, str, Grid], tuple[np.ndarray, int]],
    method: str,
    name: str | None,
    extra_attrs: Mapping[str, Any] | None = None,
):
    """Render every channel with ``per_channel(df, name, grid) -> (image, n_inside)``; build the Image."""
    names, tables, multi = channels_of(locs, split_by)
    grid = resolve_grid(tables, names, grid_kwargs)
    planes, inside, total = [], {}, {}
    for n, t in zip(names, tables):
        img, k = per_channel(t, n, grid)
        planes.append(img)
        inside[n] = int(k)
        total[n] = int(len(t))
    return image_of(names, planes, inside, total, multi, grid, method=method, name=name, extra_attrs=extra_attrs)


def image_of(
    names: list[str],
    planes: list[np.ndarray],
    inside: Mapping[str, int],
    total: Mapping[str, int],
    multi: bool,
    grid: Grid,
    *,
    method: str,
    name: str | None,
    extra_attrs: Mapping[str, Any] | None = None,
):
    """The Image element of rendered ``planes`` (one per channel name) on ``grid``."""
    from ..elements import make_image

    attrs = {
        "render_method": method,
        "n_localizations": dict(total),
        "n_inside": dict(inside),
        "pixel_convention": "center",
    }
    if extra_attrs:
        attrs.update(extra_attrs)
    if multi:
        data = np.stack(planes)
        dims = ("c", "y", "x")
        cn = list(names)
    else:
        data = planes[0]
        dims = ("y", "x")
        cn = None
    return make_image(
        data,
        dims=dims,
        modality="smlm",
        channel_names=cn,
        value_unit=VALUE_UNIT,
        name=name,
        attrs=attrs,
        chunks=-1 if data.size <= 4096 * 4096 else 4096,
        **grid.coords(),
    )
