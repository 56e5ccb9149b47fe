"""Particle segmentation in EM volumes (tomograms, FIB-SEM or serial-section z-stacks).

The 3-D counterpart of :func:`~correlate.analysis.segment_em`, on anisotropic voxels (nm):

1. Signal: the volume minus its background (the median), smoothed by a Gaussian of
   ``smooth_nm`` (default one voxel along each axis); the noise is the robust (MAD) spread of
   the smoothed signal, which is mostly background. The polarity (dense material ``"dark"`` or
   ``"bright"``) is the side with more voxels beyond ``k_sigma`` noise; the contrast is then
   positive for dense material.
2. Detection: hysteresis threshold (``low_sigma`` and ``k_sigma`` times the noise), objects
   smaller than a ball of ``min_diameter_nm`` (default: four smoothing widths) dropped.
3. Boundary: each object is re-thresholded at ``edge_fraction`` (default 0.5, the half maximum)
   of its own peak (the 95th percentile of its contrast) within a dilation of it; the half-maximum
   of a blurred edge sits on the edge, where a noise threshold sits outside it by a blur width.
   Holes are filled (a liposome's lumen is part of the particle) in 3-D and plane by plane, so
   a shell whose weak poles fall below half maximum still closes. A membrane thinner than the
   blur has its outer half maximum outside the membrane: shells (more than 10 % of the particle
   below half maximum, its lumen) are drawn to ``membrane_nm / 2`` outside the membrane's centre,
   found from the half-maximum shell's measured width.
4. Dense fiducials (gold): an object whose peak exceeds ``fiducial_ratio`` times the median peak
   of the objects is gold (``exclude_fiducials``), and so is an object at a position of
   ``exclude_at`` (nm, x, y, z); both are reported, not labelled.

Every estimated parameter is in ``VolumeSegmentation.info["estimated"]`` with its source
(``"estimated"`` or ``"user"``) in ``info["source"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ..registration._detect_volume import volume_grid

__all__ = ["VolumeSegmentation", "segment_volume", "volume_grid"]


@dataclass
class VolumeSegmentation:
    """Result of :func:`segment_volume`.

    Attributes
    ----------
    labels
        (nz, ny, nx) int32: 0 background, 1..N particles.
    voxel_nm
        (x, y, z) voxel size (nm).
    origin_nm
        (x, y, z) position of voxel (0, 0, 0) (its centre, nm).
    contrast
        (nz, ny, nx) float32 smoothed contrast (dense material positive).
    fiducials
        Objects taken for fiducials: ``x, y, z`` (nm), ``volume_nm3``, ``reason``.
    info
        ``estimated`` parameters, their ``source``, and counts.
    """

    labels: np.ndarray
    voxel_nm: tuple[float, float, float]
    origin_nm: tuple[float, float, float]
    contrast: np.ndarray
    fiducials: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_particles(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    def measure(self, **kwargs) -> pd.DataFrame:
        """Per-particle 3-D morphology (see :func:`~correlate.analysis.measure_volume`)."""
        from ._morphology3d import measure_volume

        return measure_volume(self.labels, self.voxel_nm, self.origin_nm, **kwargs)


def _polarity(c: np.ndarray, noise: float, k: float, given: str | None) -> tuple[float, str, dict]:
    hi = int(np.count_nonzero(c > k * noise))
    lo = int(np.count_nonzero(c < -k * noise))
    seen = {"voxels_above": hi, "voxels_below": lo}
    if given is not None:
        if given not in ("dark", "bright"):
            raise CorrelateError(f"polarity must be 'dark' or 'bright', got {given!r}", field="polarity")
        return (1.0 if given == "bright" else -1.0), given, seen
    if max(hi, lo) == 0 or 0.5 < hi / max(lo, 1) < 2.0:
        raise CorrelateError(
            f"cannot tell dense material from background: {hi} voxels above and {lo} below "
            f"+-{k:g} noise; give polarity='dark' or 'bright'", field="polarity")
    return (1.0, "bright", seen) if hi > lo else (-1.0, "dark", seen)


def _peaks(lab: np.ndarray, c: np.ndarray, n: int, q: float) -> np.ndarray:
    """(n + 1,) ``q`` quantile of ``c`` inside each label (index 0 unused), without a loop over labels."""
    m = lab > 0
    ll, vv = lab[m], c[m]
    order = np.lexsort((vv, ll))
    ll, vv = ll[order], vv[order]
    counts = np.bincount(ll, minlength=n + 1)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    idx = start + np.clip((q * (counts - 1)).astype(int), 0, None)
    out = np.full(n + 1, np.nan)
    ok = counts > 0
    out[ok] = vv[np.minimum(idx[ok], len(vv) - 1)]
    return out


def segment_volume(volume, voxel_nm=None, origin_nm=None, *, polarity: str | None = None,
                   smooth_nm=None, k_sigma: float = 6.0, low_sigma: float = 3.0,
                   min_diameter_nm: float | None = None, edge_fraction: float = 0.5,
                   exclude_fiducials: bool = False, fiducial_ratio: float = 2.5,
                   exclude_at=None, membrane_nm: float = 5.0) -> VolumeSegmentation:
    """Segment particles in an EM volume.

    Parameters
    ----------
    volume
        (z, y, x) xarray image with nm coordinates (e.g. from ``correlate.io.read("x.mrc")``), or
        a numpy array with ``voxel_nm``.
    voxel_nm, origin_nm
        (x, y, z) voxel size and origin (nm); taken from the image coordinates when None.
    polarity
        ``"dark"`` / ``"bright"`` dense material; None: estimated.
    smooth_nm
        Gaussian smoothing sigma (nm), a number or (x, y, z); None: one voxel along each axis.
    k_sigma, low_sigma
        Hysteresis thresholds in noise units (the noise is estimated).
    min_diameter_nm
        Smallest particle (equivalent diameter, nm); None: four smoothing widths.
    edge_fraction
        Fraction of each particle's peak contrast at which its boundary is drawn.
    exclude_fiducials, fiducial_ratio
        Leave out objects whose peak contrast exceeds ``fiducial_ratio`` times the median peak.
    exclude_at
        (K, 3) positions (nm, x, y, z) of known fiducials (or a table with x, y, z); objects
        there are left out.
    membrane_nm
        Thickness of a shell particle's membrane (nm; a lipid bilayer is 4-6 nm): a shell's
        boundary is drawn half of it outside the membrane's centre (see :func:`_shell_shift`).

    Returns
    -------
    VolumeSegmentation
    """
    from scipy import ndimage as ndi
    from skimage.filters import apply_hysteresis_threshold

    arr, v, o = volume_grid(volume, voxel_nm, origin_nm)
    src = {}
    if smooth_nm is None:
        s_nm, src["smooth_nm"] = np.array(v), "estimated"
    else:
        s_nm, src["smooth_nm"] = np.broadcast_to(np.asarray(smooth_nm, float), (3,)).copy(), "user"
    x = arr.astype(np.float32)
    bg = float(np.median(x))
    s = ndi.gaussian_filter(x - bg, (s_nm / np.array(v))[::-1])
    noise = float(1.4826 * np.median(np.abs(s - np.median(s))))
    if not noise > 0:
        raise CorrelateError("the smoothed volume has no noise (constant?): nothing to threshold", field="volume")
    sign, pol, seen = _polarity(s, noise, k_sigma, polarity)
    src["polarity"] = "user" if polarity else "estimated"
    c = (sign * s).astype(np.float32)
    seeds = apply_hysteresis_threshold(c, low_sigma * noise, k_sigma * noise)
    if min_diameter_nm is None:
        min_diameter_nm, src["min_diameter_nm"] = 4.0 * float(np.max(s_nm)), "estimated"
    else:
        src["min_diameter_nm"] = "user"
    min_vox = np.pi / 6 * min_diameter_nm**3 / np.prod(v)
    lab, n = ndi.label(seeds)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    keep = size >= min_vox
    keep[0] = False
    peak = _peaks(lab, c, n, 0.95)
    fid = np.zeros(n + 1, bool)
    if exclude_fiducials and keep.sum() >= 3:
        med = float(np.median(peak[keep]))
        fid = keep & (peak > fiducial_ratio * med)
    fid |= _at_positions(lab, exclude_at, v, o, n)
    fid &= size > 0
    fid[0] = False
    particle = keep & ~fid
    remap = np.zeros(n + 1, np.int32)
    remap[particle] = np.arange(1, particle.sum() + 1, dtype=np.int32)
    # the 95th percentile of a plateau sits 1.645 noise above it
    labels, shift = _refine(remap[lab], c, peak[particle] - 1.645 * noise, edge_fraction, low_sigma * noise,
                            s_nm, v, membrane_nm)
    fiducials = _fiducial_table(lab, fid, size, v, o, peak)
    est = {"background": bg, "noise": noise, "polarity": pol, "smooth_nm": tuple(float(a) for a in s_nm),
           "k_sigma": k_sigma, "low_sigma": low_sigma, "min_diameter_nm": float(min_diameter_nm),
           "edge_fraction": edge_fraction, "n_objects": int(keep.sum()), "n_fiducials": int(fid.sum()),
           "n_particles": int(particle.sum()), "membrane_nm": membrane_nm,
           "n_shells": int(np.count_nonzero(shift[1:] > 0)),
           "shell_shift_nm": float(np.median(shift[1:][shift[1:] > 0])) if np.any(shift[1:] > 0) else 0.0, **seen}
    return VolumeSegmentation(labels=labels, voxel_nm=v, origin_nm=o, contrast=c, fiducials=fiducials,
                              info={"estimated": est, "source": src, "voxel_nm": v})


def _at_positions(lab, exclude_at, v, o, n) -> np.ndarray:
    out = np.zeros(n + 1, bool)
    if exclude_at is None:
        return out
    p = np.asarray(exclude_at.loc[:, ["x", "y", "z"]] if hasattr(exclude_at, "loc") else exclude_at, float)
    p = p.reshape(-1, 3)
    idx = np.round((p - np.array(o)) / np.array(v)).astype(int)[:, ::-1]
    ok = np.all((idx >= 0) & (idx < np.array(lab.shape)), axis=1)
    out[lab[tuple(idx[ok].T)]] = True
    out[0] = False
    return out


def _refine(lab, c, peak, edge_fraction, floor, s_nm, v, membrane_nm: float):
    """Each particle out to ``edge_fraction`` of its own peak, holes filled (see module notes)."""
    from scipy import ndimage as ndi

    n = int(lab.max())
    if n == 0:
        return lab.astype(np.int32), np.zeros(1)
    reach = np.maximum(np.ceil(2.0 * np.asarray(s_nm) / np.asarray(v)), 1).astype(int)[::-1]
    grown = ndi.grey_dilation(lab, size=tuple(2 * reach + 1))
    level = np.concatenate([[np.inf], np.maximum(edge_fraction * peak, floor)])
    half = (grown > 0) & (c > level[grown])
    inner = ndi.binary_erosion(ndi.binary_fill_holes(lab > 0), structure=np.ones((3, 3, 3), bool),
                               iterations=int(reach.max()))
    # a closing bridges gaps of a voxel or two in a weak membrane before the lumen is filled
    closed = ndi.binary_closing(np.pad(half | inner, 2), structure=np.ones((3, 3, 3), bool), iterations=2)
    closed = closed[2:-2, 2:-2, 2:-2] & (grown > 0)
    comp, nc = ndi.label(_fill(closed))
    owner = np.zeros(nc + 1, np.int32)
    if nc:
        owner[1:] = np.asarray(ndi.maximum(grown, comp, np.arange(1, nc + 1)), np.int32)
    out = owner[comp]
    shift = _shell_shift(out, half, n, membrane_nm, float(np.prod(v)))
    if np.any(shift > 0):
        depth = ndi.distance_transform_edt(out > 0, sampling=tuple(v[::-1]))
        # a voxel centre at depth e below the half-maximum surface has EDT ~ e + half a voxel
        out = np.where(depth - 0.5 * float(np.mean(v)) >= shift[out] - 1e-9, out, 0).astype(np.int32)
    return out, shift


def _shell_shift(lab: np.ndarray, half: np.ndarray, n: int, membrane_nm: float, voxel_nm3: float) -> np.ndarray:
    """(n + 1,) inward shift (nm) of each shell particle's boundary, 0 for solid ones.

    A membrane thinner than the blur appears as a half-maximum shell of width ``W`` whose outer
    surface lies ``(W - membrane_nm) / 2`` outside the membrane's: ``W`` comes from the shell's
    half-maximum volume inside a sphere of the particle's volume. Shells are particles with a
    lumen: more than 10 % of them below half maximum (a solid has ~none).
    """
    vfill = np.bincount(lab.ravel(), minlength=n + 1)[: n + 1] * voxel_nm3
    vhalf = np.bincount(lab[half], minlength=n + 1)[: n + 1] * voxel_nm3
    shift = np.zeros(n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shell = (vfill - vhalf) / vfill > 0.1
    shell[0] = False
    r3 = 3 * vfill / (4 * np.pi)
    w = np.cbrt(r3) - np.cbrt(np.clip(r3 - 3 * vhalf / (4 * np.pi), 0, None))
    shift[shell] = np.clip((w[shell] - membrane_nm) / 2, 0, None)
    return shift


def _fill(mask: np.ndarray) -> np.ndarray:
    """Holes filled in 3-D and in every xy, xz and yz plane (a shell with a gap in one plane still
    encloses its lumen in the others), then in 3-D again."""
    from scipy import ndimage as ndi

    out = ndi.binary_fill_holes(mask)
    for ax in range(3):
        st = np.zeros((3, 3, 3), bool)
        sl = [slice(None)] * 3
        sl[ax] = 1
        st[tuple(sl)] = ndi.generate_binary_structure(2, 1)
        out |= ndi.binary_fill_holes(mask, structure=st)
    return ndi.binary_fill_holes(out)


def _fiducial_table(lab, fid, size, v, o, peak) -> pd.DataFrame:
    from scipy import ndimage as ndi

    ids = np.flatnonzero(fid)
    if not len(ids):
        return pd.DataFrame(columns=["x", "y", "z", "volume_nm3", "peak"])
    com = np.array(ndi.center_of_mass(np.ones(lab.shape, np.float32), lab, ids)).reshape(-1, 3)
    xyz = com[:, ::-1] * np.array(v) + np.array(o)
    return pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "volume_nm3": size[ids] * float(np.prod(v)), "peak": peak[ids]})
