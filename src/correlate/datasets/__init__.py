"""Simulated correlative samples with known ground truth.

>>> from correlate.datasets import SampleConfig, simulate_sample
>>> s = simulate_sample(SampleConfig.small(seed=0))
>>> sorted(s.elements())
['afm', 'antibody', 'corona', 'em', 'sim']

World frame = EM frame (nm). See :class:`SampleConfig` for every knob and :class:`Truth` for the
ground-truth tables and transforms.
"""

from ._config import SampleConfig
from ._sample import Sample, Truth, simulate_sample
from ._calibration import simulate_calibration
from ._export import write_files
from ._smlm import mortensen_precision

__all__ = ["SampleConfig", "Sample", "Truth", "simulate_sample", "write_files", "mortensen_precision", "simulate_calibration"]
