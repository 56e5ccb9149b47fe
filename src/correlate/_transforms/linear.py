"""The :class:`Transform` base, NGFF reading and the linear transforms with :func:`compose`.

Positions in nm, x, y[, z] order. Each transform type registers a reader for its NGFF ``type``
with :func:`ngff_reader`; :func:`from_ngff` dispatches on it (the non-linear types register when
:mod:`correlate.transforms` is imported).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence as Seq

import numpy as np
import pandas as pd

from ..errors import CorrelateError, ElementError
from .axes import ngff_to_xyz, xyz_to_ngff

__all__ = [
    "Affine",
    "Identity",
    "Scale",
    "Sequence",
    "Transform",
    "Translation",
    "compose",
    "from_ngff",
    "ngff_reader",
]

_Reader = Callable[[dict, "int | None"], "Transform"]
_READERS: dict[str, _Reader] = {}


def _as_points(points) -> tuple[np.ndarray, bool]:
    p = np.asarray(points, dtype=float)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.ndim != 2 or p.shape[1] not in (1, 2, 3):
        raise ElementError(f"points must be (N, 2) or (N, 3) in x, y[, z] order, got shape {p.shape}")
    return p, single


class Transform:
    """Base class: a map from a source to a target coordinate system, in nm.

    Subclasses implement :meth:`_apply` on ``(N, ndim)`` arrays, :meth:`inverse`,
    :meth:`jacobian`, :meth:`to_ngff` and (for linear ones) :attr:`matrix`.
    """

    ndim: int = 2
    is_linear: bool = True

    # -- application --------------------------------------------------------------------------
    def apply(self, points):
        """Map points (``(N, D)`` array with columns x, y[, z], a single ``(D,)`` point, or a
        DataFrame with columns ``x, y[, z]``) from source to target. Returns the same kind.

        A 2-D transform applied to 3-D points maps x, y and leaves z unchanged.
        """
        if isinstance(points, pd.DataFrame):
            cols = [c for c in ("x", "y", "z") if c in points.columns][: max(self.ndim, 2)]
            if self.ndim == 3 and "z" not in points.columns:
                raise ElementError("a 3-D transform needs a z column", field="z")
            out = points.copy()
            mapped = self.apply(points[cols].to_numpy(dtype=float))
            for i, c in enumerate(cols):
                out[c] = mapped[:, i]
            out.attrs = dict(points.attrs)
            return out
        p, single = _as_points(points)
        d = p.shape[1]
        if d == self.ndim:
            q = self._apply(p)
        elif d > self.ndim:
            q = p.copy()
            q[:, : self.ndim] = self._apply(p[:, : self.ndim])
        else:
            raise ElementError(f"a {self.ndim}-D transform cannot map {d}-D points")
        return q[0] if single else q

    __call__ = apply

    def _apply(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self) -> "Transform":
        """The transform from target back to source."""
        raise NotImplementedError

    def jacobian(self, points) -> np.ndarray:
        """(N, D, D) Jacobian d(target)/d(source) at each point (x, y[, z] order)."""
        p, _ = _as_points(points)
        return np.broadcast_to(self.matrix[: self.ndim, : self.ndim], (len(p), self.ndim, self.ndim)).copy()

    def propagate_covariance(self, points, cov) -> np.ndarray:
        """Carry (N, D, D) covariances (nm^2) at ``points`` through the transform: J Σ Jᵀ."""
        j = self.jacobian(points)
        cov = np.asarray(cov, dtype=float)
        return np.einsum("nij,njk,nlk->nil", j, cov, j)

    # -- composition --------------------------------------------------------------------------
    def then(self, other: "Transform") -> "Transform":
        """``self`` followed by ``other`` (source -> self.target = other.source -> other.target)."""
        return compose(self, other)

    @property
    def matrix(self) -> np.ndarray:
        """(D+1, D+1) homogeneous matrix in x, y[, z] order (linear transforms only)."""
        raise CorrelateError(f"{type(self).__name__} is not linear and has no matrix")

    def to_affine(self) -> "Affine":
        """This linear transform as an :class:`Affine`."""
        return Affine(self.matrix)

    # -- serialisation ------------------------------------------------------------------------
    def to_ngff(self, *, input: Any = None, output: Any = None, name: str | None = None) -> dict:
        """NGFF 0.6 coordinateTransformation JSON (axes in NGFF order z, y, x)."""
        d = self._ngff_body()
        if name is not None:
            d["name"] = name
        if input is not None:
            d["input"] = input
        if output is not None:
            d["output"] = output
        return d

    def _ngff_body(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def from_ngff(d: dict, ndim: int | None = None) -> "Transform":
        """Build a transform from NGFF 0.6 JSON (see :func:`from_ngff`)."""
        return from_ngff(d, ndim=ndim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ndim={self.ndim})"


class Identity(Transform):
    """The identity map."""

    def __init__(self, ndim: int = 2) -> None:
        self.ndim = int(ndim)

    def _apply(self, p):
        return p.copy()

    def inverse(self):
        return Identity(self.ndim)

    @property
    def matrix(self):
        return np.eye(self.ndim + 1)

    def _ngff_body(self):
        return {"type": "identity"}


class Translation(Transform):
    """``p + offset``; ``offset`` in nm, x, y[, z] order."""

    def __init__(self, offset: Seq[float]) -> None:
        self.offset = np.asarray(offset, dtype=float).ravel()
        self.ndim = self.offset.size

    def _apply(self, p):
        return p + self.offset

    def inverse(self):
        return Translation(-self.offset)

    @property
    def matrix(self):
        m = np.eye(self.ndim + 1)
        m[: self.ndim, self.ndim] = self.offset
        return m

    def _ngff_body(self):
        return {"type": "translation", "translation": xyz_to_ngff(self.offset).tolist()}

    def __repr__(self):
        return f"Translation({self.offset.tolist()})"


class Scale(Transform):
    """``p * factors`` per axis (x, y[, z] order)."""

    def __init__(self, factors: Seq[float]) -> None:
        self.factors = np.asarray(factors, dtype=float).ravel()
        if np.any(self.factors == 0) or not np.all(np.isfinite(self.factors)):
            raise CorrelateError(f"scale factors must be finite and non-zero, got {self.factors}")
        self.ndim = self.factors.size

    def _apply(self, p):
        return p * self.factors

    def inverse(self):
        return Scale(1.0 / self.factors)

    @property
    def matrix(self):
        m = np.eye(self.ndim + 1)
        m[: self.ndim, : self.ndim] = np.diag(self.factors)
        return m

    def _ngff_body(self):
        return {"type": "scale", "scale": xyz_to_ngff(self.factors).tolist()}

    def __repr__(self):
        return f"Scale({self.factors.tolist()})"


class Affine(Transform):
    """``A p + t``, given as a (D+1, D+1) homogeneous or (D, D+1) augmented matrix in x, y[, z]
    order."""

    def __init__(self, matrix: np.ndarray) -> None:
        m = np.asarray(matrix, dtype=float)
        if m.ndim != 2 or m.shape[1] not in (3, 4) or m.shape[0] not in (m.shape[1] - 1, m.shape[1]):
            raise CorrelateError(f"affine matrix must be (D, D+1) or (D+1, D+1) with D in 2, 3; got {m.shape}")
        d = m.shape[1] - 1
        full = np.eye(d + 1)
        full[:d, :] = m[:d, :]
        if m.shape[0] == d + 1 and not np.allclose(m[d], full[d]):
            raise CorrelateError("homogeneous affine matrix must end in [0, ..., 0, 1]")
        if not np.all(np.isfinite(full)):
            raise CorrelateError("affine matrix has non-finite entries")
        self._m = full
        self.ndim = d

    @classmethod
    def from_parts(cls, linear: np.ndarray, offset: Seq[float]) -> "Affine":
        """Build from the linear part ``A`` (D, D) and the offset ``t`` (D,)."""
        linear = np.asarray(linear, float)
        d = linear.shape[0]
        m = np.eye(d + 1)
        m[:d, :d] = linear
        m[:d, d] = np.asarray(offset, float)
        return cls(m)

    @classmethod
    def similarity(cls, scale: float = 1.0, rotation_rad: float = 0.0, offset: Seq[float] = (0.0, 0.0)) -> "Affine":
        """2-D similarity: rotate counter-clockwise (x towards y) by ``rotation_rad``, scale, shift."""
        c, s = np.cos(rotation_rad), np.sin(rotation_rad)
        return cls.from_parts(scale * np.array([[c, -s], [s, c]]), offset)

    @property
    def linear(self) -> np.ndarray:
        """The (D, D) linear part."""
        return self._m[: self.ndim, : self.ndim].copy()

    @property
    def offset(self) -> np.ndarray:
        """The (D,) translation part, nm."""
        return self._m[: self.ndim, self.ndim].copy()

    @property
    def matrix(self):
        return self._m.copy()

    def _apply(self, p):
        return p @ self._m[: self.ndim, : self.ndim].T + self._m[: self.ndim, self.ndim]

    def inverse(self):
        det = np.linalg.det(self.linear)
        if abs(det) < 1e-12 * max(1.0, np.abs(self.linear).max() ** self.ndim):
            raise CorrelateError("affine transform is singular and has no inverse")
        return Affine(np.linalg.inv(self._m))

    def _ngff_body(self):
        aug = xyz_to_ngff(self._m[: self.ndim, :])
        return {"type": "affine", "affine": aug.tolist()}

    def __repr__(self):
        return f"Affine({np.round(self._m[: self.ndim], 6).tolist()})"


class Sequence(Transform):
    """Transforms applied in order: first ``transforms[0]``, then ``transforms[1]``..."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        flat: list[Transform] = []
        for t in transforms:
            flat.extend(t.transforms if isinstance(t, Sequence) else [t])
        if not flat:
            raise CorrelateError("a sequence needs at least one transform")
        self.transforms = flat
        self.ndim = max(t.ndim for t in flat)
        self.is_linear = all(t.is_linear for t in flat)

    def _apply(self, p):
        for t in self.transforms:
            p = t.apply(p)
        return p

    def inverse(self):
        return Sequence([t.inverse() for t in reversed(self.transforms)])

    @property
    def matrix(self):
        if not self.is_linear:
            raise CorrelateError("sequence contains a non-linear transform and has no matrix")
        m = np.eye(self.ndim + 1)
        for t in self.transforms:
            tm = _embed(t.matrix, self.ndim)
            m = tm @ m
        return m

    def jacobian(self, points):
        p, _ = _as_points(points)
        j = np.broadcast_to(np.eye(self.ndim), (len(p), self.ndim, self.ndim)).copy()
        for t in self.transforms:
            jt = np.broadcast_to(np.eye(self.ndim), j.shape).copy()
            jt[:, : t.ndim, : t.ndim] = t.jacobian(p[:, : t.ndim])
            j = jt @ j
            p = t.apply(p)
        return j

    def _ngff_body(self):
        return {"type": "sequence", "transformations": [t.to_ngff() for t in self.transforms]}

    def __repr__(self):
        return f"Sequence({self.transforms!r})"


def _embed(m: np.ndarray, ndim: int) -> np.ndarray:
    d = m.shape[0] - 1
    if d == ndim:
        return m
    out = np.eye(ndim + 1)
    out[:d, :d] = m[:d, :d]
    out[:d, ndim] = m[:d, d]
    return out


def compose(*transforms: Transform) -> Transform:
    """Chain transforms, applied left to right; linear chains collapse to one :class:`Affine`."""
    ts = [t for t in transforms if not isinstance(t, Identity)]
    if not ts:
        return Identity(max((t.ndim for t in transforms), default=2))
    if len(ts) == 1:
        return ts[0]
    seq = Sequence(ts)
    return Affine(seq.matrix) if seq.is_linear else seq


def ngff_reader(*kinds: str) -> Callable[[_Reader], _Reader]:
    """Register ``reader(d, ndim) -> Transform`` for the NGFF transform ``type`` values ``kinds``."""

    def register(reader: _Reader) -> _Reader:
        for kind in kinds:
            _READERS[kind] = reader
        return reader

    return register


def from_ngff(d: dict, ndim: int | None = None) -> Transform:
    """Build a transform from NGFF 0.6 coordinateTransformation JSON.

    Supports identity, translation, scale, affine (inline, M x (N+1) or (N+1) x (N+1)),
    rotation, sequence, and correlate's thin-plate spline. ``ndim`` is needed for identity only.
    """
    kind = d.get("type")
    reader = _READERS.get(kind)
    if reader is None:
        raise CorrelateError(f"unsupported NGFF transform type {kind!r}", field="type")
    return reader(d, ndim)


@ngff_reader("identity")
def _identity_from_ngff(d: dict, ndim: int | None) -> Identity:
    return Identity(ndim or 2)


@ngff_reader("translation")
def _translation_from_ngff(d: dict, ndim: int | None) -> Translation:
    return Translation(ngff_to_xyz(np.asarray(d["translation"], float)))


@ngff_reader("scale")
def _scale_from_ngff(d: dict, ndim: int | None) -> Scale:
    return Scale(ngff_to_xyz(np.asarray(d["scale"], float)))


@ngff_reader("affine")
def _affine_from_ngff(d: dict, ndim: int | None) -> Affine:
    if "affine" not in d:
        raise CorrelateError("affine stored by path is not supported inline", field="affine")
    m = np.asarray(d["affine"], float)
    dd = m.shape[1] - 1
    return Affine(ngff_to_xyz(m[:dd]))


@ngff_reader("rotation")
def _rotation_from_ngff(d: dict, ndim: int | None) -> Affine:
    r = np.asarray(d["rotation"], float)
    return Affine.from_parts(ngff_to_xyz(r), np.zeros(r.shape[0]))


@ngff_reader("sequence")
def _sequence_from_ngff(d: dict, ndim: int | None) -> Sequence:
    return Sequence([from_ngff(t, ndim) for t in d["transformations"]])
