"""Randomized acquisitions over the ranges labs use: the worlds automatic registration must survive."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._config import SampleConfig

__all__ = ["random_acquisition", "random_config", "ACQUISITION_RANGES"]

#: What :func:`random_acquisition` draws (uniform unless said otherwise; lengths nm).
ACQUISITION_RANGES: dict[str, Any] = {
    "fiducial_diameter_nm": (30.0, 150.0),
    "em_pixel_nm": (1.0, 4.0),
    "fiducial_presence": (0.15, 1.0),
    "fiducial_bleach_probability": 0.3,
    "rotation_deg": (0.0, 360.0),
    "mirror_probability": 0.5,
    "fiducial_missing_fraction": (0.0, 0.2),
    "n_spurious_fiducials": (0, 3),
    "lm_psf_sigma_nm": (20.0, 110.0),
    "lm_pixel_per_sigma": (0.4, 1.1),
    "no_resolution_metadata_probability": 0.5,
    "frame_scale": (0.9, 1.1),
    "fiducial_systematic_nm": (1.0, 4.0),
    "n_fiducials": (8, 14),
    "distortion_nm": (0.0, 5.0),
    "camera_pixel_nm": (65.0, 160.0),
    "smlm_psf_sigma_nm": (100.0, 160.0),
    "fiducial_photons": (3000.0, 30000.0),
    # molecule equivalents: from ~3x to ~30x a particle of median size with its ~20 antibodies
    "sim_fiducial_brightness": (60.0, 600.0),
    "em_dose": (40.0, 400.0),
}

_KINDS = ("smlm", "lm", "both")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_config(seed: int, *, kind: str = "smlm", **overrides: Any) -> SampleConfig:
    """The :class:`SampleConfig` that :func:`random_acquisition` simulates (same arguments)."""
    if kind not in _KINDS:
        from ..errors import CorrelateError

        raise CorrelateError(f"got {kind!r}; expected one of {', '.join(_KINDS)}", field="kind")
    r = ACQUISITION_RANGES
    rng = np.random.default_rng([int(seed), 0x5EED])
    u = lambda key: float(rng.uniform(*r[key]))  # noqa: E731
    lm_sigma = u("lm_psf_sigma_nm")
    sim_pixel = float(np.clip(lm_sigma * u("lm_pixel_per_sigma"), 8.0, 110.0))
    # every draw happens whatever the kind: one seed, one sample geometry
    cfg: dict[str, Any] = dict(
        seed=int(seed),
        field_nm=2500.0,
        n_particles=int(rng.integers(8, 16)),
        n_touching_pairs=1,
        n_edge_particles=1,
        n_fiducials=int(rng.integers(r["n_fiducials"][0], r["n_fiducials"][1] + 1)),
        fiducial_diameter_nm=u("fiducial_diameter_nm"),
        fiducial_systematic_nm=u("fiducial_systematic_nm"),
        fiducial_missing_fraction=u("fiducial_missing_fraction"),
        n_spurious_fiducials=int(rng.integers(r["n_spurious_fiducials"][0], r["n_spurious_fiducials"][1] + 1)),
        fiducial_bleach=bool(rng.random() < r["fiducial_bleach_probability"]),
        fiducial_presence=u("fiducial_presence"),
        fiducial_photons=_log_uniform(rng, *r["fiducial_photons"]),
        em_pixel_nm=u("em_pixel_nm"),
        em_dose=_log_uniform(rng, *r["em_dose"]),
        n_frames=int(rng.integers(300, 601)),
        dark_frames_mean=60.0,
        smlm_rotation_deg=u("rotation_deg"),
        smlm_scale=u("frame_scale"),
        smlm_offset_nm=None,
        smlm_mirror=bool(rng.random() < r["mirror_probability"]),
        distortion_nm=u("distortion_nm"),
        camera_pixel_nm=u("camera_pixel_nm"),
        psf_sigma_nm=u("smlm_psf_sigma_nm"),
        sim_resolution_nm=lm_sigma * 2.0 * np.sqrt(2.0 * np.log(2.0)),
        sim_pixel_nm=sim_pixel,
        sim_rotation_deg=u("rotation_deg"),
        sim_scale=u("frame_scale"),
        sim_mirror=bool(rng.random() < r["mirror_probability"]),
        sim_resolution_metadata=bool(rng.random() >= r["no_resolution_metadata_probability"]),
        sim_fiducial_brightness=_log_uniform(rng, *r["sim_fiducial_brightness"]),
        sim_margin_nm=300.0,
        afm_hard_fraction=float(rng.uniform(0.0, 1.0)),
        afm_min_fiducials=0,
        make_em=True,
        make_smlm=kind in ("smlm", "both"),
        make_sim=kind in ("lm", "both"),
        make_afm=False,
    )
    cfg.update(overrides)
    return SampleConfig(**cfg)


def random_acquisition(seed: int, *, kind: str = "smlm", **overrides: Any):
    """Simulate one randomized correlative acquisition (EM plus SMLM and/or a SIM/LM image).

    The configuration is drawn from ``seed`` over the ranges labs meet
    (:data:`ACQUISITION_RANGES`): gold/bead diameter 30-150 nm, EM pixel 1-4 nm, bead
    persistence 15-100 % of the frames (bleaching beads in 30 %), any in-plane rotation of the
    SMLM and SIM frames, each mirrored with probability 0.5, 0-20 % of the beads missing and 0-3
    spurious persistent spots per light modality, LM PSF sigma 20-110 nm (pixel 0.4-1.1 sigma),
    no resolution metadata on the SIM image in half the draws, frame scale 0.9-1.1 of the stated
    pixel size, a per-bead systematic error of 1-4 nm. The field is 2.5 µm and the run 300-600
    frames, so one acquisition simulates in about a second or two.

    Parameters
    ----------
    seed
        Seed of the draw and of the simulation; the same seed gives the same sample geometry
        for every ``kind``.
    kind
        ``"smlm"`` (EM + SMLM), ``"lm"`` (EM + SIM/LM image) or ``"both"``.
    **overrides
        :class:`SampleConfig` fields to force (e.g. ``smlm_mirror=False``).

    Returns
    -------
    Sample
        With ``sample.config`` the drawn configuration and ``sample.truth`` the exact transforms
        (mirror included), the per-bead systematic offsets and the spurious spots.
    """
    from ._sample import simulate_sample

    return simulate_sample(random_config(seed, kind=kind, **overrides))
