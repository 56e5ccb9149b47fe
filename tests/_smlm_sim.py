"""Shared simulated data for the SMLM processing tests (helper module, not a test file)."""

from __future__ import annotations

from functools import lru_cache

DRIFT = {"linear_nm": 60.0, "oscillation_nm": 20.0}
# 30 nm chromatic offset (24, 18) and a 0.3 % magnification difference of the corona colour
CHROMATIC = {"offset_nm": (24.0, 18.0), "scale": 1.003, "rotation_deg": 0.0}


@lru_cache(maxsize=4)
def sample(kind: str = "default", seed: int = 1, fiducials: bool = True):
    """A simulated sample with drift and a chromatic offset, SMLM only (fast).

    ``kind="default"``: the simulator's default density (8 µm field, 80 particles, 5000 frames);
    ``"small"``: SampleConfig.small (3 µm, 12 particles, 600 frames).
    """
    from correlate.datasets import SampleConfig, simulate_sample

    kw = {"seed": seed, "make_em": False, "make_sim": False, "make_afm": False, "drift": DRIFT, "chromatic": CHROMATIC}
    if not fiducials:
        kw["n_fiducials"] = 0
    cfg = SampleConfig(**kw) if kind == "default" else SampleConfig.small(**kw)
    return simulate_sample(cfg)


def true_drift(s):
    """(F, 2) true drift, zero mean over frames (the convention of correlate.smlm.Drift)."""
    d = s.truth.drift[["dx", "dy"]].to_numpy(float)
    return d - d.mean(0)
