"""Fourier ring correlation (FRC) resolution of an SMLM rendering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["FrcResult", "frc", "frc_curve"]


@dataclass
class FrcResult:
    """Result of :func:`frc`.

    Attributes
    ----------
    resolution_nm
        1 / (spatial frequency where the smoothed FRC first drops below the threshold), nm;
        NaN if it never does within the sampled frequencies.
    frequency
        (R,) ring spatial frequencies, 1/nm.
    frc, frc_smoothed
        (R,) the FRC curve and its smoothed version.
    threshold
        The threshold used (1/7).
    pixel_size_nm, split
        Rendering pixel and how the localizations were split.
    """

    resolution_nm: float
    frequency: np.ndarray
    frc: np.ndarray
    frc_smoothed: np.ndarray
    threshold: float
    pixel_size_nm: float
    split: str

    def as_dict(self) -> dict:
        return {"frc_resolution_nm": self.resolution_nm, "frc_pixel_size_nm": self.pixel_size_nm,
                "frc_split": self.split}


def _render(xy: np.ndarray, lo: np.ndarray, px: float, shape: tuple[int, int]) -> np.ndarray:
    ix = ((xy[:, 0] - lo[0]) / px).astype(np.int64)
    iy = ((xy[:, 1] - lo[1]) / px).astype(np.int64)
    ok = (ix >= 0) & (ix < shape[1]) & (iy >= 0) & (iy < shape[0])
    return np.bincount(iy[ok] * shape[1] + ix[ok], minlength=shape[0] * shape[1]).astype(np.float64).reshape(shape)


def frc_curve(img1: np.ndarray, img2: np.ndarray, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """FRC between two square images: (frequency 1/nm, FRC) per ring of one frequency pixel.

    A Tukey window (10 % taper) suppresses the edges before the FFT.
    """
    import scipy.fft as sfft
    from scipy.signal.windows import tukey

    n = img1.shape[0]
    if img1.shape != img2.shape or img1.shape[0] != img1.shape[1]:
        raise CorrelateError(f"FRC needs two square images of one shape, got {img1.shape} and {img2.shape}")
    win = np.outer(tukey(n, 0.1), tukey(n, 0.1)).astype(np.float32)
    f1 = np.fft.fftshift(sfft.fft2(np.asarray(img1, np.float32) * win))
    f2 = np.fft.fftshift(sfft.fft2(np.asarray(img2, np.float32) * win))
    y, x = np.indices((n, n)) - n // 2
    r = np.round(np.hypot(x, y)).astype(np.int64).ravel()
    nr = n // 2
    m = r < nr
    num = np.bincount(r[m], (f1 * np.conj(f2)).real.ravel()[m].astype(np.float64), nr)
    d1 = np.bincount(r[m], (np.abs(f1) ** 2).ravel()[m].astype(np.float64), nr)
    d2 = np.bincount(r[m], (np.abs(f2) ** 2).ravel()[m].astype(np.float64), nr)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = num / np.sqrt(d1 * d2)
    freq = np.arange(nr) / (n * pixel_size)
    return freq, curve


def frc(
    df: pd.DataFrame,
    *,
    pixel_size: float | None = None,
    split: str = "blocks",
    n_blocks: int = 20,
    threshold: float = 1.0 / 7.0,
    roi: tuple[float, float, float, float] | None = None,
    seed: int = 0,
    smoothing: float = 0.02,
    max_pixels: int = 4096,
    exclude_fiducials: bool = True,
) -> FrcResult:
    """Fourier ring correlation resolution of the localizations' rendering.

    The localizations are split in two halves, each rendered as a histogram; the FRC of the
    two renderings is smoothed and the resolution is 1 / the frequency of its first crossing
    below ``threshold`` (1/7, Nieuwenhuizen et al. 2013).

    Parameters
    ----------
    df
        Localizations (x, y nm; frame for ``split="blocks"``).
    pixel_size
        Rendering pixel (nm). Default ``clip(median precision / 2, 2, 10)`` nm (5 nm without a
        precision column), enlarged so the image is at most ``max_pixels`` across.
    split
        ``"blocks"``: alternate blocks of consecutive frames (``n_blocks`` blocks), so repeated
        localizations of one blink land in the same half and do not fake resolution;
        ``"random"``: a random half of the localizations (optimistic with unmerged blinks).
    threshold
        FRC threshold (default 1/7).
    roi
        (x0, y0, x1, y1) nm; default the bounding box of all localizations (square).
    smoothing
        Width of the Gaussian that smooths the curve, as a fraction of the frequency range.
    exclude_fiducials
        Leave out persistent emitters (beads are not the sample, and being in both halves in
        almost every frame they would inflate the correlation).

    Returns
    -------
    FrcResult
    """
    from scipy.ndimage import gaussian_filter1d

    if exclude_fiducials and "frame" in df.columns and len(df):
        from ._fiducials import fiducial_mask

        df = df.loc[~fiducial_mask(df)]
    if len(df) < 100:
        raise CorrelateError(f"FRC needs at least 100 localizations, got {len(df)}")
    xy = df[["x", "y"]].to_numpy(float)
    if split == "blocks":
        if "frame" not in df.columns:
            raise CorrelateError("split='blocks' needs a 'frame' column; use split='random'", field="frame")
        fr = df["frame"].to_numpy(np.int64)
        f0, f1 = fr.min(), fr.max() + 1
        blk = ((fr - f0) * n_blocks) // max(f1 - f0, 1)
        half = (blk % 2).astype(bool)
    elif split == "random":
        half = np.random.default_rng(seed).random(len(df)) < 0.5
    else:
        raise CorrelateError(f"unknown FRC split {split!r}; expected 'blocks' or 'random'", field="split")
    if half.all() or (~half).all():
        raise CorrelateError("FRC split left one half empty (too few frames for frame blocks)", field="frame")
    if roi is None:
        lo = xy.min(0)
        side = float((xy.max(0) - lo).max()) + 1e-6
    else:
        lo = np.array(roi[:2], float)
        side = float(max(roi[2] - roi[0], roi[3] - roi[1]))
    if pixel_size is None:
        if "precision" in df.columns:
            pixel_size = float(np.clip(np.nanmedian(df["precision"].to_numpy(float)) / 2.0, 2.0, 10.0))
        else:
            pixel_size = 5.0
    pixel_size = max(float(pixel_size), side / max_pixels)
    n = int(np.ceil(side / pixel_size))
    n += n % 2
    img1 = _render(xy[half], lo, pixel_size, (n, n))
    img2 = _render(xy[~half], lo, pixel_size, (n, n))
    freq, curve = frc_curve(img1, img2, pixel_size)
    c = np.nan_to_num(curve, nan=0.0)
    sm = gaussian_filter1d(c, max(smoothing * len(c), 1.0), mode="nearest")
    # first crossing below threshold after the curve has been above it (skip the DC ring)
    above = sm >= threshold
    res = float("nan")
    start = int(np.argmax(above[1:])) + 1 if above[1:].any() else None
    if start is not None:
        below = np.flatnonzero(~above[start:])
        if below.size:
            k = start + int(below[0])
            # linear interpolation between rings k-1 and k
            y0, y1 = sm[k - 1], sm[k]
            t = (y0 - threshold) / (y0 - y1) if y0 != y1 else 0.0
            fq = freq[k - 1] + t * (freq[k] - freq[k - 1])
            res = float(1.0 / fq) if fq > 0 else float("nan")
    return FrcResult(res, freq, curve, sm, float(threshold), float(pixel_size), split)
