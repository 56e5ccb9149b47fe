"""MINFLUX exports, written here in the two Imspector layouts, read back in nm."""

from __future__ import annotations

import json

import numpy as np
import pytest

import correlate.io as cio
from correlate.errors import CorrelateError


def _events(rng, n=300, n_itr=5, three_d=True):
    loc = np.column_stack([rng.uniform(0, 2e-6, n), rng.uniform(0, 2e-6, n),
                           rng.normal(0, 1e-7, n) if three_d else np.zeros(n)])
    tid = np.repeat(np.arange(n // 3 + 1), 3)[:n]
    vld = rng.random(n) > 0.2
    efo = rng.uniform(5e4, 2e5, n)
    cfr = rng.uniform(0, 1, n)
    tim = np.sort(rng.uniform(0, 600, n))
    return loc, tid, vld, efo, cfr, tim


def _nested(loc, tid, vld, efo, cfr, tim, n_itr, rng):
    itr_dt = np.dtype([("itr", "i4"), ("loc", "f8", 3), ("lnc", "f8", 3), ("efo", "f8"), ("cfr", "f8"),
                       ("eco", "i4"), ("tic", "u8")])
    dt = np.dtype([("itr", itr_dt, (n_itr,)), ("sqi", "u4"), ("gri", "u4"), ("tim", "f8"), ("tid", "i4"),
                   ("vld", "?")])
    a = np.zeros(len(loc), dt)
    for k in range(n_itr):  # earlier iterations sit farther from the final position
        a["itr"]["loc"][:, k] = loc + rng.normal(0, 5e-9 * (n_itr - 1 - k), loc.shape)
        a["itr"]["efo"][:, k] = efo * (k + 1) / n_itr
        a["itr"]["cfr"][:, k] = cfr - 0.1 * (n_itr - 1 - k)
        a["itr"]["itr"][:, k] = k
    a["tid"], a["vld"], a["tim"] = tid, vld, tim
    return a


def _flat(loc, tid, vld, efo, cfr, tim, n_itr, rng):
    dt = np.dtype([("vld", "?"), ("fnl", "?"), ("tim", "f8"), ("tid", "i4"), ("itr", "i4"), ("loc", "f8", 3),
                   ("efo", "f8"), ("cfr", "f8")])
    n = len(loc)
    a = np.zeros(n * n_itr, dt)
    for k in range(n_itr):
        s = slice(k, None, n_itr)
        a["loc"][s] = loc + (0 if k == n_itr - 1 else rng.normal(0, 5e-9 * (n_itr - k), loc.shape))
        a["itr"][s] = k
        a["fnl"][s] = k == n_itr - 1
        a["efo"][s] = efo * (k + 1) / n_itr
        a["cfr"][s] = cfr
        a["tid"][s], a["vld"][s], a["tim"][s] = tid, vld, tim
    return a


@pytest.mark.parametrize("layout", ["nested", "flat"])
@pytest.mark.parametrize("seed", [0, 1])
def test_minflux_npy_last_valid_iteration_in_nm(tmp_path, layout, seed):
    rng = np.random.default_rng(seed)
    n_itr = int(rng.integers(3, 7))
    loc, tid, vld, efo, cfr, tim = _events(rng, three_d=seed == 0)
    arr = (_nested if layout == "nested" else _flat)(loc, tid, vld, efo, cfr, tim, n_itr, rng)
    path = tmp_path / f"mfx_{layout}.npy"
    np.save(path, arr)
    df = cio.read(path)
    assert df.attrs["source_format"] == "minflux"
    np.testing.assert_allclose(df["x"].to_numpy(), loc[vld, 0] * 1e9, atol=1e-6)
    np.testing.assert_allclose(df["y"].to_numpy(), loc[vld, 1] * 1e9, atol=1e-6)
    if seed == 0:
        np.testing.assert_allclose(df["z"].to_numpy(), loc[vld, 2] * 1e9, atol=1e-6)
    else:
        assert "z" not in df.columns
    np.testing.assert_array_equal(df["track_id"].to_numpy(), tid[vld])
    np.testing.assert_allclose(df["efo"].to_numpy(), efo[vld])
    all_ = cio.read(path, include_invalid=True)
    assert len(all_) == len(loc) and all_["vld"].sum() == vld.sum()


def test_minflux_json_nested(tmp_path):
    rng = np.random.default_rng(5)
    loc, tid, vld, efo, cfr, tim = _events(rng, n=40)
    arr = _nested(loc, tid, vld, efo, cfr, tim, 4, rng)
    recs = [{"tid": int(r["tid"]), "tim": float(r["tim"]), "vld": bool(r["vld"]),
             "itr": {"loc": r["itr"]["loc"].tolist(), "efo": r["itr"]["efo"].tolist(), "cfr": r["itr"]["cfr"].tolist()}}
            for r in arr]
    path = tmp_path / "mfx.json"
    path.write_text(json.dumps(recs))
    df = cio.read(path)
    np.testing.assert_allclose(df[["x", "y", "z"]].to_numpy(), loc[vld] * 1e9, atol=1e-6)


def test_minflux_damaged(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(10, np.dtype([("itr", "i4"), ("tid", "i4"), ("vld", "?")])))  # no loc
    with pytest.raises(CorrelateError, match="loc") as exc:
        cio.read(path)
    assert "bad.npy" in str(exc.value)
    raw = (tmp_path / "bad.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-7])
    with pytest.raises(CorrelateError) as exc:
        cio.read(tmp_path / "cut.npy")
    assert "cut.npy" in str(exc.value)
