"""Simulated supramolecular carriers seen by SMLM alone, with ground truth per structure.

Three questions share one generator of blinking localizations (:func:`carrier_localizations`):

- :func:`simulate_exchange`: two batches labelled in two colours (``a``, ``b``) mixed at t = 0;
  each structure exchanges molecules with the other batch, so that at time ``t`` a molecule of a
  structure of batch A carries colour B with probability ``m(t) = m_inf (1 - exp(-k t))`` (and
  the other way round for batch B).
- :func:`simulate_accessibility`: every antibody on a particle carries label ``all``; those with an
  accessible binding site (probability ``p(d)``, a logistic function of the particle diameter, or
  a constant) carry label ``accessible`` too, a few nm away (a secondary probe).
- :func:`simulate_carrier_states`: intact carriers (labels on a shell of radius ``d / 2 +
  linker``) and disassembled ones (the same molecules spread as a 2-D Gaussian cloud around the
  structure's centre, of standard deviation ``spread`` times the shell radius).

Lengths nm; frames 0-based. The structures are placed on a jittered grid far enough apart
(``spacing_nm``) that the clustering sees them separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

__all__ = ["CarrierConfig", "CarrierSample", "carrier_localizations", "logistic_accessibility", "simulate_exchange",
           "simulate_accessibility", "simulate_carrier_states"]


@dataclass
class CarrierConfig:
    """Acquisition and structure knobs (lengths nm).

    ``molecules_at_100nm``: mean molecules per structure of 100 nm diameter (Poisson, proportional
    to the surface); ``precision_nm``: median localization precision (log-normal spread
    ``precision_spread``); ``blinks_mean`` events per molecule (geometric), ``on_frames_mean``
    frames per event (geometric); ``background_per_um2`` uniform nonspecific localizations per
    colour.
    """

    seed: int | None = None
    n_structures: int = 40
    diameter_range_nm: tuple[float, float] = (40.0, 160.0)
    molecules_at_100nm: float = 30.0
    min_molecules: int = 4
    linker_nm: float = 8.0
    precision_nm: float = 10.0
    precision_spread: float = 0.25
    blinks_mean: float = 4.0
    on_frames_mean: float = 2.0
    n_frames: int = 4000
    background_per_um2: float = 1.0
    spacing_nm: float = 700.0

    @classmethod
    def random(cls, seed: int, **overrides: Any) -> "CarrierConfig":
        """An acquisition drawn over the ranges labs meet (precision 6-15 nm, 2-8 blinks, 15-50
        molecules per 100 nm structure, 0.3-3 background localizations per um^2)."""
        rng = np.random.default_rng([int(seed), 0xCA])
        kw: dict[str, Any] = dict(seed=int(seed), precision_nm=float(rng.uniform(6, 15)),
                                  blinks_mean=float(rng.uniform(2, 8)), on_frames_mean=float(rng.uniform(1, 4)),
                                  molecules_at_100nm=float(rng.uniform(15, 50)), linker_nm=float(rng.uniform(3, 15)),
                                  background_per_um2=float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))))
        kw.update(overrides)
        return cls(**kw)


@dataclass
class CarrierSample:
    """Localizations per colour (canonical columns + ``true_structure_id``, -1 background) and the
    truth per structure (``structure_id, x, y, diameter_nm`` and the case's own columns)."""

    localizations: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    config: CarrierConfig
    params: dict[str, Any] = field(default_factory=dict)


def _layout(cfg: CarrierConfig, rng: np.random.Generator, spacing: float) -> tuple[np.ndarray, float]:
    n = int(cfg.n_structures)
    side = int(np.ceil(np.sqrt(n)))
    ij = np.stack(np.divmod(rng.permutation(side * side)[:n], side), axis=1).astype(float)
    centres = (ij + 0.5) * spacing + rng.uniform(-0.15, 0.15, (n, 2)) * spacing
    return centres, side * spacing


def _shell(rng: np.random.Generator, radius: np.ndarray) -> np.ndarray:
    v = rng.standard_normal((len(radius), 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return radius[:, None] * v[:, :2]


def carrier_localizations(cfg: CarrierConfig, rng: np.random.Generator, mol_xy: np.ndarray,
                          mol_structure: np.ndarray, field_nm: float) -> pd.DataFrame:
    """Blinking localizations of molecules at ``mol_xy`` (nm) plus uniform background.

    Columns ``x, y, frame, precision, photons, true_structure_id, true_molecule_id`` (background:
    -1); sorted by frame. Vectorised over molecules, events and localizations.
    """
    n_mol = len(mol_xy)
    n_ev = rng.geometric(1.0 / max(cfg.blinks_mean, 1.0), n_mol)
    ev_mol = np.repeat(np.arange(n_mol), n_ev)
    ev_len = rng.geometric(1.0 / max(cfg.on_frames_mean, 1.0), len(ev_mol))
    ev_start = rng.integers(0, cfg.n_frames, len(ev_mol))
    ev_len = np.minimum(ev_len, cfg.n_frames - ev_start)
    loc_ev = np.repeat(np.arange(len(ev_mol)), ev_len)
    within = np.arange(len(loc_ev)) - (np.cumsum(ev_len) - ev_len)[loc_ev]
    loc_mol = ev_mol[loc_ev]
    n_bg = int(rng.poisson(cfg.background_per_um2 * field_nm**2 / 1e6))
    xy = np.concatenate([mol_xy[loc_mol], rng.uniform(0, field_nm, (n_bg, 2))])
    frame = np.concatenate([ev_start[loc_ev] + within, rng.integers(0, cfg.n_frames, n_bg)])
    n = len(xy)
    prec = cfg.precision_nm * np.exp(cfg.precision_spread * rng.standard_normal(n))
    xy = xy + prec[:, None] * rng.standard_normal((n, 2))
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": frame.astype(np.int64),
                       "precision": prec.astype(np.float32),
                       "photons": (1000.0 * (cfg.precision_nm / prec) ** 2).astype(np.float32),
                       "true_structure_id": np.concatenate([mol_structure[loc_mol], np.full(n_bg, -1)]).astype(np.int64),
                       "true_molecule_id": np.concatenate([loc_mol, np.full(n_bg, -1)]).astype(np.int64)})
    return df.sort_values("frame", kind="stable").reset_index(drop=True)


def _structures(cfg: CarrierConfig, rng: np.random.Generator, spacing: float | None = None):
    centres, field_nm = _layout(cfg, rng, float(spacing or cfg.spacing_nm))
    d = rng.uniform(*cfg.diameter_range_nm, len(centres))
    n_mol = np.maximum(rng.poisson(cfg.molecules_at_100nm * (d / 100.0) ** 2), cfg.min_molecules)
    sid = np.repeat(np.arange(len(d)), n_mol)
    return centres, field_nm, d, n_mol, sid


def simulate_exchange(t: float, rate: float, m_inf: float, config: CarrierConfig | None = None) -> CarrierSample:
    """One sample of a two-colour exchange series at time ``t`` (same time unit as 1 / ``rate``).

    Each structure belongs to batch A or B (probability 1/2); each of its molecules carries the
    other batch's colour with probability ``m(t) = m_inf (1 - exp(-rate t))``. Truth columns:
    ``origin`` ("a" | "b"), ``fraction_b`` (the expected fraction of colour b, the binomial
    parameter), ``mixing`` (``m(t)``), ``n_molecules_a``, ``n_molecules_b`` (drawn).
    """
    cfg = config or CarrierConfig()
    rng = np.random.default_rng(cfg.seed)
    centres, field_nm, d, n_mol, sid = _structures(cfg, rng)
    m = float(m_inf * (1.0 - np.exp(-rate * t)))
    origin_b = rng.random(len(d)) < 0.5
    p_b = np.where(origin_b, 1.0 - m, m)
    is_b = rng.random(len(sid)) < p_b[sid]
    xy = centres[sid] + _shell(rng, (d / 2 + cfg.linker_nm)[sid])
    locs = {}
    for name, sel in (("a", ~is_b), ("b", is_b)):
        locs[name] = carrier_localizations(cfg, rng, xy[sel], sid[sel], field_nm)
    truth = pd.DataFrame({"structure_id": np.arange(len(d)), "x": centres[:, 0], "y": centres[:, 1],
                          "diameter_nm": d, "origin": np.where(origin_b, "b", "a"), "fraction_b": p_b,
                          "mixing": m, "n_molecules_a": np.bincount(sid[~is_b], minlength=len(d)),
                          "n_molecules_b": np.bincount(sid[is_b], minlength=len(d))})
    return CarrierSample(locs, truth, cfg, {"t": float(t), "rate": float(rate), "m_inf": float(m_inf), "mixing": m,
                                            "field_nm": field_nm})


def logistic_accessibility(b0: float, b1_per_nm: float, d_ref_nm: float = 100.0) -> Callable[[np.ndarray], np.ndarray]:
    """``p(d) = 1 / (1 + exp(-(b0 + b1 (d - d_ref))))`` (d nm)."""
    return lambda d: 1.0 / (1.0 + np.exp(-(b0 + b1_per_nm * (np.asarray(d, float) - d_ref_nm))))


def simulate_accessibility(p_accessible: float | Callable[[np.ndarray], np.ndarray],
                           config: CarrierConfig | None = None, *, probe_offset_nm: float = 5.0) -> CarrierSample:
    """Particles whose antibodies (label ``all``) have an accessible binding site with probability
    ``p_accessible`` (a number, or a function of the diameter in nm); accessible ones carry a second
    label ``accessible`` ``probe_offset_nm`` away in a random direction. Truth: ``p_accessible``,
    ``n_molecules_all``, ``n_molecules_accessible``."""
    cfg = config or CarrierConfig()
    rng = np.random.default_rng(cfg.seed)
    centres, field_nm, d, n_mol, sid = _structures(cfg, rng)
    p = np.broadcast_to(np.asarray(p_accessible(d) if callable(p_accessible) else p_accessible, float), d.shape)
    acc = rng.random(len(sid)) < p[sid]
    xy = centres[sid] + _shell(rng, (d / 2 + cfg.linker_nm)[sid])
    ang = rng.uniform(0, 2 * np.pi, int(acc.sum()))
    probe = xy[acc] + probe_offset_nm * np.column_stack([np.cos(ang), np.sin(ang)])
    locs = {"all": carrier_localizations(cfg, rng, xy, sid, field_nm),
            "accessible": carrier_localizations(cfg, rng, probe, sid[acc], field_nm)}
    truth = pd.DataFrame({"structure_id": np.arange(len(d)), "x": centres[:, 0], "y": centres[:, 1],
                          "diameter_nm": d, "p_accessible": p, "n_molecules_all": n_mol,
                          "n_molecules_accessible": np.bincount(sid[acc], minlength=len(d))})
    return CarrierSample(locs, truth, cfg, {"field_nm": field_nm, "probe_offset_nm": probe_offset_nm})


def simulate_carrier_states(intact_fraction: float, config: CarrierConfig | None = None, *,
                            spread: tuple[float, float] = (0.7, 1.5), label: str = "carrier") -> CarrierSample:
    """Intact carriers (labels on the shell) and disassembled ones (the same number of molecules
    in a 2-D Gaussian cloud of standard deviation ``spread`` (uniform range) times the shell
    radius about the centre). Truth: ``intact`` (bool), ``label_radius_nm``, ``n_molecules``."""
    cfg = config or CarrierConfig()
    rng = np.random.default_rng(cfg.seed)
    r_max = 0.5 * cfg.diameter_range_nm[1] + cfg.linker_nm
    spacing = max(cfg.spacing_nm, 2.0 * 4.0 * spread[1] * r_max)
    centres, field_nm, d, n_mol, sid = _structures(cfg, rng, spacing)
    intact = rng.random(len(d)) < intact_fraction
    r = d / 2 + cfg.linker_nm
    s = rng.uniform(*spread, len(d)) * r
    shell = _shell(rng, r[sid])
    cloud = s[sid, None] * rng.standard_normal((len(sid), 2))
    xy = centres[sid] + np.where(intact[sid, None], shell, cloud)
    locs = {label: carrier_localizations(cfg, rng, xy, sid, field_nm)}
    truth = pd.DataFrame({"structure_id": np.arange(len(d)), "x": centres[:, 0], "y": centres[:, 1],
                          "diameter_nm": d, "label_radius_nm": r, "intact": intact, "n_molecules": n_mol,
                          "cloud_sd_nm": np.where(intact, np.nan, s)})
    return CarrierSample(locs, truth, cfg, {"intact_fraction": float(intact_fraction), "field_nm": field_nm,
                                            "spread": tuple(spread)})
