"""napari layer data built from a scene, without importing napari.

:func:`layer_data` builds napari "layer data tuples" ``(data, kwargs, layer_type)`` from a
:class:`~correlate.scene.Scene` without importing napari: images and label images stay lazy
(dask) and carry an ``affine`` (pixel index -> world nm, napari axis order ``(z,) y, x``);
localizations are mapped to world exactly (also through non-linear transforms) and become
points (per-point size from the localization precision, the other columns as features); a
per-particle table becomes circles (equivalent diameter) with the table's row as features.
:func:`show` adds them to a napari viewer. Everything is in the scene's ``world`` system, in nm,
and every layer says so (``units``), so napari's scale bar reads nm.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["layer_data", "show", "image_affine", "default_elements", "particle_layer"]


def _fit_affine(transform, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Least-squares affine (D+1, D+1, x/y/z order) of a transform over the box [lo, hi]."""
    d = lo.size
    axes = [np.linspace(lo[i], hi[i], 9) for i in range(d)]
    g = np.meshgrid(*axes, indexing="ij")
    p = np.column_stack([a.ravel() for a in g])
    q = transform.apply(p)
    a = np.column_stack([p, np.ones(len(p))])
    coef, *_ = np.linalg.lstsq(a, q, rcond=None)  # (D+1, D)
    m = np.eye(d + 1)
    m[:d, :] = coef.T
    return m


def image_affine(scene, name: str, image=None) -> tuple[np.ndarray, bool]:
    """The (D+1, D+1) affine from an image's pixel indices (napari order ``(z,) y, x``) to world
    nm (same order), and whether it is exact (False when the element's transform to world is
    non-linear and a least-squares affine over the image stands in for it)."""
    from ..elements import origin, pixel_size
    from ..transforms import xyz_to_ngff

    img = scene.get(name) if image is None else image
    spatial = [d for d in img.dims if d in ("z", "y", "x")]
    px, org = pixel_size(img), origin(img)
    nd = len(spatial)
    # index (ngff order) -> element nm (ngff order)
    m_px = np.eye(nd + 1)
    for i, d in enumerate(spatial):
        m_px[i, i] = px[d]
        m_px[i, nd] = org[d]
    t = scene.transform_to_world(name)
    exact = bool(getattr(t, "is_linear", True))
    if exact:
        m = np.asarray(t.matrix, float)
    else:
        xyz = [d for d in ("x", "y", "z") if d in spatial]
        lo = np.array([org[d] for d in xyz])
        hi = np.array([org[d] + px[d] * (img.sizes[d] - 1) for d in xyz])
        m = _fit_affine(t, lo, hi)
    tn = m.shape[0] - 1
    if tn != nd:  # a 2-D transform on a 3-D image (z untouched) or the other way round
        full = np.eye(nd + 1)
        k = min(tn, nd)
        full[:k, :k] = m[:k, :k]
        full[:k, nd] = m[:k, tn]
        m = full
    # x, y[, z] order -> ngff order
    lin = xyz_to_ngff(m[:nd, :nd])
    off = xyz_to_ngff(m[:nd, nd])
    m_ngff = np.eye(nd + 1)
    m_ngff[:nd, :nd] = lin
    m_ngff[:nd, nd] = off
    return m_ngff @ m_px, exact


def default_elements(scene) -> list[str]:
    """The elements a viewer shows by default: processed ones only.

    Left out: an element another was derived from (the raw table behind ``*_corrected``), a
    localization table that no registration or declaration places while others are placed (a
    calibration acquisition, in its own frame), and tables other than per-particle tables.
    """
    names = scene.names()
    sources = {str(step["source"]) for n in names for step in scene.history(n) if step.get("source")}
    placed_any = any(scene.placement(n).placed for n in names if scene.kind(n) != "table")
    out = []
    for n in names:
        kind = scene.kind(n)
        if n in sources:
            continue
        if kind == "table":
            if "label_image" in scene._entry(n):
                out.append(n)
            continue
        if kind == "localizations" and placed_any and not scene.placement(n).placed:
            continue
        out.append(n)
    return out


def _units(ndim: int) -> tuple[str, ...]:
    return ("nm",) * ndim


def _image_layer(scene, n: str, kind: str) -> tuple[Any, dict, str]:
    img = scene.get(n)
    parent = n.split("/labels/")[0] if kind == "labels" else n
    aff, exact = image_affine(scene, parent, img if kind == "image" else scene.get(parent))
    spatial = sum(d in ("z", "y", "x") for d in img.dims)
    kw: dict[str, Any] = {"name": n, "affine": aff, "units": _units(spatial),
                          "metadata": {"correlate": dict(img.attrs), "affine_exact": exact, "correlate_store": str(scene.path)}}
    if kind == "image":
        if "c" in img.dims:
            kw["channel_axis"] = img.dims.index("c")
            kw["name"] = [f"{n} {c}" for c in img.coords["c"].values]
        kw["blending"] = "additive" if img.attrs.get("modality") not in ("em",) else "translucent"
        kw["colormap"] = "gray"
    return img.data, kw, "labels" if kind == "labels" else "image"


def _points_layer(scene, n: str, color, point_size_nm, max_points) -> tuple[Any, dict, str]:
    df = scene.get(n)
    n_all = len(df)
    if max_points is not None and len(df) > max_points:
        df = df.sample(n=max_points, random_state=0).sort_index()
    w = scene.map_points(df[[c for c in ("x", "y", "z") if c in df.columns]], n, "world", assume_aligned=True)
    axes = [c for c in ("z", "y", "x") if c in w.columns]
    data = w[axes].to_numpy(float)
    if point_size_nm is not None:
        size: Any = float(point_size_nm)
    elif "precision" in df.columns:
        prec = df["precision"].to_numpy(float)
        med = np.nanmedian(prec) if np.isfinite(prec).any() else 5.0
        size = np.clip(2.0 * np.where(np.isfinite(prec), prec, med), 2.0, None)
    else:
        size = 10.0
    features = df.drop(columns=[c for c in ("x", "y", "z") if c in df.columns]).reset_index(drop=True)
    kw = {
        "name": n, "size": size, "face_color": [*color, 1.0], "border_width": 0, "blending": "additive",
        "units": _units(len(axes)), "features": features,
        "metadata": {"correlate": dict(df.attrs), "n_localizations": int(n_all), "correlate_store": str(scene.path)},
    }
    return data, kw, "points"


def particle_layer(scene, table: str = "particles", table_df=None) -> tuple[Any, dict, str]:
    """Circles of a per-particle table (centre, equivalent diameter) in world nm, napari order,
    with the table's rows as features (``shapes`` layer data)."""
    df = scene.get(table) if table_df is None else table_df
    label_image = scene._entry(table).get("label_image") if table in scene else None
    frame = (df.attrs.get("structure") or (label_image or "").split("/labels/")[0]) or "world"
    centres = scene.map_points(df[["x", "y"]], frame, "world", assume_aligned=True)[["y", "x"]].to_numpy(float)
    size = next((c for c in ("equivalent_diameter_nm", "diameter_nm") if c in df.columns), None)
    r = 0.5 * df[size].to_numpy(float) if size else np.full(len(df), 10.0)
    corners = np.stack([centres + np.column_stack([-r, -r]), centres + np.column_stack([-r, r]),
                        centres + np.column_stack([r, r]), centres + np.column_stack([r, -r])], axis=1)
    kw = {"name": table, "shape_type": "ellipse", "edge_color": "yellow", "face_color": "transparent",
          "edge_width": float(np.nanmedian(r) / 10) if len(r) else 1.0, "units": _units(2),
          "features": df.reset_index(drop=True), "metadata": {"correlate_store": str(scene.path), "table": table}}
    return list(corners), kw, "shapes"


def layer_data(
    scene,
    names: Sequence[str] | None = None,
    *,
    point_size_nm: float | None = None,
    max_points: int | None = 2_000_000,
    colors=None,
) -> list[tuple[Any, dict, str]]:
    """napari layer data tuples for a scene's elements, all placed in world nm.

    Parameters
    ----------
    scene
        An open Scene, or a path to a store.
    names
        Elements to include (default: :func:`default_elements`, the processed ones).
    point_size_nm
        One point size for every localization (default: twice each localization's precision,
        at least 2 nm; 10 nm without a precision column).
    max_points
        Localization tables larger than this are subsampled (seeded) for display.
    colors
        Per-localization-table colours (list or mapping name -> colour).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``layer_type`` is ``"image"``, ``"labels"``, ``"points"`` or ``"shapes"``. Images: a dask
        array and ``affine`` (napari axis order), ``channel_axis`` for multi-channel images.
        Points: an (N, 2|3) array of world positions in napari order (``(z,) y, x``) with the
        table's other columns as ``features``. Shapes: one circle per particle. Every layer has
        ``units`` nm and ``metadata["correlate_store"]``.
    """
    from ..render import channel_colors

    if isinstance(scene, (str, bytes)) or hasattr(scene, "__fspath__"):
        from ..scene import Scene

        scene = Scene.open(scene)
    if names is None:
        names = default_elements(scene)
    locs = [n for n in names if scene.kind(n) == "localizations"]
    cols = channel_colors(locs, colors)
    out: list[tuple[Any, dict, str]] = []
    for n in names:
        kind = scene.kind(n)
        if kind in ("image", "labels"):
            out.append(_image_layer(scene, n, kind))
        elif kind == "localizations":
            out.append(_points_layer(scene, n, cols[n], point_size_nm, max_points))
        elif kind == "table" and scene._entry(n).get("label_image"):
            out.append(particle_layer(scene, n))
    return out


def show(scene, names: Sequence[str] | None = None, *, viewer=None, **kwargs):
    """Open the scene in a napari viewer (all layers in world nm); returns the viewer.

    Raises
    ------
    ImportError
        If napari is not installed (``pip install 'correlate[napari]'``).
    """
    try:
        import napari
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("correlate.napari.show needs napari: pip install 'correlate[napari]'") from exc
    if viewer is None:
        viewer = napari.Viewer()
    for data, kw, kind in layer_data(scene, names, **kwargs):
        getattr(viewer, f"add_{kind}")(data, **kw)
    viewer.scale_bar.visible = True
    return viewer
