"""3-D morphology of labelled particles in a volume: volume, surface area, sphericity, size, centroid.

Volume is the voxel count times the voxel volume (nm^3). Surface area comes from one marching-cubes
mesh (:func:`skimage.measure.marching_cubes`, anisotropic spacing) of the particle mask smoothed
by a Gaussian of ``smooth_voxels`` (a binary mask's staircase overstates the area of a sphere by
up to ~50 %), each triangle credited to the particle it bounds, so no loop runs over particles.
Sphericity is ``pi^(1/3) (6 V)^(2/3) / A`` (1 for a sphere), the equivalent diameter
``(6 V / pi)^(1/3)``; the principal semi-axes come from the second moments of the voxels
(``sqrt(5 lambda)``, exact for a filled ellipsoid). Lengths nm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["measure_volume", "surface_mesh"]


def _face_labels(labels: np.ndarray, verts_vox: np.ndarray, faces: np.ndarray, reach: int) -> np.ndarray:
    """Label of the particle each mesh triangle bounds: the label at (or next to) its centre."""
    from scipy import ndimage as ndi

    grown = ndi.grey_dilation(labels, size=(2 * reach + 1,) * 3)
    lab = np.where(labels > 0, labels, grown)
    cen = verts_vox[faces].mean(1)
    idx = np.clip(np.round(cen).astype(int), 0, np.array(labels.shape) - 1)
    return lab[idx[:, 0], idx[:, 1], idx[:, 2]]


def surface_mesh(labels: np.ndarray, voxel_nm, origin_nm=(0.0, 0.0, 0.0), smooth_voxels: float = 1.0):
    """One marching-cubes mesh of every particle's surface.

    Returns
    -------
    verts, normals, vert_labels, faces, face_labels
        (V, 3) vertices (x, y, z nm), (V, 3) outward unit normals, (V,) label of each vertex,
        (F, 3) faces and (F,) label of each face.
    """
    from scipy import ndimage as ndi
    from skimage.measure import marching_cubes

    v = np.asarray(voxel_nm, float)
    mask = np.pad((np.asarray(labels) > 0).astype(np.float32), 2)
    f = ndi.gaussian_filter(mask, smooth_voxels) if smooth_voxels > 0 else mask
    verts, faces, normals, _ = marching_cubes(f, 0.5, spacing=tuple(float(s) for s in v[::-1]),
                                              gradient_direction="descent")
    vox = verts / v[::-1] - 2
    fl = _face_labels(labels, vox, faces, reach=2)
    vl = _face_labels(labels, vox, np.arange(len(vox))[:, None], reach=2)
    xyz = vox[:, ::-1] * v + np.asarray(origin_nm, float)
    return xyz, normals[:, ::-1], vl, faces, fl


def _surface_areas(labels: np.ndarray, voxel_nm, n: int, smooth_voxels: float) -> np.ndarray:
    area = np.zeros(n + 1)
    if n == 0:
        return area
    xyz, _, _, faces, fl = surface_mesh(labels, voxel_nm, smooth_voxels=smooth_voxels)
    tri = xyz[faces]
    a = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    area += np.bincount(fl, weights=a, minlength=n + 1)[: n + 1]
    return area


def measure_volume(labels, voxel_nm, origin_nm=(0.0, 0.0, 0.0), *, smooth_voxels: float = 1.0) -> pd.DataFrame:
    """Per-particle 3-D morphology of a label volume.

    Parameters
    ----------
    labels
        (nz, ny, nx) int labels, 0 background.
    voxel_nm, origin_nm
        (x, y, z) voxel size and position of voxel (0, 0, 0) (nm).
    smooth_voxels
        Gaussian sigma (voxels) applied to the mask before marching cubes.

    Returns
    -------
    pandas.DataFrame
        ``particle_id, x, y, z`` (centroid, nm), ``volume_nm3, surface_area_nm2, sphericity,
        equivalent_diameter_nm, semi_axis_1_nm >= semi_axis_2_nm >= semi_axis_3_nm,
        n_voxels, edge`` (touches the volume border).
    """
    lab = np.asarray(labels)
    v = np.asarray(voxel_nm, float)
    o = np.asarray(origin_nm, float)
    n = int(lab.max()) if lab.size else 0
    flat = lab.ravel()
    cnt = np.bincount(flat, minlength=n + 1).astype(float)
    zz, yy, xx = np.indices(lab.shape, sparse=False).reshape(3, -1).astype(float)
    pos = np.column_stack([xx * v[0], yy * v[1], zz * v[2]])[flat > 0]
    ll = flat[flat > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.column_stack([np.bincount(ll, weights=pos[:, i], minlength=n + 1) for i in range(3)]) / cnt[:, None]
        d = pos - mean[ll]
        second = np.stack([np.stack([np.bincount(ll, weights=d[:, i] * d[:, j], minlength=n + 1) for j in range(3)], -1)
                           for i in range(3)], -2) / cnt[:, None, None]
    vol = cnt * float(np.prod(v))
    area = _surface_areas(lab, v, n, smooth_voxels)
    ids = np.arange(1, n + 1)
    lam = np.linalg.eigvalsh(np.nan_to_num(second[1:]) + (v**2 / 12)[None] * np.eye(3)[None]) if n else np.zeros((0, 3))
    semi = np.sqrt(5 * np.clip(lam, 0, None))[:, ::-1]
    edge_ids = np.unique(np.concatenate([lab[[0, -1]].ravel(), lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()]))
    with np.errstate(invalid="ignore", divide="ignore"):
        sph = np.pi ** (1 / 3) * (6 * vol[1:]) ** (2 / 3) / area[1:]
    return pd.DataFrame({
        "particle_id": ids, "x": mean[1:, 0] + o[0], "y": mean[1:, 1] + o[1], "z": mean[1:, 2] + o[2],
        "volume_nm3": vol[1:], "surface_area_nm2": np.where(area[1:] > 0, area[1:], np.nan), "sphericity": sph,
        "equivalent_diameter_nm": np.cbrt(6 * vol[1:] / np.pi),
        "semi_axis_1_nm": semi[:, 0], "semi_axis_2_nm": semi[:, 1], "semi_axis_3_nm": semi[:, 2],
        "n_voxels": cnt[1:].astype(np.int64), "edge": np.isin(ids, edge_ids),
    })
