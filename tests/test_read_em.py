"""EM image readers (MRC, FEI/Zeiss SEM TIFF, DM3/DM4, TIA SER/EMI) against the reference readings
in MANIFEST.tsv, the reference readers, and broken input."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

import correlate.io as cio
from correlate.errors import CorrelateError, FormatError, UnitError


def _valid_and_serialisable(img) -> None:
    """The element validates and its attrs survive JSON (the store writes them)."""
    import json

    from correlate.elements import validate_image

    validate_image(img)
    json.dumps(img.attrs)


# --------------------------------------------------------------------------- manifest helpers
def _sig4(value: float, ref: float) -> bool:
    """``value`` rounds to ``ref`` at 4 significant digits (the manifest's precision)."""
    if ref == 0:
        return abs(value) < 1e-9
    tol = 0.51 * 10 ** (math.floor(math.log10(abs(ref))) - 3)
    return abs(value - ref) <= tol


def _plane0(img) -> np.ndarray:
    a = np.asarray(img.values, dtype=np.float64)
    while a.ndim > 2:
        a = a[0]
    return a


def check_against_manifest(img, row: dict) -> None:
    """Shape, per-axis pixel size (rel 1e-4), plane-0 min/max/mean and quadrant means."""
    shape = tuple(int(s) for s in row["shape"].strip("()").split(",") if s.strip())
    assert tuple(img.shape) == shape, (img.dims, img.shape, shape)
    axes = row["axes"].split(",")
    sizes = row["pixel_size_nm"].split(";")
    px = img.attrs["pixel_size_nm"]
    dims = list(img.dims)
    for i, (ax, s) in enumerate(zip(axes, sizes)):
        if s.startswith("n/a"):
            continue
        dim = dims[i]
        assert dim == ax.strip().lower(), (dims, axes)
        assert px[dim] == pytest.approx(float(s), rel=1e-4), (dim, px[dim], s)
        c = np.asarray(img.coords[dim].values)
        if c.size > 1:
            assert c[1] - c[0] == pytest.approx(float(s), rel=1e-4)
    p = _plane0(img)
    for key, val in (("plane0_min", p.min()), ("plane0_max", p.max()), ("plane0_mean", p.mean())):
        assert _sig4(float(val), float(row[key])), (key, val, row[key])
    h, w = p.shape
    quads = [p[: h // 2, : w // 2], p[: h // 2, w // 2 :], p[h // 2 :, : w // 2], p[h // 2 :, w // 2 :]]
    ref = [float(v) for v in row["plane0_quadrant_means_TL_TR_BL_BR"].split(",")]
    got = [float(q.mean()) for q in quads]
    assert all(_sig4(g, r) for g, r in zip(got, ref)), (got, ref)
    if row.get("databar_rows_cropped"):
        assert img.attrs["databar_rows_cropped"] == int(row["databar_rows_cropped"].split()[0])


def _is_dask(img) -> bool:
    import dask.array as da

    return isinstance(img.data, da.Array)


NATIVE = ["em/EMD-3197.map", "em/HAADFscan.mrc", "em/FEI-Helios-Ebeam-8bits.tif", "em/test_tiff_Zeiss_SEM_512pix.tif"]
GPL = [
    "em/dmTest_float32_nonSquare_diffPixelSize.dm3",
    "em/dmTest_float32_nonSquare_diffPixelSize.dm4",
    "em/128x128_TEM_acquire-sum1.emi",
    "em/128x128_TEM_acquire-sum1_1.ser",
]


@pytest.mark.parametrize("rel", NATIVE)
def test_native_em_files_match_manifest(formats_dir, manifest, rel):
    img = cio.read(formats_dir / rel)
    check_against_manifest(img, manifest[rel])
    _valid_and_serialisable(img)
    assert img.attrs["modality"] == "em"
    assert _is_dask(img)
    assert img.attrs["source_format"]


@pytest.mark.parametrize("rel", GPL)
def test_rsciio_em_files_match_manifest(formats_dir, manifest, rel):
    pytest.importorskip("rsciio")
    img = cio.read(formats_dir / rel)
    check_against_manifest(img, manifest[rel])
    _valid_and_serialisable(img)
    assert _is_dask(img)


# --------------------------------------------------------------------------- MRC
def test_mrc_matches_mrcfile_and_origin(formats_dir):
    import mrcfile

    path = formats_dir / "em/EMD-3197.map"
    img = cio.read(path)
    with mrcfile.open(path, permissive=True) as m:
        ref = np.asarray(m.data)
        vs = m.voxel_size
        nxstart = int(m.header.nxstart)
    np.testing.assert_array_equal(img.values, ref)
    assert img.dims == ("z", "y", "x")
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(float(vs.x) / 10)
    # nxstart = -2 -> first x pixel centre at -2 voxels
    assert float(img.x[0]) == pytest.approx(nxstart * float(vs.x) / 10)
    assert float(img.x[0]) < 0


def test_mrc_single_image_and_fei_header(formats_dir):
    img = cio.read(formats_dir / "em/HAADFscan.mrc")
    assert img.dims == ("y", "x")  # nz == 1 -> 2-D
    fei = img.attrs["fei_extended_header"]
    assert fei["Pixel size X"] * 1e9 == pytest.approx(img.attrs["pixel_size_nm"]["x"], rel=1e-6)
    assert not any("differs" in n for n in img.attrs["notes"])


def _write_mrc(path, data, voxel_A, **header):
    import mrcfile

    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel_A
        for k, v in header.items():
            setattr(m.header, k, v)


def test_mrc_axis_order_mapc_mapr_maps(tmp_path):
    # stored columns run along y, rows along x: the reader must transpose to (y, x)
    truth = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)  # (y=6, x=4)
    stored = truth.T.copy()[None]  # (1, rows=x 4, cols=y 6)
    p = tmp_path / "swapped.mrc"
    _write_mrc(p, stored, (20.0, 10.0, 0.0))  # voxel x=2 nm, y=1 nm along the *physical* axes
    import mrcfile

    with mrcfile.open(p, mode="r+") as m:
        m.header.mapc, m.header.mapr, m.header.maps = 2, 1, 3
        m.header.nxstart, m.header.nystart = 5, 7  # first column (runs along y), first row (along x)
    img = cio.read(p)
    assert img.dims == ("y", "x")
    np.testing.assert_array_equal(img.values, truth)
    assert any("transposed" in n for n in img.attrs["notes"])
    # voxel sizes and starts belong to the physical axes, not to the stored ones
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 1.0, "x": 2.0})
    assert (float(img.y[0]), float(img.x[0])) == pytest.approx((5 * 1.0, 7 * 2.0))


def test_mrc_stack_needs_frame(tmp_path):
    data = np.stack([np.full((5, 7), i, np.float32) for i in range(3)])
    p = tmp_path / "stack.mrcs"
    _write_mrc(p, data, (15.0, 15.0, 15.0), ispg=0)
    with pytest.raises(FormatError, match="frame=") as e:
        cio.read(p)
    assert "stack.mrcs" in str(e.value)
    img = cio.read(p, frame=2)
    assert img.dims == ("y", "x") and float(img.values.mean()) == 2.0
    assert img.attrs["pixel_size_nm"] == {"y": 1.5, "x": 1.5}


def test_mrc_volume_and_override(tmp_path):
    p = tmp_path / "vol.mrc"
    _write_mrc(p, np.zeros((3, 4, 5), np.int16), (4.0, 5.0, 6.0), ispg=1)
    img = cio.read(p)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 0.6, "y": 0.5, "x": 0.4})
    img2 = cio.read(p, pixel_size_nm=2.0, modality="em")
    assert img2.attrs["pixel_size_nm"] == {"z": 2.0, "y": 2.0, "x": 2.0}
    assert any("override" in n for n in img2.attrs["notes"])


def test_mrc_uncalibrated_needs_pixel_size(tmp_path):
    p = tmp_path / "nocal.mrc"
    _write_mrc(p, np.zeros((1, 4, 5), np.float32), (0.0, 0.0, 0.0))
    with pytest.raises(UnitError, match="--pixel-size"):
        cio.read(p)
    assert cio.read(p, pixel_size_nm=3).attrs["pixel_size_nm"]["x"] == 3


def test_mrc_volume_without_z_size_takes_a_partial_override(tmp_path):
    p = tmp_path / "noz.mrc"
    _write_mrc(p, np.zeros((3, 4, 5), np.float32), (10.0, 20.0, 0.0), ispg=1)
    with pytest.raises(UnitError, match="'z'"):
        cio.read(p)
    img = cio.read(p, pixel_size_nm={"z": 5.0})  # x and y stay the header's
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 5.0, "y": 2.0, "x": 1.0})


def test_mrc_truncated(formats_dir, tmp_path):
    src = (formats_dir / "em/EMD-3197.map").read_bytes()
    p = tmp_path / "cut.map"
    p.write_bytes(src[: len(src) - 1000])
    with pytest.raises(FormatError, match="truncated") as e:
        cio.read(p)
    assert "cut.map" in str(e.value)
    p2 = tmp_path / "header_only.map"
    p2.write_bytes(src[:500])
    with pytest.raises(CorrelateError, match="header_only.map"):
        cio.read(p2)


def test_empty_and_wrong_extension(tmp_path):
    e = tmp_path / "empty.mrc"
    e.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        cio.read(e)
    w = tmp_path / "notes.mrc"
    w.write_text("this is a text file, not an MRC map\n" * 40)
    with pytest.raises(FormatError, match="notes.mrc"):
        cio.read(w)
    d = tmp_path / "fake.dm3"
    d.write_bytes(b"\x00\x00\x00\x07" + b"\x00" * 100)
    with pytest.raises(FormatError, match="fake.dm3"):
        cio.read(d)


def test_unknown_override_and_modality(formats_dir):
    with pytest.raises(CorrelateError, match="unknown reader option"):
        cio.read(formats_dir / "em/HAADFscan.mrc", pixelsize=3)
    with pytest.raises(CorrelateError, match="modality"):
        cio.read(formats_dir / "em/HAADFscan.mrc", modality="xray")
    with pytest.raises(UnitError):
        cio.read(formats_dir / "em/HAADFscan.mrc", pixel_size_nm=-1)
    for bad in ("abc", {"x": "abc"}, [1, "x"]):  # not numbers: a UnitError naming the field, no ValueError
        with pytest.raises(UnitError, match="pixel_size_nm"):
            cio.read(formats_dir / "em/HAADFscan.mrc", pixel_size_nm=bad)


# --------------------------------------------------------------------------- SEM TIFF
def test_zeiss_pixel_size_not_ap_pixel_size(formats_dir):
    img = cio.read(formats_dir / "em/test_tiff_Zeiss_SEM_512pix.tif")
    raw = img.attrs["raw_calibration"]
    # ap_pixel_size (5.825 nm) is the 1024-px value: a factor 2 off for this 512-px store
    assert raw["ap_pixel_size"][0] == pytest.approx(5.825)
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(2 * 5.825, rel=1e-3)
    assert img.attrs["databar_rows_cropped"] == 34
    assert any("palette" in n for n in img.attrs["notes"])
    # palette indices kept: the data zone's colour indices (multiples of 9 mapping to colours)
    # never occur in the image area, and the values are not RGB
    assert img.ndim == 2 and img.dtype == np.uint8


def test_fei_databar_cross_check(formats_dir):
    img = cio.read(formats_dir / "em/FEI-Helios-Ebeam-8bits.tif")
    raw = img.attrs["raw_calibration"]
    assert raw["PrivateFei.DatabarHeight"] == img.attrs["databar_rows_cropped"] == 29
    assert raw["Scan.PixelWidth_m"] == pytest.approx(3.3724e-6)


def test_sem_tiff_rsciio_agrees_on_calibration(formats_dir):
    pytest.importorskip("rsciio")
    from rsciio.tiff import file_reader

    for rel in ("em/FEI-Helios-Ebeam-8bits.tif", "em/test_tiff_Zeiss_SEM_512pix.tif"):
        ref = file_reader(str(formats_dir / rel))[0]
        img = cio.read(formats_dir / rel)
        for ax in ref["axes"]:
            from correlate.units import to_nm

            want = to_nm(float(ax["scale"]), ax["units"])
            dim = {"height": "y", "width": "x"}[ax["name"]]
            assert img.attrs["pixel_size_nm"][dim] == pytest.approx(want, rel=1e-4)
        # rsciio keeps the databar rows; we crop them and keep everything above
        np.testing.assert_array_equal(img.values, np.asarray(ref["data"])[: img.shape[0]])


def _fei_tiff(path, rows, resy, databar, pixel_m=2e-9):
    import tifffile

    meta = (
        "[User]\r\nDate=01/01/2026\r\n[Scan]\r\nPixelWidth={p}\r\nPixelHeight={p}\r\nHorFieldsize=1e-07\r\n"
        "[Image]\r\nResolutionX=32\r\nResolutionY={ry}\r\n[PrivateFei]\r\nDatabarHeight={db}\r\n"
    ).format(p=pixel_m, ry=resy, db=databar)
    data = np.zeros((rows, 32), np.uint8)
    data[:resy, :16] = 50  # left half of the image area
    data[: resy // 2] += 100  # top half brighter
    data[resy:] = 255  # the databar
    tifffile.imwrite(path, data, extratags=[(34682, "s", 0, meta, True)])
    return data


def test_fei_synthetic_crop_and_orientation(tmp_path):
    p = tmp_path / "fei.tif"
    data = _fei_tiff(p, rows=50, resy=40, databar=10)
    img = cio.read(p)
    assert img.attrs["source_format"] == "sem_tiff_fei"
    assert img.shape == (40, 32) and img.attrs["databar_rows_cropped"] == 10
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 2.0, "x": 2.0})
    np.testing.assert_array_equal(img.values, data[:40])
    assert img.values.max() < 255  # no databar pixel left
    # a DatabarHeight that disagrees is reported, not silently accepted
    p2 = tmp_path / "fei2.tif"
    _fei_tiff(p2, rows=50, resy=40, databar=7)
    assert any("DatabarHeight says 7" in n for n in cio.read(p2).attrs["notes"])


def test_fei_resolution_larger_than_image(tmp_path):
    p = tmp_path / "bad.tif"
    _fei_tiff(p, rows=30, resy=40, databar=0)
    with pytest.raises(FormatError, match="ResolutionY"):
        cio.read(p)


def test_fei_without_pixel_size_needs_override(tmp_path):
    import tifffile

    p = tmp_path / "nav.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8), extratags=[(34682, "s", 0, "[User]\r\nDate=x\r\n[Image]\r\nResolutionY=8\r\n", True)])
    with pytest.raises(UnitError, match="pixel"):
        cio.read(p)
    assert cio.read(p, pixel_size_nm=4).attrs["pixel_size_nm"]["x"] == 4


def test_sem_tiff_truncated(formats_dir, tmp_path):
    src = (formats_dir / "em/test_tiff_Zeiss_SEM_512pix.tif").read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(src[:5000])
    with pytest.raises(FormatError, match="cut.tif"):
        cio.read(p).values


# --------------------------------------------------------------------------- DM / TIA via rosettasciio
def test_dm_spectrum_is_refused(formats_dir):
    pytest.importorskip("rsciio")
    with pytest.raises(FormatError, match="spectrum") as e:
        cio.read(formats_dir / "em/08_carbon.dm3")
    assert "08_carbon.dm3" in str(e.value) and "eV" in str(e.value)


def test_dm_uncalibrated_needs_pixel_size(formats_dir):
    pytest.importorskip("rsciio")
    path = formats_dir / "em/test-1.dm4"
    with pytest.raises(UnitError, match="--pixel-size") as e:
        cio.read(path)
    assert "test-1.dm4" in str(e.value)
    img = cio.read(path, pixel_size_nm=0.25)
    np.testing.assert_array_equal(img.values, [[1, 2], [3, 4]])  # quadrants 1/2/3/4: no flip
    assert img.attrs["pixel_size_nm"] == {"y": 0.25, "x": 0.25}


def test_dm_mixed_units_per_axis_match_ncempy_style_reading(formats_dir):
    rsciio = pytest.importorskip("rsciio")
    from rsciio.digitalmicrograph import file_reader

    path = formats_dir / "em/dmTest_float32_nonSquare_diffPixelSize.dm3"
    img = cio.read(path)
    ref = file_reader(str(path))[0]
    np.testing.assert_array_equal(img.values, np.asarray(ref["data"]))
    units = {a["name"]: a["units"] for a in ref["axes"]}
    assert units == {"y": "A", "x": "nm"}  # the trap: y in Å, x in nm
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 0.2, "x": 1.0})
    assert rsciio  # used


def test_tia_origin_in_nm(formats_dir):
    pytest.importorskip("rsciio")
    img = cio.read(formats_dir / "em/128x128_TEM_acquire-sum1.emi")
    px = img.attrs["pixel_size_nm"]["x"]
    # rsciio's offset is in metres although the unit says nm; it equals -64 px
    assert float(img.x[0]) == pytest.approx(-64 * px, rel=1e-6)


def test_rsciio_missing_gives_install_hint(formats_dir, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("rsciio"):
            raise ImportError("no rsciio")
        return real_import(name, *a, **k)

    import importlib

    real_im = importlib.import_module

    def fake_im(name, *a, **k):
        if name.startswith("rsciio"):
            raise ImportError("no rsciio")
        return real_im(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_im)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(FormatError, match=r"pip install correlate\[gpl\]"):
        cio.read(formats_dir / "em/dmTest_float32_nonSquare_diffPixelSize.dm4")


def test_dm_truncated(formats_dir, tmp_path):
    pytest.importorskip("rsciio")
    src = (formats_dir / "em/dmTest_float32_nonSquare_diffPixelSize.dm4").read_bytes()
    p = tmp_path / "cut.dm4"
    p.write_bytes(src[: len(src) // 3])
    with pytest.raises(FormatError, match="cut.dm4"):
        cio.read(p).values
    shutil.copy(formats_dir / "em/test-1.dm4", tmp_path / "ok.dm4")
    assert cio.read(tmp_path / "ok.dm4", pixel_size_nm=1).shape == (2, 2)


# --------------------------------------------------------------------------- EMD (Berkeley, written by rosettasciio)
def _emd(path, data, axes):
    from rsciio.emd import file_writer

    file_writer(str(path), {"data": data, "axes": axes, "metadata": {"General": {"title": "haadf"}, "Signal": {"signal_type": ""}},
                            "original_metadata": {}})


def test_emd_per_axis_units(tmp_path):
    pytest.importorskip("rsciio")
    data = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    p = tmp_path / "img.emd"
    _emd(p, data, [
        {"name": "y", "size": 12, "scale": 0.5, "offset": 0.0, "units": "nm", "navigate": False},
        {"name": "x", "size": 10, "scale": 2.0, "offset": 0.0, "units": "Å", "navigate": False},
    ])
    img = cio.read(p)
    assert img.attrs["source_format"] == "emd" and img.attrs["title"] == "haadf"
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 0.5, "x": 0.2})
    np.testing.assert_array_equal(img.values, data)


def test_emd_negative_scale_is_flipped_not_mirrored(tmp_path):
    pytest.importorskip("rsciio")
    data = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # value = stored column index
    p = tmp_path / "neg.emd"
    _emd(p, data, [
        {"name": "y", "size": 4, "scale": 1.0, "offset": 0.0, "units": "nm", "navigate": False},
        {"name": "x", "size": 10, "scale": -2.0, "offset": 100.0, "units": "nm", "navigate": False},
    ])
    img = cio.read(p)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 1.0, "x": 2.0})
    # stored column j sits at x = 100 - 2 j: after reading, coordinates increase and each value
    # stays at its physical position
    x = np.asarray(img.x.values)
    np.testing.assert_allclose(x, 100.0 - 2.0 * np.asarray(img.values[0]))
    assert x[0] == pytest.approx(82.0) and np.all(np.diff(x) > 0)


def test_emd_stack_needs_frame_and_bad_unit(tmp_path):
    pytest.importorskip("rsciio")
    data = np.stack([np.full((6, 5), i, np.float32) for i in range(4)])
    p = tmp_path / "stack.emd"
    _emd(p, data, [
        {"name": "time", "size": 4, "scale": 0.1, "offset": 0.0, "units": "s", "navigate": True},
        {"name": "y", "size": 6, "scale": 1.0, "offset": 0.0, "units": "n_m", "navigate": False},
        {"name": "x", "size": 5, "scale": 1.0, "offset": 0.0, "units": "n_m", "navigate": False},
    ])
    with pytest.raises(FormatError, match="frame="):
        cio.read(p)
    img = cio.read(p, frame=3)
    assert float(img.values.mean()) == 3.0 and img.attrs["pixel_size_nm"] == {"y": 1.0, "x": 1.0}  # 'n_m' = nm
    q = tmp_path / "diff.emd"
    _emd(q, data[0], [
        {"name": "ky", "size": 6, "scale": 0.1, "offset": 0.0, "units": "1/nm", "navigate": False},
        {"name": "kx", "size": 5, "scale": 0.1, "offset": 0.0, "units": "1/nm", "navigate": False},
    ])
    with pytest.raises(FormatError, match="reciprocal"):
        cio.read(q)


def test_tia_truncated(formats_dir, tmp_path):
    pytest.importorskip("rsciio")
    src = (formats_dir / "em/128x128_TEM_acquire-sum1_1.ser").read_bytes()
    p = tmp_path / "cut_1.ser"
    p.write_bytes(src[:-100])
    with pytest.raises(FormatError, match="truncated or damaged") as e:
        cio.read(p)
    assert "cut_1.ser" in str(e.value)


def test_mrc_origin_follows_pixel_override(formats_dir):
    img = cio.read(formats_dir / "em/EMD-3197.map", pixel_size_nm=2.0)
    assert float(img.x[0]) == pytest.approx(-4.0)  # nxstart = -2 pixels


def test_same_name_same_size_files_do_not_share_dask_keys(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_mrc(tmp_path / "a" / "img.mrc", np.zeros((1, 4, 4), np.float32), (10.0, 10.0, 0.0))
    _write_mrc(tmp_path / "b" / "img.mrc", np.ones((1, 4, 4), np.float32), (10.0, 10.0, 0.0))
    a, b = cio.read(tmp_path / "a" / "img.mrc"), cio.read(tmp_path / "b" / "img.mrc")
    assert a.data.name != b.data.name
    assert float((a + b).sum()) == 16.0
