"""Predicted TRE of points carried between scene elements by stored registrations."""

from __future__ import annotations

import numpy as np

from ._fit import Fit

__all__ = ["predicted_tre_between", "registration_chain"]


def _latest_records(scene) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rec in scene.registrations():
        if rec.get("kind") == "fiducial_registration" and rec.get("error_model"):
            out[rec["moving"]] = rec  # later records replace earlier ones
    return out


def registration_chain(scene, name: str) -> list[dict]:
    """The registrations that place ``name`` in world: ``name -> fixed -> fixed's fixed ...``."""
    recs = _latest_records(scene)
    chain, seen = [], set()
    while name in recs and name not in seen:
        seen.add(name)
        rec = recs[name]
        chain.append(rec)
        name = rec["fixed"]
    return chain


def _chain_cov(chain: list[dict], points: np.ndarray) -> np.ndarray:
    d = points.shape[1]
    total = np.zeros((len(points), d, d))
    p = points
    for rec in chain:
        fit = Fit.from_error_model(rec["error_model"])
        q = p[:, : fit.ndim]
        if rec.get("applied_to_coordinates"):
            # the element's coordinates were already mapped by this fit (colour alignment): its
            # error is evaluated where the points came from, and they stay where they are
            total[:, : fit.ndim, : fit.ndim] += fit.tre_cov(fit.transform.inverse().apply(q))
            continue
        total[:, : fit.ndim, : fit.ndim] += fit.tre_cov(q)
        p = p.copy()
        p[:, : fit.ndim] = fit.transform.apply(q)
    return total


def predicted_tre_between(scene, src: str, dst: str, points) -> tuple[np.ndarray, np.ndarray]:
    """Predicted registration error of points mapped from element ``src`` to ``dst`` (nm).

    The error covariances of the registrations linking ``src`` to world and ``dst`` to world are
    added (first order; registrations shared by both chains cancel and are left out), each
    evaluated where the point lies in that registration's moving frame.

    Parameters
    ----------
    points
        (N, D) positions in ``src``'s frame (nm).

    Returns
    -------
    (tre_rms, tre_r95)
        (N,) RMS error ``sqrt(trace Sigma)`` and the 95 % containment radius (nm); zeros when
        neither element has a stored registration.
    """
    from ._error import containment_radius

    p = np.atleast_2d(np.asarray(points, float))
    a = registration_chain(scene, src)
    b = registration_chain(scene, dst)
    ids_a = {r.get("id") for r in a}
    ids_b = {r.get("id") for r in b}
    common = ids_a & ids_b
    a = [r for r in a if r.get("id") not in common]
    b = [r for r in b if r.get("id") not in common]
    cov = np.zeros((len(p), p.shape[1], p.shape[1]))
    if a:
        cov += _chain_cov(a, p)
    if b:
        q = scene.transform(src, dst).apply(p)
        cov += _chain_cov(b, q)
    rms = np.sqrt(np.trace(cov, axis1=1, axis2=2))
    r95 = containment_radius(cov, 0.95) if len(p) else np.zeros(0)
    return rms, r95
