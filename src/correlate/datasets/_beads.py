"""What the light microscopes see of the fiducials: per-bead systematic offsets, missing beads,
spurious persistent spots, bleaching, and the bead's apparent size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._config import SampleConfig

__all__ = ["LIGHT_FRAMES", "draw_bead_acquisition", "bead_sigma", "presence_matrix", "gaussian_pixel_profile"]

#: light frames with their own per-bead systematic offset (SMLM colours, SIM)
LIGHT_FRAMES = ("smlm", "smlm_corona", "sim")


def bead_sigma(psf_sigma_nm, diameter_nm) -> np.ndarray:
    """Width (nm, Gaussian sigma) of a uniformly fluorescent sphere of ``diameter_nm`` seen
    through a Gaussian PSF of ``psf_sigma_nm``: the projected sphere has variance r²/5 per axis."""
    r = 0.5 * np.asarray(diameter_nm, float)
    return np.sqrt(np.asarray(psf_sigma_nm, float) ** 2 + r * r / 5.0)


def draw_bead_acquisition(cfg: SampleConfig, rng: np.random.Generator, fiducials: pd.DataFrame) -> dict:
    """Draw, once per sample, what is random about the beads in the light modalities.

    Returns
    -------
    dict
        ``offset``: frame name (``LIGHT_FRAMES``) -> (N, 2) systematic offset (nm, that frame's
        axes) of each bead; ``seen``: ``"smlm"``/``"sim"`` -> (N,) bool; ``lit_frames``: (N,)
        frames each bead stays lit when beads bleach (else None); ``spurious``: DataFrame
        ``modality, spurious_id, x, y`` (world nm), ``diameter_nm``, ``brightness`` (relative to a
        bead), ``lit_frames`` (-1: not bleaching).
    """
    n = len(fiducials)
    sd = float(cfg.fiducial_systematic_nm)
    offset = {k: rng.normal(0.0, sd, (n, 2)) if sd > 0 else np.zeros((n, 2)) for k in LIGHT_FRAMES}
    k_miss = int(round(float(cfg.fiducial_missing_fraction) * n))
    seen = {}
    for mod in ("smlm", "sim"):
        s = np.ones(n, bool)
        s[rng.permutation(n)[:k_miss]] = False
        seen[mod] = s
    nf = int(cfg.n_frames)
    lit = _lit_frames(cfg, rng, n) if cfg.fiducial_bleach else None
    L = float(cfg.field_nm)
    inset = max(0.06 * L, 2 * cfg.fiducial_diameter_nm)
    rows = []
    k = int(cfg.n_spurious_fiducials)
    for mod in ("smlm", "sim"):
        xy = rng.uniform(inset, L - inset, (k, 2))
        rows.append(pd.DataFrame({
            "modality": mod, "spurious_id": np.arange(k, dtype=np.int64), "x": xy[:, 0], "y": xy[:, 1],
            "diameter_nm": rng.uniform(20.0, 200.0, k), "brightness": rng.uniform(0.5, 1.5, k),
            "lit_frames": _lit_frames(cfg, rng, k) if cfg.fiducial_bleach else np.full(k, -1, np.int64),
        }))
    spurious = pd.concat(rows, ignore_index=True)
    if lit is not None:
        lit = np.minimum(lit, nf)
    return {"offset": offset, "seen": seen, "lit_frames": lit, "spurious": spurious}


def _lit_frames(cfg: SampleConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    nf = int(cfg.n_frames)
    t = float(cfg.fiducial_presence) * nf * rng.uniform(0.8, 1.2, n)
    return np.clip(np.round(t), 1, nf).astype(np.int64)


def presence_matrix(cfg: SampleConfig, rng: np.random.Generator, n: int, lit_frames=None) -> np.ndarray:
    """(n, n_frames) bool: frames in which each persistent emitter is localized; lit in
    ``[0, lit_frames)`` when given (bleaching), else in a random ``fiducial_presence`` of frames.
    ``rng`` is drawn from either way (the same stream as without bleaching)."""
    nf = int(cfg.n_frames)
    present = rng.random((n, nf)) < float(cfg.fiducial_presence)
    if lit_frames is not None:
        present = np.arange(nf)[None, :] < np.asarray(lit_frames)[:, None]
    return present


def gaussian_pixel_profile(pixel: float):
    """Profile for :func:`~correlate.datasets._splat.splat`: a 2-D Gaussian of sigma ``p[..., 0]``
    (nm) and total weight ``p[..., 1]``, integrated over square pixels of side ``pixel`` (nm)."""
    from scipy.special import ndtr

    h = 0.5 * float(pixel)

    def prof(dx, dy, p):
        s = p[..., 0]
        gx = ndtr((dx + h) / s) - ndtr((dx - h) / s)
        gy = ndtr((dy + h) / s) - ndtr((dy - h) / s)
        return p[..., 1] * gx * gy

    return prof
