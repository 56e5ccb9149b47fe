"""Pairing 3-D fiducials in any pose: any rotation, either handedness, a scale in a range.

1. Hypotheses from triangles. Each point with each pair of its ``k`` nearest neighbours makes a
   triangle; its sorted side lengths divided by the longest are invariant to rotation, reflection
   and scale, and identify the vertex order (triangles with two near-equal sides are skipped).
   Source and target shape keys are matched in a cKDTree within ``shape_tolerance`` plus the
   shape noise the positions imply; each match gives a similarity (weighted Umeyama over the
   three vertex pairs, either handedness when ``allow_mirror``) whose scale must fall in
   ``scale_range``.
2. Scoring and refinement: a hypothesis scores the source points it maps within ``gate`` of a
   target point; the best few are refined by mutual nearest neighbours and a similarity fit with a
   gate that shrinks to the inliers' scatter (never below the stated noise).
3. Against chance: the winning pose counts only if its inliers exceed what the best of all
   hypotheses would reach by chance (each source point lands within the final gate of a random
   target with probability ``density * 4/3 pi gate^3``); otherwise
   :class:`~correlate.errors.RegistrationError` (``stage="pairing"``) with what was seen.
4. Assignment: the gated Hungarian assignment on Mahalanobis distances of 2-D pairing.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError
from ..transforms import Affine
from ._pairing import DEFAULT_SCALE_RANGE, Pairing, _assign

__all__ = ["pair_points_3d"]

_HINT = "scale_range=, fiducials_moving/fiducials_fixed or landmarks"
_FREE = 3


def _triangles(p: np.ndarray, k: int, tol: float):
    """(T, 3) vertex indices ordered by the opposite side (shortest first) and (T, 2) shape keys."""
    from scipy.spatial import cKDTree

    n = len(p)
    kk = int(min(k, n - 1))
    if kk < 2:
        return np.zeros((0, 3), int), np.zeros((0, 2)), np.zeros(0)
    _, nb = cKDTree(p).query(p, k=kk + 1)
    a, b = np.triu_indices(kk, 1)
    tri = np.column_stack([np.repeat(np.arange(n), len(a)), nb[:, 1:][:, a].ravel(), nb[:, 1:][:, b].ravel()])
    tri = np.unique(np.sort(tri, axis=1), axis=0)
    pa, pb, pc = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    opp = np.column_stack([np.linalg.norm(pb - pc, axis=1), np.linalg.norm(pa - pc, axis=1),
                           np.linalg.norm(pa - pb, axis=1)])  # side opposite each vertex
    order = np.argsort(opp, axis=1)
    s = np.take_along_axis(opp, order, 1)
    tri = np.take_along_axis(tri, order, 1)
    keep = (s[:, 0] > 0) & (np.diff(s, axis=1).min(1) > tol * s[:, 2])
    keys = s[keep, :2] / s[keep, 2:3]
    return tri[keep], keys, s[keep, 2]


def _umeyama(x: np.ndarray, y: np.ndarray, reflection: bool):
    """Similarity (K, 3, 3) scale*R and (K, 3) t with y ~ A x + t for K triplets (K, 3, 3)."""
    mx, my = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    qx, qy = x - mx, y - my
    cov = np.einsum("kni,knj->kij", qy, qx) / 3
    u, sv, vt = np.linalg.svd(cov)
    det = np.linalg.det(u) * np.linalg.det(vt)
    want = -1.0 if reflection else 1.0
    d = np.ones((len(x), 3))
    d[:, 2] = np.where(np.sign(det) == want, 1.0, -1.0)
    r = np.einsum("kij,kj,kjl->kil", u, d, vt)
    var = (qx**2).sum((1, 2)) / 3
    scale = (sv * d).sum(1) / np.maximum(var, 1e-300)
    a = scale[:, None, None] * r
    t = my[:, 0] - np.einsum("kij,kj->ki", a, mx[:, 0])
    return a, t, scale


def _similarity_fit(x, y, reflection: bool):
    a, t, _ = _umeyama(x[None], y[None], reflection)
    return a[0], t[0]


def _refine(a, t, xs, ys, tree, gate: float, min_gate: float, reflection: bool):
    """Mutual nearest neighbours and similarity refits, the gate shrinking to the inliers' scatter."""
    si = ti = np.zeros(0, int)
    g = gate
    for _ in range(8):
        pred = xs @ a.T + t
        d, j = tree.query(pred, distance_upper_bound=g)
        ok = np.isfinite(d)
        if ok.sum() < _FREE:
            break
        # each target keeps its nearest source only
        cand = np.flatnonzero(ok)[np.argsort(d[ok])]
        _, first = np.unique(j[cand], return_index=True)
        si = np.sort(cand[first])
        ti = j[si]
        if len(si) < _FREE:
            break
        a, t = _similarity_fit(xs[si], ys[ti], reflection)
        res = np.linalg.norm(ys[ti] - (xs[si] @ a.T + t), axis=1)
        g = max(min_gate, 3.0 * float(np.sqrt(np.mean(res**2))))
    return a, t, si, ti, g


def _log_chance(k: int, n: int, density: float, gate: float) -> float:
    from scipy.stats import binom

    if k <= _FREE:
        return 0.0
    p = float(min(1.0, density * 4 / 3 * np.pi * gate**3))
    return float(binom.logsf(k - _FREE - 1, max(n - _FREE, 0), p))


def pair_points_3d(source, target, source_cov=None, target_cov=None, *, scale_range=None,
                   allow_mirror: bool = True, shape_tolerance: float = 0.02, k: int = 6,
                   gate_nm: float | None = None, chance_level: float = 1e-3, gate_level: float = 1e-3,
                   max_hypotheses: int = 20000, n_refine: int = 10, min_pairs: int = 4) -> Pairing:
    """Find correspondences between 3-D source (moving) and target (fixed) fiducials in any pose.

    Parameters
    ----------
    source, target
        (N, 3) and (M, 3) positions (nm).
    source_cov, target_cov
        (N, 3, 3) / (M, 3, 3) covariances (nm^2), or None (zero).
    scale_range
        (lo, hi) scale target/source searched; None: the wide default (0.25-4).
    allow_mirror
        Also try improper (reflected) poses; a mirror is reported in ``Pairing.mirrored``.
    shape_tolerance
        Tolerance on the triangle shape keys, on top of the shape noise of the positions.
    k
        Neighbours per point forming triangles.
    gate_nm
        Initial inlier gate (nm); None: 5 sigma of the stated noise plus 2 % of the
        median neighbour distance of the target.
    chance_level
        Probability that the accepted pose is a chance alignment.

    Returns
    -------
    Pairing
        With ``method="triangles3d"``, ``mirrored`` and ``diagnostics``.
    """
    from scipy.spatial import cKDTree

    xs = np.asarray(source, float).reshape(-1, 3)
    ys = np.asarray(target, float).reshape(-1, 3)
    n, m = len(xs), len(ys)
    cs = np.zeros((n, 3, 3)) if source_cov is None else np.asarray(source_cov, float).reshape(n, 3, 3)
    ct = np.zeros((m, 3, 3)) if target_cov is None else np.asarray(target_cov, float).reshape(m, 3, 3)
    lo, hi = sorted(scale_range) if scale_range is not None else DEFAULT_SCALE_RANGE
    diag = {"n_source": n, "n_target": m, "scale_range": [float(lo), float(hi)]}
    if min(n, m) < min_pairs:
        raise RegistrationError(f"3-D pairing needs at least {min_pairs} fiducials on each side, got {n} and {m}",
                                stage="pairing", hint=_HINT, diagnostics=diag)
    tree = cKDTree(ys)
    nn_t = float(np.median(tree.query(ys, k=2)[0][:, 1]))
    sig_t = float(np.sqrt(np.median(np.trace(ct, axis1=1, axis2=2)) / 3))
    sig_s = float(np.sqrt(np.median(np.trace(cs, axis1=1, axis2=2)) / 3))
    noise = np.hypot(sig_t, sig_s * np.sqrt(lo * hi))
    gate = float(gate_nm) if gate_nm is not None else 5 * noise + 0.02 * nn_t
    min_gate = 3 * noise + 1e-3 * nn_t
    tol = shape_tolerance + 4 * np.sqrt(2) * noise / max(nn_t, 1e-9)
    tri_s, key_s, long_s = _triangles(xs, k, tol)
    tri_t, key_t, long_t = _triangles(ys, k, tol)
    diag.update(gate_nm=gate, shape_tolerance=tol, n_triangles_source=len(tri_s), n_triangles_target=len(tri_t))
    if not len(tri_s) or not len(tri_t):
        raise RegistrationError("no usable triangles (points too few, coincident or too regular)", stage="pairing",
                                hint=_HINT, diagnostics=diag)
    pairs = cKDTree(key_t).query_ball_point(key_s, r=tol)
    i = np.repeat(np.arange(len(tri_s)), [len(p) for p in pairs])
    j = np.concatenate([np.asarray(p, int) for p in pairs]) if len(i) else np.zeros(0, int)
    ratio = long_t[j] / long_s[i]
    ok = (ratio >= lo) & (ratio <= hi)
    i, j = i[ok][:max_hypotheses], j[ok][:max_hypotheses]
    hands = (False, True) if allow_mirror else (False,)
    density = m / max(float(np.prod(np.ptp(ys, axis=0) + 2 * gate)), 1e-9)
    best = None
    h_total = 0
    for refl in hands:  # two handednesses
        if not len(i):
            break
        a, t, _ = _umeyama(xs[tri_s[i]], ys[tri_t[j]], refl)
        h_total += len(a)
        pred = np.einsum("kij,nj->kni", a, xs) + t[:, None, :]
        d, _ = tree.query(pred.reshape(-1, 3), distance_upper_bound=gate)
        score = np.isfinite(d).reshape(len(a), n).sum(1)
        for r in np.argsort(-score)[:n_refine]:
            a2, t2, si, ti, g = _refine(a[r], t[r], xs, ys, tree, gate, min_gate, refl)
            key = _log_chance(len(si), n, density, g)
            if best is None or key < best[0]:
                best = (key, a2, t2, si, ti, g, refl)
    if best is None:
        raise RegistrationError("no triangle of the moving fiducials matches one of the fixed fiducials in shape and "
                                "scale", stage="pairing", hint=_HINT, diagnostics=diag)
    key, a, t, si, ti, g, refl = best
    logp = key + np.log(max(h_total, 1))
    diag.update(n_hypotheses=h_total, inliers=int(len(si)), final_gate_nm=float(g), mirrored=bool(refl),
                log10_chance=float(min(0.0, logp / np.log(10))), scale=float(np.cbrt(abs(np.linalg.det(a)))))
    if len(si) < min_pairs or logp > np.log(chance_level):
        raise RegistrationError(
            f"the best 3-D pose maps {len(si)} of {n} moving fiducials onto fixed ones, which chance alignments "
            f"reach too (log10 P = {diag['log10_chance']:.2f})", stage="pairing", hint=_HINT, diagnostics=diag)
    coarse = Affine.from_parts(a, t)
    r, c, _ = _assign(coarse, xs, ys, cs, ct, si, ti, gate_level)
    notes = [f"3-D pose from {h_total} triangle hypotheses: {len(r)} pairs" + (", mirrored" if refl else "")]
    return Pairing(source_index=np.asarray(r, int), target_index=np.asarray(c, int), coarse=coarse,
                   n_hypotheses=h_total, method="triangles3d", notes=notes, mirrored=bool(refl), diagnostics=diag)
