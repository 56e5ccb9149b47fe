"""The per-particle analysis as named steps: options objects give the same results as the keyword
call, a custom step can be inserted, and mixing the two ways of giving options is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.analysis import (
    PARTICLE_STEPS,
    AssignOptions,
    ColocalizeOptions,
    CountOptions,
    LabelOptions,
    ParticleOptions,
    ParticleStep,
    SegmentOptions,
    StoreOptions,
    analyze_particles,
    insert_step,
)
from correlate.errors import CorrelateError


def _scene(tmp_path, rng):
    """A small EM field (dark projected spheres, pixel 1.5-4 nm, diameters 25-80 nm) and two
    labels blinking on shells around the particles plus a uniform background."""
    from correlate.elements import make_image, make_localizations
    from correlate.scene import Scene

    px = float(rng.uniform(1.5, 4.0))
    n_px = 200
    field = n_px * px
    n_part = int(rng.integers(4, 8))
    d = rng.uniform(25.0, 80.0, n_part)
    grid = np.linspace(0.2, 0.8, 3) * field
    cxy = np.array([(gx, gy) for gx in grid for gy in grid])[rng.permutation(9)[:n_part]]
    yy, xx = (np.mgrid[:n_px, :n_px] + 0.0) * px
    t = np.zeros((n_px, n_px))
    for (x0, y0), di in zip(cxy, d):
        r2 = ((xx - x0) ** 2 + (yy - y0) ** 2) / (0.5 * di) ** 2
        t += 0.5 * di * np.sqrt(np.clip(1 - r2, 0, None))
    img = 1000.0 * np.exp(-0.01 * t) + rng.normal(0, 3.0, t.shape)
    sc = Scene.create(tmp_path / "steps.ome.zarr")
    sc.add("em", make_image(img.astype(np.float32), pixel_size_nm=px, modality="em"))
    for label, linker in (("antibody", 8.0), ("corona", 15.0)):
        rows = []
        for (x0, y0), di in zip(cxy, d):
            m = int(rng.integers(5, 25))  # molecules on the shell
            ang = rng.uniform(0, 2 * np.pi, m)
            r = 0.5 * di + linker * rng.uniform(0.2, 1.0, m)
            k = rng.geometric(0.3, m)  # blinks per molecule
            mx = np.repeat(x0 + r * np.cos(ang), k)
            my = np.repeat(y0 + r * np.sin(ang), k)
            rows.append(np.c_[mx, my])
        xy = np.vstack(rows + [rng.uniform(0, field, (40, 2))])
        prec = rng.uniform(4.0, 12.0, len(xy))
        df = pd.DataFrame({"x": xy[:, 0] + rng.normal(0, prec), "y": xy[:, 1] + rng.normal(0, prec),
                           "frame": rng.permutation(len(xy) * 20)[: len(xy)].astype(np.int64),
                           "precision": prec, "photons": rng.uniform(500, 3000, len(xy))})
        sc.add(label, make_localizations(df, source_format="simulated"))
    return sc


KEYWORDS = dict(
    linker_nm={"antibody": 8.0, "corona": 15.0}, n_sigma=2.5, tre_nm={"antibody": 2.0}, blink_radius_nm=20.0,
    max_dark_frames=2, events_per_molecule={"antibody": 2.5}, detection_efficiency=0.9,
    count_method={"corona": "events"}, qpaint=True, cbc_radius_nm=60.0, cbc_steps=5,
    segmentation={"min_diameter_nm": 15.0}, store=False, assume_aligned=True,
)


def _options() -> ParticleOptions:
    return ParticleOptions(
        segment=SegmentOptions(params={"min_diameter_nm": 15.0}),
        assign=AssignOptions(n_sigma=2.5, blink_radius_nm=20.0, max_dark_frames=2),
        count=CountOptions(qpaint=True),
        colocalize=ColocalizeOptions(cbc_radius_nm=60.0, cbc_steps=5),
        store=StoreOptions(store=False),
        labels={"antibody": LabelOptions(linker_nm=8.0, tre_nm=2.0, events_per_molecule=2.5, detection_efficiency=0.9),
                "corona": LabelOptions(linker_nm=15.0, count_method="events", detection_efficiency=0.9)},
        assume_aligned=True,
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return _scene(tmp_path_factory.mktemp("steps"), np.random.default_rng(20261203))


def test_options_give_the_keyword_results(scene):
    kw = analyze_particles(scene, "em", ["antibody", "corona"], **KEYWORDS)
    op = analyze_particles(scene, "em", ["antibody", "corona"], options=_options())
    assert len(kw.table) >= 3  # particles were found: the comparison is not of empty tables
    assert kw.table["n_localizations_antibody"].sum() > 0 and kw.table["n_localizations_corona"].sum() > 0
    pd.testing.assert_frame_equal(kw.table, op.table)
    assert kw.table.attrs == op.table.attrs
    for L in ("antibody", "corona"):
        pd.testing.assert_frame_equal(kw.assignments[L], op.assignments[L])
    assert kw.summary["labels"] == op.summary["labels"]
    assert kw.summary["cbc_radius_nm"] == 60.0
    assert kw.summary["labels"]["antibody"]["events_per_molecule"] == 2.5
    assert "n_sites_corona" not in kw.table.columns and "n_sites_antibody" in kw.table.columns
    # a per-label option really reaches its label: another linker changes that label only
    wider = _options().replace(labels={**_options().labels, "corona": LabelOptions(
        linker_nm=40.0, count_method="events", detection_efficiency=0.9)})
    w = analyze_particles(scene, "em", ["antibody", "corona"], options=wider)
    assert w.table["n_localizations_corona"].sum() > kw.table["n_localizations_corona"].sum()
    np.testing.assert_array_equal(w.table["n_localizations_antibody"], kw.table["n_localizations_antibody"])


def test_custom_step_inserted(scene):
    def frames(state, lab):
        ok = lab.particle >= 0
        n = np.bincount(lab.particle[ok], minlength=state.n_particles)
        state.table[f"n_assigned_check_{lab.name}"] = n

    def n_labels(state):
        state.table["n_labels"] = len(state.labels)

    steps = insert_step(PARTICLE_STEPS, ParticleStep("check", frames, per_label=True), after="count")
    steps = insert_step(steps, ParticleStep("n_labels", n_labels), before="table")
    base = analyze_particles(scene, "em", ["antibody", "corona"], options=_options())
    res = analyze_particles(scene, "em", ["antibody", "corona"], options=_options(), steps=steps)
    cols = list(res.table.columns)
    for L in ("antibody", "corona"):
        np.testing.assert_array_equal(res.table[f"n_assigned_check_{L}"], res.table[f"n_localizations_{L}"])
        # the label's own columns stay together: the new one sits after the count columns
        assert cols.index(f"n_assigned_check_{L}") == cols.index(f"n_molecules_{L}") + 1
    assert (res.table["n_labels"] == 2).all()
    pd.testing.assert_frame_equal(res.table[list(base.table.columns)], base.table)


def test_options_and_keywords_together_refused(scene):
    with pytest.raises(CorrelateError, match="linker_nm"):
        analyze_particles(scene, "em", ["antibody"], options=_options(), linker_nm=12.0)
    with pytest.raises(CorrelateError, match="no step named"):
        insert_step(PARTICLE_STEPS, ParticleStep("x", lambda s: None), after="nope")
    with pytest.raises(CorrelateError, match="already"):
        insert_step(PARTICLE_STEPS, ParticleStep("count", lambda s: None), after="measure")


def test_cli_flags_build_the_options():
    from correlate._cli.particles import particle_options
    from correlate.analysis._particle_options import options_from_keywords
    from correlate.cli import build_parser

    args = build_parser().parse_args([
        "particles", "s.ome.zarr", "--labels", "antibody,corona", "--linker-nm", "12", "--n-sigma", "3",
        "--tre-nm", "1.5", "--events-per-molecule", "antibody=cal,corona=3.5", "--count-method", "corona=events",
        "--blink-radius-nm", "15", "--max-dark-frames", "2", "--cbc-radius-nm", "70", "--min-diameter-nm", "30",
        "--detection-efficiency", "0.8", "--no-store", "--table", "p2", "--assume-aligned"])
    got = particle_options(args, ["antibody", "corona"])
    want = options_from_keywords(
        ["antibody", "corona"], segmentation={"min_diameter_nm": 30.0}, linker_nm=12.0, n_sigma=3.0, tre_nm=1.5,
        events_per_molecule={"antibody": "cal", "corona": 3.5}, count_method={"corona": "events"},
        blink_radius_nm=15.0, max_dark_frames=2, cbc_radius_nm=70.0, detection_efficiency=0.8, store=False,
        table_name="p2", assume_aligned=True)
    assert got == want
    assert got.label("antibody").count_method == "sites" and got.label("corona").count_method == "events"
    assert got.label("antibody").events_per_molecule == "cal"


def test_keyword_defaults_are_the_signature_defaults():
    import inspect

    from correlate.analysis._particle_options import KEYWORD_DEFAULTS, options_from_keywords

    sig = inspect.signature(analyze_particles).parameters
    assert KEYWORD_DEFAULTS == {k: sig[k].default for k in KEYWORD_DEFAULTS}
    assert set(sig) - set(KEYWORD_DEFAULTS) == {"scene", "structure", "labels", "options", "steps"}
    assert options_from_keywords(["a"]) == ParticleOptions(labels={"a": LabelOptions()})
    assert ParticleOptions.from_keywords(["a", "b"], linker_nm={"b": 4.0}).label("b").linker_nm == 4.0
    with pytest.raises(TypeError, match="linker"):
        options_from_keywords(["a"], linker=3.0)
