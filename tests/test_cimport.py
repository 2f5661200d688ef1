"""The README's Cython example cimports the installed core, compiles, and runs.

This is what a user writing nogil Cython against tallyio does: the .pxd files
and headers must ship with the package and work from site-packages."""
import re
from pathlib import Path

import pytest

from conftest import build_user_extension

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_cython_block() -> str:
    blocks = re.findall(r"```cython\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md should have exactly one ```cython example"
    return blocks[0]


@pytest.mark.timeout(600)
def test_readme_cython_example_builds_and_runs(tmp_path, monkeypatch):
    example = build_user_extension(tmp_path, "readme_example", _readme_cython_block(), monkeypatch)
    from tallyio import SpscQueue

    q = SpscQueue(64, dtype="uint64")
    assert example.pump(q, 100_000) == sum(range(100_000))
    assert q.empty()
    # issue 9: an object-dtype queue (or None) is refused at the boundary instead of
    # taking raw numbers it would later DECREF as objects (a segfault)
    objects = SpscQueue(64)
    with pytest.raises(TypeError, match=r"holds Python objects \(dtype=object\).*dtype='uint64'"):
        example.pump(objects, 10)
    assert objects.empty()
    objects.put_nowait("still usable")
    assert objects.get_nowait() == "still usable"
    with pytest.raises(TypeError, match="got None"):
        example.pump(None, 10)


_BOUNDARY_CHECKS = """
from tallyio._ext.mpmc cimport MpmcQueue, tio_mpmc, tio_mpmc_uint64_ring, tio_mpmc_push, tio_mpmc_pop
from tallyio._ext.deque cimport WorkStealingDeque, tio_deque, tio_deque_uint64_ring, tio_deque_push, tio_deque_pop
from libc.stdint cimport uint64_t

def mpmc_roundtrip(MpmcQueue q, uint64_t value):
    cdef uint64_t out = 0
    cdef tio_mpmc *ring = tio_mpmc_uint64_ring(q)
    tio_mpmc_push(ring, value)
    tio_mpmc_pop(ring, &out)
    return out

def deque_roundtrip(WorkStealingDeque d, uint64_t value):
    cdef uint64_t out = 0
    cdef tio_deque *ring = tio_deque_uint64_ring(d)
    tio_deque_push(ring, value)
    tio_deque_pop(ring, &out)
    return out
"""


@pytest.mark.timeout(600)
def test_mpmc_and_deque_boundary_checks(tmp_path, monkeypatch):
    example = build_user_extension(tmp_path, "boundary_checks", _BOUNDARY_CHECKS, monkeypatch)
    from tallyio import MpmcQueue, WorkStealingDeque

    assert example.mpmc_roundtrip(MpmcQueue(8, dtype="uint64"), 2**64 - 1) == 2**64 - 1
    assert example.deque_roundtrip(WorkStealingDeque(8, dtype="uint64"), 7) == 7
    with pytest.raises(TypeError, match=r"MpmcQueue\(capacity=8\) holds Python objects"):
        example.mpmc_roundtrip(MpmcQueue(8), 1)
    with pytest.raises(TypeError, match=r"WorkStealingDeque\(.*\) holds Python objects"):
        example.deque_roundtrip(WorkStealingDeque(8), 1)
    for call in (example.mpmc_roundtrip, example.deque_roundtrip):
        with pytest.raises(TypeError, match="got None"):
            call(None, 1)


# ---- the public C API: tallyio.capi ----------------------------------------------------

_PUBLIC_API = """
from libc.stdint cimport uint64_t
from tallyio.capi cimport (
    TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY, raise_status,
    SpscQueue, tio_spsc, tio_spsc_uint64_ring, tio_spsc_push, tio_spsc_pop, tio_spsc_size,
    MpmcQueue, tio_mpmc, tio_mpmc_uint64_ring, tio_mpmc_push, tio_mpmc_pop, tio_mpmc_capacity,
    WorkStealingDeque, tio_deque_owner, tio_deque_thief, tio_deque_owner_of, tio_deque_thief_of,
    tio_deque_owner_push, tio_deque_owner_pop, tio_deque_thief_steal, tio_deque_thief_steal_batch,
    tio_deque_thief_len,
    MemoryPool, tio_pool, tio_pool_of, tio_pool_alloc, tio_pool_free, tio_pool_in_use,
    tio_sched, tio_native_fn, tio_sched_of, tio_submit_native,
)

def spsc_roundtrip(SpscQueue q, uint64_t value):
    cdef tio_spsc *ring = tio_spsc_uint64_ring(q)
    cdef uint64_t out = 0
    if tio_spsc_push(ring, value) != TIO_OK:
        raise_status(TIO_FULL, "spsc")
    assert tio_spsc_size(ring) == 1
    tio_spsc_pop(ring, &out)
    return out

def mpmc_capacity(MpmcQueue q):
    return tio_mpmc_capacity(tio_mpmc_uint64_ring(q))

def deque_owner_then_thief(WorkStealingDeque d, WorkStealingDeque mine, uint64_t n):
    cdef tio_deque_owner owner, dest
    cdef tio_deque_thief thief
    tio_deque_owner_of(d, &owner)
    tio_deque_owner_of(mine, &dest)
    tio_deque_thief_of(d, &thief)
    cdef uint64_t i, item = 0, moved = 0, newest = 0
    for i in range(n):
        if tio_deque_owner_push(owner, i) != TIO_OK:
            raise_status(TIO_FULL, "deque")
    tio_deque_thief_steal(thief, &item)                  # the oldest
    st = tio_deque_thief_steal_batch(thief, dest, &moved)
    tio_deque_owner_pop(owner, &newest)
    return item, st, moved, newest, tio_deque_thief_len(thief)

def pool_alloc_free(MemoryPool p):
    cdef tio_pool *cp = tio_pool_of(p)
    cdef void *block = NULL
    st = tio_pool_alloc(cp, &block)
    in_use = tio_pool_in_use(cp)
    return st, in_use, tio_pool_free(cp, block), tio_pool_free(cp, block)

def raise_for(int status):
    raise_status(status, "capi-test")

cdef void _nothing(void *arg) noexcept nogil:
    pass

def submit_to(scheduler):
    cdef tio_sched *s = tio_sched_of(scheduler)
    cdef tio_native_fn fn = _nothing
    cdef int st
    with nogil:
        st = tio_submit_native(s, fn, NULL, 0, -1)
    return st
"""


@pytest.mark.timeout(600)
def test_public_capi_surface_builds_and_runs(tmp_path, monkeypatch):
    import queue

    from tallyio import (BlockError, MemoryPool, MpmcQueue, NumaScheduler, QueueFullError, RoleError,
                         SchedulerConfig, SpscQueue, WorkStealingDeque)
    from tallyio._ext import status

    api = build_user_extension(tmp_path, "public_capi", _PUBLIC_API, monkeypatch)
    assert api.spsc_roundtrip(SpscQueue(4, dtype="uint64"), 2**64 - 1) == 2**64 - 1
    assert api.mpmc_capacity(MpmcQueue(5, dtype="uint64")) == 8
    d, mine = WorkStealingDeque(16, dtype="uint64"), WorkStealingDeque(16, dtype="uint64")
    oldest, st, moved, newest, left = api.deque_owner_then_thief(d, mine, 9)
    assert (oldest, st, newest) == (0, status.OK, 8) and moved >= 1
    assert left == 9 - 1 - moved - 1 and len(mine) == moved
    # the typed handles keep the boundary checks of the Python objects
    with pytest.raises(TypeError, match="holds Python objects"):
        api.deque_owner_then_thief(WorkStealingDeque(8), mine, 1)
    import threading
    raised = []

    def other_thread():
        try:
            api.deque_owner_then_thief(d, WorkStealingDeque(8, dtype="uint64"), 1)
        except RoleError as exc:
            raised.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert len(raised) == 1    # d's owner (this thread) is alive: another thread may not own it
    pool = MemoryPool(64, 2)
    assert api.pool_alloc_free(pool) == (status.OK, 1, status.OK, status.DOUBLE_FREE)
    with pytest.raises(QueueFullError):
        api.raise_for(status.FULL)
    with pytest.raises(queue.Empty):
        api.raise_for(status.EMPTY)
    with pytest.raises(BlockError):
        api.raise_for(status.DOUBLE_FREE)
    with NumaScheduler(SchedulerConfig(workers_per_numa_node=1)) as scheduler:
        assert api.submit_to(scheduler) == status.OK
    assert api.submit_to(scheduler) == status.CLOSED


_THIEF_PUSH = """
from libc.stdint cimport uint64_t
from tallyio.capi cimport WorkStealingDeque, tio_deque_owner, tio_deque_thief, {accessor}, tio_deque_owner_push

def push_through(WorkStealingDeque d):
    cdef {handle_type} handle
    {accessor}(d, &handle)
    return tio_deque_owner_push(handle, 1)
"""


def _cythonize_only(tmp_path, name, source):
    """Run only the Cython compiler (no C compiler) on `source`, as a user's build
    would, finding tallyio's .pxd files; returns (returncode, output)."""
    import os
    import subprocess
    import sys

    import tallyio
    pytest.importorskip("Cython")
    (tmp_path / f"{name}.pyx").write_text(source)
    root = str(Path(tallyio.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "cython", "-3", "-I", root, f"{name}.pyx"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_pushing_through_a_thief_handle_does_not_compile(tmp_path):
    # control: the same code with an owner handle compiles, so the failure below is
    # the handle's type and nothing else (a missing .pxd would fail both)
    ok, out = _cythonize_only(tmp_path, "owner_push", _THIEF_PUSH.format(
        accessor="tio_deque_owner_of", handle_type="tio_deque_owner"))
    assert ok == 0, out
    rc, out = _cythonize_only(tmp_path, "thief_push", _THIEF_PUSH.format(
        accessor="tio_deque_thief_of", handle_type="tio_deque_thief"))
    assert rc != 0
    assert "Cannot assign type 'tio_deque_thief' to 'tio_deque_owner'" in out, out
