"""The ``core`` group: the queues, the deque and the pool.

C-level figures are nanoseconds per operation inside nogil loops
(``tallyio._ext._testing.bench_*``); Python-level figures are the cost per
call from Python next to the stdlib peer (``queue.SimpleQueue``,
``collections.deque``, ``bytearray``).
"""
from __future__ import annotations

import collections
import queue
from time import perf_counter_ns
from typing import Callable

import numpy as np

from tallyio.bench._figures import Figure, alternate, figures_for
from tallyio.bench._progress import Progress

# ---- Python-level contenders, each runs `calls` iterations of one round trip ----

def _per_call_ns(fn: Callable[[int], None], calls: int) -> float:
    start = perf_counter_ns()
    fn(calls)
    return (perf_counter_ns() - start) / calls


def _spsc_roundtrip(calls: int) -> None:
    from tallyio import SpscQueue
    q = SpscQueue(1024)
    put, get, item = q.put_nowait, q.get_nowait, object()
    for _ in range(calls):
        put(item)
        get()


def _mpmc_roundtrip(calls: int) -> None:
    from tallyio import MpmcQueue
    q = MpmcQueue(1024)
    put, get, item = q.put_nowait, q.get_nowait, object()
    for _ in range(calls):
        put(item)
        get()


def _simplequeue_roundtrip(calls: int) -> None:
    q = queue.SimpleQueue()
    put, get, item = q.put, q.get, object()
    for _ in range(calls):
        put(item)
        get()


def _deque_push_pop(calls: int) -> None:
    from tallyio import WorkStealingDeque
    d = WorkStealingDeque(1024)
    push, pop, item = d.push, d.pop, object()
    for _ in range(calls):
        push(item)
        pop()


def _collections_deque_append_pop(calls: int) -> None:
    d = collections.deque()
    push, pop, item = d.append, d.pop, object()
    for _ in range(calls):
        push(item)
        pop()


def _pool_alloc_free(calls: int) -> None:
    from tallyio import MemoryPool
    pool = MemoryPool(256, 64)
    alloc, free = pool.alloc, pool.free
    for _ in range(calls):
        free(alloc())


def _bytearray_256(calls: int) -> None:
    for _ in range(calls):
        bytearray(256)


def _batch(cls_name: str) -> Callable[[int], None]:
    def run_batch(items: int) -> None:
        import tallyio
        cls = getattr(tallyio, cls_name)
        q = cls(4096, dtype="uint64")
        src = np.arange(4096, dtype=np.uint64)
        out = np.empty(4096, dtype=np.uint64)
        put, get = q.put_many, q.get_many
        for _ in range(max(1, items // 4096)):
            put(src)
            get(out)
    return run_batch


def _deque_batch(items: int) -> None:
    from tallyio import WorkStealingDeque
    d = WorkStealingDeque(4096, dtype="uint64")
    src = np.arange(4096, dtype=np.uint64)
    out = np.empty(4096, dtype=np.uint64)
    for _ in range(max(1, items // 4096)):
        d.push_many(src)
        d.pop_many(out)


PYTHON_CASES = [
    # (case, tallyio contender, peer name, peer contender, calls per repetition)
    ("SpscQueue put_nowait+get_nowait", _spsc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("MpmcQueue put_nowait+get_nowait", _mpmc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("WorkStealingDeque push+pop", _deque_push_pop, "collections.deque append+pop", _collections_deque_append_pop, 200_000),
    ("MemoryPool alloc+free (256 B)", _pool_alloc_free, "bytearray(256)", _bytearray_256, 200_000),
]
BATCH_CASES = [
    ("SpscQueue put_many+get_many, per item", _batch("SpscQueue"), 4096 * 400),
    ("MpmcQueue put_many+get_many, per item", _batch("MpmcQueue"), 4096 * 400),
    ("WorkStealingDeque push_many+pop_many, per item", _deque_batch, 4096 * 400),
]


Section = tuple[str, Callable[[Progress], list[Figure]]]


def sections(mode: str) -> list[Section]:
    """The core group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 3, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    result: list[Section] = []

    # C level: each bench_<component>(n) returns {case: ns per op}
    c_ops = max(1000, 2_000_000 // shrink)
    for component in ("spsc", "mpmc", "deque", "pool"):
        def c_level(progress: Progress, component: str = component) -> list[Figure]:
            from tallyio._ext import _testing
            fn = getattr(_testing, f"bench_{component}")
            samples = alternate([("tallyio", lambda: fn(c_ops))], reps, progress)
            cases = [(case, case) for case in samples["tallyio"]]
            return figures_for(f"C level, {component}", samples, cases, unit="ns/op", higher_is_better=False)
        result.append((f"C level: {component}", c_level))

    # Python level, alternating tallyio and the peer within each repetition
    for case, mine, peer_name, peer, calls in PYTHON_CASES:
        def per_call(progress: Progress, case: str = case, mine: Callable[[int], None] = mine,
                     peer_name: str = peer_name, peer: Callable[[int], None] = peer, calls: int = calls) -> list[Figure]:
            n = max(100, calls // shrink)
            samples = alternate([("tallyio", lambda: {case: _per_call_ns(mine, n)}),
                                 (peer_name, lambda: {case: _per_call_ns(peer, n)})], reps, progress)
            return figures_for("Python level, per call", samples, [(case, case)], unit="ns/op",
                               higher_is_better=False)
        result.append((f"Python level: {case}", per_call))
    for case, fn, items in BATCH_CASES:
        def batch(progress: Progress, case: str = case, fn: Callable[[int], None] = fn, items: int = items) -> list[Figure]:
            n = max(4096, items // shrink)
            samples = alternate([("tallyio", lambda: {case: _per_call_ns(fn, n)})], reps, progress)
            return figures_for("Python level, batch", samples, [(case, case)], unit="ns/op", higher_is_better=False)
        result.append((f"Python level: {case}", batch))
    return result
