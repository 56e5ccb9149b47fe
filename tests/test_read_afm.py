"""AFM readers (JPK, Bruker Nanoscope, WSxM, TopoStats, Gwyddion) against MANIFEST.tsv, AFMReader
where it is right, and broken input."""

from __future__ import annotations

import math
import shutil
import struct

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

AFM = ["afm/old_bruker.002", "afm/sample_0.jpk", "afm/sample_0.top", "afm/sample_0_1.topostats"]


def _sig4(value: float, ref: float) -> bool:
    if ref == 0:
        return abs(value) < 1e-9
    return abs(value - ref) <= 0.51 * 10 ** (math.floor(math.log10(abs(ref))) - 3)


def _quads(p):
    h, w = p.shape
    return [p[: h // 2, : w // 2].mean(), p[: h // 2, w // 2 :].mean(), p[h // 2 :, : w // 2].mean(), p[h // 2 :, w // 2 :].mean()]


@pytest.mark.parametrize("rel", AFM)
def test_afm_files_match_manifest(formats_dir, manifest, rel):
    import dask.array as da

    row = manifest[rel]
    img = cio.read(formats_dir / rel)
    assert isinstance(img.data, da.Array)
    _valid_and_serialisable(img)
    assert img.attrs["modality"] == "afm" and img.attrs["value_unit"] == "nm"
    assert tuple(img.shape) == tuple(int(s) for s in row["shape"].strip("()").split(","))
    for dim, s in zip(img.dims, row["pixel_size_nm"].split(";")):
        assert img.attrs["pixel_size_nm"][dim] == pytest.approx(float(s), rel=1e-4)
    p = np.asarray(img.values, dtype=float)
    for key, val in (("plane0_min", p.min()), ("plane0_max", p.max()), ("plane0_mean", p.mean())):
        assert _sig4(float(val), float(row[key])), (key, val, row[key])
    ref = [float(v) for v in row["plane0_quadrant_means_TL_TR_BL_BR"].split(",")]
    got = [float(q) for q in _quads(p)]
    assert all(_sig4(g, r) for g, r in zip(got, ref)), (got, ref)


# --------------------------------------------------------------------------- AFMReader cross-checks
@pytest.fixture(scope="module")
def afmreader():
    import logging

    mod = pytest.importorskip("AFMReader")
    logging.getLogger("AFMReader").setLevel(logging.ERROR)
    return mod


def test_jpk_equals_afmreader(formats_dir, afmreader):
    from AFMReader import jpk

    ref, px = jpk.load_jpk(formats_dir / "afm/sample_0.jpk", "height_trace")
    img = cio.read(formats_dir / "afm/sample_0.jpk")
    np.testing.assert_allclose(img.values, ref, rtol=1e-12)
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(px, rel=1e-9)


def test_bruker_equals_afmreader(formats_dir, tmp_path, afmreader):
    from AFMReader import spm

    copy = tmp_path / "old_bruker.spm"  # AFMReader only dispatches on .spm
    shutil.copy(formats_dir / "afm/old_bruker.002", copy)
    ref, px = spm.load_spm(copy, "Height")
    img = cio.read(formats_dir / "afm/old_bruker.002")
    np.testing.assert_allclose(img.values, ref, rtol=1e-9)
    assert img.attrs["pixel_size_nm"]["x"] == pytest.approx(px, rel=1e-9)


def test_topostats_equals_afmreader_and_h5py(formats_dir, afmreader):
    import h5py
    from AFMReader import topostats

    path = formats_dir / "afm/sample_0_1.topostats"
    ref = topostats.load_topostats(path)
    img = cio.read(path)
    np.testing.assert_array_equal(img.values, ref["image"])
    with h5py.File(path) as h5:
        assert img.attrs["pixel_size_nm"]["x"] == float(h5["pixel_to_nm_scaling"][()])


def test_wsxm_gwyddion_rule_not_afmreader(formats_dir, afmreader):
    """AFMReader 0.0.7 min-max-normalises .top to [0, int(Z Amplitude)]; the header rule gives the
    absolute heights, cross-checked by ConversionFactor00 x Z Gain x 10 V / 32768."""
    from AFMReader import top

    path = formats_dir / "afm/sample_0.top"
    img = cio.read(path)
    v = img.values
    assert v.max() - v.min() == pytest.approx(59.7449, rel=1e-6)  # Z Amplitude '59.7449 nm'
    head = path.read_bytes()
    hsize = int(head.split(b"Image header size:")[1].split(b"\n")[0])
    raw = np.frombuffer(head[hsize : hsize + 512 * 512 * 2], "<i2").reshape(512, 512)
    np.testing.assert_allclose(v, raw * 13.6 * 1 * 10 / 32768, rtol=2e-4)  # independent scaling
    ref, px = top.load_top(path)
    assert px == pytest.approx(img.attrs["pixel_size_nm"]["x"])
    assert ref.max() == pytest.approx(59.0)  # the known AFMReader bug this reader avoids
    # orientation: same stored row order as AFMReader
    np.testing.assert_array_equal(np.argsort(ref.ravel())[:50], np.argsort(v.ravel())[:50])


# --------------------------------------------------------------------------- JPK
def test_jpk_channels_and_errors(formats_dir, tmp_path):
    path = formats_dir / "afm/sample_0.jpk"
    ph = cio.read(path, channel="phase_trace")
    assert ph.attrs["value_unit"] != "nm" and ph.attrs["channel"] == "phase_trace"
    with pytest.raises(CorrelateError, match="height_trace"):
        cio.read(path, channel="nonexistent")  # the message lists the channels
    cut = tmp_path / "cut.jpk"
    cut.write_bytes(path.read_bytes()[:300_000])
    with pytest.raises(FormatError, match="cut.jpk"):
        cio.read(cut)
    empty = tmp_path / "empty.jpk"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        cio.read(empty)


# --------------------------------------------------------------------------- Nanoscope (synthetic)
def _nanoscope(path, raw, scan="2 1 ~m", zscale="V [Sens. Zscan] (0.006713765 V/LSB) 400 V", sens="V 10.0 nm/V", drop=()):
    rows, cols = raw.shape
    hdr_len = 4096
    lines = {
        "*File list": None, "Version": "0x05310001", "Data length": str(hdr_len),
        "*Scanner list": None, "@Sens. Zscan": sens,
        "*Ciao image list": None, "Data offset": str(hdr_len), "Data length ": str(raw.nbytes),
        "Bytes/pixel": "2", "Frame direction": "Up", "Samps/line": str(cols), "Number of lines": str(rows),
        "Scan size": scan, "@2:Image Data": 'S [Height] "Height"', "@2:Z scale": zscale,
        "*File list end": None,
    }
    text = ""
    for k, v in lines.items():
        if k.strip() in drop:
            continue
        text += f"\\{k}\r\n" if v is None else f"\\{k.strip()}: {v}\r\n"
    head = text.encode("latin-1").ljust(hdr_len, b"\x00")
    path.write_bytes(head + raw.astype("<i2").tobytes())


def test_nanoscope_non_square_and_orientation(tmp_path):
    raw = np.zeros((4, 8), np.int16)
    raw[0, :4] = 1000  # first stored line, left half
    p = tmp_path / "scan.001"
    _nanoscope(p, raw)
    img = cio.read(p)
    assert img.attrs["source_format"] == "nanoscope"
    assert img.shape == (4, 8)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 250.0, "x": 250.0})  # 1 µm / 4 lines, 2 µm / 8 samples
    want = 1000 * 400 / 65536 * 10.0
    v = img.values
    assert v[-1, 0] == pytest.approx(want) and v[0, 0] == 0  # first stored line is the bottom row
    p2 = tmp_path / "scan2.spm"
    _nanoscope(p2, np.zeros((4, 8), np.int16), scan="3 1 ~m")
    assert cio.read(p2).attrs["pixel_size_nm"] == pytest.approx({"y": 250.0, "x": 375.0})


def test_nanoscope_bad_input(tmp_path):
    raw = np.ones((4, 8), np.int16)
    p = tmp_path / "nosize.spm"
    _nanoscope(p, raw, drop=("Scan size",))
    with pytest.raises(UnitError, match="Scan size"):
        cio.read(p)
    p = tmp_path / "badunit.spm"
    _nanoscope(p, raw, scan="2 1 furlong")
    with pytest.raises(UnitError, match="furlong"):
        cio.read(p)
    p = tmp_path / "nosens.spm"
    _nanoscope(p, raw, sens=None, drop=("@Sens. Zscan",))
    with pytest.raises(FormatError, match="Sens. Zscan"):
        cio.read(p)
    p = tmp_path / "cut.spm"
    _nanoscope(p, raw)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(FormatError, match="truncated") as e:
        cio.read(p)
    assert "cut.spm" in str(e.value)
    w = tmp_path / "text.spm"
    w.write_text("hello\n")
    with pytest.raises(FormatError, match="text.spm"):
        cio.read(w)
    neg = tmp_path / "neg.spm"
    _nanoscope(neg, raw)
    neg.write_bytes(neg.read_bytes().replace(b"Data offset: 4096", b"Data offset: -4096"))
    with pytest.raises(FormatError, match="Data offset") as e:
        cio.read(neg)
    assert "neg.spm" in str(e.value)


# --------------------------------------------------------------------------- WSxM (synthetic)
def _wsxm(path, raw, zamp="10 nm", xamp="300 nm", yamp="100 nm", dtype="short", drop=()):
    rows, cols = raw.shape
    body = {"X Amplitude": xamp, "Y Amplitude": yamp, "Z Amplitude": zamp, "Number of columns": str(cols),
            "Number of rows": str(rows), "Image Data Type": dtype}
    def header(size):
        s = f"WSxM file copyright UAM\r\nSxM Image file\r\nImage header size: {size}\r\n\r\n[Control]\r\n\r\n"
        s += "".join(f"    {k}: {v}\r\n" for k, v in body.items() if k not in drop)
        return s + "\r\n[Header end]\r\n"
    size = len(header(0).encode("latin-1")) + 10
    h = header(size).encode("latin-1")
    h = h.ljust(size, b" ")
    arr = raw.astype({"short": "<i2", "double": "<f8"}[dtype])
    path.write_bytes(h + arr.tobytes())


def test_wsxm_non_square(tmp_path):
    raw = np.arange(2 * 6, dtype=np.int16).reshape(2, 6)
    p = tmp_path / "img.top"
    _wsxm(p, raw)
    img = cio.read(p)
    assert img.shape == (2, 6)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 50.0, "x": 50.0})
    np.testing.assert_allclose(img.values, raw * 10 / 11)  # Z Amplitude / (max - min)
    d = tmp_path / "img.stp"
    _wsxm(d, raw.astype(float) * 0.5, dtype="double", zamp="1 µm")
    np.testing.assert_allclose(cio.read(d).values, raw * 0.5 * 1000)


def test_wsxm_bad_input(tmp_path):
    raw = np.arange(12, dtype=np.int16).reshape(3, 4)
    p = tmp_path / "noz.top"
    _wsxm(p, raw, drop=("Z Amplitude",))
    with pytest.raises(FormatError, match="Z Amplitude") as e:
        cio.read(p)
    assert "noz.top" in str(e.value)
    p = tmp_path / "unit.top"
    _wsxm(p, raw, xamp="3 furlong")
    with pytest.raises(UnitError, match="furlong"):
        cio.read(p)
    p = tmp_path / "cut.top"
    _wsxm(p, raw)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(FormatError, match="truncated"):
        cio.read(p)
    for bad in ("three", "-3"):
        p = tmp_path / f"rows_{bad}.top"
        _wsxm(p, raw)
        p.write_bytes(p.read_bytes().replace(b"Number of rows: 3", f"Number of rows: {bad}".encode()))
        with pytest.raises(FormatError, match="Number of rows") as e:
            cio.read(p)
        assert p.name in str(e.value)


# --------------------------------------------------------------------------- TopoStats
def test_topostats_missing_scaling(tmp_path):
    import h5py

    p = tmp_path / "x.topostats"
    with h5py.File(p, "w") as h5:
        h5["image"] = np.zeros((4, 6))
    with pytest.raises(UnitError, match="--pixel-size"):
        cio.read(p)
    assert cio.read(p, pixel_size_nm=2).shape == (4, 6)
    q = tmp_path / "noimg.topostats"
    with h5py.File(q, "w") as h5:
        h5["pixel_to_nm_scaling"] = 1.0
    with pytest.raises(FormatError, match="image"):
        cio.read(q)


# --------------------------------------------------------------------------- Gwyddion (synthetic, from the documented format)
def _gwy_obj(name: str, comps: list[bytes]) -> bytes:
    body = b"".join(comps)
    return name.encode() + b"\x00" + struct.pack("<I", len(body)) + body


def _c(key: str, t: str, payload: bytes) -> bytes:
    return key.encode() + b"\x00" + t.encode() + payload


def _gwy_field(data: np.ndarray, xreal: float, yreal: float, uxy="m", uz="m") -> bytes:
    yres, xres = data.shape
    unit = lambda u: _gwy_obj("GwySIUnit", [_c("unitstr", "s", u.encode() + b"\x00")])
    return _gwy_obj("GwyDataField", [
        _c("xres", "i", struct.pack("<i", xres)), _c("yres", "i", struct.pack("<i", yres)),
        _c("xreal", "d", struct.pack("<d", xreal)), _c("yreal", "d", struct.pack("<d", yreal)),
        _c("si_unit_xy", "o", unit(uxy)), _c("si_unit_z", "o", unit(uz)),
        _c("data", "D", struct.pack("<I", data.size) + data.astype("<f8").tobytes()),
    ])


def _write_gwy(path, fields: dict[str, np.ndarray], xreal=96e-9, yreal=128e-9, uxy="m"):
    comps = []
    for i, (title, d) in enumerate(fields.items()):
        comps.append(_c(f"/{i}/data", "o", _gwy_field(d, xreal, yreal, uxy)))
        comps.append(_c(f"/{i}/data/title", "s", title.encode() + b"\x00"))
    path.write_bytes(b"GWYP" + _gwy_obj("GwyContainer", comps))


def test_gwy_non_square(tmp_path):
    h = np.zeros((64, 48))  # yres 64, xres 48: 2 nm pixels both ways
    h[:32, :24] = 5e-9  # top-left quadrant 5 nm high
    amp = np.ones_like(h)
    p = tmp_path / "ns.gwy"
    _write_gwy(p, {"Amplitude": amp, "Height": h})
    img = cio.read(p)
    assert img.attrs["channel"] == "Height" and img.shape == (64, 48)
    assert img.attrs["pixel_size_nm"] == pytest.approx({"y": 2.0, "x": 2.0})
    q = _quads(img.values)
    assert q[0] == pytest.approx(5.0) and q[1] == q[2] == q[3] == 0
    assert img.attrs["value_unit"] == "nm"
    a = cio.read(p, channel="Amplitude")
    assert a.attrs["value_unit"] == "nm" and float(a.values.mean()) == pytest.approx(1e9)


def test_gwy_bad_input(tmp_path):
    p = tmp_path / "cut.gwy"
    _write_gwy(p, {"Height": np.zeros((8, 8))})
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(FormatError, match="truncated") as e:
        cio.read(p)
    assert "cut.gwy" in str(e.value)
    u = tmp_path / "unit.gwy"
    _write_gwy(u, {"Height": np.zeros((8, 8))}, uxy="furlong")
    with pytest.raises(UnitError, match="furlong"):
        cio.read(u)
    w = tmp_path / "wrong.gwy"
    w.write_bytes(b"GWYO" + b"\x00" * 32)
    with pytest.raises(FormatError, match="wrong.gwy"):
        cio.read(w)
