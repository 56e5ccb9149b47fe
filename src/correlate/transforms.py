"""Coordinate transforms between coordinate systems, all in nanometres.

Points are ``(N, D)`` arrays whose columns are ``x, y[, z]`` (the table order). NGFF stores axes
in the opposite order (``z, y, x``); :func:`xyz_to_ngff` / :func:`ngff_to_xyz` are the one place
that converts between the two, used by ``to_ngff`` / ``from_ngff``.

Every transform maps *source -> target*; an image is resampled with the inverse.

The types are implemented in :mod:`correlate._transforms` (axes, linear, non-linear); this
module is where they are imported from.
"""

from __future__ import annotations

from ._transforms.axes import ngff_to_xyz, xyz_to_ngff
from ._transforms.linear import (
    Affine,
    Identity,
    Scale,
    Sequence,
    Transform,
    Translation,
    _embed,
    compose,
    from_ngff,
)
from ._transforms.nonlinear import DisplacementField, ThinPlateSpline, _NewtonInverse, _NonLinear

__all__ = [
    "Transform",
    "Identity",
    "Translation",
    "Scale",
    "Affine",
    "Sequence",
    "ThinPlateSpline",
    "DisplacementField",
    "compose",
    "xyz_to_ngff",
    "ngff_to_xyz",
    "from_ngff",
]

# Pickles and reprs name the public module, so stored objects do not depend on the private layout.
for _cls in (Transform, Identity, Translation, Scale, Affine, Sequence, ThinPlateSpline, DisplacementField,
             _NonLinear, _NewtonInverse):
    _cls.__module__ = __name__
del _cls
