"""Assignment of 3-D localizations to particles segmented in a volume, and z per 2-D particle.

A localization at ``p`` (nm, the volume's frame) with covariance ``Sigma`` (its precision, mapped
into that frame, anisotropic: astigmatic z is 2-3x worse than x, y) is compared with every
particle surface near it: at the nearest vertex ``v`` of that particle's marching-cubes surface
(outward normal ``n``) its signed distance is ``s = (p - v) . n`` with variance
``sigma_n^2 = n^T Sigma n + tre^2``. The label sits ``linker_nm`` outside the surface, so
``z = (s - linker_nm) / sigma_n`` is standard normal for a label of that particle. A point is in a
particle's shell when ``|z| <= n_sigma``; in the shells of two particles it goes to the one with
the clearly smaller ``|z|`` (by more than ``resolve``), else it is *ambiguous* (flagged, not
counted); outside every shell it is unassigned. ``linker_nm`` is estimated from the data unless
given: the median signed distance of the points near a surface, iterated in a window of the
points' own spread. Candidates come from one KD-tree query over the surface vertices (no loop
over localizations or particles).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["assign_localizations_3d", "fiducial_tracks_3d", "localization_cov", "particles_3d", "z_per_particle"]


def localization_cov(locs: pd.DataFrame, transform=None) -> np.ndarray:
    """(N, 3, 3) covariance (nm^2) of each localization from ``precision_x/_y/_z`` (or ``precision``
    laterally with ``precision_z``), mapped through ``transform`` (e.g. SMLM -> EM) when given."""
    n = len(locs)
    if "precision_x" in locs:
        sx, sy = locs["precision_x"].to_numpy(float), locs.get("precision_y", locs["precision_x"]).to_numpy(float)
    elif "precision" in locs:
        sx = sy = locs["precision"].to_numpy(float)
    else:
        raise CorrelateError("3-D assignment needs precision_x/_y/_z (or precision and precision_z) columns",
                             field="precision")
    if "precision_z" not in locs:
        raise CorrelateError("3-D assignment needs a precision_z column (nm)", field="precision_z")
    sz = locs["precision_z"].to_numpy(float)
    cov = np.zeros((n, 3, 3))
    cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2] = sx**2, sy**2, sz**2
    if transform is not None:
        cov = transform.propagate_covariance(locs[["x", "y", "z"]].to_numpy(float), cov)
    return cov


def _signed(points, cov, tre2, verts, normals, vlab, k: int):
    """Per point and per candidate vertex: label, signed normal distance s and its sigma."""
    from scipy.spatial import cKDTree

    k = int(min(k, len(verts)))
    _, idx = cKDTree(verts).query(points, k=k)
    idx = idx.reshape(len(points), k)
    nrm = normals[idx]
    s = np.einsum("nkd,nkd->nk", points[:, None, :] - verts[idx], nrm)
    var = np.einsum("nki,nij,nkj->nk", nrm, cov, nrm) + tre2[:, None]
    return vlab[idx], s, np.sqrt(np.maximum(var, 1e-12))


def _per_label_best(lab, s, sig, offset: float):
    """For each point: its two best labels by |z| (one vertex per label: the nearest, listed first)."""
    n, k = lab.shape
    z = (s - offset) / sig
    # the first (nearest) vertex of each label stands for that label's surface
    first = np.ones_like(lab, bool)
    for j in range(1, k):  # k ~ 24 columns, vectorised over points
        first[:, j] = ~(lab[:, :j] == lab[:, j : j + 1]).any(1)
    az = np.where(first & (lab > 0), np.abs(z), np.inf)
    order = np.argsort(az, axis=1)
    rows = np.arange(n)
    b1, b2 = order[:, 0], order[:, 1] if k > 1 else order[:, 0]
    z2 = az[rows, b2] if k > 1 else np.full(n, np.inf)
    return lab[rows, b1], az[rows, b1], z2, s[rows, b1], sig[rows, b1]


def _estimate_linker(s_near: np.ndarray, sig_near: np.ndarray) -> float:
    """Median signed distance of the points near a surface, in a window of their own spread."""
    ok = np.isfinite(s_near)
    s, sg = s_near[ok], sig_near[ok]
    if len(s) < 10:
        raise CorrelateError(f"only {len(s)} localizations near any particle surface: cannot estimate the "
                             "label offset; give linker_nm=", field="linker_nm")
    off = 0.0
    w = 3.0 * float(np.median(sg)) + 0.5 * float(np.percentile(np.abs(s), 25))
    for _ in range(8):
        sel = np.abs(s - off) < w
        if sel.sum() < 10:
            break
        off = float(np.median(s[sel]))
        w = 3.0 * float(np.median(sg[sel]))
    return off


def assign_localizations_3d(points, labels, voxel_nm, origin_nm=(0.0, 0.0, 0.0), *, cov=None,
                            linker_nm: float | None = None, n_sigma: float = 3.0, tre_nm=0.0,
                            resolve: float = 1.0, exclude=None, k: int = 24, mesh=None) -> pd.DataFrame:
    """Assign 3-D points to the particles of a label volume.

    Parameters
    ----------
    points
        (N, 3) x, y, z (nm) in the volume's frame.
    labels, voxel_nm, origin_nm
        (nz, ny, nx) particle labels, voxel size and origin (x, y, z nm).
    cov
        (N, 3, 3) localization covariances in the volume's frame (nm^2; see
        :func:`localization_cov`), (3, 3), or None (zero).
    linker_nm
        Label offset outside the surface (nm); None: estimated from the data.
    n_sigma
        Half-width of the shell in normal standard deviations.
    tre_nm
        Predicted registration error (RMS per axis, nm): scalar or (N,).
    resolve
        A point in two shells goes to the one whose ``|z|`` is smaller by more than this.
    exclude
        (N,) bool: points never assigned (fiducial tracks).
    mesh
        A precomputed :func:`~correlate.analysis._morphology3d.surface_mesh` result.

    Returns
    -------
    pandas.DataFrame
        Per point: ``particle`` (label, 0 none), ``ambiguous``, ``surface_distance_nm`` (signed,
        outside positive, to the assigned/nearest surface), ``z_score``; ``attrs["estimated"]``
        holds ``linker_nm`` and counts, ``attrs["source"]`` its source.
    """
    from ._morphology3d import surface_mesh

    p = np.asarray(points, float).reshape(-1, 3)
    n = len(p)
    c = np.zeros((n, 3, 3)) if cov is None else np.broadcast_to(np.asarray(cov, float), (n, 3, 3))
    tre2 = np.broadcast_to(np.nan_to_num(np.asarray(tre_nm, float)) ** 2, (n,)).astype(float)
    verts, normals, vlab, _, _ = mesh if mesh is not None else surface_mesh(labels, voxel_nm, origin_nm)
    out = pd.DataFrame({"particle": np.zeros(n, np.int64), "ambiguous": np.zeros(n, bool),
                        "surface_distance_nm": np.full(n, np.nan), "z_score": np.full(n, np.nan)})
    if n == 0 or len(verts) == 0:
        out.attrs["estimated"] = {"linker_nm": float("nan") if linker_nm is None else linker_nm}
        return out
    lab, s, sig = _signed(p, c, tre2, verts, normals, vlab, k)
    src = "user"
    if linker_nm is None:
        use = np.ones(n, bool) if exclude is None else ~np.asarray(exclude, bool)
        linker_nm, src = _estimate_linker(s[use, 0], sig[use, 0]), "estimated"
    best, z1, z2, s1, _ = _per_label_best(lab, s, sig, float(linker_nm))
    in1, in2 = z1 <= n_sigma, z2 <= n_sigma
    clear = (z2 - z1) > resolve
    one = in1 & (~in2 | clear)
    if exclude is not None:
        one &= ~np.asarray(exclude, bool)
    out["particle"] = np.where(one, best, 0).astype(np.int64)
    out["ambiguous"] = in1 & in2 & ~clear & (True if exclude is None else ~np.asarray(exclude, bool))
    out["surface_distance_nm"] = s1
    out["z_score"] = np.where(np.isfinite(z1), z1, np.nan)
    out.attrs["estimated"] = {"linker_nm": float(linker_nm), "n_sigma": n_sigma, "n_assigned": int(one.sum()),
                              "n_ambiguous": int(out["ambiguous"].sum())}
    out.attrs["source"] = {"linker_nm": src}
    return out


def z_per_particle(particle, z, precision_z=None, n_particles: int | None = None) -> pd.DataFrame:
    """z of each particle's assigned localizations (2-D structures with z kept as a property).

    Parameters
    ----------
    particle
        (N,) particle index of each localization (row index >= 0, or label; < 0 or unassigned
        values are left out; use ``n_particles`` for the table length).
    z, precision_z
        (N,) z (nm) and its precision (nm; weights ``1 / precision_z^2``), optional.

    Returns
    -------
    pandas.DataFrame
        Indexed by particle: ``n_z``, ``z_mean_nm``, ``z_median_nm``, ``z_std_nm``, ``z_min_nm``,
        ``z_max_nm``, ``z_wmean_nm`` and ``z_wmean_se_nm``; NaN where a particle has none.
    """
    pi = np.asarray(particle, np.int64)
    zz = np.asarray(z, float)
    ok = (pi >= 0) & np.isfinite(zz)
    m = int(n_particles if n_particles is not None else (pi.max() + 1 if pi.size else 0))
    df = pd.DataFrame({"p": pi[ok], "z": zz[ok]})
    w = None if precision_z is None else 1.0 / np.asarray(precision_z, float)[ok] ** 2
    g = df.groupby("p")["z"]
    out = pd.DataFrame(index=pd.RangeIndex(m, name="particle"))
    out["n_z"] = g.size().reindex(out.index, fill_value=0).astype(np.int64)
    for name, ser in (("mean", g.mean()), ("median", g.median()), ("std", g.std()), ("min", g.min()),
                      ("max", g.max())):
        out[f"z_{name}_nm"] = ser.reindex(out.index)
    if w is not None:
        sw = np.bincount(pi[ok], weights=w, minlength=m)[:m]
        swz = np.bincount(pi[ok], weights=w * zz[ok], minlength=m)[:m]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["z_wmean_nm"] = np.where(sw > 0, swz / sw, np.nan)
            out["z_wmean_se_nm"] = np.where(sw > 0, 1 / np.sqrt(sw), np.nan)
    return out


def fiducial_tracks_3d(locs: pd.DataFrame, **kwargs) -> np.ndarray:
    """(N,) bool: localizations of fiducial tracks, told apart in 3-D.

    The fiducials are those of the one persistent-emitter detector
    (:func:`~correlate.registration.find_persistent_emitters`, ``**kwargs`` its parameters); a
    localization sharing a fiducial's place and time in x, y is flagged only when it also lies
    within the 99.9 % chi-square gate of that fiducial's 3-D centre (with its own covariance),
    so labels above or below a bead are kept.
    """
    from scipy.spatial import cKDTree
    from scipy.stats import chi2

    from ..registration._persistent import find_persistent_emitters

    n = len(locs)
    if n == 0 or "frame" not in locs.columns:
        return np.zeros(n, bool)
    res = find_persistent_emitters(locs, **kwargs)
    own = res.labels >= 0
    cand = res.members & ~own
    if not cand.any() or res.centers.shape[1] < 3 or len(res.centers) == 0:
        return own | res.members
    pts = locs.loc[cand, ["x", "y", "z"]].to_numpy(float)
    _, j = cKDTree(res.centers[:, :2]).query(pts[:, :2])
    d = pts - res.centers[j]
    c = localization_cov(locs.loc[cand]) + res.cov[j]
    d2 = np.einsum("ni,nij,nj->n", d, np.linalg.inv(c), d)
    out = own.copy()
    out[np.flatnonzero(cand)] = d2 <= chi2.ppf(0.999, 3)
    return out


def particles_3d(segmentation, locs: pd.DataFrame, *, transform=None, label: str = "label",
                 linker_nm: float | None = None, n_sigma: float = 3.0, tre_nm=0.0, exclude=None):
    """Per-particle 3-D table: morphology of a :class:`VolumeSegmentation` joined with a label's
    localizations assigned in 3-D.

    Parameters
    ----------
    segmentation
        :func:`~correlate.analysis.segment_volume` result (the volume's frame, nm).
    locs
        Localizations with ``x, y, z`` and ``precision_x/_y/_z`` (nm), in their own frame.
    transform
        Their frame -> the volume's frame (e.g. a 3-D registration's transform); None: same frame.
    exclude
        (N,) bool fiducial localizations; None: the persistent-emitter detector's tracks
        (:func:`fiducial_tracks_3d`) when a ``frame`` column exists.

    Returns
    -------
    (table, assignment)
        The morphology table plus ``n_localizations_<label>``, ``z_mean_nm_<label>`` (mean z of
        the assigned localizations in the volume's frame), ``surface_distance_median_nm_<label>``;
        and the per-localization assignment (:func:`assign_localizations_3d`).
    """
    from ._morphology3d import surface_mesh

    pts = locs[["x", "y", "z"]].to_numpy(float)
    if transform is not None:
        pts = transform.apply(pts)
    cov = localization_cov(locs, transform)
    if exclude is None and "frame" in locs.columns:
        exclude = fiducial_tracks_3d(locs)
    seg = segmentation
    mesh = surface_mesh(seg.labels, seg.voxel_nm, seg.origin_nm)
    a = assign_localizations_3d(pts, seg.labels, seg.voxel_nm, seg.origin_nm, cov=cov, linker_nm=linker_nm,
                                n_sigma=n_sigma, tre_nm=tre_nm, exclude=exclude, mesh=mesh)
    table = seg.measure()
    m = len(table)
    pid = a["particle"].to_numpy()
    ok = pid > 0
    cnt = np.bincount(pid[ok], minlength=m + 1)[1 : m + 1]
    table[f"n_localizations_{label}"] = cnt.astype(np.int64)
    zs = z_per_particle(pid[ok] - 1, pts[ok, 2], n_particles=m)
    table[f"z_mean_nm_{label}"] = zs["z_mean_nm"].to_numpy()
    sd = pd.Series(a["surface_distance_nm"].to_numpy()[ok]).groupby(pid[ok] - 1).median()
    table[f"surface_distance_median_nm_{label}"] = sd.reindex(range(m)).to_numpy()
    table.attrs["estimated"] = {**a.attrs.get("estimated", {}), "n_excluded": int(np.sum(exclude)) if exclude is not None else 0}
    table.attrs["source"] = dict(a.attrs.get("source", {}))
    return table, a
