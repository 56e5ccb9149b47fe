"""Localization precision of a label without a precision column: estimated once by NeNA (and
said), given by the user, or a clear error, never a generic number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import analyze_particles, group_blinks
from correlate.errors import CorrelateError
from correlate.smlm._precision import localization_precision


def _blinking(rng, centres, sigma, n_mol=30, radius=30.0, n_frames=20000):
    """Molecules on rings around ``centres``, each with on-events of consecutive frames
    (geometric lengths, mean 2.5 frames) at random times; Gaussian localization error sigma."""
    rows = []
    for x0, y0 in centres:
        ang = rng.uniform(0, 2 * np.pi, n_mol)
        mx, my = x0 + radius * np.cos(ang), y0 + radius * np.sin(ang)
        for i in range(n_mol):
            for _ in range(int(rng.integers(1, 4))):
                start, length = int(rng.integers(0, n_frames - 10)), int(rng.geometric(0.4))
                for f in range(start, start + length):
                    rows.append((mx[i], my[i], f))
    a = np.array(rows, float)
    n = len(a)
    return pd.DataFrame({"x": a[:, 0] + rng.normal(0, sigma, n), "y": a[:, 1] + rng.normal(0, sigma, n),
                         "frame": a[:, 2].astype(np.int64)})


@pytest.mark.parametrize("seed", [3, 17, 29, 41])
def test_nena_estimate_when_no_precision_column(seed):
    rng = np.random.default_rng(seed)
    sigma = float(rng.uniform(3.0, 25.0))
    centres = rng.uniform(0, 20000, (40, 2))
    locs = _blinking(rng, centres, sigma)
    p = localization_precision(locs)
    assert p.source == "estimated (NeNA)"
    # NeNA's relative error is about 1/sqrt(2 * pairs); several thousand pairs here: within 10 %
    assert abs(p.median_nm - sigma) < 0.10 * sigma, (p.median_nm, sigma)
    assert localization_precision(locs, 7.5).source == "given"
    with pytest.raises(CorrelateError, match="pass precision_nm"):
        localization_precision(locs.drop(columns="frame"))
    with pytest.raises(CorrelateError, match="precision_nm"):
        localization_precision(locs, -1.0)


def test_group_blinks_without_precision_uses_the_estimate():
    rng = np.random.default_rng(5)
    sigma = 8.0
    locs = _blinking(rng, rng.uniform(0, 20000, (30, 2)), sigma)
    with_col = group_blinks(locs.assign(precision=sigma))
    without = group_blinks(locs)
    assert abs(int(without.max()) - int(with_col.max())) <= 0.03 * int(with_col.max())
    with pytest.raises(CorrelateError, match="radius_nm"):
        group_blinks(locs.assign(frame=np.arange(len(locs)) * 10).iloc[:50])


def _scene(tmp_path, rng, sigma):
    from correlate.elements import make_image, make_localizations
    from correlate.scene import Scene

    px, n_px = 3.0, 400
    field = px * n_px
    grid = np.linspace(0.15, 0.85, 4) * field
    cxy = np.array([(gx, gy) for gx in grid for gy in grid])
    d = 60.0
    yy, xx = (np.mgrid[:n_px, :n_px] + 0.0) * px
    t = np.zeros((n_px, n_px))
    for x0, y0 in cxy:
        r2 = ((xx - x0) ** 2 + (yy - y0) ** 2) / (0.5 * d) ** 2
        t += 0.5 * d * np.sqrt(np.clip(1 - r2, 0, None))
    img = 1000.0 * np.exp(-0.01 * t) + rng.normal(0, 3.0, t.shape)
    sc = Scene.create(tmp_path / "p.ome.zarr")
    sc.add("em", make_image(img.astype(np.float32), pixel_size_nm=px, modality="em"))
    locs = _blinking(rng, cxy, sigma, n_mol=40, radius=0.5 * d + 5.0)
    sc.add("antibody", make_localizations(locs, source_format="simulated"))
    return sc


def test_particles_estimate_label_precision_and_say_so(tmp_path):
    rng = np.random.default_rng(11)
    sigma = 6.0
    sc = _scene(tmp_path, rng, sigma)
    kw = dict(store=False, assume_aligned=True, tre_nm=None, events_per_molecule=1.0)
    res = analyze_particles(sc, "em", ["antibody"], **kw)
    info = res.summary["labels"]["antibody"]
    assert info["precision_source"] == "estimated (NeNA)"
    assert abs(info["precision_nm"] - sigma) < 0.15 * sigma
    given = analyze_particles(sc, "em", ["antibody"], precision_nm=sigma, **kw)
    assert given.summary["labels"]["antibody"]["precision_source"] == "given"
    a, b = res.table["n_localizations_antibody"].to_numpy(), given.table["n_localizations_antibody"].to_numpy()
    assert np.abs(a - b).sum() <= 0.02 * b.sum()


def test_particles_without_precision_or_frames_stop_with_the_flag(tmp_path):
    from correlate.elements import make_localizations

    rng = np.random.default_rng(2)
    sc = _scene(tmp_path, rng, 6.0)
    locs = sc.get("antibody").drop(columns="frame")
    sc.add("noframes", make_localizations(locs, source_format="simulated"))
    with pytest.raises(CorrelateError, match="--precision-nm"):
        analyze_particles(sc, "em", ["noframes"], store=False, assume_aligned=True, tre_nm=None)
