"""The error model on fiducial sets built here: stated standard errors plus a systematic
per-bead error, similarity / affine / smoothly distorted truths. A seeded Monte-Carlo sweep over
the ranges labs see (6-40 fiducials, 0.05-3 nm anisotropic standard errors varying per bead,
0-8 nm systematic error per axis, 0-15 nm smooth distortion, 5-40 um fields, any rotation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from correlate.elements import Landmarks
from correlate.registration import Fit, fit_landmarks, fit_model
from correlate.transforms import Affine


def _cov_stack(n: int, sem_nm: float, rng) -> np.ndarray:
    """(n, 2, 2) anisotropic covariances, scale ``sem_nm`` x 0.5-2 per bead, random axes."""
    scale = sem_nm * rng.uniform(0.5, 2.0, n)
    ratio = rng.uniform(0.3, 1.0, n)
    th = rng.uniform(0, np.pi, n)
    c, s = np.cos(th), np.sin(th)
    r = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)
    lam = np.stack([scale**2, (ratio * scale) ** 2], -1)
    return np.einsum("nij,nj,nkj->nik", r, lam, r)


def _draw(cov: np.ndarray, rng) -> np.ndarray:
    return np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal(cov.shape[:2]))


def _truth(kind: str, field: float, amp: float, rng):
    """A moving -> fixed map: similarity (scale 0.9-1.1, |s - 1| >= 0.02, any rotation), affine
    (similarity then 1-4 % anisotropic scale and shear), or similarity + a smooth distortion of
    amplitude ``amp`` nm (two random plane waves of wavelength 1.5-3 fields per axis)."""
    scale = rng.uniform(1.02, 1.1) ** rng.choice([-1, 1])
    sim = Affine.similarity(scale, rng.uniform(-np.pi, np.pi), rng.uniform(-5000, 5000, 2))
    if kind == "affine":
        e = rng.uniform(0.01, 0.04) * rng.choice([-1, 1], 3)
        a = sim.linear @ np.array([[1 + e[0], e[1]], [0.0, 1 - e[2]]])
        lin = Affine.from_parts(a, sim.offset)
        return lin.apply
    if kind == "similarity" or amp == 0:
        return sim.apply
    k = rng.normal(size=(2, 2, 2))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    k *= 2 * np.pi / (field * rng.uniform(1.5, 3.0, (2, 2, 1)))
    ph = rng.uniform(0, 2 * np.pi, (2, 2))

    def f(p):
        p = np.atleast_2d(p)
        g = np.stack([np.sin(p @ k[a].T + ph[a]).sum(1) for a in range(2)], -1) / np.sqrt(2)
        return sim.apply(p) + amp * g

    return f


def make_case(seed: int, kind: str, *, n=None, sem=None, sys_nm=None, amp=None, n_ctrl=200):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 41)) if n is None else n
    sem = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))) if sem is None else sem
    sys_nm = float(rng.uniform(0, 8)) if sys_nm is None else sys_nm
    amp = float(rng.uniform(0, 15)) if amp is None else amp
    field = float(rng.uniform(5000, 40000))
    x = rng.uniform(0, field, (n, 2))
    t = _truth(kind, field, amp, rng)
    cx, cy = _cov_stack(n, sem, rng), _cov_stack(n, sem, rng)
    y = t(x) + _draw(cy, rng) + sys_nm * rng.standard_normal((n, 2))
    xn = x + _draw(cx, rng)
    from scipy.spatial import Delaunay

    p = rng.uniform(x.min(0), x.max(0), (4 * n_ctrl, 2))
    p = p[Delaunay(x).find_simplex(p) >= 0][:n_ctrl]
    return {"x": xn, "y": y, "cx": cx, "cy": cy, "truth": t, "ctrl": p, "n": n, "sem": sem, "sys": sys_nm,
            "amp": amp, "kind": kind}


def run_case(case) -> dict:
    reg = fit_landmarks(Landmarks(case["x"], case["y"], case["cx"], case["cy"]))
    p = case["ctrl"]
    err = np.linalg.norm(reg.transform.apply(p) - case["truth"](p), axis=1)
    r95 = reg.fit.tre_radius(p)
    return {"model": reg.model, "excess": reg.fit.excess_fle_nm, "hits": int(np.sum(err < r95)), "m": len(p),
            "n_out": len(reg.outliers), "reg": reg}
