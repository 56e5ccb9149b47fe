"""Emitter sites: events grouped by position into sites, each site counting the molecules its
event count implies (:func:`emitter_sites`, :func:`count_sites`). Lengths nm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["count_sites", "emitter_sites"]


def emitter_sites(
    xy,
    sigma,
    groups=None,
    *,
    z_max: float = 3.0,
    linkage: str = "centroid",
    merge_test: str = "z",
    frames=None,
    max_gap_frames: float | None = None,
    k_neighbors: int = 8,
    max_rounds: int = 500,
) -> np.ndarray:
    """Group events into emitter sites by position (precision-aware).

    ``linkage="centroid"`` (default): every event starts as its own site. Each round, every site
    finds the site (same group) with the smallest normalised distance
    ``z = |c_a - c_b| / sqrt(s_a^2 + s_b^2)`` among its ``k_neighbors`` nearest (``c`` the
    inverse-variance weighted centroid, ``s`` its error ``1 / sqrt(sum 1 / sigma_i^2)``); mutual
    nearest pairs merge when ``z < z_max`` (``merge_test="z"``, default) or, with
    ``merge_test="chi2"``, when the merged site is consistent with a single emitter: the scatter
    of its events about their weighted centroid, ``chi^2 = sum |x_i - c|^2 / sigma_i^2``, below the
    ``chi^2(2 (m - 1))`` quantile of tail ``exp(-z_max^2 / 2)`` (the same test for two events).
    Rounds repeat until nothing merges; vectorised over all sites and groups at once (one KD-tree
    query per round, a few tens of rounds). As a site gathers events its centroid sharpens, so
    nearby emitters with many events stay apart; the other side of that coin is that an emitter
    with many events (>~10) can end up in two fragments, whose centroids the partition pulls
    apart by ~0.8 sqrt(m) centroid errors ("chi2" keeps them together but lets single events of
    a neighbour join big sites; on the simulator "z" counts better).
    ``linkage="single"``: connected components of the events closer than ``z_max`` pair errors
    (chains: on a crowded particle one component ends up holding most of it). Two events of one
    emitter have ``z`` Rayleigh-distributed, so ``z_max = 3`` leaves ~1 % of them apart; emitters
    closer than ~``z_max`` combined errors merge.

    Parameters
    ----------
    xy
        (E, 2) event positions (nm).
    sigma
        (E,) position error of each event (nm, per axis).
    groups
        (E,) group ids (e.g. particle); events of different groups never merge.
    z_max
        Merging threshold in combined errors.
    linkage
        ``"centroid"`` or ``"single"``.
    merge_test
        ``"centroid"`` linkage: ``"z"`` or ``"chi2"`` (above).
    frames, max_gap_frames
        ``"single"`` only: (E, 2) first/last frame per event; events further apart in time than
        ``max_gap_frames`` are not linked (None: no limit).

    Returns
    -------
    numpy.ndarray
        (E,) int64 site ids 0..S-1.
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    if n == 0:
        return np.zeros(0, np.int64)
    sig = np.asarray(sigma, float)
    sig = np.where(np.isfinite(sig) & (sig > 0), sig, np.nanmedian(sig) if np.isfinite(sig).any() else 10.0)
    g = np.zeros(n, np.int64) if groups is None else np.asarray(groups, np.int64)
    if linkage == "single":
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        reach = float(z_max * np.sqrt(2.0) * np.percentile(sig, 99.5))
        pairs = cKDTree(xy).query_pairs(reach, output_type="ndarray")
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            d2 = ((xy[i] - xy[j]) ** 2).sum(axis=1)
            ok = (g[i] == g[j]) & (d2 <= z_max**2 * (sig[i] ** 2 + sig[j] ** 2))
            if frames is not None and max_gap_frames is not None:
                fr = np.asarray(frames, float).reshape(n, -1)
                f0, f1 = fr[:, 0], fr[:, -1]
                gap = np.maximum(f0[j] - f1[i], f0[i] - f1[j])
                ok &= gap <= float(max_gap_frames)
            pairs = pairs[ok]
        graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        return connected_components(graph, directed=False)[1].astype(np.int64)
    if linkage != "centroid":
        raise ValueError(f"linkage must be 'single' or 'centroid', got {linkage!r}")
    if merge_test not in ("z", "chi2"):
        raise ValueError(f"merge_test must be 'z' or 'chi2', got {merge_test!r}")
    from scipy.stats import chi2

    alpha = float(np.exp(-0.5 * z_max**2))  # tail of the Rayleigh z for two single events
    xy = xy - xy.mean(axis=0)  # centred: the chi^2 below is a difference of large sums
    W = 1.0 / np.clip(sig, 1e-3, None) ** 2  # summed inverse variances per site (index = representative)
    C = xy * W[:, None]
    Q = W * (xy**2).sum(axis=1)  # summed w |x|^2: chi^2 of a site = Q - |C|^2 / W
    M = np.ones(n, np.int64)  # events per site
    lab = np.arange(n)
    alive = np.arange(n)
    for _ in range(int(max_rounds)):
        m = alive.size
        if m < 2:
            break
        cen = C[alive] / W[alive, None]
        s2 = 1.0 / W[alive]
        ga = g[alive]
        k = min(int(k_neighbors) + 1, m)
        d, j = cKDTree(cen).query(cen, k=k)
        d, j = d[:, 1:].reshape(m, -1), j[:, 1:].reshape(m, -1)
        valid = np.isfinite(d) & (j < m)
        jj = np.where(valid, j, 0)
        z = np.where(valid & (ga[jj] == ga[:, None]), d / np.sqrt(s2[:, None] + s2[jj]), np.inf)
        b = np.argmin(z, axis=1)
        rows = np.arange(m)
        nn = jj[rows, b]
        zb = z[rows, b]
        cand = (nn[nn] == rows) & np.isfinite(zb) & (rows < nn)
        a_c, b_c = alive[cand], alive[nn[cand]]
        # "chi2": the merged site's scatter about its weighted centroid (in the events' errors)
        # below the chi^2(2 (m - 1)) quantile
        Wm = W[a_c] + W[b_c]
        Cm = C[a_c] + C[b_c]
        chi = Q[a_c] + Q[b_c] - (Cm**2).sum(axis=1) / Wm
        dof = 2 * (M[a_c] + M[b_c] - 1)
        zc = zb[cand]
        ok = zc < z_max if merge_test == "z" else chi <= chi2.isf(alpha, dof)
        merge = np.zeros(m, bool)
        merge[np.flatnonzero(cand)[ok]] = True
        if not merge.any():
            break
        a_i, b_i = alive[merge], alive[nn[merge]]
        W[a_i] += W[b_i]
        C[a_i] += C[b_i]
        Q[a_i] += Q[b_i]
        M[a_i] += M[b_i]
        lut = np.arange(n)
        lut[b_i] = a_i
        lab = lut[lab]
        keep = np.ones(m, bool)
        keep[nn[merge]] = False
        alive = alive[keep]
    _, inv = np.unique(lab, return_inverse=True)
    return inv.astype(np.int64)


def _site_likelihood(m_sites: np.ndarray, pmf1: np.ndarray, k_max: int) -> np.ndarray:
    """(S, k_max) probability of each site's event count for k = 1..k_max molecules (k-fold
    convolutions of the one-molecule distribution ``pmf1`` over 0..M)."""
    mmax = int(m_sites.max())
    f = np.zeros(mmax + 1)
    f[: min(pmf1.size, mmax + 1)] = pmf1[: mmax + 1]
    P = np.zeros((k_max, mmax + 1))
    cur = np.zeros(mmax + 1)
    cur[0] = 1.0
    for k in range(k_max):  # k_max convolutions of short vectors (not per site)
        cur = np.convolve(cur, f)[: mmax + 1]
        P[k] = cur
    return P[:, m_sites].T


def count_sites(
    xy,
    sigma,
    groups,
    *,
    events_per_molecule: float,
    detection_efficiency: float = 1.0,
    n_groups: int | None = None,
    events_pmf=None,
    z_max: float = 3.0,
    linkage: str = "centroid",
    scale_to_events: bool = True,
    frames=None,
    max_gap_frames: float | None = None,
    n_iter: int = 300,
) -> pd.DataFrame:
    """Molecules per group from emitter sites (:func:`emitter_sites`) and their event counts.

    Events of one molecule repeat at the same place, so grouping events into sites removes much
    of the noise of the number of events per molecule: a resolved site is one molecule whether it
    blinked once or ten times. Sites of molecules closer than the resolution merge; how many
    molecules a site holds is read from its event count ``m``. With ``P_k(m)`` the distribution
    of events of ``k`` molecules (k-fold convolution of the one-molecule distribution: geometric
    of mean ``events_per_molecule`` unless ``events_pmf`` gives it) and a prior ``pi_k`` over
    sites (empirical Bayes: fitted by EM on all sites of all groups together), each site counts
    ``E[k | m] = sum_k k pi_k P_k(m) / sum_k pi_k P_k(m)``.

    On crowded groups (emitters closer than a few event errors) the partition into sites is not
    the partition into molecules: some molecules split into fragments that each count as one,
    some merge. That bias is a property of the label density, nearly the same on every group of
    one label, so by default (``scale_to_events``) the per-group counts are scaled so that their
    total equals the total number of events over all groups / ``events_per_molecule`` (accurate
    in aggregate): sites give the *distribution* over groups, events the overall level. A
    group's molecules are then divided by ``detection_efficiency``.

    Parameters
    ----------
    xy, sigma
        (E, 2) event positions (nm) and (E,) their errors (nm per axis).
    groups
        (E,) group (particle row) per event; negative ids are ignored.
    events_per_molecule
        Mean events per detected molecule (calibration).
    detection_efficiency
        Fraction of molecules that blink at all.
    n_groups
        Number of groups (default max id + 1).
    events_pmf
        Optional one-molecule event-count distribution over 0, 1, 2, ... (``pmf[0]`` ignored).
    z_max, linkage, frames, max_gap_frames
        Site grouping (:func:`emitter_sites`).
    scale_to_events
        Scale the counts so that their total matches the event count (see above).

    Returns
    -------
    pandas.DataFrame
        Per group: ``n_sites``, ``n_molecules`` (NaN for an unusable ``events_per_molecule``;
        0 where a group has no events). ``attrs``: ``prior`` (the fitted ``pi_k``) and
        ``scale`` (the factor applied; 1 without ``scale_to_events``).
    """
    g = np.asarray(groups, np.int64)
    G = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    ok = g >= 0
    xy = np.asarray(xy, float).reshape(-1, 2)[ok]
    sig = np.asarray(sigma, float)[ok]
    g = g[ok]
    if frames is not None:
        frames = np.asarray(frames, float).reshape(ok.size, -1)[ok]
    out = pd.DataFrame({"n_sites": np.zeros(G, np.int64), "n_molecules": np.zeros(G)})
    mu = float(events_per_molecule)
    if not (mu >= 1.0 or (mu > 0 and events_pmf is not None)):
        out["n_molecules"] = np.nan
        return out
    if g.size == 0:
        return out
    site = emitter_sites(xy, sig, g, z_max=z_max, linkage=linkage, frames=frames, max_gap_frames=max_gap_frames)
    S = int(site.max()) + 1
    m = np.bincount(site, minlength=S)
    sg = np.zeros(S, np.int64)
    sg[site] = g
    mmax = int(m.max())
    if events_pmf is None:
        p = 1.0 / mu
        q = np.arange(mmax + 1)
        pmf1 = np.where(q >= 1, p * (1.0 - p) ** np.clip(q - 1, 0, None), 0.0)
    else:
        pmf1 = np.asarray(events_pmf, float).copy()
        pmf1[0] = 0.0
        pmf1 = pmf1 / pmf1.sum()
    # enough molecules per site for the largest site (3x its mean-based count), bounded
    k_max = int(min(max(10, np.ceil(3.0 * mmax / mu) + 5), 400))
    L = _site_likelihood(m, pmf1, k_max)
    lost = L.sum(axis=1) <= 0  # counts beyond the model's reach: fall back to m / mu
    ks = np.arange(1, k_max + 1)
    pi = np.full(k_max, 1.0 / k_max)
    Lv = L[~lost]
    for _ in range(int(n_iter)):
        post = Lv * pi
        post /= post.sum(axis=1, keepdims=True)
        new = post.mean(axis=0)
        if np.abs(new - pi).max() < 1e-7:
            pi = new
            break
        pi = new
    ek = np.empty(S)
    if Lv.size:
        post = Lv * pi
        ek[~lost] = (post @ ks) / np.maximum(post.sum(axis=1), 1e-300)
    ek[lost] = m[lost] / mu
    per_group = np.bincount(sg, weights=ek, minlength=G)[:G]
    scale = 1.0
    if scale_to_events and per_group.sum() > 0:
        scale = float(m.sum() / mu / per_group.sum())
    out["n_sites"] = np.bincount(sg, minlength=G)[:G].astype(np.int64)
    out["n_molecules"] = per_group * scale / float(detection_efficiency)
    out.attrs["prior"] = pi.tolist()
    out.attrs["scale"] = scale
    return out
