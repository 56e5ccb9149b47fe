"""The HTML report and the overlay as a scientist reads them: nothing cut at the right edge, the
TRE of the registration that places the localizations, the other modalities as layers, and a
residual / TRE figure per registration."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

from correlate._landmarks import Landmarks


def _landmarks(rng, src_pts, dst_pts, noise_nm, mov, fix):
    n = len(src_pts)
    cov = np.tile(np.eye(2) * noise_nm**2, (n, 1, 1))
    q = dst_pts + rng.normal(0.0, noise_nm, (n, 2))
    return Landmarks(src_pts, q, cov, cov, source_system=mov, target_system=fix)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A small simulated scene (true transforms) with antibody -> em registered on noisy pairs
    (a few nm) and then a colour alignment corona -> antibody (hundredths of a nm)."""
    from correlate.datasets import SampleConfig, simulate_sample
    from correlate.registration import register_scene

    cfg = SampleConfig.small(field_nm=1500.0, n_particles=6, n_fiducials=6, n_frames=200, afm_min_fiducials=3,
                             sim_margin_nm=150.0)
    s = simulate_sample(cfg, seed=2)
    sc = s.to_scene(tmp_path_factory.mktemp("rep") / "s.ome.zarr")
    rng = np.random.default_rng(7)
    noise = float(rng.uniform(2.0, 8.0))
    p = rng.uniform(100, 1400, (int(rng.integers(6, 12)), 2))
    lm1 = _landmarks(rng, p, sc.transform("antibody", "em").apply(p), noise, "antibody", "em")
    _, r1 = register_scene(sc, "antibody", "em", landmarks=lm1, model="affine")
    p2 = rng.uniform(100, 1400, (40, 2))
    lm2 = _landmarks(rng, p2, sc.transform("corona", "antibody").apply(p2), 0.02, "corona", "antibody")
    _, r2 = register_scene(sc, "corona", "antibody", landmarks=lm2, model="affine")
    return sc, r1, r2, noise


def _tre_map(record, sc, grid, base="em", n=64):
    from correlate.registration import Fit

    fit = Fit.from_error_model(record["error_model"])
    xs = np.linspace(grid.centers("x")[0], grid.centers("x")[-1], n)
    ys = np.linspace(grid.centers("y")[0], grid.centers("y")[-1], n)
    X, Y = np.meshgrid(xs, ys)
    pts = sc.transform(base, record["fixed"]).apply(np.column_stack([X.ravel(), Y.ravel()]))
    return fit.tre_rms(fit.transform.inverse().apply(pts))


def test_overlay_tre_is_the_registration_placing_the_labels(registered):
    from matplotlib.contour import ContourSet

    from correlate.plot import plot_overlay

    sc, r1, r2, _ = registered
    assert sc.registrations()[-1]["id"] == r2["id"]  # the colour alignment is the latest record
    fig = plot_overlay(sc, show_tre=True, images=[], max_pixels=400)
    assert fig.correlate_tre_record["id"] == r1["id"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"predicted TRE antibody→em (record {r1['id']}) (nm)" in legend
    assert f"TRE contours: antibody→em (record {r1['id']})" in fig.correlate_caption
    expected = _tre_map(r1, sc, fig.correlate_display_grid)
    colour = _tre_map(r2, sc, fig.correlate_display_grid)
    assert np.median(colour) < 0.2 * np.median(expected)  # the two maps are far apart
    levels = np.concatenate([c.levels for c in fig.axes[0].get_children() if isinstance(c, ContourSet)])
    assert levels.size and np.all((levels > expected.min()) & (levels < expected.max()))
    # only corona shown: its chain is corona -> antibody -> em, the larger error is still antibody -> em
    fig2 = plot_overlay(sc, labels=["corona"], show_tre=True, images=[], max_pixels=300)
    assert fig2.correlate_tre_record["id"] == r1["id"]
    assert f"corona→antibody (record {r2['id']})" in fig2.correlate_caption


def test_overlay_draws_sim_and_afm_layers_where_they_are(registered):
    from correlate.plot import plot_overlay

    sc, *_ = registered
    fig = plot_overlay(sc, max_pixels=400)
    assert sorted(fig.correlate_images) == ["afm", "sim"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "afm" in legend and "sim" in legend
    assert "image layers: " in fig.correlate_caption and "afm (" in fig.correlate_caption
    grid = fig.correlate_display_grid
    px = max(grid.pixel_size)
    for layer in fig.correlate_image_layers:
        img = sc.get(layer.name)
        ex, ey = img.coords["x"].values, img.coords["y"].values
        p = (abs(ex[1] - ex[0]), abs(ey[1] - ey[0]))
        corners = np.array([[ex[0], ey[0]], [ex[-1], ey[0]], [ex[0], ey[-1]], [ex[-1], ey[-1]]], float)
        pad = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * 0.5 * np.asarray(p, float)
        c = sc.transform(layer.name, "em").apply(corners + pad)
        x_lo, x_hi, y_lo, y_hi = grid.extent
        want = (max(c[:, 0].min(), x_lo), min(c[:, 0].max(), x_hi), max(c[:, 1].min(), y_lo), min(c[:, 1].max(), y_hi))
        fin = np.isfinite(layer.values)
        xs, ys = grid.centers("x")[fin.any(axis=0)], grid.centers("y")[fin.any(axis=1)]
        got = (xs.min(), xs.max(), ys.min(), ys.max())
        # edges within a display pixel plus the quarter layer pixel a block of display pixels shares
        tol = 1.5 * px + 0.25 * max(np.hypot(*(c[1] - c[0])) / (len(ex)), np.hypot(*(c[2] - c[0])) / len(ey))
        assert np.allclose(got, want, atol=tol), (layer.name, got, want, tol)
    none = plot_overlay(sc, images=[], max_pixels=200)
    assert none.correlate_images == []
    from correlate.errors import ElementError

    with pytest.raises(ElementError):
        plot_overlay(sc, images=["antibody"], max_pixels=200)


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tables, self.captions, self.style, self._cap = [], [], [], "", None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([dict(a) for t, a in self.stack])
        if tag == "figcaption":
            self._cap = ""
        if tag not in ("img", "meta", "br"):
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.captions.append(self._cap)
            self._cap = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._cap is not None:
            self._cap += data
        if self.stack and self.stack[-1][0] == "style":
            self.style += data


def test_report_tables_scroll_and_captions_are_whole(registered, tmp_path):
    import pandas as pd

    from correlate.elements import make_table
    from correlate.plot import make_report, plot_overlay
    from correlate.scene import Scene

    sc, r1, r2, _ = registered
    import shutil

    shutil.copytree(sc.path, tmp_path / "w.ome.zarr")
    w = Scene.open(tmp_path / "w.ome.zarr", mode="r+")
    t = pd.DataFrame({"particle_id": np.arange(1, 5), "x": [300.0, 600, 900, 1200], "y": [400.0, 500, 600, 700]})
    for k in range(30):  # a table much wider than the page
        t[f"a_rather_long_column_name_{k}"] = np.linspace(0, 1, 4) * k
    w.add_table("wide", make_table(t, coordinate_system="em"))
    out = make_report(w, tmp_path / "r.html")
    h = out.read_text(encoding="utf-8")
    p = _Html()
    p.feed(h)
    assert len(p.tables) >= 3  # candidates or fiducials per registration, the wide table
    assert all(any("scroll" in (a.get("class") or "").split() for a in anc) for anc in p.tables)
    assert ".scroll{overflow-x:auto" in p.style.replace(" ", "")
    assert "a_rather_long_column_name_29" in h
    cap = plot_overlay(w, show_particles=bool(w.names(kind="labels")), show_tre=True, max_pixels=1200).correlate_caption
    assert any(" ".join(cap.split()) == " ".join(c.split()) for c in p.captions)
    assert "white-space:pre-wrap" in p.style.replace(" ", "")
    # one residual / TRE figure per registration record
    assert sum("fiducial residual vectors after the fit" in c for c in p.captions) == 2


def test_overlay_caption_fits_inside_the_png(registered):
    from correlate.plot import plot_overlay

    sc, *_ = registered
    for px in (200, 700):
        fig = plot_overlay(sc, show_tre=True, max_pixels=px, pixel_scale=1)
        r = fig.canvas.get_renderer()
        w = fig.get_size_inches()[0] * fig.dpi
        for t in fig.texts:
            bb = t.get_window_extent(r)
            assert bb.x0 >= 0 and bb.x1 <= w + 0.5, (t.get_text()[:60], bb.x1, w)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plot_registration_residuals_and_tre(seed):
    from correlate.plot import plot_registration
    from correlate.registration import fit_landmarks, registration_record
    from correlate.transforms import Affine

    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 25))
    noise = float(rng.uniform(0.5, 20.0))
    field = float(rng.uniform(2e3, 8e4))
    ang, s = rng.uniform(-np.pi, np.pi), rng.uniform(0.5, 2.0)
    m = np.array([[s * np.cos(ang), -s * np.sin(ang), rng.uniform(-1e4, 1e4)],
                  [s * np.sin(ang), s * np.cos(ang), rng.uniform(-1e4, 1e4)], [0, 0, 1]])
    p = rng.uniform(0, field, (n, 2))
    q = Affine(m).apply(p)
    lm = _landmarks(rng, p, q, noise, "smlm", "em")
    reg = fit_landmarks(lm, "similarity", reject_outliers=False)
    rec = registration_record(reg, moving="smlm", fixed="em")
    fig = plot_registration(rec, reg.landmarks)
    res = fig.correlate_residuals
    np.testing.assert_allclose(res, reg.fit.transform.apply(lm.source) - lm.target, atol=1e-6 * field)
    assert np.sqrt(np.mean(np.sum(res**2, axis=1))) == pytest.approx(rec["fre_rms_nm"], rel=1e-6)
    # the quiver arrows are the residuals times the stated scale
    from matplotlib.quiver import Quiver

    q_art = [c for c in fig.axes[0].get_children() if isinstance(c, Quiver)]
    k = fig.correlate_residual_scale
    np.testing.assert_allclose(np.hypot(q_art[0].U, q_art[0].V), np.hypot(res[:, 0], res[:, 1]) * k, rtol=1e-9)
    assert f"× {k:g}" in fig.axes[0].get_title()
    prof = fig.correlate_tre_profile
    c = prof["centroid"]
    assert prof["median"][0] == pytest.approx(float(reg.fit.tre_rms(c[None, :])[0]), rel=1e-6)
    # a similarity fit: error grows away from the centroid; at the centre it is the translation
    # error, about sqrt(2 (1 + s^2) / n) noise (both sides noisy; the noise scale is estimated)
    assert prof["median"][-1] > prof["median"][0]
    assert 0.4 < prof["median"][0] / (noise * np.sqrt(2.0 * (1 + s**2) / n)) < 2.5


def test_overlay_cli_image_layers(registered, tmp_path, capsys):
    from correlate.cli import main

    sc, *_ = registered
    out = tmp_path / "o.png"
    assert main(["overlay", str(sc.path), "-o", str(out), "--images", "sim", "--image-alpha", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "image layers: sim (" in text and "afm" not in text.split("image layers:")[1].split("\n")[0]
    assert main(["overlay", str(sc.path), "-o", str(out), "--images", "none"]) == 0
    assert "image layers" not in capsys.readouterr().out
    assert main(["overlay", str(sc.path), "-o", str(out), "--image-alpha", "1.5"]) == 1
    assert main(["overlay", str(sc.path), "-o", str(out), "--images", "nope"]) == 1


def test_overlay_without_registration_says_there_is_no_tre_map(tmp_path):
    import pandas as pd

    from correlate.elements import make_image, make_localizations
    from correlate.plot import plot_overlay
    from correlate.scene import Scene

    sc = Scene.create(tmp_path / "d.ome.zarr")
    sc.add("em", make_image(np.zeros((40, 50), np.float32), pixel_size_nm=10.0, modality="em"))
    sc.add("sim", make_image(np.arange(20 * 25, dtype=np.float32).reshape(20, 25), pixel_size_nm=20.0,
                             modality="sim"))
    rng = np.random.default_rng(0)
    sc.add("locs", make_localizations(pd.DataFrame({"x": rng.uniform(0, 490, 50), "y": rng.uniform(0, 390, 50),
                                                    "precision": np.full(50, 10.0)}), source_format="test"))
    for n in ("em", "sim", "locs"):
        sc.declare_aligned(n, tre_nm=0.0, note="test")
    fig = plot_overlay(sc, show_tre=True)
    assert fig.correlate_tre_record is None
    assert "no predicted-TRE map: no registration record places the labels on em" in fig.correlate_caption
    assert fig.correlate_images == ["sim"]
    # the SIM ramp is sampled where it lies: value at an EM pixel centre = the ramp at that position
    layer = fig.correlate_image_layers[0]
    g = fig.correlate_display_grid
    x, y = g.centers("x")[20], g.centers("y")[10]
    assert layer.values[10, 20] == pytest.approx(25 * (y / 20.0) + x / 20.0, abs=1e-3)
