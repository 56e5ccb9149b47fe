"""Coordinate transforms between coordinate systems, all in nanometres.

Points are ``(N, D)`` arrays whose columns are ``x, y[, z]`` (the table order). NGFF stores axes
in the opposite order (``z, y, x``); :func:`xyz_to_ngff` / :func:`ngff_to_xyz` are the one place
that converts between the two, used by ``to_ngff`` / ``from_ngff``.

Every transform maps *source -> target*; an image is resampled with the inverse.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence as Seq

import numpy as np
import pandas as pd

from .errors import CorrelateError, ElementError

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

_AXES = "xyz"


# ----------------------------------------------------------------------------------------------
# The one helper between table order (x, y, z) and NGFF order (z, y, x)
# ----------------------------------------------------------------------------------------------
def xyz_to_ngff(a: np.ndarray, *, points: bool = False) -> np.ndarray:
    """Reorder between table order x, y[, z] and NGFF order (z,) y, x.

    ``a`` is a vector, a square (D, D) linear part, a (D, D+1) augmented matrix, or, with
    ``points=True``, an (N, D) array of points. The reordering is its own inverse, so
    :func:`ngff_to_xyz` is the same function.
    """
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        return a[::-1].copy()
    if points:
        return a[:, ::-1].copy()
    d = a.shape[0]
    if a.shape == (d, d):
        return a[::-1, ::-1].copy()
    if a.shape == (d, d + 1):
        out = np.empty_like(a)
        out[:, :d] = a[::-1, :d][:, ::-1]
        out[:, d] = a[::-1, d]
        return out
    raise ValueError(f"cannot reorder an array of shape {a.shape}; pass points=True for (N, D) points")


ngff_to_xyz = xyz_to_ngff


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


class _NonLinear(Transform):
    """Shared machinery of non-linear transforms: numerical inverse by Newton iteration."""

    is_linear = False

    def _linear_part(self) -> Affine:  # an affine approximation used to seed the inverse
        raise NotImplementedError

    def inverse(self) -> "Transform":
        return _NewtonInverse(self)


class _NewtonInverse(Transform):
    """Inverse of a non-linear transform, evaluated by Newton iterations (to 1e-9 nm)."""

    is_linear = False

    def __init__(self, forward: _NonLinear, tol: float = 1e-9, max_iter: int = 50) -> None:
        self.forward = forward
        self.ndim = forward.ndim
        self.tol = tol
        self.max_iter = max_iter
        self._seed = forward._linear_part().inverse()

    def _apply(self, q):
        p = self._seed.apply(q)
        for _ in range(self.max_iter):
            r = self.forward.apply(p) - q
            err = np.abs(r).max() if len(r) else 0.0
            if err < self.tol:
                break
            j = self.forward.jacobian(p)
            p = p - np.linalg.solve(j, r[..., None])[..., 0]
        else:
            raise CorrelateError(
                f"inverse of {type(self.forward).__name__} did not converge (max error {err:.3g} nm); "
                "the transform may fold over itself there"
            )
        return p

    def jacobian(self, points):
        p = self.apply(points)
        return np.linalg.inv(self.forward.jacobian(p))

    def inverse(self):
        return self.forward

    def _ngff_body(self):
        return {"type": "correlate:inverse", "transformation": self.forward.to_ngff()}


#: Points x centres x D elements a thin-plate spline evaluates at once (16 MiB of float64).
_TPS_BLOCK_ELEMENTS = 1 << 21


class ThinPlateSpline(_NonLinear):
    """Thin-plate spline through control points: ``f(p) = A p + t + sum_i w_i U(|p - c_i|)``.

    ``U(r) = r^2 log r`` in 2-D and ``U(r) = -r`` in 3-D (the biharmonic kernels).

    Parameters
    ----------
    centers
        (K, D) control point positions in the source system, nm.
    weights
        (K, D) kernel weights.
    affine
        (D, D+1) affine part ``[A | t]``, x, y[, z] order.
    smoothing
        The regularisation ``lambda`` the spline was fitted with (0 = interpolating).
    """

    def __init__(self, centers: np.ndarray, weights: np.ndarray, affine: np.ndarray, smoothing: float = 0.0) -> None:
        self.centers = np.asarray(centers, float)
        self.weights = np.asarray(weights, float)
        self.affine = np.asarray(affine, float)
        self.ndim = self.centers.shape[1]
        self.smoothing = float(smoothing)
        if self.weights.shape != self.centers.shape or self.affine.shape != (self.ndim, self.ndim + 1):
            raise CorrelateError("inconsistent thin-plate spline parameters")

    @staticmethod
    def _kernel(r: np.ndarray, ndim: int) -> np.ndarray:
        if ndim == 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(r > 0, r * r * np.log(np.where(r > 0, r, 1.0)), 0.0)
        return -r

    @classmethod
    def fit(
        cls,
        source: np.ndarray,
        target: np.ndarray,
        smoothing: float = 0.0,
        weights: np.ndarray | None = None,
    ) -> "ThinPlateSpline":
        """Fit a (smoothing) thin-plate spline mapping ``source`` to ``target`` points.

        Parameters
        ----------
        source, target
            (N, D) corresponding points, nm.
        smoothing
            Regularisation ``lambda`` (nm^2 per kernel unit); 0 interpolates exactly.
        weights
            (N,) relative confidence per point (e.g. inverse variance); the smoothing applied to
            point i is ``smoothing / weights[i]``.
        """
        src = np.asarray(source, float)
        dst = np.asarray(target, float)
        n, d = src.shape
        if n < d + 1:
            raise CorrelateError(f"a {d}-D thin-plate spline needs at least {d + 1} points, got {n}")
        r = np.linalg.norm(src[:, None, :] - src[None, :, :], axis=-1)
        k = cls._kernel(r, d)
        w = np.ones(n) if weights is None else np.asarray(weights, float)
        k = k + np.diag(smoothing / w)
        p = np.hstack([src, np.ones((n, 1))])
        a = np.zeros((n + d + 1, n + d + 1))
        a[:n, :n] = k
        a[:n, n:] = p
        a[n:, :n] = p.T
        b = np.zeros((n + d + 1, d))
        b[:n] = dst
        try:
            sol = np.linalg.solve(a, b)
        except np.linalg.LinAlgError as exc:
            raise CorrelateError(f"thin-plate spline system is singular (collinear or repeated points): {exc}") from exc
        wts = sol[:n]
        lin = sol[n:]  # (d+1, d): rows are x, y[, z], 1
        aff = np.hstack([lin[:d].T, lin[d][:, None]])
        return cls(src, wts, aff, smoothing)

    def _blocks(self, n: int):
        """Slices over ``n`` points such that a block's (points x centres x D) temporaries stay
        around 2**21 elements: a million localizations never allocate N x K x D at once."""
        step = max(1, _TPS_BLOCK_ELEMENTS // max(1, len(self.centers) * self.ndim))
        return (slice(s, s + step) for s in range(0, n, step))

    def _apply(self, p):
        out = np.empty((len(p), self.ndim))
        for sl in self._blocks(len(p)):
            q = p[sl]
            r = np.linalg.norm(q[:, None, :] - self.centers[None, :, :], axis=-1)
            out[sl] = q @ self.affine[:, : self.ndim].T + self.affine[:, self.ndim] + self._kernel(r, self.ndim) @ self.weights
        return out

    def jacobian(self, points):
        p, _ = _as_points(points)
        j = np.empty((len(p), self.ndim, self.ndim))
        for sl in self._blocks(len(p)):
            diff = p[sl, None, :] - self.centers[None, :, :]  # (n, K, D)
            r = np.linalg.norm(diff, axis=-1)
            if self.ndim == 2:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.where(r > 0, 2 * np.log(np.where(r > 0, r, 1.0)) + 1, 0.0)  # dU/dp = g * diff
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.where(r > 0, -1.0 / np.where(r > 0, r, 1.0), 0.0)
            grad = g[..., None] * diff  # (n, K, D)
            j[sl] = np.einsum("kd,nke->nde", self.weights, grad) + self.affine[:, : self.ndim][None]
        return j

    def _linear_part(self):
        return Affine(self.affine)

    def _ngff_body(self):
        # Not an NGFF transform type: stored in the store's 'correlate' extension (DESIGN.md).
        return {
            "type": "correlate:thin_plate_spline",
            "centers": xyz_to_ngff(self.centers, points=True).tolist(),
            "weights": xyz_to_ngff(self.weights, points=True).tolist(),
            "affine": xyz_to_ngff(self.affine).tolist(),
            "smoothing": self.smoothing,
        }

    def to_displacement_field(self, origin: Seq[float], spacing: Seq[float], shape: Seq[int]) -> "DisplacementField":
        """Sample the spline on a regular grid (origin, spacing in nm, shape in x, y[, z] order)."""
        return DisplacementField.from_function(self.apply, origin, spacing, shape)


class DisplacementField(_NonLinear):
    """``f(p) = p + d(p)`` with ``d`` sampled on a regular grid and interpolated linearly.

    Parameters
    ----------
    origin, spacing
        Grid position of sample 0 and step, nm, x, y[, z] order.
    displacements
        Array of shape (D, *grid) in NGFF order: components (z,) y, x along the first axis and
        grid axes (z,) y, x, i.e. exactly the NGFF ``displacements`` array layout.
    """

    def __init__(self, origin: Seq[float], spacing: Seq[float], displacements: np.ndarray) -> None:
        self.origin = np.asarray(origin, float)
        self.spacing = np.asarray(spacing, float)
        self.displacements = np.asarray(displacements, float)
        self.ndim = self.origin.size
        if self.displacements.shape[0] != self.ndim or self.displacements.ndim != self.ndim + 1:
            raise CorrelateError(f"displacement array shape {self.displacements.shape} does not fit {self.ndim}-D")

    @classmethod
    def from_function(cls, f, origin, spacing, shape) -> "DisplacementField":
        """Sample ``f(p) - p`` on a grid (origin, spacing nm and shape in x, y[, z] order)."""
        origin = np.asarray(origin, float)
        spacing = np.asarray(spacing, float)
        shape = tuple(int(s) for s in shape)
        axes = [origin[i] + spacing[i] * np.arange(shape[i]) for i in range(len(shape))]
        grids = np.meshgrid(*axes[::-1], indexing="ij")  # NGFF order (z,) y, x
        pts = np.column_stack([g.ravel() for g in grids[::-1]])  # back to x, y[, z]
        disp = f(pts) - pts
        comps = [disp[:, i].reshape(grids[0].shape) for i in range(len(shape))][::-1]
        return cls(origin, spacing, np.stack(comps))

    def _displacement(self, p):
        from scipy.ndimage import map_coordinates

        idx = (p - self.origin) / self.spacing  # x, y[, z] fractional indices
        coords = idx[:, ::-1].T  # NGFF order for the grid axes
        comps = [map_coordinates(self.displacements[k], coords, order=1, mode="nearest") for k in range(self.ndim)]
        return np.column_stack(comps[::-1])

    def _apply(self, p):
        return p + self._displacement(p)

    def jacobian(self, points):
        p, _ = _as_points(points)
        j = np.empty((len(p), self.ndim, self.ndim))
        for i in range(self.ndim):
            h = np.zeros(self.ndim)
            h[i] = self.spacing[i] * 0.5
            j[:, :, i] = (self._apply(p + h) - self._apply(p - h)) / (2 * h[i])
        return j

    def _linear_part(self):
        return Identity(self.ndim)

    def _ngff_body(self):
        return {
            "type": "displacements",
            "correlate:origin": xyz_to_ngff(self.origin).tolist(),
            "correlate:spacing": xyz_to_ngff(self.spacing).tolist(),
        }


def from_ngff(d: dict, ndim: int | None = None) -> Transform:
    """Build a transform from NGFF 0.6 coordinateTransformation JSON.

    Supports identity, translation, scale, affine (inline, M x (N+1) or (N+1) x (N+1)),
    rotation, sequence, and correlate's thin-plate spline. ``ndim`` is needed for identity only.
    """
    kind = d.get("type")
    if kind == "identity":
        return Identity(ndim or 2)
    if kind == "translation":
        return Translation(ngff_to_xyz(np.asarray(d["translation"], float)))
    if kind == "scale":
        return Scale(ngff_to_xyz(np.asarray(d["scale"], float)))
    if kind == "affine":
        if "affine" not in d:
            raise CorrelateError("affine stored by path is not supported inline", field="affine")
        m = np.asarray(d["affine"], float)
        dd = m.shape[1] - 1
        return Affine(ngff_to_xyz(m[:dd]))
    if kind == "rotation":
        r = np.asarray(d["rotation"], float)
        return Affine.from_parts(ngff_to_xyz(r), np.zeros(r.shape[0]))
    if kind == "sequence":
        ts = [from_ngff(t, ndim) for t in d["transformations"]]
        return Sequence(ts)
    if kind == "correlate:thin_plate_spline":
        return ThinPlateSpline(
            ngff_to_xyz(np.asarray(d["centers"], float), points=True),
            ngff_to_xyz(np.asarray(d["weights"], float), points=True),
            ngff_to_xyz(np.asarray(d["affine"], float)),
            d.get("smoothing", 0.0),
        )
    if kind == "correlate:inverse":
        return from_ngff(d["transformation"], ndim).inverse()
    raise CorrelateError(f"unsupported NGFF transform type {kind!r}", field="type")
