"""Scenes on S3: a local S3-compatible server (moto's server mode on 127.0.0.1, a free port) is
started by these tests; a scene written there and read back must equal the local one, a killed
or failed write must leave the previous state readable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pandas as pd
import pytest


DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    old = {k: os.environ.get(k) for k in DUMMY_ENV}
    os.environ.update(DUMMY_ENV)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3_endpoint):
    import s3fs

    opts = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing", "use_listings_cache": False}
    name = f"b{uuid.uuid4().hex[:10]}"
    fs = s3fs.S3FileSystem(**opts)
    fs.mkdir(name)
    return name, opts, fs


def _scene_parts(rng):
    """An image with labels, localizations, a table, landmarks, a non-linear transform and a
    registration record, with parameters drawn at random."""
    import xarray as xr

    from correlate import elements as el
    from correlate.transforms import Affine, DisplacementField

    px = float(rng.uniform(0.5, 20.0))
    ny, nx = (int(v) for v in rng.integers(40, 300, 2))
    data = rng.integers(0, 60000, (ny, nx)).astype(np.uint16)
    img = xr.DataArray(data, dims=("y", "x"),
                       coords={"y": ("y", 3.0 + px * np.arange(ny), {"units": "nm"}),
                               "x": ("x", -7.0 + px * np.arange(nx), {"units": "nm"})},
                       attrs={"modality": "em"})
    labels = (data > 40000).astype(np.uint32)
    n = int(rng.integers(50, 3000))
    locs = pd.DataFrame({"x": rng.uniform(0, nx * px, n), "y": rng.uniform(0, ny * px, n),
                         "frame": rng.integers(0, 5000, n), "photons": rng.uniform(100, 1e4, n),
                         "precision": rng.uniform(3, 30, n)})
    locs.attrs = {"units": {"x": "nm", "y": "nm", "precision": "nm"}, "source_format": "synthetic"}
    m = int(rng.integers(3, 40))
    table = pd.DataFrame({"particle_id": np.arange(1, m + 1), "area_nm2": rng.uniform(10, 1e5, m),
                          "n_locs": rng.integers(0, 100, m)})
    k = int(rng.integers(4, 12))
    src = rng.uniform(0, 5000, (k, 2))
    lm = el.Landmarks(source=src, target=src + rng.normal(0, 5, (k, 2)), source_system="world_locs",
                      target_system="world")
    th = rng.uniform(0, 2 * np.pi)
    aff = Affine(np.array([[np.cos(th), -np.sin(th), rng.uniform(-500, 500)],
                           [np.sin(th), np.cos(th), rng.uniform(-500, 500)], [0, 0, 1.0]]))
    field = DisplacementField(np.array([0.0, 0.0]), np.array([250.0, 250.0]), rng.normal(0, 3, (2, 9, 9)))
    rec = {"model": "rigid", "moving": "locs", "fixed": "em", "fre_nm": float(rng.uniform(1, 10)),
           "tre_nm": float("nan"), "mirrored": bool(rng.integers(0, 2))}
    return img, labels, locs, table, lm, aff, field, rec


def _fill(scene, parts) -> None:
    img, labels, locs, table, lm, aff, field, rec = parts
    with scene.transaction():
        scene.add("em", img)
        scene.add_labels("em", "particles", labels)
        scene.add("locs", locs, transform=aff)
        scene.add_table("particles", table, label_image="em/labels/particles")
        scene.add_landmarks(lm)
        scene.set_transform("em", field)
        scene.add_registration(rec)


def _assert_equal_scenes(a, b) -> None:
    assert a.names() == b.names()
    assert a.landmark_pairs() == b.landmark_pairs()
    for name in a.names():
        kind = a.kind(name)
        if kind in ("image", "labels"):
            x, y = a.get(name), b.get(name)
            np.testing.assert_array_equal(x.values, y.values)
            for d in x.dims:
                np.testing.assert_array_equal(x[d].values, y[d].values)
            assert x.attrs == y.attrs
            assert a.levels(name) == b.levels(name)
        else:
            pd.testing.assert_frame_equal(a.get(name), b.get(name))
            assert a.get(name).attrs == b.get(name).attrs
        if kind in ("image", "localizations"):
            pts = np.random.default_rng(0).uniform(0, 5000, (20, 2))
            np.testing.assert_array_equal(a.transform_to_world(name).apply(pts),
                                          b.transform_to_world(name).apply(pts))
    for pair in a.landmark_pairs():
        pd.testing.assert_frame_equal(a.get_landmarks(*pair).to_dataframe(), b.get_landmarks(*pair).to_dataframe())
    ra, rb = a.registrations(), b.registrations()
    assert len(ra) == len(rb) == 1
    assert ra[0].keys() == rb[0].keys()
    for key in ra[0]:
        if key not in ("id", "created"):
            va, vb = ra[0][key], rb[0][key]
            assert (va == vb) or (isinstance(va, float) and np.isnan(va) and np.isnan(vb)), key
    assert a.history("locs") == b.history("locs") or len(a.history("locs")) == len(b.history("locs"))


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_scene_written_to_s3_equals_the_local_one(tmp_path, bucket, seed):
    from correlate import Scene

    name, opts, fs = bucket
    parts = _scene_parts(np.random.default_rng(seed))
    local = Scene.create(tmp_path / "x.ome.zarr")
    _fill(local, parts)
    url = f"s3://{name}/x.ome.zarr"
    remote = Scene.create(url, storage_options=opts)
    _fill(remote, parts)
    reread = Scene.open(url, storage_options=opts)
    _assert_equal_scenes(local, reread)
    reread.validate()  # ome-zarr-models, through zarr's FsspecStore
    # nothing of the writer is left: no staging, no lock
    keys = [k.split("x.ome.zarr/", 1)[1] for k in fs.find(f"{name}/x.ome.zarr")]
    assert not any(k.startswith((".correlate-staging", ".correlate-lock")) for k in keys), keys


@pytest.mark.slow
def test_local_scene_uploaded_with_fsspec_put_opens_from_s3(tmp_path, bucket):
    from correlate import Scene

    name, opts, fs = bucket
    local = Scene.create(tmp_path / "x.ome.zarr")
    _fill(local, _scene_parts(np.random.default_rng(7)))
    fs.put(str(tmp_path / "x.ome.zarr"), f"{name}/up.ome.zarr", recursive=True)
    _assert_equal_scenes(local, Scene.open(f"s3://{name}/up.ome.zarr", storage_options=opts))


@pytest.mark.slow
def test_failed_write_leaves_the_previous_state_and_overwrite_is_copy_on_write(tmp_path, bucket):
    from correlate import Scene

    name, opts, fs = bucket
    rng = np.random.default_rng(11)
    parts = _scene_parts(rng)
    url = f"s3://{name}/f.ome.zarr"
    scene = Scene.create(url, storage_options=opts)
    _fill(scene, parts)
    before = {k: fs.cat_file(k) for k in fs.find(f"{name}/f.ome.zarr")}
    with pytest.raises(RuntimeError, match="boom"):
        with scene.transaction():
            scene.add("em", parts[0] * 0 + 1, overwrite=True)
            scene.add("other", parts[2])
            raise RuntimeError("boom")
    after = {k: fs.cat_file(k) for k in fs.find(f"{name}/f.ome.zarr")}
    assert after == before
    reread = Scene.open(url, storage_options=opts)
    np.testing.assert_array_equal(reread.get("em").values, parts[0].values)
    assert "other" not in reread
    # a committed overwrite goes to a fresh prefix and removes the old one afterwards
    old_path = reread._entry("em")["path"]
    scene.add("em", parts[0] + 1, overwrite=True)
    new = Scene.open(url, storage_options=opts)
    assert new._entry("em")["path"] != old_path
    assert not fs.exists(f"{name}/f.ome.zarr/{old_path}")
    np.testing.assert_array_equal(new.get("em").values, parts[0].values + 1)


_CHILD = textwrap.dedent("""
    import sys, numpy as np, pandas as pd
    from correlate import Scene
    url, endpoint = sys.argv[1], sys.argv[2]
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing", "use_listings_cache": False}
    scene = Scene.open(url, "r+", storage_options=opts)
    rng = np.random.default_rng(5)
    n = 4000
    df = pd.DataFrame({"x": rng.uniform(0, 1e4, n), "y": rng.uniform(0, 1e4, n)})
    with scene.transaction():
        scene.add("locs", df, overwrite=True)
        scene.add("more", df)
""")


def _run_child(url: str, endpoint: str, fault_at: int | None, trace=None) -> int:
    env = {**os.environ, **DUMMY_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CORRELATE_STORE_FAULT_AT", None)
    if fault_at is not None:
        env["CORRELATE_STORE_FAULT_AT"] = str(fault_at)
    if trace is not None:
        env["CORRELATE_STORE_FAULT_TRACE"] = str(trace)
    return subprocess.run([sys.executable, "-c", _CHILD, url, endpoint], env=env, timeout=300).returncode


@pytest.mark.slow
def test_killed_writer_leaves_the_previous_state_readable_and_is_cleaned(tmp_path, bucket, s3_endpoint):
    from correlate import Scene
    from correlate._store.catalogue import referenced_paths

    name, opts, fs = bucket
    parts = _scene_parts(np.random.default_rng(3))
    url = f"s3://{name}/k.ome.zarr"
    _fill(Scene.create(url, storage_options=opts), parts)
    want = Scene.open(url, storage_options=opts).get("locs")
    trace = tmp_path / "trace.tsv"
    # a dry run (no kill) lists the steps; then a writer is killed at each of them in turn
    probe = f"s3://{name}/probe.ome.zarr"
    _fill(Scene.create(probe, storage_options=opts), parts)
    assert _run_child(probe, s3_endpoint, None, trace) == 0
    steps = [line.split("\t") for line in trace.read_text().splitlines()]
    labels = [s[1] for s in steps]
    commit = labels.index("committed") + 1
    chosen = list(range(1, len(steps) + 1))  # every step: mid-upload, around the commit, cleanup
    assert any(lab.startswith("uploading") for lab in labels) and commit < len(steps)
    print("killed at steps:", [(k, labels[k - 1]) for k in chosen], "of", len(steps))
    os.environ["CORRELATE_LOCK_LEASE"] = "1"
    try:
        for k in chosen:
            rc = _run_child(url, s3_endpoint, k)
            assert rc == -9, (k, rc)
            seen = Scene.open(url, storage_options=opts)
            if k < commit:
                pd.testing.assert_frame_equal(seen.get("locs"), want)
                assert "more" not in seen
            else:
                assert "more" in seen and len(seen.get("locs")) == 4000
            # the next writer (after the dead writer's lease ran out) cleans its debris
            w = Scene.open(url, "r+", storage_options=opts, lock_timeout=10)
            w.add_history("locs", {"step": "probe", "params": {"k": k}})
            refs = referenced_paths(w._meta)
            keys = {k2.split("k.ome.zarr/", 1)[1] for k2 in fs.find(f"{name}/k.ome.zarr")}
            stray = {key for key in keys if not key.endswith("zarr.json") or key.count("/") > 2}
            stray = {key for key in stray if not any(key.startswith(r + "/") for r in refs)}
            assert not stray, (k, labels[k - 1], stray)
            # reset to the state before the child's write
            w.remove("more") if "more" in w else None
            w.add("locs", want, overwrite=True)
    finally:
        os.environ.pop("CORRELATE_LOCK_LEASE", None)


def test_lock_object_is_exclusive_and_names_its_holder(bucket):
    from correlate import Scene
    from correlate._store.remote_writer import RemoteLock
    from correlate.errors import StoreError

    name, opts, fs = bucket
    url = f"s3://{name}/l.ome.zarr"
    scene = Scene.create(url, storage_options=opts)
    a, b = RemoteLock(scene.path, 0), RemoteLock(scene.path, 0)
    assert a.acquire()
    assert a.conditional is True  # moto honours If-None-Match, so b's PUT is refused
    with pytest.raises(StoreError, match="locked by pid"):
        b.acquire()
    assert b.acquire(quiet=True) is False
    a.release()
    assert b.acquire() and b.holder()["token"] == b.token
    b.release()
    assert not fs.exists(f"{name}/l.ome.zarr/.correlate-lock")


def test_cli_opens_an_s3_store_with_fsspec_environment_config(tmp_path, bucket, s3_endpoint):
    from correlate import Scene
    from correlate.transforms import Translation

    name, opts, fs = bucket
    url = f"s3://{name}/c.ome.zarr"
    rng = np.random.default_rng(4)
    shift = rng.uniform(-1e3, 1e3, 2)
    locs = pd.DataFrame({"x": rng.uniform(0, 1e4, 30), "y": rng.uniform(0, 1e4, 30)})
    Scene.create(url, storage_options=opts).add("locs", locs, transform=Translation(shift))
    pd.DataFrame({"x": [0.0, 10.0], "y": [5.0, -3.0]}).to_csv(tmp_path / "in.csv", index=False)
    env = {**os.environ, **DUMMY_ENV, "PYTHONPATH": os.pathsep.join(sys.path),
           "FSSPEC_S3_ENDPOINT_URL": s3_endpoint, "FSSPEC_S3_USE_LISTINGS_CACHE": "false"}
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "correlate.cli", "map", url, str(tmp_path / "in.csv"), str(out),
                           "--from", "locs", "--to", "world"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = pd.read_csv(out)
    np.testing.assert_allclose(got[["x", "y"]].to_numpy(), np.array([[0.0, 5.0], [10.0, -3.0]]) + shift, atol=1e-9)
    # import into the S3 store, then info on it
    pd.DataFrame({"x [nm]": [1.0, 2.0, 3.0], "y [nm]": [4.0, 5.0, 6.0], "frame": [1, 2, 3]}).to_csv(
        tmp_path / "more.csv", index=False)
    for cmd in (["import", url, str(tmp_path / "more.csv"), "--name", "more"], ["info", url, "--json"]):
        proc = subprocess.run([sys.executable, "-m", "correlate.cli", *cmd], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
    import json

    doc = json.loads(proc.stdout)
    assert {"locs", "more"} <= {e["name"] for e in doc["elements"]}, doc.get("elements")


def test_any_fsspec_file_system_memory(tmp_path):
    from correlate import Scene
    from correlate._store.remote_writer import RemoteLock

    parts = _scene_parts(np.random.default_rng(21))
    local = Scene.create(tmp_path / "x.ome.zarr")
    _fill(local, parts)
    url = f"memory://{uuid.uuid4().hex[:8]}/x.ome.zarr"
    remote = Scene.create(url)
    _fill(remote, parts)
    _assert_equal_scenes(local, Scene.open(url))
    lock = RemoteLock(remote.path, 0)
    assert lock.acquire() and lock.conditional is True
    assert RemoteLock(remote.path, 0).acquire(quiet=True) is False
    lock.release()


def test_remote_errors_name_the_store_and_the_option(s3_endpoint):
    from correlate import Scene
    from correlate.errors import StoreError

    opts = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    with pytest.raises(StoreError, match="does not exist"):
        Scene.open(f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x.ome.zarr", storage_options=opts)
    with pytest.raises(StoreError, match="storage_options"):
        Scene.create(f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x.ome.zarr", storage_options=opts)
    with pytest.raises(StoreError, match="only to URLs"):
        Scene.open("local.ome.zarr", storage_options=opts)


_WRITER = textwrap.dedent("""
    import sys, time, numpy as np, pandas as pd
    from correlate import Scene
    url, endpoint, name = sys.argv[1], sys.argv[2], sys.argv[3]
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing", "use_listings_cache": False}
    scene = Scene.open(url, "r+", storage_options=opts, lock_timeout=120)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    with scene.transaction():
        scene.add(name, pd.DataFrame({"x": rng.uniform(0, 1e4, 500), "y": rng.uniform(0, 1e4, 500)}))
        time.sleep(1.0)  # hold the lock while the other writer starts
        scene.add_history(name, {"step": "written", "params": {"by": name}})
""")


@pytest.mark.slow
def test_concurrent_writers_on_s3_take_turns(bucket, s3_endpoint):
    from correlate import Scene

    name, opts, fs = bucket
    url = f"s3://{name}/w.ome.zarr"
    Scene.create(url, storage_options=opts)
    env = {**os.environ, **DUMMY_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CORRELATE_STORE_FAULT_AT", None)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, s3_endpoint, f"w{i}"], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    scene = Scene.open(url, storage_options=opts)
    assert scene.names() == ["w0", "w1", "w2"]
    for i in range(3):
        assert len(scene.get(f"w{i}")) == 500
        assert [s["params"]["by"] for s in scene.history(f"w{i}")] == [f"w{i}"]


def test_lock_of_a_dead_process_on_this_host_is_taken_over_before_its_lease_ends(bucket):
    import json as _json
    import socket
    import subprocess
    import sys
    import time

    from correlate import Scene
    from correlate._store.remote_writer import RemoteLock
    from correlate.errors import StoreError

    name, opts, fs = bucket
    scene = Scene.create(f"s3://{name}/d.ome.zarr", storage_options=opts)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)
    lock_key = f"{name}/d.ome.zarr/.correlate-lock"
    for host, pid, taken in ((socket.gethostname(), dead, True), ("elsewhere", dead, False),
                             (socket.gethostname(), os.getppid(), False)):
        fs.pipe_file(lock_key, _json.dumps({"token": "old", "pid": pid, "host": host, "what": "writing",
                                            "since": "2026-01-01T00:00:00+00:00",
                                            "expires": time.time() + 3600}).encode())
        lock = RemoteLock(scene.path, 0.3)
        if taken:
            assert lock.acquire() and lock.holder()["token"] == lock.token
            lock.release()
        else:  # another host's process, or a live one here: wait for the lease
            with pytest.raises(StoreError, match="locked by pid"):
                lock.acquire()
            fs.rm(lock_key)
