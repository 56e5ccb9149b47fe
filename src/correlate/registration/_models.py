"""The linear registration models and their local parameterisation.

Every linear model is written ``T(x) = A (x - c) + t`` with ``c`` the weighted centroid of the
moving fiducials; its local parameters are [rotation (1 in 2-D, 3 in 3-D), log-scale, vec(dA)
row-major, translation] as the model has them. This module holds the model names, their
parameter counts, the Jacobian of ``T`` in those parameters and the update step.
"""

from __future__ import annotations

import numpy as np

from ..errors import RegistrationError

__all__ = ["LINEAR_MODELS", "MODELS", "min_pairs", "model_jacobian", "n_params"]

#: Models in order of increasing flexibility (the order ``model="auto"`` tries them).
MODELS: tuple[str, ...] = ("translation", "rigid", "similarity", "affine", "tps")
LINEAR_MODELS: tuple[str, ...] = MODELS[:4]


def n_params(model: str, ndim: int) -> int:
    """Number of free parameters of a linear ``model`` in ``ndim`` dimensions."""
    d = ndim
    nrot = 1 if d == 2 else 3
    return {
        "translation": d,
        "rigid": nrot + d,
        "similarity": nrot + 1 + d,
        "affine": d * d + d,
    }[_check_model(model)]


def min_pairs(model: str, ndim: int) -> int:
    """Smallest number of fiducial pairs that determines ``model``."""
    d = ndim
    return {
        "translation": 1,
        "rigid": 2 if d == 2 else 3,
        "similarity": 2 if d == 2 else 3,
        "affine": d + 1,
        "tps": d + 2,
    }[_check_model(model, allow_tps=True)]


def _check_model(model: str, allow_tps: bool = False) -> str:
    ok = MODELS if allow_tps else LINEAR_MODELS
    if model not in ok:
        raise RegistrationError(f"unknown registration model {model!r}; expected one of {ok}", field="model")
    return model


def _skew(v: np.ndarray) -> np.ndarray:
    """(N, 3) vectors -> (N, 3, 3) cross-product matrices [v]_x."""
    z = np.zeros(len(v))
    return np.stack(
        [
            np.stack([z, -v[:, 2], v[:, 1]], -1),
            np.stack([v[:, 2], z, -v[:, 0]], -1),
            np.stack([-v[:, 1], v[:, 0], z], -1),
        ],
        1,
    )


def _rotvec_to_matrix(w: np.ndarray) -> np.ndarray:
    if w.size == 1:
        c, s = np.cos(w[0]), np.sin(w[0])
        return np.array([[c, -s], [s, c]])
    th = np.linalg.norm(w)
    k = _skew(w[None])[0]
    if th < 1e-12:
        return np.eye(3) + k
    return np.eye(3) + np.sin(th) / th * k + (1 - np.cos(th)) / th**2 * (k @ k)


def model_jacobian(model: str, linear: np.ndarray, center: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Derivative of ``T(x) = A (x - c) + t`` with respect to the model's local parameters.

    Parameters
    ----------
    model
        One of :data:`LINEAR_MODELS`.
    linear
        (D, D) current linear part ``A``.
    center
        (D,) centre ``c`` (nm).
    points
        (N, D) positions ``x`` (nm) in the moving frame.

    Returns
    -------
    numpy.ndarray
        (N, D, p) Jacobian; the parameters are ordered [rotation (1 in 2-D, 3 in 3-D), log-scale,
        vec(dA) row-major, translation] as the model has them.
    """
    p = np.atleast_2d(np.asarray(points, float))
    n, d = p.shape
    q = p - center
    aq = q @ np.asarray(linear, float).T
    blocks = []
    if model in ("rigid", "similarity"):
        if d == 2:
            blocks.append(np.stack([-aq[:, 1], aq[:, 0]], -1)[:, :, None])
        else:
            blocks.append(-_skew(aq))
        if model == "similarity":
            blocks.append(aq[:, :, None])
    elif model == "affine":
        ja = np.zeros((n, d, d * d))
        for k in range(d):
            ja[:, k, k * d : (k + 1) * d] = q
        blocks.append(ja)
    elif model != "translation":
        _check_model(model)
    blocks.append(np.broadcast_to(np.eye(d), (n, d, d)))
    return np.concatenate(blocks, axis=2)


def _update(model: str, linear: np.ndarray, t: np.ndarray, delta: np.ndarray):
    d = len(t)
    nrot = 1 if d == 2 else 3
    a = linear
    i = 0
    if model in ("rigid", "similarity"):
        a = _rotvec_to_matrix(delta[:nrot]) @ a
        i = nrot
        if model == "similarity":
            a = a * np.exp(delta[i])
            i += 1
    elif model == "affine":
        a = a + delta[: d * d].reshape(d, d)
        i = d * d
    return a, t + delta[i:]

