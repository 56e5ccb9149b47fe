"""Readers behind optional packages: Zeiss CZI (pylibCZIrw), Nikon ND2 (nd2), Abberior OBF/MSR
(msr-reader), Asylum/Igor IBW (igor2).

No real file of any of these formats was available. CZI files are written here with pylibCZIrw;
OBF and IBW files are written here from the documented binary layouts (Imspector file-format
description, Igor TN003); ND2 cannot be written, so only its metadata mapping and error paths are
tested.
"""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest

import correlate.io as cio
from correlate.errors import CorrelateError, FormatError, UnitError


def _valid_and_serialisable(img) -> None:
    from correlate.elements import validate_image

    validate_image(img)
    json.dumps(img.attrs)


def _block_import(monkeypatch, *names):
    """Make ``import name`` fail as if the package were not installed."""
    for n in names:
        for k in [k for k in sys.modules if k == n or k.startswith(n + ".")]:
            monkeypatch.delitem(sys.modules, k)
        monkeypatch.setitem(sys.modules, n, None)


# =========================================================================== CZI
def _write_czi(path, data, names=None, scale_m=(65e-9, 70e-9, 300e-9), t=None):
    """data (c, z, y, x) uint16 -> CZI; ``t`` = number of time points (data (t, c, z, y, x))."""
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    data = np.asarray(data)
    if t is None:
        data = data[None]
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for ti in range(data.shape[0]):
            for c in range(data.shape[1]):
                for z in range(data.shape[2]):
                    w.write(np.ascontiguousarray(data[ti, c, z][..., None]), plane={"C": c, "Z": z, "T": ti})
        # pylibCZIrw documents scale_* in µm but stores the number as given in the Distance Value,
        # which the CZI schema (and ZEN) define in metres: write metres like ZEN does.
        w.write_metadata(document_name="test", channel_names=dict(enumerate(names or [])),
                         scale_x=scale_m[0], scale_y=scale_m[1], scale_z=scale_m[2])


def test_czi_multichannel_zstack_roundtrip(tmp_path):
    pytest.importorskip("pylibCZIrw")
    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (2, 3, 21, 34)).astype(np.uint16)
    p = tmp_path / "stack.czi"
    _write_czi(p, data, names=["DAPI", "AF647"])
    img = cio.read(p)
    _valid_and_serialisable(img)
    assert img.dims == ("c", "z", "y", "x")
    assert img.shape == (2, 3, 21, 34)
    assert list(img.coords["c"].values) == ["DAPI", "AF647"]
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 300.0, "y": 70.0, "x": 65.0}, rel=1e-9)
    assert img.attrs["source_format"] == "czi" and img.attrs["modality"] == "lm"
    np.testing.assert_array_equal(img.values, data)
    # coordinates at pixel centres, in nm
    assert float(img.coords["x"][1] - img.coords["x"][0]) == pytest.approx(65.0)
    assert float(img.coords["z"][2] - img.coords["z"][0]) == pytest.approx(600.0)

    one = cio.read(p, channel="AF647", modality="sted")
    assert one.dims == ("z", "y", "x") and one.attrs["modality"] == "sted"
    np.testing.assert_array_equal(one.values, data[1])
    np.testing.assert_array_equal(cio.read(p, channel=0).values, data[0])
    with pytest.raises(CorrelateError, match="no channel named 'GFP'"):
        cio.read(p, channel="GFP")


def test_czi_single_plane_and_time_axis(tmp_path):
    pytest.importorskip("pylibCZIrw")
    rng = np.random.default_rng(2)
    data = rng.integers(0, 255, (2, 1, 1, 16, 24)).astype(np.uint16)  # t, c, z, y, x
    p = tmp_path / "time.czi"
    _write_czi(p, data, t=2)
    with pytest.raises(FormatError, match="frame=") as ei:
        cio.read(p)
    assert "'T'" in str(ei.value) and str(p) in str(ei.value)
    img = cio.read(p, frame=1)
    assert img.dims == ("y", "x")
    np.testing.assert_array_equal(img.values, data[1, 0, 0])
    assert any("frame 1 of 2" in n for n in img.attrs["notes"])
    assert set(img.attrs["pixel_size_nm"]) == {"y", "x"}


def test_czi_micrometres_in_metre_field_is_refused_then_overridable(tmp_path):
    pytest.importorskip("pylibCZIrw")
    data = np.arange(2 * 12 * 10, dtype=np.uint16).reshape(1, 2, 12, 10)
    p = tmp_path / "um.czi"
    _write_czi(p, data, scale_m=(0.1, 0.1, 0.5))  # µm numbers, as pylibCZIrw's docstring suggests
    with pytest.raises(UnitError, match="pixel_size_nm") as ei:
        cio.read(p)
    assert "Distance X" in str(ei.value)
    img = cio.read(p, pixel_size_nm=(500, 100, 100))
    assert img.attrs["pixel_size_nm"] == {"z": 500.0, "y": 100.0, "x": 100.0}


def test_czi_scaling_parser_pure():
    from correlate.io.readers.lm_czi import (
        czi_channel_names_from_xml,
        czi_scaling_from_xml,
    )

    xml = """<ImageDocument><Metadata><Scaling><Items>
      <Distance Id="X"><Value>1.0378322801247002E-07</Value><DefaultUnitFormat>µm</DefaultUnitFormat></Distance>
      <Distance Id="Y"><Value>1.0378322801247002E-07</Value></Distance>
      <Distance Id="Z"><Value>0</Value></Distance></Items></Scaling>
      <Information><Image><Dimensions><Channels><Channel Id="Channel:0" Name="EGFP"/>
      <Channel Id="Channel:1"/></Channels></Dimensions></Image></Information></Metadata></ImageDocument>"""
    px, raw, problems = czi_scaling_from_xml(xml)
    assert px == pytest.approx({"x": 103.78322801247002, "y": 103.78322801247002})
    assert raw["X"]["DefaultUnitFormat"] == "µm"
    assert len(problems) == 1 and "Distance Z" in problems[0]
    assert czi_channel_names_from_xml(xml, 2) == ["EGFP", "Channel:1"]
    assert czi_channel_names_from_xml(xml, 3) is None
    with pytest.raises(FormatError, match="cannot be parsed"):
        czi_scaling_from_xml("<ImageDocument><Metadata>", path="x.czi")


def test_czi_broken_files(tmp_path, monkeypatch):
    pytest.importorskip("pylibCZIrw")
    p = tmp_path / "a.czi"
    _write_czi(p, np.ones((1, 1, 8, 8), np.uint16))
    buf = p.read_bytes()
    trunc = tmp_path / "trunc.czi"
    trunc.write_bytes(buf[: len(buf) // 3])
    with pytest.raises(FormatError) as ei:
        cio.read(trunc).compute()
    assert str(trunc) in str(ei.value)
    wrong = tmp_path / "wrong.czi"
    wrong.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(FormatError, match="content matches none"):
        cio.read(wrong)
    empty = tmp_path / "empty.czi"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        cio.read(empty)
    _block_import(monkeypatch, "pylibCZIrw")
    with pytest.raises(FormatError, match=r"pip install pylibCZIrw") as ei:
        cio.read(p)
    assert str(p) in str(ei.value)


# =========================================================================== ND2 (no writer: mapping + errors)
def test_nd2_layout_mapping_pure():
    from correlate.io.readers.lm_nd2 import nd2_layout

    sizes = {"T": 3, "P": 2, "Z": 5, "C": 2, "Y": 64, "X": 48}
    lay = nd2_layout(sizes, (0.108, 0.108, 0.3), ["DAPI", "Cy5"], frame=2, series=1)
    assert lay.index == [2, 1, slice(None), slice(None), slice(None), slice(None)]
    assert lay.out_dims == ("c", "z", "y", "x")
    assert lay.pixel_size_nm == pytest.approx({"x": 108.0, "y": 108.0, "z": 300.0})
    assert lay.channel_names == ["DAPI", "Cy5"]
    assert lay.uncalibrated_reason is None
    # the mapping applied to an array laid out like ND2File.to_dask()
    arr = np.arange(np.prod(list(sizes.values()))).reshape(tuple(sizes.values()))
    out = arr[tuple(lay.index)].transpose(lay.order)
    np.testing.assert_array_equal(out, arr[2, 1].transpose(1, 0, 2, 3))  # file Z, C -> our c, z

    with pytest.raises(FormatError, match="frame=") as ei:
        nd2_layout(sizes, (0.1, 0.1, 0.3), ["a", "b"], path="f.nd2")
    assert "f.nd2" in str(ei.value) and "'T'" in str(ei.value)

    lay = nd2_layout({"C": 2, "Y": 8, "X": 9}, (0.2, 0.25, 1.0), ["GFP", "RFP"], channel="RFP")
    assert lay.out_dims == ("y", "x") and lay.index == [1, slice(None), slice(None)]
    assert lay.pixel_size_nm == pytest.approx({"x": 200.0, "y": 250.0})  # z not a dim: not reported

    lay = nd2_layout({"Y": 8, "X": 9, "S": 3}, (1.0, 1.0, 1.0), [], calibrated=(False, False, False))
    assert lay.out_dims == ("c", "y", "x") and lay.channel_names == ["R", "G", "B"]
    assert lay.pixel_size_nm == {} and "not calibrated" in lay.uncalibrated_reason

    with pytest.raises(FormatError, match="no X axis"):
        nd2_layout({"Y": 8}, (1, 1, 1), [])
    with pytest.raises(CorrelateError, match="no channel named"):
        nd2_layout({"C": 2, "Y": 8, "X": 9}, (0.1, 0.1, 1), ["a", "b"], channel="c")


def test_nd2_error_paths(tmp_path, monkeypatch):
    pytest.importorskip("nd2")
    fake = tmp_path / "fake.nd2"
    fake.write_bytes(b"\xda\xce\xbe\x0a" + b"\x00" * 400)
    with pytest.raises(FormatError, match="nd2 cannot") as ei:
        cio.read(fake)
    assert str(fake) in str(ei.value)
    wrong = tmp_path / "wrong.nd2"
    wrong.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(FormatError, match="content matches none"):
        cio.read(wrong)
    _block_import(monkeypatch, "nd2")
    with pytest.raises(FormatError, match=r"pip install nd2"):
        cio.read(fake)


# =========================================================================== OBF / MSR
_OBF_MAGIC = b"OMAS_BF\n\xff\xff"
_STACK_MAGIC = b"OMAS_BF_STACK\n\xff\xff"


def _pad15(values, fill):
    return list(values) + [fill] * (15 - len(values))


def _write_obf(path, stacks):
    """Write an OBF file (format version 1, stack version 2) per Imspector's file-format page.

    ``stacks``: list of dicts with name, data (C-order numpy array), lengths/offsets (Fortran
    order, SI units), labels (Fortran order), metre exponents (Fortran order).
    """
    descr = b"test"
    out = bytearray(struct.pack("<10sLQL", _OBF_MAGIC, 1, 0, len(descr)) + descr)
    struct.pack_into("<Q", out, 14, len(out))  # first stack position
    dtypes = {np.dtype(np.uint16): 4, np.dtype(np.float32): 64, np.dtype(np.uint8): 1}
    for k, s in enumerate(stacks):
        data = np.ascontiguousarray(s["data"])
        size = list(reversed(data.shape))
        rank = len(size)
        name = s["name"].encode()
        raw = data.tobytes()
        hdr = struct.pack("<16sLL", _STACK_MAGIC, 2, rank) + struct.pack("<15L", *_pad15(size, 1))
        hdr += struct.pack("<15d", *_pad15(s["lengths"], 0.0)) + struct.pack("<15d", *_pad15(s["offsets"], 0.0))
        next_pos_at = len(out) + len(hdr) + struct.calcsize("<LLLLLQQ")
        hdr += struct.pack("<LLLLLQQQ", dtypes[data.dtype], 0, 0, len(name), 0, 0, len(raw), 0)
        out += hdr + name + raw
        si = b""
        si += struct.pack("<18ld", *([0, 1] * 9), 1.0)  # value unit
        for i in range(15):
            e = s["metres"][i] if i < rank else 0
            si += struct.pack("<18ld", *([e, 1] + [0, 1] * 8), 1.0)
        footer = struct.pack("<L", 4 + 60 + 60 + 4 + len(si)) + struct.pack("<15L", *[0] * 15)
        footer += struct.pack("<15L", *[0] * 15) + struct.pack("<L", 0) + si
        labels = b"".join(struct.pack("<L", len(lb.encode())) + lb.encode() for lb in s["labels"])
        out += footer + labels
        if k + 1 < len(stacks):
            struct.pack_into("<Q", out, next_pos_at, len(out))
    path.write_bytes(bytes(out))


def test_obf_written_from_layout(tmp_path):
    pytest.importorskip("msr_reader")
    rng = np.random.default_rng(3)
    sted = rng.integers(0, 500, (4, 30, 40)).astype(np.uint16)  # z, y, x
    conf = rng.random((30, 40)).astype(np.float32)
    p = tmp_path / "sample.msr"
    _write_obf(p, [
        {"name": "STAR 635P {2}", "data": sted, "lengths": [40 * 20e-9, 30 * 25e-9, 4 * 150e-9],
         "offsets": [1e-6, 2e-6, 0.0], "labels": ["ExpControl X", "ExpControl Y", "ExpControl Z"], "metres": [1, 1, 1]},
        {"name": "Confocal", "data": conf, "lengths": [40 * 20e-9, 30 * 25e-9], "offsets": [0.0, 0.0],
         "labels": ["ExpControl X", "ExpControl Y"], "metres": [1, 1]},
    ])
    img = cio.read(p, modality="sted")
    _valid_and_serialisable(img)
    assert img.dims == ("z", "y", "x") and img.shape == (4, 30, 40)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"z": 150.0, "y": 25.0, "x": 20.0})
    assert img.attrs["series_name"] == "STAR 635P {2}" and img.attrs["modality"] == "sted"
    np.testing.assert_array_equal(img.values, sted)
    assert float(img.coords["x"][0]) == pytest.approx(1000.0 + 10.0)  # offset + half a pixel
    assert any("2 stacks" in n for n in img.attrs["notes"])
    c = cio.read(p, series="Confocal")
    assert c.dims == ("y", "x") and c.dtype == np.float32
    np.testing.assert_array_equal(c.values, conf)
    with pytest.raises(CorrelateError, match="no series named"):
        cio.read(p, series="Alexa 594")


def test_obf_layout_pure():
    from correlate.io.readers.lm_obf import obf_layout

    # time-lapse 2-D stack: x, y, t (Fortran order); t has a seconds unit (metre exponent 0)
    lay = obf_layout([64, 32, 5], [64e-7, 32e-7, 5.0], [0, 0, 0], ["ExpControl X", "ExpControl Y", "Time"],
                     [1, 1, 0], [1, 1, 1], frame=3)
    assert lay.index == [3, slice(None), slice(None)]
    assert lay.out_dims == ("y", "x")
    assert lay.pixel_size_nm == pytest.approx({"x": 100.0, "y": 100.0})
    with pytest.raises(FormatError, match="frame="):
        obf_layout([64, 32, 5], [1e-6, 1e-6, 5.0], [0, 0, 0], ["X", "Y", "Time"], [1, 1, 0])
    # labels decide the axis even when stored y first
    lay = obf_layout([8, 16], [8e-8, 32e-8], [0, 0], ["Y", "X"], [1, 1])
    assert lay.dims == ["x", "y"] and lay.pixel_size_nm == pytest.approx({"y": 10.0, "x": 20.0})
    # no SI units (old stacks): first axes assumed x, y, z in metres, noted
    lay = obf_layout([8, 16, 1], [8e-8, 16e-8, 0], [0, 0, 0], None, None)
    assert lay.out_dims == ("y", "x") and any("no SI units" in n for n in lay.notes)
    with pytest.raises(FormatError, match="no spatial y axis"):
        obf_layout([8, 1], [8e-8, 1e-8], [0, 0], ["X", "Y"], [1, 1])


def test_obf_broken_and_missing_package(tmp_path, monkeypatch):
    pytest.importorskip("msr_reader")
    p = tmp_path / "a.obf"
    _write_obf(p, [{"name": "s", "data": np.ones((6, 7), np.uint16), "lengths": [7e-7, 6e-7], "offsets": [0, 0],
                    "labels": ["X", "Y"], "metres": [1, 1]}])
    trunc = tmp_path / "t.obf"
    trunc.write_bytes(p.read_bytes()[:150])
    with pytest.raises(FormatError) as ei:
        cio.read(trunc)
    assert str(trunc) in str(ei.value)
    _block_import(monkeypatch, "msr_reader")
    with pytest.raises(FormatError, match=r"pip install msr-reader"):
        cio.read(p)


# =========================================================================== IBW (Asylum / Igor)
def _write_ibw(path, data, labels=(), sfA=(1e-8, 1e-8, 1, 1), dim_units=("m", "m", "", ""), data_units="m",
               note="", name="wave0"):
    """Minimal Igor binary wave v5, little-endian, NT_FP32, per Igor Technical Note TN003."""
    data = np.asarray(data, dtype="<f4")
    ndim = list(data.shape) + [0] * (4 - data.ndim)
    raw = data.tobytes(order="F")
    wh = b"".join([
        struct.pack("<IIIi", 0, 0, 0, data.size),  # next, creationDate, modDate, npnts
        struct.pack("<hh", 2, 0), b"\0" * 6, struct.pack("<h", 1),  # type NT_FP32, dLock, whpad1, whVersion
        name.encode().ljust(32, b"\0"), struct.pack("<iI", 0, 0),  # bname, whpad2, dFolder
        struct.pack("<4i", *ndim), struct.pack("<4d", *sfA), struct.pack("<4d", 0, 0, 0, 0),
        data_units.encode()[:3].ljust(4, b"\0"), b"".join(u.encode()[:3].ljust(4, b"\0") for u in dim_units),
        struct.pack("<hhdd", 0, 0, 0.0, 0.0),  # fsValid, whpad3, topFullScale, botFullScale
        struct.pack("<I4I4II", *[0] * 10), b"\0" * 64,  # dataEUnits, dimEUnits, dimLabels, waveNoteH, whUnused
        struct.pack("<hhhbbIihhII", *[0] * 11),
    ])
    assert len(wh) == 320
    note_b = note.encode("latin-1")
    lab_sizes = [0, 0, 0, 0]
    lab = b""
    if labels:
        lab = b"".join(s.encode()[:31].ljust(32, b"\0") for s in ["", *labels])
        lab_sizes[data.ndim - 1] = len(lab)
    bh = bytearray(struct.pack("<hhiiii4i4iiii", 5, 0, 320 + len(raw), 0, len(note_b), 0, 0, 0, 0, 0, *lab_sizes,
                               0, 0, 0))
    head = bh + wh
    s = int(np.frombuffer(bytes(head), "<i2").astype(np.int64).sum())
    struct.pack_into("<h", head, 2, (-s + 2**15) % 2**16 - 2**15)  # header checksum: int16 sum == 0
    path.write_bytes(bytes(head) + raw + note_b + lab)


_ASYLUM_NOTE = "ScanSize: 1.6e-07\rFastScanSize: 1.6e-07\rSlowScanSize: 1.5e-07\rScanAngle: 0\r"


def test_ibw_asylum_like_image(tmp_path):
    pytest.importorskip("igor2")
    rng = np.random.default_rng(4)
    nx, ny = 8, 5  # points (fast, x) x lines (slow, y): non-square on purpose
    height = rng.normal(2e-9, 1e-9, (nx, ny)).astype(np.float32)  # metres
    phase = rng.normal(90, 5, (nx, ny)).astype(np.float32)
    p = tmp_path / "scan.ibw"
    _write_ibw(p, np.stack([phase, height], axis=2), labels=["PhaseTrace", "HeightTrace"], sfA=(2e-8, 3e-8, 1, 1),
               data_units="", note=_ASYLUM_NOTE)
    img = cio.read(p)
    _valid_and_serialisable(img)
    assert img.attrs["channel"] == "HeightTrace" and img.attrs["modality"] == "afm"
    assert img.dims == ("y", "x") and img.shape == (ny, nx)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 30.0, "x": 20.0})
    assert img.attrs["value_unit"] == "nm"
    expect = np.flipud(height.astype(np.float64).T) * 1e9
    np.testing.assert_allclose(img.values, expect, rtol=1e-12)
    assert img.values[-1, 0] == pytest.approx(float(height[0, 0]) * 1e9)  # Igor row 0 is at the bottom
    assert img.attrs["raw_calibration"]["SlowScanSize"] == "1.5e-07"

    ph = cio.read(p, channel="PhaseTrace")
    assert ph.attrs["value_unit"] == "deg"
    np.testing.assert_allclose(ph.values, np.flipud(phase.astype(np.float64).T))
    with pytest.raises(CorrelateError, match="no channel named 'AmplitudeTrace'"):
        cio.read(p, channel="AmplitudeTrace")


def test_ibw_matches_afmreader_orientation(tmp_path):
    pytest.importorskip("igor2")
    ibw = pytest.importorskip("AFMReader.ibw")
    rng = np.random.default_rng(5)
    d = rng.normal(0, 1e-9, (6, 6, 1)).astype(np.float32)
    p = tmp_path / "sq.ibw"
    _write_ibw(p, d, labels=["HeightTrace"], sfA=(2.5e-8, 2.5e-8, 1, 1), note="ScanSize: 1.5e-07\rFastScanSize: 1.5e-07\rSlowScanSize: 1.5e-07\r")
    ref, px = ibw.load_ibw(p, "HeightTrace")
    img = cio.read(p)
    np.testing.assert_allclose(img.values, ref, rtol=1e-6)  # AFMReader: float32 x 1e9
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(px)  # square scan: AFMReader's value agrees


def test_ibw_mapping_pure_fallbacks():
    from correlate.io.readers.afm_ibw import ibw_image_from_wave

    d = np.arange(12, dtype=np.float32).reshape(4, 3) * 1e-9
    wave = {"wave_header": {"sfA": [1.0, 1.0, 1.0, 1.0], "sfB": [0] * 4, "dimUnits": [[b""] * 4] * 4,
                            "dataUnits": [b""] * 4, "bname": b"Height0"},
            "wData": d, "labels": [[], [], [], []], "note": b"FastScanSize: 4e-07\rSlowScanSize: 6e-07\r"}
    res = ibw_image_from_wave(wave)
    assert res["pixel_size_nm"] == pytest.approx({"x": 100.0, "y": 200.0})
    assert res["channel"] == "Height0" and res["value_unit"] == "nm"
    assert any("FastScanSize" in n for n in res["notes"])
    wave["note"] = b""
    res = ibw_image_from_wave(wave, path="x.ibw")
    assert res["pixel_size_nm"] is None and "dimUnits" in res["uncalibrated_reason"]
    wave["wData"] = np.zeros(10, np.float32)
    with pytest.raises(FormatError, match="not an image"):
        ibw_image_from_wave(wave, path="x.ibw")


def test_ibw_broken_and_missing_package(tmp_path, monkeypatch):
    pytest.importorskip("igor2")
    p = tmp_path / "a.ibw"
    _write_ibw(p, np.zeros((4, 4, 1), np.float32), labels=["HeightTrace"])
    trunc = tmp_path / "t.ibw"
    trunc.write_bytes(p.read_bytes()[:300])
    with pytest.raises(FormatError, match="truncated") as ei:
        cio.read(trunc)
    assert str(trunc) in str(ei.value)
    bad = tmp_path / "bad.ibw"
    bad.write_bytes(b"\x07\x00" + b"\x00" * 500)
    with pytest.raises(FormatError, match="content matches none"):
        cio.read(bad)
    no_unit = tmp_path / "nounit.ibw"
    _write_ibw(no_unit, np.zeros((4, 4, 1), np.float32), labels=["HeightTrace"], dim_units=("", "", "", ""))
    with pytest.raises(UnitError, match="pixel_size_nm"):
        cio.read(no_unit)
    assert cio.read(no_unit, pixel_size_nm=5).attrs["pixel_size_nm"] == {"y": 5.0, "x": 5.0}
    _block_import(monkeypatch, "igor2")
    with pytest.raises(FormatError, match=r"pip install igor2"):
        cio.read(p)
