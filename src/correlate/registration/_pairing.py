"""Pairing fiducials between two frames without clicks.

1. Coarse pose: either a prior transform (metadata), or RANSAC over pairs of points: every
   source pair (i, j) and target pair (k, l) whose length ratio lies in the allowed scale range
   defines one 2-D similarity (rotation unrestricted); each hypothesis maps all source points and
   scores the number that land within a gate of a target point (cKDTree, vectorised).
2. Refinement: the inliers of the best hypothesis re-fit a similarity, then an affine, and the
   gate is re-applied (a few rounds).
   A pairing counts only if it has more pairs than the best of the hypotheses would reach by
   chance (Poisson number of random hits within the final gate, 1 % level).
3. Assignment: a Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on Mahalanobis
   distances with both covariances plus the coarse model's own residual scatter, gated at a
   chi-square quantile; unmatched detections on either side are simply left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RegistrationError
from ..transforms import Affine, Transform

__all__ = ["Pairing", "pair_points"]


@dataclass
class Pairing:
    """Correspondences found between source (moving) and target (fixed) detections.

    Attributes
    ----------
    source_index, target_index
        (K,) indices into the source and target detections of each pair.
    coarse
        The coarse transform (source -> target) used for the assignment.
    n_hypotheses
        Number of pose hypotheses scored (0 when the prior sufficed).
    method
        ``"prior"`` or ``"ransac"``.
    """

    source_index: np.ndarray
    target_index: np.ndarray
    coarse: Transform
    n_hypotheses: int = 0
    method: str = "ransac"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source_index)


def _nn_median(p: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(p) < 2:
        return 1.0
    d, _ = cKDTree(p).query(p, k=2)
    return float(np.median(d[:, 1]))


def _score_hypotheses(zs, bs, xs_c, tree, gate, chunk=4096):
    """Inlier count and summed distance per similarity hypothesis (complex z, b)."""
    h = len(zs)
    count = np.zeros(h, int)
    dsum = np.zeros(h)
    for s in range(0, h, chunk):
        m = zs[s : s + chunk, None] * xs_c[None, :] + bs[s : s + chunk, None]
        pts = np.column_stack([m.real.ravel(), m.imag.ravel()])
        d, _ = tree.query(pts, k=1, distance_upper_bound=gate)
        d = d.reshape(m.shape)
        hit = np.isfinite(d)
        count[s : s + chunk] = hit.sum(1)
        dsum[s : s + chunk] = np.where(hit, d, gate).sum(1)
    return count, dsum


def _ransac(xs, ys, scale_range, gate, max_hypotheses, rng, max_source_pairs=300):
    from scipy.spatial import cKDTree

    n, m = len(xs), len(ys)
    xc = xs[:, 0] + 1j * xs[:, 1]
    yc = ys[:, 0] + 1j * ys[:, 1]
    i, j = np.triu_indices(n, 1)
    k, l = np.nonzero(~np.eye(m, dtype=bool))  # ordered target pairs
    sv = xc[j] - xc[i]
    tv = yc[l] - yc[k]
    ls, lt = np.abs(sv), np.abs(tv)
    good_s = ls > 0
    i, j, sv, ls = i[good_s], j[good_s], sv[good_s], ls[good_s]
    # Longest source baselines first (least noise-sensitive), bounded work.
    order = np.argsort(-ls)[:max_source_pairs]
    i, j, sv, ls = i[order], j[order], sv[order], ls[order]
    tree = cKDTree(ys)
    lo, hi = scale_range
    ratio_lo = ls[:, None] * lo
    ratio_hi = ls[:, None] * hi
    ok = (lt[None, :] >= ratio_lo) & (lt[None, :] <= ratio_hi)
    si, ti = np.nonzero(ok)
    if len(si) > max_hypotheses:
        pick = np.sort(rng.choice(len(si), max_hypotheses, replace=False))
        si, ti = si[pick], ti[pick]
    if len(si) == 0:
        return None, 0
    z = tv[ti] / sv[si]
    b = yc[k[ti]] - z * xc[i[si]]
    count, dsum = _score_hypotheses(z, b, xc, tree, gate)
    best = np.lexsort((dsum, -count))[0]
    zb, bb = z[best], b[best]
    a = np.array([[zb.real, -zb.imag], [zb.imag, zb.real]])
    return Affine.from_parts(a, [bb.real, bb.imag]), len(z)


def _mutual_nn(pred, ys, gate):
    from scipy.spatial import cKDTree

    d, t_idx = cKDTree(ys).query(pred, k=1, distance_upper_bound=gate)
    s_idx = np.flatnonzero(np.isfinite(d))
    t_idx = t_idx[s_idx]
    # keep the closest source per target
    order = np.argsort(d[s_idx])
    _, first = np.unique(t_idx[order], return_index=True)
    sel = order[first]
    return s_idx[sel], t_idx[sel]


def _refine(coarse: Transform, xs, ys, gate, rounds=6, floor=0.0):
    """Re-fit on mutual nearest neighbours within a gate that shrinks to the inliers' own scatter."""
    from ._fit import _closed_form, _weighted_centroid

    tr = coarse
    g = gate
    for r in range(rounds):
        si, ti = _mutual_nn(tr.apply(xs), ys, g)
        if len(si) < 2:
            break
        model = "affine" if len(si) >= 6 and r > 0 else "similarity"
        w = np.ones(len(si))
        c = _weighted_centroid(xs[si], w)
        a, t, _ = _closed_form(model, xs[si], ys[ti], w, c)
        tr = Affine.from_parts(a, t - a @ c)
        res = np.linalg.norm(ys[ti] - tr.apply(xs[si]), axis=1)
        scale = 1.4826 * np.median(res)
        g = min(gate, max(6.0 * scale, floor))
    si, ti = _mutual_nn(tr.apply(xs), ys, g)
    return tr, si, ti, g


def _needed(n, m, area, gate, n_hyp, min_pairs, level=0.01):
    """Fewest pairs that chance alignments (best of ``n_hyp`` poses, Poisson with the expected
    number of random hits within ``gate``) reach with probability below ``level``."""
    from scipy.stats import poisson

    lam = n * m * np.pi * gate**2 / max(area, 1e-9)
    k = 0
    while k < n and max(n_hyp, 1) * poisson.sf(k - 1, lam) >= level:
        k += 1
    return max(min_pairs, 2 + k)


def _assign(tr: Transform, xs, ys, cs, ct, si, ti, gate_level):
    """Gated Hungarian assignment with Mahalanobis costs."""
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import chi2

    d = xs.shape[1]
    pred = tr.apply(xs)
    # model scatter from the refined inliers (distortion, residual coarse-model misfit)
    if len(si) >= 3:
        res = ys[ti] - pred[si]
        model_var = float(np.median(np.sum(res**2, axis=1)) / d) * 1.5
    else:
        model_var = 0.0
    cs_m = tr.propagate_covariance(xs, cs)
    cov = ct[None, :, :, :] + cs_m[:, None, :, :] + (model_var + 1e-6) * np.eye(d)
    diff = ys[None, :, :] - pred[:, None, :]
    d2 = np.einsum("nmi,nmij,nmj->nm", diff, np.linalg.inv(cov), diff)
    g = chi2.ppf(1 - gate_level, d)
    big = 1e6 * g
    cost = np.where(d2 <= g, d2, big)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    return r[ok], c[ok], model_var


def pair_points(
    source,
    target,
    source_cov=None,
    target_cov=None,
    *,
    prior: Transform | None = None,
    scale_range: tuple[float, float] = (0.9, 1.1),
    gate_nm: float | None = None,
    min_pairs: int = 3,
    gate_level: float = 1e-4,
    max_hypotheses: int = 100_000,
    seed: int = 0,
    check_mirror: bool = True,
) -> Pairing:
    """Find correspondences between two fiducial sets without manual clicks.

    Robust to missing and spurious detections on either side, any rotation, a scale within
    ``scale_range`` and any translation.

    Parameters
    ----------
    source, target
        (N, D) and (M, D) detections (nm) in the moving and fixed frames, x, y[, z]. Hypotheses
        use x, y; the final assignment uses all D axes (a z offset is estimated from inliers).
    source_cov, target_cov
        (N, D, D) and (M, D, D) localisation covariances (nm^2); default zero.
    prior
        Optional approximate transform source -> target (metadata); tried first.
    scale_range
        Allowed range of the scale factor target/source.
    gate_nm
        Coarse inlier gate (nm); default: a quarter of the median target nearest-neighbour
        distance, at least 5 combined standard deviations.
    min_pairs
        Fewest pairs accepted as a consistent pairing.
    gate_level
        Tail probability of the final Mahalanobis (chi-square) gate.

    Returns
    -------
    Pairing

    Raises
    ------
    RegistrationError
        No consistent pairing (too few detections, no hypothesis with ``min_pairs`` inliers), or
        the sets only match as a mirror image.
    """
    xs = np.atleast_2d(np.asarray(source, float))
    ys = np.atleast_2d(np.asarray(target, float))
    n, d = xs.shape
    m = len(ys)
    if ys.shape[1] != d:
        raise RegistrationError(f"source is {d}-D but target is {ys.shape[1]}-D", field="fiducials")
    cs = np.zeros((n, d, d)) if source_cov is None else np.asarray(source_cov, float)
    ct = np.zeros((m, d, d)) if target_cov is None else np.asarray(target_cov, float)
    if n < min_pairs or m < min_pairs:
        raise RegistrationError(
            f"no consistent pairing possible: {n} moving and {m} fixed fiducials detected, at least "
            f"{min_pairs} needed on each side",
            field="fiducials",
        )
    sig = float(np.sqrt(np.median(np.trace(ct, axis1=1, axis2=2)) + np.median(np.trace(cs, axis1=1, axis2=2))))
    gate = gate_nm if gate_nm is not None else max(0.25 * _nn_median(ys[:, :2]), 5 * sig)
    floor = max(6 * sig, 1e-3 * _nn_median(ys[:, :2]))
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    def attempt(xs2d):
        tried = 0
        method = "ransac"
        tr = None
        g = gate
        if prior is not None:
            ptr = _xy_part(prior, d)
            tr, si, ti, g = _refine(ptr, xs2d, ys[:, :2], gate, floor=floor)
            if len(si) >= max(min_pairs, 0.5 * min(n, m)):
                method = "prior"
            else:
                tr = None
        if tr is None:
            coarse, tried = _ransac(xs2d, ys[:, :2], scale_range, gate, max_hypotheses, rng)
            if coarse is None:
                return None, [], [], tried, method, gate
            tr, si, ti, g = _refine(coarse, xs2d, ys[:, :2], gate, floor=floor)
        return tr, si, ti, tried, method, g

    lo, hi = ys[:, :2].min(0), ys[:, :2].max(0)
    area = float(np.prod(np.maximum(hi - lo, 1e-9)))
    tr2, si, ti, tried, method, g_final = attempt(xs[:, :2])
    found = 0 if tr2 is None else len(si)
    need = _needed(n, m, area, g_final, tried, min_pairs)
    if check_mirror:
        flip = np.array([-1.0, 1.0])
        trm, sim_, _, _, _, _ = attempt(xs[:, :2] * flip)
        nm_ = 0 if trm is None else len(sim_)
        if nm_ >= need and nm_ > found + max(2, 0.25 * found):
            raise RegistrationError(
                f"the fiducials pair up only as a mirror image ({nm_} pairs mirrored vs {found} not): one "
                "image is reflected; flip it explicitly before registering",
                field="fiducials",
            )
    if tr2 is None or found < need:
        raise RegistrationError(
            f"no consistent pairing: the best pose hypothesis (of {tried}) matched {found} of {n} moving "
            f"to {m} fixed fiducials within {g_final:.3g} nm; at least {need} needed. Check the scale "
            f"range {scale_range}, or give manual pairs (--landmarks)",
            field="fiducials",
        )
    tr = _lift(tr2, d, xs, ys, si, ti)
    r, c, model_var = _assign(tr, xs, ys, cs, ct, si, ti, gate_level)
    if len(r) < min_pairs:
        raise RegistrationError(
            f"no consistent pairing: only {len(r)} pairs pass the Mahalanobis gate (need {min_pairs})",
            field="fiducials",
        )
    notes.append(
        f"{len(r)} pairs from {n} moving / {m} fixed detections; coarse gate {gate:.3g} nm; model scatter "
        f"{np.sqrt(model_var):.3g} nm per axis"
    )
    return Pairing(r, c, tr, n_hypotheses=tried, method=method, notes=notes)


def _xy_part(t: Transform, d: int) -> Transform:
    if d == 2 or not t.is_linear:
        return t
    m = t.matrix
    return Affine.from_parts(m[:2, :2], m[:2, 3])


def _lift(tr2: Transform, d: int, xs, ys, si, ti) -> Transform:
    """A 3-D coarse transform: fitted on the x, y inliers in 3-D when there are enough."""
    if d == 2:
        return tr2
    if len(si) >= 4:
        from ._fit import _closed_form, _weighted_centroid

        model = "affine" if len(si) >= 8 else "similarity"
        w = np.ones(len(si))
        c = _weighted_centroid(xs[si], w)
        a, t, _ = _closed_form(model, xs[si], ys[ti], w, c)
        return Affine.from_parts(a, t - a @ c)
    m2 = tr2.matrix
    a = np.eye(3)
    a[:2, :2] = m2[:2, :2]
    t = np.zeros(3)
    t[:2] = m2[:2, 2]
    t[2] = float(np.median(ys[ti, 2] - xs[si, 2])) if len(si) else 0.0
    return Affine.from_parts(a, t)
