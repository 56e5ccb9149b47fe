"""Processing steps on a Scene store: new elements, history records, CLI commands."""

from __future__ import annotations

import numpy as np
import pytest
from _smlm_sim import sample

from correlate.cli import main
from correlate.smlm import make_step, processing_history


@pytest.fixture
def store(tmp_path):
    from correlate.scene import Scene

    s = sample("small")
    path = tmp_path / "sample.ome.zarr"
    scene = Scene.create(path)
    for name in ("antibody", "corona"):
        scene.add(name, s.smlm[name], transform=s.truth.transforms[name])
    return path


def test_make_step_is_json_and_complete():
    rec = make_step("drift", {"method": "rcc", "bins": np.int64(5), "roi": (1, 2)}, source="a", results={"x": np.float32(1.5)})
    assert rec["parameters"] == {"method": "rcc", "bins": 5, "roi": [1, 2]}
    assert rec["results"] == {"x": 1.5}
    assert rec["source"] == "a" and rec["version"].startswith("correlate ") and rec["time"].endswith("+00:00")


def test_cli_drift_merge_filter_chain(store, capsys, tmp_path):
    from correlate.scene import Scene

    assert main(["drift", str(store), "antibody"]) == 0
    out = capsys.readouterr().out
    assert "by fiducials (8 fiducials)" in out and "antibody_drift" in out
    plot = tmp_path / "sample_antibody_drift.png"
    assert plot.exists() and plot.stat().st_size > 5000

    assert main(["merge", str(store), "antibody_drift", "--max-dark", "1", "--out", "ab_merged"]) == 0
    out = capsys.readouterr().out
    assert "merged 'antibody_drift'" in out

    assert main(["filter", str(store), "ab_merged", "--where", "precision < 20 and photons > 500",
                 "--roi", "0,0,100000,100000", "--frames", "0:300"]) == 0
    out = capsys.readouterr().out
    assert "kept" in out

    scene = Scene.open(store)
    raw = scene.get("antibody")
    corr = scene.get("antibody_drift")
    merged = scene.get("ab_merged")
    filt = scene.get("ab_merged_filtered")
    assert len(corr) == len(raw)  # the raw element stays, the corrected one is new
    assert not np.allclose(corr["x"].to_numpy(), raw["x"].to_numpy())
    assert len(merged) < len(corr)
    assert (filt["precision"] < 20).all() and (filt["photons"] > 500).all() and (filt["frame"] < 300).all()
    steps = [h["step"] for h in processing_history(scene, "ab_merged_filtered")]
    assert steps == ["drift", "merge", "filter"]
    h = processing_history(scene, "ab_merged_filtered")
    assert h[0]["source"] == "antibody" and h[1]["source"] == "antibody_drift"
    assert h[0]["parameters"]["chosen_method"] == "fiducials"
    assert h[0]["results"]["residual_drift_rms_nm"] < 2.0
    assert h[2]["parameters"]["where"] == "precision < 20 and photons > 500"
    # the derived elements keep the raw element's transform to world
    p = np.array([[3000.0, 2500.0]])
    assert np.allclose(scene.transform_to_world("ab_merged_filtered").apply(p),
                       scene.transform_to_world("antibody").apply(p))


def test_cli_errors_are_reported(store, capsys):
    assert main(["drift", str(store), "antibody", "--method", "rcc", "--bins", "500", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert "correlate drift: error" in err and "min_locs_per_bin" in err
    assert main(["filter", str(store), "antibody", "--where", "open('x').read() == 1"]) == 1
    assert "function calls not allowed" in capsys.readouterr().err
    assert main(["merge", str(store), "nope"]) == 1
    assert "no element" in capsys.readouterr().err
    assert main(["drift", str(store), "antibody", "--plot", str(store.parent / "d.png")]) == 0
    assert main(["drift", str(store), "antibody", "--no-plot"]) == 1  # antibody_drift exists
    assert "exists" in capsys.readouterr().err


def test_colour_alignment_element(store):
    from correlate.scene import Scene
    from correlate.smlm import align_colour_elements

    scene = Scene.open(store, mode="r+")
    res = align_colour_elements(scene, "corona", "antibody")
    assert res["out"] == "corona_aligned"
    assert res["summary"]["n_beads"] == 8
    h = processing_history(scene, "corona_aligned")
    assert h[-1]["step"] == "colour_alignment" and h[-1]["parameters"]["reference"] == "antibody"
