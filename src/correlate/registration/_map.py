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


def _links(scene, name: str) -> tuple[list[dict], str, bool]:
    """(links, anchor, placed) of ``name`` from the scene's placement, or from the latest
    registration records for a scene object without placement."""
    if hasattr(scene, "placement"):
        p = scene.placement(name)
        return list(p.links), p.anchor, p.placed
    recs = _latest_records(scene)
    chain, seen, n = [], set(), name
    while n in recs and n not in seen:
        seen.add(n)
        chain.append(recs[n])
        n = recs[n]["fixed"]
    return chain, n, bool(chain)


def registration_chain(scene, name: str) -> list[dict]:
    """The registration records that place ``name`` (``name -> fixed -> fixed's fixed ...``),
    following derived elements to their source; declarations and derivations left out."""
    return [r for r in _links(scene, name)[0] if r.get("moving") and r.get("fixed")]


def _key(link: dict) -> str:
    return str(link.get("id") or f"{link.get('kind')}:{link.get('element')}")


def _chain_cov(chain: list[dict], points: np.ndarray) -> np.ndarray:
    d = points.shape[1]
    total = np.zeros((len(points), d, d))
    p = points
    for rec in chain:
        if rec.get("kind") == "derived":
            continue  # a derived element has its source's transform
        if not (rec.get("moving") and rec.get("fixed")):  # a declaration
            c = rec.get("tre_nm")
            total += np.eye(d) * (np.nan if c is None else float(c) ** 2 / d)
            continue
        if not rec.get("error_model"):
            total += np.nan
            continue
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
        (N,) RMS error ``sqrt(trace Sigma)`` and the 95 % containment radius (nm); zero where
        both share their whole chain (or one is the other's anchor); NaN (unknown) when no
        registration links the two frames or a link carries no error model.
    """
    from ._containment import containment_radius

    p = np.atleast_2d(np.asarray(points, float))
    a, anchor_a, _ = _links(scene, src) if src != "world" else ([], "world", True)
    b, anchor_b, _ = _links(scene, dst) if dst != "world" else ([], "world", True)
    if anchor_a != anchor_b:  # no chain of registrations links the two frames: unknown
        nan = np.full(len(p), np.nan)
        return nan, nan.copy()
    common = {_key(r) for r in a} & {_key(r) for r in b}
    a = [r for r in a if _key(r) not in common]
    b = [r for r in b if _key(r) not in common]
    cov = np.zeros((len(p), p.shape[1], p.shape[1]))
    if a:
        cov += _chain_cov(a, p)
    if b:
        q = scene.transform(src, dst).apply(p)
        cov += _chain_cov(b, q)
    rms = np.sqrt(np.trace(cov, axis1=1, axis2=2))
    if not len(p):
        return rms, np.zeros(0)
    bad = ~np.isfinite(cov).all(axis=(1, 2))
    r95 = np.full(len(p), np.nan)
    if (~bad).any():
        r95[~bad] = containment_radius(cov[~bad], 0.95)
    return rms, r95
