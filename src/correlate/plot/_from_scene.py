"""What an overlay gathers from a :class:`~correlate.scene.Scene`: the labels a registration
placed in the base's frame, fiducials with their residuals, particle outlines, all in the base image's space (nm)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._layers import Fiducials
from ._raster import base_plane, sample_labels
from ._records import pick

__all__ = ["placed_labels", "landmark_sets", "fiducials_in_base", "particles_on_grid"]


def _world_or(scene, system: str, base: str):
    """Transform from a coordinate system (an element name or 'world') to the base's space."""
    if system == base:
        from ..transforms import Identity

        return Identity()
    if system == "world":
        return scene.transform_to_world(base).inverse()
    return scene.transform(system, base)


def landmark_sets(scene, names: Sequence[str], base: str, records):
    """Landmarks relevant to the overlay, as (source_system, target_system, Landmarks)."""
    pairs = []
    for r in records:
        src = pick(r, "moving", "source", "source_system")
        dst = pick(r, "fixed", "target", "target_system")
        if src and dst:
            pairs.append((src, dst))
    lister = getattr(scene, "landmark_pairs", None) or getattr(scene, "list_landmarks", None)
    if callable(lister):
        try:
            for p in lister():
                pairs.append(tuple(p)[:2])
        except Exception:  # noqa: BLE001
            pass
    for n in names:
        pairs += [(n, base), (base, n), (n, "world")]
    seen, out = set(), []
    for a, b in pairs:
        if (a, b) in seen:
            continue
        seen.add((a, b))
        if a not in names and b not in names and a != base and b != base:
            continue
        try:
            lm = scene.get_landmarks(a, b)
        except Exception:  # noqa: BLE001 - no landmarks for this pair
            continue
        if lm is not None and len(lm):
            out.append((a, b, lm))
    # the labels' own fiducials when there are any; else those of the base's registrations
    own = [s for s in out if s[0] in names or s[1] in names]
    return own or out


def fiducials_in_base(scene, base: str, sets) -> list[Fiducials]:
    out = []
    for a, b, lm in sets:
        try:
            to_base = _world_or(scene, b, base)
            found = to_base.apply(lm.target[:, :2])
            placed = to_base.apply(_world_or(scene, a, b).apply(lm.source[:, :2])) if a != b else found
        except Exception:  # noqa: BLE001 - an unmappable set is left out of the picture, not fatal
            continue
        d = placed - found
        out.append(Fiducials(found[:, 0], found[:, 1], d[:, 0], d[:, 1], lm.used, label=f"fiducials {a}→{b}"))
    return out


def particles_on_grid(scene, base: str, grid, particles: str | None):
    """The label image named ``particles`` ('image/labels/name', or a name under the base)
    sampled (nearest) at the display grid's pixel centres."""
    if particles is None:
        return None
    if "/labels/" in particles:
        parent, lname = particles.split("/labels/", 1)
    else:
        parent, lname = base, particles
    lab = scene.get_labels(parent, lname)
    from ..render import grid_from_image

    if hasattr(lab, "dims"):
        lgrid = grid_from_image(lab if lab.dims[-2:] == ("y", "x") else lab.transpose(..., "y", "x"))
        arr = np.asarray(lab.values)
    else:
        parent_img = scene.get(parent)
        lgrid = grid_from_image(base_plane(parent_img))
        arr = np.asarray(lab)
    while arr.ndim > 2:
        arr = arr.max(axis=0)
    to_parent = None if parent == base else scene.transform(base, parent)
    return sample_labels(arr, lgrid, grid, to_parent)


def placed_labels(scene, labels: Sequence[str], base: str, *, explicit: bool = True,
                  assume_aligned: bool = False) -> tuple[list[str], list[str]]:
    """(labels that may be joined with ``base``, labels left out). A label the user named
    (``explicit``) that no registration placed raises UnplacedError; with the default label
    list such labels are left out, and the caller says so."""
    from ..errors import UnplacedError

    if assume_aligned or not hasattr(scene, "require_joinable"):
        return list(labels), []
    keep, out = [], []
    for n in labels:
        try:
            scene.require_joinable(n, base, action="overlay")
        except UnplacedError:
            if explicit:
                raise
            out.append(n)
            continue
        keep.append(n)
    return keep, out
