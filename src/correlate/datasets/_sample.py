"""The simulated correlative sample: :func:`simulate_sample` and its result types."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..elements import make_image
from ..transforms import Transform
from ._afm import particle_height
from ._beads import draw_bead_acquisition
from ._config import SampleConfig
from ._em import render_em
from ._geometry import make_transforms, place_fiducials, place_particles
from ._modalities import count_per_particle, fiducial_truth, simulate_afm, simulate_sim, simulate_smlm, spurious_truth
from ._smlm import LABELS

__all__ = ["Truth", "Sample", "simulate_sample"]


@dataclass
class Truth:
    """Ground truth of a simulated sample (all lengths nm).

    Attributes
    ----------
    particles
        particle_id, x, y (world), diameter_nm, height_nm (AFM apparent height), hard (keeps its
        height on the substrate), has_corona,
        n_molecules_<label>, n_localizations_<label>, n_events_<label>, edge (cut by or outside
        the EM field), in_afm (wholly inside the AFM region), touching (partner id or -1).
    fiducials
        fiducial_id, x, y (world), diameter_nm, x_smlm, y_smlm (antibody camera frame),
        x_smlm_corona, y_smlm_corona, x_sim, y_sim, x_afm, y_afm (the exact image of the gold
        centre in that frame; NaN where outside that image), seen_smlm, seen_sim (the bead is
        visible in that modality), dx_sys_<frame>, dy_sys_<frame> for frame smlm, smlm_corona,
        sim (the bead's fixed systematic offset, nm in that frame's axes). SMLM positions are
        drift-free: a localization in frame f scatters about x_smlm + dx_sys_smlm + drift.dx[f].
    molecules
        molecule_id, label, particle_id, x, y, z (world; z above the particle centre), x_smlm,
        y_smlm (camera frame of that label, drift-free), n_events (on-events inside the run; 0:
        never detected), n_localizations.
    transforms
        element -> Transform (own frame -> world): "em" (Identity), "sim", "afm", "smlm", and
        "smlm_corona" when the corona colour has a chromatic offset; aliases "antibody" and
        "corona" (the transform of that localization element).
    drift
        frame, dx, dy (nm, camera frame) added to the SMLM coordinates (zeros without drift).
    params
        Extra truth: "smlm_similarity" (the linear part of "smlm"), "chromatic" (corona camera ->
        antibody camera), "camera_lo"/"camera_hi" (camera field box, nm), "smlm_mirrored",
        "sim_mirrored" (bool: that frame -> world has det < 0), timings (s).
    spurious
        Persistent bright spots that are not gold: modality ("smlm" or "sim"), spurious_id, x, y
        (world), x_frame, y_frame (antibody camera frame or SIM frame), diameter_nm, brightness
        (relative to a bead), lit_frames (-1: not bleaching). SMLM localizations of these spots
        have ``true_particle_id == -3``.
    """

    particles: pd.DataFrame
    fiducials: pd.DataFrame
    molecules: pd.DataFrame
    transforms: dict[str, Transform]
    drift: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    spurious: pd.DataFrame = field(default_factory=pd.DataFrame)

    _FRAME_COLUMNS = {
        "world": ("x", "y"), "em": ("x", "y"),
        "smlm": ("x_smlm", "y_smlm"), "antibody": ("x_smlm", "y_smlm"),
        "smlm_corona": ("x_smlm_corona", "y_smlm_corona"), "corona": ("x_smlm_corona", "y_smlm_corona"),
        "sim": ("x_sim", "y_sim"), "afm": ("x_afm", "y_afm"),
    }
    _SEEN_COLUMN = {"smlm": "seen_smlm", "antibody": "seen_smlm", "smlm_corona": "seen_smlm",
                    "corona": "seen_smlm", "sim": "seen_sim"}

    def landmarks(self, source: str, target: str = "world", sigma_source: float = 0.0, sigma_target: float = 0.0):
        """True fiducial pairs between two frames as :class:`~correlate.elements.Landmarks`.

        Parameters
        ----------
        source, target
            Frame names: "world"/"em", "smlm"/"antibody", "smlm_corona"/"corona", "sim", "afm".
            Only fiducials present in both (finite positions, and seen by that modality) are
            kept. Positions are the exact gold centres (without the systematic offsets).
        sigma_source, sigma_target
            Standard deviation (nm, per axis) of the isotropic covariance ``sigma**2 * I`` to attach
            (the truth itself is exact).
        """
        from ..elements import Landmarks

        for name in (source, target):
            if name not in self._FRAME_COLUMNS:
                raise KeyError(f"unknown frame {name!r}; expected one of {sorted(self._FRAME_COLUMNS)}")
        f = self.fiducials
        src = f[list(self._FRAME_COLUMNS[source])].to_numpy(float)
        dst = f[list(self._FRAME_COLUMNS[target])].to_numpy(float)
        ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
        for name in (source, target):
            col = self._SEEN_COLUMN.get(name)
            if col is not None and col in f.columns:
                ok &= f[col].to_numpy(bool)
        n = int(ok.sum())
        return Landmarks(
            source=src[ok], target=dst[ok],
            source_cov=np.full(n, sigma_source**2), target_cov=np.full(n, sigma_target**2),
            ids=f["fiducial_id"].to_numpy()[ok], source_system=source, target_system=target,
            attrs={"simulated_truth": True},
        )


@dataclass
class Sample:
    """A simulated correlative sample: images, localizations and the truth behind them.

    ``em``, ``sim``, ``afm`` are Image elements (None where switched off); ``smlm`` maps
    ``"antibody"`` / ``"corona"`` to Localizations in their SMLM camera frames.
    """

    config: SampleConfig
    em: Any
    sim: Any
    afm: Any
    smlm: dict[str, pd.DataFrame]
    truth: Truth

    def elements(self) -> dict[str, Any]:
        """Element name -> element, for a Scene: "em", "sim", "afm", "antibody", "corona".

        Their transforms to world are ``self.truth.transforms[name]`` (the same keys).
        """
        out: dict[str, Any] = {}
        for name in ("em", "sim", "afm"):
            img = getattr(self, name)
            if img is not None:
                out[name] = img
        out.update(self.smlm)
        return out

    def em_labels(self) -> np.ndarray:
        """True particle label image on the EM grid: (H, W) int32, ``particle_id`` inside each
        particle's disc (projected outline), 0 elsewhere; gold beads are not labelled."""
        from ._splat import splat

        if self.em is None:
            raise ValueError("the sample has no EM image (make_em=False)")
        cfg = self.config
        px = float(cfg.em_pixel_nm)
        lab = np.zeros(self.em.shape, np.int32)
        p = self.truth.particles
        r = 0.5 * p["diameter_nm"].to_numpy(float)

        def prof(dx, dy, q):
            return np.where(dx * dx + dy * dy <= q[..., 1] ** 2, q[..., 0], 0)

        params = np.column_stack([p["particle_id"].to_numpy(float), r])
        splat(lab, (0.0, 0.0), px, p[["x", "y"]].to_numpy(float), r, prof, params, mode="max")
        return lab

    def summary(self) -> str:
        """A few lines describing the sample (sizes, counts, truth)."""
        cfg = self.config
        p = self.truth.particles
        lines = [
            f"simulated sample (seed {cfg.seed}): {cfg.field_nm / 1000:g} um field, {len(p)} particles "
            f"(median d {p['diameter_nm'].median():.0f} nm, {int(p['edge'].sum())} at the edge), "
            f"{len(self.truth.fiducials)} fiducials",
        ]
        for name in ("em", "sim", "afm"):
            img = getattr(self, name)
            if img is not None:
                px = float(img.x[1] - img.x[0]) if img.sizes["x"] > 1 else float("nan")
                lines.append(f"  {name}: {img.sizes['y']} x {img.sizes['x']} px at {px:g} nm")
        for label, df in self.smlm.items():
            mol = self.truth.molecules
            lines.append(
                f"  {label}: {len(df)} localizations over {cfg.n_frames} frames, "
                f"{int((mol['label'] == label).sum())} molecules, median precision "
                f"{df.loc[df['true_particle_id'] > 0, 'precision'].median():.1f} nm"
            )
        t = self.truth.transforms.get("smlm")
        if t is not None:
            lines.append(f"  smlm -> world: {'linear' if t.is_linear else 'non-linear'} "
                         f"(distortion {cfg.distortion_nm:g} nm{', mirrored' if cfg.smlm_mirror else ''}), "
                         f"drift {'on' if cfg.drift else 'off'}, chromatic {'on' if cfg.chromatic else 'off'}")
        f = self.truth.fiducials
        if len(f):
            lines.append(f"  beads: {cfg.fiducial_diameter_nm:g} nm, systematic {cfg.fiducial_systematic_nm:g} nm, "
                         f"seen by SMLM {int(f['seen_smlm'].sum())}, by SIM {int(f['seen_sim'].sum())}, "
                         f"spurious spots {cfg.n_spurious_fiducials} per light modality")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Sample seed={self.config.seed} elements={sorted(self.elements())}>"

    def transforms(self) -> dict[str, Transform]:
        """Element name -> true transform (element frame -> world), same keys as :meth:`elements`."""
        return {k: self.truth.transforms[k] for k in self.elements()}

    def write_files(self, directory, *, truth: bool = True, truth_columns: bool = False, overwrite: bool = False):
        """Write the sample as ordinary files (MRC, OME-TIFF, ThunderSTORM CSV, truth CSV/JSON);
        see :func:`correlate.datasets.write_files`. Returns name -> path."""
        from ._export import write_files

        return write_files(self, directory, truth=truth, truth_columns=truth_columns, overwrite=overwrite)

    def to_scene(self, path, *, transforms: str = "truth", truth_table: bool = True, overwrite: bool = False):
        """Write the sample into a new scene store and return the open :class:`~correlate.scene.Scene`.

        Parameters
        ----------
        path
            Store path (``*.ome.zarr``).
        transforms
            ``"truth"``: every element gets its true transform to world, declared as placed
            (error 0 nm), so joins need no registration; ``"none"``: every element keeps identity
            and stays unplaced until registered (the EM, unregistered, is the reference).
        truth_table
            Also store the true particles as table ``"truth_particles"`` (world frame).
        overwrite
            Replace an existing store (atomically).
        """
        from ..elements import make_table
        from ..scene import Scene

        if transforms not in ("truth", "none"):
            raise ValueError(f"transforms must be 'truth' or 'none', got {transforms!r}")
        scene = Scene.create(path, overwrite=overwrite)
        for name, el in self.elements().items():
            t = self.truth.transforms[name] if transforms == "truth" else None
            scene.add(name, el, transform=t)
            if transforms == "truth":
                scene.declare_aligned(name, tre_nm=0.0, note="the simulator's true transform")
        if truth_table:
            scene.add("truth_particles", make_table(self.truth.particles, coordinate_system="world"))
        return scene


def simulate_sample(config: SampleConfig | None = None, **overrides: Any) -> Sample:
    """Simulate a correlative sample: EM, SIM, AFM images and two-colour SMLM localizations of
    liposome-like particles with gold fiducials, with the truth behind them.

    Parameters
    ----------
    config
        A :class:`SampleConfig` (default: the demo-size defaults).
    **overrides
        Fields of the config to change (``simulate_sample(seed=3, n_frames=500)``).

    Returns
    -------
    Sample
        ``em``/``sim``/``afm`` Images, ``smlm`` {"antibody", "corona"} Localizations, ``truth``.
        World frame = EM frame (nm). Every image has its pixel centres at ``i * pixel`` in its own
        frame (the readers' convention), so the EM covers ``[-px/2, field_nm - px/2]`` of world.
    """
    cfg = SampleConfig() if config is None else config
    if overrides:
        cfg = cfg.replace(**overrides)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    root = np.random.default_rng(cfg.seed)
    # independent streams per stage, so switching one modality off leaves the others unchanged
    rngs = dict(zip(["geom", "transforms", "em", "labels", "smlm", "sim", "afm", "acq"], root.spawn(8)))
    fiducials = place_fiducials(cfg, rngs["geom"])
    particles = place_particles(cfg, rngs["geom"], fiducials)
    hard = rngs["acq"].random(len(particles)) < float(cfg.afm_hard_fraction)
    particles["hard"] = hard
    particles["height_nm"] = particle_height(cfg, particles["diameter_nm"].to_numpy(), hard)
    beads = draw_bead_acquisition(cfg, rngs["acq"], fiducials)
    transforms, params = make_transforms(cfg, rngs["transforms"])
    timings["geometry"] = time.perf_counter() - t0

    em = None
    if cfg.make_em:
        t = time.perf_counter()
        data, org = render_em(cfg, rngs["em"], particles, fiducials)
        em = make_image(
            data, pixel_size_nm=cfg.em_pixel_nm, origin_nm={"y": org[1], "x": org[0]}, modality="em",
            value_unit="counts", name="em", source="simulated",
            attrs={"simulated": True, "seed": int(cfg.seed)},
        )
        timings["em"] = time.perf_counter() - t

    t = time.perf_counter()
    mol, smlm, fid_cam, drift = simulate_smlm(cfg, rngs, particles, fiducials, beads, transforms, params)
    timings["smlm"] = time.perf_counter() - t
    count_per_particle(particles, mol)

    sim = None
    if cfg.make_sim:
        t = time.perf_counter()
        sim = simulate_sim(cfg, rngs["sim"], transforms["sim"], fiducials, beads, mol)
        timings["sim"] = time.perf_counter() - t
    afm = simulate_afm(cfg, rngs, transforms["afm"], particles, fiducials, timings)

    fid = fiducial_truth(cfg, fiducials, fid_cam, transforms, sim, beads)
    spurious = spurious_truth(beads["spurious"], transforms)
    cols = ["particle_id", "x", "y", "diameter_nm", "height_nm", "hard", "has_corona"]
    cols += [f"{c}_{lab}" for lab in LABELS for c in ("n_molecules", "n_localizations", "n_events")]
    cols += ["edge", "in_afm", "touching"]
    particles = particles[cols]
    timings["total"] = time.perf_counter() - t0
    params["timings"] = timings
    params["seed"] = int(cfg.seed)
    truth = Truth(particles=particles, fiducials=fid, molecules=mol, transforms=transforms, drift=drift, params=params,
                  spurious=spurious)
    return Sample(config=cfg, em=em, sim=sim, afm=afm, smlm=smlm, truth=truth)
