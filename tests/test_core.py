"""Core types: units, errors, elements and transforms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from correlate import elements as el
from correlate import transforms as tf
from correlate import units
from correlate.errors import (
    CorrelateError,
    ElementError,
    FormatError,
    RegistrationError,
    StoreError,
    UnitError,
)


# ----------------------------------------------------------------------------------------------
# units
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, canon, factor",
    [
        ("m", "m", 1e9), ("meter", "m", 1e9), ("metres", "m", 1e9), ("mm", "mm", 1e6),
        ("um", "um", 1e3), ("µm", "um", 1e3), ("μm", "um", 1e3), ("micron", "um", 1e3), ("~m", "um", 1e3),
        ("Micrometer", "um", 1e3), (" [um] ", "um", 1e3), ("nm", "nm", 1.0), ("n_m", "nm", 1.0),
        ("nanometer", "nm", 1.0), ("NM", "nm", 1.0), ("A", "A", 0.1), ("Å", "A", 0.1),
        ("angstrom", "A", 0.1), ("Ångström", "A", 0.1), ("pm", "pm", 1e-3), ("km", "km", 1e12),
    ],
)
def test_units_aliases(text, canon, factor):
    assert units.normalize_length_unit(text) == canon
    assert units.to_nm_factor(text) == pytest.approx(factor, rel=1e-15)


@pytest.mark.parametrize("bad", ["px", "pixel", "furlong", "", "n m m", None, 3.0])
def test_units_unknown_is_an_error(bad):
    with pytest.raises(UnitError) as exc:
        units.normalize_length_unit(bad, path="f.csv", field="x")
    msg = str(exc.value)
    assert "f.csv" in msg and "field 'x'" in msg


def test_to_nm_arrays_and_udunits():
    np.testing.assert_allclose(units.to_nm(np.array([1.0, 2.5]), "um"), [1000.0, 2500.0])
    assert units.to_nm(3, "Å") == pytest.approx(0.3)
    assert set(units.UDUNITS_NAME) == set(units.NM_PER)
    assert units.UDUNITS_NAME["nm"] == "nanometer"


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_error_messages_name_file_and_field():
    e = FormatError("expected 7 columns, found 3", path="data/run1.csv", field="header")
    assert str(e) == "data/run1.csv: field 'header': expected 7 columns, found 3"
    assert e.path == "data/run1.csv" and e.field == "header"
    assert str(CorrelateError("plain")) == "plain"
    assert str(StoreError("gone", field="name")) == "field 'name': gone"
    for cls in (FormatError, UnitError, RegistrationError, StoreError, ElementError):
        assert issubclass(cls, CorrelateError)
        with pytest.raises(CorrelateError):
            raise cls("x")


# ----------------------------------------------------------------------------------------------
# elements
# ----------------------------------------------------------------------------------------------
def test_make_image_coords_attrs_and_accessors():
    img = el.make_image(np.zeros((4, 5), np.uint8), pixel_size_nm={"y": 2.0, "x": 3.0}, origin_nm=(10.0, -5.0),
                        modality="sted", value_unit="counts", name="s", source="f.tif", attrs={"k": 1})
    import dask.array as da

    assert isinstance(img.data, da.Array) and img.dims == ("y", "x")
    np.testing.assert_allclose(img.coords["x"].values, -5.0 + 3.0 * np.arange(5))
    np.testing.assert_allclose(img.coords["y"].values, 10.0 + 2.0 * np.arange(4))
    assert img.coords["x"].attrs["units"] == "nm"
    assert img.attrs["modality"] == "sted" and img.attrs["value_unit"] == "counts" and img.attrs["k"] == 1
    assert el.pixel_size(img) == {"y": 2.0, "x": 3.0} and el.origin(img) == {"y": 10.0, "x": -5.0}
    assert el.validate_image(img) is img
    c = el.make_image(np.zeros((2, 3, 4, 5)), pixel_size_nm=[100, 10, 10], modality="sim", channel_names=["a", "b"])
    assert c.dims == ("c", "z", "y", "x") and list(c.coords["c"].values) == ["a", "b"]
    assert el.element_kind(img) == "image"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dims=("x", "y")), "in that order"),
        (dict(dims=("y",)), "do not match"),
        (dict(pixel_size_nm=-1.0), "positive"),
        (dict(pixel_size_nm=(1.0, 2.0, 3.0)), "3 values"),
        (dict(modality="xray"), "unknown modality"),
        (dict(origin_nm=(np.nan, 0.0)), "finite"),
    ],
)
def test_make_image_errors(kwargs, match):
    args = dict(pixel_size_nm=1.0)
    args.update(kwargs)
    with pytest.raises(ElementError, match=match):
        el.make_image(np.zeros((3, 3)), **args)


def test_validate_image_rejects_irregular_or_missing_coords():
    img = xr.DataArray(np.zeros((3, 3)), dims=("y", "x"), coords={"y": [0.0, 1.0, 3.0], "x": [0.0, 1.0, 2.0]}, attrs={"modality": "em"})
    with pytest.raises(ElementError, match="not regular"):
        el.validate_image(img)
    with pytest.raises(ElementError, match="no nm coordinate"):
        el.validate_image(xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), attrs={"modality": "em"}))
    with pytest.raises(ElementError, match="modality"):
        el.validate_image(xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [0.0, 1.0], "x": [0.0, 1.0]}))


def test_make_localizations_and_validation():
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0.0, 5.0], "extra": ["a", "b"]})
    loc = el.make_localizations(df, source_format="picasso", camera_pixel_size_nm=(108.0, 110.0), frame_base=0,
                                units={"extra": ""}, notes=["n"])
    assert loc["frame"].dtype == np.int64
    assert loc.attrs["units"]["x"] == "nm" and loc.attrs["camera_pixel_size_nm"] == [108.0, 110.0]
    assert loc.attrs["kind"] == "localizations" and el.element_kind(loc) == "localizations"
    assert el.spatial_columns(loc) == ["x", "y"]
    with pytest.raises(ElementError, match="field 'y'"):
        el.validate_localizations(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ElementError, match="non-finite.*row 1"):
        el.validate_localizations(pd.DataFrame({"x": [1.0, np.inf], "y": [0.0, 0.0]}), path="f.csv")
    with pytest.raises(ElementError, match="0-based"):
        el.validate_localizations(pd.DataFrame({"x": [1.0], "y": [1.0], "frame": [-1]}))
    with pytest.raises(ElementError, match="integer"):
        el.validate_localizations(pd.DataFrame({"x": [1.0], "y": [1.0], "frame": [0.5]}))
    with pytest.raises(ElementError, match="numeric"):
        el.validate_localizations(pd.DataFrame({"x": ["a"], "y": [1.0]}))
    # frames that are not whole numbers are an error, never silently truncated or a pandas cast error
    for bad in ([0.0, np.nan], [1.0, 2.5], ["1", "2"], pd.array([1, None], dtype="Int64")):
        with pytest.raises(ElementError, match="field 'frame'.*whole numbers"):
            el.make_localizations(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": bad}), source="f.csv")


def test_landmarks_dataframe_round_trip_3d_and_errors():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 3))
    lm = el.Landmarks(src, src + 1, source_cov=np.full(5, 2.0), target_cov=np.tile(np.diag([1.0, 2.0, 3.0]), (5, 1, 1)),
                      used=[True, False, True, True, True], source_system="a", target_system="b", attrs={"k": "v"})
    assert lm.ndim == 3 and len(lm) == 5
    np.testing.assert_allclose(lm.source_cov[0], 2.0 * np.eye(3))
    df = lm.to_dataframe()
    assert {"source_cov_xz", "target_cov_zz", "used", "residual_nm"} <= set(df.columns)
    back = el.Landmarks.from_dataframe(df)
    np.testing.assert_allclose(back.target_cov, lm.target_cov)
    np.testing.assert_array_equal(back.used, lm.used)
    assert back.source_system == "a" and back.attrs == {"k": "v"}
    assert np.isnan(back.residual).all()
    assert el.element_kind(lm) == "landmarks"
    with pytest.raises(ElementError, match="differ in shape"):
        el.Landmarks(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ElementError, match="non-finite"):
        el.Landmarks(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(ElementError, match="shape"):
        el.Landmarks(np.zeros((3, 2)), np.zeros((3, 2)), source_cov=np.zeros((3, 3, 3)))


def test_make_table_and_kind():
    t = el.make_table(pd.DataFrame({"particle_id": [3, 1, 2], "area": [1.0, 2.0, 3.0]}), label_image="em/labels/p")
    assert t.attrs == {"kind": "table", "label_image": "em/labels/p"} and el.element_kind(t) == "table"
    with pytest.raises(ElementError, match="particle_id"):
        el.make_table(pd.DataFrame({"id": [1]}))
    with pytest.raises(ElementError, match="integer"):
        el.make_table(pd.DataFrame({"particle_id": [1.5]}))
    with pytest.raises(ElementError, match="not an element"):
        el.element_kind([1, 2])


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
def test_xyz_ngff_reordering():
    np.testing.assert_array_equal(tf.xyz_to_ngff([1.0, 2.0, 3.0]), [3.0, 2.0, 1.0])
    m = np.array([[1.0, 2.0, 10.0], [3.0, 4.0, 20.0]])  # x' = x + 2y + 10 ; y' = 3x + 4y + 20
    ng = tf.xyz_to_ngff(m)  # rows y', x'; columns y, x, 1
    np.testing.assert_array_equal(ng, [[4.0, 3.0, 20.0], [2.0, 1.0, 10.0]])
    np.testing.assert_array_equal(tf.ngff_to_xyz(ng), m)
    np.testing.assert_array_equal(tf.xyz_to_ngff(np.array([[1.0, 2.0]]), points=True), [[2.0, 1.0]])
    with pytest.raises(ValueError):
        tf.xyz_to_ngff(np.zeros((2, 5)))


def _tps(ndim, seed=0, smoothing=0.0):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 1000, (10 if ndim == 2 else 14, ndim))
    lin = np.eye(ndim) * 1.02
    lin[0, 1] = 0.01
    dst = src @ lin.T + 20 + rng.normal(0, 5, src.shape)
    return tf.ThinPlateSpline.fit(src, dst, smoothing=smoothing)


def _field(ndim):
    f = (lambda p: p + 6 * np.sin(p / 300.0)) if ndim == 2 else (lambda p: p + 4 * np.cos(p / 250.0))
    shape = (40, 36) if ndim == 2 else (14, 13, 12)
    return tf.DisplacementField.from_function(f, [-100.0] * ndim, [30.0] * ndim if ndim == 2 else [90.0] * ndim, shape)


def _kinds(ndim):
    rng = np.random.default_rng(ndim)
    lin = np.eye(ndim) + rng.normal(0, 0.05, (ndim, ndim))
    aff = tf.Affine.from_parts(lin, rng.normal(0, 50, ndim))
    out = {
        "identity": tf.Identity(ndim),
        "translation": tf.Translation(rng.normal(0, 100, ndim)),
        "scale": tf.Scale(rng.uniform(0.5, 2.0, ndim)),
        "affine": aff,
        "sequence": tf.Sequence([tf.Scale([2.0] * ndim), aff, tf.Translation([1.0] * ndim)]),
        "tps": _tps(ndim),
        "tps_smooth": _tps(ndim, seed=1, smoothing=100.0),
        "field": _field(ndim),
        "sequence_nonlinear": tf.Sequence([aff, _tps(ndim, seed=2)]),
    }
    out["tps_inverse"] = out["tps"].inverse()
    return out


KINDS = [(nd, k) for nd in (2, 3) for k in _kinds(nd)]


def _pts(ndim, n=60, seed=5):
    return np.random.default_rng(seed).uniform(50, 900, (n, ndim))


@pytest.mark.parametrize("ndim, kind", KINDS)
def test_apply_inverse_consistency(ndim, kind):
    t = _kinds(ndim)[kind]
    p = _pts(ndim)
    q = t.apply(p)
    assert q.shape == p.shape
    np.testing.assert_allclose(t.inverse().apply(q), p, atol=1e-9, rtol=0)
    np.testing.assert_allclose(t.inverse().inverse().apply(p), q, atol=1e-9, rtol=0)
    # single point and DataFrame forms agree with the array form
    np.testing.assert_allclose(t.apply(p[0]), q[0], atol=1e-12)
    cols = ["x", "y", "z"][:ndim]
    df = pd.DataFrame(p, columns=cols).assign(photons=np.arange(len(p)))
    df.attrs["kind"] = "localizations"
    out = t.apply(df)
    np.testing.assert_allclose(out[cols].to_numpy(), q, atol=1e-12)
    assert (out["photons"] == df["photons"]).all() and out.attrs == df.attrs


@pytest.mark.parametrize("ndim, kind", [k for k in KINDS if k[1] != "field"])
def test_ngff_json_round_trip(ndim, kind):
    t = _kinds(ndim)[kind]
    d = t.to_ngff(input={"name": "a"}, output={"name": "world"}, name="a_to_world")
    d2 = json.loads(json.dumps(d))
    assert d2["input"] == {"name": "a"} and d2["name"] == "a_to_world"
    back = tf.from_ngff(d2, ndim=ndim)
    p = _pts(ndim)
    np.testing.assert_allclose(back.apply(p), t.apply(p), atol=1e-9, rtol=0)
    assert back.is_linear == t.is_linear


def test_displacement_field_json_needs_the_store():
    d = _field(2).to_ngff()
    assert d["type"] == "displacements"
    with pytest.raises(CorrelateError, match="unsupported"):
        tf.from_ngff(d)


@pytest.mark.parametrize("ndim", [2, 3])
def test_ngff_affine_agrees_with_ome_zarr_models(ndim):
    """Our NGFF JSON means the same map as ome-zarr-models' reference implementation (z,y,x)."""
    from ome_zarr_models.v06.coordinate_transforms import Affine as NgffAffine
    from ome_zarr_models.v06.coordinate_transforms import Translation as NgffTranslation

    a = _kinds(ndim)["affine"]
    p = _pts(ndim, n=5)
    ref = NgffAffine(**{k: v for k, v in a.to_ngff().items() if k != "type"})
    for pt, q in zip(p, a.apply(p)):
        np.testing.assert_allclose(ref.transform_point(tuple(pt[::-1]))[::-1], q, atol=1e-9)
    t = tf.Translation(np.arange(ndim) + 1.0)
    ref_t = NgffTranslation(translation=t.to_ngff()["translation"])
    np.testing.assert_allclose(ref_t.transform_point(tuple(p[0][::-1]))[::-1], t.apply(p[0]))


def test_ngff_order_of_simple_types():
    assert tf.Translation([1.0, 2.0]).to_ngff() == {"type": "translation", "translation": [2.0, 1.0]}
    assert tf.Scale([1.0, 2.0, 3.0]).to_ngff() == {"type": "scale", "scale": [3.0, 2.0, 1.0]}
    assert tf.Identity().to_ngff() == {"type": "identity"}
    r = tf.from_ngff({"type": "rotation", "rotation": [[0.0, -1.0], [1.0, 0.0]]})  # (y, x) order
    np.testing.assert_allclose(r.apply([1.0, 0.0]), [0.0, -1.0], atol=1e-15)
    with pytest.raises(CorrelateError, match="unsupported"):
        tf.from_ngff({"type": "coordinates", "path": "x"})


@pytest.mark.parametrize("ndim", [2, 3])
def test_composition(ndim):
    k = _kinds(ndim)
    p = _pts(ndim)
    a, s, tps = k["affine"], k["scale"], k["tps"]
    c = tf.compose(a, s, k["translation"])
    assert isinstance(c, tf.Affine)
    np.testing.assert_allclose(c.apply(p), k["translation"].apply(s.apply(a.apply(p))), atol=1e-9)
    np.testing.assert_allclose(a.then(s).matrix, s.matrix @ a.matrix, atol=1e-12)
    n = tf.compose(a, tps)
    assert isinstance(n, tf.Sequence) and not n.is_linear
    np.testing.assert_allclose(n.apply(p), tps.apply(a.apply(p)), atol=1e-9)
    np.testing.assert_allclose(n.inverse().apply(n.apply(p)), p, atol=1e-9)
    assert isinstance(tf.compose(tf.Identity(ndim), tf.Identity(ndim)), tf.Identity)
    assert tf.compose(tf.Identity(ndim), a) is a
    with pytest.raises(CorrelateError, match="no matrix"):
        _ = n.matrix


def test_2d_transform_on_3d_points_keeps_z():
    p = _pts(3)
    q = tf.Translation([1.0, 2.0]).apply(p)
    np.testing.assert_allclose(q, p + [1.0, 2.0, 0.0])
    with pytest.raises(ElementError):
        tf.Translation([1.0, 2.0, 3.0]).apply(p[:, :2])


@pytest.mark.parametrize("ndim, kind", KINDS)
def test_jacobian_matches_finite_differences(ndim, kind):
    t = _kinds(ndim)[kind]
    p = _pts(ndim, n=8)
    j = t.jacobian(p)
    assert j.shape == (len(p), ndim, ndim)
    h = 1e-3 if kind != "field" else 1.0  # the field is piecewise linear: a step inside one cell
    num = np.empty_like(j)
    for i in range(ndim):
        e = np.zeros(ndim)
        e[i] = h
        num[:, :, i] = (t.apply(p + e) - t.apply(p - e)) / (2 * h)
    tol = 1e-6 if kind != "field" else 2e-2
    np.testing.assert_allclose(j, num, atol=tol)


@pytest.mark.parametrize("ndim, kind", [(2, "affine"), (2, "sequence"), (3, "scale"), (2, "tps"), (3, "tps"), (2, "sequence_nonlinear"), (2, "tps_inverse"), (3, "affine")])
def test_covariance_propagation_against_monte_carlo(ndim, kind):
    t = _kinds(ndim)[kind]
    rng = np.random.default_rng(11)
    p = _pts(ndim, n=3)
    a = rng.normal(0, 3.0, (3, ndim, ndim))
    cov = np.einsum("nij,nkj->nik", a, a) + 4.0 * np.eye(ndim)  # anisotropic, a few nm
    pred = t.propagate_covariance(p, cov)
    n = 20_000
    for i in range(len(p)):
        samples = rng.multivariate_normal(p[i], cov[i], size=n)
        mc = np.cov(t.apply(samples).T)
        # Monte-Carlo standard error of a covariance entry ~ sqrt(2/n) of its scale: ~1 %
        scale = np.sqrt(np.outer(np.diag(mc), np.diag(mc)))
        np.testing.assert_array_less(np.abs(pred[i] - mc) / scale, 0.05)


def test_transform_input_errors():
    with pytest.raises(CorrelateError, match="non-zero"):
        tf.Scale([1.0, 0.0])
    with pytest.raises(CorrelateError, match="affine matrix"):
        tf.Affine(np.eye(5))
    with pytest.raises(CorrelateError, match="singular"):
        tf.Affine.from_parts(np.zeros((2, 2)), [0, 0]).inverse()
    with pytest.raises(CorrelateError, match="at least 3 points"):
        tf.ThinPlateSpline.fit(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(CorrelateError, match="does not fit"):
        tf.DisplacementField([0.0, 0.0], [1.0, 1.0], np.zeros((3, 4, 4)))
    with pytest.raises(ElementError):
        tf.Identity(2).apply(np.zeros((3, 4)))


def test_tps_interpolates_and_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (8, 2))
    dst = src + rng.normal(0, 1, src.shape)
    exact = tf.ThinPlateSpline.fit(src, dst, smoothing=0.0)
    np.testing.assert_allclose(exact.apply(src), dst, atol=1e-8)
    sim = tf.Affine.similarity(2.0, np.pi / 2, (1.0, 0.0))
    np.testing.assert_allclose(sim.apply([1.0, 0.0]), [1.0, 2.0], atol=1e-12)


def test_tps_many_points_evaluated_in_blocks(monkeypatch):
    """Mapping many localizations never builds the N x K x D temporaries at once, and the
    blocked evaluation gives the same result as one block."""
    t = _tps(2)
    p = np.random.default_rng(3).uniform(0, 1000, (5003, 2))
    one_block = (t.apply(p), t.jacobian(p))
    from correlate._transforms import nonlinear

    monkeypatch.setattr(nonlinear, "_TPS_BLOCK_ELEMENTS", 7 * len(t.centers) * 2)  # blocks of 7 points
    sizes = []
    real_norm = np.linalg.norm
    monkeypatch.setattr(np.linalg, "norm", lambda a, axis=None: sizes.append(a.shape[0]) or real_norm(a, axis=axis))
    np.testing.assert_allclose(t.apply(p), one_block[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(t.jacobian(p), one_block[1], rtol=0, atol=1e-12)
    assert max(sizes) == 7 and sum(sizes) == 2 * len(p)


def test_unknown_file_message_lists_suffixes_compactly(tmp_path):
    from correlate.io import find_reader

    f = tmp_path / "data.unknownext"
    f.write_bytes(b"\x00\x01 nothing a reader knows")
    with pytest.raises(FormatError, match="no reader recognises") as exc:
        find_reader(f)
    msg = str(exc.value)
    assert ".csv" in msg and ".mrc" in msg and ".000 to .999" in msg
    assert ".500," not in msg and len(msg) < 2000


def test_broken_reader_plugin_is_skipped_with_a_warning(monkeypatch, tmp_path):
    import importlib.metadata as md

    from correlate.io import _registry

    class BrokenEntryPoint:
        name, value = "broken", "missing_pkg:READERS"

        def load(self):
            raise ImportError("No module named 'missing_pkg'")

    monkeypatch.setattr(md, "entry_points", lambda group=None: [BrokenEntryPoint()])
    f = tmp_path / "locs.csv"
    f.write_text("x [nm],y [nm],frame\n1,2,1\n")
    with pytest.warns(UserWarning, match="broken.*missing_pkg"):
        spec = _registry.find_reader(f)
    assert spec.name == "thunderstorm"
