"""The helpers the AFM and labelled-table SMLM readers share (heights, scan size, channels, columns)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from correlate.errors import CorrelateError, UnitError
from correlate.io.readers._afm_header import choose_channel, scan_pixel_size, values_in_nm
from correlate.io.readers._smlm_columns import map_labels, require_labels, scale_columns

P = Path("x.dat")


@pytest.mark.parametrize("seed", range(5))
def test_scan_pixel_size_recovers_the_scan_lengths(seed):
    rng = np.random.default_rng(seed)
    # scan sizes labs use: 100 nm to 100 µm, grids 64 to 4096 lines, often non-square
    ly, lx = 10 ** rng.uniform(-7, -4, 2)
    rows, cols = rng.integers(64, 4097, 2)
    px = scan_pixel_size(ly, lx, int(rows), int(cols), 1e9)
    assert px["y"] * rows == pytest.approx(ly * 1e9, rel=1e-12)
    assert px["x"] * cols == pytest.approx(lx * 1e9, rel=1e-12)
    assert (px["y"] == px["x"]) == (ly / rows == lx / cols)


@pytest.mark.parametrize("unit,factor", [("m", 1e9), ("µm", 1e3), ("um", 1e3), ("nm", 1.0), ("Å", 0.1)])
def test_values_in_nm_scales_lengths(unit, factor):
    v = np.random.default_rng(1).normal(0, 1, (4, 5))
    out, u = values_in_nm(v, unit, path=P, field="z")
    assert u == "nm"
    np.testing.assert_allclose(out, v * factor, rtol=1e-15)


@pytest.mark.parametrize("unit", ["V", "deg", "", "Hz"])
def test_values_in_nm_keeps_other_units(unit):
    v = np.arange(6.0).reshape(2, 3)
    out, u = values_in_nm(v, unit, path=P, field="z")
    assert u == unit
    np.testing.assert_array_equal(out, v)


def test_choose_channel_preferred_override_and_errors():
    names = ["phase_trace", "height_trace", "height_retrace"]
    assert choose_channel(P, None, names, "height_trace") == 1
    assert choose_channel(P, None, names, "Height") == 0
    assert choose_channel(P, "height_retrace", names, "height_trace") == 2
    assert choose_channel(P, -1, names, "height_trace") == 2
    with pytest.raises(CorrelateError, match="out of range"):
        choose_channel(P, 3, names, "height_trace")
    with pytest.raises(CorrelateError, match="no channel named"):
        choose_channel(P, "amplitude", names, "height_trace")


def test_map_labels_units_and_pixels():
    canonical = {"x": "x", "y": "y", "frame": "frame", "photons": "photons"}
    labels = ["X (um)", "Y (px)", "Frame", "Photons (photon)", "Sigma (nm)"]
    names, factors, units = map_labels(
        labels, canonical, path=P, pixel_size_nm=107.0, length_columns=("x", "y"), other_units=True
    )
    assert names == ["x", "y", "frame", "photons", "Sigma"]
    assert factors == {"x": 1000.0, "y": 107.0, "Sigma": 1.0}
    assert units == {"photons": "photon", "Sigma": "nm"}
    _, _, units = map_labels(labels, canonical, path=P, pixel_size_nm=107.0, length_columns=("x", "y"), other_units=False)
    assert units == {"Sigma": "nm"}
    df = pd.DataFrame({"x": [1.5, 2.0], "y": [3.0, 4.0], "Sigma": [10.0, 20.0]})
    scale_columns(df, factors)
    np.testing.assert_allclose(df["x"], [1500.0, 2000.0])
    np.testing.assert_allclose(df["y"], [321.0, 428.0])


def test_map_labels_refuses_what_it_cannot_scale():
    canonical = {"x": "x", "y": "y"}
    with pytest.raises(UnitError, match="missing length unit"):
        map_labels(["X", "Y (nm)"], canonical, path=P, pixel_size_nm=None, length_columns=("x", "y"), other_units=True)
    with pytest.raises(UnitError, match="pixel_size_nm"):
        map_labels(["X (px)", "Y (px)"], canonical, path=P, pixel_size_nm=None, length_columns=("x", "y"), other_units=True)
    with pytest.raises(CorrelateError, match="missing required column 'Y \\(nm\\)'"):
        require_labels(["x", "frame"], ["X (nm)", "Frame"], {"x": "X (nm)", "y": "Y (nm)"}, path=P)
