"""Exchange with other frameworks: SpatialData (``pip install 'correlate[spatialdata]'``).

:func:`to_spatialdata` / :func:`write_spatialdata` turn a scene into a SpatialData object or
store; :func:`from_spatialdata` reads one back into a scene. Importing this package does not
import spatialdata.
"""

from ._spatialdata import from_spatialdata, to_spatialdata, write_spatialdata

__all__ = ["to_spatialdata", "write_spatialdata", "from_spatialdata"]
