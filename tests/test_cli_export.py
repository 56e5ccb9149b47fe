"""`correlate export bigwarp` with its defaults picks the latest registration that has fiducial
pairs (a bead-based colour alignment stores none)."""

from __future__ import annotations

import csv

import numpy as np

from correlate.cli import main


def test_export_bigwarp_defaults_skip_registrations_without_pairs(tmp_path, capsys):
    from correlate.elements import Landmarks, make_image, make_localizations
    from correlate.scene import Scene
    import pandas as pd

    rng = np.random.default_rng()
    store = tmp_path / "s.ome.zarr"
    sc = Scene.create(store)
    sc.add("em", make_image(np.zeros((20, 20), np.float32), pixel_size_nm=2.0, modality="em"))
    for n in ("a", "b"):
        sc.add(n, make_localizations(pd.DataFrame({"x": rng.uniform(0, 40, 5), "y": rng.uniform(0, 40, 5),
                                                   "frame": np.arange(5)})))
    n_pairs = int(rng.integers(4, 9))
    src = rng.uniform(0, 40, (n_pairs, 2))
    sc.add_landmarks(Landmarks(src, src + 1.0, source_system="a", target_system="em"))
    sc.add_registration({"moving": "a", "fixed": "em", "model": "translation"})
    sc.add_registration({"moving": "b", "fixed": "a", "model": "translation"})  # no pairs stored
    out = tmp_path / "bw.csv"
    assert main(["export", str(store), "bigwarp", "-o", str(out)]) == 0
    assert "a (moving) -> em (fixed)" in capsys.readouterr().out
    rows = list(csv.reader(open(out)))
    assert len(rows) == n_pairs
    np.testing.assert_allclose(np.array([[float(v) for v in r[2:4]] for r in rows]), src)


def _itk_from_ngff_field(group):
    """A SimpleITK DisplacementFieldTransform from an NGFF displacements group, read with zarr and
    the group's own metadata (not with correlate's reader)."""
    import json

    import SimpleITK as sitk
    import zarr

    ms = json.loads((group / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    ds = ms["datasets"][0]
    parts = ds["coordinateTransformations"][0]["transformations"]
    scale = next(p["scale"] for p in parts if p["type"] == "scale")
    trans = next(p["translation"] for p in parts if p["type"] == "translation")
    d = zarr.open_array(str(group / ds["path"]), mode="r")[...]  # (component y|x, y, x)
    vec = np.stack([d[1], d[0]], axis=-1)  # ITK: (y, x, [dx, dy])
    img = sitk.GetImageFromArray(vec.astype(np.float64), isVector=True)
    img.SetSpacing((scale[2], scale[1]))
    img.SetOrigin((trans[2], trans[1]))
    return sitk.DisplacementFieldTransform(img)


def test_export_displacements_applied_by_simpleitk_matches_the_tps(tmp_path, capsys):
    import json

    from correlate.elements import make_localizations
    from correlate.scene import Scene
    from correlate.transforms import ThinPlateSpline
    import pandas as pd

    rng = np.random.default_rng()
    src = rng.uniform(0, 5000, (12, 2))
    dst = src @ np.array([[0.99, -0.1], [0.1, 0.99]]).T + rng.uniform(-300, 300, 2) + rng.normal(0, 15, (12, 2))
    tps = ThinPlateSpline.fit(src, dst)
    store = tmp_path / "s.ome.zarr"
    sc = Scene.create(store)
    pts = rng.uniform(200, 4800, (400, 2))
    sc.add("locs", make_localizations(pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "frame": np.arange(400)})),
           transform=tps)
    out = tmp_path / "f.zarr"
    spacing = float(rng.uniform(10, 40))
    assert main(["export", str(store), "displacements", "--name", "locs", "-o", str(out),
                 "--pixel-size", str(spacing)]) == 0
    info = json.loads((out / "zarr.json").read_text())["attributes"]["correlate"]
    fwd = _itk_from_ngff_field(out / "forward")
    inv = _itk_from_ngff_field(out / "inverse")
    p = rng.uniform(pts.min(axis=0), pts.max(axis=0), (300, 2))
    want = tps.apply(p)
    got = np.array([fwd.TransformPoint(tuple(q)) for q in p])
    # Linear interpolation of a smooth field: the error the export measured bounds it (a little slack
    # for points the export's random check did not hit), and both are far below a pixel.
    assert np.max(np.linalg.norm(got - want, axis=1)) <= 2 * info["forward"]["max_error_nm"] + 1e-6
    assert info["forward"]["max_error_nm"] < 0.05 * spacing
    back = np.array([inv.TransformPoint(tuple(q)) for q in want])
    assert np.max(np.linalg.norm(back - p, axis=1)) <= 2 * info["inverse"]["max_error_nm"] + 1e-6
