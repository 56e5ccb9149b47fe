"""SMLM readers: format detection, overrides, broken input and security (small files in tmp_path)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import correlate.io as cio
from correlate.errors import CorrelateError, FormatError, UnitError

TS_HEADER = '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]","bkgstd [photon]","uncertainty_xy [nm]"'


def _ts_rows(n: int = 5, start_frame: int = 1) -> str:
    return "".join(
        f"{i + 1}.0,{start_frame + i}.0,{100.5 + 10 * i},{200.25 + 5 * i},120.0,500.0,30.0,5.0,{10.0 + i}\n" for i in range(n)
    )


def write_ts(path: Path, header: str = TS_HEADER, rows: str | None = None) -> Path:
    path.write_text(header + "\n" + (_ts_rows() if rows is None else rows))
    return path


def write_decode(path: Path, xyz, frame_ix, xy_unit="px", px_size=(100.0, 120.0), empty_sig=True) -> Path:
    xyz = np.asarray(xyz, dtype=np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("meta")
        g.attrs["xy_unit"] = xy_unit
        if px_size is not None:
            g.attrs["px_size"] = np.asarray(px_size, dtype=np.float32)
        f.create_group("decode").attrs["version"] = "0.10.0"
        d = f.create_group("data")
        d["xyz"] = xyz
        d["frame_ix"] = np.asarray(frame_ix, dtype=np.int64)
        d["phot"] = np.ones(len(xyz), np.float32)
        if empty_sig:
            d["xyz_sig"] = h5py.Empty("f")
        else:
            d["xyz_sig"] = np.full_like(xyz, 0.1)
    return path


def write_picasso(path: Path, n=4, yaml_text="Pixelsize: 100\n", x=None) -> Path:
    dt = np.dtype([("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("photons", "<f4"), ("lpx", "<f4"), ("lpy", "<f4")])
    locs = np.zeros(n, dt)
    locs["frame"] = np.arange(n)
    locs["x"] = np.arange(n) + 0.5 if x is None else x
    locs["y"] = 2.0
    locs["lpx"] = locs["lpy"] = 0.1
    with h5py.File(path, "w") as f:
        f.create_dataset("locs", data=locs)
    if yaml_text is not None:
        path.with_suffix(".yaml").write_text(yaml_text)
    return path


def write_smlm(path: Path, rows=3, declared_rows=None, member="table-0.bin", name_in_manifest=None, units=None) -> Path:
    rec = np.zeros(rows, dtype=[("frame", "<u4"), ("x", "<f4"), ("y", "<f4")])
    rec["frame"] = np.arange(rows)
    rec["x"] = [10.0 * (i + 1) for i in range(rows)]
    rec["y"] = [20.0 * (i + 1) for i in range(rows)]
    manifest = {
        "format_version": "0.2",
        "formats": {
            "bin": {
                "type": "table", "mode": "binary", "columns": 3, "headers": ["frame", "x", "y"],
                "dtype": ["uint32", "float32", "float32"], "shape": [1, 1, 1],
                "units": units if units is not None else ["frame", "nm", "nm"],
            }
        },
        "files": [{
            "name": name_in_manifest or member, "type": "table", "format": "bin", "channel": "default",
            "rows": rows if declared_rows is None else declared_rows, "offset": {},
            "min": {"x": 10.0, "y": 20.0}, "max": {"x": 10.0 * rows, "y": 20.0 * rows},
        }],
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr(member, rec.tobytes())
    return path


def _raises(exc, path, fn, *args, match=None, **kw):
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kw)
    assert str(path.parent / path.stem) in str(info.value), str(info.value)
    return info.value


# ---------------------------------------------------------------- detection


def test_csv_sniffing_picks_the_right_reader(tmp_path, formats_dir):
    ts = write_ts(tmp_path / "a.csv")
    assert cio.find_reader(ts).name == "thunderstorm"
    nano = tmp_path / "b.csv"
    nano.write_text("Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background\n0,0,1.0,2.0,0,100,1\n1,3,5.0,6.0,0,90,2\n")
    assert cio.find_reader(nano).name == "nanoimager"
    gen = tmp_path / "c.csv"
    gen.write_text("x_nm,y_nm,frame\n1,2,0\n")
    assert cio.find_reader(gen).name == "table"
    assert cio.find_reader(formats_dir / "smlm/decode_dstorm_data.h5").name == "decode"
    assert cio.find_reader(formats_dir / "smlm/testdata_locs.hdf5").name == "picasso"
    assert cio.find_reader(formats_dir / "smlm/Elyra_dstorm_data.txt").name == "elyra"
    assert cio.find_reader(formats_dir / "smlm/rapidSTORM_dstorm_data.txt").name == "rapidstorm"


def test_content_sniffing_with_unexpected_suffix(tmp_path, formats_dir):
    # A DECODE file named .hdf5 and a Picasso file named .h5 are still told apart by content.
    dec = write_decode(tmp_path / "d.hdf5", [[1, 2, 3]], [0])
    assert cio.read(dec).attrs["source_format"] == "decode"
    pic = write_picasso(tmp_path / "p.h5")
    assert cio.read(pic).attrs["source_format"] == "picasso"


# ---------------------------------------------------------------- conversions and overrides


def test_thunderstorm_units_px_um_and_precision_names(tmp_path):
    px = write_ts(tmp_path / "px.csv", header=TS_HEADER.replace("x [nm]", "x [px]").replace("y [nm]", "y [px]"))
    err = _raises(UnitError, px, cio.read, px)
    assert "pixel_size_nm" in str(err)
    df = cio.read(px, pixel_size_nm=160.0)
    np.testing.assert_allclose(df["x"].iloc[:2], [100.5 * 160, 110.5 * 160])
    assert df.attrs["camera_pixel_size_nm"] == 160.0
    um = write_ts(tmp_path / "um.csv", header=TS_HEADER.replace("x [nm]", "x [um]").replace("uncertainty_xy [nm]", "uncertainty [um]"))
    df = cio.read(um)
    assert df["x"].iloc[0] == pytest.approx(100500.0) and df["y"].iloc[0] == pytest.approx(200.25)
    assert df["precision"].iloc[0] == pytest.approx(10000.0)
    assert df["frame"].tolist() == [0, 1, 2, 3, 4]  # 1-based file -> 0-based


def test_thunderstorm_header_only_is_an_empty_table(tmp_path):
    df = cio.read(write_ts(tmp_path / "e.csv", rows=""))
    assert len(df) == 0 and {"x", "y", "frame"} <= set(df.columns)


def test_channel_override_and_columns_mapping(tmp_path, formats_dir):
    df = cio.read(formats_dir / "smlm/Thunderstorm_dstorm_data.csv", channel="AF647")
    assert (df["channel"] == "AF647").all()
    df = cio.read(formats_dir / "smlm/Nanoimager_dstorm_data.csv", channel="red")
    assert (df["channel"] == "red").all() and any("replaced" in n for n in df.attrs["notes"])
    gen = tmp_path / "g.tsv"
    gen.write_text("PosX\tPosY\tT\tcolor\n1.5\t2.5\t1\tred\n3\t4\t2\tgreen\n")
    df = cio.read(gen, columns={"x": "PosX", "y": "PosY", "frame": "T", "channel": "color"}, unit="um", frame_base=1)
    assert df["x"].tolist() == [1500.0, 3000.0] and df["frame"].tolist() == [0, 1]
    assert df["channel"].tolist() == ["red", "green"]
    with pytest.raises(FormatError, match="not in the table"):
        cio.read(gen, columns={"x": "nope", "y": "PosY"}, unit="nm")


def test_columns_mapping_wins_over_a_column_recognised_by_name(tmp_path):
    # 'x' is recognised by name, but the caller says x is 'Xc': Xc must become x, wherever it sits.
    p = tmp_path / "two_x.csv"
    p.write_text("x,y,Xc,frame\n1,2,100,0\n3,4,300,1\n")
    df = cio.read(p, columns={"x": "Xc"}, unit="nm")
    assert df["x"].tolist() == [100.0, 300.0] and df["y"].tolist() == [2.0, 4.0]
    assert df["x_unmapped"].tolist() == [1.0, 3.0]  # the other column is kept, renamed
    q = tmp_path / "two_x_first.csv"
    q.write_text("Xc,x,y\n100,1,2\n")
    assert cio.read(q, columns={"x": "Xc"}, unit="nm")["x"].tolist() == [100.0]


def test_generic_table_without_unit_is_an_error(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("x,y,frame\n1,2,0\n")
    _raises(UnitError, p, cio.read, p, match="unit=")
    assert cio.read(p, unit="nm")["x"].tolist() == [1.0]


def test_decode_units_and_overrides(tmp_path):
    p = write_decode(tmp_path / "d.h5", [[1.0, 2.0, 50.0]], [0], empty_sig=False)
    df = cio.read(p)
    assert (df["x"].iloc[0], df["y"].iloc[0], df["z"].iloc[0]) == pytest.approx((100.0, 240.0, 50.0))
    # xyz_sig: x, y in px like xyz, z in nm
    assert (df["precision_x"].iloc[0], df["precision_y"].iloc[0], df["precision_z"].iloc[0]) == pytest.approx((10.0, 12.0, 0.1))
    nm = write_decode(tmp_path / "nm.h5", [[1.0, 2.0, 50.0]], [0], xy_unit="nm")
    assert cio.read(nm)["x"].iloc[0] == pytest.approx(1.0)
    nopx = write_decode(tmp_path / "nopx.h5", [[1.0, 2.0, 50.0]], [0], px_size=None)
    _raises(UnitError, nopx, cio.read, nopx, match="pixel_size_nm")
    assert cio.read(nopx, pixel_size_nm=(10, 20))["y"].iloc[0] == pytest.approx(40.0)
    # a caller's pixel size is checked like the file's: no silent 0 or negative positions
    for bad in (0, -5, (1, 2, 3), "abc"):
        _raises(UnitError, p, cio.read, p, pixel_size_nm=bad, match="pixel_size_nm")


def test_picasso_pixel_size_sources(tmp_path):
    p = write_picasso(tmp_path / "a_locs.hdf5", yaml_text="Camera.Pixelsize: 160\n---\nPixelsize: 130\n---\nInfo: x\n")
    df = cio.read(p)
    assert df["x"].iloc[0] == pytest.approx(0.5 * 130)
    assert cio.read(p, pixel_size_nm=100)["x"].iloc[0] == pytest.approx(50.0)
    nosidecar = write_picasso(tmp_path / "b_locs.hdf5", yaml_text=None)
    _raises(FormatError, nosidecar, cio.read, nosidecar, match="sidecar")
    assert cio.read(nosidecar, pixel_size_nm=100)["precision_x"].iloc[0] == pytest.approx(10.0)
    text = write_picasso(tmp_path / "t_locs.hdf5", yaml_text="Pixelsize: 130 nm\n")
    _raises(UnitError, text, cio.read, text, match="Pixelsize")
    df = cio.read(text, pixel_size_nm=100)  # the caller's value replaces the unusable one
    assert df["x"].iloc[0] == pytest.approx(50.0) and any("overrides" in n for n in df.attrs["notes"])
    nokey = write_picasso(tmp_path / "c_locs.hdf5", yaml_text="Camera.Pixelsize: 160\n")
    with pytest.raises(FormatError, match="Pixelsize"):
        cio.read(nokey)


def test_smlm_column_major_detected_from_min_max(tmp_path):
    rows = 4
    cols = [np.arange(rows, dtype="<u4"), np.array([1.0, 2.0, 3.0, 4.0], "<f4"), np.array([5.0, 6.0, 7.0, 8.0], "<f4")]
    p = write_smlm(tmp_path / "cm.smlm", rows=rows)
    with zipfile.ZipFile(p) as z:
        manifest = json.loads(z.read("manifest.json"))
    manifest["files"][0]["min"] = {"x": 1.0, "y": 5.0}
    manifest["files"][0]["max"] = {"x": 4.0, "y": 8.0}
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("table-0.bin", b"".join(c.tobytes() for c in cols))
    df = cio.read(p)
    assert df["x"].tolist() == [1.0, 2.0, 3.0, 4.0] and df["y"].tolist() == [5.0, 6.0, 7.0, 8.0]
    assert any("column-major" in n for n in df.attrs["notes"])


# ---------------------------------------------------------------- broken input, per family


def _cut_mid_line(data: bytes, frac: float = 0.6) -> bytes:
    """Cut just after a field separator, so the last row is short of fields."""
    cut = int(len(data) * frac)
    while data[cut - 1 : cut] not in (b",", b"\t", b" "):
        cut += 1
    return data[: cut + 1]


@pytest.mark.parametrize(
    "rel",
    [
        "smlm/Thunderstorm_dstorm_data.csv",
        "smlm/Nanoimager_dstorm_data.csv",
        "smlm/Elyra_dstorm_data.txt",
        "smlm/rapidSTORM_dstorm_data.txt",
        "smlm/SMLM_dstorm_data.smlm",
        "smlm/decode_dstorm_data.h5",
        "smlm/smap_dstorm_data.mat",
        "smlm/testdata_locs.hdf5",
    ],
)
def test_truncated_file(rel, formats_dir, tmp_path):
    src = formats_dir / rel
    data = src.read_bytes()
    if rel.endswith(".txt") and "Elyra" in rel:
        data = data[: data.find(b"\x00")]  # lose the trailer too
    dst = tmp_path / src.name
    dst.write_bytes(_cut_mid_line(data))
    if src.suffix == ".hdf5":
        (tmp_path / "testdata_locs.yaml").write_bytes((formats_dir / "smlm/testdata_locs.yaml").read_bytes())
    name = cio.find_reader(src).name
    for kwargs in ({}, {"format": name}):
        _raises(FormatError, dst, cio.read, dst, **kwargs)


def test_empty_files(tmp_path):
    for suffix, name in (
        (".csv", "thunderstorm"), (".csv", "nanoimager"), (".txt", "elyra"), (".txt", "rapidstorm"),
        (".smlm", "smlm"), (".h5", "decode"), (".mat", "smap"), (".hdf5", "picasso"), (".csv", "table"),
    ):
        p = tmp_path / f"empty_{name}{suffix}"
        p.write_bytes(b"")
        _raises(FormatError, p, cio.read, p, match="empty")
        _raises(FormatError, p, cio.read, p, format=name)


def test_wrong_extension_or_content(tmp_path, formats_dir):
    fake_h5 = tmp_path / "locs.h5"
    fake_h5.write_bytes((formats_dir / "smlm/Thunderstorm_dstorm_data.csv").read_bytes())
    _raises(FormatError, fake_h5, cio.read, fake_h5, match="content")
    png = tmp_path / "image.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    _raises(FormatError, png, cio.read, png)
    notzip = tmp_path / "x.smlm"
    notzip.write_text("hello")
    _raises(FormatError, notzip, cio.read, notzip, format="smlm")
    mat5 = tmp_path / "old.mat"
    mat5.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    _raises(FormatError, mat5, cio.read, mat5, format="smap", match="v7.3")
    # A DECODE file handed to the Picasso reader and vice versa.
    dec = write_decode(tmp_path / "d.h5", [[1, 2, 3]], [0])
    (tmp_path / "d.yaml").write_text("Pixelsize: 100\n")
    _raises(FormatError, dec, cio.read, dec, format="picasso", match="locs")
    pic = write_picasso(tmp_path / "p.hdf5")
    _raises(FormatError, pic, cio.read, pic, format="decode", match="data/xyz")


def test_missing_required_columns(tmp_path):
    noy = write_ts(tmp_path / "noy.csv", header=TS_HEADER.replace('"y [nm]"', '"yy [nm]"'))
    _raises(FormatError, noy, cio.read, noy)  # sniffing finds no reader
    _raises(FormatError, noy, cio.read, noy, format="thunderstorm", match="'y")
    nano = tmp_path / "n.csv"
    nano.write_text("Channel,Frame,X (nm),Photons\n0,0,1.0,100\n")
    _raises(FormatError, nano, cio.read, nano, format="nanoimager", match="Y")
    p = tmp_path / "nox_locs.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("locs", data=np.zeros(2, dtype=[("frame", "<u4"), ("y", "<f4")]))
    p.with_suffix(".yaml").write_text("Pixelsize: 100\n")
    _raises(FormatError, p, cio.read, p, match="'x'")
    d = tmp_path / "noframe.h5"
    with h5py.File(d, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        f.create_group("data")["xyz"] = np.zeros((2, 3), np.float32)
    _raises(FormatError, d, cio.read, d, match="frame_ix")
    s = tmp_path / "s.mat"
    with h5py.File(s, "w") as f:
        f.create_group("saveloc/loc")["xnm"] = np.zeros((1, 3))
    _raises(FormatError, s, cio.read, s, match="ynm")
    z = write_smlm(tmp_path / "m.smlm")
    with zipfile.ZipFile(z, "w") as zz:
        zz.writestr("other.json", "{}")
    _raises(FormatError, z, cio.read, z, format="smlm", match="manifest")


def test_unknown_units(tmp_path):
    ts = write_ts(tmp_path / "u.csv", header=TS_HEADER.replace("x [nm]", "x [furlong]"))
    _raises(UnitError, ts, cio.read, ts, match="furlong")
    nano = tmp_path / "n.csv"
    nano.write_text("Channel,Frame,X (ft),Y (nm)\n0,0,1.0,2.0\n")
    _raises(UnitError, nano, cio.read, nano, match="ft")
    npx = tmp_path / "npx.csv"
    npx.write_text("Channel,Frame,X (px),Y (px)\n0,0,1.5,2.0\n")
    _raises(UnitError, npx, cio.read, npx, match="pixel_size_nm")
    df = cio.read(npx, pixel_size_nm=100)
    assert (df["x"].iloc[0], df["y"].iloc[0]) == (150.0, 200.0) and df.attrs["camera_pixel_size_nm"] == 100.0
    dec = write_decode(tmp_path / "d.h5", [[1, 2, 3]], [0], xy_unit="parsec")
    _raises(UnitError, dec, cio.read, dec, match="parsec")
    sm = write_smlm(tmp_path / "u.smlm", units=["frame", "furlong", "nm"])
    _raises(UnitError, sm, cio.read, sm, match="furlong")
    gen = tmp_path / "g.csv"
    gen.write_text("x,y\n1,2\n")
    _raises(UnitError, gen, cio.read, gen, unit="lightyear")


def test_non_finite_coordinates(tmp_path):
    ts = write_ts(tmp_path / "nan.csv", rows=_ts_rows(3) + "9.0,4.0,NaN,1.0,1,1,1,1,1\n")
    err = _raises(FormatError, ts, cio.read, ts, match="non-finite")
    assert "'x'" in str(err)
    dec = write_decode(tmp_path / "inf.h5", [[1, 2, 3], [np.inf, 2, 3]], [0, 1])
    _raises(FormatError, dec, cio.read, dec, match="non-finite")
    pic = write_picasso(tmp_path / "nan_locs.hdf5", x=[0.0, np.nan, 1.0, 2.0])
    _raises(FormatError, pic, cio.read, pic, match="non-finite")
    nano = tmp_path / "n.csv"
    nano.write_text("Channel,Frame,X (nm),Y (nm)\n0,0,1.0,inf\n")
    _raises(FormatError, nano, cio.read, nano, match="non-finite|parse")


def test_bad_frames(tmp_path):
    zero_in_1_based = write_ts(tmp_path / "f0.csv", rows=_ts_rows(3, start_frame=0))
    _raises(FormatError, zero_in_1_based, cio.read, zero_in_1_based, match="1-based")
    frac = write_ts(tmp_path / "f.csv", rows="1.0,1.5,1.0,2.0,1,1,1,1,1\n")
    _raises(FormatError, frac, cio.read, frac, match="integer")


def test_unknown_option_is_an_error(formats_dir):
    with pytest.raises(CorrelateError, match="columns"):
        cio.read(formats_dir / "smlm/Thunderstorm_dstorm_data.csv", columns={"x": "x"})


# ---------------------------------------------------------------- security


def test_yaml_sidecar_is_loaded_safely(tmp_path):
    marker = tmp_path / "pwned"
    evil = f'!!python/object/apply:os.system ["touch {marker}"]\n'
    p = write_picasso(tmp_path / "evil_locs.hdf5", yaml_text=evil)
    _raises(FormatError, p, cio.read, p)
    assert not marker.exists()


def test_smlm_member_names_are_not_paths(tmp_path):
    # A member literally named "../escape.bin" is read from the archive; nothing is written.
    p = write_smlm(tmp_path / "sub.smlm", member="../escape.bin")
    df = cio.read(p)
    assert df["x"].tolist() == [10.0, 20.0, 30.0]
    assert not (tmp_path.parent / "escape.bin").exists()
    # A manifest naming a file outside the archive is refused, not opened from disk.
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes(36))
    q = write_smlm(tmp_path / "q.smlm", name_in_manifest=str(outside))
    _raises(FormatError, q, cio.read, q, match="not in the archive")


def test_smlm_declared_sizes_checked_before_reading(tmp_path):
    huge = write_smlm(tmp_path / "huge.smlm", declared_rows=10**12)
    _raises(FormatError, huge, cio.read, huge, match="declares")
    short = write_smlm(tmp_path / "short.smlm", declared_rows=2)
    _raises(FormatError, short, cio.read, short, match="declares")


def test_no_pickle_or_read_hdf(monkeypatch, formats_dir):
    import pickle

    import pandas as pd

    def boom(*a, **k):
        raise AssertionError("pickle / pandas.read_hdf must not be used")

    monkeypatch.setattr(pd, "read_hdf", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    for rel in ("smlm/testdata_locs.hdf5", "smlm/decode_dstorm_data.h5", "smlm/smap_dstorm_data.mat"):
        assert len(cio.read(formats_dir / rel)) > 0


# ---------------------------------------------------------------- more layouts


def test_smlm_two_channels_and_offsets(tmp_path):
    rec = np.zeros(2, dtype=[("frame", "<u4"), ("x", "<f4"), ("y", "<f4")])
    rec["x"], rec["y"] = [1.0, 2.0], [3.0, 4.0]
    fmt = {"type": "table", "mode": "binary", "headers": ["frame", "x", "y"],
           "dtype": ["uint32", "float32", "float32"], "shape": [1, 1, 1], "units": {"x": "um", "y": "um"}}
    manifest = {"format_version": "0.2", "formats": {"b": fmt}, "files": [
        {"name": "a.bin", "format": "b", "type": "table", "channel": "AF647", "rows": 2, "offset": {"x": 100}},
        {"name": "b.bin", "format": "b", "type": "table", "channel": "CF568", "rows": 2, "offset": {}},
    ]}
    p = tmp_path / "two.smlm"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("a.bin", rec.tobytes())
        z.writestr("b.bin", rec.tobytes())
    df = cio.read(p)
    assert df["channel"].tolist() == ["AF647", "AF647", "CF568", "CF568"]
    # offset is added in the file's unit (um), then converted to nm
    assert df["x"].tolist() == pytest.approx([101000.0, 102000.0, 1000.0, 2000.0])
    assert df["y"].tolist() == pytest.approx([3000.0, 4000.0, 3000.0, 4000.0])


def test_thunderstorm_3d_columns(tmp_path):
    header = '"id","frame","x [nm]","y [nm]","z [nm]","sigma1 [nm]","sigma2 [nm]","intensity [photon]","uncertainty_xy [nm]","uncertainty_z [nm]"'
    p = tmp_path / "3d.csv"
    p.write_text(header + "\n1,1,10,20,-300,100,140,500,9,30\n2,3,11,21,250,110,120,600,8,25\n")
    df = cio.read(p)
    assert df["z"].tolist() == [-300.0, 250.0] and df["precision_z"].tolist() == [30.0, 25.0]
    assert df["precision"].tolist() == [9.0, 8.0] and df["frame"].tolist() == [0, 2]
    assert df.attrs["units"]["sigma1"] == "nm" and df["id"].dtype == np.int64


def test_rapidstorm_pixel_positions_need_pixel_size(tmp_path):
    head = ('# <localizations insequence="true" repetitions="variable">'
            '<field identifier="Position-0-0" unit="pixel" /><field identifier="Position-1-0" unit="pixel" />'
            '<field identifier="ImageNumber-0-0" unit="frame" min="0 fr" /></localizations>\n')
    p = tmp_path / "px.txt"
    p.write_text(head + "1.5 2.5 0\n3 4 1\n")
    _raises(UnitError, p, cio.read, p, match="pixel_size_nm")
    df = cio.read(p, pixel_size_nm=100)
    assert df["x"].tolist() == [150.0, 300.0] and df["frame"].tolist() == [0, 1]
    bomb = tmp_path / "doctype.txt"
    bomb.write_text('# <!DOCTYPE x [<!ENTITY a "aaaa">]><localizations><field identifier="Position-0-0" /></localizations>\n1\n')
    _raises(FormatError, bomb, cio.read, bomb, format="rapidstorm", match="DOCTYPE")
