"""Non-linear transforms: the thin-plate spline, the displacement field and their Newton inverse."""

from __future__ import annotations

from typing import Sequence as Seq

import numpy as np

from ..errors import CorrelateError
from .axes import ngff_to_xyz, xyz_to_ngff
from .linear import Affine, Identity, Transform, _as_points, from_ngff, ngff_reader

__all__ = ["DisplacementField", "ThinPlateSpline"]


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



@ngff_reader("correlate:thin_plate_spline")
def _tps_from_ngff(d: dict, ndim: int | None) -> ThinPlateSpline:
    return ThinPlateSpline(
        ngff_to_xyz(np.asarray(d["centers"], float), points=True),
        ngff_to_xyz(np.asarray(d["weights"], float), points=True),
        ngff_to_xyz(np.asarray(d["affine"], float)),
        d.get("smoothing", 0.0),
    )


@ngff_reader("correlate:inverse")
def _inverse_from_ngff(d: dict, ndim: int | None) -> Transform:
    return from_ngff(d["transformation"], ndim).inverse()
