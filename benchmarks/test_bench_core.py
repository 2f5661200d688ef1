"""pytest-benchmark micro-benchmarks: per-call costs of the core from Python,
each next to the stdlib peer a user would otherwise pick (same group).

Not part of the normal test run (testpaths = tests). Run and compare:

    pytest benchmarks --benchmark-autosave              # saves .benchmarks/...
    pytest benchmarks --benchmark-compare               # against the last save
    pytest benchmarks --benchmark-compare=0001 --benchmark-compare-fail=median:10%

CI runs them once with --benchmark-disable: that proves they run, it times nothing.
Each benchmark times a loop of OPS operations, so the harness's own per-call
overhead is amortised; figures are per OPS operations.
"""
import collections
import queue

import numpy as np
import pytest

from tallyio import MemoryPool, MpmcQueue, SpscQueue, Steal, WorkStealingDeque

OPS = 1000
ITEM = object()


def _roundtrips(put, get):
    def run():
        for _ in range(OPS):
            put(ITEM)
            get()
    return run


@pytest.mark.benchmark(group="queue round trip (put + get), x1000")
@pytest.mark.parametrize("kind", ["SpscQueue", "MpmcQueue", "queue.SimpleQueue", "collections.deque"])
def test_queue_roundtrip(benchmark, kind):
    if kind == "SpscQueue":
        q = SpscQueue(1024)
        run = _roundtrips(q.put_nowait, q.get_nowait)
    elif kind == "MpmcQueue":
        q = MpmcQueue(1024)
        run = _roundtrips(q.put_nowait, q.get_nowait)
    elif kind == "queue.SimpleQueue":
        q = queue.SimpleQueue()
        run = _roundtrips(q.put, q.get)
    else:
        q = collections.deque()
        run = _roundtrips(q.append, q.popleft)
    benchmark(run)
    assert len(q) == 0 if hasattr(q, "__len__") else q.empty()


@pytest.mark.benchmark(group="deque owner push + pop, x1000")
@pytest.mark.parametrize("kind", ["WorkStealingDeque", "collections.deque"])
def test_deque_push_pop(benchmark, kind):
    d = WorkStealingDeque(1024) if kind == "WorkStealingDeque" else collections.deque()
    push = d.push if kind == "WorkStealingDeque" else d.append
    benchmark(_roundtrips(push, d.pop))
    assert len(d) == 0


@pytest.mark.benchmark(group="steal, x1000")
def test_steal(benchmark):
    d = WorkStealingDeque(2048)
    thief = d.stealer()

    def run():
        for i in range(OPS):
            d.push(i)
        for _ in range(OPS):
            thief.steal()

    benchmark(run)
    assert thief.steal() == (Steal.EMPTY, None)


@pytest.mark.benchmark(group="256-byte buffer, x1000")
@pytest.mark.parametrize("kind", ["MemoryPool alloc+free", "MemoryPool with block()", "bytearray(256)"])
def test_buffer(benchmark, kind):
    pool = MemoryPool(256, 64)
    if kind == "MemoryPool alloc+free":
        alloc, free = pool.alloc, pool.free

        def run():
            for _ in range(OPS):
                free(alloc())
    elif kind == "MemoryPool with block()":
        def run():
            for _ in range(OPS):
                with pool.block():
                    pass
    else:
        def run():
            for _ in range(OPS):
                bytearray(256)
    benchmark(run)
    assert pool.stats().in_use == 0


@pytest.mark.benchmark(group="batch of 4096 uint64 (put_many + get_many)")
@pytest.mark.parametrize("cls", [SpscQueue, MpmcQueue], ids=lambda c: c.__name__)
def test_batch(benchmark, cls):
    q = cls(4096, dtype="uint64")
    src = np.arange(4096, dtype=np.uint64)
    out = np.empty(4096, dtype=np.uint64)

    def run():
        q.put_many(src)
        q.get_many(out)

    benchmark(run)
    assert (out == src).all()
