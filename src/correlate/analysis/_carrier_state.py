"""State of a carrier (assembled or disassembled) from the compactness of its emitter sites.

An intact carrier holds its labels on a shell of radius ``R`` (the label radius: particle radius
plus label offset); seen in projection, with each site's position error ``s``, the sites' radial
distribution about their centroid is fixed by ``R``, ``s`` and the number of sites ``M``. A
disassembled carrier scatters the same molecules as a cloud. Two statistics, computed on the sites
(blink events grouped into molecules, so every molecule counts once):

Localizations farther than 2.5 times the mean distance (plus 3 errors) from the centroid are left
out first (strays of the background), in the data and the simulations alike.

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
    """1 for points within ``2.5 <r> + 3 s`` of their group's centroid (``<r>`` their mean distance
    from it: strays of the background out, whatever the particle's spread), 0 beyond; the same
    rule on data and null."""
    idx = (np.arange(reps)[:, None] * n + grp[None, :]).ravel()
    cnt = np.bincount(grp, minlength=n).astype(float)
    cx = np.bincount(idx, weights=xy[..., 0].ravel(), minlength=reps * n).reshape(reps, n) / np.maximum(cnt, 1)
    cy = np.bincount(idx, weights=xy[..., 1].ravel(), minlength=reps * n).reshape(reps, n) / np.maximum(cnt, 1)
    mv = np.bincount(grp, weights=var, minlength=n) / np.maximum(cnt, 1)
    r = np.hypot(xy[..., 0] - np.take_along_axis(cx, np.broadcast_to(grp, r_shape := xy.shape[:-1]), 1),
                 xy[..., 1] - np.take_along_axis(cy, np.broadcast_to(grp, r_shape), 1))
    mr = np.bincount(idx, weights=r.ravel(), minlength=reps * n).reshape(reps, n) / np.maximum(cnt, 1)
    limit = 2.5 * np.take_along_axis(mr, np.broadcast_to(grp, r_shape), 1) + 3.0 * np.sqrt(var + mv[grp])
    return (r <= limit).astype(float), idx


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


def _replicates(model: str, reps: int, n_rows: int, radius, s_grp, s_inv, var, grp, n, kind, rng,
                cloud_sd: float = 1.0) -> np.ndarray:
    """(reps, n) statistic of simulated particles: sites on the shell (``"shell"``) or in a 2-D
    Gaussian cloud of standard deviation ``cloud_sd`` shell radii (``"cloud"``), localizations
    scattered about their site with their own errors; in blocks of bounded memory."""
    chunk = max(1, int(4e6 // max(n_rows, 1)))
    out = []
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        if model == "shell":
            v = rng.standard_normal((r, s_grp.size, 3))
            v /= np.linalg.norm(v, axis=2, keepdims=True)
            pos = radius[s_grp][None, :, None] * v[..., :2]
        else:
            pos = cloud_sd * radius[s_grp][None, :, None] * rng.standard_normal((r, s_grp.size, 2))
        sim = pos[:, s_inv.ravel()] + np.sqrt(var)[None, :, None] * rng.standard_normal((r, n_rows, 2))
        out.append(_statistic(sim, var, grp, n, radius, kind))
    return np.concatenate(out, axis=0)


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


def _corrected_fraction(n_dis: int, n: int, alpha: float, power: float, level: float = 0.95):
    """Fraction intact among ``n`` decided particles with ``n_dis`` called disassembled, corrected
    for the test's error rates (``E[called disassembled] = alpha f + power (1 - f)``), with the
    Clopper-Pearson interval of the calls carried through the same map; without a known
    ``alpha``/``power`` (a user threshold, ``min_power=0``), the called fraction itself."""
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan"), float("nan")
    a = 1.0 - level
    d = n_dis / n
    d_lo = beta.ppf(a / 2, n_dis, n - n_dis + 1) if n_dis > 0 else 0.0
    d_hi = beta.ppf(1 - a / 2, n_dis + 1, n - n_dis) if n_dis < n else 1.0
    if not (np.isfinite(alpha) and np.isfinite(power) and power > alpha):
        return float(1 - d), float(1 - d_hi), float(1 - d_lo)
    f = lambda v: float(np.clip((power - v) / (power - alpha), 0.0, 1.0))  # noqa: E731
    return f(d), f(d_hi), f(d_lo)


def carrier_state(xy: np.ndarray, var: np.ndarray, particle: np.ndarray, particle_id: np.ndarray,
                  label_radius_nm: np.ndarray, *, site: np.ndarray | None = None, statistic: str = "shape",
                  alpha: float = 0.05, threshold: float | None = None, n_null: int = 100,
                  min_sites: int = 5, min_power: float = 0.8, cloud_sd: float = 1.0, lam: float = 0.5,
                  seed: int | None = 0) -> CarrierState:
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
    min_power, cloud_sd
        Particles whose test would detect a disassembled carrier (its molecules in a 2-D Gaussian
        cloud of standard deviation ``cloud_sd`` shell radii, the same sites and errors) with a
        probability below ``min_power`` (``state_power``, Monte Carlo) are ``"undetermined"``:
        too few molecules or too much blur to tell; ``min_power=0`` decides every particle with
        ``min_sites``.
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
    power = np.full(n, np.nan)
    if grp.size:
        obs_all = _statistic(xy, var, grp, n, radius, statistic)
        rng = np.random.default_rng(seed)
        null = _replicates("shell", n_null, xy.shape[0], radius, s_grp, s_inv, var, grp, n, statistic, rng)
        alt = _replicates("cloud", n_null, xy.shape[0], radius, s_grp, s_inv, var, grp, n, statistic, rng,
                          cloud_sd) if min_power > 0 else None
        obs[usable] = obs_all[usable]
        pval[usable] = ((1 + (null[:, usable] >= obs_all[usable]).sum(0)) / (n_null + 1))
        crit[usable] = np.quantile(null[:, usable], 1 - alpha, axis=0)
        med[usable] = np.median(null[:, usable], axis=0)
        if alt is not None:
            power[usable] = (alt[:, usable] > crit[usable]).mean(0)
    if threshold is not None:
        crit[usable] = float(threshold)
        disassembled = obs > float(threshold)
    else:
        disassembled = pval < alpha
    decided = usable & ((power >= min_power) if min_power > 0 else True)
    state = np.where(~decided, "undetermined", np.where(disassembled, "disassembled", "intact"))
    table = pd.DataFrame({"particle_id": pid, "compactness": obs, "compactness_null_median": med,
                          "compactness_critical": crit, "state_p": pval,
                          "state_power": power, "intact": np.where(decided, ~disassembled, np.nan), "state": state,
                          "n_sites": cnt})
    f0, lo0, hi0 = intact_fraction(pval[usable], lam=lam)
    mean_power = float(np.nanmean(power[decided])) if (min_power > 0 and decided.any()) else float("nan")
    f, lo, hi = _corrected_fraction(int((state == "disassembled").sum()), int(decided.sum()),
                                    alpha if threshold is None else float("nan"), mean_power)
    summary = {"fraction_intact": f, "fraction_intact_lo": lo, "fraction_intact_hi": hi,
               "fraction_intact_pi0": f0, "fraction_intact_pi0_lo": lo0, "fraction_intact_pi0_hi": hi0,
               "mean_power": mean_power,
               "n_particles": int(n), "n_called_intact": int((state == "intact").sum()),
               "n_called_disassembled": int((state == "disassembled").sum()),
               "n_undetermined": int((~decided).sum()), "n_few_sites": int((~usable).sum()),
               "min_power": float(min_power), "cloud_sd": float(cloud_sd), "statistic": statistic, "alpha": float(alpha),
               "threshold": None if threshold is None else float(threshold), "n_null": int(n_null),
               "lambda": float(lam), "min_sites": int(min_sites),
               "critical_median": float(np.nanmedian(crit)) if usable.any() else float("nan"),
               "source": {"null": "shell model, Monte Carlo per particle (its sites, radius, errors)",
                          "threshold": "user" if threshold is not None else f"null quantile 1 - alpha"}}
    return CarrierState(table, summary)
