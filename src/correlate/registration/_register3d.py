"""3-D registration from fiducial tables with z: any-pose pairing, weighted 3-D fits, 3-D TRE.

The fits are those of 2-D registration in three dimensions (:func:`fit_landmarks`: weighted
errors-in-variables rigid / similarity / affine with anisotropic per-fiducial covariances, a
reflection when pairing found the frames mirrored, the excess fiducial error and model choice);
the predicted TRE is first-order covariance propagation through the fitted parameters, which for a
rigid fit with isotropic FLE is Fitzpatrick-West and here carries anisotropic, per-fiducial FLE
(astigmatic z, a tomogram's z elongation). The transform is a 3-D
:class:`~correlate.transforms.Affine` (moving -> fixed), stored like any other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..elements import Landmarks
from ..errors import RegistrationError
from ._fiducials import fiducial_arrays
from ._select import Registration, fit_landmarks

__all__ = ["register_points_3d"]


def register_points_3d(moving: pd.DataFrame, fixed: pd.DataFrame, *, model: str = "auto",
                       scale_range: tuple[float, float] | None = None, allow_mirror: bool = True,
                       alpha: float = 0.01, reject_outliers: bool = True, excess_fle_nm: float | None = None,
                       moving_name: str = "moving", fixed_name: str = "fixed", **pairing_kwargs) -> Registration:
    """Pair two 3-D fiducial tables in any pose and fit the moving -> fixed 3-D transform.

    Parameters
    ----------
    moving, fixed
        Fiducial tables with ``x, y, z`` (nm) and ``cov_xx .. cov_zz`` (nm^2), e.g. from
        :func:`detect_volume_beads` and :func:`detect_smlm_fiducials`, each in its own frame.
    model
        ``"auto"`` (simplest adequate model) or ``"translation"``, ``"rigid"``,
        ``"similarity"``, ``"affine"``.
    scale_range, allow_mirror
        Pairing: scale fixed/moving searched (None: 0.25-4) and whether a mirror is accepted.
    excess_fle_nm
        Systematic per-fiducial error (nm per axis); None: estimated (see :func:`fit_landmarks`).
    pairing_kwargs
        Further options of :func:`~correlate.registration._pairing3d.pair_points_3d`.

    Returns
    -------
    Registration
        ``fit.ndim == 3``; ``mirrored`` and ``pairing`` as for 2-D.
    """
    from ._pairing3d import pair_points_3d

    for name, df in (("moving", moving), ("fixed", fixed)):
        if "z" not in df.columns:
            raise RegistrationError(f"the {name} fiducials have no z column: 3-D registration needs x, y, z",
                                    field="z", stage="pairing", hint="register_points for 2-D")
    xs, cs = fiducial_arrays(moving, 3)
    ys, ct = fiducial_arrays(fixed, 3)
    pairing = pair_points_3d(xs, ys, cs, ct, scale_range=scale_range, allow_mirror=allow_mirror, **pairing_kwargs)
    ids = np.array([f"{i}:{j}" for i, j in zip(pairing.source_index, pairing.target_index)], dtype=object)
    lm = Landmarks(xs[pairing.source_index], ys[pairing.target_index], cs[pairing.source_index],
                   ct[pairing.target_index], ids=ids, source_system=moving_name, target_system=fixed_name)
    reg = fit_landmarks(lm, model, alpha=alpha, reject_outliers=reject_outliers, reflection=pairing.mirrored,
                        excess_fle_nm=excess_fle_nm)
    reg.mirrored = bool(pairing.mirrored)
    reg.notes += pairing.notes
    reg.pairing = {"method": pairing.method, "mirrored": bool(pairing.mirrored),
                   "n_hypotheses": int(pairing.n_hypotheses), "n_detected_moving": len(xs),
                   "n_detected_fixed": len(ys), "n_pairs": len(pairing),
                   "moving_index": pairing.source_index.tolist(), "fixed_index": pairing.target_index.tolist(),
                   "diagnostics": pairing.diagnostics}
    return reg
