"""Several processes writing one store and one reading it: the store lock serialises the
writers (no lost element, no orphan folder), the reader never sees a half state, a writer that
cannot get the lock in time is told who holds it, and the lock of a killed writer is free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _store_ops  # noqa: E402

from correlate.errors import StoreError  # noqa: E402
from correlate.scene import Scene  # noqa: E402

HERE = Path(__file__).resolve().parent


def _env() -> dict:
    env = dict(os.environ)
    paths = [str(HERE)] + [p for p in sys.path if p.endswith("src")] + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _py(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


@pytest.mark.parametrize("n_writers", [3, pytest.param(4, marks=pytest.mark.slow)])
def test_writers_and_a_reader(tmp_path, n_writers):
    store = tmp_path / "s.ome.zarr"
    Scene.create(store)
    n_each = 8
    reader = _py(f"""
        import _store_ops
        n, errors = _store_ops.read_loop({str(store)!r}, 4.0)
        print(n); print(repr(errors))
    """)
    writers = [_py(f"""
        import _store_ops
        print(repr(_store_ops.add_many({str(store)!r}, "w{i}", {n_each}, 60.0)))
    """) for i in range(n_writers)]
    outs = [w.communicate(timeout=300) for w in writers]
    for (out, err), w in zip(outs, writers):
        assert w.returncode == 0, err
        assert out.strip() == "[]", out  # no writer saw an error
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    n_reads, errors = out.strip().splitlines()
    assert errors == "[]", errors
    assert int(n_reads) > 0
    sc = Scene.open(store)
    assert sc.names() == sorted(f"w{i}_{k}" for i in range(n_writers) for k in range(n_each))
    assert all(len(sc.get(n)) == 5 for n in sc.names())
    Scene.open(store, "r+")
    assert _store_ops.leftovers(store) == []


def test_lock_timeout_names_the_holder_and_a_killed_holder_frees_it(tmp_path):
    store = tmp_path / "s.ome.zarr"
    Scene.create(store)
    holder = _py(f"""
        import time
        import pandas as pd
        from correlate.scene import Scene
        sc = Scene.open({str(store)!r}, "r+")
        with sc.transaction("a long import"):
            sc.add_table("held", pd.DataFrame({{"particle_id": [1]}}))
            print("HOLDING", flush=True)
            time.sleep(120)
    """)
    try:
        assert holder.stdout.readline().strip() == "HOLDING", holder.stderr.read()
        sc = Scene.open(store, "r+", lock_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(StoreError) as err:
            sc.add_table("mine", pd.DataFrame({"particle_id": [1]}))
        waited = time.monotonic() - t0
        msg = str(err.value)
        assert f"pid {holder.pid}" in msg and socket.gethostname() in msg and "since" in msg, msg
        assert "a long import" in msg and "lock_timeout" in msg
        assert waited >= 0.3
        assert Scene.open(store).names() == []  # the holder's pending table is not visible
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    # the kernel dropped the dead holder's lock: the next writer gets it at once and cleans up
    sc = Scene.open(store, "r+", lock_timeout=5.0)
    sc.add_table("mine", pd.DataFrame({"particle_id": [1]}))
    assert Scene.open(store).names() == ["mine"]
    assert not (store / ".correlate-staging").exists()
    assert _store_ops.leftovers(store) == []


def test_a_waiter_locks_the_store_that_replaced_the_one_it_waited_for(tmp_path):
    """Scene.create(overwrite=True) swaps the whole store, lock file included: a writer that was
    waiting must end up holding the lock of the new store, not of the removed one."""
    import threading

    from correlate._store.lock import StoreLock

    store = tmp_path / "s.ome.zarr"
    Scene.create(store)
    first = StoreLock(store, 5.0)
    first.acquire()
    waiter = StoreLock(store, 10.0)
    got = threading.Event()
    t = threading.Thread(target=lambda: (waiter.acquire(), got.set()))
    t.start()
    time.sleep(0.2)
    assert not got.is_set()
    new = store / ".new-lock"
    new.touch()
    os.replace(new, store / ".correlate-lock")  # what the swap of the whole store does to the path
    first.release()
    t.join(10)
    assert got.is_set()
    assert os.fstat(waiter._fd).st_ino == os.stat(store / ".correlate-lock").st_ino
    third = StoreLock(store, 0.2)
    with pytest.raises(StoreError, match="locked by"):
        third.acquire()
    waiter.release()
    assert third.acquire()
    third.release()
