"""Readers under hostile input: size bombs, aliases, truncation, damaged structure, lazy errors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import correlate.io as cio
from correlate.errors import CorrelateError, FormatError, UnitError


def _copy(formats_dir: Path, rel: str, tmp_path: Path, *siblings: str) -> Path:
    src = formats_dir / rel
    out = tmp_path / src.name
    shutil.copyfile(src, out)
    for suf in siblings:
        shutil.copyfile(src.with_suffix(suf), out.with_suffix(suf))
    return out


def test_yaml_alias_bomb_refused_quickly(formats_dir, tmp_path):
    path = _copy(formats_dir, "smlm/testdata_locs.hdf5", tmp_path)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path.with_suffix(".yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="alias") as exc:
        cio.read(path)
    assert len(str(exc.value)) < 500 and "testdata_locs.yaml" in str(exc.value)


def test_hdf5_dataset_declaring_more_than_the_file_holds(tmp_path):
    import h5py

    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        f.create_group("meta").attrs.update({"xy_unit": "nm", "px_size": [100.0, 100.0]})
        f.create_dataset("data/xyz", shape=(2**31, 3), dtype="f8", chunks=(1 << 16, 3))  # never written
    assert path.stat().st_size < 100_000
    with pytest.raises(FormatError, match="declares") as exc:
        cio.read(path)
    assert "bomb.h5" in str(exc.value) and "data/xyz" in str(exc.value)


def test_smlm_zip_member_bomb_refused(formats_dir, tmp_path):
    src = formats_dir / "smlm/SMLM_dstorm_data.smlm"
    with zipfile.ZipFile(src) as z:
        manifest = json.loads(z.read("manifest.json"))
    entry = next(f for f in manifest["files"] if f.get("type", "table") == "table")
    fmt = manifest["formats"][entry["format"]]
    row_bytes = sum(np.dtype({"float32": "f4", "float64": "f8", "uint32": "u4", "int32": "i4", "uint8": "u1",
                              "uint16": "u2", "int16": "i2", "int8": "i1", "uint64": "u8", "int64": "i8"}
                             .get(str(d).lower(), "f4")).itemsize for d in fmt["dtype"])
    rows = (300 << 20) // row_bytes
    entry["rows"] = rows
    out = tmp_path / "bomb.smlm"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr(entry["name"], bytes(rows * row_bytes))  # zeros: 300 MB that deflate to ~300 kB
    assert out.stat().st_size < 2 << 20
    with pytest.raises(FormatError, match="expansion") as exc:
        cio.read(out)
    assert "bomb.smlm" in str(exc.value)


@pytest.mark.parametrize("rel", ["smlm/Thunderstorm_dstorm_data.csv", "smlm/Nanoimager_dstorm_data.csv",
                                 "smlm/rapidSTORM_dstorm_data.txt", "smlm/Elyra_dstorm_data.txt"])
def test_text_table_cut_inside_its_last_line(formats_dir, tmp_path, rel):
    data = (formats_dir / rel).read_bytes()
    out = tmp_path / Path(rel).name
    table_end = data.find(b"\x00") if b"\x00" in data else len(data)  # Elyra: a metadata trailer follows
    out.write_bytes(data[: table_end - 4] if table_end == len(data) else data[: table_end // 2])  # a cut inside a row
    with pytest.raises(FormatError) as exc:
        cio.read(out)
    assert out.name in str(exc.value)
    out.write_bytes(data)
    assert len(cio.read(out)) > 0


def test_cr_line_ends_give_a_format_error_or_a_table(formats_dir, tmp_path):
    data = (formats_dir / "smlm/Thunderstorm_dstorm_data.csv").read_bytes()
    out = tmp_path / "cr.csv"
    out.write_bytes(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    ref = cio.read(formats_dir / "smlm/Thunderstorm_dstorm_data.csv")
    try:
        got = cio.read(out)
    except CorrelateError as exc:
        assert "cr.csv" in str(exc)
    else:
        np.testing.assert_allclose(got["x"].to_numpy(), ref["x"].to_numpy())


def test_topostats_absurd_scale_refused(formats_dir, tmp_path):
    import h5py

    out = _copy(formats_dir, "afm/sample_0_1.topostats", tmp_path)
    with h5py.File(out, "r+") as f:
        del f["pixel_to_nm_scaling"]
        f["pixel_to_nm_scaling"] = 1e308
    with pytest.raises(UnitError, match="pixel size") as exc:
        cio.read(out)
    assert out.name in str(exc.value)


def test_lazy_tiff_block_error_names_the_file(formats_dir, tmp_path):
    out = _copy(formats_dir, "em/FEI-Helios-Ebeam-8bits.tif", tmp_path)
    img = cio.read(out)
    import tifffile

    with tifffile.TiffFile(out) as t:
        page = t.pages[0]
        offset = page.dataoffsets[0]
    raw = bytearray(out.read_bytes())
    out.write_bytes(bytes(raw[: offset + 10]) + bytes(len(raw) - offset - 10))  # keep the header, zero the data
    try:
        img = cio.read(out)
        np.asarray(img.values)
    except CorrelateError as exc:
        assert out.name in str(exc)


def test_error_messages_are_capped():
    exc = FormatError("x" * 10_000_000, path="f.csv", field="col")
    assert len(str(exc)) < 3000 and str(exc).startswith("f.csv")


def test_where_rejects_string_arithmetic():
    from correlate.smlm._filter import check_expression

    for bad in ("'%0999999999d' % 1", "'a' * 3000000000", "[1, 2] * 100000000", "(" * 400 + "x" + ")" * 400):
        with pytest.raises(CorrelateError):
            check_expression(bad, ["x"])
    assert check_expression("channel == 'a' and x % 2 == 0", ["x", "channel"]) == ["channel", "x"]


def _tracked_rapidstorm(path: Path, rng: np.random.Generator, n_tracks: int = 40) -> np.ndarray:
    pos = 'syntax="floating point" semantic="position in sample space in {a}" unit="nanometer"'
    inner = (f'<localizations insequence="true" repetitions="variable">'
             f'<field identifier="Position-0-0" {pos.format(a="X")} /><field identifier="Position-1-0" {pos.format(a="Y")} />'
             '<field identifier="ImageNumber-0-0" syntax="integer" semantic="frame number" unit="frame" min="0 fr" />'
             '<field identifier="Amplitude-0-0" syntax="floating point" semantic="emission strength" unit="A/D count" />'
             '</localizations>')
    header = (f'# <localizations insequence="true" repetitions="variable">'
              f'<field identifier="Position-0-0" {pos.format(a="X")} /><field identifier="Position-1-0" {pos.format(a="Y")} />'
              '<field identifier="ImageNumber-0-0" syntax="integer" semantic="frame number" unit="frame" min="0 fr" />'
              '<field identifier="Amplitude-0-0" syntax="floating point" semantic="emission strength" unit="A/D count" />'
              f'{inner}</localizations>')
    lines, rows = [header], []
    for t in range(n_tracks):
        k = int(rng.integers(1, 6))
        locs = np.column_stack([rng.uniform(0, 5e4, k), rng.uniform(0, 5e4, k), np.sort(rng.integers(0, 1000, k)),
                                rng.uniform(1e3, 1e5, k)])
        centre = [locs[:, 0].mean(), locs[:, 1].mean(), locs[0, 2], locs[:, 3].sum()]
        vals = [f"{v:.6g}" for v in centre] + [str(k)] + [f"{v:.6g}" for v in locs.ravel()]
        lines.append(" ".join(vals))
        rows.append(np.column_stack([np.array([[float(f"{v:.6g}") for v in r] for r in locs]), np.full(k, t)]))
    path.write_text("\n".join(lines) + "\n")
    return np.vstack(rows)


def test_tracked_rapidstorm_one_row_per_localization(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "tracked.txt"
    truth = _tracked_rapidstorm(path, rng)
    df = cio.read(path)
    np.testing.assert_allclose(df[["x", "y"]].to_numpy(), truth[:, :2], atol=1e-9)
    np.testing.assert_array_equal(df["frame"].to_numpy(), truth[:, 2])
    np.testing.assert_array_equal(df["track_id"].to_numpy(), truth[:, 4])
    locan = pytest.importorskip("locan")
    ref = locan.load_rapidSTORM_track_file(path, collection=True)
    got = np.concatenate([r.data[["position_x", "position_y"]].to_numpy(float) for r in ref.references])
    # locan reads the header line and then skips one more line: it drops the first track
    assert len(ref.references) == truth[:, 4].max()
    later = df["track_id"].to_numpy() >= 1
    np.testing.assert_allclose(df.loc[later, ["x", "y"]].to_numpy(), got, atol=1e-6)
    bad = tmp_path / "tracked_bad.txt"
    lines = path.read_text().splitlines()
    lines[5] = " ".join(lines[5].split()[:-1])
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="line 6"):
        cio.read(bad)


def test_zeiss_pixel_size_at_full_precision():
    from correlate.io.readers.em_sem_tiff import _zeiss_calibration

    ncols = 2048
    true_nm = 2614.51
    meta = {
        "ap_image_pixel_size": ("Image Pixel Size", 2.615, "µm"),
        "ap_width": ("Width", true_nm * ncols / 1000.0, "µm"),
        "": (0, 0, 0, true_nm * 1e-9 * ncols / 1024, 1.0),
    }
    px, _, _ = _zeiss_calibration(Path("z.tif"), meta, ncols, [])
    assert abs(px["x"] - true_nm) < 1e-6
    meta[""] = (0, 0, 0, 1e-9, 1.0)  # a disagreeing full-precision field: the display value is kept
    meta.pop("ap_width")
    px, _, _ = _zeiss_calibration(Path("z.tif"), meta, ncols, [])
    assert px["x"] == pytest.approx(2615.0)
