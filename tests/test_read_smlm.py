"""SMLM localization readers against the reference readings (MANIFEST.tsv) and locan 0.22."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import correlate.io as cio
from correlate.elements import validate_localizations

# rel_path -> (reader name, locan FileType name or None, locan keeps px: (fx, fy) factors or None)
SMLM_FILES = {
    "smlm/Thunderstorm_dstorm_data.csv": ("thunderstorm", "THUNDERSTORM"),
    "smlm/Elyra_dstorm_data.txt": ("elyra", "ELYRA"),
    "smlm/Nanoimager_dstorm_data.csv": ("nanoimager", "NANOIMAGER"),
    "smlm/SMLM_dstorm_data.smlm": ("smlm", "SMLM"),
    "smlm/decode_dstorm_data.h5": ("decode", "DECODE"),
    "smlm/decode_dstorm_data_empty.h5": ("decode", "DECODE"),
    "smlm/rapidSTORM_dstorm_data.txt": ("rapidstorm", "RAPIDSTORM"),
    "smlm/smap_dstorm_data.mat": ("smap", "SMAP"),
    "smlm/testdata_locs.hdf5": ("picasso", None),  # locan does not read Picasso HDF5
}


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]


def _assert_sig(actual: float, expected: float, digits: int, what: str) -> None:
    """``actual`` rounds to ``expected`` written with ``digits`` significant digits."""
    if expected == 0:
        assert actual == 0, f"{what}: {actual} != 0"
        return
    # Half a unit in the last written digit (the manifest may write fewer digits, e.g. 42.8).
    tol = 0.5 * 10 ** (math.floor(math.log10(abs(expected))) - digits + 1) * (1 + 1e-9)
    assert abs(actual - expected) <= tol, f"{what}: {actual} vs manifest {expected} (tol {tol})"


def _xyz(df) -> list[str]:
    return [c for c in ("x", "y", "z") if c in df.columns]


@pytest.fixture(scope="module")
def smlm_reads(formats_dir):
    return {rel: cio.read(formats_dir / rel) for rel in SMLM_FILES}


def test_every_smlm_sample_is_covered(formats_dir, manifest):
    listed = {k for k, r in manifest.items() if k.startswith("smlm/") and r["kind"] == "localizations"}
    assert listed == set(SMLM_FILES)


@pytest.mark.parametrize("rel", sorted(SMLM_FILES))
def test_matches_manifest(rel, manifest, smlm_reads):
    row = manifest[rel]
    df = smlm_reads[rel]
    validate_localizations(df)
    assert df.attrs["source_format"] == SMLM_FILES[rel][0]
    assert len(df) == int(row["n_rows"])
    base = int(row["frame_base"].split()[0])
    assert df.attrs["frame_base"] == base
    assert df["frame"].dtype == np.int64
    cols = _xyz(df)
    if row["first_row_xyz_nm"]:
        first, last = _numbers(row["first_row_xyz_nm"]), _numbers(row["last_row_xyz_nm"])
        assert len(first) <= len(cols)
        for i, c in enumerate(cols[: len(first)]):
            _assert_sig(df[c].iloc[0], first[i], 6, f"first row {c}")
            _assert_sig(df[c].iloc[-1], last[i], 6, f"last row {c}")
        for c in ("x", "y", "z"):
            if row[f"mean_{c}_nm"]:
                _assert_sig(df[c].mean(), float(row[f"mean_{c}_nm"]), 4, f"mean {c}")
    rng = row["frame_range_in_file"]
    if rng == "empty":
        assert len(df) == 0
    else:
        lo, hi = (int(v) for v in rng.split(".."))
        assert df["frame"].min() + base == lo and df["frame"].max() + base == hi
        assert df["frame"].min() >= 0
    n_ch = int(row["n_channels"])
    if "channel" in df.columns:
        assert df["channel"].nunique() == n_ch
    else:
        assert n_ch == 1
    if row["precision_mean_nm"]:
        if rel.endswith(".mat"):
            # SMAP locprecnm is dominated by outliers (max ~1e6 nm): compare the median (NOTES.md).
            _assert_sig(df["precision"].median(), 127.1, 4, "median locprecnm")
            _assert_sig(df["precision"].mean(), float(row["precision_mean_nm"]), 4, "mean locprecnm")
        else:
            pairs = re.findall(r"(-?[\d.]+)\s*(?:\((\w+)\))?", row["precision_mean_nm"])
            for value, axis in pairs:
                col = {"": "precision", "lpx": "precision_x", "lpy": "precision_y"}.get(axis, f"precision_{axis}")
                _assert_sig(df[col].mean(), float(value), 4, f"mean {col}")


def test_units_and_attrs(smlm_reads):
    ts = smlm_reads["smlm/Thunderstorm_dstorm_data.csv"]
    assert ts.attrs["units"]["x"] == "nm" and ts.attrs["units"]["precision"] == "nm"
    assert {"photons", "background", "sigma", "precision", "bkgstd", "chi2", "id"} <= set(ts.columns)
    pic = smlm_reads["smlm/testdata_locs.hdf5"]
    # Pixelsize 130 from the last YAML document, not Camera.Pixelsize 160.
    assert pic.attrs["camera_pixel_size_nm"] == 130.0
    assert pic["frame"].min() == 11  # Picasso frames are 0-based: unchanged
    dec = smlm_reads["smlm/decode_dstorm_data.h5"]
    assert dec.attrs["camera_pixel_size_nm"] == [127.0, 117.0]
    ely = smlm_reads["smlm/Elyra_dstorm_data.txt"]
    assert ely.attrs["camera_pixel_size_nm"] == pytest.approx(97.0873786)
    assert "z" not in ely.columns and "Z Slice" in ely.columns  # Z Slice is an index, not z
    nano = smlm_reads["smlm/Nanoimager_dstorm_data.csv"]
    assert sorted(nano["channel"].value_counts().tolist()) == [5, 9]
    smap = smlm_reads["smlm/smap_dstorm_data.mat"]
    assert smap.attrs["camera_pixel_size_nm"] == pytest.approx(104.0)
    np.testing.assert_allclose(smap["x"] / smap["xpix"], 104.0, rtol=1e-5)
    for df in smlm_reads.values():
        assert df.attrs["kind"] == "localizations" and "origin" in df.attrs


def test_decode_empty_is_valid_empty_table(smlm_reads):
    df = smlm_reads["smlm/decode_dstorm_data_empty.h5"]
    assert len(df) == 0 and {"x", "y", "z", "frame"} <= set(df.columns)
    assert any("0 emitters" in n for n in df.attrs["notes"])


@pytest.mark.parametrize("rel", sorted(k for k, v in SMLM_FILES.items() if v[1]))
def test_agrees_with_locan(rel, formats_dir, smlm_reads):
    locan = pytest.importorskip("locan")
    ft = getattr(locan.FileType, SMLM_FILES[rel][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ld = locan.load_locdata(formats_dir / rel, file_type=ft)
    ours = smlm_reads[rel]
    assert len(ld) == len(ours)
    if len(ours) == 0:
        return
    theirs = ld.data
    fx = fy = 1.0
    if SMLM_FILES[rel][0] == "decode":  # locan keeps DECODE x, y (and z) in px; z is really nm
        fx, fy = ours.attrs["camera_pixel_size_nm"]
    for c, f in (("x", fx), ("y", fy), ("z", 1.0)):
        if c not in ours.columns:
            assert f"position_{c}" not in theirs.columns
            continue
        t = theirs[f"position_{c}"].to_numpy(dtype=np.float64) * f
        # locan stores some positions as float32: agree to float32 resolution.
        np.testing.assert_allclose(ours[c].to_numpy(), t, rtol=2.5e-7, atol=1e-9, err_msg=c)
    # locan keeps the file's frame numbers; ours are 0-based.
    np.testing.assert_array_equal(ours["frame"].to_numpy() + ours.attrs["frame_base"], theirs["frame"].to_numpy())
