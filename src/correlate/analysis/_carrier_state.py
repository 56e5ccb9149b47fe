"""State of a carrier (assembled or disassembled) from the compactness of its emitter sites.

An intact carrier holds its labels on a shell of radius ``R`` (the label radius: particle radius
plus label offset); seen in projection, with each site's position error ``s``, the sites' radial
distribution about their centroid is fixed by ``R``, ``s`` and the number of sites ``M``. A
disassembled carrier scatters the same molecules as a cloud. Two statistics, computed on the sites
(blink events grouped into molecules, so every molecule counts once):

- ``"shape"`` (default): ``kappa = M sum(r^4) / (sum(r^2))^2``, the normalised fourth moment of
  the radial distances about the centroid. It is scale-free: a projected shell gives ~1.2, a 2-D
  Gaussian cloud 2, so it needs no size measured independently of these localizations (clusters).
- ``"spread"``: ``sum(r^2) / (M (c R^2 + 2 <s^2>))`` with ``c = 2/3``, the radial spread against
  what a shell of the size measured elsewhere (EM, AFM) predicts; ~1 for an intact carrier.

The null distribution of either statistic is the shell model's, by Monte Carlo for each particle
with its own ``M``, ``R`` and site errors (``n_null`` replicates, vectorised over particles and
replicates); a particle's p-value is its upper tail, and it is called disassembled when
``p < alpha`` (or, with ``threshold`` given, when the statistic exceeds it). The fraction of
intact carriers in a sample is estimated from the p-values, as the proportion of true nulls
(Storey's ``pi0 = #{p > lambda} / ((1 - lambda) N)``, ``lambda = 0.5``) with a Clopper-Pearson
interval on ``#{p > lambda}``: unlike the count of calls, it is not biased by the intact carriers
a level-``alpha`` test rejects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["CarrierState", "carrier_state", "intact_fraction"]

_C_SHELL = 2.0 / 3.0


def _trim_weights(xy, var, grp, n, radius, reps):
    """1 for points within ``1.5 R + 3 s`` of their group's centroid (strays of the background
    out), 0 beyond; the same rule on data and null."""
    idx = (np.arange(reps)[:, None] * n + grp[None, :]).ravel()
    cnt = np.bincount(grp, minlength=n).astype(float)
    cx = np.bincount(idx, weights=xy[..., 0].ravel(), minlength=reps * n).reshape(reps, n) / np.maximum(cnt, 1)
    cy = np.bincount(idx, weights=xy[..., 1].ravel(), minlength=reps * n).reshape(reps, n) / np.maximum(cnt, 1)
    mv = np.bincount(grp, weights=var, minlength=n) / np.maximum(cnt, 1)
    r = np.hypot(xy[..., 0] - cx[:, grp], xy[..., 1] - cy[:, grp])
    return (r <= 1.5 * radius[grp] + 3.0 * np.sqrt(var + mv[grp])).astype(float), idx


def _statistic(xy: np.ndarray, var: np.ndarray, grp: np.ndarray, n: int, radius: np.ndarray,
               kind: str) -> np.ndarray:
    """Statistic per group; ``xy`` (R, S, 2) or (S, 2), ``grp`` (S,) in 0..n-1."""
    flat = xy.reshape(-1, xy.shape[-2], 2)
    reps = flat.shape[0]
    w, idx = _trim_weights(flat, var, grp, n, radius, reps)
    size = reps * n
    bc = lambda v: np.bincount(idx, weights=(w * v).ravel(), minlength=size).reshape(reps, n)  # noqa: E731
    cnt = bc(np.ones_like(w))
    cx, cy = bc(flat[..., 0]) / np.maximum(cnt, 1), bc(flat[..., 1]) / np.maximum(cnt, 1)
    r2 = (flat[..., 0] - np.take_along_axis(cx, np.broadcast_to(grp, w.shape), 1)) ** 2 + \
        (flat[..., 1] - np.take_along_axis(cy, np.broadcast_to(grp, w.shape), 1)) ** 2
    s2 = bc(r2)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "shape":
            out = cnt * bc(r2 * r2) / s2**2
        else:
            mv = bc(np.broadcast_to(var, w.shape)) / np.maximum(cnt, 1)
            out = s2 / cnt / (_C_SHELL * radius**2 + 2.0 * mv)
    return out if xy.ndim == 3 else out[0]


@dataclass
class CarrierState:
    """Per-particle state and the sample's fraction of intact carriers.

    Attributes
    ----------
    table
        ``particle_id``, ``compactness`` (the statistic), ``compactness_null_median``,
        ``compactness_critical`` (the value a particle must exceed to be called disassembled),
        ``state_p`` (upper-tail p-value under the shell model), ``intact`` (bool; NaN-free only
        where ``state`` is not ``"undetermined"``), ``state``, ``n_sites``.
    summary
        ``fraction_intact`` with ``fraction_intact_lo``/``_hi`` (95 %), ``n_called_intact``,
        ``n_called_disassembled``, ``n_undetermined`` and the parameters used (``statistic``,
        ``alpha``, ``threshold``, ``n_null``, ``lambda``, ``min_sites``, with their sources).
    """

    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def plot(self):
        """Statistic against the null median per particle, calls coloured (Figure)."""
        from ..plot._carriers import plot_carrier_state

        return plot_carrier_state(self)


def intact_fraction(p: np.ndarray, *, lam: float = 0.5, level: float = 0.95) -> tuple[float, float, float]:
    """Fraction of particles whose p-values follow the null (intact), with its interval
    (Storey's pi0 at ``lam``; Clopper-Pearson on the count above ``lam``, divided by ``1 - lam``)."""
    from scipy.stats import beta

    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    n = p.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    k = int((p > lam).sum())
    a = 1.0 - level
    lo = beta.ppf(a / 2, k, n - k + 1) if k > 0 else 0.0
    hi = beta.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0
    f = lambda v: float(min(1.0, v / (1.0 - lam)))  # noqa: E731
    return f(k / n), f(lo), f(hi)


def carrier_state(xy: np.ndarray, var: np.ndarray, particle: np.ndarray, particle_id: np.ndarray,
                  label_radius_nm: np.ndarray, *, site: np.ndarray | None = None, statistic: str = "shape",
                  alpha: float = 0.05, threshold: float | None = None, n_null: int = 200,
                  min_sites: int = 5, lam: float = 0.5, seed: int | None = 0) -> CarrierState:
    """Assembled or disassembled, per particle, from its emitter sites.

    Parameters
    ----------
    xy, var
        (E, 2) positions (nm) of blink events (or of sites) and (E,) the variance of each one's
        position per axis (nm^2).
    particle
        (E,) index (0..P-1) into ``particle_id`` of each event's particle; -1 for none.
    site
        (E,) the emitter site (molecule) of each event: the null places one shell position per
        site and scatters its events about it with their own errors, so molecules that blinked
        often weigh as they do in the data. None: every row is its own site.
    particle_id, label_radius_nm
        (P,) particle ids and the radius of the label shell (particle radius + label offset, nm):
        the size the shell model predicts from (clusters: their fitted label radius; EM: half the
        equivalent diameter plus the label offset).
    statistic
        ``"shape"`` or ``"spread"`` (module docstring).
    alpha, threshold
        Call disassembled when the p-value is below ``alpha``, or, if ``threshold`` is given,
        when the statistic exceeds it.
    n_null
        Monte-Carlo replicates of the shell model per particle.
    min_sites
        Particles with fewer sites are ``"undetermined"`` (NaN).
    """
    if statistic not in ("shape", "spread"):
        raise CorrelateError(f"statistic must be 'shape' or 'spread', got {statistic!r}", field="statistic")
    if not 0 < alpha < 1:
        raise CorrelateError(f"alpha must lie in (0, 1), got {alpha!r}", field="alpha")
    pid = np.asarray(particle_id)
    n = len(pid)
    radius = np.asarray(label_radius_nm, float)
    sp = np.asarray(particle, np.int64)
    site = np.arange(len(sp)) if site is None else np.asarray(site, np.int64)
    first = np.unique(site[sp >= 0], return_index=True)[1]
    cnt = np.bincount(sp[sp >= 0][first], minlength=n)
    usable = (cnt >= min_sites) & np.isfinite(radius) & (radius > 0)
    keep = (sp >= 0) & usable[np.maximum(sp, 0)]
    xy, var, grp = np.asarray(xy, float)[keep], np.asarray(var, float)[keep], sp[keep]
    _, s_first, s_inv = np.unique(site[keep], return_index=True, return_inverse=True)
    s_grp = grp[s_first]
    obs = np.full(n, np.nan)
    crit = np.full(n, np.nan)
    med = np.full(n, np.nan)
    pval = np.full(n, np.nan)
    if grp.size:
        obs_all = _statistic(xy, var, grp, n, radius, statistic)
        rng = np.random.default_rng(seed)
        chunk = max(1, int(4e6 // max(grp.size, 1)))
        null = []
        for start in range(0, n_null, chunk):  # replicates in blocks: bounded memory
            r = min(chunk, n_null - start)
            v = rng.standard_normal((r, s_grp.size, 3))
            v /= np.linalg.norm(v, axis=2, keepdims=True)
            sim = (radius[s_grp][None, :, None] * v[..., :2])[:, s_inv.ravel()]
            sim = sim + np.sqrt(var)[None, :, None] * rng.standard_normal((r, grp.size, 2))
            null.append(_statistic(sim, var, grp, n, radius, statistic))
        null = np.concatenate(null, axis=0)
        obs[usable] = obs_all[usable]
        pval[usable] = ((1 + (null[:, usable] >= obs_all[usable]).sum(0)) / (n_null + 1))
        crit[usable] = np.quantile(null[:, usable], 1 - alpha, axis=0)
        med[usable] = np.median(null[:, usable], axis=0)
    if threshold is not None:
        crit[usable] = float(threshold)
        disassembled = obs > float(threshold)
    else:
        disassembled = pval < alpha
    state = np.where(~usable, "undetermined", np.where(disassembled, "disassembled", "intact"))
    table = pd.DataFrame({"particle_id": pid, "compactness": obs, "compactness_null_median": med,
                          "compactness_critical": crit, "state_p": pval,
                          "intact": np.where(usable, ~disassembled, np.nan), "state": state, "n_sites": cnt})
    f, lo, hi = intact_fraction(pval[usable], lam=lam)
    summary = {"fraction_intact": f, "fraction_intact_lo": lo, "fraction_intact_hi": hi,
               "n_particles": int(n), "n_called_intact": int((state == "intact").sum()),
               "n_called_disassembled": int((state == "disassembled").sum()),
               "n_undetermined": int((~usable).sum()), "statistic": statistic, "alpha": float(alpha),
               "threshold": None if threshold is None else float(threshold), "n_null": int(n_null),
               "lambda": float(lam), "min_sites": int(min_sites),
               "critical_median": float(np.nanmedian(crit)) if usable.any() else float("nan"),
               "source": {"null": "shell model, Monte Carlo per particle (its sites, radius, errors)",
                          "threshold": "user" if threshold is not None else f"null quantile 1 - alpha"}}
    return CarrierState(table, summary)
