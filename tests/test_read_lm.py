"""Light-microscopy image readers (Leica LIF, OME-TIFF, ImageJ TIFF, plain TIFF)."""

from __future__ import annotations

import math

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

LIF = "lm/LeicaLASX_wavelength-sweep_example.lif"


def _sig4(value: float, ref: float) -> bool:
    if ref == 0:
        return abs(value) < 1e-9
    return abs(value - ref) <= 0.51 * 10 ** (math.floor(math.log10(abs(ref))) - 3)


def _check_manifest(img, row):
    shape = tuple(int(s) for s in row["shape"].strip("()").split(","))
    assert tuple(img.shape) == shape
    for dim, s in zip(img.dims, row["pixel_size_nm"].split(";")):
        if s.startswith("n/a"):
            assert dim == "c"
            continue
        assert img.attrs["pixel_size_nm"][dim] == pytest.approx(float(s), rel=1e-4)
    p = np.asarray(img.values, dtype=float)
    while p.ndim > 2:
        p = p[0]
    for key, val in (("plane0_min", p.min()), ("plane0_max", p.max()), ("plane0_mean", p.mean())):
        assert _sig4(float(val), float(row[key])), (key, val)
    h, w = p.shape
    got = [p[: h // 2, : w // 2].mean(), p[: h // 2, w // 2 :].mean(), p[h // 2 :, : w // 2].mean(), p[h // 2 :, w // 2 :].mean()]
    ref = [float(v) for v in row["plane0_quadrant_means_TL_TR_BL_BR"].split(",")]
    assert all(_sig4(float(g), r) for g, r in zip(got, ref)), (got, ref)


# --------------------------------------------------------------------------- LIF
def test_lif_matches_manifest_and_liffile(formats_dir, manifest):
    import dask.array as da
    import liffile

    img = cio.read(formats_dir / LIF)
    _check_manifest(img, manifest[LIF])
    _valid_and_serialisable(img)
    assert isinstance(img.data, da.Array)
    assert img.dims == ("c", "y", "x")  # λ is spectral: channels, not z
    assert list(img.c.values[:2]) == ["λ 550 nm", "λ 560 nm"]
    assert img.attrs["modality"] == "lm"
    with liffile.LifFile(formats_dir / LIF) as lif:
        ref = lif.images[0].asarray()
    np.testing.assert_array_equal(img.values, ref)


def test_lif_series_frame_channel(formats_dir):
    path = formats_dir / LIF
    with pytest.raises(FormatError, match="frame=") as e:
        cio.read(path, series="x_y_z_t_lambdaEmi")
    assert "LeicaLASX" in str(e.value)
    img = cio.read(path, series=2, frame=1, channel=3, modality="sted")
    assert img.dims == ("z", "y", "x") and img.shape == (11, 64, 64)
    assert img.attrs["pixel_size_nm"]["z"] == pytest.approx(500.203, rel=1e-4)
    assert float(img.z[0]) == pytest.approx(-2500.0)
    assert img.attrs["modality"] == "sted"
    import liffile

    with liffile.LifFile(path) as lif:
        ref = lif.images[2].asarray()[1, 3]
    np.testing.assert_array_equal(img.values, ref)
    exc = cio.read(path, series="x_y_lambdaExc")
    assert exc.c.values[0].startswith("Λ")
    with pytest.raises(CorrelateError, match="no series named"):
        cio.read(path, series="nope")
    with pytest.raises(CorrelateError, match="out of range"):
        cio.read(path, series=7)


def test_lif_frame_reads_only_the_selected_frames(formats_dir, monkeypatch):
    import liffile

    path = formats_dir / LIF
    with liffile.LifFile(path) as lif:
        ref = lif.images[2].asarray()[1]  # (λ, Z, Y, X) of time point 1
        cls = type(lif.images[2])
    read = []
    real_frame = cls.frame

    def frame(self, *a, **k):
        read.append(k)
        return real_frame(self, *a, **k)

    def whole(self, *a, **k):
        raise AssertionError("frame= must not read the whole image")

    monkeypatch.setattr(cls, "asarray", whole)
    monkeypatch.setattr(cls, "frame", frame)
    img = cio.read(path, series=2, frame=1)
    assert img.dims == ("c", "z", "y", "x")
    np.testing.assert_array_equal(img.values, ref)
    assert read and all(k["T"] == 1 for k in read) and len(read) == ref.shape[0] * ref.shape[1]
    read.clear()
    one = cio.read(path, series=2, frame=1, channel=3)  # one wavelength: its z planes only
    np.testing.assert_array_equal(one.values, ref[3])
    assert len(read) == ref.shape[1] and all(k["λ"] == 3 for k in read)


def test_lif_truncated_and_wrong_content(formats_dir, tmp_path):
    src = (formats_dir / LIF).read_bytes()
    p = tmp_path / "cut.lif"
    p.write_bytes(src[: len(src) // 2])
    with pytest.raises(FormatError, match="cut.lif"):
        cio.read(p, series=2, frame=0).values
    q = tmp_path / "text.lif"
    q.write_text("not a lif\n")
    with pytest.raises(FormatError, match="text.lif"):
        cio.read(q)


# --------------------------------------------------------------------------- TIFF family
def test_ome_tiff_units_channels(tmp_path):
    import tifffile

    a = np.random.default_rng(0).integers(0, 1000, (3, 2, 20, 30)).astype(np.uint16)  # Z C Y X
    p = tmp_path / "s.ome.tif"
    tifffile.imwrite(p, a, metadata={
        "axes": "ZCYX", "PhysicalSizeX": 30, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 0.032,
        "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 0.125, "PhysicalSizeZUnit": "µm",
        "Channel": {"Name": ["AF488", "AF647"]},
    })
    img = cio.read(p, modality="sim")
    assert img.attrs["source_format"] == "ome_tiff"
    assert img.dims == ("c", "z", "y", "x")
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 125.0, "y": 32.0, "x": 30.0})
    assert list(img.c.values) == ["AF488", "AF647"]
    np.testing.assert_array_equal(img.values, a.transpose(1, 0, 2, 3))
    one = cio.read(p, channel="AF647")
    assert one.dims == ("z", "y", "x")
    np.testing.assert_array_equal(one.values, a[:, 1])


def test_ome_tiff_unknown_unit(tmp_path):
    import tifffile

    p = tmp_path / "u.ome.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), metadata={"axes": "YX", "PhysicalSizeX": 1, "PhysicalSizeXUnit": "furlong",
                                                              "PhysicalSizeY": 1, "PhysicalSizeYUnit": "furlong"})
    with pytest.raises(UnitError, match="furlong") as e:
        cio.read(p)
    assert "u.ome.tif" in str(e.value)


def test_ome_tiff_non_numeric_physical_size(tmp_path):
    import tifffile

    p = tmp_path / "nan.ome.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), metadata={"axes": "YX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1})
    with tifffile.TiffFile(p) as tif:
        xml = tif.ome_metadata.replace('PhysicalSizeX="0.1"', 'PhysicalSizeX="abc"')
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), description=xml.encode(), metadata=None)
    with pytest.raises(FormatError, match="PhysicalSizeX") as e:
        cio.read(p)
    assert "nan.ome.tif" in str(e.value)


def test_imagej_tiff(tmp_path):
    import tifffile

    a = np.arange(2 * 3 * 10 * 12, dtype=np.float32).reshape(2, 3, 10, 12)  # Z C Y X
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, a, imagej=True, resolution=(1 / 0.04, 1 / 0.05), metadata={"unit": "micron", "spacing": 0.2, "axes": "ZCYX"})
    img = cio.read(p)
    assert img.attrs["source_format"] == "imagej_tiff"
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 200.0, "y": 50.0, "x": 40.0})
    np.testing.assert_array_equal(img.values, a.transpose(1, 0, 2, 3))
    assert tuple(img.x.values[:2]) == pytest.approx((0.0, 40.0))  # pixel centres from 0


def test_imagej_tiff_without_unit_needs_override(tmp_path):
    import tifffile

    p = tmp_path / "ij_px.tif"
    tifffile.imwrite(p, np.zeros((5, 6), np.uint8), imagej=True)
    with pytest.raises(UnitError, match="--pixel-size"):
        cio.read(p)


def test_imagej_unknown_unit(tmp_path):
    import tifffile

    p = tmp_path / "ij_bad.tif"
    tifffile.imwrite(p, np.zeros((5, 6), np.uint8), imagej=True, resolution=(2.0, 2.0), metadata={"unit": "parsec"})
    with pytest.raises(UnitError, match="parsec"):
        cio.read(p)


def test_plain_tiff_override_and_dpi_ignored(tmp_path):
    import tifffile

    a = np.arange(20, dtype=np.uint16).reshape(4, 5)
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, a, resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(UnitError, match="dots per inch") as e:
        cio.read(p)
    assert "plain.tif" in str(e.value)
    img = cio.read(p, pixel_size_nm=(8, 10), modality="sted")
    assert img.attrs["pixel_size_nm"] == {"y": 8.0, "x": 10.0}
    assert img.attrs["modality"] == "sted"
    np.testing.assert_array_equal(img.values, a)
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, a, resolution=(1e5, 1e5), resolutionunit="CENTIMETER")  # 100 nm px
    assert cio.read(cm).attrs["pixel_size_nm"] == pytest.approx({"y": 100.0, "x": 100.0})


def test_tiff_rgb_and_time_axis(tmp_path):
    import tifffile

    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((6, 7, 3), np.uint8), photometric="rgb")
    img = cio.read(rgb, pixel_size_nm=5)
    assert img.dims == ("c", "y", "x") and list(img.c.values) == ["R", "G", "B"]
    t = tmp_path / "t.ome.tif"
    a = np.stack([np.full((4, 4), i, np.uint8) for i in range(3)])
    tifffile.imwrite(t, a, photometric="minisblack", metadata={"axes": "TYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1})
    with pytest.raises(FormatError, match="frame="):
        cio.read(t)
    img = cio.read(t, frame=2)
    assert img.dims == ("y", "x") and int(img.values.max()) == 2
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(100.0)  # OME default unit µm


def test_tiff_is_lazy_and_matches_tifffile(tmp_path):
    import dask.array as da
    import tifffile

    a = np.random.default_rng(1).integers(0, 255, (6, 64, 48), dtype=np.uint8)
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, a, imagej=True, resolution=(10, 10), metadata={"unit": "um", "spacing": 0.3, "axes": "ZYX"})
    img = cio.read(p)
    assert isinstance(img.data, da.Array) and img.data.npartitions > 1
    np.testing.assert_array_equal(img.values, tifffile.imread(p))


def test_tiff_truncated_empty_wrong_extension(tmp_path):
    import tifffile

    p = tmp_path / "full.tif"
    tifffile.imwrite(p, np.ones((64, 64), np.uint16))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(p.read_bytes()[:4000])
    with pytest.raises(FormatError, match="cut.tif"):
        cio.read(cut, pixel_size_nm=1).values
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        cio.read(empty)
    wrong = tmp_path / "image.tif"
    wrong.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(FormatError, match="image.tif"):
        cio.read(wrong)


def test_z_stack_without_z_step_takes_partial_override(tmp_path):
    import tifffile

    p = tmp_path / "noz.tif"
    tifffile.imwrite(p, np.zeros((3, 4, 5), np.uint8), imagej=True, resolution=(10, 10), metadata={"unit": "um", "axes": "ZYX"})
    with pytest.raises(UnitError, match="z step"):
        cio.read(p)
    img = cio.read(p, pixel_size_nm={"z": 250})
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 250.0, "y": 100.0, "x": 100.0})


def test_imagej_escaped_micro_sign(tmp_path):
    import tifffile

    p = tmp_path / "mu.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), imagej=True, resolution=(20.0, 20.0), metadata={"unit": "\\u00B5m"})
    assert cio.read(p).attrs["pixel_size_nm"] == pytest.approx({"y": 50.0, "x": 50.0})
