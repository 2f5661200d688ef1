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

from tallyio import MemoryPool, MpmcQueue, SpscQueue, WorkStealingDeque
from tallyio.bench._figures import Figure, alternate, figures_for
from tallyio.bench._progress import Progress

# ---- Python-level contenders, each runs `calls` iterations of one round trip ----

def _per_call_ns(fn: Callable[[int], None], calls: int) -> float:
    start = perf_counter_ns()
    fn(calls)
    return (perf_counter_ns() - start) / calls


def _put_get_loop(put: Callable[[object], object], get: Callable[[], object], calls: int) -> None:
    """The loop every per-call contender runs, so only the two calls differ."""
    item = object()
    for _ in range(calls):
        put(item)
        get()


def _spsc_roundtrip(calls: int) -> None:
    q = SpscQueue(1024)
    _put_get_loop(q.put_nowait, q.get_nowait, calls)


def _mpmc_roundtrip(calls: int) -> None:
    q = MpmcQueue(1024)
    _put_get_loop(q.put_nowait, q.get_nowait, calls)


def _simplequeue_roundtrip(calls: int) -> None:
    q: queue.SimpleQueue = queue.SimpleQueue()
    _put_get_loop(q.put, q.get, calls)


def _deque_push_pop(calls: int) -> None:
    d = WorkStealingDeque(1024)
    _put_get_loop(d.push, d.pop, calls)


def _collections_deque_append_pop(calls: int) -> None:
    d: collections.deque = collections.deque()
    _put_get_loop(d.append, d.pop, calls)


def _pool_alloc_free(calls: int) -> None:
    pool = MemoryPool(256, 64)
    alloc, free = pool.alloc, pool.free
    for _ in range(calls):
        free(alloc())


def _bytearray_256(calls: int) -> None:
    for _ in range(calls):
        bytearray(256)


def _batch_loop(put_many: Callable[[np.ndarray], object], get_many: Callable[[np.ndarray], object],
                items: int) -> None:
    """Move `items` uint64 items through, 4096 per call each way."""
    src = np.arange(4096, dtype=np.uint64)
    out = np.empty(4096, dtype=np.uint64)
    for _ in range(max(1, items // 4096)):
        put_many(src)
        get_many(out)


def _spsc_batch(items: int) -> None:
    q = SpscQueue(4096, dtype="uint64")
    _batch_loop(q.put_many, q.get_many, items)


def _mpmc_batch(items: int) -> None:
    q = MpmcQueue(4096, dtype="uint64")
    _batch_loop(q.put_many, q.get_many, items)


def _deque_batch(items: int) -> None:
    d = WorkStealingDeque(4096, dtype="uint64")
    _batch_loop(d.push_many, d.pop_many, items)


PYTHON_CASES = [
    # (case, tallyio contender, peer name, peer contender, calls per repetition)
    ("SpscQueue put_nowait+get_nowait", _spsc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("MpmcQueue put_nowait+get_nowait", _mpmc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("WorkStealingDeque push+pop", _deque_push_pop,
     "collections.deque append+pop", _collections_deque_append_pop, 200_000),
    ("MemoryPool alloc+free (256 B)", _pool_alloc_free, "bytearray(256)", _bytearray_256, 200_000),
]
BATCH_CASES = [
    ("SpscQueue put_many+get_many, per item", _spsc_batch, 4096 * 400),
    ("MpmcQueue put_many+get_many, per item", _mpmc_batch, 4096 * 400),
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
                     peer_name: str = peer_name, peer: Callable[[int], None] = peer,
                     calls: int = calls) -> list[Figure]:
            n = max(100, calls // shrink)
            samples = alternate([("tallyio", lambda: {case: _per_call_ns(mine, n)}),
                                 (peer_name, lambda: {case: _per_call_ns(peer, n)})], reps, progress)
            return figures_for("Python level, per call", samples, [(case, case)], unit="ns/op",
                               higher_is_better=False)
        result.append((f"Python level: {case}", per_call))
    for case, fn, items in BATCH_CASES:
        def batch(progress: Progress, case: str = case, fn: Callable[[int], None] = fn,
                  items: int = items) -> list[Figure]:
            n = max(4096, items // shrink)
            samples = alternate([("tallyio", lambda: {case: _per_call_ns(fn, n)})], reps, progress)
            return figures_for("Python level, batch", samples, [(case, case)], unit="ns/op", higher_is_better=False)
        result.append((f"Python level: {case}", batch))
    return result
