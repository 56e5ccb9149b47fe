"""Fiducials excluded from particle segmentation by where they are, not by what they look like.

The positions come from the landmarks of registrations of the structure image (the fiducials that
were paired for it, in its own frame) and from the user. An object is a fiducial when it contains
such a position or its centroid lies within its equivalent radius (plus ``tolerance_px``) of one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ElementError

__all__ = ["as_positions", "landmark_positions", "objects_at"]


def as_positions(positions: Any, *, field: str = "exclude_at") -> np.ndarray:
    """(K, 2) float positions (nm, x, y) from an array-like or a table with ``x``, ``y`` columns.

    None gives an empty (0, 2) array. Three columns (x, y, z) keep x, y.
    """
    if positions is None:
        return np.zeros((0, 2))
    if isinstance(positions, pd.DataFrame):
        if not {"x", "y"} <= set(positions.columns):
            raise ElementError(f"{field}: a table of positions needs columns x, y (nm); got "
                               f"{list(positions.columns)[:8]}", field=field)
        arr = positions[["x", "y"]].to_numpy(float)
    else:
        arr = np.asarray(positions, dtype=float)
        if arr.size == 0:
            return np.zeros((0, 2))
        arr = np.atleast_2d(arr)
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ElementError(f"{field}: expected (K, 2) positions (x, y nm), got shape {arr.shape}", field=field)
        arr = arr[:, :2]
    if not np.isfinite(arr).all():
        raise ElementError(f"{field}: {int((~np.isfinite(arr)).any(1).sum())} positions are not finite", field=field)
    return arr


def landmark_positions(scene, element: str, *, used_only: bool = True) -> tuple[np.ndarray, list[str], int]:
    """Positions (nm, ``element``'s own frame) of the stored landmarks of every registration
    whose source or target is ``element``.

    With ``used_only`` the pairs the fit rejected as outliers are left out: an outlier may pair
    a particle that a bead detector took for a bead. Returns (positions (K, 2), the landmark
    sets they came from ``"a__b"``, the number of outlier pairs left out).
    """
    pts: list[np.ndarray] = []
    sets: list[str] = []
    n_out = 0
    if not hasattr(scene, "landmark_pairs"):
        return np.zeros((0, 2)), sets, 0
    for a, b in scene.landmark_pairs():
        if element not in (a, b):
            continue
        lm = scene.get_landmarks(a, b)
        keep = np.asarray(lm.used, bool) if used_only else np.ones(len(lm.source), bool)
        n_out += int((~keep).sum()) * ((a == element) + (b == element))
        if a == element:
            pts.append(np.asarray(lm.source, float)[keep, :2])
        if b == element:
            pts.append(np.asarray(lm.target, float)[keep, :2])
        sets.append(f"{a}__{b}")
    return (np.vstack(pts) if pts else np.zeros((0, 2))), sets, n_out


def objects_at(
    positions_nm: np.ndarray,
    labels: np.ndarray,
    cx_px: np.ndarray,
    cy_px: np.ndarray,
    r_px: np.ndarray,
    *,
    origin_nm: dict,
    pixel_nm: dict,
    tolerance_px: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Which labelled objects hold a given position.

    Parameters
    ----------
    positions_nm
        (K, 2) positions x, y (nm) in the image's frame.
    labels
        (H, W) int labels 1..N.
    cx_px, cy_px, r_px
        (N,) centroid (pixel indices) and equivalent radius (pixels) of each label.
    origin_nm, pixel_nm
        ``{"x", "y"}`` origin (centre of pixel 0, 0) and pixel size (nm) of the image.
    tolerance_px
        Added to each object's radius (pixels).

    Returns
    -------
    (is_fiducial (N,) bool, matched (K,) bool: the position fell on or near an object)
    """
    from scipy.spatial import cKDTree

    n = len(cx_px)
    k = len(positions_nm)
    hit = np.zeros(n, bool)
    matched = np.zeros(k, bool)
    if k == 0 or n == 0:
        return hit, matched
    ix = (positions_nm[:, 0] - origin_nm["x"]) / pixel_nm["x"]
    iy = (positions_nm[:, 1] - origin_nm["y"]) / pixel_nm["y"]
    jx = np.rint(ix).astype(np.int64)
    jy = np.rint(iy).astype(np.int64)
    h, w = labels.shape
    on = (jx >= 0) & (jx < w) & (jy >= 0) & (jy < h)
    lab_at = np.zeros(k, np.int64)
    lab_at[on] = labels[jy[on], jx[on]]
    hit[lab_at[lab_at > 0] - 1] = True
    matched |= lab_at > 0
    # centroid within the object's radius (+ tolerance) of a position
    ok = np.isfinite(cx_px) & np.isfinite(cy_px) & np.isfinite(r_px)
    if ok.any():
        idx = np.flatnonzero(ok)
        reach = r_px[idx] + float(tolerance_px)
        pos_px = np.column_stack([ix, iy])
        cen = np.column_stack([cx_px[idx], cy_px[idx]])
        d, _ = cKDTree(pos_px).query(cen, k=1)
        hit[idx[d <= reach]] = True
        kk = min(8, idx.size)
        d2, j2 = cKDTree(cen).query(pos_px, k=kk)
        d2 = np.asarray(d2).reshape(k, kk)
        j2 = np.asarray(j2).reshape(k, kk)
        matched |= (d2 <= reach[np.minimum(j2, idx.size - 1)]).any(axis=1)
    return hit, matched


def structure_exclusions(scene, structure: str, fiducials: Any = None, *, from_landmarks: bool = True,
                         segmentation: dict | None = None) -> tuple[dict, dict]:
    """Segmentation keyword arguments with ``exclude_at`` filled from the scene and the user.

    Parameters
    ----------
    scene
        The Scene holding ``structure``.
    structure
        Name of the EM or AFM image.
    fiducials
        User positions (K, 2) nm or a table with x, y, in the structure's own frame.
    from_landmarks
        Add the landmarks (pairs used by the fit) of every stored registration whose source or
        target is ``structure``.
    segmentation
        The user's segmentation keyword arguments (an ``exclude_at`` there is kept too).

    Returns
    -------
    (keyword arguments for :func:`segment_particles`, a record of where the positions came from)
    """
    kw = dict(segmentation or {})
    own = as_positions(kw.pop("exclude_at", None))
    user = as_positions(fiducials, field="fiducials")
    lm, sets, n_out = landmark_positions(scene, structure) if from_landmarks else (np.zeros((0, 2)), [], 0)
    pos = np.vstack([lm, user, own])
    record = {"n_landmark_positions": int(len(lm)), "landmark_sets": sets, "n_outlier_landmarks_ignored": n_out,
              "n_user_positions": int(len(user) + len(own))}
    kw["exclude_at"] = pos
    return kw, record


def exclusion_notes(structure: str, record: dict, seg) -> list[str]:
    """Notes for the analysis summary: no fiducial positions known (AFM), positions without object."""
    notes: list[str] = []
    n_pos = int(record.get("n_landmark_positions", 0)) + int(record.get("n_user_positions", 0))
    modality = seg.info.get("modality")
    if n_pos == 0 and modality == "afm" and not seg.info.get("fiducial_height_ratio"):
        notes.append(f"no fiducial positions known for {structure!r} (no stored landmarks of a registration "
                     "of it, no fiducials= given): every object, gold beads too, is measured as a particle; "
                     "register it first or pass fiducials=")
    unmatched = int(seg.info.get("n_exclude_at_unmatched", 0))
    if n_pos and unmatched:
        notes.append(f"{unmatched} of {n_pos} fiducial positions fell on no object of {structure!r} "
                     "(below the threshold, filtered by size, or outside the image)")
    return notes
