"""A sparse single-molecule calibration acquisition to go with a simulated sample."""

from __future__ import annotations

import pandas as pd

from ._config import SampleConfig

__all__ = ["simulate_calibration"]


def simulate_calibration(config: SampleConfig, *, seed: int | None = None, n_sites: int = 400) -> dict[str, pd.DataFrame]:
    """Localizations of a sparse calibration sample imaged like ``config``'s SMLM run.

    Counting molecules from blinks needs the dye's mean number of on-events per molecule, which
    experimentalists measure on a sparse sample (molecules far apart) with the same dye, buffer
    and laser settings. This simulates that acquisition: ``n_sites`` sites over an 8 µm field
    carrying about one molecule of each label, no nonspecific background, no drift, and the
    blinking, photon and frame settings of ``config``.

    Parameters
    ----------
    config
        The sample's configuration (its blinking and imaging settings are reused).
    seed
        Seed of the calibration acquisition (default ``config.seed + 1000``).
    n_sites
        Number of sparse sites.

    Returns
    -------
    dict
        ``{"antibody": Localizations, "corona": Localizations}`` in the calibration camera frame (nm).
    """
    from ._sample import simulate_sample

    cal = config.replace(
        seed=config.seed + 1000 if seed is None else seed,
        field_nm=8000.0,
        n_particles=n_sites,
        n_touching_pairs=0,
        antibody_per_particle=0.7,
        corona_per_particle=0.7,
        corona_fraction=1.0,
        nonspecific_density_per_um2=0.0,
        drift=None,
        chromatic=None,
        make_em=False,
        make_sim=False,
        make_afm=False,
    )
    return simulate_sample(cal).smlm
