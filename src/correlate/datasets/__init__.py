"""Simulated correlative samples with known ground truth.

>>> from correlate.datasets import SampleConfig, simulate_sample
>>> s = simulate_sample(SampleConfig.small(seed=0))
>>> sorted(s.elements())
['afm', 'antibody', 'corona', 'em', 'sim']

:func:`random_acquisition` draws one acquisition over the ranges labs meet (bead sizes, pixel
sizes, PSFs, persistence, any rotation, mirrored frames, missing and spurious beads).

World frame = EM frame (nm). See :class:`SampleConfig` for every knob and :class:`Truth` for the
ground-truth tables and transforms.
"""

from ._config import SampleConfig
from ._sample import Sample, Truth, simulate_sample
from ._calibration import simulate_calibration
from ._export import write_files
from ._smlm import mortensen_precision
from ._carriers import (CarrierConfig, CarrierSample, logistic_accessibility, simulate_accessibility,
                        simulate_carrier_states, simulate_exchange)
from ._random import ACQUISITION_RANGES, random_acquisition, random_config
from ._volume import VOLUME_RANGES, VolumeSample, simulate_volume, write_mrc

__all__ = ["SampleConfig", "Sample", "Truth", "simulate_sample", "write_files", "mortensen_precision",
           "simulate_calibration", "random_acquisition", "random_config", "ACQUISITION_RANGES",
           "CarrierConfig", "CarrierSample", "logistic_accessibility", "simulate_accessibility",
           "simulate_carrier_states", "simulate_exchange",
           "VOLUME_RANGES", "VolumeSample", "simulate_volume", "write_mrc"]
