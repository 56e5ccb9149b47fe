"""A scene as SpatialData: images, labels, points, particle circles and the per-particle table.

Mapping (one coordinate system, ``world``, in nm):

- images and label images keep their pixels; their transformation to ``world`` is the affine
  from pixel indices to world nm (an element placed through a non-linear transform gets the
  least-squares affine over the image, and ``attrs["correlate"]["affine_exact"]`` is False);
- localizations become points with coordinates already in world nm (exact, also through
  non-linear transforms) and the identity transformation; every other column is kept;
- a per-particle table becomes an AnnData table annotating its label image (``region`` the
  label element, ``instance_key`` ``particle_id``, the label value), with every column in
  ``obs`` and the numeric ones in ``X``; and circles (equivalent diameter) as shapes.

SpatialData element names cannot hold ``/``: ``em/labels/particles`` becomes
``em_labels_particles``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["to_spatialdata", "write_spatialdata", "from_spatialdata"]

WORLD = "world"


def _need():
    try:
        import spatialdata
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorrelateError("SpatialData export needs spatialdata: pip install 'correlate[spatialdata]'",
                             field="spatialdata") from exc
    return spatialdata


def _sd_name(name: str) -> str:
    return name.replace("/", "_")


def _affine(matrix_ngff: np.ndarray, axes: Sequence[str]):
    from spatialdata.transformations import Affine

    return Affine(np.asarray(matrix_ngff, float), input_axes=tuple(axes), output_axes=tuple(axes))


def _raster(scene, name: str, kind: str):
    from spatialdata.models import Image2DModel, Labels2DModel

    from ..napari._layers import image_affine

    img = scene.get(name)
    parent = name.split("/labels/")[0] if kind == "labels" else name
    aff, exact = image_affine(scene, parent, img if kind == "image" else scene.get(parent))
    spatial = [d for d in img.dims if d in ("z", "y", "x")]
    if len(spatial) != 2:
        raise CorrelateError(f"{name!r} has {len(spatial)} spatial axes; the SpatialData export is 2-D",
                             field=name)
    t = {WORLD: _affine(aff, spatial)}
    if kind == "labels":
        out = Labels2DModel.parse(img.data, dims=("y", "x"), transformations=t)
    else:
        data = img.data if "c" in img.dims else img.data[None]
        chans = [str(c) for c in img.coords["c"].values] if "c" in img.dims else [parent]
        out = Image2DModel.parse(data, dims=("c", "y", "x"), c_coords=chans, transformations=t)
    out.attrs["correlate"] = {"element": name, "affine_exact": bool(exact), "units": "nm",
                              "modality": img.attrs.get("modality")}
    return out


def _points(scene, name: str):
    import dask.dataframe as dd
    from spatialdata.models import PointsModel
    from spatialdata.transformations import Identity

    df = scene.get(name)
    xyz = [c for c in ("x", "y", "z") if c in df.columns]
    w = scene.map_points(df[xyz], name, WORLD)
    out = df.copy()
    out[xyz] = w[xyz].to_numpy(float)
    out.attrs = {}
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype) or out[c].dtype == object:
            out[c] = out[c].astype(str)
    pts = PointsModel.parse(dd.from_pandas(out, npartitions=max(1, len(out) // 2_000_000 + 1)),
                            coordinates={c: c for c in xyz}, transformations={WORLD: Identity()})
    pts.attrs["correlate"] = {"element": name, "units": "nm"}
    return pts


def _table(scene, name: str):
    import anndata as ad
    from spatialdata.models import ShapesModel, TableModel
    from spatialdata.transformations import Identity

    df = scene.get(name).reset_index(drop=True)
    label_image = scene._entry(name).get("label_image")
    region = _sd_name(label_image)
    numeric = df.select_dtypes(include=[np.number, bool]).astype(float)
    obs = df.copy()
    obs.attrs = {}
    obs.index = obs.index.astype(str)
    obs["region"] = pd.Categorical([region] * len(df))
    obs["particle_id"] = df["particle_id"].astype(int).to_numpy()
    adata = ad.AnnData(X=numeric.to_numpy(float), obs=obs,
                       var=pd.DataFrame(index=[str(c) for c in numeric.columns]))
    table = TableModel.parse(adata, region=region, region_key="region", instance_key="particle_id")
    frame = label_image.split("/labels/")[0]
    centres = scene.map_points(df[["x", "y"]], frame, WORLD, assume_aligned=True)[["x", "y"]].to_numpy(float)
    size = next((c for c in ("equivalent_diameter_nm", "diameter_nm") if c in df.columns), None)
    radius = 0.5 * df[size].to_numpy(float) if size else np.full(len(df), 10.0)
    shapes = ShapesModel.parse(centres, geometry=0, radius=radius, index=df["particle_id"].astype(int).to_numpy(),
                               transformations={WORLD: Identity()})
    return table, shapes


def _require_one_frame(scene, names: Sequence[str], assume_aligned: bool) -> None:
    """Every exported element must stand in the frame of the first image (or first element):
    SpatialData's ``world`` would otherwise overlay frames no registration relates."""
    if assume_aligned:
        return
    placed = [n for n in names if scene.kind(n) in ("image", "localizations")]
    if len(placed) < 2:
        return
    ref = next((n for n in placed if scene.kind(n) == "image"), placed[0])
    for n in placed:
        if n != ref:
            scene.require_joinable(n, ref, action="export in one coordinate system")


def to_spatialdata(scene, names: Sequence[str] | None = None, *, assume_aligned: bool = False):
    """A :class:`spatialdata.SpatialData` of a scene's elements, in one ``world`` system (nm).

    Parameters
    ----------
    scene
        An open Scene or a store path.
    names
        Elements to include (default: every image, label image, localization table and
        per-particle table).
    assume_aligned
        Export elements that no registration places in the first image's frame as if they were;
        otherwise such an element raises :class:`~correlate.errors.UnplacedError` (naming the
        registration to run).
    """
    sd = _need()
    if isinstance(scene, (str, Path)):
        from ..scene import Scene

        scene = Scene.open(scene)
    if names is None:
        names = [n for n in scene.names() if scene.kind(n) != "table" or scene._entry(n).get("label_image")]
    _require_one_frame(scene, names, assume_aligned)
    parts: dict[str, dict[str, Any]] = {"images": {}, "labels": {}, "points": {}, "shapes": {}, "tables": {}}
    for n in names:
        kind = scene.kind(n)
        if kind == "image":
            parts["images"][_sd_name(n)] = _raster(scene, n, "image")
        elif kind == "labels":
            parts["labels"][_sd_name(n)] = _raster(scene, n, "labels")
        elif kind == "localizations":
            parts["points"][_sd_name(n)] = _points(scene, n)
        elif kind == "table" and scene._entry(n).get("label_image"):
            label = scene._entry(n)["label_image"]
            if label not in names:
                parts["labels"][_sd_name(label)] = _raster(scene, label, "labels")
            parts["tables"][_sd_name(n)], parts["shapes"][f"{_sd_name(n)}_circles"] = _table(scene, n)
    return sd.SpatialData(**parts, attrs={"correlate": {"source": str(scene.path), "units": "nm"}})


def write_spatialdata(scene, path: str | Path, names: Sequence[str] | None = None, *, overwrite: bool = False,
                      assume_aligned: bool = False):
    """Write :func:`to_spatialdata` of ``scene`` as a SpatialData Zarr store at ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CorrelateError("exists; pass overwrite", path=path)
    sdata = to_spatialdata(scene, names, assume_aligned=assume_aligned)
    sdata.write(path, overwrite=overwrite)
    return sdata


def _pixel_grid(matrix: np.ndarray) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Split an (y, x) index -> world affine into pixel size, origin and the remaining linear map."""
    lin = matrix[:2, :2]
    px = np.linalg.norm(lin, axis=0)  # column norms: nm per index step along y, x
    rest = np.eye(3)
    rest[:2, :2] = lin / px
    rest[:2, 2] = matrix[:2, 2]
    return {"y": float(px[0]), "x": float(px[1])}, {"y": 0.0, "x": 0.0}, rest


def from_spatialdata(sdata, path: str | Path, *, overwrite: bool = False):
    """Build a scene at ``path`` from a SpatialData object or store (its ``world`` system, or
    its only coordinate system, taken as nm).

    Images and labels keep their pixels and their transformation; points become localization
    tables; tables that annotate a label element become per-particle tables. Every element is
    declared aligned to world with an unknown error (the SpatialData store says where it is,
    not how well).
    """
    sd = _need()
    from spatialdata.transformations import get_transformation

    from ..elements import make_image, make_localizations, make_table
    from ..scene import Scene
    from ..transforms import Affine, xyz_to_ngff

    if isinstance(sdata, (str, Path)):
        sdata = sd.read_zarr(sdata)
    systems = set(sdata.coordinate_systems)
    cs = WORLD if WORLD in systems else (systems.pop() if len(systems) == 1 else None)
    if cs is None:
        raise CorrelateError(f"no 'world' coordinate system and several others ({sorted(systems)}); "
                             "transform the object to one first", field="coordinate_system")
    scene = Scene.create(path, overwrite=overwrite)
    names: dict[str, str] = {}
    for kind in ("images", "labels"):
        for key, el in getattr(sdata, kind).items():
            arr = el if not hasattr(el, "children") else el["scale0"].ds[next(iter(el["scale0"].ds.data_vars))]
            m = get_transformation(el, to_coordinate_system=cs).to_affine_matrix(input_axes=("y", "x"), output_axes=("y", "x"))
            px, org, rest = _pixel_grid(np.asarray(m, float))
            lin_xy = np.eye(3)
            lin_xy[:2, :2] = xyz_to_ngff(rest[:2, :2])
            lin_xy[:2, 2] = xyz_to_ngff(rest[:2, 2])
            t = Affine(lin_xy)
            if kind == "images":
                data = arr.data
                dims = tuple(arr.dims)
                if "c" in dims and arr.sizes["c"] == 1:
                    data, dims = data[0], dims[1:]
                mod = (el.attrs.get("correlate") or {}).get("modality") or "lm"
                scene.add(key, make_image(data, pixel_size_nm=px, origin_nm=org, dims=dims, modality=mod), transform=t)
                scene.declare_aligned(key, note=f"from SpatialData ({cs})")
            else:
                parent = key.split("_labels_")[0]
                if parent in scene:
                    scene.add_labels(parent, key.split("_labels_", 1)[1], np.asarray(arr.data))
                    names[key] = f"{parent}/labels/{key.split('_labels_', 1)[1]}"
    for key, el in sdata.points.items():
        df = el.compute()
        m = get_transformation(el, to_coordinate_system=cs).to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
        scene.add(key, make_localizations(pd.DataFrame(df).reset_index(drop=True), source_format="spatialdata"),
                  transform=Affine(np.asarray(m, float)))
        scene.declare_aligned(key, note=f"from SpatialData ({cs})")
    for key, adata in sdata.tables.items():
        attrs = adata.uns.get("spatialdata_attrs", {})
        region = attrs.get("region")
        region = region[0] if isinstance(region, list) and len(region) == 1 else region
        if isinstance(region, str) and region in names:
            obs = adata.obs.drop(columns=[c for c in ("region",) if c in adata.obs.columns]).reset_index(drop=True)
            scene.add_table(key, make_table(obs), label_image=names[region])
    return scene
