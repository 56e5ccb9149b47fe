"""Particle segmentation in EM micrographs and AFM height maps.

EM (projected-thickness contrast)
---------------------------------
1. Contrast: ``contrast="log"`` turns intensities into ``s = log(background) - log(I)``, which is
   ``mu * t`` (attenuation times projected thickness) for dark particles (Beer-Lambert); for bright
   particles the sign flips. ``contrast="linear"`` uses ``(I - background) / background``.
   The background is estimated on a coarse grid (median of blocks of ``background_nm``, iteratively
   ignoring particle pixels), smoothed and interpolated back: uneven illumination, ramps and slow
   undulations are flattened without touching structures smaller than a block.
2. Detection: the flattened signal is smoothed (Gaussian, ``smooth_nm``) and thresholded
   (``threshold="noise"``: ``k_sigma`` times the robust noise of the smoothed signal; ``"otsu"``;
   ``"local"``: Sauvola-like local threshold; or a number in signal units).
3. Touching particles are split by a watershed on the distance transform of the mask, seeded by
   its h-maxima (``min_separation_nm``).
4. Boundary: each particle is re-thresholded at ``edge_fraction`` (default 0.5, the local
   half-maximum) of its own peak; the peak is estimated from the mean signal in the inner half of
   the particle (robust to noise, unlike the maximum). For ``shape_model="sphere"`` (ellipsoids
   too) the contour at a fraction f of the peak of a projected sphere of radius R sits at
   ``R sqrt(1 - f^2)`` (a similar ellipse for ellipsoids), and Gaussian blur (the image PSF plus our
   smoothing) moves it further in; both are inverted with a numerically computed model, so the
   reported sizes are those of the physical object. ``shape_model="flat"`` takes the half-maximum
   contour as the edge (flat-topped objects). The label image stores each particle out to its
   model edge.
5. Gold fiducials (option ``exclude_fiducials``): an object whose attenuation per nm of thickness
   (peak / diameter) exceeds ``fiducial_ratio`` times the median of all objects is gold, not a
   particle; it is removed from the labels and reported in ``Segmentation.fiducials``.

Large EM images are segmented in blocks with overlap
(:func:`correlate.analysis._segment_tiled.segment_em_tiled`; the particle pipeline does so
above its memory budget, ``segmentation={"memory_budget": "2GiB", "block_px": ...}``) with
labels equal to the whole-image run: image-wide statistics come from a regular sub-grid of at
most 2^22 pixels in both paths, every per-particle iteration stops per particle, and particles
are numbered 1..N by their first pixel in raster order.

AFM (height maps, value unit nm)
--------------------------------
Levelling (``level="plane"``, ``"line"`` or ``"plane+line"``): a least-squares plane, then the
median of each scan line, both over background pixels only (particles masked, iterated); heights
are then above the substrate. Particles are pixels higher than ``threshold_nm`` (default
``max(1 nm, k_sigma * noise)``), split by watershed as above. AFM sizes are tip-broadened; heights
are not (for particles wider than the tip): they come from an apex fit on the levelled, unsmoothed
map (:mod:`correlate.analysis._afm_heights`), kept in ``Segmentation.height``.

Fiducials (both modalities)
---------------------------
An object is a fiducial because it is one: ``exclude_at`` gives positions (nm, the image's own
frame) of known fiducials, typically the landmarks a registration of this image paired, or the
user's; an object containing such a position, or whose centroid lies within its equivalent radius
(plus one pixel) of it, is reported in ``Segmentation.fiducials`` and not labelled. Shape alone
does not tell gold from hard particles in AFM (silica, polymer and metal-core particles keep their
height as gold does); the height / width rule is available only on request
(``fiducial_height_ratio``). EM keeps its contrast rule (gold attenuates far more per nm).
"""

from __future__ import annotations

from ..errors import ElementError
from ._segment_afm import level_afm, segment_afm
from ._segment_em import segment_em
from ._segmentation import Segmentation

__all__ = ["Segmentation", "level_afm", "segment_afm", "segment_em", "segment_particles"]


def segment_particles(image, *, modality: str | None = None, **kwargs) -> Segmentation:
    """Segment particles in an EM micrograph or an AFM height map.

    Dispatches on ``modality`` (default ``image.attrs['modality']``) to :func:`segment_em`
    (``"em"``) or :func:`segment_afm` (``"afm"``); keyword arguments go to that function.

    Returns
    -------
    Segmentation
        ``labels`` (int32 xarray on the image grid), the flattened ``signal``, recognised
        ``fiducials`` and diagnostics.
    """
    mod = modality or image.attrs.get("modality")
    if mod == "afm":
        return segment_afm(image, **kwargs)
    if mod in ("em", None, "lm", "sim", "sted"):
        return segment_em(image, **kwargs)
    raise ElementError(f"cannot segment particles in a {mod!r} image; expected 'em' or 'afm'", field=str(image.name))
