"""Coarse pose hypotheses for pairing: triangle shape indexing, vectorised scoring, refinement and
the chance level a hypothesis must beat.

A triangle of fiducials has a shape invariant under any similarity: with its vertices ordered by
the opposite side lengths (A opposite the shortest, C opposite the longest side AB), the complex
ratio ``w = (C - A) / (B - A)``. A mirror image (x -> -x) conjugates ``w``. Every target triangle
is indexed under all six vertex orders (near-isosceles triangles have no stable order), every
source triangle under its canonical order; source and target triangles whose shapes agree within
the noise (and a shape tolerance for what a similarity does not follow) give one similarity
hypothesis each. Hypotheses are scored by the number of source points they map within a gate of
a target point (``scipy.spatial.cKDTree``), on a subset of the source first.
"""

from __future__ import annotations

import numpy as np

from ..transforms import Affine, Transform

_PERMS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def as_complex(p: np.ndarray) -> np.ndarray:
    """(N, 2) nm -> (N,) complex x + iy."""
    return p[:, 0] + 1j * p[:, 1]


def nn_median(p: np.ndarray) -> float:
    """Median nearest-neighbour distance (nm) of (N, 2) points; NaN for fewer than 2."""
    from scipy.spatial import cKDTree

    if len(p) < 2:
        return float("nan")
    d, _ = cKDTree(p).query(p, k=2)
    return float(np.median(d[:, 1]))


def point_density(p: np.ndarray) -> float:
    """Density (points per nm^2) of (N, 2) points.

    The Ripley-Rasson estimate ``(N - V) / hull area`` (``V`` hull vertices: the convex hull of
    a few points covers much less than the field they were drawn from), and at least the
    Poisson density implied by the median nearest-neighbour distance (clustered sets), shrunk
    towards the former for few points.
    """
    from scipy.spatial import ConvexHull

    n = len(p)
    nn = nn_median(p)
    rho_nn = np.log(2.0) / (np.pi * nn**2) if np.isfinite(nn) and nn > 0 else 0.0
    try:
        hull = ConvexHull(p)
        rho_rr = (n - len(hull.vertices)) / hull.volume
    except (ValueError, RuntimeError):  # collinear or too few points (QhullError is a RuntimeError)
        rho_rr = 0.0
    rho = max(rho_rr, (n * rho_nn + 10.0 * rho_rr) / (n + 10.0)) if rho_rr > 0 else rho_nn
    if not rho > 0:
        ext = np.ptp(p, axis=0) if n else np.ones(2)
        rho = n / max(float(np.prod(np.maximum(ext, 1.0))), 1.0)
    return float(rho)


def triangles(p: np.ndarray, k: int = 10, all_below: int = 2000) -> np.ndarray:
    """(T, 3) vertex indices: every triangle when there are at most ``all_below`` of them, else
    the triangles of each point with two of its ``k`` nearest neighbours (scale-free, local)."""
    from itertools import combinations

    from scipy.spatial import cKDTree

    n = len(p)
    if n < 3:
        return np.zeros((0, 3), int)
    if n * (n - 1) * (n - 2) // 6 <= all_below:
        return np.array(list(combinations(range(n), 3)), int)
    kk = min(n - 1, k)
    _, nb = cKDTree(p).query(p, k=kk + 1)
    a, b = np.triu_indices(kk, 1)
    tri = np.column_stack([np.repeat(np.arange(n), len(a)), nb[:, 1:][:, a].ravel(), nb[:, 1:][:, b].ravel()])
    return np.unique(np.sort(tri, axis=1), axis=0)


def canonical(pc: np.ndarray, tri: np.ndarray):
    """Order each triangle A, B, C by opposite side (A: shortest, C: longest = AB).

    Returns (ordered (T, 3), w (T,), longest side |AB| (T,) nm, noise factor (T,): the standard
    deviation of each component of ``w`` per unit of (per-axis vertex noise / |AB|)).
    """
    v = pc[tri]
    opp = np.abs(v[:, [2, 0, 1]] - v[:, [1, 2, 0]])  # side opposite vertex 0, 1, 2
    order = np.argsort(opp, axis=1, kind="stable")
    ordered = np.take_along_axis(tri, order, axis=1)
    w, lab, f = shape_keys(pc, ordered)
    return ordered, w, lab, f


def shape_keys(pc: np.ndarray, tri: np.ndarray):
    """Shape ``w = (C - A) / (B - A)``, |AB| (nm) and noise factor of ordered triangles."""
    a, b, c = pc[tri[:, 0]], pc[tri[:, 1]], pc[tri[:, 2]]
    ab = b - a
    lab = np.abs(ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (c - a) / ab
    f = np.sqrt(1.0 + np.abs(w) ** 2 + np.abs(1.0 - w) ** 2)
    return w, lab, f


def all_orders(pc: np.ndarray, tri: np.ndarray):
    """Every vertex order of each triangle: (6T, 3) indices with their shape keys."""
    t6 = tri[:, _PERMS].reshape(-1, 3)
    w, lab, f = shape_keys(pc, t6)
    return t6, w, lab, f


def match_shapes(ws, es, wt, et, tol: float, k_sigma: float = 3.5, max_pairs: int = 200_000):
    """Pairs (i, j) of source and target shapes with |ws_i - wt_j| <= tol + k * sqrt(es_i^2 + et_j^2).

    ``es``, ``et``: per-component standard deviation of each shape key (dimensionless). The
    search runs per class of noise (so that a few noisy triangles do not widen every query).
    Returns the index arrays and the distance in units of the allowed radius, best first, at most
    ``max_pairs``.
    """
    from scipy.spatial import cKDTree

    empty = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    if len(ws) == 0 or len(wt) == 0:
        return empty
    edges = np.array([0.0, 0.003, 0.01, 0.03, np.inf])
    cs_, ct_ = np.digitize(es, edges[1:-1]), np.digitize(et, edges[1:-1])
    ks = np.column_stack([ws.real, ws.imag])
    kt = np.column_stack([wt.real, wt.imag])
    parts_i, parts_j = [], []
    for a in np.unique(cs_):
        ia = np.flatnonzero(cs_ == a)
        ta = cKDTree(ks[ia])
        for b in np.unique(ct_):
            jb = np.flatnonzero(ct_ == b)
            r = tol + k_sigma * (es[ia].max() + et[jb].max())
            sp = ta.sparse_distance_matrix(cKDTree(kt[jb]), r, output_type="ndarray")
            parts_i.append(ia[sp["i"]])
            parts_j.append(jb[sp["j"]])
    i, j = np.concatenate(parts_i), np.concatenate(parts_j)
    if len(i) == 0:
        return empty
    dist = np.abs(ws[i] - wt[j])
    q = dist / (tol + k_sigma * np.sqrt(es[i] ** 2 + et[j] ** 2))
    ok = q <= 1.0
    i, j, q = i[ok], j[ok], q[ok]
    order = np.argsort(q, kind="stable")[:max_pairs]
    return i[order], j[order], q[order]


def similarities(sc: np.ndarray, tc: np.ndarray):
    """Least-squares similarity ``t = z s + b`` of each row of (H, 3) complex correspondences."""
    ms, mt = sc.mean(1, keepdims=True), tc.mean(1, keepdims=True)
    ds, dt = sc - ms, tc - mt
    z = (dt * ds.conj()).sum(1) / np.maximum((np.abs(ds) ** 2).sum(1), 1e-300)
    b = mt[:, 0] - z * ms[:, 0]
    return z, b


def score(z: np.ndarray, b: np.ndarray, xc: np.ndarray, tree, gate: float, chunk: int = 8192):
    """Inlier count and summed capped distance (nm) of each similarity hypothesis (complex z, b)."""
    h = len(z)
    count = np.zeros(h, int)
    dsum = np.zeros(h)
    step = max(1, chunk * 64 // max(len(xc), 1))
    for s in range(0, h, step):
        m = z[s : s + step, None] * xc[None, :] + b[s : s + step, None]
        d, _ = tree.query(np.column_stack([m.real.ravel(), m.imag.ravel()]), k=1, distance_upper_bound=gate)
        d = d.reshape(m.shape)
        hit = np.isfinite(d)
        count[s : s + step] = hit.sum(1)
        dsum[s : s + step] = np.where(hit, d, gate).sum(1)
    return count, dsum


def mutual_nn(pred: np.ndarray, tree, gate: float):
    """Source/target index pairs within ``gate`` (nm), the closest source kept per target."""
    d, t_idx = tree.query(pred, k=1, distance_upper_bound=gate)
    s_idx = np.flatnonzero(np.isfinite(d))
    t_idx = t_idx[s_idx]
    order = np.argsort(d[s_idx], kind="stable")
    _, first = np.unique(t_idx[order], return_index=True)
    sel = order[first]
    return s_idx[sel], t_idx[sel]


def refine(coarse: Transform, xs, ys, tree, gate: float, noise: tuple[float, float], min_gate: float,
           mirrored: bool, k_sigma: float = 4.0, rounds: int = 6):
    """Re-fit on mutual nearest neighbours within a gate that shrinks to the inliers' own scatter.

    Similarity (of the given handedness) first, affine once there are 6 or more pairs. The gate
    is ``k_sigma * s`` (``s`` the robust per-axis residual scatter, corrected for the fitted parameters),
    at least ``k_sigma`` times the stated noise (``noise`` = per-axis source, target standard
    deviations, nm; the source's mapped at the pose's scale) and ``min_gate``, at most ``gate``
    (nm). Returns (transform, source idx, target idx, gate, s).
    """
    from ._linear_fit import _closed_form, _weighted_centroid

    tr, g, s = coarse, gate, float("nan")
    for r in range(rounds):
        si, ti = mutual_nn(tr.apply(xs), tree, g)
        if len(si) < 3:
            break
        model = "affine" if len(si) >= 6 and r > 0 else "similarity"
        w = np.ones(len(si))
        c = _weighted_centroid(xs[si], w)
        a, t, _ = _closed_form(model, xs[si], ys[ti], w, c, reflection=mirrored)
        if model == "affine" and (np.linalg.det(a) < 0) != mirrored:  # an affine may flip: keep the handedness
            model = "similarity"
            a, t, _ = _closed_form(model, xs[si], ys[ti], w, c, reflection=mirrored)
        tr = Affine.from_parts(a, t - a @ c)
        res = ys[ti] - tr.apply(xs[si])
        p = 6 if model == "affine" else 4
        # robust per-axis scatter: median |r| of a 2-D normal is sqrt(2 ln 2) sigma
        k = len(si)
        s = float(np.median(np.linalg.norm(res, axis=1)) / np.sqrt(2 * np.log(2)) * np.sqrt(2 * k / max(2 * k - p, 1)))
        stated = float(np.hypot(noise[1], scale_of(a[:2, :2]) * noise[0]))
        g_new = min(gate, max(k_sigma * s, k_sigma * stated, min_gate))
        done = np.isclose(g_new, g, rtol=1e-3) and r > 1
        g = g_new
        if done:
            break
    si, ti = mutual_nn(tr.apply(xs), tree, g)
    return tr, si, ti, g, s


def chance_needed(n_source: int, density: float, gate: float, n_hyp: int, free: int, level: float):
    """Fewest inliers a pose must have so that chance alignments reach it with probability < ``level``.

    Each of the ``n_source - free`` source points not used to build a hypothesis lands within
    ``gate`` (nm) of a random target point with probability ``p = density * pi * gate^2``; the best
    of ``n_hyp`` hypotheses must not reach ``k`` such hits: ``n_hyp * P(Binomial >= k) < level``.

    Returns (needed = free + k, expected chance hits of one hypothesis).
    """
    from scipy.stats import binom

    nf = max(n_source - free, 0)
    p = float(min(1.0, density * np.pi * gate**2))
    ks = np.arange(nf + 2)
    sf = binom.sf(ks - 1, nf, p)
    k = int(ks[np.argmax(max(n_hyp, 1) * sf < level)])
    return free + k, nf * p


def rotation_deg(a: np.ndarray) -> float:
    """Rotation angle (degrees) of a 2-D linear part, after undoing x -> -x when det < 0."""
    if np.linalg.det(a) < 0:
        a = a @ np.diag([-1.0, 1.0])
    return float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))


def scale_of(a: np.ndarray) -> float:
    """Isotropic scale sqrt|det A| of a 2-D linear part."""
    return float(np.sqrt(abs(np.linalg.det(a))))
