"""Overlays and particle plots: what is drawn is where and as long as it should be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.elements import make_image
from correlate.plot import (
    Fiducials,
    draw_overlay,
    format_length,
    nice_length_nm,
    particle_gallery,
    plot_colocalization,
    plot_counts_vs_size,
    plot_radial_profiles,
    plot_size_distribution,
    radial_profiles,
    registration_summary,
    save_figure,
)


def _png(fig, path):
    from matplotlib.image import imread

    save_figure(fig, path)
    return imread(str(path))[..., :3]


def _longest_block(mask) -> slice:
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    k = int(np.argmax(ends - starts))
    return slice(starts[k], ends[k])


def _image_area(img):
    """The part of a saved overlay covered by the image: the longest block of rows, then of
    columns, that are mostly not white (the caption and margins are)."""
    white = np.all(img > 0.98, axis=-1)
    rows = _longest_block((~white).mean(axis=1) > 0.5)
    cols = _longest_block((~white[rows]).mean(axis=0) > 0.5)
    return img[rows, cols]


def _longest_white_run(img) -> int:
    """Longest horizontal run of white pixels inside the image area (the scale bar)."""
    white = np.all(_image_area(img) > 0.98, axis=-1)
    best = 0
    for row in white:  # per row of a small test image: fine outside the library
        padded = np.r_[0, row.astype(np.int8), 0]
        d = np.diff(padded)
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        if starts.size:
            best = max(best, int((ends - starts).max()))
    return best


# ---------------------------------------------------------------------------------------------
# scale bar
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "px_nm,bar_nm,scale",
    [(2.5, 200.0, 2), (2.5, 200.0, 1), (3.7, 500.0, 1), (1.0, 100.0, 3)],
)
def test_scale_bar_length_in_png_pixels(tmp_path, px_nm, bar_nm, scale):
    base = make_image(np.zeros((200, 300)), pixel_size_nm=px_nm, origin_nm=(10.0, -40.0), modality="em")
    fig = draw_overlay(base, scale_bar_nm=bar_nm, pixel_scale=scale, base_limits=(0.0, 1.0))
    img = _png(fig, tmp_path / "bar.png")
    expected = bar_nm / px_nm * scale
    assert abs(_longest_white_run(img) - expected) <= 1.0
    assert fig.correlate_scale_bar_nm == bar_nm
    # the image area itself is exactly ny*scale by nx*scale PNG pixels (black here)
    black = np.all(img < 0.02, axis=-1)
    rows = np.flatnonzero(black.any(axis=1))
    cols = np.flatnonzero(black.any(axis=0))
    assert cols[-1] - cols[0] + 1 == 300 * scale
    assert rows[-1] - rows[0] + 1 == 200 * scale


def test_nice_lengths_and_labels():
    assert nice_length_nm(3000.0) == 500.0
    assert nice_length_nm(1000.0) == 200.0
    assert nice_length_nm(12.0) == 2.0
    assert format_length(500) == "500 nm"
    assert format_length(2000) == "2 µm"
    assert format_length(1500) == "1.5 µm"


# ---------------------------------------------------------------------------------------------
# overlay content from plain inputs
# ---------------------------------------------------------------------------------------------
def test_overlay_places_localizations_in_colour(tmp_path):
    base = make_image(np.zeros((100, 100)), pixel_size_nm=10.0, modality="em")
    rng = np.random.default_rng(0)
    # a magenta cluster near (250, 250) nm -> pixel (25, 25); a green one near (750, 600)
    a = pd.DataFrame({"x": rng.normal(250, 10, 500), "y": rng.normal(250, 10, 500), "precision": 5.0})
    b = pd.DataFrame({"x": rng.normal(750, 10, 500), "y": rng.normal(600, 10, 500), "precision": 5.0})
    fig = draw_overlay(base, {"a": a, "b": b}, colors=["magenta", "lime"], pixel_scale=4, scale_bar_nm=100,
                       base_limits=(0, 1))
    img = _png(fig, tmp_path / "ov.png")
    ax = fig.axes[0]
    to_px = lambda x, y: ax.transData.transform((x, y))  # noqa: E731 - display pixels, origin bottom-left
    h = img.shape[0]
    (xa, ya), (xb, yb) = to_px(250, 250), to_px(750, 600)
    pa = img[int(round(h - ya)), int(round(xa))]
    pb = img[int(round(h - yb)), int(round(xb))]
    assert pa[0] > 0.8 and pa[2] > 0.8 and pa[1] < 0.2  # magenta
    assert pb[1] > 0.8 and pb[0] < 0.2 and pb[2] < 0.2  # green
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["a (500 loc.)", "b (500 loc.)"]


def test_overlay_residual_vectors_and_outliers():
    base = make_image(np.zeros((100, 100)), pixel_size_nm=10.0, modality="em")
    f = Fiducials([200.0, 500.0, 800.0], [200.0, 500.0, 800.0], [3.0, -2.0, 0.0], [1.0, 4.0, 5.0],
                  used=[True, True, False], label="beads")
    fig = draw_overlay(base, fiducials=f, residual_scale=10.0)
    from matplotlib.quiver import Quiver

    q = [c for c in fig.axes[0].get_children() if isinstance(c, Quiver)]
    assert len(q) == 1
    np.testing.assert_allclose(q[0].U, [30.0, -20.0, 0.0])
    np.testing.assert_allclose(q[0].V, [10.0, 40.0, 50.0])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "beads" in labels and "beads (outliers)" in labels and "residuals × 10" in labels


def test_overlay_particle_outlines_and_region():
    from correlate.plot._raster import boundaries as _boundaries

    lab = np.zeros((50, 60), int)
    lab[10:20, 10:30] = 1
    lab[30:40, 40:45] = 2
    b = _boundaries(lab)
    assert b.sum() == 2 * (10 + 20) - 4 + 2 * (10 + 5) - 4
    assert not b[lab == 0].any()
    base = make_image(np.zeros((50, 60)), pixel_size_nm=2.0, modality="em")
    fig = draw_overlay(base, particles=lab, region=(15.0, 15.0, 70.0, 50.0))
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    assert (x0, x1) == (15.0, 71.0)  # whole pixels covering the region: [15, 17) ... [69, 71)
    assert any("particles (1)" == t.get_text() for t in ax.get_legend().get_texts())


def test_overlay_tre_contours():
    base = make_image(np.zeros((64, 64)), pixel_size_nm=5.0, modality="em")
    xs = ys = np.linspace(0, 315, 32)
    X, Y = np.meshgrid(xs, ys)
    tre = 2.0 + np.hypot(X - 150, Y - 150) / 50.0
    fig = draw_overlay(base, tre=(xs, ys, tre), tre_levels=[3.0, 4.0, 5.0])
    from matplotlib.contour import ContourSet

    cs = [c for c in fig.axes[0].get_children() if isinstance(c, ContourSet)]
    assert len(cs) == 1 and list(cs[0].levels) == [3.0, 4.0, 5.0]


def test_save_figure_formats(tmp_path):
    base = make_image(np.zeros((20, 20)), pixel_size_nm=1.0, modality="em")
    fig = draw_overlay(base)
    assert save_figure(fig, tmp_path / "o.pdf").read_bytes()[:4] == b"%PDF"
    assert save_figure(fig, tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    from correlate.errors import CorrelateError

    with pytest.raises(CorrelateError, match="suffix|.jpg"):
        save_figure(fig, tmp_path / "o.jpg")


def test_registration_summary_reads_registration_records():
    rec = {
        "moving": "antibody", "fixed": "em", "model": "similarity", "n_pairs": 9, "n_used": 8, "n_outliers": 1,
        "fre_rms_nm": 4.234, "loo_rms_nm": 6.01, "chi2": 14.2, "dof": 12.0, "pvalue": 0.29,
        "predicted_tre_hull": {"tre_rms_median_nm": 3.14, "tre_r95_p95_nm": 7.7},
    }
    s = registration_summary(rec)
    for part in ("antibody -> em", "model similarity", "8/9 fiducials used (1 outlier)", "FRE 4.23 nm",
                 "predicted TRE 3.14 nm", "7.70 nm", "leave-one-out 6.01 nm", "chi² 14.2/12 dof (p 0.29)"):
        assert part in s, (part, s)


# ---------------------------------------------------------------------------------------------
# overlay from a scene, and the CLI
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene_store(tmp_path_factory):
    pytest.importorskip("correlate.scene")
    ds = pytest.importorskip("correlate.datasets")
    from correlate.scene import Scene

    s = ds.simulate_sample(ds.SampleConfig.small(seed=3))
    path = tmp_path_factory.mktemp("plot") / "s.ome.zarr"
    sc = Scene.create(path)
    tr = s.truth.transforms
    for name, el in s.elements().items():
        t = tr.get(name) or (tr.get("smlm") if name in ("antibody", "corona") else None)
        sc.add(name, el, transform=t)
    lab = np.zeros(s.em.shape, np.int32)
    yy, xx = np.mgrid[: s.em.shape[0], : s.em.shape[1]]
    xs, ys = s.em.coords["x"].values, s.em.coords["y"].values
    for r in s.truth.particles.itertuples():
        lab[(xs[xx] - r.x) ** 2 + (ys[yy] - r.y) ** 2 < (r.diameter_nm / 2) ** 2] = r.particle_id
    sc.add_labels("em", "particles", lab)
    record = None
    try:
        from correlate.registration import register_scene

        _, record = register_scene(sc, "antibody", "em")
    except Exception:  # noqa: BLE001 - overlay without a registration is still tested
        record = None
    return path, record, s


def test_plot_overlay_from_scene(tmp_path, scene_store):
    from correlate.plot import plot_overlay
    from correlate.scene import Scene

    path, record, s = scene_store
    sc = Scene.open(path)
    fig = plot_overlay(sc, show_particles=True, show_tre=record is not None)
    out = save_figure(fig, tmp_path / "scene.png")
    assert out.stat().st_size > 10_000
    cap = fig.correlate_caption
    assert cap.startswith("base em (2 nm/px); labels antibody, corona")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    n_part = len(np.unique(np.asarray(sc.get_labels("em", "particles").values))) - 1
    assert f"particles ({n_part})" in legend
    if record is not None:
        assert registration_summary(record) in cap
        assert f"FRE {record['fre_rms_nm']:.2f} nm" in cap or f"FRE {record['fre_rms_nm']:.1f} nm" in cap
        assert any(t.startswith("fiducials antibody→em") for t in legend)
        from matplotlib.contour import ContourSet

        assert any(isinstance(c, ContourSet) for c in fig.axes[0].get_children())
    # the figure shows the caption (wrapped to the figure's width)
    assert any(" ".join(cap.split()) == " ".join(t.get_text().split()) for t in fig.texts)


def test_overlay_cli(tmp_path, scene_store):
    from correlate.cli import main

    path = scene_store[0]
    out = tmp_path / "cli.png"
    rc = main(["overlay", str(path), "-o", str(out), "--labels", "corona", "--region", "0,0,1000,800",
               "--show-particles", "--scale-bar", "200"])
    assert rc == 0 and out.exists()
    from matplotlib.image import imread

    img = imread(str(out))
    # 1000 x 800 nm at 2 nm/px = 500 x 400 px, shown at 2 PNG px per pixel; bar 200 nm = 200 PNG px
    assert abs(_longest_white_run(img[..., :3]) - 200) <= 1
    assert main(["overlay", str(path), "-o", str(tmp_path / "x.png"), "--region", "0,0,10"]) == 1
    assert main(["overlay", str(path), "-o", str(tmp_path / "x.png"), "--labels", "nope"]) == 1


def test_plot_overlay_gaussian_with_per_axis_precision_only(tmp_path):
    """Picasso / DECODE tables carry precision_x, precision_y and no 'precision': the default
    Gaussian overlay must use them (both were needed, only precision_x was passed on)."""
    from correlate.elements import make_localizations
    from correlate.plot import plot_overlay
    from correlate.scene import Scene

    img = make_image(np.zeros((50, 60), np.float32), pixel_size_nm=10.0, modality="em", name="em")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.uniform(50, 540, 200), "y": rng.uniform(50, 440, 200), "frame": np.arange(200),
                       "precision_x": np.full(200, 8.0), "precision_y": np.full(200, 12.0)})
    sc = Scene.create(tmp_path / "p.ome.zarr")
    sc.add("em", img)
    sc.add("locs", make_localizations(df, source_format="test"))
    fig = plot_overlay(sc, labels=["locs"], method="gaussian", assume_aligned=True)  # nothing registered
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "locs (200 loc.)" in legend


# ---------------------------------------------------------------------------------------------
# particle plots
# ---------------------------------------------------------------------------------------------
def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.lognormal(np.log(80), 0.25, n)
    return pd.DataFrame({
        "particle_id": np.arange(1, n + 1),
        "x": rng.uniform(300, 2700, n),
        "y": rng.uniform(300, 2700, n),
        "equivalent_diameter_nm": d,
        "n_molecules_antibody": rng.poisson(d / 4),
        "n_molecules_corona": rng.poisson(d / 8),
        "edge": np.r_[np.ones(3, bool), np.zeros(n - 3, bool)],
    })


def test_size_distribution_marks_percentiles():
    t = _table()
    fig = plot_size_distribution(t)
    ax = fig.axes[0]
    v = t.loc[~t.edge, "equivalent_diameter_nm"].to_numpy()
    xs = sorted(line.get_xdata()[0] for line in ax.get_lines())
    np.testing.assert_allclose(xs, np.percentile(v, [10, 50, 90]))
    assert f"N = {len(v)}" in ax.get_title()


def test_counts_vs_size_one_series_per_channel():
    t = _table()
    fig = plot_counts_vs_size(t, colors={"antibody": "magenta", "corona": "lime"})
    ax = fig.axes[0]
    offs = [c.get_offsets() for c in ax.collections]
    assert len(offs) == 2 and all(len(o) == 37 for o in offs)
    np.testing.assert_allclose(np.sort(offs[0][:, 1]), np.sort(t.loc[~t.edge, "n_molecules_antibody"].to_numpy()))
    assert ax.get_ylabel() == "molecules per particle"


def test_radial_profiles_peak_at_the_surface():
    t = _table(20, seed=1).iloc[:5].copy()
    t["x"] = [500.0, 1000.0, 1500.0, 2000.0, 2500.0]
    t["y"] = 1000.0
    rng = np.random.default_rng(2)
    k = rng.integers(0, 5, 4000)
    r = 0.5 * t["equivalent_diameter_nm"].to_numpy()[k] * rng.normal(1.0, 0.05, 4000)
    phi = rng.uniform(0, 2 * np.pi, 4000)
    shell = pd.DataFrame({"x": t["x"].to_numpy()[k] + r * np.cos(phi), "y": 1000.0 + r * np.sin(phi)})
    core = pd.DataFrame({"x": t["x"].to_numpy()[k] + 0.2 * r * np.cos(phi), "y": 1000.0 + 0.2 * r * np.sin(phi)})
    prof = radial_profiles(t, {"shell": shell, "core": core}, bins=20, r_max=2.0)
    sh = prof[prof.channel == "shell"]
    assert 0.9 <= sh.loc[sh["count"].idxmax(), "r"] <= 1.1
    assert sh["count"].sum() == 4000
    co = prof[prof.channel == "core"]
    assert co.loc[co["density"].idxmax(), "r"] < 0.3
    fig = plot_radial_profiles(prof)
    assert len(fig.axes[0].get_lines()) == 3  # two channels + the particle edge


def test_particle_gallery_and_colocalization():
    t = _table(30)
    em = make_image(np.random.default_rng(0).normal(size=(1500, 1500)), pixel_size_nm=2.0, modality="em")
    locs = {"antibody": pd.DataFrame({"x": t.x + 30, "y": t.y}), "corona": pd.DataFrame({"x": t.x, "y": t.y - 30})}
    fig = particle_gallery(em, t, locs, n=6, ncols=3)
    titled = [a for a in fig.axes if a.get_title()]
    assert len(titled) == 6
    fig = particle_gallery(em, t, particle_ids=[5, 7])
    assert sorted(a.get_title() for a in fig.axes if a.get_title()) == ["#5", "#7"]
    rng = np.random.default_rng(1)
    loc = pd.DataFrame({"x": rng.uniform(0, 3000, 500), "y": rng.uniform(0, 3000, 500), "cbc": rng.uniform(-1, 1, 500)})
    fig = plot_colocalization(loc, image=em)
    assert "cbc" in fig._suptitle.get_text() and "500 values" in fig._suptitle.get_text()
    from correlate.errors import ElementError

    with pytest.raises(ElementError, match="colocalization"):
        plot_colocalization(loc.drop(columns="cbc"))


# ---------------------------------------------------------------------------------------------
# HTML report
# ---------------------------------------------------------------------------------------------
def test_report_html_is_self_contained(tmp_path, scene_store):
    import re
    import shutil

    from correlate.cli import main
    from correlate.elements import make_table
    from correlate.scene import Scene

    path, record, s = scene_store
    copy = tmp_path / "r.ome.zarr"
    shutil.copytree(path, copy)
    sc = Scene.open(copy, mode="r+")
    t = s.truth.particles.copy()
    t["cbc_antibody_corona"] = np.linspace(-1, 1, len(t))
    sc.add_table("particles", make_table(t, label_image="em/labels/particles", coordinate_system="world"),
                 label_image="em/labels/particles")
    out = tmp_path / "report.html"
    assert main(["report", str(copy), "-o", str(out)]) == 0
    h = out.read_text(encoding="utf-8")
    assert h.startswith("<!DOCTYPE html>") and h.rstrip().endswith("</html>")
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', h)
    assert len(imgs) >= 5  # overlay, size, counts, radial profiles, gallery (+ colocalization)
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    assert "http://" not in h and "https://" not in h
    v = t.loc[~t.edge, "diameter_nm"].to_numpy()
    assert f"D50 {np.percentile(v, 50):.1f} nm" in h
    if record is not None:
        import html as _html

        assert _html.escape(registration_summary(record)) in h
