"""View a scene in napari (optional: ``pip install napari[all]``).

:func:`layer_data` builds napari "layer data tuples" ``(data, kwargs, layer_type)`` from a
:class:`~correlate.scene.Scene` without importing napari: images and label images stay lazy
(dask) and carry an ``affine`` (pixel index -> world nm, napari axis order ``(z,) y, x``);
localizations are mapped to world exactly (also through non-linear transforms) and become
points. :func:`show` adds them to a napari viewer. Everything is in the scene's ``world`` system,
in nm, so napari's scale bar reads nm.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["layer_data", "show", "image_affine"]


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
    from .elements import origin, pixel_size
    from .transforms import xyz_to_ngff

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
        Elements to include (default: every image, label image and localization table).
    point_size_nm
        Point size for localizations (default: twice their median precision, at least 5 nm;
        10 nm without a precision column).
    max_points
        Localization tables larger than this are subsampled (seeded) for display.
    colors
        Per-localization-table colours (list or mapping name -> colour).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``layer_type`` is ``"image"``, ``"labels"`` or ``"points"``. Images: a dask array and
        ``affine`` (napari axis order), ``channel_axis`` for multi-channel images, ``metadata``
        with the element's attrs. Points: an (N, 2|3) array of world positions in napari order
        (``(z,) y, x``).
    """
    from .render import channel_colors

    if isinstance(scene, (str, bytes)) or hasattr(scene, "__fspath__"):
        from .scene import Scene

        scene = Scene.open(scene)
    all_names = scene.names()
    if names is None:
        names = [n for n in all_names if scene.kind(n) in ("image", "labels", "localizations")]
    locs = [n for n in names if scene.kind(n) == "localizations"]
    cols = channel_colors(locs, colors)
    out: list[tuple[Any, dict, str]] = []
    for n in names:
        kind = scene.kind(n)
        if kind in ("image", "labels"):
            img = scene.get(n)
            parent = n.split("/labels/")[0] if kind == "labels" else n
            aff, exact = image_affine(scene, parent, img if kind == "image" else scene.get(parent))
            kw: dict[str, Any] = {"name": n, "affine": aff, "metadata": {"correlate": dict(img.attrs), "affine_exact": exact}}
            data = img.data
            if kind == "image":
                if "c" in img.dims:
                    kw["channel_axis"] = img.dims.index("c")
                    kw["name"] = [f"{n} {c}" for c in img.coords["c"].values]
                kw["blending"] = "additive" if img.attrs.get("modality") not in ("em",) else "translucent"
                kw["colormap"] = "gray"
            out.append((data, kw, "labels" if kind == "labels" else "image"))
        elif kind == "localizations":
            df = scene.get(n)
            if max_points is not None and len(df) > max_points:
                df = df.sample(n=max_points, random_state=0)
            w = scene.map_points(df[[c for c in ("x", "y", "z") if c in df.columns]], n, "world")
            axes = [c for c in ("z", "y", "x") if c in w.columns]
            data = w[axes].to_numpy(float)
            size = point_size_nm
            if size is None:
                prec = df["precision"].to_numpy(float) if "precision" in df.columns else np.array([])
                prec = prec[np.isfinite(prec)]
                size = max(5.0, 2.0 * float(np.median(prec))) if prec.size else 10.0
            kw = {
                "name": n,
                "size": size,
                "face_color": [*cols[n], 1.0],
                "border_width": 0,
                "blending": "additive",
                "metadata": {"correlate": dict(df.attrs), "n_localizations": int(len(df))},
            }
            out.append((data, kw, "points"))
    return out


def show(scene, names: Sequence[str] | None = None, *, viewer=None, **kwargs):
    """Open the scene in a napari viewer (all layers in world nm); returns the viewer.

    Raises
    ------
    ImportError
        If napari is not installed (``pip install napari[all]``).
    """
    try:
        import napari
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("correlate.napari.show needs napari: pip install 'napari[all]'") from exc
    if viewer is None:
        viewer = napari.Viewer()
    for data, kw, kind in layer_data(scene, names, **kwargs):
        getattr(viewer, f"add_{kind}")(data, **kw)
    viewer.scale_bar.visible = True
    viewer.scale_bar.unit = "nm"
    return viewer
