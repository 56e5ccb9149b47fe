"""The registration pipeline: detect -> pair -> fit/select -> record -> store."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from ..elements import Landmarks, element_kind
from ..errors import CorrelateError, RegistrationError
from ..transforms import Identity, Transform, compose
from ._fiducials import fiducial_arrays
from ._json import jsonable
from ._select import Registration, fit_landmarks

__all__ = [
    "detect_fiducials",
    "field_points",
    "register_elements",
    "register_points",
    "register_scene",
    "registration_record",
]


def detect_fiducials(element, **kwargs) -> pd.DataFrame:
    """Detect fiducials in an Image (beads/gold) or a Localizations table (persistent emitters).

    Keyword arguments go to :func:`detect_beads` (images: ``diameter_nm``, ``polarity``,
    ``psf_fwhm_nm``...) or :func:`detect_smlm_fiducials` (localizations: ``min_persistence``,
    ``radius_nm``, ``min_photons``); None values mean "estimate from the data" and are left out.
    Returns a fiducial table (``x, y[, z]`` nm in the element's own frame, ``cov_*`` nm^2).

    Raises
    ------
    RegistrationError
        An option the element's detector does not take (naming the ones it does), or no
        fiducials found (``stage="detection"``).
    """
    import inspect

    kind = element_kind(element)
    if kind == "image":
        from ._detect_image import detect_beads as detector
    elif kind == "localizations":
        from ._detect_smlm import detect_smlm_fiducials as detector
    else:
        raise RegistrationError(f"cannot detect fiducials in a {kind}", field="element")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    params = inspect.signature(detector).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            takes = sorted(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY)
            raise RegistrationError(
                f"the {kind} fiducial detector takes no option {', '.join(unknown)} (it takes {', '.join(takes)})",
                field=unknown[0], stage="detection",
            )
    return detector(element, **kwargs)


def register_points(
    moving: pd.DataFrame,
    fixed: pd.DataFrame,
    *,
    model: str = "auto",
    prior: Transform | None = None,
    scale_range: tuple[float, float] | None = None,
    allow_mirror: bool = True,
    alpha: float = 0.01,
    reject_outliers: bool = True,
    moving_name: str = "moving",
    fixed_name: str = "fixed",
    gate_nm: float | None = None,
    excess_fle_nm: float | None = None,
    **pairing_kwargs,
) -> Registration:
    """Pair two fiducial tables automatically and fit the moving -> fixed transform.

    Parameters
    ----------
    moving, fixed
        Fiducial tables (from :func:`detect_fiducials` or :func:`fiducial_table`), each in its
        element's own frame (nm).
    model
        ``"auto"`` (simplest adequate model) or a model name.
    prior
        Approximate moving -> fixed transform (e.g. from metadata), tried before the pose search.
    scale_range
        Allowed scale factor fixed/moving (pairing); None: around the prior's scale, else a
        wide default (see :func:`pair_points`).
    allow_mirror
        Accept frames that match only as a mirror image; the fit is then a reflection and
        ``Registration.mirrored`` is True.
    excess_fle_nm
        Systematic per-fiducial error (nm per axis) instead of its estimate from the residuals
        (see :func:`fit_landmarks`); None: estimated.
    pairing_kwargs
        Further options of :func:`pair_points` (``shape_tolerance``, ``chance_level``, ...).

    Returns
    -------
    Registration
        With ``landmarks`` (source = moving, target = fixed), pairing notes and ``pairing``
        (method, counts, ``mirrored``, ``diagnostics``).
    """
    from ._pairing import pair_points

    d = 3 if ("z" in moving.columns and "z" in fixed.columns) else 2
    xs, cs = fiducial_arrays(moving, d)
    ys, ct = fiducial_arrays(fixed, d)
    pairing = pair_points(
        xs, ys, cs, ct, prior=prior, scale_range=scale_range, allow_mirror=allow_mirror, gate_nm=gate_nm,
        **pairing_kwargs,
    )
    ids = np.array([f"{i}:{j}" for i, j in zip(pairing.source_index, pairing.target_index)], dtype=object)
    lm = Landmarks(
        xs[pairing.source_index], ys[pairing.target_index], cs[pairing.source_index], ct[pairing.target_index],
        ids=ids, source_system=moving_name, target_system=fixed_name,
    )
    reg = fit_landmarks(lm, model, alpha=alpha, reject_outliers=reject_outliers, reflection=pairing.mirrored,
                        excess_fle_nm=excess_fle_nm)
    reg.mirrored = bool(pairing.mirrored)
    reg.notes += pairing.notes
    reg.pairing = {
        "method": pairing.method,
        "mirrored": bool(pairing.mirrored),
        "n_hypotheses": int(pairing.n_hypotheses),
        "n_detected_moving": len(xs),
        "n_detected_fixed": len(ys),
        "n_pairs": len(pairing),
        "moving_index": pairing.source_index.tolist(),
        "fixed_index": pairing.target_index.tolist(),
        "diagnostics": pairing.diagnostics,
    }
    return reg


def _pairs_mirrored(lm: Landmarks) -> bool:
    """Whether manual pairs map one frame onto the other as a mirror image (the least-squares
    affine of their x, y has a negative determinant)."""
    src, dst = lm.source[:, :2], lm.target[:, :2]
    if len(src) < 3:
        return False
    a = np.column_stack([src - src.mean(0), np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(a, dst - dst.mean(0), rcond=None)
    return bool(np.linalg.det(coef[:2, :2]) < 0)


def register_elements(moving, fixed, *, moving_kwargs: dict | None = None, fixed_kwargs: dict | None = None,
                      fiducials_moving: pd.DataFrame | None = None, fiducials_fixed: pd.DataFrame | None = None,
                      allow_mirror: bool = True, scale_range: tuple[float, float] | None = None,
                      **kwargs) -> Registration:
    """Detect fiducials in two elements (images or localizations) and register them.

    ``moving_kwargs`` / ``fixed_kwargs`` go to :func:`detect_fiducials` of that element;
    ``fiducials_moving`` / ``fiducials_fixed`` (fiducial tables, nm, each element's own frame)
    replace detection on that side. ``allow_mirror`` and ``scale_range`` (None: automatic) go
    to the pairing; other keyword arguments to :func:`register_points`.
    """
    fm = fiducials_moving if fiducials_moving is not None else detect_fiducials(moving, **(moving_kwargs or {}))
    ff = fiducials_fixed if fiducials_fixed is not None else detect_fiducials(fixed, **(fixed_kwargs or {}))
    reg = register_points(fm, ff, allow_mirror=allow_mirror, scale_range=scale_range, **kwargs)
    reg.fiducials = {"moving": fm, "fixed": ff}
    return reg


def field_points(element, n: int = 48) -> np.ndarray:
    """A regular n x n grid (nm, element's own frame) over an image's extent or a localization
    table's bounding box (1st-99th percentile)."""
    if element is None:
        return np.zeros((0, 2))
    kind = element_kind(element)
    if kind == "image":
        xs = np.asarray(element.coords["x"].values, float)
        ys = np.asarray(element.coords["y"].values, float)
        lo, hi = (xs[0], ys[0]), (xs[-1], ys[-1])
    else:
        xy = element[["x", "y"]].to_numpy(float)
        lo, hi = np.percentile(xy, 1, axis=0), np.percentile(xy, 99, axis=0)
    gx = np.linspace(lo[0], hi[0], n)
    gy = np.linspace(lo[1], hi[1], n)
    g = np.meshgrid(gx, gy)
    return np.column_stack([g[0].ravel(), g[1].ravel()])


def _hull_mask(points: np.ndarray, hull_pts: np.ndarray) -> np.ndarray:
    from scipy.spatial import Delaunay

    if len(hull_pts) < 3:
        return np.zeros(len(points), bool)
    try:
        return Delaunay(hull_pts[:, :2]).find_simplex(points[:, :2]) >= 0
    except (ValueError, RuntimeError):  # degenerate hull (scipy's QhullError is a RuntimeError)
        return np.zeros(len(points), bool)


def registration_record(reg: Registration, *, moving: str, fixed: str, field: np.ndarray | None = None, extra: dict | None = None) -> dict[str, Any]:
    """JSON-ready record of a registration (what ``scene.add_registration`` stores).

    ``field``: (M, D) points of the moving frame over which predicted TRE statistics are given
    (default: a grid over the fiducials' bounding box).
    """
    from .. import __version__

    fit = reg.fit
    if field is None or len(field) == 0:
        lo, hi = fit.source.min(0), fit.source.max(0)
        g = np.meshgrid(np.linspace(lo[0], hi[0], 32), np.linspace(lo[1], hi[1], 32))
        field = np.column_stack([g[0].ravel(), g[1].ravel()])
    if fit.ndim == 3 and field.shape[1] == 2:
        field = np.column_stack([field, np.full(len(field), fit.center[2])])
    inside = _hull_mask(field, fit.source)
    tre_field = reg.tre_over(field)
    tre_hull = reg.tre_over(field[inside]) if inside.any() else {}
    loo_d = np.linalg.norm(reg.loo, axis=1)
    loo_d = loo_d[np.isfinite(loo_d)]
    lm = reg.landmarks
    rec: dict[str, Any] = {
        "kind": "fiducial_registration",
        "moving": moving,
        "fixed": fixed,
        "model": fit.model,
        "mirrored": bool(getattr(reg, "mirrored", False)),
        "reason": reg.reason,
        "transform": fit.transform.to_ngff(input=moving, output=fixed),
        "parameters": _parameters(fit),
        "ndim": fit.ndim,
        "n_pairs": len(lm),
        "n_used": int(lm.used.sum()),
        "n_outliers": len(reg.outliers),
        "outlier_ids": [str(o) for o in reg.outliers],
        "fre_rms_nm": fit.fre_rms,
        "loo_rms_nm": reg.loo_rms,
        "loo_median_nm": float(np.median(loo_d)) if loo_d.size else float("nan"),
        "chi2": fit.chi2,
        "dof": fit.dof,
        "pvalue": fit.pvalue,
        "alpha": reg.alpha,
        "noise_scale": fit.noise_scale,
        "excess_fle_nm": fit.excess_fle_nm,
        "predicted_tre_field": tre_field,
        "predicted_tre_hull": tre_hull,
        "candidates": reg.candidates,
        "error_model": fit.error_model(),
        "notes": list(reg.notes) + list(fit.notes),
        "software": {"name": "correlate", "version": __version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
    }
    pairing = getattr(reg, "pairing", None)
    if pairing:
        rec["pairing"] = {k: v for k, v in pairing.items() if not k.endswith("_index")}
    if extra:
        rec.update(extra)
    return jsonable(rec)


def _parameters(fit) -> dict[str, Any]:
    if fit.model == "tps":
        t = fit.transform
        return {"affine": t.affine.tolist(), "n_centers": len(t.centers), "smoothing": t.smoothing}
    a = fit.linear
    out: dict[str, Any] = {"matrix": fit.transform.matrix.tolist()}
    if fit.ndim == 2:
        s = float(np.sqrt(abs(np.linalg.det(a))))
        out["scale"] = s
        out["rotation_deg"] = float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))
    else:
        out["scale"] = float(abs(np.linalg.det(a)) ** (1 / 3))
    out["translation_nm"] = fit.transform.matrix[: fit.ndim, fit.ndim].tolist()
    return out


def _side_fiducials(element, given, kwargs: dict | None, name: str, role: str) -> pd.DataFrame:
    """The fiducial table of one side: the user's (a table or a CSV path) or detected; a
    detection failure names the element and its role."""
    from ._fiducial_files import as_fiducial_table, read_fiducials_csv

    if given is not None:
        return as_fiducial_table(given) if isinstance(given, pd.DataFrame) else read_fiducials_csv(given)
    try:
        return detect_fiducials(element, **(kwargs or {}))
    except RegistrationError as exc:
        exc.diagnostics.setdefault("element", name)
        exc.diagnostics.setdefault("role", role)
        exc.args = (f"{role} element {name!r}: {exc.args[0]}",) + tuple(exc.args[1:])
        raise


def register_scene(
    scene,
    moving: str,
    fixed: str,
    *,
    model: str = "auto",
    landmarks: Landmarks | str | None = None,
    refine: bool = False,
    store: bool = True,
    scale_range: tuple[float, float] | None = None,
    alpha: float = 0.01,
    reject_outliers: bool = True,
    moving_kwargs: dict | None = None,
    fixed_kwargs: dict | None = None,
    fiducials_moving: pd.DataFrame | str | None = None,
    fiducials_fixed: pd.DataFrame | str | None = None,
    allow_mirror: bool = True,
    diagnostics: str | None = None,
    excess_fle_nm: float | None = None,
) -> tuple[Registration, dict]:
    """Register element ``moving`` onto element ``fixed`` of a Scene and store the result.

    Fiducials are detected in both elements (or taken from ``landmarks``: a Landmarks object or
    a BigWarp / pairs CSV path, source = moving, target = fixed, in the elements' own frames),
    paired, fitted and the model chosen. With ``store=True`` the scene receives the moving
    element's new transform to world (``fit`` then ``fixed -> world``), the landmarks and the
    registration record.

    Parameters
    ----------
    moving_kwargs, fixed_kwargs
        Options of that element's detector (images: ``diameter_nm``, ``polarity``,
        ``psf_fwhm_nm``; localizations: ``min_persistence``, ``radius_nm``, ``min_photons``).
    fiducials_moving, fiducials_fixed
        A fiducial table or CSV path (``x, y[, z]`` nm, optional ``cov_*`` nm^2 or ``sigma_nm``)
        replacing detection on that side.
    allow_mirror, scale_range
        Pairing: try mirrored poses too; allowed scale (None: automatic, from the prior or wide).
    diagnostics
        A folder: write what each stage saw (JSON) and a figure of the detections and matches,
        also when the registration fails.
    excess_fle_nm
        Systematic per-fiducial error (nm per axis, both sides combined) to use instead of its
        estimate from the residuals; None (default): estimated, and stated in the record.

    Returns
    -------
    (Registration, record dict)
        The record holds ``detection`` (per side: count, estimated parameters and their source)
        and ``element_versions`` (what makes it stale when an element is re-imported).
    """
    from ._io import read_landmarks_file

    if landmarks is not None:
        unused = [k for k, v in (("fiducials_moving", fiducials_moving), ("fiducials_fixed", fiducials_fixed),
                                 ("moving_kwargs", moving_kwargs), ("fixed_kwargs", fixed_kwargs)) if v]
        if unused:
            raise CorrelateError(f"manual landmark pairs replace detection and pairing; {', '.join(unused)} "
                                 "would be ignored: give one or the other", field=unused[0])
    mov_el = scene.get(moving)
    fix_el = scene.get(fixed)
    fixed_to_world = scene.transform_to_world(fixed)
    extra: dict[str, Any] = {}
    fids: dict[str, pd.DataFrame | None] = {"moving": None, "fixed": None}
    try:
        if landmarks is not None:
            lm = read_landmarks_file(landmarks, source_system=moving, target_system=fixed) if not isinstance(landmarks, Landmarks) else landmarks
            lm.source_system, lm.target_system = moving, fixed
            mirrored = _pairs_mirrored(lm)
            reg = fit_landmarks(lm, model, alpha=alpha, reject_outliers=reject_outliers, reflection=mirrored,
                                excess_fle_nm=excess_fle_nm)
            reg.mirrored = mirrored
            reg.pairing = {"method": "manual", "n_pairs": len(lm), "mirrored": mirrored}
            extra["landmarks_file"] = str(landmarks) if not isinstance(landmarks, Landmarks) else None
        else:
            prior = None
            try:
                t = scene.transform(moving, fixed)
                if not isinstance(t, Identity):
                    prior = t
            except (CorrelateError, ValueError, np.linalg.LinAlgError):  # non-invertible: no prior
                prior = None
            fids["moving"] = _side_fiducials(mov_el, fiducials_moving, moving_kwargs, moving, "moving")
            fids["fixed"] = _side_fiducials(fix_el, fiducials_fixed, fixed_kwargs, fixed, "fixed")
            reg = register_elements(
                mov_el, fix_el, model=model, prior=prior, scale_range=scale_range, alpha=alpha,
                reject_outliers=reject_outliers, moving_name=moving, fixed_name=fixed,
                fiducials_moving=fids["moving"], fiducials_fixed=fids["fixed"], allow_mirror=allow_mirror,
                excess_fle_nm=excess_fle_nm,
            )
            from ._diagnostics import detection_summary

            extra["detection"] = {role: detection_summary(f) for role, f in fids.items()}
    except RegistrationError as exc:
        if diagnostics is not None:
            from ._diagnostics import write_diagnostics

            write_diagnostics(diagnostics, moving=moving, fixed=fixed, fiducials=fids,
                              elements={"moving": mov_el, "fixed": fix_el}, error=exc)
        raise
    if refine:
        from ._refine_sitk import refine_registration

        extra["refinement"] = refine_registration(reg, mov_el, fix_el)
    field = field_points(fix_el)
    if len(field):
        try:
            field = reg.fit.transform.inverse().apply(field)
        except (CorrelateError, np.linalg.LinAlgError):  # a spline that folds outside the fiducials
            field = None
    extra["element_versions"] = _element_versions(scene, moving, fixed)
    record = registration_record(reg, moving=moving, fixed=fixed, field=field, extra=extra)
    if store:
        with scene.transaction(f"registration {moving} -> {fixed}"):
            scene.set_transform(moving, compose(reg.transform, fixed_to_world))
            scene.add_landmarks(reg.landmarks)
            record = scene.add_registration(record)
    if diagnostics is not None:
        from ._diagnostics import write_diagnostics

        write_diagnostics(diagnostics, moving=moving, fixed=fixed, fiducials=fids,
                          elements={"moving": mov_el, "fixed": fix_el}, registration=reg, record=record)
    return reg, record


def _element_versions(scene, *names: str) -> dict[str, str | None]:
    from .._placement import element_version

    entries = getattr(scene, "_meta", {}).get("elements", {})
    return {n: element_version(entries.get(n)) for n in names if n in entries}
