"""Localization exports read back by the project's readers and by the peers themselves: Picasso
(``picasso.io.load_locs``) and locan (ThunderSTORM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    ref = locan.load_thunderstorm_file(path, convert=False)
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


ROOT = Path(__file__).resolve().parents[1]


def _peers_python() -> str | None:
    """A Python with Picasso (benchmarks/setup_peers.sh): $CORRELATE_PEERS_PYTHON, ./peers, ../peers."""
    cands = [os.environ.get("CORRELATE_PEERS_PYTHON")] + [str(d / "peers" / ".venv" / "bin" / "python")
                                                          for d in (ROOT, ROOT.parent)]
    return next((c for c in cands if c and Path(c).is_file()), None)


_PICASSO_LOAD = """
import json, sys
import numpy as np
import picasso.io
locs, info = picasso.io.load_locs(sys.argv[1])
np.savez(sys.argv[2], **{c: locs[c].to_numpy() for c in locs.columns})
print(json.dumps(info))
"""


def _picasso_load_locs(h5: Path, tmp_path: Path) -> tuple[pd.DataFrame, list[dict]]:
    """``picasso.io.load_locs`` in this interpreter (scripts/test.sh installs it), else in the peers venv."""
    try:
        import picasso.io
    except ImportError:
        py = _peers_python()
        if py is None:
            pytest.skip("picasso.io is not importable here (scripts/test.sh installs picassosr --no-deps) and "
                        "no peers venv (benchmarks/setup_peers.sh or CORRELATE_PEERS_PYTHON) was found")
        out = tmp_path / "picasso_locs.npz"
        r = subprocess.run([py, "-c", _PICASSO_LOAD, str(h5), str(out)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        with np.load(out) as z:
            locs = pd.DataFrame({k: z[k] for k in z.files})
        return locs, json.loads(r.stdout.strip().splitlines()[-1])
    locs, info = picasso.io.load_locs(str(h5))
    return locs.reset_index(drop=True), info


def _lab_table(rng, n: int) -> pd.DataFrame:
    """Localizations over the ranges labs record: field 5-80 um (partly left of/above the origin),
    camera pixels 60-160 nm, precision 2-30 nm, 1-3 named colours, cluster groups."""
    field = rng.uniform(5_000, 80_000)
    lo = rng.uniform(-0.2, 0.0, 2) * field
    channels = ["AF647", "CF568", "DY634"][: int(rng.integers(1, 4))]
    df = pd.DataFrame({
        "x": lo[0] + rng.uniform(0, field, n), "y": lo[1] + rng.uniform(0, field, n),
        "frame": np.sort(rng.integers(0, int(rng.integers(2_000, 60_000)), n)),
        "photons": rng.lognormal(rng.uniform(6, 9), 0.6, n), "background": rng.uniform(1, 80, n),
        "precision": rng.uniform(2, 30, n), "sigma": rng.uniform(80, 200, n),
        "channel": rng.choice(channels, n), "group": rng.integers(-1, 50, n),
    })
    return make_localizations(df, source_format="test", camera_pixel_size_nm=float(rng.uniform(60, 160)))


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_picasso_reads_the_export(tmp_path, seed):
    """Picasso's own loader returns every localization: x/y (pixels x Pixelsize + origin) to 1e-6 nm,
    lpx/lpy, frames, photons, groups and colours."""
    rng = np.random.default_rng(seed)
    df = _lab_table(rng, int(rng.integers(200, 3000)))
    if (df[["x", "y"]].to_numpy() < 0).any():
        with pytest.raises(CorrelateError, match="Picasso would drop"):
            cio.write_localizations(tmp_path / "neg_locs.hdf5", df, format="picasso")
    h5, side = cio.write_localizations(tmp_path / "run_locs.hdf5", df, format="picasso", origin_nm="min")
    locs, info = _picasso_load_locs(h5, tmp_path)
    meta = {k: v for d in info for k, v in d.items()}
    assert len(locs) == len(df), f"Picasso kept {len(locs)} of {len(df)} localizations"
    px = float(meta["Pixelsize"])
    x0, y0 = meta.get("Origin (nm)", [0.0, 0.0])
    np.testing.assert_allclose(locs["x"].to_numpy() * px + x0, df["x"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(locs["y"].to_numpy() * px + y0, df["y"].to_numpy(), atol=1e-6, rtol=0)
    for col in ("lpx", "lpy"):
        np.testing.assert_allclose(locs[col].to_numpy() * px, df["precision"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(locs["sx"].to_numpy() * px, df["sigma"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(locs["frame"].to_numpy(), df["frame"].to_numpy())
    np.testing.assert_allclose(locs["photons"].to_numpy(), df["photons"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(locs["bg"].to_numpy(), df["background"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(locs["group"].to_numpy(), df["group"].to_numpy())
    names = np.asarray(meta["Channels"])
    np.testing.assert_array_equal(names[locs["channel"].to_numpy()], df["channel"].to_numpy(str))
    assert meta["Frames"] > df["frame"].max()
    back = cio.read(h5)  # the project's reader applies the recorded origin and colour names
    np.testing.assert_allclose(back["x"].to_numpy(), df["x"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(back["channel"].to_numpy(str), df["channel"].to_numpy(str))


def test_picasso_float32_within_its_rounding(tmp_path):
    rng = np.random.default_rng(21)
    df = _lab_table(rng, 800)
    h5, _ = cio.write_localizations(tmp_path / "f32_locs.hdf5", df, format="picasso", origin_nm="min", float32=True)
    locs, info = _picasso_load_locs(h5, tmp_path)
    meta = {k: v for d in info for k, v in d.items()}
    px = float(meta["Pixelsize"])
    x0 = meta["Origin (nm)"][0]
    assert locs["x"].dtype == np.float32 and len(locs) == len(df)
    tol = float(np.spacing(np.float32(locs["x"].max()))) * px  # one float32 step at the largest position
    np.testing.assert_allclose(locs["x"].to_numpy(float) * px + x0, df["x"].to_numpy(), atol=tol, rtol=0)


def test_picasso_export_refuses_rows_picasso_would_drop(tmp_path):
    rng = np.random.default_rng(5)
    df = _table(rng)
    part = df.copy()
    part.loc[part.index[:7], "photons"] = np.nan
    with pytest.raises(CorrelateError, match=r"'photons': 7"):
        cio.write_localizations(tmp_path / "nan_locs.hdf5", part, format="picasso")
    neg = df.copy()
    neg.loc[neg.index[:3], "precision"] = -1.0
    with pytest.raises(CorrelateError, match=r"lpx < 0': 3"):
        cio.write_localizations(tmp_path / "neg_locs.hdf5", neg, format="picasso")
    empty = df.assign(precision_z=np.nan)  # a 2-D table with an empty z precision: the column is left out
    h5, side = cio.write_localizations(tmp_path / "ok_locs.hdf5", empty, format="picasso")
    import h5py

    with h5py.File(h5) as f:
        assert "lpz" not in f["locs"].dtype.names and len(f["locs"]) == len(df)
    assert "lpz" in side.read_text()


@pytest.mark.parametrize("seed", [30, 31])
def test_locan_reads_the_thunderstorm_export(tmp_path, seed):
    locan = pytest.importorskip("locan")
    rng = np.random.default_rng(seed)
    df = _lab_table(rng, int(rng.integers(200, 3000)))
    path = cio.write_localizations(tmp_path / "ts.csv", df, format="thunderstorm")
    pairs = (("x", "position_x"), ("y", "position_y"), ("precision", "uncertainty"), ("photons", "intensity"),
             ("background", "local_background"), ("sigma", "psf_sigma"))
    ref = locan.load_thunderstorm_file(path, convert=False).data  # the file's values as written
    assert len(ref) == len(df)
    for mine, theirs in pairs:
        np.testing.assert_allclose(ref[theirs].to_numpy(float), df[mine].to_numpy(), atol=1e-6, rtol=0, err_msg=mine)
    # locan's default type conversion (pandas to_numeric downcast) keeps a column in float32 when
    # every value survives within 5e-4: a field under ~8 um then reads back within that, not 1e-6 nm
    conv = locan.load_thunderstorm_file(path).data
    for mine, theirs in pairs:
        np.testing.assert_allclose(conv[theirs].to_numpy(float), df[mine].to_numpy(), atol=5e-4, rtol=0, err_msg=mine)
    np.testing.assert_array_equal(ref["frame"].to_numpy(), df["frame"].to_numpy() + 1)  # ThunderSTORM counts from 1
    names = np.asarray(sorted(df["channel"].unique()))
    np.testing.assert_array_equal(names[ref["channel"].to_numpy()], df["channel"].to_numpy(str))
    back = cio.read(path)
    np.testing.assert_array_equal(back["frame"].to_numpy(), df["frame"].to_numpy())


@pytest.mark.slow
def test_picasso_renders_every_exported_localization(tmp_path):
    """Picasso's renderer (numba, float64 and float32 exports) counts each localization once."""
    pytest.importorskip("picasso.render", reason="picassosr is installed by scripts/test.sh (--no-deps)")
    import picasso.io
    import picasso.render

    df = _lab_table(np.random.default_rng(40), 3000)
    for f32 in (False, True):
        h5, _ = cio.write_localizations(tmp_path / f"r{int(f32)}_locs.hdf5", df, format="picasso", origin_nm="min",
                                        float32=f32)
        locs, info = picasso.io.load_locs(str(h5))
        n, image = picasso.render.render(locs, info, disp_px_size=info[0]["Pixelsize"], blur_method=None)
        assert n == len(df) and image.sum() == len(df)


@pytest.mark.parametrize("seed", [20, 21])
def test_picasso_export_with_an_origin_reads_back_whole(tmp_path, seed):
    """An export relative to an origin (--origin) reads back in the original nm and colour names."""
    from correlate.cli import main
    from correlate.scene import Scene

    rng = np.random.default_rng(seed)
    df = _lab_table(rng, 800)
    df["x"] -= 2_000.0  # some rows left of the origin
    sc = Scene.create(tmp_path / "s.ome.zarr")
    sc.add("locs", df)
    store, out = str(tmp_path / "s.ome.zarr"), tmp_path / "o_locs.hdf5"
    base = ["export", store, "localizations", "--name", "locs", "--format", "picasso", "-o", str(out)]
    assert main(base) == 1  # Picasso would drop the rows at negative x
    assert main(base + ["--origin", "min"]) == 0
    back = cio.read(out)
    for c in ("x", "y"):
        np.testing.assert_allclose(back[c].to_numpy(), df[c].to_numpy(), atol=1e-6, rtol=0)
    assert list(back["channel"]) == list(df["channel"])
    assert main(base + ["--origin=-20000,-20000"]) == 0  # a leading minus needs the = form
    np.testing.assert_allclose(cio.read(out)["x"].to_numpy(), df["x"].to_numpy(), atol=1e-6, rtol=0)
    assert main(base + ["--origin", "nonsense"]) == 1
