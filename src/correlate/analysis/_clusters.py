"""Particles from localizations alone: density clustering with parameters from the data, and a
size corrected for localization precision, label offset and the centre's own error.

Parameters (each estimated when not given, and recorded in ``ClusterResult.parameters`` with
its source):

1. ``eps_nm``: the minimum spanning tree of the localizations (of the graph of each one's ``k``
   nearest neighbours, in mutual-reachability distance: an edge is at least as long as either
   end's distance to its second neighbour, so a chain of isolated points is no short bridge)
   joins the localizations of one particle by short edges and particles and background points
   by long ones. The deepest valley (under 1 % of the main mode, at least a factor 2 above it) in
   the density of log edge length bounds the search; without one (no clusters, or a background
   dense enough to fill it) the step stops, says what it saw, and asks for ``eps_nm``. Cutting
   the tree at growing lengths first joins each molecule's localizations, then a particle's
   molecules, then neighbouring particles; ``eps_nm`` lies in the first range of lengths (at
   least a factor 1.5 long) over which the number of groups of 5 or more localizations stays the
   same, the particles' own plateau: its geometric middle, at most 1.25 times its near end.
   Where there is none, the start of the valley floor: the first length past the mode with a
   density within a factor 3 of the deepest point.
2. ``min_samples``: the background density (localizations left in groups of fewer than 5 when
   the tree is cut at ``eps_nm``, per area of the table's extent) gives the mean number of
   chance neighbours within ``eps_nm``; the smallest
   count that chance reaches for fewer than one background localization in the whole table (and
   at least 3) is taken, so that the background forms no cores.
3. DBSCAN with those two (:mod:`._clusters_dbscan`: scikit-learn's clusters without its
   neighbour lists); clusters with fewer than ``min_samples`` localizations
   are dropped.

Size (``model``): molecules on a spherical shell of radius ``R`` (``"shell"``: labels on a surface,
the default) or filling a ball (``"sphere"``), seen in projection. The localizations of a cluster
are first grouped into emitter sites (blink events, then :func:`~correlate.analysis.emitter_sites`),
so every molecule counts once however often it blinked; a site's centroid has variance ``s^2``
(its localizations' precision over their number). The radial second moment of the events about
their mean gives ``R`` by the method of moments, ``<rho^2> = (1 - 1/M) (c R^2 + 2 <s^2>)`` with
``c = 2/3`` (shell) or ``2/5`` (ball) and M sites (the factor is the centre's own error). Events
farther than ``1.5 R + 3 s`` from the centre (strays of the background) are dropped and ``R``
re-estimated (twice). That estimate seeds a maximum-likelihood fit of centre and ``R`` together
(:mod:`._clusters_radius`) to the events under the projected shell (ball) density blurred by each
event's error, which uses the sharp rim of the projection the moments ignore; fitting the centre
too removes most of the bias of a radius measured about a centroid that few molecules pull
towards themselves, and the rest, the two degrees of freedom the centre takes from the M
molecules, is corrected as REML corrects a variance (``R^2 M / (M - 1)``). The particle diameter is ``2 (R - label_offset_nm)``: the label sits
``label_offset_nm`` outside the particle surface (a linker, an antibody).

Measured on randomized acquisitions of the project's simulator (40-160 nm particles, 10-40
antibodies on a particle of 80 nm, 2-8 blinks, 9-13 nm median precision, 0.5-5 background
localizations per um^2): size error median within 1 nm, median absolute error 3.5-4 nm;
``benchmarks/bench_clusters.py`` and the slow tests give the numbers. Touching particles end up
in one cluster (DBSCAN has no watershed).

Everything is vectorised over localizations and clusters (``bincount``); no Python loop over
either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["ClusterOptions", "ClusterResult", "cluster_localizations", "estimate_eps"]

_MODEL_C = {"shell": 2.0 / 3.0, "sphere": 2.0 / 5.0}


@dataclass
class ClusterOptions:
    """Options of :func:`cluster_localizations` (lengths in nm; None = estimated from the data).

    Attributes
    ----------
    eps_nm, min_samples
        DBSCAN neighbourhood radius and core count.
    k
        Neighbours per localization in the graph whose minimum spanning tree sets ``eps_nm``.
    model
        ``"shell"`` (labels on the particle surface) or ``"sphere"`` (``"ball"``: filling it).
    label_offset_nm
        Distance of the label outside the particle surface (linker + label size); 0 gives the
        label shell's own diameter.
    precision_nm
        Localization precision (nm, per axis) used in place of the table's; None: the
        ``precision`` column, else estimated by NeNA.
    """

    eps_nm: float | None = None
    min_samples: int | None = None
    k: int = 10
    model: str = "shell"
    label_offset_nm: float = 0.0
    precision_nm: float | None = None


@dataclass
class ClusterResult:
    """Clusters of one localization table.

    Attributes
    ----------
    labels
        (N,) cluster id of every localization (0..K-1), -1 for background.
    table
        One row per cluster: ``particle_id, x, y`` (nm), ``equivalent_diameter_nm``,
        ``label_radius_nm``, ``radius_of_gyration_nm``, ``n_localizations``, ``n_molecules``
        (emitter sites), ``ellipse_major_nm, ellipse_minor_nm, eccentricity, orientation_deg``.
    parameters
        What was used, and for each whether it was ``"estimated"`` or ``"user"``.
    """

    labels: np.ndarray
    table: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        p = self.parameters
        return (f"{len(self.table)} clusters from {p.get('n_localizations')} localizations; eps {p['eps_nm']:.3g} nm "
                f"({p['source']['eps_nm']}), min_samples {p['min_samples']} ({p['source']['min_samples']}), "
                f"precision {p['precision_nm']:.3g} nm ({p['source']['precision_nm']}), model {p['model']}, "
                f"label offset {p['label_offset_nm']:g} nm")


def estimate_eps(xy: np.ndarray, *, bin_log: float = 0.1, min_gap: float = np.log(2.0),
                 valley_depth: float = 0.01, floor_factor: float = 3.0, core_k: int = 3,
                 rule: str = "plateau", k: int = 10) -> dict[str, Any]:
    """``eps_nm`` from the gap in the minimum-spanning-tree edge lengths (see module doc).

    The minimum spanning tree (forest) of the graph of each localization's ``k`` nearest
    neighbours joins the localizations of a particle by short edges (its molecules' spacing) and particles, and background points, by long
    ones (edge lengths in mutual-reachability distance with the ``core_k``-th neighbour, the
    point itself counted). In the density of ``log`` edge length (a Gaussian kernel of
    ``bin_log``), the deepest point between the main mode and the 99.9th percentile, at most
    ``valley_depth`` of the mode and at least a factor ``exp(min_gap)`` above it, marks the valley.
    ``rule="plateau"``: ``eps_nm`` lies in the first plateau (a factor 1.5 long) in the number of
    groups of 5 or more localizations left by cutting the tree, between the mode and the valley:
    its geometric middle, at most 1.25 times its near end (particles isolated in the neighbour
    graph leave its far end open); ``rule="floor"`` (or no plateau): the first length past the mode with a density
    within ``floor_factor`` of the valley's.

    Returns
    -------
    dict
        ``eps_nm``, ``eps_rule``, ``plateau_nm`` (its ends) and ``plateau_clusters``, ``main_edge_nm``,
        ``valley_depth``, ``valley_deepest_nm``, ``n_long_edges``, ``background_density_per_nm2``
        (localizations left in groups smaller than 5 at ``eps_nm``, per nm^2 of the extent).

    Raises
    ------
    CorrelateError
        No such valley (no separated clusters, or a background dense enough to fill it): pass ``eps_nm``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    xy = np.asarray(xy, float)
    n = len(xy)
    if n < 50:
        raise CorrelateError(f"{n} localizations are too few to estimate a clustering radius; pass eps_nm",
                             field="eps_nm")
    from scipy.spatial import cKDTree

    kk = int(min(max(k, core_k), n - 1))
    dist, idx = cKDTree(xy).query(xy, k=kk + 1)
    core = dist[:, core_k - 1] if core_k > 1 else np.zeros(n)
    a = np.repeat(np.arange(n), kk)
    b = idx[:, 1:].ravel()
    # mutual reachability: a chain of isolated points is no short bridge
    w = np.maximum(np.maximum(dist[:, 1:].ravel(), 1e-3), np.maximum(core[a], core[b]))
    graph = coo_matrix((w, (a, b)), shape=(n, n)).tocsr()
    mst = minimum_spanning_tree(graph).tocoo()
    length = mst.data
    logl = np.log(length)
    edges = np.arange(logl.min() - 3 * bin_log, logl.max() + 4 * bin_log, bin_log / 4)
    hist, _ = np.histogram(logl, edges)
    from scipy.ndimage import gaussian_filter1d

    dens = gaussian_filter1d(hist.astype(float), 4.0)  # a kernel of bin_log in log length
    centres = 0.5 * (edges[:-1] + edges[1:])
    peak = int(np.argmax(dens))
    upper = np.percentile(logl, 99.9)
    span = np.flatnonzero((centres > centres[peak]) & (centres <= upper))
    seen = (f"minimum-spanning-tree edges: main mode {np.exp(centres[peak]):.3g} nm, "
            f"95th/99.9th percentile {np.exp(np.percentile(logl, 95)):.3g}/{np.exp(upper):.3g} nm")
    if len(span) == 0:
        raise CorrelateError(f"no long edges beyond the main scale ({seen}); pass eps_nm (--eps)", field="eps_nm")
    v = span[np.argmin(dens[span])]
    depth = dens[v] / dens[peak]
    if depth > valley_depth or centres[v] - centres[peak] < min_gap:
        raise CorrelateError(f"no valley between particle and background scales ({seen}; deepest point "
                             f"{np.exp(centres[v]):.3g} nm at {depth:.1%} of the mode); pass eps_nm (--eps)",
                             field="eps_nm")
    # the valley is often a long floor: the particles' own tail of edges (sparse molecules) ends at
    # its near side, neighbouring particles and background begin towards the far side
    floor_start = span[np.flatnonzero(dens[span] <= floor_factor * dens[v])[0]]
    eps = float(np.exp(centres[floor_start]))
    plateau = _plateau(mst, n, float(np.exp(centres[peak])), float(np.exp(centres[v]))) if rule == "plateau" else None
    if plateau is not None:
        eps = plateau[0]
    keep = mst.data <= eps
    g = coo_matrix((np.ones(keep.sum()), (mst.row[keep], mst.col[keep])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    size = np.bincount(comp)
    area = float(np.prod(np.maximum(np.ptp(xy, axis=0), 1.0)))
    density = float((size[comp] < 5).sum()) / area
    return {"eps_nm": eps, "main_edge_nm": float(np.exp(centres[peak])), "valley_depth": float(depth),
            "valley_deepest_nm": float(np.exp(centres[v])), "eps_rule": "plateau" if plateau is not None else "floor",
            **({"plateau_nm": [plateau[1], plateau[2]], "plateau_clusters": plateau[3]} if plateau is not None else {}),
            "n_long_edges": int((~keep).sum()),
            "background_density_per_nm2": density}


def _plateau(mst, n: int, lo: float, hi: float, *, m: int = 5, step: float = 1.1,
             min_run: float = 1.5, margin: float = 1.25) -> tuple[float, float, float, int] | None:
    """The first range of cut lengths between ``lo`` and ``hi`` (nm), at least a factor
    ``min_run`` long, over which cutting the tree leaves the same number of groups of ``m`` or
    more localizations: (the length chosen in it: its geometric middle, at most ``margin`` times
    its near end; its ends; that number), or None."""
    from ._clusters_kernels import big_components

    order = np.argsort(mst.data, kind="stable")
    length = mst.data[order]
    big = big_components(mst.row[order].astype(np.int64), mst.col[order].astype(np.int64), n, m)
    grid = np.exp(np.arange(np.log(lo), np.log(hi), np.log(step)))
    idx = np.searchsorted(length, grid, side="right") - 1
    nb = np.where(idx >= 0, big[np.maximum(idx, 0)], 0)
    need = int(np.ceil(np.log(min_run) / np.log(step)))
    start = 0
    for j in range(1, len(nb) + 1):  # a few dozen grid lengths
        if j == len(nb) or nb[j] != nb[start]:
            if j - start > need and nb[start] > 0:
                a, b = grid[start], grid[j - 1]
                # particles isolated in the neighbour graph leave its far end open: a margin over
                # the near end, where each particle's molecules have joined
                return float(min(np.sqrt(a * b), margin * a)), float(a), float(b), int(nb[start])
            start = j
    return None


def _min_samples(eps: float, density: float, n: int, k: int) -> int:
    from scipy.stats import poisson

    lam = density * np.pi * eps**2
    m = k
    while m < 10_000 and n * poisson.sf(m - 2, lam) >= 1.0:  # P(at least m-1 other points within eps)
        m += 1
    return int(m)


def _cluster_sizes(sxy, sp2, scl, n_clu, n_locs, n_sites, model, offset):
    """Centre, label radius, radius of gyration and shape per cluster from its blink events
    (each event counts once, however many frames it lasted; the centre's error follows the
    number of molecules, ``n_sites``); vectorised over clusters."""
    c = _MODEL_C[model]
    w = np.ones(len(sxy))
    for _ in range(3):
        cnt = np.bincount(scl, weights=w, minlength=n_clu)
        cx = np.bincount(scl, weights=w * sxy[:, 0], minlength=n_clu) / np.maximum(cnt, 1)
        cy = np.bincount(scl, weights=w * sxy[:, 1], minlength=n_clu) / np.maximum(cnt, 1)
        dx, dy = sxy[:, 0] - cx[scl], sxy[:, 1] - cy[scl]
        r2 = dx * dx + dy * dy
        m_r2 = np.bincount(scl, weights=w * r2, minlength=n_clu) / np.maximum(cnt, 1)
        m_p2 = np.bincount(scl, weights=w * sp2, minlength=n_clu) / np.maximum(cnt, 1)
        shrink = np.clip(1.0 - 1.0 / np.maximum(n_sites, 1), 0.2, 1.0)
        radius = np.sqrt(np.clip((m_r2 / shrink - 2.0 * m_p2) / c, 0.0, None))
        limit = 1.5 * radius[scl] + 3.0 * np.sqrt(sp2 + m_p2[scl]) + 1.0
        w = (np.sqrt(r2) <= limit).astype(float)
    from ._clusters_radius import fit_radius

    ml_x, ml_y, ml_r = fit_radius(sxy, sp2, scl, w, n_clu, cx, cy, radius, model)
    ok = (n_sites >= 3) & np.isfinite(ml_r) & (ml_r > 0)
    x_out, y_out = np.where(ok, ml_x, cx), np.where(ok, ml_y, cy)
    # the fitted centre takes two of the M molecules' degrees of freedom (as REML does for a
    # variance): R^2 reads (1 - 1/M) small
    radius = np.where(ok, ml_r / np.sqrt(1.0 - 1.0 / np.maximum(n_sites, 2.0)), radius)
    sxx = np.bincount(scl, weights=w * dx * dx, minlength=n_clu) / np.maximum(cnt, 1)
    syy = np.bincount(scl, weights=w * dy * dy, minlength=n_clu) / np.maximum(cnt, 1)
    sxy_ = np.bincount(scl, weights=w * dx * dy, minlength=n_clu) / np.maximum(cnt, 1)
    tr, det = sxx + syy, sxx * syy - sxy_**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0.0)
    return {
        "x": x_out, "y": y_out, "label_radius_nm": radius, "equivalent_diameter_nm": 2.0 * (radius - offset),
        "radius_of_gyration_nm": np.sqrt(m_r2), "n_localizations": n_locs,
        "n_molecules": n_sites,
        "ellipse_major_nm": 4.0 * np.sqrt(l1), "ellipse_minor_nm": 4.0 * np.sqrt(l2),
        "eccentricity": np.sqrt(1.0 - l2 / np.maximum(l1, 1e-12)),
        "orientation_deg": np.degrees(0.5 * np.arctan2(2 * sxy_, sxx - syy)),
    }


def _events_and_sites(locs: pd.DataFrame, lab: np.ndarray, prec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) blink-event id and (N,) emitter-site (molecule) id of every clustered localization
    (-1 for background). Events link localizations in consecutive frames (one per localization
    without frames); sites group events by position within each cluster."""
    from ._molecules import emitter_sites, group_blinks

    ev_out = np.full(len(lab), -1, np.int64)
    site_out = np.full(len(lab), -1, np.int64)
    sel = np.flatnonzero(lab >= 0)
    if len(sel) == 0:
        return ev_out, site_out
    sub = locs.iloc[sel]
    xy = sub[["x", "y"]].to_numpy(float)
    p = prec[sel]
    ev = group_blinks(sub.assign(precision=p), groups=lab[sel]) if "frame" in sub.columns else np.arange(len(sel))
    ne = int(ev.max()) + 1
    cnt = np.bincount(ev, minlength=ne)
    exy = np.column_stack([np.bincount(ev, weights=xy[:, i], minlength=ne) / cnt for i in range(2)])
    es = np.sqrt(np.bincount(ev, weights=p**2, minlength=ne) / cnt / cnt)
    eg = np.zeros(ne, np.int64)
    eg[ev] = lab[sel]
    site = emitter_sites(exy, es, groups=eg)
    _, global_site = np.unique(np.column_stack([eg, site]), axis=0, return_inverse=True)
    ev_out[sel] = ev
    site_out[sel] = global_site.ravel()[ev]
    return ev_out, site_out


def _group_table(xy: np.ndarray, p2: np.ndarray, lab: np.ndarray, group: np.ndarray):
    """Per group (event or site): centroid (nm), variance of the centroid per axis (nm^2), cluster id."""
    sel = group >= 0
    g = group[sel]
    ng = int(g.max()) + 1 if g.size else 0
    cnt = np.bincount(g, minlength=ng).astype(float)
    gxy = np.column_stack([np.bincount(g, weights=xy[sel, i], minlength=ng) / np.maximum(cnt, 1) for i in range(2)])
    gp2 = np.bincount(g, weights=p2[sel], minlength=ng) / np.maximum(cnt, 1) ** 2
    gcl = np.zeros(ng, np.int64)
    gcl[g] = lab[sel]
    return gxy, gp2, gcl


def cluster_localizations(locs: pd.DataFrame, options: ClusterOptions | None = None, **kwargs: Any) -> ClusterResult:
    """Cluster a localization table into particles and measure each one.

    Parameters
    ----------
    locs
        Localizations (``x, y`` nm; ``precision`` and ``frame`` used where present).
    options
        A :class:`ClusterOptions`; keyword arguments override its fields.

    Returns
    -------
    ClusterResult

    Raises
    ------
    CorrelateError
        No clustered population (pass ``eps_nm``), no precision (pass ``precision_nm``), or an
        unknown model.
    """
    from dataclasses import replace

    from ._clusters_dbscan import dbscan

    opts = replace(options or ClusterOptions(), **kwargs)
    if opts.model == "ball":
        opts = replace(opts, model="sphere")
    if opts.model not in _MODEL_C:
        raise CorrelateError(f"unknown size model {opts.model!r}; expected 'shell' or 'sphere' ('ball')", field="model")
    if not {"x", "y"} <= set(locs.columns):
        raise CorrelateError(f"clustering needs x, y columns (nm); the table has {list(locs.columns)[:12]}", field="x")
    xy = locs[["x", "y"]].to_numpy(float)
    n = len(xy)
    source: dict[str, str] = {}
    est: dict[str, float] = {}
    k = opts.k
    if opts.eps_nm is None:
        est = estimate_eps(xy, k=k)
        eps, source["eps_nm"] = est["eps_nm"], "estimated"
    else:
        eps, source["eps_nm"] = float(opts.eps_nm), "user"
        if not (np.isfinite(eps) and eps > 0):
            raise CorrelateError(f"eps_nm must be a positive length, got {opts.eps_nm!r}", field="eps_nm")
    if opts.min_samples is None:
        density = est.get("background_density_per_nm2")
        if density is None:
            from scipy.spatial import cKDTree

            d, _ = cKDTree(xy).query(xy, k=k + 1)
            density = float(np.mean(d[:, k] > eps)) * n / float(np.prod(np.maximum(np.ptp(xy, axis=0), 1.0)))
        min_samples, source["min_samples"] = _min_samples(eps, density, n, 3), "estimated"
    else:
        min_samples, source["min_samples"] = int(opts.min_samples), "user"
    from ..smlm._precision import localization_precision

    pr = localization_precision(locs, opts.precision_nm, what="localizations", flag="precision_nm (--precision-nm)")
    prec, prec_med, source["precision_nm"] = pr.values, pr.median_nm, pr.source
    lab = dbscan(xy, eps, min_samples)[0]
    n_raw = int(lab.max()) + 1 if (lab >= 0).any() else 0
    if n_raw:  # drop clusters smaller than a core neighbourhood, renumber the rest
        size = np.bincount(lab[lab >= 0], minlength=n_raw)
        keep = size >= min_samples
        new = np.full(n_raw, -1, np.int64)
        new[keep] = np.arange(int(keep.sum()))
        lab = np.where(lab >= 0, new[np.maximum(lab, 0)], -1)
    n_clu = int(lab.max()) + 1 if (lab >= 0).any() else 0
    event, site = _events_and_sites(locs, lab, prec)
    exy, ep2, ecl = _group_table(xy, prec**2, lab, event)
    _, _, scl = _group_table(xy, prec**2, lab, site)
    n_locs = np.bincount(lab[lab >= 0], minlength=n_clu)
    n_sites = np.bincount(scl, minlength=n_clu).astype(float)
    cols = _cluster_sizes(exy, ep2, ecl, n_clu, n_locs, n_sites, opts.model, opts.label_offset_nm)
    table = pd.DataFrame({"particle_id": np.arange(n_clu, dtype=np.int64), **cols})
    params = {"eps_nm": eps, "min_samples": min_samples, "k": k, "precision_nm": prec_med, "model": opts.model,
              "label_offset_nm": float(opts.label_offset_nm), "n_localizations": n, "source": source, **est}
    table.attrs["clustering"] = params
    return ClusterResult(lab, table, params)
