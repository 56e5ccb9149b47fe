"""Pairing fiducials between two frames without clicks, in any pose.

1. Coarse pose. A metadata prior, when given, is refined and kept if it passes the chance test
   below. Otherwise similarity hypotheses come from triangles of fiducials whose shapes agree
   (``_pose``: shape keys in a cKDTree, any rotation, the scale within ``scale_range``), for the
   source as it is and mirrored (x -> -x, folded back into the coarse transform). Hypotheses are
   scored by the source points they map within a gate of a target point, on a subset first;
   the best few of each handedness are refined (similarity, then affine, on mutual nearest
   neighbours within a gate that shrinks to the inliers' own scatter).
2. Against chance: a pose counts only if its inliers exceed what the best of all ``H``
   hypotheses would reach by chance (each source point hits a random target point within the
   final gate with probability ``density * pi * gate^2``; level ``chance_level``). The
   handedness whose pose is least likely by chance wins; a mirror is reported, never hidden.
3. Assignment: a Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on Mahalanobis
   distances with both covariances plus the coarse model's own residual scatter, gated at a
   chi-square quantile; unmatched detections on either side are simply left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RegistrationError
from ..transforms import Affine, Transform
from . import _pose

__all__ = ["DEFAULT_SCALE_RANGE", "PRIOR_SCALE_SLACK", "Pairing", "pair_points"]

#: Scale range (target / source) searched when neither a range nor a prior is given.
DEFAULT_SCALE_RANGE: tuple[float, float] = (0.25, 4.0)
#: Factor around a prior's scale searched when the prior itself does not pair.
PRIOR_SCALE_SLACK: float = 1.25
_HINT = "--scale-range, --fiducials-moving/--fiducials-fixed or --landmarks"
_FREE = 3  # points a triangle hypothesis (or an affine refinement) matches by construction


@dataclass
class Pairing:
    """Correspondences found between source (moving) and target (fixed) detections.

    Attributes
    ----------
    source_index, target_index
        (K,) indices into the source and target detections of each pair.
    coarse
        The coarse transform (source -> target) used for the assignment; det < 0 when mirrored.
    n_hypotheses
        Number of pose hypotheses scored (0 when the prior sufficed).
    method
        ``"prior"`` or ``"triangles"``.
    mirrored
        True when the source matches the target only as a mirror image.
    diagnostics
        What the search saw: counts per side, scale range, gates, the best pose per handedness
        (inliers, needed, chance expectation, scale, rotation) and the prior's outcome.
    """

    source_index: np.ndarray
    target_index: np.ndarray
    coarse: Transform
    n_hypotheses: int = 0
    method: str = "triangles"
    notes: list[str] = field(default_factory=list)
    mirrored: bool = False
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source_index)


def _assign(tr: Transform, xs, ys, cs, ct, si, ti, gate_level, density: float = 0.0):
    """Gated Hungarian assignment with Mahalanobis costs.

    The gate is the chi-square quantile at ``gate_level``; in 2-D it tightens (down to the 0.1 %
    quantile) where a chance neighbour is likelier than a true pair that far out: where
    ``exp(-d2 / 2) / (2 pi sqrt|C|)`` falls below the ``density`` (nm^-2) of detections.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import chi2

    d = xs.shape[1]
    pred = tr.apply(xs)
    cs_m = tr.propagate_covariance(xs, cs)
    # model scatter: the refined inliers' residual variance beyond the stated noise (distortion,
    # coarse-model misfit, unstated noise); median |r|^2 of a d-D normal is chi2.median(d) per axis
    model_var = 0.0
    if len(si) >= 3:
        res = ys[ti] - pred[si]
        v_res = float(np.median(np.sum(res**2, axis=1)) / chi2.median(d))
        v_noise = float(np.median(np.trace(ct[ti] + cs_m[si], axis1=1, axis2=2)) / d)
        model_var = max(0.0, v_res - v_noise)
    cov = ct[None, :, :, :] + cs_m[:, None, :, :] + (model_var + 1e-6) * np.eye(d)
    diff = ys[None, :, :] - pred[:, None, :]
    d2 = np.einsum("nmi,nmij,nmj->nm", diff, np.linalg.inv(cov), diff)
    g = chi2.ppf(1 - gate_level, d)
    gate = np.full(d2.shape, g)
    if d == 2 and density > 0:
        lr = -2.0 * np.log(2 * np.pi * np.sqrt(np.linalg.det(cov)) * density)
        gate = np.clip(lr, chi2.ppf(0.999, d), g)
    big = 1e6 * g
    cost = np.where(d2 <= gate, d2, big)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    return r[ok], c[ok], model_var


def _scale_range(scale_range, prior, d: int):
    """(lo, hi, source) of the scale searched: the user's range, around the prior's, or the default."""
    if scale_range is not None:
        lo, hi = sorted(float(v) for v in scale_range)
        if not (lo > 0 and np.isfinite(hi)):
            raise RegistrationError(f"scale range must be positive and finite, got {scale_range}", field="scale_range", stage="pairing")
        return lo, hi, "user"
    if prior is not None and prior.is_linear:
        s = _pose.scale_of(_xy_part(prior, d).matrix[:2, :2])
        if s > 0 and np.isfinite(s):
            return s / PRIOR_SCALE_SLACK, s * PRIOR_SCALE_SLACK, "prior"
    return DEFAULT_SCALE_RANGE[0], DEFAULT_SCALE_RANGE[1], "default"


def _pose_entry(tr: Transform | None, si, g: float, s: float, coarse_count: int, h: int) -> dict[str, Any]:
    if tr is None:
        nan = float("nan")
        return {"n_hypotheses": int(h), "inliers": 0, "coarse_inliers": int(coarse_count), "gate_nm": float(g),
                "scatter_nm": nan, "scale": nan, "rotation_deg": nan}
    a = tr.matrix[:2, :2]
    return {
        "n_hypotheses": int(h),
        "inliers": int(len(si)),
        "coarse_inliers": int(coarse_count),
        "gate_nm": float(g),
        "scatter_nm": float(s),
        "scale": _pose.scale_of(a),
        "rotation_deg": _pose.rotation_deg(a),
    }


def _search(x2, y2, tree, mirrored: bool, tri_s, target_keys, ctx) -> dict[str, Any]:
    """Best pose of one handedness from triangle hypotheses (see the module docstring)."""
    flip = np.array([-1.0, 1.0]) if mirrored else np.ones(2)
    xc = _pose.as_complex(x2 * flip)
    yc = _pose.as_complex(y2)
    t6, wt, et = target_keys
    ordered, ws, ls, fs = _pose.canonical(xc, tri_s)
    es = fs * ctx["sig_s"] / ls
    ok = np.isfinite(ws) & (es <= ctx["max_shape_noise"])
    ordered, ws, es = ordered[ok], ws[ok], es[ok]
    i, j, _ = _pose.match_shapes(ws, es, wt, et, ctx["shape_tolerance"], max_pairs=4 * ctx["max_hypotheses"])
    z, b = _pose.similarities(xc[ordered[i]], yc[t6[j]])
    az = np.abs(z)
    keep = np.flatnonzero((az >= ctx["lo"]) & (az <= ctx["hi"]))[: ctx["max_hypotheses"]]
    z, b = z[keep], b[keep]
    h = len(z)
    out = {"mirrored": mirrored, "h": h, "tr": None, "si": np.zeros(0, int), "ti": np.zeros(0, int),
           "g": ctx["gate"], "s": float("nan"), "coarse": 0}
    if h == 0:
        return out
    n = len(x2)
    sub = np.sort(ctx["rng"].choice(n, min(n, ctx["subset"]), replace=False))
    c_sub, d_sub = _pose.score(z, b, xc[sub], tree, ctx["gate"])
    top = np.lexsort((d_sub, -c_sub))[: ctx["n_full"]]
    c_full, d_full = _pose.score(z[top], b[top], xc, tree, ctx["gate"])
    order = np.lexsort((d_full, -c_full))
    best = None
    for r in order[: ctx["n_refine"]]:
        zr, br = z[top[r]], b[top[r]]
        a = np.array([[zr.real, -zr.imag], [zr.imag, zr.real]]) @ np.diag(flip)
        coarse = Affine.from_parts(a, [br.real, br.imag])
        tr, si, ti, g, s = _pose.refine(coarse, x2, y2, tree, ctx["gate"], ctx["noise"], ctx["min_gate"], mirrored)
        key = _log_chance(len(si), n, ctx["density"], g)
        if best is None or key < best[0]:
            best = (key, tr, si, ti, g, s, int(c_full[r]))
    _, out["tr"], out["si"], out["ti"], out["g"], out["s"], out["coarse"] = best
    return out


def _log_chance(k: int, n: int, density: float, gate: float) -> float:
    """Natural log of the probability that one hypothesis reaches ``k`` inliers by chance."""
    from scipy.stats import binom

    if k <= _FREE:
        return 0.0
    p = float(min(1.0, density * np.pi * gate**2))
    return float(binom.logsf(k - _FREE - 1, max(n - _FREE, 0), p))


def _judge(res: dict[str, Any], n: int, density: float, h_total: int, ctx) -> None:
    """Add the chance threshold, expectation and log10 chance probability to a search result."""
    need, lam = _pose.chance_needed(n, density, res["g"], h_total, _FREE, ctx["chance_level"])
    need = max(need, ctx["min_pairs"])
    k = len(res["si"])
    logp = _log_chance(k, n, density, res["g"])
    res["needed"], res["chance_expected"] = int(need), float(lam)
    res["log10_chance"] = min(0.0, (logp + np.log(max(h_total, 1))) / np.log(10))
    res["passes"] = res["tr"] is not None and k >= need


def pair_points(
    source,
    target,
    source_cov=None,
    target_cov=None,
    *,
    prior: Transform | None = None,
    scale_range: tuple[float, float] | None = None,
    allow_mirror: bool = True,
    gate_nm: float | None = None,
    min_pairs: int = 3,
    gate_level: float = 1e-4,
    shape_tolerance: float = 0.02,
    chance_level: float = 0.01,
    max_hypotheses: int = 20_000,
    seed: int = 0,
) -> Pairing:
    """Find correspondences between two fiducial sets without manual clicks, in any pose.

    Robust to missing and spurious detections on either side, any rotation, either handedness
    (a mirrored frame, as an inverted microscope sees the sample from below), a scale within
    ``scale_range`` and any translation.

    Parameters
    ----------
    source, target
        (N, D) and (M, D) detections (nm) in the moving and fixed frames, x, y[, z]. Hypotheses
        use x, y; the final assignment uses all D axes (a z offset is estimated from inliers).
    source_cov, target_cov
        (N, D, D) and (M, D, D) localisation covariances (nm^2); default unknown (zero).
    prior
        Optional approximate transform source -> target (metadata); tried first, and its scale
        centres the search when it does not pair by itself.
    scale_range
        Allowed scale factor target/source. None: the prior's scale within a factor
        :data:`PRIOR_SCALE_SLACK`, else :data:`DEFAULT_SCALE_RANGE`.
    allow_mirror
        Accept a pairing that exists only as a mirror image (reported as ``mirrored``). False:
        such a match raises.
    gate_nm
        Coarse inlier gate (nm); default: a quarter of the median target nearest-neighbour
        distance, at least 8 combined standard deviations of the stated noise.
    min_pairs
        Fewest pairs accepted.
    gate_level
        Tail probability of the final Mahalanobis (chi-square) gate.
    shape_tolerance
        Allowed difference of triangle shape keys beyond the noise (dimensionless; covers the
        part of the mapping a similarity does not follow: shear, anisotropic scale, distortion).
    chance_level
        Probability that the best chance alignment of all hypotheses reaches the inliers needed.
    max_hypotheses
        At most this many hypotheses per handedness (the best-matching shapes first).

    Returns
    -------
    Pairing
        With ``mirrored`` and ``diagnostics`` (also kept on a raised error).

    Raises
    ------
    RegistrationError
        ``stage="pairing"``: too few detections, no pose beats chance, or (with
        ``allow_mirror=False``) the sets match only as a mirror image.
    """
    from scipy.spatial import cKDTree

    xs = np.atleast_2d(np.asarray(source, float))
    ys = np.atleast_2d(np.asarray(target, float))
    n, d = xs.shape
    m = len(ys)
    if ys.shape[1] != d:
        raise RegistrationError(f"source is {d}-D but target is {ys.shape[1]}-D", field="fiducials", stage="pairing")
    cs = np.zeros((n, d, d)) if source_cov is None else np.asarray(source_cov, float)
    ct = np.zeros((m, d, d)) if target_cov is None else np.asarray(target_cov, float)
    diag: dict[str, Any] = {"n_moving": int(n), "n_fixed": int(m), "hint": _HINT}
    if n < min_pairs or m < min_pairs:
        raise RegistrationError(
            f"no consistent pairing possible: {n} moving and {m} fixed fiducials detected, at least "
            f"{min_pairs} needed on each side",
            field="fiducials", stage="pairing", hint="--fiducials-moving/--fiducials-fixed or --landmarks", diagnostics=diag,
        )
    x2, y2 = xs[:, :2], ys[:, :2]
    lo, hi, range_source = _scale_range(scale_range, prior, d)
    sig_s = float(np.sqrt(np.median(np.trace(cs[:, :2, :2], axis1=1, axis2=2)) / 2))
    sig_t = float(np.sqrt(np.median(np.trace(ct[:, :2, :2], axis1=1, axis2=2)) / 2))
    sig_c = float(np.hypot(sig_t, np.sqrt(lo * hi) * sig_s))
    nn_t = _pose.nn_median(y2)
    gate = float(gate_nm) if gate_nm is not None else max(0.25 * nn_t, 8.0 * sig_c)
    min_gate = 1e-3 * nn_t
    density = _pose.point_density(y2)
    tree = cKDTree(y2)
    diag.update({
        "scale_range": [lo, hi], "scale_range_source": range_source, "gate_nm": gate,
        "noise_moving_nm": sig_s, "noise_fixed_nm": sig_t, "fixed_density_per_um2": density * 1e6,
        "shape_tolerance": float(shape_tolerance), "chance_level": float(chance_level),
    })
    ctx = {
        "sig_s": sig_s, "noise": (sig_s, sig_t), "gate": gate, "min_gate": min_gate, "lo": lo, "hi": hi,
        "shape_tolerance": shape_tolerance, "max_shape_noise": 0.1, "max_hypotheses": int(max_hypotheses),
        "rng": np.random.default_rng(seed), "subset": 24, "n_full": 256, "n_refine": 8,
        "chance_level": chance_level, "min_pairs": min_pairs, "density": density,
    }
    notes: list[str] = []
    chosen = None
    if prior is not None:
        chosen = _try_prior(prior, d, x2, y2, tree, n, density, allow_mirror, ctx, diag, notes)
    results: dict[str, dict[str, Any]] = {}
    if chosen is None:
        tri_s, tri_t = _pose.triangles(x2), _pose.triangles(y2)
        t6, wt, lt, ft = _pose.all_orders(_pose.as_complex(y2), tri_t)
        et = ft * sig_t / lt
        # a canonical source key has |w| <= 1 and |1 - w| <= 1: other vertex orders never match
        reach = 1.0 + shape_tolerance + 0.2
        okt = np.isfinite(wt) & (et <= ctx["max_shape_noise"]) & (np.abs(wt) <= reach) & (np.abs(1 - wt) <= reach)
        keys = (t6[okt], wt[okt], et[okt])
        diag.update({"n_triangles_moving": int(len(tri_s)), "n_triangles_fixed": int(len(tri_t))})
        for name, mir in (("proper", False), ("mirrored", True)):
            results[name] = _search(x2, y2, tree, mir, tri_s, keys, ctx)
        h_total = sum(r["h"] for r in results.values())
        diag["n_hypotheses"] = int(h_total)
        for name, r in results.items():
            _judge(r, n, density, h_total, ctx)
            diag[name] = _pose_entry(r["tr"], r["si"], r["g"], r["s"], r["coarse"], r["h"])
            diag[name].update(needed=r["needed"], chance_expected=r["chance_expected"],
                              log10_chance=r["log10_chance"], passes=bool(r["passes"]))
        chosen = _choose(results, allow_mirror, n, m, lo, hi, diag, notes)
    tr2, si, ti, mirrored, method, h = chosen
    diag["chosen"] = "mirrored" if mirrored else "proper"
    diag["method"] = method
    tr = _lift(tr2, d, xs, ys, si, ti, mirrored)
    dens_pair = max(density, _pose.point_density(tr2.apply(x2)))
    r, c, model_var = _assign(tr, xs, ys, cs, ct, si, ti, gate_level, dens_pair)
    if len(r) < min_pairs:
        raise RegistrationError(
            f"no consistent pairing: only {len(r)} pairs pass the Mahalanobis gate (need {min_pairs})",
            field="fiducials", stage="pairing", hint=_HINT, diagnostics=diag,
        )
    a = tr2.matrix[:2, :2]
    if mirrored:
        notes.append(
            "the moving frame matches the fixed frame only as a mirror image (x -> -x; e.g. an inverted "
            "microscope): fitted with a reflection"
        )
    notes.append(
        f"{len(r)} pairs from {n} moving / {m} fixed detections ({method}, {h} hypotheses, scale "
        f"{_pose.scale_of(a):.4g}, rotation {_pose.rotation_deg(a):.1f} deg{', mirrored' if mirrored else ''}); "
        f"scale range {lo:.3g}-{hi:.3g} ({range_source}); coarse gate {gate:.3g} nm; model scatter "
        f"{np.sqrt(model_var):.3g} nm per axis"
    )
    diag["n_pairs"] = int(len(r))
    return Pairing(r, c, tr, n_hypotheses=h, method=method, notes=notes, mirrored=mirrored, diagnostics=diag)


def _try_prior(prior, d, x2, y2, tree, n, density, allow_mirror, ctx, diag, notes):
    """Refine the prior; keep it when it beats chance (one hypothesis)."""
    ptr = _xy_part(prior, d)
    if not ptr.is_linear:
        notes.append("prior is not linear: searched pose hypotheses instead")
        return None
    mir = bool(np.linalg.det(ptr.matrix[:2, :2]) < 0)
    tr, si, ti, g, s = _pose.refine(ptr, x2, y2, tree, ctx["gate"], ctx["noise"], ctx["min_gate"], mir)
    res = {"tr": tr, "si": si, "g": g}
    _judge(res, n, density, 1, ctx)
    diag["prior"] = _pose_entry(tr, si, g, s, len(si), 1)
    diag["prior"].update(needed=res["needed"], chance_expected=res["chance_expected"], passes=bool(res["passes"]))
    if res["passes"] and (allow_mirror or not mir):
        return tr, si, ti, mir, "prior", 0
    notes.append(f"prior pose paired {len(si)} fiducials ({res['needed']} needed): searched pose hypotheses instead")
    return None


def _choose(results, allow_mirror, n, m, lo, hi, diag, notes):
    """The handedness whose pose is least likely by chance, or a RegistrationError saying why."""
    p, q = results["proper"], results["mirrored"]

    def said(r):
        return (f"{len(r['si'])} inliers ({r['needed']} needed, {r['chance_expected']:.2g} expected by chance, "
                f"of {r['h']} hypotheses)")

    counts = f"{n} moving / {m} fixed fiducials, scale range {lo:.3g}-{hi:.3g}"
    passing = [r for r in (p, q) if r["passes"]]
    if not passing:
        raise RegistrationError(
            f"no consistent pairing: no pose beats chance; best proper pose {said(p)}, best mirrored pose "
            f"{said(q)}; {counts}",
            field="fiducials", stage="pairing", hint=_HINT, diagnostics=diag,
        )
    win = min(passing, key=lambda r: (r["log10_chance"], -len(r["si"])))
    lose = q if win is p else p
    if win is q and not allow_mirror:
        if not (p["passes"] and len(p["si"]) >= 0.9 * len(q["si"])):
            raise RegistrationError(
                f"the fiducials pair up only as a mirror image: mirrored pose {said(q)}, proper pose {said(p)}; "
                f"{counts}; allow the mirror (drop --no-mirror)",
                field="fiducials", stage="pairing", hint="allow the mirror (drop --no-mirror)", diagnostics=diag,
            )
        notes.append(f"mirror not allowed: kept the proper pose ({said(p)}) over the as likely mirrored one ({said(q)})")
        win, lose = p, q
    elif lose["passes"] and allow_mirror and len(lose["si"]) >= 0.9 * len(win["si"]):
        raise RegistrationError(
            f"ambiguous handedness: the fiducials pair up both as they are ({said(p)}) and mirrored ({said(q)}); "
            f"{counts}",
            field="fiducials", stage="pairing", hint="--no-mirror (frames of the same handedness) or --landmarks",
            diagnostics=diag,
        )
    return win["tr"], win["si"], win["ti"], win["mirrored"], "triangles", int(p["h"] + q["h"])

def _xy_part(t: Transform, d: int) -> Transform:
    if d == 2 or not t.is_linear:
        return t
    m = t.matrix
    return Affine.from_parts(m[:2, :2], m[:2, 3])


def _lift(tr2: Transform, d: int, xs, ys, si, ti, mirrored: bool = False) -> Transform:
    """A 3-D coarse transform: fitted on the x, y inliers in 3-D when there are enough."""
    if d == 2:
        return tr2
    if len(si) >= 4:
        from ._linear_fit import _closed_form, _weighted_centroid

        model = "affine" if len(si) >= 8 else "similarity"
        w = np.ones(len(si))
        c = _weighted_centroid(xs[si], w)
        a, t, _ = _closed_form(model, xs[si], ys[ti], w, c, reflection=mirrored)
        return Affine.from_parts(a, t - a @ c)
    m2 = tr2.matrix
    a = np.eye(3)
    a[:2, :2] = m2[:2, :2]
    t = np.zeros(3)
    t[:2] = m2[:2, 2]
    t[2] = float(np.median(ys[ti, 2] - xs[si, 2])) if len(si) else 0.0
    return Affine.from_parts(a, t)
