"""Store write operations run in child processes by the store tests (fault injection and
concurrency), with the checks that a store is whole after a kill.

The children are forked from a multiprocessing forkserver that imported this module (and ran
each operation once on a scratch store, so that compiled kernels are inherited), with dask's
synchronous scheduler so that no thread pool is inherited.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SYNC = {"scheduler": "synchronous"}


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def write_inputs(folder: Path, seed: int) -> list[str]:
    """Two ThunderSTORM CSV files and one TIFF image (pixel size from --pixel-size)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = []
    for i in range(2):
        n = int(rng.integers(30, 80))
        pd.DataFrame({
            "id": np.arange(n), "frame": rng.integers(1, 100, n), "x [nm]": rng.uniform(0, 5000, n),
            "y [nm]": rng.uniform(0, 5000, n), "uncertainty [nm]": rng.uniform(5, 20, n),
        }).to_csv(folder / f"loc{i}.csv", index=False)
        files.append(str(folder / f"loc{i}.csv"))
    tifffile.imwrite(folder / "lm.tif", rng.integers(0, 4000, (40, 56)).astype(np.uint16))
    files.append(str(folder / "lm.tif"))
    return files


def tiny_em(seed: int):
    """A 2 nm/px EM-like image with five bright disks and SMLM rings around them."""
    from correlate import elements as el

    rng = np.random.default_rng(seed)
    n, px = 200, 2.0
    yy, xx = np.mgrid[0:n, 0:n]
    img = rng.normal(100, 5, (n, n))
    cent = [(45, 45), (45, 150), (150, 45), (150, 150), (100, 100)]
    pts = []
    for cy, cx in cent:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 15**2] += 80
        a = rng.uniform(0, 2 * np.pi, 50)
        r = 15 * px + rng.normal(0, 3, 50)
        pts.append(np.c_[cx * px + r * np.cos(a), cy * px + r * np.sin(a)])
    pts = np.vstack(pts)
    df = pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "frame": rng.integers(0, 500, len(pts)),
                       "photons": rng.uniform(500, 2000, len(pts)), "precision": rng.uniform(4, 8, len(pts))})
    return el.make_image(img.astype(np.float32), pixel_size_nm=px, modality="em"), el.make_localizations(df, source_format="test")


def landmarks(seed: int, n: int = 12):
    from correlate.elements import Landmarks
    from correlate.transforms import Affine

    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 380, (n, 2))
    dst = Affine.similarity(1.02, 0.1, (5.0, -3.0)).apply(src) + rng.normal(0, 1.0, src.shape)
    cov = np.tile(np.eye(2), (n, 1, 1))
    return Landmarks(source=src, target=dst, source_cov=cov, target_cov=cov, source_system="sim", target_system="em")


# ----------------------------------------------------------------------------------------------
# the operations (each one user action)
# ----------------------------------------------------------------------------------------------
def op_import(store: str, files: list[str], overwrite: bool = False) -> None:
    from correlate.cli import main

    args = ["import", store, *files, "--pixel-size", "5"] + (["--overwrite"] if overwrite else [])
    assert main(args) == 0


def op_register(store: str, seed: int, model: str) -> None:
    from correlate.registration import register_scene
    from correlate.scene import Scene

    sc = Scene.open(store, "r+")
    register_scene(sc, "sim", "em", landmarks=landmarks(seed), model=model)


def op_particles(store: str, linker_nm: float) -> None:
    from correlate.analysis import analyze_particles
    from correlate.scene import Scene

    sc = Scene.open(store, "r+")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyze_particles(sc, "em", ["antibody"], tre_nm=5.0, events_per_molecule=1.0, linker_nm=linker_nm,
                      assume_aligned=True)


def base_store(kind: str, folder: Path) -> tuple[Path, dict]:
    """A store to run operation ``kind`` on, and the keyword arguments of that operation."""
    import dask

    from correlate.scene import Scene

    store = folder / "base.ome.zarr"
    with dask.config.set(SYNC):
        if kind in ("import", "overwrite"):
            v1 = write_inputs(folder / "v1", 1)
            v2 = write_inputs(folder / "v2", 2)
            sc = Scene.create(store)
            sc.add("keep", tiny_em(3)[1])
            if kind == "import":
                return store, {"op": "import", "files": v1}
            op_import(str(store), v1)
            return store, {"op": "import", "files": v2, "overwrite": True}
        em, locs = tiny_em(4)
        sc = Scene.create(store)
        sc.add("em", em)
        if kind == "register":
            sc.add("sim", em.isel(y=slice(0, 150), x=slice(20, 180)))
            op_register(str(store), 5, "tps")
            return store, {"op": "register", "seed": 6, "model": "affine"}
        sc.add("antibody", locs)
        op_particles(str(store), 5.0)
        return store, {"op": "particles", "linker_nm": 25.0}


def run(store: str, spec: dict, fault_at: int | None = None, trace: str | None = None) -> None:
    """Run one operation in this (child) process, SIGKILLing itself at store step ``fault_at``."""
    import dask

    if fault_at is not None:
        os.environ["CORRELATE_STORE_FAULT_AT"] = str(fault_at)
    if trace is not None:
        os.environ["CORRELATE_STORE_FAULT_TRACE"] = trace
    spec = dict(spec)
    op = spec.pop("op")
    with dask.config.set(SYNC):
        if op == "import":
            op_import(store, **spec)
        elif op == "register":
            op_register(store, **spec)
        else:
            op_particles(store, **spec)


def add_many(store: str, prefix: str, n: int, timeout: float) -> list[str]:
    """Add ``n`` small tables one transaction each; returns the lock errors seen."""
    from correlate.errors import StoreError
    from correlate.scene import Scene

    sc = Scene.open(store, "r+", lock_timeout=timeout)
    errors = []
    for i in range(n):
        df = pd.DataFrame({"particle_id": np.arange(1, 6), "v": np.full(5, float(i))})
        try:
            sc.add_table(f"{prefix}_{i}", df)
        except StoreError as exc:
            errors.append(str(exc))
    return errors


def read_loop(store: str, seconds: float) -> tuple[int, list[str]]:
    """Open the store and read every listed element, again and again; returns (reads, errors)."""
    import time

    from correlate.scene import Scene

    end = time.monotonic() + seconds
    n, errors = 0, []
    while time.monotonic() < end:
        try:
            sc = Scene.open(store)
            for name in sc.names():
                df = sc.get(name)
                if len(df) != 5:
                    errors.append(f"{name}: {len(df)} rows")
                n += 1
        except Exception as exc:  # noqa: BLE001 - every error is a finding here
            errors.append(f"{type(exc).__name__}: {exc}")
    return n, errors


def forkserver():
    """The multiprocessing context whose server imported this module and warmed it up."""
    import multiprocessing as mp

    here = str(Path(__file__).resolve().parent)
    # the forkserver of Python 3.12.1 ignores the parent's sys.path: give it through the environment
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for p in [here] + [q for q in __import__("sys").path if q.endswith("src")]:
        if p not in parts:
            parts.append(p)
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["_store_ops", "_store_ops_warm"])
    return ctx


def warm() -> None:
    """Run every operation once on scratch stores (compiles kernels before the forks)."""
    tmp = Path(tempfile.mkdtemp(prefix="correlate-warm-"))
    try:
        for kind in ("overwrite", "register", "particles"):  # each runs its operation once
            base_store(kind, tmp / kind)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
def state(path: Path) -> dict:
    """What a user sees in the store: element data, transforms, landmarks, records, history."""
    import dask

    from correlate.scene import Scene

    sc = Scene.open(path)
    probe = np.array([[0.0, 0.0], [123.0, 45.0], [300.0, 310.0]])
    out: dict = {}
    with dask.config.set(SYNC):
        for n in sc.names():
            v = sc.get(n)
            if sc.kind(n) in ("image", "labels"):
                out[n] = (v.shape, str(v.dtype), int(np.asarray(v.values, np.float64).sum() * 1000) % (2**61))
            else:
                out[n] = (tuple(v.columns), int(pd.util.hash_pandas_object(v, index=False).sum()) % (2**61))
            if sc.kind(n) != "labels":
                out[f"{n}->world"] = tuple(np.round(sc.map_points(probe, n), 6).ravel())
        for a, b in sc.landmark_pairs():
            lm = sc.get_landmarks(a, b)
            out[f"landmarks {a}->{b}"] = tuple(np.round(lm.source, 6).ravel()) + tuple(np.round(lm.target, 6).ravel())
    out["registrations"] = [(r.get("model"), r.get("moving"), r.get("n_pairs")) for r in sc.registrations()]
    out["history"] = {n: [s.get("step") for s in sc.history(n)] for n in sc.names()}
    return out


def leftovers(path: Path) -> list[str]:
    """Paths on disk that the committed metadata does not account for (debris)."""
    from correlate._store.catalogue import referenced_paths
    from correlate.scene import Scene

    sc = Scene.open(path)
    refs = referenced_paths(sc._meta, path)
    allowed = {"zarr.json", ".correlate-lock", "correlate", "correlate/zarr.json", "coordinateTransformations",
               "coordinateTransformations/zarr.json"}
    for d in ("localizations", "tables", "landmarks"):
        allowed |= {f"correlate/{d}", f"correlate/{d}/zarr.json"}
    for n in sc.names("image"):
        e = sc._entry(n)
        if e.get("labels"):
            allowed |= {f"{e['path']}/labels", f"{e['path']}/labels/zarr.json"}
    out = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if rel in allowed or any(rel == r or rel.startswith(r + "/") for r in refs):
            continue
        out.append(rel)
    return out


def check_whole(path: Path, before: dict, after: dict) -> str:
    """After a kill: the store opens, equals its state before or after, metadata and data agree
    (NGFF validation, nothing missing), and a writable open removes all debris. Returns which
    state it holds ("before"/"after")."""
    from correlate.scene import Scene

    st = state(path)
    assert st in (before, after), {k: (st.get(k), before.get(k), after.get(k)) for k in set(st) | set(before) | set(after)
                                   if not (st.get(k) == before.get(k) or st.get(k) == after.get(k))}
    Scene.open(path).validate()
    Scene.open(path, "r+")
    assert not (path / ".correlate-staging").exists()
    left = leftovers(path)
    assert not left, left
    assert state(path) == st
    return "before" if st == before else "after"
