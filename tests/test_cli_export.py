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
