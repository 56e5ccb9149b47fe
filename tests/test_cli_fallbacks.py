"""No silent fallbacks: joins of unplaced elements refuse (CLI and Python), unknown errors are
NaN / "unknown", the detector overrides reach the detectors, user fiducial tables work end to
end, and a failing registration leaves its diagnostics behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from correlate.cli import main
from correlate.errors import RegistrationError, UnplacedError
from correlate.scene import Scene


@pytest.fixture(scope="module")
def sample():
    from correlate.datasets import SampleConfig, simulate_sample

    return simulate_sample(SampleConfig.small(seed=1, make_afm=False, make_sim=False))


@pytest.fixture(scope="module")
def base_store(sample, tmp_path_factory):
    """Simulated elements imported WITHOUT truth transforms: nothing is placed."""
    path = tmp_path_factory.mktemp("fallbacks") / "raw.ome.zarr"
    sample.to_scene(path, transforms="none", truth_table=False)
    return path


@pytest.fixture()
def store(base_store, tmp_path):
    path = tmp_path / "s.ome.zarr"
    shutil.copytree(base_store, path)
    return path


def _points(tmp_path, sample):
    f = sample.truth.fiducials
    p = tmp_path / "pts.csv"
    pd.DataFrame({"x": f["x"].to_numpy()[:5], "y": f["y"].to_numpy()[:5]}).to_csv(p, index=False)
    return p


def _fiducial_csvs(tmp_path, sample, sigma=1.0):
    f = sample.truth.fiducials.dropna(subset=["x_smlm", "y_smlm", "x", "y"])
    mov, fix = tmp_path / "fid_antibody.csv", tmp_path / "fid_em.csv"
    pd.DataFrame({"x": f["x_smlm"], "y": f["y_smlm"], "sigma_nm": sigma}).to_csv(mov, index=False)
    pd.DataFrame({"x": f["x"], "y": f["y"], "sigma_nm": sigma}).to_csv(fix, index=False)
    return mov, fix


# ---------------------------------------------------------------------------------------------
# map / particles refuse unplaced elements, run with --assume-aligned or after registration
# ---------------------------------------------------------------------------------------------
def test_cli_map_and_particles_refuse_unplaced_then_run(store, sample, tmp_path, capsys):
    pts = _points(tmp_path, sample)
    out = tmp_path / "out.csv"
    assert main(["map", str(store), str(pts), str(out), "--from", "em", "--to", "antibody"]) == 1
    err = capsys.readouterr().err
    assert "'antibody' is unplaced" in err and "correlate register" in err and "--assume-aligned" in err
    assert not out.exists()
    assert main(["particles", str(store), "--structure", "em", "--labels", "antibody", "--no-store"]) == 1
    err = capsys.readouterr().err
    assert "'antibody' is unplaced" in err and f"--moving antibody --fixed em" in err

    # the user says the frames are aligned: the error is unknown, never 0
    assert main(["map", str(store), str(pts), str(out), "--from", "em", "--to", "antibody", "--assume-aligned"]) == 0
    text = capsys.readouterr().out
    assert "predicted TRE median unknown" in text
    got = pd.read_csv(out)
    assert got["tre_nm"].isna().all() and got["tre95_nm"].isna().all()
    np.testing.assert_allclose(got[["x", "y"]], pd.read_csv(pts)[["x", "y"]])  # identity: nothing placed it

    # registered: map runs with a finite, positive predicted error and the true position
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em"]) == 0
    capsys.readouterr()
    assert main(["map", str(store), str(pts), str(out), "--from", "em", "--to", "antibody"]) == 0
    assert "unknown" not in capsys.readouterr().out
    got = pd.read_csv(out)
    assert np.isfinite(got["tre_nm"]).all() and (got["tre_nm"] > 0).all()
    truth = sample.truth.transforms["antibody"].inverse().apply(pd.read_csv(pts)[["x", "y"]].to_numpy())
    assert np.abs(got[["x", "y"]].to_numpy() - truth).max() < 5 * got["tre95_nm"].max()
    assert main(["particles", str(store), "--structure", "em", "--labels", "antibody", "--no-store"]) == 0
    cap = capsys.readouterr()
    assert "TRE median" in cap.out and "registration" in cap.out and "warning" not in cap.err


def test_cli_particles_assume_aligned_warns_when_nothing_is_assigned(store, capsys):
    rc = main(["particles", str(store), "--structure", "em", "--labels", "antibody", "--no-store",
               "--assume-aligned"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "TRE unknown" in cap.out
    assert "warning: 0 of" in cap.err and "'antibody'" in cap.err and "likely cause" in cap.err


def test_assignment_warning_names_the_cause():
    from correlate._cli.particles import assignment_warnings

    class R:
        summary = {"n_particles": 10, "labels": {
            "a": {"n_localizations": 100, "n_assigned": 0, "n_fiducial_track": 0, "fraction_in_field": 0.1},
            "b": {"n_localizations": 100, "n_assigned": 0, "n_fiducial_track": 0, "fraction_in_field": 0.95},
            "c": {"n_localizations": 100, "n_assigned": 7, "n_fiducial_track": 0, "fraction_in_field": 0.95},
            "d": {"n_localizations": 0, "n_assigned": 0}}}

    w = assignment_warnings(R(), "em")
    assert len(w) == 2
    assert "'a'" in w[0] and "10.0 % of them fall inside" in w[0]
    assert "'b'" in w[1] and "near no particle" in w[1]
    R.summary = dict(R.summary, n_particles=0)
    assert "no particles were segmented" in assignment_warnings(R(), "em")[0]


# ---------------------------------------------------------------------------------------------
# the Python API
# ---------------------------------------------------------------------------------------------
def test_python_api_raises_unplaced(store, tmp_path):
    from correlate.analysis import analyze_particles
    from correlate.plot import make_report, plot_overlay
    from correlate.registration._map import predicted_tre_between

    sc = Scene.open(store, mode="r+")
    p = sc.placement("antibody")
    assert not p.placed and p.anchor == "antibody" and "no registration" in p.reason
    with pytest.raises(UnplacedError, match="'antibody' is unplaced") as exc:
        sc.require_joinable("antibody", "em")
    assert exc.value.stage == "placement" and exc.value.hint == "--assume-aligned"
    sc.require_joinable("antibody", "em", assume_aligned=True)
    sc.require_joinable("antibody", "antibody")
    with pytest.raises(UnplacedError):
        sc.map_points(np.zeros((2, 2)), "em", "antibody")
    np.testing.assert_allclose(sc.map_points(np.ones((2, 2)), "em", "antibody", assume_aligned=True), np.ones((2, 2)))
    sc.map_points(np.zeros((2, 2)), "antibody", "world")  # where the store puts it: not a join
    with pytest.raises(UnplacedError):
        analyze_particles(sc, "em", ["antibody"], store=False)
    with pytest.raises(UnplacedError):
        plot_overlay(sc, "em", ["antibody"])
    with pytest.raises(UnplacedError):
        make_report(sc, tmp_path / "r.html", base="em", labels=["corona"])
    fig = plot_overlay(sc, "em")  # default labels: the unplaced ones are left out, and named
    assert "not drawn" in fig.correlate_caption and "antibody" in fig.correlate_caption
    tre, r95 = predicted_tre_between(sc, "antibody", "em", np.zeros((3, 2)))
    assert np.isnan(tre).all() and np.isnan(r95).all()


def test_placement_follows_registrations_reimports_and_derivations(store, sample):
    from correlate.registration import register_scene
    from correlate.smlm import filter_element

    sc = Scene.open(store, mode="r+")
    # derived before its source is registered: in the source's frame, not placed
    filter_element(sc, "corona", where="photons > 0", out="corona_early")
    assert sc.placement("corona_early").anchor == "corona"
    sc.require_joinable("corona_early", "corona")
    _, rec = register_scene(sc, "corona", "em")
    p = sc.placement("corona")
    assert p.placed and p.anchor == "em" and p.links[0]["id"] == rec["id"]
    sc.require_joinable("corona", "em")
    assert not sc.placement("corona_early").placed  # its transform predates the registration
    # derived after: follows the source's registration, with its error
    filter_element(sc, "corona", where="photons > 0", out="corona_late")
    late = sc.placement("corona_late")
    assert late.placed and late.anchor == "em" and late.links[0]["kind"] == "derived"
    sc.require_joinable("corona_late", "em")
    # a re-import makes the registration stale
    sc.add("corona", sample.smlm["corona"], overwrite=True)
    p = sc.placement("corona")
    assert not p.placed and "re-imported" in p.reason
    with pytest.raises(UnplacedError, match="re-imported"):
        sc.require_joinable("corona", "em")
    # a declaration (the user's word) places it in world, with unknown error
    sc.declare_aligned("corona")
    sc.declare_aligned("em", tre_nm=0.0)
    sc.require_joinable("corona", "em")
    from correlate.registration._map import predicted_tre_between

    assert np.isnan(predicted_tre_between(sc, "corona", "em", np.zeros((1, 2)))[0]).all()


def test_truth_scene_is_joinable_with_zero_error(sample, tmp_path):
    from correlate.registration._map import predicted_tre_between

    sc = sample.to_scene(tmp_path / "t.ome.zarr", transforms="truth", truth_table=False)
    for n in ("antibody", "corona"):
        p = sc.placement(n)
        assert p.placed and p.anchor == "world" and p.error_known
        sc.require_joinable(n, "em")
    tre, _ = predicted_tre_between(sc, "antibody", "em", np.ones((4, 2)))
    np.testing.assert_array_equal(tre, 0.0)


# ---------------------------------------------------------------------------------------------
# detector overrides: the flags reach the detectors; what they estimated is printed
# ---------------------------------------------------------------------------------------------
def _fake_detectors(monkeypatch, sample, seen):
    """Detectors that record what they were given and return the true fiducials."""
    from correlate.registration import _detect_image, _detect_smlm, fiducial_table

    f = sample.truth.fiducials.dropna(subset=["x_smlm", "y_smlm"])
    cov = np.repeat(np.eye(2)[None] * 1.0, len(f), axis=0)

    def beads(image, *, diameter_nm=None, polarity=None, psf_fwhm_nm=None):
        seen["image"] = {"diameter_nm": diameter_nm, "polarity": polarity, "psf_fwhm_nm": psf_fwhm_nm}
        df = fiducial_table(f[["x", "y"]].to_numpy(), cov)
        df.attrs["estimated"] = {"diameter_nm": diameter_nm or 41.5, "polarity": polarity or "dark"}
        df.attrs["source"] = {"diameter_nm": "user" if diameter_nm else "estimated",
                              "polarity": "user" if polarity else "estimated"}
        return df

    def smlm(locs, *, min_persistence=None, radius_nm=None, min_photons=None):
        seen["localizations"] = {"min_persistence": min_persistence, "radius_nm": radius_nm}
        df = fiducial_table(f[["x_smlm", "y_smlm"]].to_numpy(), cov)
        df.attrs["estimated"] = {"min_persistence": min_persistence or 0.42, "n_selected": len(df)}
        df.attrs["source"] = {"min_persistence": "user" if min_persistence else "estimated"}
        return df

    monkeypatch.setattr(_detect_image, "detect_beads", beads)
    monkeypatch.setattr(_detect_smlm, "detect_smlm_fiducials", smlm)


def test_register_flags_reach_the_detectors(store, sample, monkeypatch, capsys):
    seen: dict = {}
    _fake_detectors(monkeypatch, sample, seen)
    rc = main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--dry-run",
               "--bead-diameter", "30", "--psf-fwhm", "250", "--polarity", "dark", "--min-persistence", "0.3",
               "--detect", "fixed:diameter_nm=12", "--detect", "moving:radius_nm=80"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert seen["image"] == {"diameter_nm": 12.0, "polarity": "dark", "psf_fwhm_nm": 250.0}
    assert seen["localizations"] == {"min_persistence": 0.3, "radius_nm": 80.0}
    assert "moving 'antibody' (localizations)" in out and "min_persistence 0.3 (user)" in out
    assert "fixed 'em' (image)" in out and "diameter_nm 12 (user)" in out and "polarity dark (user)" in out
    # nothing given: estimated, and printed as such
    seen.clear()
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert seen["image"] == {"diameter_nm": None, "polarity": None, "psf_fwhm_nm": None}
    assert "diameter_nm 41.5 (estimated)" in out and "min_persistence 0.42 (estimated)" in out


def test_register_flags_that_fit_no_side_are_errors(store, capsys):
    sc = Scene.open(store, mode="r+")
    sc.add("corona2", sc.get("corona"))
    assert main(["register", str(store), "--moving", "corona", "--fixed", "corona2", "--bead-diameter", "40"]) == 1
    assert "--bead-diameter is an option of the fiducial detector for images" in capsys.readouterr().err
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--detect", "sideways:x=1"]) == 1
    assert "SIDE:KEY=VALUE" in capsys.readouterr().err
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--detect", "moving:colour=3"]) == 1
    assert "takes no option colour" in capsys.readouterr().err
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--min-persistence", "3"]) == 1
    assert "fraction of frames" in capsys.readouterr().err
    assert Scene.open(store).registrations() == []


def test_register_python_kwargs_reach_the_detectors(store, sample, monkeypatch):
    from correlate.registration import register_scene

    seen: dict = {}
    _fake_detectors(monkeypatch, sample, seen)
    sc = Scene.open(store, mode="r+")
    _, rec = register_scene(sc, "antibody", "em", store=False, moving_kwargs={"min_persistence": 0.25},
                            fixed_kwargs={"diameter_nm": 20.0, "psf_fwhm_nm": None})
    assert seen["localizations"]["min_persistence"] == 0.25 and seen["image"]["diameter_nm"] == 20.0
    assert rec["detection"]["fixed"]["source"]["diameter_nm"] == "user"
    assert rec["element_versions"]["antibody"] and rec["element_versions"]["em"]


# ---------------------------------------------------------------------------------------------
# fiducial tables from files, and diagnostics of a failing registration
# ---------------------------------------------------------------------------------------------
def test_fiducial_csvs_end_to_end(store, sample, tmp_path, capsys):
    mov, fix = _fiducial_csvs(tmp_path, sample)
    rep = tmp_path / "rep.json"
    rc = main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--fiducials-moving", str(mov),
               "--fiducials-fixed", str(fix), "--report", str(rep)])
    out = capsys.readouterr().out
    assert rc == 0, out
    n = len(pd.read_csv(mov))
    assert f"{n} fiducials from {mov}" in out and f"{n} paired automatically" in out
    rec = json.loads(rep.read_text())
    assert rec["n_pairs"] == n and rec["detection"]["moving"]["source"] == {"fiducials": "user"}
    sc = Scene.open(store)
    assert sc.placement("antibody").anchor == "em"
    # the stored transform carries the true fiducials onto the EM within their stated 1 nm noise
    # (the true positions carry none: FRE only reflects the model)
    f = sample.truth.fiducials.dropna(subset=["x_smlm"])
    got = sc.transform("antibody", "em").apply(f[["x_smlm", "y_smlm"]].to_numpy())
    assert np.sqrt(np.mean(np.sum((got - f[["x", "y"]].to_numpy()) ** 2, axis=1))) < 3.0


def test_bad_fiducial_csv_is_a_format_error(store, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1.0, 2.0], "z_nm": [0.0, 0.0]}).to_csv(bad, index=False)
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--fiducials-moving", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "needs columns x, y" in err
    words = tmp_path / "words.csv"
    words.write_text("x,y,sigma_nm\n1,2,one\n")
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--fiducials-fixed", str(words)]) == 1
    assert "must be numbers" in capsys.readouterr().err
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em",
                 "--fiducials-fixed", str(tmp_path / "nope.csv")]) == 1
    assert "fiducial file does not exist" in capsys.readouterr().err


def test_diagnostics_written_when_detection_fails(store, monkeypatch, tmp_path, capsys):
    from correlate.registration import _detect_image

    def beads(image, *, diameter_nm=None, polarity=None, psf_fwhm_nm=None):
        raise RegistrationError(
            "no bead population: 5 candidates, none with a consistent size", stage="detection",
            hint="--bead-diameter/--polarity/--psf-fwhm",
            diagnostics={"n_candidates": 5, "best_candidates": [
                {"x": 100.0 * i, "y": 50.0 * i, "size_nm": 30.0 + i, "contrast": 2.0 - 0.1 * i} for i in range(5)]})

    monkeypatch.setattr(_detect_image, "detect_beads", beads)
    d = tmp_path / "diag"
    rc = main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--diagnostics", str(d)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "stopped at stage detection" in err and "n_candidates: 5" in err and "size_nm 30" in err
    assert "try: --bead-diameter/--polarity/--psf-fwhm" in err and "fixed element 'em'" in err
    doc = json.loads((d / "antibody__em_diagnostics.json").read_text())
    assert doc["status"] == "failed" and doc["error"]["stage"] == "detection"
    assert doc["error"]["diagnostics"]["role"] == "fixed" and doc["error"]["diagnostics"]["n_candidates"] == 5
    assert doc["detection"]["moving"]["n"] > 0  # the moving side was detected before the failure
    assert (d / "antibody__em_diagnostics.png").stat().st_size > 10_000


def test_diagnostics_written_when_pairing_fails(store, sample, tmp_path, capsys):
    """A real failure: two fiducials on the moving side cannot be paired or fitted."""
    mov, fix = _fiducial_csvs(tmp_path, sample)
    two = tmp_path / "two.csv"
    pd.read_csv(mov).head(2).to_csv(two, index=False)
    d = tmp_path / "diag"
    rc = main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--fiducials-moving", str(two),
               "--fiducials-fixed", str(fix), "--diagnostics", str(d)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "stopped" in err and "at least 3" in err
    doc = json.loads((d / "antibody__em_diagnostics.json").read_text())
    assert doc["status"] == "failed" and doc["detection"]["moving"]["n"] == 2
    assert (d / "antibody__em_diagnostics.png").exists()
    assert Scene.open(store).registrations() == []


def test_diagnostics_written_on_success(store, sample, tmp_path, capsys):
    mov, fix = _fiducial_csvs(tmp_path, sample)
    d = tmp_path / "diag"
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--fiducials-moving", str(mov),
                 "--fiducials-fixed", str(fix), "--diagnostics", str(d), "--dry-run"]) == 0
    doc = json.loads((d / "antibody__em_diagnostics.json").read_text())
    assert doc["status"] == "ok" and doc["record"]["n_pairs"] == len(pd.read_csv(mov))
    assert (d / "antibody__em_diagnostics.png").stat().st_size > 10_000


def test_drift_min_persistence_reaches_the_estimator(store, monkeypatch, capsys):
    from correlate.errors import CorrelateError
    from correlate.smlm import _drift

    seen = {}

    def fake(df, method="auto", **kwargs):
        seen.update(kwargs, method=method)
        raise CorrelateError("stop here")

    monkeypatch.setattr(_drift, "correct_drift", fake)
    assert main(["drift", str(store), "antibody", "--min-persistence", "0.3", "--no-plot"]) == 1
    assert seen["min_persistence"] == 0.3 and "stop here" in capsys.readouterr().err
    seen.clear()
    assert main(["drift", str(store), "antibody", "--no-plot"]) == 1
    assert "min_persistence" not in seen and "min_fraction" not in seen  # estimated, not a fixed 0.5
    assert main(["drift", str(store), "antibody", "--min-persistence", "1.5"]) == 1
    assert "fraction of frames" in capsys.readouterr().err


def test_cli_overlay_and_report_refuse_unplaced_labels(store, tmp_path, capsys):
    png, html = tmp_path / "o.png", tmp_path / "r.html"
    assert main(["overlay", str(store), "-o", str(png), "--labels", "antibody"]) == 1
    err = capsys.readouterr().err
    assert "cannot overlay 'antibody' and 'em'" in err and "--assume-aligned" in err and not png.exists()
    assert main(["report", str(store), "-o", str(html), "--labels", "corona"]) == 1
    assert "'corona' is unplaced" in capsys.readouterr().err and not html.exists()
    assert main(["overlay", str(store), "-o", str(png), "--labels", "antibody", "--assume-aligned",
                 "--region", "0,0,1000,1000"]) == 0
    assert png.stat().st_size > 1000


def test_landmarks_and_detection_options_are_exclusive(store, sample, tmp_path, capsys):
    from correlate.elements import Landmarks
    from correlate.registration import write_bigwarp_csv

    f = sample.truth.fiducials.dropna(subset=["x_smlm"])
    p = tmp_path / "lm.csv"
    write_bigwarp_csv(p, Landmarks(f[["x_smlm", "y_smlm"]].to_numpy(), f[["x", "y"]].to_numpy()))
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--landmarks", str(p),
                 "--bead-diameter", "20"]) == 1
    assert "would be ignored" in capsys.readouterr().err
