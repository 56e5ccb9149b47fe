"""Image fiducial detection on acquisitions drawn at random over the ranges labs use.

The images are made here with numpy alone (independent of correlate.datasets):
- EM: gold of 30-150 nm at 1-4 nm/px among organic particles of 40-250 nm that absorb 5-20 times
  less per nm (Beer-Lambert), an uneven illumination, shot and read noise;
- LM: point-like beads, PSF sigma 20-110 nm, pixels 20-100 nm (0.7-3 pixels per sigma), among
  labelled particles of 40-250 nm that are 5-30 times dimmer, uneven background, Poisson noise,
  no resolution metadata.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import erf
from scipy.spatial import cKDTree

from correlate.errors import RegistrationError
from correlate.registration import detect_beads

FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _image(data, px, modality, **attrs):
    h, w = data.shape
    x0, y0 = 1000.0, -500.0
    return xr.DataArray(
        data.astype(np.float32), dims=("y", "x"),
        coords={"y": y0 + px * np.arange(h), "x": x0 + px * np.arange(w)},
        attrs={"modality": modality, **attrs}, name=modality,
    )


def _place(rng, radii, field, gap):
    """Non-overlapping centres (nm) for discs of the given radii inside [0, field]^2."""
    pts, rs = [], []
    for r in radii:
        for _ in range(2000):
            p = rng.uniform(r + gap, field - r - gap, 2)
            if all(np.hypot(*(p - q)) > r + s + gap for q, s in zip(pts, rs)):
                pts.append(p)
                rs.append(r)
                break
    return np.array(pts), np.array(rs)


def _smooth_field(rng, shape, amp):
    from scipy.ndimage import gaussian_filter, zoom

    g = gaussian_filter(rng.standard_normal((8, 8)), 1.5)
    g = zoom(g / (np.abs(g).max() + 1e-12), (shape[0] / 8, shape[1] / 8), order=1)[: shape[0], : shape[1]]
    yy, xx = np.mgrid[: shape[0], : shape[1]] / max(shape)
    return 1.0 + amp * (0.6 * g + rng.uniform(-0.5, 0.5) * xx + rng.uniform(-0.5, 0.5) * yy)


def make_em(seed, frac=None):
    """EM micrograph (nm coordinates) with gold among weak organic particles; truth centres (nm).
    ``frac`` in [0, 1) places the gold diameter in its range (stratified sweeps)."""
    rng = np.random.default_rng(seed)
    px = rng.uniform(1.0, 4.0)
    d_gold = 30.0 + 120.0 * (rng.uniform() if frac is None else frac)
    n_gold, n_part = int(rng.integers(6, 12)), int(rng.integers(10, 25))
    dg = d_gold * rng.normal(1.0, 0.05, n_gold)
    dp = np.exp(rng.uniform(np.log(40.0), np.log(250.0), n_part))
    mu_g = rng.uniform(0.03, 0.1)
    mu_p = mu_g / rng.uniform(5.0, 20.0) * rng.uniform(0.8, 1.25, n_part)
    n_px_target = 4.0e6 / 1.0  # keep images ~2000 px wide at most
    field = min(np.sqrt((n_gold + n_part) * (2.5 * max(dg.max(), dp.max()) + 60) ** 2), np.sqrt(n_px_target) * px)
    order = np.argsort(-np.concatenate([dp, dg]))
    radii = 0.5 * np.concatenate([dp, dg])[order]
    kind = np.concatenate([np.zeros(n_part), np.ones(n_gold)])[order]
    mus = np.concatenate([mu_p, np.full(n_gold, mu_g)])[order]
    c, r = _place(rng, radii, field, gap=15.0 + 8 * px)
    kind, mus = kind[: len(c)], mus[: len(c)]
    n = int(field / px)
    od = np.zeros((n, n))
    for (cx, cy), rr, mu in zip(c, r, mus):
        j0, j1 = int(max(0, (cx - rr) / px - 2)), int(min(n, (cx + rr) / px + 3))
        i0, i1 = int(max(0, (cy - rr) / px - 2)), int(min(n, (cy + rr) / px + 3))
        yy, xx = np.mgrid[i0:i1, j0:j1] * px
        od[i0:i1, j0:j1] += mu * 2.0 * np.sqrt(np.clip(rr * rr - (xx - cx) ** 2 - (yy - cy) ** 2, 0, None))
    dose = rng.uniform(50.0, 500.0)
    from scipy.ndimage import gaussian_filter

    img = dose * _smooth_field(rng, od.shape, rng.uniform(0.1, 0.4)) * np.exp(-od)
    img = gaussian_filter(img, rng.uniform(0.5, 1.5))
    img = rng.poisson(np.clip(img, 0, None)).astype(float) + rng.normal(0, 2.0, img.shape)
    truth = c[kind == 1]
    return _image(img, px, "em"), truth + [1000.0, -500.0], {"px": px, "d_gold": d_gold, "mu_g": mu_g}


def _render_points(shape, px, sigma, xy, w):
    """Pixel-integrated Gaussian spots (photons) at xy (nm, pixel centres at i * px)."""
    img = np.zeros(shape)
    half = int(np.ceil(4 * sigma / px)) + 1
    off = np.arange(-half, half + 1)
    cj = np.rint(xy[:, 0] / px).astype(int)
    ci = np.rint(xy[:, 1] / px).astype(int)
    jj = cj[:, None] + off[None]
    ii = ci[:, None] + off[None]
    s = np.sqrt(2) * sigma

    def prof(c, centre):
        lo = (c - 0.5) * px - centre[:, None]
        return 0.5 * (erf((lo + px) / s) - erf(lo / s))

    px_, py_ = prof(jj, xy[:, 0]), prof(ii, xy[:, 1])
    val = w[:, None, None] * py_[:, :, None] * px_[:, None, :]
    I = np.broadcast_to(ii[:, :, None], val.shape)
    J = np.broadcast_to(jj[:, None, :], val.shape)
    ok = (I >= 0) & (I < shape[0]) & (J >= 0) & (J < shape[1])
    np.add.at(img, (I[ok], J[ok]), val[ok])
    return img


def make_lm(seed, frac=None):
    """Fluorescence image (no resolution metadata) with beads among dimmer labelled particles.
    ``frac`` in [0, 1) places the PSF sigma in its range (stratified sweeps)."""
    rng = np.random.default_rng(seed)
    sigma = 20.0 + 90.0 * (rng.uniform() if frac is None else frac)
    px = rng.uniform(max(20.0, sigma / 3.0), min(100.0, sigma / 0.7))
    n_bead, n_part = int(rng.integers(6, 14)), int(rng.integers(10, 30))
    dp = np.exp(rng.uniform(np.log(40.0), np.log(250.0), n_part))
    spacing = 8 * sigma + 300.0
    field = np.sqrt(n_bead + n_part) * spacing * 1.3
    radii = np.concatenate([0.5 * dp, np.full(n_bead, 3 * sigma)])
    order = np.argsort(-radii)
    c, _ = _place(rng, radii[order] + 3 * sigma, field, gap=2 * sigma)
    kind = np.concatenate([np.zeros(n_part), np.ones(n_bead)])[order][: len(c)]
    rad = (0.5 * np.concatenate([dp, np.zeros(n_bead)]))[order][: len(c)]
    bead_photons = np.exp(rng.uniform(np.log(1500.0), np.log(30000.0)))
    pts, wts = [], []
    for (cx, cy), k, r in zip(c, kind, rad):
        if k == 1:
            pts.append([[cx, cy]])
            wts.append([bead_photons * rng.normal(1.0, 0.1)])
        else:  # labels on the surface of the particle, 5-30 x dimmer than a bead in total
            m = 24
            a = rng.uniform(0, 2 * np.pi, m)
            rr = r * np.sqrt(rng.uniform(0.6, 1.0, m))
            pts.append(np.column_stack([cx + rr * np.cos(a), cy + rr * np.sin(a)]))
            wts.append(np.full(m, bead_photons / rng.uniform(5.0, 30.0) / m))
    n = int(field / px)
    img = _render_points((n, n), px, sigma, np.vstack(pts), np.concatenate(wts))
    bg = rng.uniform(5.0, 100.0) * _smooth_field(rng, img.shape, rng.uniform(0.2, 0.6))
    img = rng.poisson(img + bg).astype(float) + rng.normal(0, 1.5, img.shape)
    return _image(img, px, rng.choice(["sim", "lm", "sted"])), c[kind == 1] + [1000.0, -500.0], {"px": px, "sigma": sigma}


def _match(df, truth, tol):
    det = df[["x", "y"]].to_numpy()
    if len(det) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d, j = cKDTree(det).query(truth)
    hit = d < tol
    return np.nonzero(hit)[0], j[hit]


def _sweep(maker, seeds):
    rows = []
    u = np.random.default_rng(seeds[0]).uniform(size=len(seeds))
    for i, s in enumerate(seeds):  # stratified over the size range, random inside each stratum
        img, truth, p = maker(s, (i + u[i]) / len(seeds))
        df = detect_beads(img)
        tol = max(3 * p["px"], 0.25 * p.get("d_gold", 4 * p.get("sigma", 0)))
        ti, di = _match(df, truth, tol)
        err = df[["x", "y"]].to_numpy()[di] - truth[ti]
        # the statistical part of the covariance (the floor allows for effects these images lack)
        tr = (df["cov_xx"] + df["cov_yy"]).to_numpy()[di] - 2 * df.attrs["floor_nm"] ** 2
        rows.append({"seed": s, "n_truth": len(truth), "n_det": len(df), "n_hit": len(ti), "d2_tr": (err**2).sum(1) / tr,
                     "df": df, "p": p})
    return rows


def _pooled(rows):
    nt = sum(r["n_truth"] for r in rows)
    nd = sum(r["n_det"] for r in rows)
    nh = sum(r["n_hit"] for r in rows)
    return nh / nt, nh / max(nd, 1), np.concatenate([r["d2_tr"] for r in rows])


# median of chi2(2)/2, the expected d^2 / trace(cov) of an isotropic 2-D Gaussian error
CHI2_MEDIAN = np.log(2.0)


def test_em_gold_among_particles_sweep():
    rows = _sweep(make_em, list(range(100, 110)))
    recall, precision, d2 = _pooled(rows)
    detail = [(r["seed"], r["n_truth"], r["n_det"], r["n_hit"], round(r["p"]["d_gold"]), round(r["p"]["px"], 2)) for r in rows]
    assert recall >= 0.95, detail
    assert precision >= 0.95, detail
    med = float(np.median(d2))
    assert CHI2_MEDIAN / 2 <= med <= CHI2_MEDIAN * 2, med
    for r in rows:  # diameter estimated from the data, not assumed
        est = r["df"].attrs["estimated"]
        assert r["df"].attrs["source"]["diameter_nm"] == "estimated"
        assert est["polarity"] == "dark"
        assert abs(np.log(est["diameter_nm"] / r["p"]["d_gold"])) < np.log(1.25), (r["seed"], est, r["p"])


def test_lm_beads_among_labelled_particles_sweep():
    rows = _sweep(make_lm, list(range(200, 212)))
    recall, precision, d2 = _pooled(rows)
    detail = [(r["seed"], r["n_truth"], r["n_det"], r["n_hit"], round(r["p"]["sigma"]), round(r["p"]["px"])) for r in rows]
    assert recall >= 0.95, detail
    assert precision >= 0.95, detail
    med = float(np.median(d2))
    assert CHI2_MEDIAN / 2 <= med <= CHI2_MEDIAN * 2, med
    for r in rows:
        est, src = r["df"].attrs["estimated"], r["df"].attrs["source"]
        assert src["psf_fwhm_nm"] == "estimated" and est["polarity"] == "bright"
        true_fwhm = FWHM * r["p"]["sigma"]
        assert abs(est["psf_fwhm_nm"] / true_fwhm - 1) < 0.15, (r["seed"], est["psf_fwhm_nm"], true_fwhm)


def test_no_beads_raises_with_what_it_saw():
    rng = np.random.default_rng(3)
    flat = _image(rng.poisson(100.0 * _smooth_field(rng, (400, 400), 0.3)).astype(float), 2.0, "em")
    with pytest.raises(RegistrationError) as e:
        detect_beads(flat)
    assert e.value.stage == "detection" and "--bead-diameter" in e.value.hint
    assert set(e.value.diagnostics["polarities"]) == {"dark", "bright"}


def test_particles_without_gold_raise():
    img, truth, _ = make_em(7)
    # the same kind of micrograph with the gold left out: organic particles only
    rng = np.random.default_rng(7)
    px = 2.0
    n = 800
    c, r = _place(rng, np.exp(rng.uniform(np.log(20), np.log(125), 25)), n * px, 20.0)
    od = np.zeros((n, n))
    yy, xx = np.mgrid[:n, :n] * px
    for (cx, cy), rr in zip(c, r):
        od += rng.uniform(0.002, 0.006) * 2 * np.sqrt(np.clip(rr * rr - (xx - cx) ** 2 - (yy - cy) ** 2, 0, None))
    data = rng.poisson(200.0 * _smooth_field(rng, od.shape, 0.2) * np.exp(-od)).astype(float)
    with pytest.raises(RegistrationError) as e:
        detect_beads(_image(data, px, "em"))
    assert e.value.stage == "detection"
    assert e.value.diagnostics["polarities"]["dark"]["best_candidates"], "the particles were seen as candidates"


def test_overrides_and_metadata_are_recorded():
    img, truth, p = make_lm(5, 0.4)
    fwhm = FWHM * p["sigma"]
    auto = detect_beads(img)
    user = detect_beads(img, psf_fwhm_nm=fwhm, polarity="bright")
    assert user.attrs["source"]["psf_fwhm_nm"] == "user" and user.attrs["source"]["polarity"] == "user"
    assert user.attrs["estimated"]["psf_fwhm_nm"] == pytest.approx(fwhm)
    assert len(user) == len(auto) == len(_match(user, truth, 3 * p["px"])[0])
    meta = img.copy()
    meta.attrs["resolution_nm"] = fwhm
    m = detect_beads(meta)
    assert m.attrs["source"]["psf_fwhm_nm"] == "metadata"
    # the spots' own width is still measured and reported beside the stated resolution
    assert abs(m.attrs["estimated"]["spot_fwhm_nm"] / fwhm - 1) < 0.15
    em, gold, q = make_em(11, 0.2)
    d = detect_beads(em, diameter_nm=q["d_gold"])
    assert d.attrs["source"]["diameter_nm"] == "user" and d.attrs["estimated"]["diameter_nm"] == q["d_gold"]
    assert len(_match(d, gold, 0.25 * q["d_gold"])[0]) >= len(gold) - 1
    holes = img.copy()
    holes.values[3, :] = np.nan  # a dropped line must not blank the image
    h = detect_beads(holes)
    assert h.attrs["diagnostics"]["n_nonfinite_pixels"] == img.shape[1]
    assert len(_match(h, truth, 3 * p["px"])[0]) >= len(truth) - 1
    with pytest.raises(RegistrationError) as e:
        detect_beads(img, polarity="sideways")
    assert e.value.stage == "detection"
