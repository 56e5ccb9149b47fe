"""``--json`` on the subcommands: one JSON document on stdout whose values match the store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from correlate.cli import main
from correlate.elements import make_image, make_localizations
from correlate.scene import Scene


def _strict(text: str):
    """json.loads that refuses the bare NaN/Infinity tokens (not JSON)."""
    def bad(token):
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=bad)


def _run(argv, capsys) -> tuple[int, dict, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, _strict(cap.out), cap.err


def _similarity(rng, mirror: bool):
    scale = rng.uniform(0.8, 1.25)
    th = rng.uniform(-np.pi, np.pi)
    R = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    if mirror:
        R = R @ np.diag([1.0, -1.0])
    return R, rng.uniform(-2000, 2000, 2)


@pytest.fixture(params=[0, 1])
def case(request, tmp_path):
    """A store with an EM-like image and an SMLM table, fiducial CSVs for both (nm) related by a
    random similarity (mirrored for one seed) plus localisation noise of sigma nm per axis."""
    rng = np.random.default_rng(100 + request.param)
    px = rng.uniform(1.0, 5.0)
    n_px = 256
    field = px * n_px
    em = make_image(rng.normal(100, 5, (n_px, n_px)).astype(np.float32), pixel_size_nm=px, modality="em")
    n_frames = int(rng.integers(200, 600))
    n_loc = int(rng.integers(2000, 6000))
    locs = make_localizations(pd.DataFrame({
        "x": rng.uniform(0, field, n_loc), "y": rng.uniform(0, field, n_loc),
        "frame": rng.integers(0, n_frames, n_loc), "precision": rng.uniform(5, 30, n_loc),
        "photons": rng.uniform(200, 5000, n_loc)}), source_format="simulated")
    path = tmp_path / "s.ome.zarr"
    sc = Scene.create(path)
    sc.add("em", em)
    sc.add("locs", locs)
    n_fid = int(rng.integers(8, 20))
    sigma = rng.uniform(1.0, 8.0)
    fixed = rng.uniform(0.1 * field, 0.9 * field, (n_fid, 2))
    R, t = _similarity(rng, mirror=bool(request.param))
    moving_true = (fixed - t) @ np.linalg.inv(R).T
    moving = moving_true + rng.normal(0, sigma, fixed.shape)
    fixed_obs = fixed + rng.normal(0, sigma, fixed.shape)
    fm, ff = tmp_path / "fid_moving.csv", tmp_path / "fid_fixed.csv"
    pd.DataFrame({"x": moving[:, 0], "y": moving[:, 1], "sigma_nm": sigma}).to_csv(fm, index=False)
    pd.DataFrame({"x": fixed_obs[:, 0], "y": fixed_obs[:, 1], "sigma_nm": sigma}).to_csv(ff, index=False)
    return {"path": path, "fm": fm, "ff": ff, "n_fid": n_fid, "sigma": sigma, "mirror": bool(request.param),
            "field": field, "n_loc": n_loc, "tmp": tmp_path}


def _register(case, capsys, *extra):
    return _run(["register", str(case["path"]), "--moving", "locs", "--fixed", "em", "--model", "similarity",
                 "--fiducials-moving", str(case["fm"]), "--fiducials-fixed", str(case["ff"]), "--json", *extra],
                capsys)


def test_register_info_map_export_json(case, capsys):
    code, doc, _ = _register(case, capsys)
    assert code == 0
    rec = Scene.open(case["path"]).registrations()[-1]
    assert doc["record_id"] == rec["id"] and doc["stored"] is True
    assert doc["moving"] == "locs" and doc["fixed"] == "em"
    assert doc["model"] == rec["model"] == "similarity"
    assert doc["n_pairs"] == rec["n_pairs"] == case["n_fid"]
    assert doc["mirrored"] is case["mirror"] is rec["mirrored"]
    assert doc["fre_rms_nm"] == pytest.approx(rec["fre_rms_nm"]) and doc["loo_rms_nm"] == pytest.approx(rec["loo_rms_nm"])
    # residual of both sides' noise: RMS 2-D FRE ~ sigma * sqrt(2 * 2 * (1 - 4 / (2 n)))
    expect = case["sigma"] * np.sqrt(4 * (1 - 2 / case["n_fid"]))
    assert 0.4 * expect < doc["fre_rms_nm"] < 1.8 * expect
    assert np.isfinite(doc["predicted_tre_field"]["tre_rms_median_nm"])
    for role in ("moving", "fixed"):
        assert doc["detection"][role]["origin"] == "file" and doc["detection"][role]["n_fiducials"] == case["n_fid"]
    assert doc["record"]["id"] == rec["id"]

    code, info, _ = _run(["info", str(case["path"]), "--json"], capsys)
    assert code == 0
    kinds = {e["name"]: e["kind"] for e in info["elements"]}
    assert kinds == {"em": "image", "locs": "localizations"}
    em = next(e for e in info["elements"] if e["name"] == "em")
    assert em["shape"] == [256, 256] and em["modality"] == "em"
    locs = next(e for e in info["elements"] if e["name"] == "locs")
    assert locs["n_rows"] == case["n_loc"]
    assert locs["placement"]["placed"] is True and locs["placement"]["anchor"] == "em"
    assert em["placement"]["state"] == "reference"
    assert [r["id"] for r in info["registrations"]] == [rec["id"]]
    assert info["registrations"][0]["n_pairs"] == case["n_fid"]
    assert info["landmarks"] == [{"moving": "locs", "fixed": "em", "n_pairs": case["n_fid"]}]
    assert info["coordinate_systems"][0]["name"] == "world"

    pin, pout = case["tmp"] / "in.csv", case["tmp"] / "out.csv"
    pd.DataFrame({"x": np.linspace(0.2, 0.8, 7) * case["field"], "y": 0.5 * case["field"]}).to_csv(pin, index=False)
    code, mp, _ = _run(["map", str(case["path"]), str(pin), str(pout), "--from", "em", "--to", "locs", "--json"],
                       capsys)
    assert code == 0 and mp["n_points"] == 7 and mp["n_unknown"] == 0 and mp["linked"] is True
    assert mp["tre_median_nm"] == pytest.approx(float(np.median(pd.read_csv(pout)["tre_nm"])))

    bw = case["tmp"] / "bw.csv"
    code, ex, _ = _run(["export", str(case["path"]), "bigwarp", "-o", str(bw), "--json"], capsys)
    assert code == 0 and ex["n_pairs"] == case["n_fid"] and ex["files"] == [str(bw)] and bw.exists()
    assert (ex["moving"], ex["fixed"]) == ("locs", "em")
    csv = case["tmp"] / "locs.csv"
    code, ex, _ = _run(["export", str(case["path"]), "localizations", "--name", "locs", "--to", "em", "-o",
                        str(csv), "--json"], capsys)
    assert code == 0 and ex["n_rows"] == case["n_loc"] == len(pd.read_csv(csv)) and ex["coordinates"] == "em"


def test_filter_merge_and_unknown_error_json(case, capsys):
    code, doc, _ = _run(["filter", str(case["path"]), "locs", "--where", "precision < 15", "--json"], capsys)
    sc = Scene.open(case["path"])
    kept = sc.get(doc["out"])
    assert code == 0 and doc["rows_in"] == case["n_loc"] and doc["rows_out"] == len(kept) > 0
    assert (kept["precision"] < 15).all()
    assert doc["fraction_kept"] == pytest.approx(len(kept) / case["n_loc"])
    code, doc, _ = _run(["merge", str(case["path"]), "locs", "--radius", "20", "--json"], capsys)
    assert code == 0 and doc["rows_out"] == len(Scene.open(case["path"]).get(doc["out"])) <= doc["rows_in"]
    assert doc["radius_nm"] == 20 and doc["gate"] == "fixed"
    # no registration links locs and em: the predicted error is unknown (null), never 0
    pin, pout = case["tmp"] / "in.csv", case["tmp"] / "out.csv"
    pd.DataFrame({"x": [10.0, 20.0], "y": [5.0, 6.0]}).to_csv(pin, index=False)
    code, mp, _ = _run(["map", str(case["path"]), str(pin), str(pout), "--from", "em", "--to", "locs",
                        "--assume-aligned", "--json"], capsys)
    assert code == 0 and mp["tre_median_nm"] is None and mp["n_unknown"] == 2 and mp["linked"] is False


def test_errors_are_json_on_stdout_and_text_on_stderr(case, capsys):
    missing = case["tmp"] / "nothing.ome.zarr"
    code, doc, err = _run(["info", str(missing), "--json"], capsys)
    assert code == 1 and doc["type"] == "StoreError" and doc["path"] == str(missing)
    assert "no such store" in doc["error"] and "no such store" in err
    few = case["tmp"] / "few.csv"
    pd.DataFrame({"x": [1.0, 50.0], "y": [3.0, 9.0], "sigma_nm": 2.0}).to_csv(few, index=False)
    code, doc, err = _run(["register", str(case["path"]), "--moving", "locs", "--fixed", "em",
                           "--fiducials-moving", str(few), "--fiducials-fixed", str(case["ff"]), "--json"], capsys)
    assert code == 1 and doc["type"] == "RegistrationError" and doc["stage"] in ("detection", "pairing", "fit")
    assert isinstance(doc["diagnostics"], dict) and "error" in err
    assert Scene.open(case["path"]).registrations() == []


def test_emit_encodes_numpy_and_nonfinite(capsys):
    from correlate._cli._json import emit

    emit({"a": float("nan"), "b": np.float32(1.5), "c": np.arange(3), "d": None, "e": -np.inf})
    doc = _strict(capsys.readouterr().out)
    assert doc == {"a": "NaN", "b": 1.5, "c": [0, 1, 2], "d": None, "e": "-Infinity"}


def test_import_json(tmp_path, capsys):
    import tifffile

    rng = np.random.default_rng(7)
    n = int(rng.integers(50, 500))
    ts = tmp_path / "spots.csv"
    pd.DataFrame({"id": np.arange(n), "frame": rng.integers(1, 100, n), "x [nm]": rng.uniform(0, 5000, n),
                  "y [nm]": rng.uniform(0, 5000, n), "sigma [nm]": rng.uniform(80, 150, n),
                  "intensity [photon]": rng.uniform(100, 3000, n), "uncertainty [nm]": rng.uniform(5, 30, n)}
                 ).to_csv(ts, index=False)
    px = float(rng.uniform(2, 40))
    tif = tmp_path / "img.tif"
    tifffile.imwrite(tif, rng.integers(0, 255, (64, 48), dtype=np.uint8))
    store = tmp_path / "s.ome.zarr"
    code, doc, _ = _run(["import", str(store), str(ts), "--json"], capsys)
    assert code == 0 and doc["n_added"] == 1
    f = doc["files"][0]
    assert f["element"] == "spots" and f["kind"] == "localizations" and f["n_rows"] == n
    assert f["reader"] == Scene.open(store).get("spots").attrs.get("source_format") and f["frame_base"] == 1
    code, doc, _ = _run(["import", str(store), str(tif), "--pixel-size", str(px), "--modality", "em", "--json"],
                        capsys)
    f = doc["files"][0]
    assert code == 0 and f["kind"] == "image" and f["shape"] == [64, 48]
    assert f["pixel_size_nm"]["x"] == pytest.approx(px) and f["modality"] == "em"
    assert isinstance(f["assumptions"], list)
    code, doc, _ = _run(["info", str(ts), "--json"], capsys)
    assert code == 0 and doc["kind"] == "localizations" and doc["n_rows"] == n


def test_drift_json_matches_truth(tmp_path, capsys):
    from _smlm_sim import sample, true_drift

    s = sample("small")
    path = tmp_path / "d.ome.zarr"
    sc = Scene.create(path)
    sc.add("antibody", s.smlm["antibody"], transform=s.truth.transforms["antibody"])
    code, doc, _ = _run(["drift", str(path), "antibody", "--no-plot", "--json"], capsys)
    assert code == 0 and doc["method"] == "fiducials" and doc["out"] == "antibody_drift" and doc["plot"] is None
    summ = doc["summary"]
    assert summ["n_fiducials"] == len(s.truth.fiducials)
    corr = Scene.open(path).get("antibody_drift")
    per_frame = corr.groupby("frame")[["drift_x", "drift_y"]].first()
    truth = true_drift(s)[per_frame.index.to_numpy()]
    est = per_frame.to_numpy() - per_frame.to_numpy().mean(0) + truth.mean(0)
    rms = float(np.sqrt(np.mean(np.sum((est - truth) ** 2, axis=1))))
    assert rms < 3 * summ["uncertainty_rms_nm"] + 0.1
    code, info, _ = _run(["info", str(path), "--quality", "--json"], capsys)
    q = info["quality"]
    assert code == 0 and set(q) == {"antibody", "antibody_drift"}
    assert q["antibody"]["n_fiducials"] == len(s.truth.fiducials)
    assert q["antibody_drift"]["nena_precision_nm"] > 0
    assert q["antibody_drift"]["median_precision_nm"] == pytest.approx(float(np.median(corr["precision"])), rel=1e-6)


@pytest.mark.parametrize("case", [1], indirect=True)
def test_overlay_and_export_json(case, capsys):
    assert _register(case, capsys)[0] == 0
    png = case["tmp"] / "ov.png"
    code, doc, _ = _run(["overlay", str(case["path"]), "-o", str(png), "--json"], capsys)
    assert code == 0 and doc["output"] == str(png) and png.stat().st_size > 1000
    assert doc["scale_bar_nm"] > 0 and "similarity" in (doc["caption"] or "")
    mat = case["tmp"] / "m.txt"
    code, doc, _ = _run(["export", str(case["path"]), "matrix", "--name", "locs", "-o", str(mat), "--json"], capsys)
    assert code == 0 and doc["files"] == [str(mat)] and doc["to"] == "world"
    m = np.loadtxt(mat)
    assert np.linalg.det(m[:2, :2]) < 0  # the fixture mirrors the moving frame for this seed
    tif = case["tmp"] / "r.tif"
    px = 0.05 * case["field"]
    code, doc, _ = _run(["export", str(case["path"]), "render", "--name", "locs", "--pixel-size", str(px), "-o",
                         str(tif), "--json"], capsys)
    assert code == 0 and doc["channels"] == ["locs"] and doc["pixel_size_nm"] == pytest.approx(px)
    assert abs(doc["width_px"] * px - case["field"]) <= 2 * px
    disp = case["tmp"] / "d.zarr"
    code, doc, _ = _run(["export", str(case["path"]), "displacements", "--name", "locs", "-o", str(disp), "--json"],
                        capsys)
    assert code == 0 and set(doc["fields"]) == {"forward", "inverse"}
    assert all(f["max_error_nm"] < 1e-3 * case["field"] for f in doc["fields"].values())  # linear: exact


@pytest.mark.slow
@pytest.mark.parametrize("case", [0], indirect=True)
def test_report_json(case, capsys):
    assert _register(case, capsys)[0] == 0
    html = case["tmp"] / "r.html"
    code, doc, _ = _run(["report", str(case["path"]), "-o", str(html), "--json"], capsys)
    assert code == 0 and doc["output"] == str(html) and html.stat().st_size > 1000
    assert "similarity" in html.read_text(encoding="utf-8")


def test_demo_simulate_only_json(tmp_path, capsys):
    code, doc, err = _run(["demo", str(tmp_path / "demo"), "--small", "--simulate-only", "--json"], capsys)
    assert code == 0 and doc["small"] is True
    assert Scene.open(doc["results"]["store"]).names("image")
    assert "[1] simulated" in err


@pytest.mark.slow
def test_register_json_reports_estimates_and_their_source(tmp_path, capsys):
    from correlate.datasets import SampleConfig, simulate_sample

    s = simulate_sample(SampleConfig.small(seed=3, make_afm=False, make_sim=False))
    path = tmp_path / "s.ome.zarr"
    sc = Scene.create(path)
    for name in ("em", "antibody"):
        sc.add(name, s.elements()[name])
    code, doc, _ = _run(["register", str(path), "--moving", "antibody", "--fixed", "em", "--json"], capsys)
    assert code == 0
    rec = Scene.open(path).registrations()[-1]
    assert (doc["model"], doc["n_pairs"], doc["record_id"]) == (rec["model"], rec["n_pairs"], rec["id"])
    em = doc["detection"]["fixed"]
    assert em["kind"] == "image" and em["origin"] == "detected" and em["source"]["diameter_nm"] == "estimated"
    assert em["estimated"]["diameter_nm"] == pytest.approx(rec["detection"]["fixed"]["estimated"]["diameter_nm"])
    assert doc["detection"]["moving"]["source"]["min_persistence"] == "estimated"
    d = float(em["estimated"]["diameter_nm"])
    code, doc, _ = _run(["register", str(path), "--moving", "antibody", "--fixed", "em", "--dry-run",
                         "--bead-diameter", f"{d:.3f}", "--json"], capsys)
    assert code == 0 and doc["stored"] is False
    assert doc["detection"]["fixed"]["source"]["diameter_nm"] == "user"
    assert doc["detection"]["fixed"]["estimated"]["diameter_nm"] == pytest.approx(d, abs=1e-3)
    assert len(Scene.open(path).registrations()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("case", [0], indirect=True)
def test_export_spatialdata_json(case, capsys):
    sd = pytest.importorskip("spatialdata")
    assert _register(case, capsys)[0] == 0
    out = case["tmp"] / "sd.zarr"
    code, doc, _ = _run(["export", str(case["path"]), "spatialdata", "-o", str(out), "--json"], capsys)
    assert code == 0 and doc["files"] == [str(out)] and doc["coordinate_system"] == "world"
    back = sd.read_zarr(out)
    assert doc["elements"]["images"] == sorted(back.images.keys()) and "em" in doc["elements"]["images"]
    assert doc["elements"]["points"] == sorted(back.points.keys())
