"""EM segmentation in blocks with overlap equals the whole-image segmentation: the same labels
(pixel for pixel, id for id) and the same morphology, over randomized pixel sizes (1-4 nm),
particle sizes (20-200 nm), touching pairs and particles across block corners; an object larger
than the overlap raises; the particle pipeline gives the same table either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import segment_em
from correlate.analysis._segment_tiled import segment_em_tiled
from correlate.datasets._em_blocks import em_particle_field, write_em_blocks
from correlate.errors import CorrelateError


def _field(tmp_path, rng, n: int, *, block: int, d_max: float = 200.0, n_particles: int | None = None,
           px_range=(1.0, 4.0)):
    """A block-written EM image with particles (some touching, some on block corners); returns
    the in-memory image, the lazy one (the zarr array through dask) and the particles."""
    import dask.array as da

    from correlate.elements import make_image

    px = float(rng.uniform(*px_range))
    field = n * px
    area = np.pi * (0.5 * 60.0) ** 2
    k = n_particles or int(np.clip(0.05 * field**2 / area, 10, 120))
    p = em_particle_field((n, n), px, n_particles=k, diameter_nm=(20.0, d_max), touching_fraction=0.3,
                          seed=int(rng.integers(1 << 31)))
    # particles centred on block corners (4 blocks share each), kept clear of the others
    corners = np.array([(x, y) for x in range(block, n, block) for y in range(block, n, block)], float) * px
    corners = corners[rng.permutation(len(corners))[:6]]
    dc = np.exp(rng.uniform(np.log(20.0), np.log(d_max), len(corners)))
    if len(corners):
        dist = np.hypot(*(p[["x", "y"]].to_numpy()[:, None, :] - corners[None]).transpose(2, 0, 1))
        p = p[(dist - 0.5 * p["diameter_nm"].to_numpy()[:, None] - 0.5 * dc[None] > 3 * px).all(axis=1)]
        p = pd.concat([p, pd.DataFrame({"x": corners[:, 0], "y": corners[:, 1], "diameter_nm": dc,
                                        "touching": False})], ignore_index=True)
    z = write_em_blocks(tmp_path / f"em-{rng.integers(1 << 30)}.zarr", p, (n, n), px, block=max(256, block),
                        chunk=256, psf_px=float(rng.uniform(0.8, 2.0)), dose=float(rng.uniform(200, 1500)),
                        seed=int(rng.integers(1 << 30)))
    img = make_image(np.asarray(z[:]), pixel_size_nm=px, modality="em", name="em")
    return img, img.copy(data=da.from_zarr(z)), p, px


def _assert_same(whole, tiled):
    a, b = np.asarray(whole.labels.values), np.asarray(tiled.labels.values)
    diff = int((a != b).sum())
    assert diff == 0, f"{diff} pixels differ ({whole.n_particles} vs {tiled.n_particles} particles)"
    assert whole.labels.attrs["edge_labels"] == tiled.labels.attrs["edge_labels"]
    ma, mb = whole.measure(), tiled.measure()
    pd.testing.assert_frame_equal(ma.reset_index(drop=True), mb[ma.columns].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9, atol=1e-6)
    pd.testing.assert_frame_equal(whole.fiducials.reset_index(drop=True), tiled.fiducials.reset_index(drop=True))
    for k in ("noise", "detection_threshold", "polarity", "contrast"):
        assert whole.info[k] == tiled.info[k], k


def test_tiled_labels_equal_whole_image(tmp_path):
    """Small and quick (the default suite): 768^2, pixel 2-4 nm, particles 20-120 nm."""
    rng = np.random.default_rng(1405)
    block = int(rng.choice([192, 256]))
    img, lazy, p, px = _field(tmp_path, rng, 768, block=block, d_max=120.0, px_range=(2.0, 4.0))
    whole = segment_em(img, max_diameter_nm=130.0)
    assert whole.n_particles >= 0.7 * len(p), (whole.n_particles, len(p), px)
    tiled = segment_em_tiled(lazy, block_px=block, max_diameter_nm=130.0)
    assert tiled.info["n_blocks"] > 1
    _assert_same(whole, tiled)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_tiled_labels_equal_whole_image_sweep(tmp_path, seed):
    """1024-2048^2, pixel 1-4 nm, particles 20-200 nm, several block sizes."""
    rng = np.random.default_rng([14, seed])
    n = int(rng.choice([1024, 1536, 2048]))
    block = int(rng.choice([256, 384, 512]))
    img, lazy, p, px = _field(tmp_path, rng, n, block=block)
    whole = segment_em(img, max_diameter_nm=220.0)
    assert whole.n_particles >= 0.7 * len(p), (whole.n_particles, len(p), px)
    for b in (block, 2 * block - 64):
        _assert_same(whole, segment_em_tiled(lazy, block_px=b, max_diameter_nm=220.0))
    # known fiducial positions (objects left out) give the same result too
    pos = p[["x", "y"]].to_numpy()[rng.permutation(len(p))[:5]] + rng.normal(0, px, (5, 2))
    _assert_same(segment_em(img, max_diameter_nm=220.0, exclude_at=pos),
                 segment_em_tiled(lazy, block_px=block, max_diameter_nm=220.0, exclude_at=pos))


@pytest.mark.slow
def test_tiled_labels_equal_whole_image_8192(tmp_path):
    """The issue's Done-when: 8192^2 tiled (blocks from a memory budget) == whole image."""
    rng = np.random.default_rng(8192)
    img, lazy, p, px = _field(tmp_path, rng, 8192, block=2048, d_max=200.0, px_range=(2.0, 3.0), n_particles=1500)
    whole = segment_em(img, max_diameter_nm=220.0)
    tiled = segment_em_tiled(lazy, memory_budget="1GiB", max_diameter_nm=220.0)
    assert tiled.info["n_blocks"] >= 4
    _assert_same(whole, tiled)


def test_object_larger_than_the_overlap_raises(tmp_path):
    import dask.array as da

    from correlate.elements import make_image

    px = 2.0
    p = pd.DataFrame({"x": [500.0, 200.0], "y": [520.0, 180.0], "diameter_nm": [400.0, 40.0]})
    z = write_em_blocks(tmp_path / "big.zarr", p, (512, 512), px, block=256, chunk=256)
    lazy = make_image(da.from_zarr(z), pixel_size_nm=px, modality="em", name="em")
    with pytest.raises(CorrelateError, match="max_diameter_nm|overlap_nm") as e:
        segment_em_tiled(lazy, block_px=128, max_diameter_nm=60.0)
    assert "overlap" in str(e.value)
    # with the largest diameter said, it is segmented, whole
    ok = segment_em_tiled(lazy, block_px=128, max_diameter_nm=450.0, background_nm=1000.0)
    assert ok.info["overlap_px"] >= 400.0 / px
    whole = segment_em(make_image(np.asarray(z[:]), pixel_size_nm=px, modality="em", name="em"),
                       max_diameter_nm=450.0, background_nm=1000.0)
    _assert_same(whole, ok)


def test_block_plan_from_memory_budget():
    from correlate.analysis._segment_plan import BYTES_PER_PIXEL, plan_blocks

    for budget in ("256MiB", "1GiB", 4 * 2**30):
        plan = plan_blocks((32768, 32768), 300, memory_budget=budget)
        b = plan.budget
        assert (plan.block + 2 * 300) ** 2 * BYTES_PER_PIXEL <= b
        assert (plan.block + 256 + 2 * 300) ** 2 * BYTES_PER_PIXEL > b  # the largest multiple of 256
    with pytest.raises(CorrelateError, match="--memory-budget"):
        plan_blocks((32768, 32768), 2000, memory_budget="64MiB")


def _scene(tmp_path, rng, n: int = 1024):
    from correlate.elements import make_image, make_localizations
    from correlate.scene import Scene

    img, _, p, px = _field(tmp_path, rng, n, block=256, d_max=120.0)
    sc = Scene.create(tmp_path / "tiled.ome.zarr")
    sc.add("em", img)
    m = rng.integers(5, 20, len(p))
    ang = rng.uniform(0, 2 * np.pi, m.sum())
    c = np.repeat(p[["x", "y"]].to_numpy(), m, axis=0)
    r = np.repeat(0.5 * p["diameter_nm"].to_numpy(), m) + 8.0 * rng.uniform(0.2, 1.0, m.sum())
    xy = np.vstack([c + r[:, None] * np.c_[np.cos(ang), np.sin(ang)], rng.uniform(0, n * px, (200, 2))])
    prec = rng.uniform(4.0, 12.0, len(xy))
    df = pd.DataFrame({"x": xy[:, 0] + rng.normal(0, prec), "y": xy[:, 1] + rng.normal(0, prec),
                       "frame": rng.permutation(len(xy) * 20)[: len(xy)].astype(np.int64), "precision": prec,
                       "photons": rng.uniform(500, 3000, len(xy))})
    sc.add("antibody", make_localizations(df, source_format="simulated"))
    return sc


def test_particle_pipeline_tiled_equals_whole(tmp_path):
    from correlate.analysis import analyze_particles

    sc = _scene(tmp_path, np.random.default_rng(2026))
    kw = dict(tre_nm=2.0, assume_aligned=True)
    whole = analyze_particles(sc, "em", ["antibody"], segmentation={"max_diameter_nm": 150.0}, store=False, **kw)
    tiled = analyze_particles(sc, "em", ["antibody"], segmentation={"max_diameter_nm": 150.0, "block_px": 256},
                              store=True, **kw)
    assert any("blocks of 256 px" in n for n in tiled.summary.get("notes", [])), tiled.summary.get("notes")
    assert len(whole.table) > 5
    pd.testing.assert_frame_equal(whole.table.reset_index(drop=True), tiled.table[whole.table.columns].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9, atol=1e-6)
    stored = sc.get("em/labels/particles")  # written block by block by the store step
    assert np.array_equal(np.asarray(stored.values), np.asarray(whole.segmentation.labels.values))
