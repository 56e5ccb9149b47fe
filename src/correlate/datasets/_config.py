"""Configuration of the simulated correlative sample."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["SampleConfig"]

_DRIFT_KEYS = ("linear_nm", "direction_deg", "oscillation_nm", "oscillation_period_frames", "oscillation_angle_deg",
               "random_walk_nm")
_CHROMATIC_KEYS = ("offset_nm", "scale", "rotation_deg")


@dataclass
class SampleConfig:
    """Every knob of :func:`correlate.datasets.simulate_sample`. Lengths in nm, times in frames.

    The defaults make the demo sample (an 8 µm EM field at 2 nm/px, 80 particles, 12 gold
    fiducials, 5000 SMLM frames per colour). :meth:`small` gives a fast sample for tests.

    Geometry (world frame = EM frame, nm)
    -------------------------------------
    seed : seed of the :class:`numpy.random.Generator`; same seed and config, same sample.
    field_nm : side of the square EM field (world ``[0, field_nm]`` in x and y).
    n_particles : number of particles (liposome-like spheres).
    diameter_median_nm, diameter_sigma : lognormal diameters (median, sigma of ln d), clipped to
        ``[diameter_min_nm, diameter_max_nm]``.
    n_touching_pairs : particles placed touching another one (gap 0-``touching_gap_nm``).
    n_edge_particles : particles placed straddling the EM field edge (cut by it: ``edge``).
    min_gap_nm : minimum surface-to-surface gap between other particles.
    sample_margin_nm : particles are placed in ``[-margin, field + margin]`` (outside the EM field
        they are ``edge``); fiducials are always inside the field.
    n_fiducials, fiducial_diameter_nm : gold beads, spread over the field (not collinear); the
        diameter is seen in EM (projected sphere), in the SIM/LM image (a sphere blurred by the
        PSF) and in the SMLM ``sigma`` column of the bead localizations.

    Fiducial acquisition (what the light microscopes see of the beads)
    -------------------------------------------------------------------
    fiducial_systematic_nm : standard deviation (nm, per axis) of a fixed random offset per bead
        and light modality (SMLM per colour, SIM) between where the bead emits and its gold
        centre (dye shell vs core, chromatic offset, residual drift). 0: none.
    fiducial_missing_fraction : fraction of the beads (drawn per light modality) that the SMLM
        run / the SIM image does not see (EM sees every gold bead).
    n_spurious_fiducials : bright persistent spots per light modality (SMLM, SIM) that are not
        gold (fluorescent debris): persistent like beads, absent from EM.
    fiducial_bleach : beads bleach: bead ``i`` is lit in frames ``[0, T_i)`` only, with ``T_i``
        about ``fiducial_presence * n_frames`` (instead of a random ``fiducial_presence`` of all
        frames).

    EM
    --
    em_pixel_nm, em_psf_px (Gaussian sigma, px), em_particle_mu / em_gold_mu (attenuation per nm of
    projected thickness: I = I0 exp(-mu t)), em_shell_nm (None: solid spheres; a number: a hollow
    shell of that wall thickness, liposome-like rim contrast), em_dose (mean counts per px of the
    background; sets the shot noise), em_read_noise, em_gradient (relative background ramp across
    the field), em_lowfreq (relative amplitude of smooth background undulation), em_dtype
    ("float32" or "uint16").

    SMLM
    ----
    n_frames : frames per colour.
    smlm_rotation_deg, smlm_scale, smlm_offset_nm : the similarity camera -> world
        (``smlm_offset_nm=None``: the camera field starts 4 camera pixels from the origin).
    smlm_mirror : the camera frame is mirrored (x -> -x about the camera field centre, as on an
        inverted microscope) before the similarity: camera -> world has det < 0.
    distortion_nm : amplitude of the smooth non-linear camera distortion (0: linear truth).
    distortion_grid : control points per side of the thin-plate spline describing it.
    antibody_per_particle : mean antibody molecules on a particle of the median diameter (Poisson,
        mean proportional to d^2); antibody_linker_nm : shell radius r + linker.
    corona_per_particle, corona_offset_nm (shell radius r + offset), corona_fraction (fraction of
        particles carrying corona protein).
    label_cv : particle-to-particle variation of the labelling (coefficient of variation of a
        gamma factor, mean 1, on the Poisson mean; 0: pure Poisson).
    detection_efficiency : probability that a molecule blinks at all.
    events_mean : mean number of on-events of a detected molecule (geometric, >= 1).
    on_frames_mean : mean on-event length in frames (geometric, >= 1).
    dark_frames_mean : mean dark time between events (1 + exponential), frames.
    photons_median, photons_sigma : lognormal photons per localization.
    background_photons : median background photons per camera pixel.
    psf_sigma_nm, camera_pixel_nm : for the precision (Mortensen) and the ``sigma`` column.
    nonspecific_density_per_um2 : nonspecific background localizations per µm² (whole run).
    fiducial_presence, fiducial_photons : fiducials are localized in this fraction of frames with
        these (median) photons, in both colours.
    drift : None or dict(linear_nm=60, direction_deg=30, oscillation_nm=20,
        oscillation_period_frames=n_frames/3, random_walk_nm=0): added per frame in camera frame.
    chromatic : None or dict(offset_nm=(15, -10), scale=1.004, rotation_deg=0): the corona camera
        frame -> antibody camera frame, about the camera field centre.

    SIM
    ---
    sim_pixel_nm, sim_resolution_nm (FWHM of the PSF; sigma = FWHM / 2.355), sim_rotation_deg,
    sim_scale, sim_mirror (SIM frame -> world similarity, mirrored x -> -x first if sim_mirror;
    its offset puts the field + sim_margin_nm inside the image, whose pixel centres sit
    at ``i * sim_pixel_nm`` in the SIM frame), sim_margin_nm, sim_resolution_metadata (False:
    the image carries no ``attrs["resolution_nm"]``, as a plain TIFF would not), sim_labels (labels rendered, one
    channel each; one label: a (y, x) image, more: (c, y, x) with those channel names),
    sim_photons_per_molecule,
    sim_fiducial_brightness (molecule equivalents), sim_background, sim_read_noise.

    AFM
    ---
    afm_field_nm (None: half the field, at most 4000), afm_center_nm (None: field centre),
    afm_pixel_nm, afm_rotation_deg (AFM frame -> world), afm_flattening (height / diameter of a
    soft particle on the substrate; volume kept), afm_hard_fraction (fraction of hard particles,
    which keep their height: silica, polymer or metal cores), afm_tip_radius_nm, afm_tip_half_angle_deg (None: a
    spherical tip only; a number: the sphere continues as a cone, wider broadening), afm_tilt (nm per nm in x, y),
    afm_offset_nm, afm_noise_nm, afm_line_noise_nm, afm_min_fiducials (fiducials forced inside the
    AFM region).

    make_em, make_sim, make_afm, make_smlm : switch modalities off for speed.
    """

    seed: int = 0
    # geometry
    field_nm: float = 8000.0
    n_particles: int = 80
    diameter_median_nm: float = 80.0
    diameter_sigma: float = 0.25
    diameter_min_nm: float = 30.0
    diameter_max_nm: float = 250.0
    n_touching_pairs: int = 2
    n_edge_particles: int = 3
    touching_gap_nm: float = 1.0
    min_gap_nm: float = 15.0
    sample_margin_nm: float = 0.0
    n_fiducials: int = 12
    fiducial_diameter_nm: float = 40.0
    fiducial_systematic_nm: float = 0.0
    fiducial_missing_fraction: float = 0.0
    n_spurious_fiducials: int = 0
    fiducial_bleach: bool = False
    # EM
    em_pixel_nm: float = 2.0
    em_psf_px: float = 1.2
    em_particle_mu: float = 0.006
    em_gold_mu: float = 0.05
    em_shell_nm: float | None = None
    em_dose: float = 100.0
    em_read_noise: float = 2.0
    em_gradient: float = 0.15
    em_lowfreq: float = 0.05
    em_dtype: str = "float32"
    # SMLM geometry
    n_frames: int = 5000
    smlm_rotation_deg: float = 2.0
    smlm_scale: float = 1.015
    smlm_offset_nm: tuple[float, float] | None = (-2000.0, -1500.0)
    smlm_mirror: bool = False
    distortion_nm: float = 10.0
    distortion_grid: int = 5
    # labels
    antibody_per_particle: float = 20.0
    antibody_linker_nm: float = 10.0
    corona_per_particle: float = 12.0
    corona_offset_nm: float = 3.0
    corona_fraction: float = 0.7
    label_cv: float = 0.3
    detection_efficiency: float = 0.9
    # blinking and photophysics
    events_mean: float = 4.0
    on_frames_mean: float = 3.0
    dark_frames_mean: float = 400.0
    photons_median: float = 1500.0
    photons_sigma: float = 0.5
    background_photons: float = 30.0
    psf_sigma_nm: float = 130.0
    camera_pixel_nm: float = 108.0
    nonspecific_density_per_um2: float = 2.0
    fiducial_presence: float = 0.95
    fiducial_photons: float = 20000.0
    drift: dict | None = None
    chromatic: dict | None = None
    # SIM
    sim_pixel_nm: float = 32.0
    sim_labels: tuple[str, ...] = ("antibody",)
    sim_resolution_nm: float = 120.0
    sim_rotation_deg: float = -1.5
    sim_scale: float = 1.0
    sim_mirror: bool = False
    sim_resolution_metadata: bool = True
    sim_margin_nm: float = 500.0
    sim_photons_per_molecule: float = 200.0
    sim_fiducial_brightness: float = 60.0
    sim_background: float = 20.0
    sim_read_noise: float = 2.0
    # AFM
    afm_field_nm: float | None = None
    afm_center_nm: tuple[float, float] | None = None
    afm_pixel_nm: float = 4.0
    afm_rotation_deg: float = 1.0
    afm_flattening: float = 0.5
    afm_hard_fraction: float = 0.0
    afm_tip_radius_nm: float = 8.0
    afm_tip_half_angle_deg: float | None = None
    afm_tilt: tuple[float, float] = (0.002, -0.001)
    afm_offset_nm: float = 3.0
    afm_noise_nm: float = 0.3
    afm_line_noise_nm: float = 0.2
    afm_min_fiducials: int = 4
    # switches
    make_em: bool = True
    make_sim: bool = True
    make_afm: bool = True
    make_smlm: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..errors import CorrelateError

        def bad(name: str, expected: str) -> None:
            raise CorrelateError(f"got {getattr(self, name)!r}; expected {expected}", path="SampleConfig", field=name)

        for name in ("field_nm", "em_pixel_nm", "sim_pixel_nm", "afm_pixel_nm", "diameter_median_nm",
                     "fiducial_diameter_nm", "psf_sigma_nm", "camera_pixel_nm", "photons_median",
                     "fiducial_photons", "sim_resolution_nm", "em_dose"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                bad(name, "a positive number")
        for name in ("n_particles", "n_fiducials", "n_touching_pairs", "n_edge_particles", "afm_min_fiducials",
                     "n_spurious_fiducials"):
            if int(getattr(self, name)) < 0:
                bad(name, "a count >= 0")
        if int(self.n_frames) < 1:
            bad("n_frames", "at least 1 frame")
        for name in ("corona_fraction", "detection_efficiency", "fiducial_presence", "afm_hard_fraction"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(name, "a fraction in [0, 1]")
        if not 0.0 <= float(self.fiducial_missing_fraction) < 1.0:
            bad("fiducial_missing_fraction", "a fraction in [0, 1)")
        if not (np.isfinite(self.fiducial_systematic_nm) and self.fiducial_systematic_nm >= 0):
            bad("fiducial_systematic_nm", "a standard deviation >= 0 (nm)")
        if self.smlm_offset_nm is not None and (len(self.smlm_offset_nm) != 2
                                                or not np.all(np.isfinite(np.asarray(self.smlm_offset_nm, float)))):
            bad("smlm_offset_nm", "None or a finite (x, y) offset in nm")
        for name in ("smlm_scale", "sim_scale"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                bad(name, "a positive scale factor")
        for name in ("events_mean", "on_frames_mean"):
            if float(getattr(self, name)) < 1.0:
                bad(name, "a mean >= 1 (geometric, at least one)")
        labs = [self.sim_labels] if isinstance(self.sim_labels, str) else list(self.sim_labels)
        if not labs or any(lab not in ("antibody", "corona") for lab in labs):
            bad("sim_labels", "one or both of 'antibody', 'corona'")
        if self.em_dtype not in ("float32", "uint16"):
            bad("em_dtype", "'float32' or 'uint16'")
        if not 0.0 < float(self.afm_flattening) <= 1.0:
            bad("afm_flattening", "a height/diameter ratio in (0, 1]")
        if self.afm_field > self.field_nm * 1.5:
            bad("afm_field_nm", f"at most 1.5 x field_nm ({self.field_nm})")
        if self.drift is not None and not isinstance(self.drift, dict):
            bad("drift", "None or a dict(linear_nm=, direction_deg=, oscillation_nm=, ...)")
        if self.chromatic is not None and not isinstance(self.chromatic, dict):
            bad("chromatic", "None or a dict(offset_nm=(x, y), scale=, rotation_deg=)")
        # a misspelt key would silently give no drift / no chromatic offset
        for name, keys in (("drift", _DRIFT_KEYS), ("chromatic", _CHROMATIC_KEYS)):
            unknown = sorted(set(getattr(self, name) or {}) - set(keys))
            if unknown:
                bad(name, f"a dict with keys among {', '.join(keys)} (unknown: {', '.join(map(str, unknown))})")

    @classmethod
    def small(cls, **overrides: Any) -> "SampleConfig":
        """A fast sample for tests: 3 µm field at 2 nm/px, 12 particles, 8 fiducials, 600 frames
        (AFM region 1.5 µm)."""
        base = dict(
            field_nm=3000.0,
            n_particles=12,
            n_fiducials=8,
            n_touching_pairs=1,
            n_edge_particles=2,
            n_frames=600,
            dark_frames_mean=60.0,
            afm_min_fiducials=4,
            sim_margin_nm=300.0,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def demo(cls, **overrides: Any) -> "SampleConfig":
        """The demo sample: defaults plus drift, a chromatic offset of the corona colour and a
        2 nm systematic error per bead and light modality (as real beads have)."""
        base = dict(
            fiducial_systematic_nm=2.0,
            drift=dict(linear_nm=60.0, oscillation_nm=20.0),
            chromatic=dict(offset_nm=(15.0, -10.0), scale=1.004, rotation_deg=0.0),
        )
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes: Any) -> "SampleConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-dict form (for provenance records)."""
        return asdict(self)

    # derived ----------------------------------------------------------------------------------
    @property
    def afm_field(self) -> float:
        """Side of the AFM region, nm."""
        return float(self.afm_field_nm) if self.afm_field_nm is not None else min(4000.0, 0.5 * self.field_nm)

    @property
    def afm_center(self) -> tuple[float, float]:
        """Centre of the AFM region in world nm."""
        if self.afm_center_nm is not None:
            return (float(self.afm_center_nm[0]), float(self.afm_center_nm[1]))
        return (0.5 * self.field_nm, 0.5 * self.field_nm)
