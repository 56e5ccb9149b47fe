"""Gold / bead fiducials in a 3-D volume (tomogram, z-stack): 3-D LoG detection, sub-voxel centre
with its covariance.

1. Contrast: the volume minus its median, sign set by the polarity (estimated: the side with
   more voxels beyond six noise widths of the lightly smoothed volume, unless given).
2. Scale: the scale-normalised Laplacian of Gaussian ``-sigma^2 LoG`` over scales from a voxel
   to ``max_sigma_nm`` (or around ``diameter_nm / (2 sqrt 3)`` when given), anisotropic in voxels
   and isotropic in nm; local maxima over space of the best scale's response.
3. Population: beads are the compact blobs that stand out: candidates above ``k_sigma`` times the
   response noise, then the largest gap (in decades) of their responses with at least
   ``min_beads`` above it (a membrane or a particle edge responds far less than a dense bead).
4. Position: a parabola per axis through the peak of the contrast smoothed at the beads' scale
   (see :func:`_vertex`), its covariance from the smoothed noise (anisotropic where the voxels
   are). Peaks closer than 2.5 scales to a stronger one are the same bead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError, RegistrationError

__all__ = ["detect_volume_beads", "volume_grid"]

_HINT = "diameter_nm= / polarity= / max_sigma_nm="


def volume_grid(volume, voxel_nm=None, origin_nm=None) -> tuple[np.ndarray, tuple, tuple]:
    """(array (nz, ny, nx), voxel (x, y, z) nm, origin (x, y, z) nm) of an array or a (z, y, x) image."""
    if hasattr(volume, "dims") and hasattr(volume, "coords"):
        if tuple(volume.dims) != ("z", "y", "x"):
            raise CorrelateError(f"a volume needs dims (z, y, x), got {tuple(volume.dims)}", field="dims")
        co = [np.asarray(volume.coords[a].values, float) for a in "xyz"]
        if voxel_nm is None:
            if any(len(c) < 2 for c in co):
                raise CorrelateError("a volume axis has one voxel: give voxel_nm=(x, y, z)", field="voxel_nm")
            voxel_nm = tuple(float(c[1] - c[0]) for c in co)
        if origin_nm is None:
            origin_nm = tuple(float(c[0]) for c in co)
        arr = np.asarray(volume.values)
    else:
        arr = np.asarray(volume)
        if voxel_nm is None:
            raise CorrelateError("a bare array needs voxel_nm=(x, y, z) in nm", field="voxel_nm")
    if arr.ndim != 3:
        raise CorrelateError(f"a volume is 3-D (z, y, x), got shape {arr.shape}", field="volume")
    v = np.broadcast_to(np.asarray(voxel_nm, float), (3,))
    if not np.all(v > 0):
        raise CorrelateError(f"voxel sizes must be positive nm, got {tuple(v)}", field="voxel_nm")
    o = (0.0, 0.0, 0.0) if origin_nm is None else tuple(float(x) for x in np.broadcast_to(origin_nm, (3,)))
    return arr, tuple(float(x) for x in v), o


def _best_scale(c: np.ndarray, v: np.ndarray, sigmas: np.ndarray):
    """Running maximum over scales of ``-sigma^2 LoG`` and the index of the scale that gave it."""
    from scipy import ndimage as ndi

    best = np.full(c.shape, -np.inf, np.float32)
    arg = np.zeros(c.shape, np.int8)
    for k, s in enumerate(sigmas):  # a handful of scales, each a whole-volume filter
        r = (-(s**2) * ndi.gaussian_laplace(c, (s / v)[::-1])).astype(np.float32)
        up = r > best
        best[up] = r[up]
        arg[up] = k
    return best, arg


def _vertex(c, idx, sig_vox, v, o):
    """Sub-voxel centres (K, 3) nm and covariances (K, 3, 3) by a parabola through each peak and
    its two neighbours per axis of the contrast smoothed at the beads' scale.

    With ``N = f- - f+`` and ``D = f- - 2 f0 + f+`` the vertex is ``N / (2 D)``; the smoothed noise
    (standard deviation ``s``, correlation ``exp(-k^2 / (4 g^2))`` at ``k`` voxels for a Gaussian of
    ``g`` voxels) gives ``Var N = 2 s^2 (1 - exp(-1 / g^2))`` and ``Var(vertex) = Var N / (4 D^2)``.
    """
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(c, sig_vox)
    s = float(1.4826 * np.median(np.abs(f - np.median(f))))
    shape = np.array(c.shape)
    i0 = np.clip(idx, 1, shape - 2)
    cen = i0.astype(float)
    var = np.zeros((len(idx), 3))
    for ax in range(3):  # three axes
        e = np.zeros(3, int)
        e[ax] = 1
        fm, f0, fp = (f[tuple((i0 + k * e).T)] for k in (-1, 0, 1))
        n, d = fm - fp, fm - 2 * f0 + fp
        d = np.where(d < 0, d, -1e-12)
        cen[:, ax] += np.clip(n / (2 * d), -1, 1)
        g = float(sig_vox[ax])
        var[:, ax] = 2 * s**2 * (1 - np.exp(-1 / g**2)) / (4 * d**2)
    xyz = cen[:, ::-1] * v + np.asarray(o)
    cov = np.zeros((len(idx), 3, 3))
    for a in range(3):
        cov[:, a, a] = var[:, 2 - a] * v[a] ** 2
    return xyz, cov


def _merge(idx: np.ndarray, resp: np.ndarray, v: np.ndarray, radius_nm: np.ndarray) -> np.ndarray:
    """Keep the strongest of peaks closer than their scale (one bead, one peak): indices kept."""
    from scipy.spatial import cKDTree

    order = np.argsort(resp)[::-1]
    p = idx[:, ::-1] * v
    tree = cKDTree(p)
    alive = np.ones(len(idx), bool)
    for i in order:  # candidates (tens to hundreds)
        if alive[i]:
            near = tree.query_ball_point(p[i], radius_nm[i])
            alive[near] = False
            alive[i] = True
    return np.flatnonzero(alive)


def detect_volume_beads(volume, voxel_nm=None, origin_nm=None, *, diameter_nm: float | None = None,
                        polarity: str | None = None, max_sigma_nm: float = 12.0, k_sigma: float = 8.0,
                        min_beads: int = 3) -> pd.DataFrame:
    """Detect bead / gold fiducials in a (z, y, x) volume.

    Parameters
    ----------
    volume
        (z, y, x) xarray image with nm coordinates, or an array with ``voxel_nm``.
    voxel_nm, origin_nm
        (x, y, z) voxel size and origin (nm); from the image coordinates when None.
    diameter_nm
        Bead diameter (nm); None: the scale is chosen per blob from ``-sigma^2 LoG``.
    polarity
        ``"dark"`` / ``"bright"`` dense material; None: estimated.
    max_sigma_nm
        Largest LoG scale searched (nm) without ``diameter_nm`` (beads up to ~40 nm).
    k_sigma
        Candidate threshold in units of the response noise.

    Returns
    -------
    pandas.DataFrame
        ``x, y, z`` (nm), ``cov_xx .. cov_zz`` (nm^2), ``amplitude`` (background-subtracted
        contrast), ``sigma_nm`` (LoG scale); ``attrs["estimated"]`` and ``attrs["source"]``.

    Raises
    ------
    RegistrationError
        ``stage="detection"`` with the best candidates when no bead population stands out.
    """
    from scipy import ndimage as ndi

    arr, v3, o = volume_grid(volume, voxel_nm, origin_nm)
    v = np.asarray(v3)
    x = arr.astype(np.float32) - np.float32(np.median(arr))
    noise = float(1.4826 * np.median(np.abs(np.diff(x, axis=2)))) / np.sqrt(2)
    light = ndi.gaussian_filter(x, 1.0)
    ln = float(1.4826 * np.median(np.abs(light)))
    src = {"polarity": "user" if polarity else "estimated", "diameter_nm": "user" if diameter_nm else "estimated"}
    if polarity is None:
        hi, lo = int(np.count_nonzero(light > 6 * ln)), int(np.count_nonzero(light < -6 * ln))
        if max(hi, lo) == 0:
            raise RegistrationError("no voxel stands out of the noise: no dense fiducials", stage="detection",
                                    hint=_HINT, diagnostics={"noise": noise})
        polarity = "bright" if hi > lo else "dark"
    c = x if polarity == "bright" else -x
    if diameter_nm is not None:
        s0 = float(diameter_nm) / (2 * np.sqrt(3))
        sigmas = np.array([0.8, 1.0, 1.25]) * s0
    else:
        sigmas = np.geomspace(max(float(v.min()), 0.8), max(max_sigma_nm, 1.2 * float(v.min())), 7)
    best, arg = _best_scale(c, v, sigmas)
    rn = float(1.4826 * np.median(np.abs(best - np.median(best))))
    peak = (best == ndi.maximum_filter(best, size=3)) & (best > k_sigma * rn)
    idx = np.argwhere(peak)
    resp = best[peak]
    top = np.argsort(resp)[::-1][:2000]
    idx, resp = idx[top], resp[top]
    keep = _merge(idx, resp, v, 2.5 * sigmas[arg[tuple(idx.T)]])
    idx, resp = idx[keep], resp[keep]
    diag = {"n_candidates": int(len(idx)), "response_noise": rn, "polarity": polarity,
            "best_responses": np.sort(resp)[::-1][:8].tolist()}
    sel = _population(resp, min_beads)
    if sel is None:
        raise RegistrationError(f"no population of beads stands out among {len(idx)} blob candidates",
                                stage="detection", hint=_HINT, diagnostics=diag)
    idx, resp, sc = idx[sel], resp[sel], sigmas[arg[tuple(idx[sel].T)]]
    xyz, cov = _vertex(c, idx, np.maximum(np.median(sc) / v, 0.7)[::-1], v, o)
    df = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    for i, a in enumerate("xyz"):
        for j, b in enumerate("xyz"):
            if j >= i:
                df[f"cov_{a}{b}"] = cov[:, i, j]
    df["amplitude"] = c[tuple(idx.T)]
    df["sigma_nm"] = sc
    df["response"] = resp
    df.attrs["estimated"] = {"polarity": polarity, "noise": noise, "sigma_nm": float(np.median(sc)),
                             "diameter_nm": float(diameter_nm or 2 * np.sqrt(3) * np.median(sc)),
                             "n_candidates": int(len(peak.nonzero()[0])), "n_selected": int(len(df)),
                             "k_sigma": k_sigma}
    df.attrs["source"] = src
    return df


def _population(resp: np.ndarray, min_beads: int):
    """Indices of the strongest responses above the largest gap (decades) with >= min_beads above."""
    if len(resp) < min_beads:
        return None
    order = np.argsort(resp)[::-1]
    lr = np.log10(resp[order])
    gaps = lr[:-1] - lr[1:]
    gaps[: min_beads - 1] = -np.inf
    if len(gaps) == 0 or not np.isfinite(gaps).any():
        return order if len(resp) >= min_beads else None
    k = int(np.argmax(gaps))
    if gaps[k] < 0.15:  # no gap: nothing stands out
        return None
    return order[: k + 1]
