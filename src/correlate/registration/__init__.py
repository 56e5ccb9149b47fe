"""Fiducial-based registration with predicted error.

Detection (beads / gold in images, persistent emitters in SMLM tables) with a covariance per
fiducial; pairing without clicks in any pose (triangle-shape similarity hypotheses for both
handednesses, accepted against chance, then a gated Hungarian assignment); weighted fits (translation, rigid, similarity, affine, smoothing thin-plate spline);
error (FRE, first-order predicted TRE anywhere, leave-one-out, chi-square model choice, outlier
flags); BigWarp / matrix / NGFF export; optional SimpleITK intensity refinement.

Every position is in nm, every covariance in nm^2; transforms map *moving -> fixed*.

>>> from correlate.registration import register_elements
>>> reg = register_elements(smlm_table, em_image)        # doctest: +SKIP
>>> print(reg.summary())                                   # doctest: +SKIP
"""

from ._detect_image import BEAD_DEFAULTS, detect_beads, fit_gaussians
from ._detect_smlm import detect_smlm_fiducials
from ._detect_volume import detect_volume_beads
from ._pairing3d import pair_points_3d
from ._register3d import register_points_3d
from ._error import containment_radius, loo_residuals, tre_map
from ._fiducials import fiducial_arrays, fiducial_table
from ._fit import (
    LINEAR_MODELS,
    MODELS,
    Fit,
    fit_model,
    min_pairs,
    model_jacobian,
    n_params,
)
from ._io import (
    read_affine_text,
    read_bigwarp_csv,
    read_landmarks_file,
    read_pairs_csv,
    write_affine_text,
    write_bigwarp_csv,
)
from ._pairing import Pairing, pair_points
from ._persistent import PersistentEmitters, find_persistent_emitters
from ._register import (
    detect_fiducials,
    field_points,
    register_elements,
    register_points,
    register_scene,
    registration_record,
)
from ._select import Registration, fit_landmarks, flag_outliers, select_model
from ._tps import tps_smoother

__all__ = [
    "BEAD_DEFAULTS",
    "LINEAR_MODELS",
    "MODELS",
    "Fit",
    "Pairing",
    "PersistentEmitters",
    "Registration",
    "containment_radius",
    "detect_beads",
    "detect_fiducials",
    "detect_smlm_fiducials",
    "fiducial_arrays",
    "fiducial_table",
    "field_points",
    "fit_gaussians",
    "fit_landmarks",
    "fit_model",
    "find_persistent_emitters",
    "flag_outliers",
    "loo_residuals",
    "min_pairs",
    "model_jacobian",
    "n_params",
    "pair_points",
    "read_affine_text",
    "read_bigwarp_csv",
    "read_landmarks_file",
    "read_pairs_csv",
    "register_elements",
    "register_points",
    "register_scene",
    "registration_record",
    "select_model",
    "tps_smoother",
    "tre_map",
    "write_affine_text",
    "write_bigwarp_csv",
    "detect_volume_beads",
    "pair_points_3d",
    "register_points_3d",
]
