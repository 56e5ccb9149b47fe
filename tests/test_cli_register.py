"""`correlate register` and `correlate map` on a simulated scene."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from correlate.cli import main
from correlate.datasets import SampleConfig, simulate_sample
from correlate.registration import write_bigwarp_csv
from correlate.scene import Scene
from correlate.transforms import ThinPlateSpline


@pytest.fixture(scope="module")
def sample():
    return simulate_sample(SampleConfig.small(seed=0, n_fiducials=12, make_afm=False))


@pytest.fixture()
def store(tmp_path, sample):
    path = tmp_path / "s.ome.zarr"
    sc = Scene.create(path)
    for name in ("em", "sim", "antibody"):
        sc.add(name, sample.elements()[name])
    return path


def test_register_and_map_round_trip(store, sample, tmp_path, capsys):
    rep = tmp_path / "rep.json"
    bw = tmp_path / "bw.csv"
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--report", str(rep), "--bigwarp", str(bw)]) == 0
    out = capsys.readouterr().out
    assert "12 paired automatically" in out and "model: tps" in out and "predicted TRE" in out
    rec = json.loads(rep.read_text())
    assert rec["model"] == "tps" and rec["n_pairs"] == 12 and rec["error_model"]["model"] == "tps"
    sc = Scene.open(store)
    assert ("antibody", "em") in sc.landmark_pairs() and len(sc.registrations()) == 1
    assert isinstance(sc.transform_to_world("antibody"), ThinPlateSpline)

    assert main(["register", str(store), "--moving", "sim", "--fixed", "em", "--model", "similarity", "--matrix", str(tmp_path / "m.txt")]) == 0
    capsys.readouterr()

    pts = pd.DataFrame({"x": np.linspace(600, 2400, 9), "y": np.linspace(500, 2500, 9), "label": list("abcdefghi")})
    pin, pab, pback, psim, psimback = (tmp_path / f"{n}.csv" for n in ("in", "ab", "back", "sim", "simback"))
    pts.to_csv(pin, index=False)
    assert main(["map", str(store), str(pin), str(pab), "--from", "em", "--to", "antibody"]) == 0
    assert main(["map", str(store), str(pab), str(pback), "--from", "antibody", "--to", "em"]) == 0
    assert main(["map", str(store), str(pin), str(psim), "--from", "em", "--to", "sim"]) == 0
    assert main(["map", str(store), str(psim), str(psimback), "--from", "sim", "--to", "em"]) == 0
    ab, back = pd.read_csv(pab), pd.read_csv(pback)
    assert list(ab["label"]) == list(pts["label"])
    assert np.abs(back[["x", "y"]].to_numpy() - pts[["x", "y"]].to_numpy()).max() < 0.1  # TPS round trip
    simback = pd.read_csv(psimback)
    assert np.abs(simback[["x", "y"]].to_numpy() - pts[["x", "y"]].to_numpy()).max() < 1e-6  # linear
    # mapped positions agree with the truth (sub-nm registration on the simulator)
    truth = sample.truth.transforms["antibody"].inverse().apply(pts[["x", "y"]].to_numpy())
    assert np.abs(ab[["x", "y"]].to_numpy() - truth).max() < 3.0
    # predicted error column: positive, finite, sub-nm to few nm here; same error both directions
    assert (ab["tre_nm"] > 0).all() and (ab["tre_nm"] < 5).all()
    np.testing.assert_allclose(ab["tre_nm"], back["tre_nm"], rtol=1e-3)
    assert (ab["tre95_nm"] > ab["tre_nm"]).all()
    # em -> sim -> error of the sim registration only
    assert (pd.read_csv(psim)["tre_nm"] > 0).all()

    # the BigWarp export reads back and refits to the same linear part
    assert main(["register", str(store), "--moving", "antibody", "--fixed", "em", "--landmarks", str(bw),
                 "--model", "affine", "--dry-run"]) == 0
    assert "manual pairs" in capsys.readouterr().out


def test_register_errors_are_reported(store, tmp_path, capsys):
    bad = tmp_path / "few.csv"
    pd.DataFrame({"source_x": [0.0, 100.0], "source_y": [0.0, 0.0], "target_x": [5.0, 105.0], "target_y": [0.0, 0.0]}).to_csv(bad, index=False)
    assert main(["register", str(store), "--moving", "sim", "--fixed", "em", "--landmarks", str(bad), "--model", "affine"]) == 1
    assert "at least 3 fiducial pairs" in capsys.readouterr().err
    pts = tmp_path / "p.csv"
    pd.DataFrame({"u": [1.0]}).to_csv(pts, index=False)
    assert main(["map", str(store), str(pts), str(tmp_path / "o.csv"), "--from", "em", "--to", "sim"]) == 1


def test_bigwarp_manual_pairs_fit_matches(store, sample, tmp_path, capsys):
    from correlate.elements import Landmarks

    f = sample.truth.fiducials.dropna(subset=["x_sim"])
    lm = Landmarks(f[["x_sim", "y_sim"]].to_numpy(), f[["x", "y"]].to_numpy())
    p = tmp_path / "manual.csv"
    write_bigwarp_csv(p, lm)
    rep = tmp_path / "r.json"
    assert main(["register", str(store), "--moving", "sim", "--fixed", "em", "--landmarks", str(p), "--model", "rigid",
                 "--report", str(rep)]) == 0
    m = np.asarray(json.loads(rep.read_text())["parameters"]["matrix"])
    np.testing.assert_allclose(m, sample.truth.transforms["sim"].matrix, atol=1e-6)


def test_register_and_map_bad_input_is_an_error_message(store, tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert main(["register", str(store), "--moving", "sim", "--fixed", "em", "--landmarks", str(missing)]) == 1
    assert "landmark file does not exist" in capsys.readouterr().err
    assert main(["register", str(store), "--moving", "em", "--fixed", "em"]) == 1
    assert "both 'em'" in capsys.readouterr().err
    assert Scene.open(store).registrations() == []
    assert main(["map", str(store), str(missing), str(tmp_path / "o.csv"), "--from", "em", "--to", "sim"]) == 1
    assert "cannot read the points CSV" in capsys.readouterr().err
    words = tmp_path / "words.csv"
    words.write_text("x,y\n1,one\n")
    assert main(["map", str(store), str(words), str(tmp_path / "o.csv"), "--from", "em", "--to", "sim"]) == 1
    assert "must be numbers in nm" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_pairing_options_and_failure_diagnostics(store, tmp_path, capsys, monkeypatch):
    """--no-mirror and --scale-range reach the pairing (automatic scale by default); a pairing
    failure prints its best hypothesis and the flag to try, and --diagnostics draws it."""
    from correlate.errors import RegistrationError
    from correlate.registration import _register

    seen = {}

    def fake_register_points(moving, fixed, *, model="auto", prior=None, scale_range=None, allow_mirror=True,
                             alpha=0.01, reject_outliers=True, moving_name="moving", fixed_name="fixed", gate_nm=None,
                             excess_fle_nm=None):
        seen.update(scale_range=scale_range, allow_mirror=allow_mirror, n=(len(moving), len(fixed)),
                    excess=excess_fle_nm)
        raise RegistrationError(
            "no pose hypothesis beats chance", stage="pairing", hint="--scale-range or --fiducials-moving",
            diagnostics={"n_hypotheses": 812, "best_hypothesis": {
                "matrix": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "n_inliers": 2, "expected_by_chance": 1.7,
                "pairs": [[0, 0], [1, 1]]}})

    monkeypatch.setattr(_register, "register_points", fake_register_points)
    d = tmp_path / "diag"
    argv = ["register", str(store), "--moving", "sim", "--fixed", "em", "--diagnostics", str(d)]
    assert main(argv) == 1
    assert seen["scale_range"] is None and seen["allow_mirror"] is True and min(seen["n"]) > 0
    err = capsys.readouterr().err
    assert "stopped at stage pairing" in err and "n_inliers: 2" in err and "n_hypotheses: 812" in err
    assert "try: --scale-range or --fiducials-moving" in err
    doc = json.loads((d / "sim__em_diagnostics.json").read_text())
    assert doc["error"]["diagnostics"]["best_hypothesis"]["pairs"] == [[0, 0], [1, 1]]
    assert (d / "sim__em_diagnostics.png").stat().st_size > 10_000
    assert seen["excess"] is None
    assert main(argv + ["--no-mirror", "--scale-range", "0.5", "2", "--excess-fle", "1.5"]) == 1
    assert seen["scale_range"] == (0.5, 2.0) and seen["allow_mirror"] is False and seen["excess"] == 1.5
    assert Scene.open(store).registrations() == []
