"""Localization exports read back by the project's readers and by locan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import correlate.io as cio
from correlate.elements import make_localizations
from correlate.errors import CorrelateError


def _table(rng, n=500, with_z=False):
    df = pd.DataFrame({
        "x": rng.uniform(0, 40_000, n), "y": rng.uniform(0, 40_000, n),
        "frame": np.sort(rng.integers(0, 5000, n)),
        "photons": rng.lognormal(7, 0.5, n), "background": rng.uniform(5, 40, n),
        "precision": rng.uniform(3, 25, n), "sigma": rng.uniform(90, 160, n),
    })
    if with_z:
        df["z"] = rng.normal(0, 200, n)
    return make_localizations(df, source_format="test", camera_pixel_size_nm=float(rng.uniform(60, 160)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thunderstorm_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    df = _table(rng, with_z=seed == 1)
    path = cio.write_localizations(tmp_path / "locs.csv", df, format="thunderstorm")
    assert '"x [nm]"' in path.read_text().splitlines()[0]
    back = cio.read(path)
    assert back.attrs["source_format"] == "thunderstorm"
    for c in ["x", "y", "photons", "background", "precision", "sigma"] + (["z"] if seed == 1 else []):
        np.testing.assert_allclose(back[c].to_numpy(), df[c].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(back["frame"].to_numpy(), df["frame"].to_numpy())
    locan = pytest.importorskip("locan")
    ref = locan.load_thunderstorm_file(path)
    np.testing.assert_allclose(ref.data["position_x"].to_numpy(float), df["x"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(ref.data["position_y"].to_numpy(float), df["y"].to_numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_picasso_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    df = _table(rng, with_z=seed == 0)
    h5, side = cio.write_localizations(tmp_path / "run_locs.hdf5", df, format="picasso")
    assert side.exists()
    back = cio.read(h5)
    assert back.attrs["source_format"] == "picasso"
    for c in ["x", "y", "photons", "background"] + (["z"] if seed == 0 else []):
        np.testing.assert_allclose(back[c].to_numpy(), df[c].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(back["frame"].to_numpy(), df["frame"].to_numpy())
    np.testing.assert_allclose(back["precision_x"].to_numpy(), df["precision"].to_numpy(), atol=1e-6)
    import h5py
    import yaml

    px = df.attrs["camera_pixel_size_nm"]  # Picasso's own layout: camera pixels, Pixelsize in the YAML
    with h5py.File(h5) as f:
        raw = f["locs"][()]
    np.testing.assert_allclose(raw["x"] * px, df["x"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(raw["lpx"] * px, df["precision"].to_numpy(), atol=1e-6, rtol=0)
    assert list(yaml.safe_load_all(side.read_text()))[-1]["Pixelsize"] == pytest.approx(px)


def test_picasso_needs_a_pixel_size(tmp_path):
    df = _table(np.random.default_rng(0))
    df.attrs.pop("camera_pixel_size_nm", None)
    with pytest.raises(CorrelateError, match="pixel size"):
        cio.write_localizations(tmp_path / "a.hdf5", df, format="picasso")
    with pytest.raises(CorrelateError, match="frame"):
        cio.write_localizations(tmp_path / "b.csv", df.drop(columns="frame"), format="thunderstorm")


def test_cli_export_localizations_formats(tmp_path):
    from correlate.cli import main
    from correlate.scene import Scene

    df = _table(np.random.default_rng(4))
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add("locs", df)
    assert main(["export", str(tmp_path / "s.ome.zarr"), "localizations", "--name", "locs",
                 "--format", "thunderstorm", "-o", str(tmp_path / "ts.csv")]) == 0
    np.testing.assert_allclose(cio.read(tmp_path / "ts.csv")["x"].to_numpy(), df["x"].to_numpy(), atol=1e-6, rtol=0)
    assert main(["export", str(tmp_path / "s.ome.zarr"), "localizations", "--name", "locs", "--format", "picasso",
                 "--pixel-size", "100", "-o", str(tmp_path / "p_locs.hdf5")]) == 0
    back = cio.read(tmp_path / "p_locs.hdf5")
    np.testing.assert_allclose(back["y"].to_numpy(), df["y"].to_numpy(), atol=1e-6, rtol=0)
    assert back.attrs["camera_pixel_size_nm"] == 100.0
