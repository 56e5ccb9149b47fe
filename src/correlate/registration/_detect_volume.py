"""Gold / bead fiducials in a 3-D volume (tomogram, z-stack): 3-D LoG detection, sub-voxel centre
with its covariance.

1. Contrast: the volume minus its median, sign set by the polarity (estimated: the side with
   more voxels beyond six noise widths of the lightly smoothed volume, unless given).
2. Scale: the scale-normalised Laplacian of Gaussian ``-sigma^2 LoG`` over scales from 0.7 of
   the coarsest voxel (a narrower kernel is not sampled there) to ``max_sigma_nm`` (or around
   ``diameter_nm / (2 sqrt 3)`` when given), anisotropic in voxels and isotropic in nm; per voxel
   the scale of the largest response, and that response over its own scale's robust noise (the
   noise of ``-sigma^2 LoG`` falls steeply with the scale, so raw responses of different scales
   are not comparable as a detection statistic); local maxima over space.
3. Population: beads are the compact blobs that stand out: candidates above ``k_sigma`` in
   those noise units, then the largest gap (in decades) of their scale-normalised responses (which
   measure the blob's contrast, whatever its size) with at least ``min_beads`` above it: a
   membrane or a particle responds far less than a dense bead.
4. Position: a least-squares 3-D Gaussian fit of each bead's window of the unsmoothed contrast
   (:func:`~correlate.registration._volume_fit.fit_gaussians_3d`), its covariance from the voxel
   noise, started at a parabola per axis through the logarithm of the contrast smoothed at the
   beads' scale (see :func:`_vertex`); where the fit fails (``fit_ok`` False, counted in
   ``attrs["estimated"]["n_fit_failed"]``) that vertex and its covariance are reported. Peaks
   closer than 2.5 scales to a stronger one are the same bead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError, RegistrationError
from ._volume_fit import fit_gaussians_3d

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


def _log_response(c: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """``-s^2 LoG`` of ``c`` at scale ``s`` nm: the Gaussian-smoothed volume's discrete Laplacian
    (second differences over the voxel size per axis; the scale is at least 0.7 voxel on every axis)."""
    from scipy import ndimage as ndi

    g = ndi.gaussian_filter(c, (s / v)[::-1], truncate=3.0)
    lap = np.zeros_like(g)
    for ax in range(3):  # three axes; array axis 0 is z
        step = float(v[2 - ax])
        sl = [slice(None)] * 3
        mid, lo, hi = list(sl), list(sl), list(sl)
        mid[ax], lo[ax], hi[ax] = slice(1, -1), slice(None, -2), slice(2, None)
        lap[tuple(mid)] += (g[tuple(lo)] - 2 * g[tuple(mid)] + g[tuple(hi)]) / np.float32(step**2)
    return (-(s**2) * lap).astype(np.float32)


def _best_scale(c: np.ndarray, v: np.ndarray, sigmas: np.ndarray):
    """Per voxel the scale of the largest ``-sigma^2 LoG`` (scale selection), that response over
    its scale's robust noise (the detection statistic), and the index of the scale."""
    best = np.full(c.shape, -np.inf, np.float32)
    snr = np.zeros(c.shape, np.float32)
    arg = np.zeros(c.shape, np.int8)
    for k, s in enumerate(sigmas):  # a handful of scales, each a whole-volume filter
        r = _log_response(c, v, float(s))
        sub = r[:: max(1, r.shape[0] // 16)]
        noise = np.float32(max(1.4826 * float(np.median(np.abs(sub - np.median(sub)))), 1e-30))
        up = r > best
        best[up] = r[up]
        snr[up] = r[up] / noise
        arg[up] = k
    return best, snr, arg


def _vertex(c, idx, sig_vox, v, o):
    """Sub-voxel centres (K, 3) nm and covariances (K, 3, 3) by a parabola through the logarithm
    of each peak and its two neighbours per axis of the contrast smoothed at the beads' scale.

    The smoothed bead is close to a Gaussian, whose logarithm is a parabola: the vertex of
    ``l = ln f`` is unbiased where that of ``f`` is off by a few % of a voxel once the bead spans
    only a few voxels (the z axis of a tomogram). With ``N = l- - l+`` and ``D = l- - 2 l0 + l+``
    the vertex is ``N / (2 D)``; the smoothed noise (standard deviation ``s``, correlation
    ``rho = exp(-1 / g^2)`` between the two neighbours for a Gaussian of ``g`` voxels) gives
    ``Var N = s^2 (1 / f-^2 + 1 / f+^2 - 2 rho / (f- f+))`` and ``Var(vertex) = Var N / (4 D^2)``.
    A peak whose neighbours are not positive falls back to the parabola through ``f``.
    """
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(c, sig_vox, mode="constant")  # outside: background (0), no mirrored bead
    s = float(1.4826 * np.median(np.abs(f - np.median(f))))
    shape = np.array(c.shape)
    i0 = np.clip(idx, 1, shape - 2)
    cen = i0.astype(float)
    var = np.zeros((len(idx), 3))
    for ax in range(3):  # three axes
        e = np.zeros(3, int)
        e[ax] = 1
        fm, f0, fp = (f[tuple((i0 + k * e).T)].astype(float) for k in (-1, 0, 1))
        rho = float(np.exp(-1 / float(sig_vox[ax]) ** 2))
        pos = (fm > 0) & (f0 > 0) & (fp > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lm, l0, lp = (np.log(np.where(pos, q, 1.0)) for q in (fm, f0, fp))
            n = np.where(pos, lm - lp, fm - fp)
            d = np.where(pos, lm - 2 * l0 + lp, fm - 2 * f0 + fp)
            vn = np.where(pos, s**2 * (1 / fm**2 + 1 / fp**2 - 2 * rho / (fm * fp)), 2 * s**2 * (1 - rho))
        d = np.where(d < 0, d, -1e-12)
        cen[:, ax] += np.clip(n / (2 * d), -1, 1)
        var[:, ax] = vn / (4 * d**2)
    xyz = cen[:, ::-1] * v + np.asarray(o)
    cov = np.zeros((len(idx), 3, 3))
    for a in range(3):
        cov[:, a, a] = var[:, 2 - a] * v[a] ** 2
    return xyz, cov


def _merge(p: np.ndarray, resp: np.ndarray, radius_nm: np.ndarray) -> np.ndarray:
    """Keep the strongest of peaks within 2.5 scales of a stronger one (one bead, one peak): indices kept."""
    from scipy.spatial import cKDTree

    order = np.argsort(resp)[::-1]
    rank = np.empty(len(order), int)
    rank[order] = np.arange(len(order))
    tree = cKDTree(p)
    alive = np.ones(len(p), bool)
    for i in order:  # candidates (tens to hundreds)
        if alive[i]:
            near = np.asarray(tree.query_ball_point(p[i], radius_nm[i]), int)
            alive[near[rank[near] > rank[i]]] = False  # a weaker peak never removes a stronger one
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
        Candidate threshold in units of the response noise at the candidate's scale.

    Returns
    -------
    pandas.DataFrame
        ``x, y, z`` (nm), ``cov_xx .. cov_zz`` (nm^2), ``amplitude`` (background-subtracted
        contrast), ``fit_ok`` (the Gaussian fit converged), ``sigma_nm`` (LoG scale), ``response`` (``-sigma^2 LoG``, contrast units), ``snr``
        (that response over its scale's noise);
        ``attrs["estimated"]`` and ``attrs["source"]``.

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
    s_min = 0.7 * float(v.max())  # a narrower kernel is not sampled on the coarsest axis
    if diameter_nm is not None:
        s0 = float(diameter_nm) / (2 * np.sqrt(3))
        sigmas = np.maximum(np.array([0.8, 1.0, 1.25]) * s0, s_min)
        sigmas = np.unique(sigmas)
    else:
        sigmas = np.geomspace(s_min, max(max_sigma_nm, 1.5 * s_min), 7)
    best, snr, arg = _best_scale(c, v, sigmas)
    peak = (best == ndi.maximum_filter(best, size=3)) & (snr > k_sigma)
    idx = np.argwhere(peak)
    resp, z = best[peak], snr[peak]
    top = np.argsort(resp)[::-1][:2000]
    idx, resp, z = idx[top], resp[top], z[top]
    keep = _merge(idx[:, ::-1] * v, resp, 2.5 * sigmas[arg[tuple(idx.T)]])
    idx, resp, z = idx[keep], resp[keep], z[keep]
    diag = {"n_candidates": int(len(idx)), "polarity": polarity, "scales_nm": sigmas.round(3).tolist(),
            "best_responses": np.sort(resp)[::-1][:8].tolist()}
    sel, n_out = _population(resp, min_beads)
    diag["n_standing_out"] = n_out
    if sel is None:
        seen = f"{n_out} stand out, fewer than min_beads={min_beads}" if n_out else "none stands out"
        raise RegistrationError(f"no population of beads stands out among {len(idx)} blob candidates ({seen})",
                                stage="detection", hint=_HINT + " / min_beads=", diagnostics=diag)
    idx, resp, z, sc = idx[sel], resp[sel], z[sel], sigmas[arg[tuple(idx[sel].T)]]
    xyz, cov = _vertex(c, idx, np.maximum(np.median(sc) / v, 0.7)[::-1], v, o)
    start = ((xyz - np.asarray(o)) / v)[:, ::-1]
    cen, cov_fit, fit_ok = fit_gaussians_3d(c, start, float(np.median(sc)), v, noise)
    xyz[fit_ok] = cen[fit_ok][:, ::-1] * v + np.asarray(o)
    cov[fit_ok] = cov_fit[fit_ok]
    one = _merge(xyz, resp, np.full(len(xyz), 2.5 * float(np.median(sc))))  # fits that met on one bead: the strongest
    idx, resp, z, sc, xyz, cov, fit_ok = (a[one] for a in (idx, resp, z, sc, xyz, cov, fit_ok))
    df = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    for i, a in enumerate("xyz"):
        for j, b in enumerate("xyz"):
            if j >= i:
                df[f"cov_{a}{b}"] = cov[:, i, j]
    df["amplitude"] = c[tuple(idx.T)]
    df["sigma_nm"] = sc
    df["response"] = resp
    df["snr"] = z
    df["fit_ok"] = fit_ok
    df.attrs["estimated"] = {"polarity": polarity, "noise": noise, "sigma_nm": float(np.median(sc)),
                             "diameter_nm": float(diameter_nm or 2 * np.sqrt(3) * np.median(sc)),
                             "n_candidates": int(len(peak.nonzero()[0])), "n_selected": int(len(df)),
                             "k_sigma": k_sigma, "n_fit_failed": int(np.count_nonzero(~fit_ok))}
    df.attrs["source"] = src
    return df


def _population(resp: np.ndarray, min_beads: int) -> tuple[np.ndarray | None, int]:
    """(indices of the strongest responses above the largest gap in decades, or None; how many
    stand out above it). None when fewer than ``min_beads`` stand out or there is no gap."""
    if len(resp) == 0:
        return None, 0
    order = np.argsort(resp)[::-1]
    lr = np.log10(resp[order])
    gaps = lr[:-1] - lr[1:]
    if len(gaps) == 0 or gaps.max() < 0.15:  # no gap: one tight population of significant blobs is the beads
        one = len(resp) >= min_beads and lr[0] - lr[-1] < 0.3
        return (order if one else None), (len(resp) if one else 0)
    k = int(np.argmax(gaps))
    if k + 1 < min_beads:
        return None, k + 1
    return order[: k + 1], k + 1
