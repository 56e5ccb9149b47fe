"""The napari plugin, headless on a virtual X display: the npe2 reader opens a scene in world nm,
the layers overlap on screen where the transforms put them, and the dock widget registers, runs
the particle analysis and shows a particle's row."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari", reason="napari is not installed (pip install 'correlate[napari]')")


@pytest.fixture(scope="module")
def display():
    """A virtual X display (Xvfb) when none is set; napari needs OpenGL, which Qt's offscreen
    platform does not give."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no DISPLAY and no Xvfb (Debian package xvfb) to start one")
    num = 90 + os.getpid() % 500
    proc = subprocess.Popen([xvfb, f":{num}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not os.path.exists(f"/tmp/.X11-unix/X{num}"):
        if proc.poll() is not None or time.monotonic() - t0 > 20:
            pytest.skip(f"Xvfb did not start on :{num}")
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{num}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    try:
        yield os.environ["DISPLAY"]
    finally:
        os.environ.pop("DISPLAY", None)
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def viewer(display):
    v = napari.Viewer(show=True)
    try:
        yield v
    finally:
        v.close()


def _overlap_scene(path, rng):
    """EM: a bright field with one dark disc; localizations in their own rotated, scaled frame,
    placed by a similarity transform, scattered around the disc's world position."""
    from correlate.elements import make_image, make_localizations
    from correlate.scene import Scene
    from correlate.transforms import Affine

    px = float(rng.uniform(1.5, 4.0))
    em = np.ones((160, 200), np.float32)
    r0, c0 = rng.integers(40, 120), rng.integers(50, 150)
    yy, xx = np.mgrid[:160, :200]
    em[(yy - r0) ** 2 + (xx - c0) ** 2 <= 36] = 0.0
    world = np.array([c0 * px, r0 * px])
    ang, s = np.deg2rad(rng.uniform(0, 360)), rng.uniform(0.8, 1.25)
    lin = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    if rng.random() < 0.5:
        lin = lin @ np.diag([1.0, -1.0])  # a mirrored frame
    off = rng.uniform(-500, 500, 2)
    t = Affine(np.block([[lin, off[:, None]], [np.zeros((1, 2)), np.ones((1, 1))]]))
    own = np.linalg.solve(lin, (world + rng.normal(0, 2.0 * px, (300, 2)) - off).T).T
    locs = make_localizations(pd.DataFrame({"x": own[:, 0], "y": own[:, 1], "frame": np.arange(300),
                                            "precision": np.full(300, 5.0)}))
    sc = Scene.create(path)
    sc.add("em", make_image(em, pixel_size_nm=px, modality="em"))
    sc.add("locs", locs, transform=t)
    sc.declare_aligned("locs", tre_nm=1.0, note="test")
    return sc


def _centroid(mask):
    r, c = np.nonzero(mask)
    return np.array([r.mean(), c.mean()]) if r.size else np.array([np.nan, np.nan])


def test_reader_opens_scene_in_nm_and_layers_overlap_on_screen(viewer, tmp_path):
    import npe2

    from correlate.napari import layer_data

    rng = np.random.default_rng()
    store = tmp_path / "s.ome.zarr"
    _overlap_scene(store, rng)
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "correlate" in pm._manifests, "the correlate npe2 manifest is not installed"
    layers = viewer.open(str(store), plugin="correlate")
    assert {la.name for la in layers} == {"em", "locs"}
    for la in viewer.layers:
        assert [str(u) for u in la.units] == ["nanometer", "nanometer"], la.name
    assert len(layer_data(store)) == 2
    em, pts = viewer.layers["em"], viewer.layers["locs"]
    pts.face_color = "red"
    pts.size = 6.0
    pts.blending = "translucent"
    viewer.reset_view()
    pts.visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    bright = shot.sum(axis=2) > 600
    rows, cols = np.nonzero(bright)
    inside = np.zeros_like(bright)
    inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    disc = _centroid(inside & (shot.sum(axis=2) < 60))
    pts.visible = True
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    red = _centroid((shot[..., 0] > 150) & (shot[..., 1] < 80))
    nm_per_screen_px = 1.0 / viewer.camera.zoom
    err_nm = np.linalg.norm(disc - red) * nm_per_screen_px
    # The points scatter (sigma 2 EM px) around the disc centre: their mean lies within ~0.2 EM px;
    # drawing rounds each edge to a screen pixel.
    px = float(em.affine.affine_matrix[0, 0])
    assert np.isfinite(err_nm) and err_nm < 0.5 * px + 2 * nm_per_screen_px, (disc, red, err_nm, px)


def test_default_layers_leave_out_raw_and_unplaced_sets(tmp_path):
    from correlate.napari import default_elements
    from correlate.elements import make_localizations

    rng = np.random.default_rng()
    sc = _overlap_scene(tmp_path / "d.ome.zarr", rng)
    cal = make_localizations(pd.DataFrame({"x": rng.uniform(0, 1e4, 50), "y": rng.uniform(0, 1e4, 50),
                                           "frame": np.arange(50)}))
    sc.add("locs_calibration", cal)
    sc.add("locs_filtered", sc.get("locs"))
    sc.add_history("locs_filtered", {"step": "filter", "source": "locs"})
    shown = default_elements(sc)
    assert "locs_calibration" not in shown and "locs" not in shown
    assert "em" in shown


def test_dock_widget_registers_analyzes_and_shows_a_row(viewer, tmp_path):
    from correlate.datasets import SampleConfig, simulate_sample
    from correlate.napari._widget import CorrelateWidget

    sample = simulate_sample(SampleConfig.small(seed=int(np.random.default_rng().integers(1 << 20))))
    store = tmp_path / "w.ome.zarr"
    sample.to_scene(store, transforms="none")
    _, w = viewer.window.add_plugin_dock_widget("correlate", "correlate")  # as Plugins > correlate does
    assert isinstance(w, CorrelateWidget)  # napari injected its viewer (a proxy of it)
    w.open(store, show=False)
    w.elements.value = ["em", "antibody"]
    w.show(["em", "antibody"])
    assert {la.name for la in viewer.layers} == {"em", "antibody"}
    w.moving.value, w.fixed.value = "antibody", "em"
    reg = w.register()
    assert reg is not None, w.status.value
    assert "pairs" in w.status.value
    # Without a registration of corona, the particle step refuses to join it and says so.
    w.structure.value = "em"
    w.labels_select.value = ["corona"]
    assert w.particles() is None and "register" in w.status.value
    w.labels_select.value = ["antibody"]
    res = w.particles()
    assert res is not None, w.status.value
    shapes = viewer.layers["particles"]
    assert len(shapes.data) == len(res.table)
    truth = sample.truth.particles
    assert abs(len(res.table) - len(truth)) <= 2
    shapes.selected_data = {0}
    w._on_select(shapes)
    assert f"particle_id: {res.table['particle_id'].iloc[0]}" in w.row.value
