"""Harness of the registration family (helper module, not a test file; also used by
benchmarks/registration_family.py).

For one randomized acquisition (``correlate.datasets.random_acquisition``): import the
simulator's elements into a Scene as a user would (no truth transforms, no ``true_*`` columns,
no simulator attrs), run ``register_scene(scene, moving, "em")`` with defaults and no hints, and
judge the result against the truth at control points (true particle centres inside the hull of
the beads both modalities see, plus a grid):

* true error of the fitted transform,
* the error of an oracle fit: the same model fitted on the true pairs, i.e. the true bead
  positions (gold centre in EM; gold centre plus the bead's systematic offset in the light
  frame) plus noise drawn from the detected covariances (Monte Carlo), and, where detection
  worked, the detected fiducials paired by the truth,
* the predicted 95 % radius ``reg.fit.tre_radius``.

All lengths nm. The fixed element is the EM image, whose frame is world.
"""

from __future__ import annotations

import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: moving element -> (acquisition kind, truth frame, truth columns, systematic-offset columns, seen column)
MOVING = {
    "antibody": ("smlm", "antibody", ("x_smlm", "y_smlm"), ("dx_sys_smlm", "dy_sys_smlm"), "seen_smlm"),
    "sim": ("lm", "sim", ("x_sim", "y_sim"), ("dx_sys_sim", "dy_sys_sim"), "seen_sim"),
}
_SIM_ATTRS = ("simulated", "seed", "labels")


def user_elements(sample, names) -> dict[str, Any]:
    """The sample's elements as a user's files would give them: no ``true_*`` columns, no
    simulator attrs, no run length (the SIM keeps ``resolution_nm`` only where the config
    writes it)."""
    out = {}
    els = sample.elements()
    for name in names:
        el = els[name]
        if hasattr(el, "dims"):  # image
            el = el.copy()
            el.attrs = {k: v for k, v in el.attrs.items() if k not in _SIM_ATTRS}
        else:
            keep = [c for c in el.columns if not c.startswith("true_")]
            attrs = {k: v for k, v in el.attrs.items() if k != "n_frames"}  # a CSV does not say
            el = el[keep].copy()
            el.attrs = attrs
        out[name] = el
    return out


def user_scene(sample, path, moving: str):
    """A new Scene at ``path`` holding ``"em"`` and ``moving``, unplaced (default transforms)."""
    from correlate.scene import Scene

    scene = Scene.create(path)
    for name, el in user_elements(sample, ["em", moving]).items():
        scene.add(name, el)
    return scene


def is_mirrored(t) -> bool:
    """Whether a 2-D transform (linear or a spline) reverses handedness near the field."""
    p = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0]])
    q = t.apply(p)
    return bool(np.linalg.det(np.column_stack([q[1] - q[0], q[2] - q[0]])) < 0)


def true_pairs(sample, moving: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beads seen by both modalities: (ids, positions in the moving frame where the bead emits
    (gold centre + systematic offset), world positions of the gold centres)."""
    _, _, cols, sys_cols, seen = MOVING[moving]
    f = sample.truth.fiducials
    mv = f[list(cols)].to_numpy(float) + f[list(sys_cols)].to_numpy(float)
    ok = f[seen].to_numpy(bool) & np.isfinite(mv).all(1)
    return f["fiducial_id"].to_numpy()[ok], mv[ok], f[["x", "y"]].to_numpy(float)[ok]


def control_points(sample, moving: str, n_grid: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """World control points (particle centres, then an ``n_grid``² grid) inside the hull of the
    beads both modalities see, and their exact positions in the moving frame."""
    from scipy.spatial import Delaunay

    _, frame, *_ = MOVING[moving]
    _, _, world = true_pairs(sample, moving)
    L = float(sample.config.field_nm)
    g = np.linspace(0.0, L, n_grid)
    grid = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    pts = np.vstack([sample.truth.particles[["x", "y"]].to_numpy(float), grid])
    if len(world) < 3:
        return np.zeros((0, 2)), np.zeros((0, 2))
    inside = Delaunay(world).find_simplex(pts) >= 0
    w = pts[inside]
    return w, sample.truth.transforms[frame].inverse().apply(w)


def _fit_errors(src, dst, model, cs, ct, cam, world, mirrored: bool) -> np.ndarray:
    """True error (nm) at ``cam`` -> ``world`` of ``model`` fitted to src -> dst; a mirrored
    truth is fitted on the x-flipped source (a proper fit of the flipped frame is exact)."""
    from correlate.registration import fit_model

    flip = np.array([-1.0, 1.0]) if mirrored else np.ones(2)
    f2 = np.outer(flip, flip)
    fit = fit_model(src * flip, dst, model, np.asarray(cs) * f2, np.asarray(ct))
    return np.linalg.norm(fit.transform.apply(cam * flip) - world, axis=1)


def oracle_truth(sample, moving, model, cov_moving, cov_fixed, cam, world, trials=20, seed=0) -> np.ndarray:
    """(trials * M,) errors of ``model`` fitted to the true pairs plus noise of the given mean
    covariances (2, 2) nm² (systematic offsets included: they are part of the bead)."""
    rng = np.random.default_rng(seed)
    _, src, dst = true_pairs(sample, moving)
    n = len(src)
    mirrored = is_mirrored(sample.truth.transforms[MOVING[moving][1]])
    cs = np.broadcast_to(cov_moving, (n, 2, 2))
    ct = np.broadcast_to(cov_fixed, (n, 2, 2))
    errs = []
    for _ in range(trials):
        xs = src + rng.multivariate_normal([0, 0], cov_moving, n)
        ys = dst + rng.multivariate_normal([0, 0], cov_fixed, n)
        errs.append(_fit_errors(xs, ys, model, cs, ct, cam, world, mirrored))
    return np.concatenate(errs)


def match_detections(sample, moving, fid_moving, fid_fixed, tol_nm: float | None = None):
    """Pair detected fiducials by the truth: each true bead seen by both gets its nearest
    detection in each frame within ``tol_nm`` (default: half the bead diameter + 30 nm).
    Returns (moving rows, fixed rows) of matched detections."""
    from scipy.spatial import cKDTree

    _, src, dst = true_pairs(sample, moving)
    tol = 0.5 * float(sample.config.fiducial_diameter_nm) + 30.0 if tol_nm is None else tol_nm
    dm, im = cKDTree(fid_moving[["x", "y"]].to_numpy(float)).query(src)
    df, jf = cKDTree(fid_fixed[["x", "y"]].to_numpy(float)).query(dst)
    ok = (dm < tol) & (df < tol)
    return im[ok], jf[ok]


def _cov(table, rows) -> np.ndarray:
    from correlate.registration import fiducial_arrays

    _, c = fiducial_arrays(table.iloc[rows].reset_index(drop=True), 2)
    return c


@dataclass
class Outcome:
    """One acquisition, one registration: what happened and the errors at control points (nm)."""

    seed: int
    moving: str
    ok: bool = False
    stage: str | None = None
    error: str | None = None
    model: str | None = None
    mirrored_true: bool = False
    mirrored_found: bool | None = None
    n_pairs: int = 0
    n_wrong_pairs: int = 0
    err: np.ndarray = field(default_factory=lambda: np.zeros(0))
    r95: np.ndarray = field(default_factory=lambda: np.zeros(0))
    oracle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    oracle_detected: np.ndarray = field(default_factory=lambda: np.zeros(0))
    config: dict = field(default_factory=dict)

    def line(self) -> str:
        c = self.config
        head = (f"seed {self.seed:3d} {self.moving:8s} bead {c['fiducial_diameter_nm']:5.1f} nm, EM px "
                f"{c['em_pixel_nm']:.2f}, mirror {'y' if self.mirrored_true else 'n'}")
        if not self.ok:
            return f"{head}: FAILED [{self.stage}] {self.error}"
        return (f"{head}: {self.model:10s} pairs {self.n_pairs:2d} (wrong {self.n_wrong_pairs}), median TRE "
                f"{np.median(self.err):6.2f} nm, oracle {np.median(self.oracle):6.2f} nm, "
                f"covered {np.mean(self.err <= self.r95):5.1%}")


def _highlights(cfg) -> dict:
    keys = ("fiducial_diameter_nm", "em_pixel_nm", "fiducial_presence", "fiducial_bleach", "smlm_rotation_deg",
            "smlm_scale", "smlm_mirror", "sim_rotation_deg", "sim_scale", "sim_mirror", "fiducial_missing_fraction",
            "n_spurious_fiducials", "sim_resolution_nm", "sim_pixel_nm", "sim_resolution_metadata",
            "fiducial_systematic_nm", "n_fiducials", "distortion_nm")
    return {k: getattr(cfg, k) for k in keys}


def run_one(seed: int, moving: str, workdir, *, register=None, overrides: dict | None = None) -> Outcome:
    """Simulate acquisition ``seed`` for ``moving`` ("antibody": SMLM -> EM, "sim": LM -> EM),
    register it automatically and judge it.

    ``register(scene, moving, fixed, sample=) -> (reg, record)`` replaces
    :func:`correlate.registration.register_scene` (harness checks, e.g. :func:`truth_register`);
    ``overrides`` go to ``random_acquisition``.
    """
    from correlate.datasets import random_acquisition
    from correlate.errors import RegistrationError

    kind, frame, *_ = MOVING[moving]
    sample = random_acquisition(seed, kind=kind, **(overrides or {}))
    if register is None:
        from correlate.registration import register_scene
    else:
        def register_scene(scene, mv, fx):
            return register(scene, mv, fx, sample=sample)
    out = Outcome(seed=seed, moving=moving, config=_highlights(sample.config))
    out.mirrored_true = is_mirrored(sample.truth.transforms[frame])
    world, cam = control_points(sample, moving)
    import tempfile

    where = Path(tempfile.mkdtemp(prefix=f"family_{moving}_{seed}_", dir=workdir))
    try:
        scene = user_scene(sample, where / "scene.ome.zarr", moving)
        reg, _ = register_scene(scene, moving, "em")
    except RegistrationError as e:
        out.stage, out.error = getattr(e, "stage", None), str(e)[:300]
        return out
    except Exception as e:  # a bug is a failure of this acquisition, reported with its place
        tb = traceback.extract_tb(e.__traceback__)[-1]
        out.stage, out.error = "crash", f"{type(e).__name__}: {e} ({Path(tb.filename).name}:{tb.lineno})"[:300]
        return out
    finally:
        shutil.rmtree(where, ignore_errors=True)
    out.model = reg.model
    out.mirrored_found = getattr(reg, "mirrored", None)
    lm = reg.landmarks
    used = np.asarray(lm.used, bool)
    truth_t = sample.truth.transforms[frame]
    d = np.linalg.norm(truth_t.apply(lm.source[used]) - lm.target[used], axis=1)
    out.n_pairs = int(used.sum())
    out.n_wrong_pairs = int((d > 0.5 * float(sample.config.fiducial_diameter_nm) + 30.0).sum())
    out.err = np.linalg.norm(reg.transform.apply(cam) - world, axis=1)
    out.r95 = np.asarray(reg.fit.tre_radius(cam), float)
    cm = np.mean(np.asarray(lm.source_cov)[used], axis=0)
    cf = np.mean(np.asarray(lm.target_cov)[used], axis=0)
    cm, cf = (np.eye(2) * c if np.ndim(c) == 0 else c for c in (cm, cf))
    out.oracle = oracle_truth(sample, moving, reg.model, cm, cf, cam, world, seed=seed)
    fids = getattr(reg, "fiducials", None) or {}
    if "moving" in fids and "fixed" in fids:
        im, jf = match_detections(sample, moving, fids["moving"], fids["fixed"])
        if len(im) >= 4:
            xs = fids["moving"][["x", "y"]].to_numpy(float)[im]
            ys = fids["fixed"][["x", "y"]].to_numpy(float)[jf]
            try:
                out.oracle_detected = _fit_errors(xs, ys, reg.model, _cov(fids["moving"], im), _cov(fids["fixed"], jf),
                                                  cam, world, out.mirrored_true)
            except RegistrationError:
                pass
    # success: the answer is the right one (a wrong pairing or handedness is off by a bead spacing)
    bound = 50.0 + 5.0 * float(np.percentile(out.oracle, 95)) if out.oracle.size else 50.0
    out.ok = bool(out.err.size and np.percentile(out.err, 95) < bound)
    if not out.ok:
        out.stage, out.error = "wrong", f"p95 true error {np.percentile(out.err, 95):.1f} nm > {bound:.1f} nm"
    return out


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Family figures: success rate, pooled median TRE vs the oracle's, pooled coverage of the
    predicted 95 % radius (successful acquisitions only)."""
    good = [o for o in outcomes if o.ok]
    err = np.concatenate([o.err for o in good]) if good else np.zeros(0)
    r95 = np.concatenate([o.r95 for o in good]) if good else np.zeros(0)
    orc = np.concatenate([o.oracle for o in good]) if good else np.zeros(0)
    det = [o.oracle_detected for o in good if o.oracle_detected.size]
    nan = float("nan")
    return {
        "n": len(outcomes),
        "n_success": len(good),
        "success_rate": len(good) / len(outcomes) if outcomes else nan,
        "median_tre_nm": float(np.median(err)) if err.size else nan,
        "oracle_median_tre_nm": float(np.median(orc)) if orc.size else nan,
        "oracle_detected_median_tre_nm": float(np.median(np.concatenate(det))) if det else nan,
        "tre_over_oracle": float(np.median(err) / np.median(orc)) if err.size and orc.size else nan,
        "coverage_r95": float(np.mean(err <= r95)) if err.size else nan,
        "mirror_reported_right": sum(o.mirrored_found == o.mirrored_true for o in good),
        "failures": {o.seed: f"[{o.stage}] {o.error}" for o in outcomes if not o.ok},
    }


def format_summary(name: str, s: dict[str, Any]) -> str:
    return (f"{name}: success {s['n_success']}/{s['n']} ({s['success_rate']:.0%}), median TRE "
            f"{s['median_tre_nm']:.2f} nm vs oracle {s['oracle_median_tre_nm']:.2f} nm "
            f"(ratio {s['tre_over_oracle']:.2f}; detected-and-truth-paired oracle "
            f"{s['oracle_detected_median_tre_nm']:.2f} nm), predicted 95 % radius covers "
            f"{s['coverage_r95']:.1%} of control points")


class _MirroredRegistration:
    """A registration fitted on the x-flipped moving frame, seen from the unflipped frame."""

    def __init__(self, reg, flip: np.ndarray) -> None:
        from correlate.elements import Landmarks

        self._reg, self._flip = reg, flip
        self.model = reg.model
        self.mirrored = True
        self.fiducials = {}
        lm = reg.landmarks
        f2 = np.outer(flip, flip)
        self.landmarks = Landmarks(lm.source * flip, lm.target, np.asarray(lm.source_cov) * f2, lm.target_cov,
                                   ids=lm.ids, used=lm.used)
        self.transform = self
        self.fit = self

    def apply(self, points):
        return self._reg.transform.apply(np.asarray(points, float) * self._flip)

    def tre_radius(self, points, level: float = 0.95):
        return self._reg.fit.tre_radius(np.asarray(points, float) * self._flip, level)


def truth_register(scene, moving: str, fixed: str, *, sample, sigma_moving_nm: float = 2.0,
                   sigma_fixed_nm: float = 1.0, seed: int = 0):
    """A stand-in for ``register_scene`` that pairs by the truth: the true beads seen by both
    modalities plus isotropic noise of known sigma (nm), fitted by ``fit_landmarks`` with the
    model chosen automatically (a mirrored truth is fitted on the x-flipped frame). Checks the
    harness's bookkeeping: an oracle must pass the family's own assertions."""
    from correlate.elements import Landmarks
    from correlate.registration import fit_landmarks

    rng = np.random.default_rng(seed + 7919 * sample.config.seed)
    ids, src, dst = true_pairs(sample, moving)
    n = len(src)
    mirrored = is_mirrored(sample.truth.transforms[MOVING[moving][1]])
    flip = np.array([-1.0, 1.0]) if mirrored else np.ones(2)
    xs = (src + rng.normal(0.0, sigma_moving_nm, (n, 2))) * flip
    ys = dst + rng.normal(0.0, sigma_fixed_nm, (n, 2))
    lm = Landmarks(xs, ys, np.full(n, sigma_moving_nm**2), np.full(n, sigma_fixed_nm**2), ids=ids,
                   source_system=moving, target_system=fixed)
    reg = fit_landmarks(lm, "auto")
    if mirrored:
        return _MirroredRegistration(reg, flip), {}
    reg.mirrored = False
    return reg, {}
