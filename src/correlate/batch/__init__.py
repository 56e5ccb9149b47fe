"""Many samples: a manifest of samples run as tasks on ``dask.distributed``, one store each.

See :func:`run_batch` and, for the manifest's columns, :func:`read_manifest`.
"""

from ._manifest import SampleSpec, read_manifest
from ._run import BatchResult, combined_table, run_batch
from ._sample import run_sample

__all__ = ["BatchResult", "SampleSpec", "combined_table", "read_manifest", "run_batch", "run_sample"]
