"""correlate: correlative microscopy in one physical space.

SMLM localizations, SIM/STED images, EM micrographs and AFM height maps of the same sample are
brought into one OME-Zarr scene in nanometres, registered with fiducials whose error is predicted
and checked, and joined particle by particle.

Heavy submodules load on first use (``correlate.Scene``, ``correlate.read``...), so
``import correlate`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str]] = {
    "Scene": ("correlate.scene", "Scene"),
    "open_scene": ("correlate.scene", "open_scene"),
    "read": ("correlate.io", "read"),
    "CorrelateError": ("correlate.errors", "CorrelateError"),
}
_SUBMODULES = {
    "analysis",
    "datasets",
    "elements",
    "errors",
    "io",
    "plot",
    "registration",
    "render",
    "scene",
    "smlm",
    "transforms",
    "units",
}

__all__ = sorted(set(_LAZY) | _SUBMODULES | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"correlate.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'correlate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
