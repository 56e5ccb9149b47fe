"""The block pass of :func:`~correlate.analysis._segment_tiled.segment_em_tiled`: segment each
extended block, check that no object cluster is cut, keep the objects each block owns, measure
them, decide the image-wide rules (gold) and number the particles as the whole-image path
does. Lengths nm unless named px.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CorrelateError
from ._segment_em import _candidates, _detection, _gold, _keep, canonical_lut
from ._segment_plan import BlockPlan, interaction_px
from ._segmentation import Segmentation, _as_labels_array, _fiducial_table

_COLS = ("key", "first_full", "peak", "R", "r_f", "cx", "cy", "valid", "at_pos", "edge")


def _check_clusters(cand: dict, plan: BlockPlan, ey: slice, ex: slice, inner: tuple[slice, slice], shape,
                    min_sep_px: float) -> None:
    """Raise when a cluster of objects (within the interaction distance of each other) that
    touches the block interior reaches a side of the extended block that is not the image edge."""
    from scipy import ndimage as ndi

    k = interaction_px(min_sep_px, float(np.max(cand["grow"])))
    # objects closer than k px join one cluster: each grown by half of it
    near = ndi.distance_transform_edt(cand["basins"] == 0) <= 0.5 * k + 1
    comp, _ = ndi.label(near, structure=np.ones((3, 3), bool))
    sides = []
    if ey.start > 0:
        sides.append(comp[0])
    if ey.stop < shape[0]:
        sides.append(comp[-1])
    if ex.start > 0:
        sides.append(comp[:, 0])
    if ex.stop < shape[1]:
        sides.append(comp[:, -1])
    if not sides:
        return
    cut = np.unique(np.concatenate(sides))
    cut = cut[cut > 0]
    if cut.size and np.isin(comp[inner], cut).any():
        hit = np.isin(comp, cut) & (cand["basins"] > 0)
        yy, xx = np.nonzero(hit)
        raise CorrelateError(
            f"an object or a cluster of touching objects near pixel (y {ey.start + int(yy.mean())}, "
            f"x {ex.start + int(xx.mean())}) extends beyond the {plan.overlap} px overlap of its block: it would "
            "be cut. Give the largest particle diameter (max_diameter_nm / --max-diameter-nm) or a larger "
            "overlap (overlap_nm), or segment the whole image (a larger --memory-budget)", field="overlap_nm")


def _edge_labels(full: np.ndarray, ey: slice, ex: slice, shape) -> np.ndarray:
    """Candidate labels of ``full`` (an extended block) touching the image border."""
    lines = []
    if ey.start == 0:
        lines.append(full[0])
    if ey.stop == shape[0]:
        lines.append(full[-1])
    if ex.start == 0:
        lines.append(full[:, 0])
    if ex.stop == shape[1]:
        lines.append(full[:, -1])
    if not lines:
        return np.zeros(0, np.int64)
    v = np.unique(np.concatenate(lines))
    return v[v > 0]


def _measure(img, cand: dict, sel: np.ndarray, ey: slice, ex: slice) -> pd.DataFrame:
    """Morphology of the candidates ``sel`` (indices) on the extended block."""
    n0 = cand["n0"]
    lut = np.zeros(n0 + 1, np.int32)
    lut[sel + 1] = np.arange(1, sel.size + 1, dtype=np.int32)
    R, r_f = cand["R"][sel], cand["r_f"][sel]
    crop = img.isel(y=ey, x=ex)
    labels = _as_labels_array(lut[cand["full"]], crop, n=int(sel.size), edge_ids=[], modality="em", extra={})
    seg = Segmentation(labels=labels, signal=None, core=lut[cand["core"]],
                       length_scale=np.concatenate([[1.0], np.where(r_f > 0, R / np.maximum(r_f, 1e-9), 1.0)]),
                       fiducials=pd.DataFrame())
    df = seg.measure()
    df["key"] = cand["first_basin"][sel][df["particle_id"].to_numpy() - 1]
    return df


def _one_block(img, read, g, plan: BlockPlan, p: dict, ys: slice, xs: slice) -> tuple[np.ndarray, dict, pd.DataFrame, np.ndarray]:
    """Keys (first basin pixel + 1) of the interior's labelled pixels, the owned candidates, their
    morphology and the exclusion positions matched here."""
    from ._segment_signal import _signal

    H, W = g.shape
    ey, ex = plan.extended(ys, xs)
    _, sm, _ = _signal(read, g, g.bg, ey, ex)
    det = _detection(sm, p["thr"], p["threshold"], 0.0, p["k_sigma"], p["min_diameter_nm"], p["max_diameter_nm"], g.px)
    cand = _candidates(sm, det, p["thr"], p["split_touching"], p["min_sep_px"], p["edge_fraction"], p["shape_model"],
                       p["blur_px"], offset=(ey.start, ex.start), width=W)
    n_pos = len(p["positions"])
    inner = (slice(ys.start - ey.start, ys.stop - ey.start), slice(xs.start - ex.start, xs.stop - ex.start))
    n0 = cand["n0"]
    if n0 == 0:
        return np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.int64), {}, pd.DataFrame(), np.zeros(n_pos, bool)
    _check_clusters(cand, plan, ey, ex, inner, g.shape, p["min_sep_px"])
    key = cand["first_basin"]
    keys = np.concatenate([[0], key + 1])[cand["full"][inner]]
    fy, fx = np.divmod(key, W)
    owned = (fy >= ys.start) & (fy < ys.stop) & (fx >= xs.start) & (fx < xs.stop)
    at_pos = np.zeros(n0, bool)
    matched = np.zeros(n_pos, bool)
    if p["exclude_fiducials"] and n_pos:
        from ._fiducial_exclusion import objects_at

        org = {"x": float(img.coords["x"].values[ex.start]), "y": float(img.coords["y"].values[ey.start])}
        at_pos, m = objects_at(p["positions"], cand["basins"], cand["cx"] - ex.start, cand["cy"] - ey.start,
                               cand["r_eq"], origin_nm=org, pixel_nm=g.px_d)
        matched = m
    edge = np.zeros(n0, bool)
    edge[_edge_labels(cand["full"], ey, ex, g.shape) - 1] = True
    diam = 2 * cand["R"] * g.px
    pre = owned & _keep(cand, at_pos, diam, p["thr"], p["min_diameter_nm"], p["max_diameter_nm"])
    morph = _measure(img, cand, np.flatnonzero(pre), ey, ex) if pre.any() else pd.DataFrame()
    if len(morph):
        morph["edge"] = edge[np.flatnonzero(pre)][morph["particle_id"].to_numpy() - 1]
    o = np.flatnonzero(owned)
    rows = {"key": key[o], "first_full": cand["first_full"][o], "peak": cand["peak"][o], "R": cand["R"][o],
            "r_f": cand["r_f"][o], "cx": cand["cx"][o], "cy": cand["cy"][o], "valid": cand["valid"][o],
            "at_pos": at_pos[o], "edge": edge[o]}
    return keys, rows, morph, matched


def _map_keys(block: np.ndarray, keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """int32 particle ids of a block of keys (first basin pixel + 1; 0 background)."""
    v = block.astype(np.int64) - 1
    i = np.clip(np.searchsorted(keys, v), 0, max(len(keys) - 1, 0))
    if len(keys) == 0:
        return np.zeros(block.shape, np.int32)
    hit = (block > 0) & (keys[i] == v)
    return np.where(hit, ids[i], 0).astype(np.int32)


def run_blocks(img, read, g, plan: BlockPlan, params: dict, info: dict, work: Path, labels_path):
    """Segment every block, decide the image-wide rules and return the
    :class:`~correlate.analysis._segment_tiled.TiledSegmentation`."""
    import dask.array as da
    import xarray as xr
    import zarr

    from ._fiducial_exclusion import as_positions
    from ._segment_signal import TiledSegmentation

    H, W = g.shape
    params = dict(params, positions=as_positions(params["exclude_at"]) if params["exclude_fiducials"] else np.zeros((0, 2)))
    chunk = (min(plan.block, H), min(plan.block, W))
    kz = zarr.create_array(store=str(Path(work) / f"keys-{uuid.uuid4().hex}.zarr"), shape=(H, W), chunks=chunk,
                           dtype="int64", fill_value=0, compressors=zarr.codecs.ZstdCodec(level=1), zarr_format=3)
    rows, morphs = [], []
    matched = np.zeros(len(params["positions"]), bool)
    for ys, xs in plan.interiors():
        keys, r, m, mt = _one_block(img, read, g, plan, params, ys, xs)
        kz[ys, xs] = keys
        if r:
            rows.append(pd.DataFrame(r))
        if len(m):
            morphs.append(m)
        matched |= mt
    cands = (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in _COLS}))
    cands = cands.sort_values("key", kind="stable").reset_index(drop=True)
    px = g.px
    diam = 2 * cands["R"].to_numpy(float) * px
    valid = cands["valid"].to_numpy(bool)
    peak = cands["peak"].to_numpy(float)
    at_pos = cands["at_pos"].to_numpy(bool)
    is_fid = (_gold(valid, peak, diam, params["fiducial_ratio"]) if params["exclude_fiducials"] and len(cands)
              else np.zeros(len(cands), bool))
    by_contrast = is_fid & ~at_pos
    is_fid = is_fid | at_pos
    cand_like = {"valid": valid, "peak": peak}
    keep = _keep(cand_like, is_fid, diam, params["thr"], params["min_diameter_nm"], params["max_diameter_nm"])
    ids = canonical_lut(keep, cands["first_full"].to_numpy(np.int64))[1:]
    key_arr = cands["key"].to_numpy(np.int64)
    x0 = {"x": float(img.coords["x"].values[0]), "y": float(img.coords["y"].values[0])}
    fids = _fiducial_table(x0, g.px_d, cands["cx"].to_numpy(float), cands["cy"].to_numpy(float), diam, at_pos,
                           by_contrast, "contrast")
    table = _table(morphs, key_arr, ids, keep)
    n = int(keep.sum())
    edge_ids = np.sort(ids[keep & cands["edge"].to_numpy(bool)])
    lab = da.from_zarr(kz).map_blocks(_map_keys, key_arr, ids, dtype=np.int32)
    if labels_path is not None:
        lz = zarr.create_array(store=str(labels_path), shape=(H, W), chunks=(min(2048, H), min(2048, W)),
                               dtype="int32", fill_value=0, compressors=zarr.codecs.ZstdCodec(level=3), zarr_format=3)
        da.store(lab.rechunk(lz.chunks), lz, lock=False, compute=True)
        data = da.from_zarr(lz)
    else:
        data = lab.compute()
    labels = _as_labels_array(np.zeros((1, 1), np.int32), img.isel(y=slice(0, 1), x=slice(0, 1)), n=n,
                              edge_ids=edge_ids, modality="em", extra={})
    labels = xr.DataArray(data, dims=("y", "x"), coords={d: img.coords[d] for d in ("y", "x")}, name="particles",
                          attrs=labels.attrs)
    info.update(n_candidates=int(len(cands)), n_fiducials=int(is_fid.sum()), n_fiducials_at_positions=int(at_pos.sum()))
    if params["exclude_fiducials"]:
        info.update(n_exclude_at=len(params["positions"]), n_exclude_at_unmatched=int((~matched).sum()))
    return TiledSegmentation(labels=labels, table=table, fiducials=fids, info=info)


def _table(morphs: list, key_arr: np.ndarray, ids: np.ndarray, keep: np.ndarray) -> pd.DataFrame:
    """The morphology rows of the kept particles, numbered by their particle ids."""
    from ._morphology import measure_particles

    if not morphs or not keep.any():
        return measure_particles(np.zeros((1, 1), np.int32), pixel_size_nm=1.0)
    m = pd.concat(morphs, ignore_index=True)
    pos = np.searchsorted(key_arr, m["key"].to_numpy(np.int64))
    pid = ids[pos]
    m = m.assign(particle_id=pid.astype(np.int64))
    m = m[pid > 0].sort_values("particle_id", kind="stable").drop(columns="key").reset_index(drop=True)
    return m
