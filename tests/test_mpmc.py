"""MpmcQueue: Vyukov's bounded multi-producer multi-consumer ring.

Single-threaded semantics, bad input, refcounts, blocking waits, and stress
tests whose producer/consumer loops run without the GIL on several threads
at once (tallyio._ext._testing), checked for conservation and per-producer
FIFO with numpy.
"""
import doctest
import gc
import queue
import signal
import sys
import threading
import weakref
from collections import deque

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

import tallyio
from tallyio import MpmcQueue, QueueFullError
from tallyio._ext import _testing, mpmc as mpmc_module
from conftest import scaled, run_threads

U64 = np.uint64
MAX_U64 = 2**64 - 1


class Thing:
    """A weak-referenceable payload."""

    def __init__(self, n):
        self.n = n


def test_smoke_objects_fifo():
    q = MpmcQueue(8)
    items = ["a", 1, None, (2, 3), Thing(4)]
    for x in items:
        q.put_nowait(x)
    assert [q.get_nowait() for _ in items] == items


def test_smoke_uint64_fifo_and_extremes():
    q = MpmcQueue(4, dtype="uint64")
    for x in (0, 1, 2**63, MAX_U64):
        q.put(x)
    got = [q.get() for _ in range(4)]
    assert got == [0, 1, 2**63, MAX_U64]
    assert all(type(x) is int for x in got)


def test_exported_from_package():
    assert tallyio.MpmcQueue is MpmcQueue


def test_docstring_examples_run():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(MpmcQueue, "MpmcQueue", globs={"MpmcQueue": MpmcQueue})
    examples = sum(len(t.examples) for t in tests)
    for t in tests:
        runner.run(t)
    assert examples >= 10
    assert runner.failures == 0


def test_layout_indices_on_their_own_lines():
    layout = _testing.mpmc_layout()
    assert layout["enqueue_pos"] == 128
    assert layout["dequeue_pos"] == 256
    assert layout["sizeof"] == 384
    assert layout["slot"] == 16


# ---- is_empty / full / qsize --------------------------------------------------------
@pytest.mark.parametrize("dtype", [object, "uint64"])
def test_is_empty_full_qsize(dtype):
    q = MpmcQueue(4, dtype=dtype)
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    for i in range(4):
        q.put_nowait(i)
        assert q.qsize() == len(q) == i + 1
        assert not q.empty()
    assert q.full()
    q.get_nowait()
    assert not q.full() and q.qsize() == 3


def test_repr():
    q = MpmcQueue(5, dtype="uint64")
    q.put(1)
    assert repr(q) == "MpmcQueue(capacity=8, dtype='uint64') with 1 items"


# ---- capacity / dtype validation ------------------------------------------------------
def test_capacity_one_holds_two():
    # Vyukov's sequence scheme needs two slots: capacity 1 is rounded up to 2.
    q = MpmcQueue(1, dtype="uint64")
    assert q.capacity == 2
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full()


def test_put_nowait_takes_one_positional_argument():
    q = MpmcQueue(2)
    with pytest.raises(TypeError):
        q.put_nowait()
    with pytest.raises(TypeError):
        q.put_nowait(1, 2)
    with pytest.raises(TypeError):
        q.get_nowait(1)
    assert q.empty()


# ---- full / empty and timeouts ----------------------------------------------------------
def test_full_raises_queue_full():
    q = MpmcQueue(2)
    q.put("a")
    q.put("b")
    for attempt in (lambda: q.put_nowait("c"), lambda: q.put("c", block=False),
                    lambda: q.put("c", timeout=0.01), lambda: q.put("c", True, 0)):
        with pytest.raises(QueueFullError, match=r"MpmcQueue\(capacity=2\) is full"):
            attempt()
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    assert [q.get(), q.get()] == ["a", "b"]


def test_empty_raises_queue_empty():
    q = MpmcQueue(2)
    for attempt in (q.get_nowait, lambda: q.get(block=False),
                    lambda: q.get(timeout=0.01), lambda: q.get(True, 0)):
        with pytest.raises(queue.Empty, match="is empty"):
            attempt()


@pytest.mark.parametrize("timeout, exc", [(-1, ValueError), (-0.5, ValueError),
                                          (float("nan"), ValueError), ("1", TypeError)])
def test_bad_timeout(timeout, exc):
    q = MpmcQueue(2)
    with pytest.raises(exc):
        q.get(timeout=timeout)
    item = object()
    before = sys.getrefcount(item)
    with pytest.raises(exc):
        q.put(item, timeout=timeout)
    assert sys.getrefcount(item) == before
    assert q.empty()


def test_nonblocking_ignores_timeout_like_stdlib():
    q = MpmcQueue(2)
    q.put(1, block=False, timeout=-1)
    assert q.get(block=False, timeout=-1) == 1


def test_blocking_get_woken_by_other_thread():
    q = MpmcQueue(4)
    timer = threading.Timer(0.05, q.put, args=("late",))
    timer.start()
    try:
        assert q.get(timeout=30) == "late"
    finally:
        timer.join()
    timer = threading.Timer(0.05, q.put, args=("later",))
    timer.start()
    try:
        assert q.get() == "later"   # no timeout: waits as long as needed
    finally:
        timer.join()


def test_blocking_put_woken_by_other_thread():
    q = MpmcQueue(2, dtype="uint64")
    q.put(1)
    q.put(2)
    got = []
    timer = threading.Timer(0.05, lambda: got.append(q.get()))
    timer.start()
    try:
        q.put(3, timeout=30)
    finally:
        timer.join()
    assert got == [1]
    assert [q.get(), q.get()] == [2, 3]


class _Interrupt(Exception):
    pass


def _interrupt_after(seconds):
    def handler(signum, frame):
        raise _Interrupt()
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _stop_interrupt(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_interrupted_blocking_put_keeps_nothing():
    q = MpmcQueue(2)
    q.put("a")
    q.put("b")
    item = Thing(1)
    before = sys.getrefcount(item)
    old = _interrupt_after(0.05)
    try:
        with pytest.raises(_Interrupt):
            q.put(item)              # waits forever unless interrupted
    finally:
        _stop_interrupt(old)
    assert sys.getrefcount(item) == before
    assert [q.get_nowait(), q.get_nowait()] == ["a", "b"]
    assert q.empty()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_interrupted_blocking_get_loses_nothing():
    q = MpmcQueue(2)
    old = _interrupt_after(0.05)
    try:
        with pytest.raises(_Interrupt):
            q.get()
    finally:
        _stop_interrupt(old)
    q.put("x")
    assert q.get_nowait() == "x"


# ---- refcounts / destructors ------------------------------------------------------------
def test_destructor_after_wrap_releases_leftovers():
    q = _testing.mpmc_queue_at(4, object, 2**64 - 2)
    things = [Thing(i) for i in range(3)]
    refs = [weakref.ref(t) for t in things]
    for t in things:
        q.put(t)
    del things, t, q
    gc.collect()
    assert all(r() is None for r in refs)


# ---- batch methods ----------------------------------------------------------------------
def test_put_many_get_many_prefix():
    q = MpmcQueue(8, dtype="uint64")
    src = np.arange(100, 112, dtype=U64)
    assert q.put_many(src) == 8
    assert q.full()
    assert q.put_many(src) == 0
    out = np.full(5, 7, dtype=U64)
    assert q.get_many(out) == 5
    assert out.tolist() == list(range(100, 105))
    out = np.full(6, 7, dtype=U64)
    assert q.get_many(out) == 3
    assert out.tolist() == [105, 106, 107, 7, 7, 7]   # only a prefix is written
    assert q.get_many(out) == 0


def test_batch_and_single_interleave():
    q = MpmcQueue(16, dtype="uint64")
    q.put(1)
    assert q.put_many(np.array([2, 3, 4], dtype=U64)) == 3
    q.put(5)
    assert q.get() == 1
    out = np.zeros(3, dtype=U64)
    assert q.get_many(out) == 3 and out.tolist() == [2, 3, 4]
    assert q.get() == 5


# ---- wrap of the free-running positions --------------------------------------------------
@pytest.mark.parametrize("capacity", [2, 4, 64])
def test_positions_wrap_single_thread(capacity):
    start = 2**64 - 3 * capacity // 2
    q = _testing.mpmc_queue_at(capacity, "uint64", start)
    assert _testing.mpmc_positions(q) == (start, start)
    model = deque()
    nxt = 0
    for step in range(6 * capacity):
        # fill to capacity, drain half, and so on, across the 2**64 boundary
        while len(model) < capacity:
            q.put_nowait(nxt)
            model.append(nxt)
            nxt += 1
        with pytest.raises(QueueFullError):
            q.put_nowait(0)
        assert q.qsize() == capacity and q.full()
        for _ in range(capacity // 2 + step % 2):
            assert q.get_nowait() == model.popleft()
        assert q.qsize() == len(model)
    enq, deq = _testing.mpmc_positions(q)
    assert enq < start and deq < start   # both wrapped past 2**64
    out = np.zeros(capacity, dtype=U64)
    assert q.get_many(out) == len(model)
    assert out[:len(model)].tolist() == list(model)


def test_batch_wrap_single_thread():
    q = _testing.mpmc_queue_at(8, "uint64", 2**64 - 5)
    src = np.arange(1000, dtype=U64)
    out = np.zeros(8, dtype=U64)
    done = 0
    got = []
    while done < len(src):
        done += q.put_many(src[done:done + 5])
        n = q.get_many(out[:3])
        got.extend(out[:n].tolist())
    while (n := q.get_many(out)):
        got.extend(out[:n].tolist())
    assert got == src.tolist()


# ---- nogil stress -----------------------------------------------------------------------
def _check_records(records, producers, per_producer):
    allv = np.sort(np.concatenate(records))
    expected = np.sort(np.concatenate(
        [(np.uint64(p) << np.uint64(32)) + np.arange(per_producer, dtype=U64)
         for p in range(producers)]))
    assert allv.shape == expected.shape
    assert np.array_equal(allv, expected), "an item was lost or duplicated"
    for rec in records:
        source = rec >> np.uint64(32)
        for p in range(producers):
            seq = (rec[source == p] & np.uint64(0xFFFFFFFF)).astype(np.int64)
            assert np.all(np.diff(seq) > 0), f"producer {p}'s items out of order"


# A helper loop gives up after this many seconds without progress, so a lost
# item fails the test instead of hanging it.
PATIENCE = 20.0


def _check_counts(results, producers, per_producer, quota):
    pushed = [r[3] for r in results[:producers]]
    popped = [r[3] for r in results[producers:]]
    assert pushed == [per_producer] * producers, f"producers stalled: {pushed}"
    assert popped == [quota] * (len(results) - producers), f"consumers stalled: {popped}"


def _stress(q, producers, consumers, per_producer):
    total = producers * per_producer
    assert total % consumers == 0
    quota = total // consumers
    gate = _testing.StartGate(producers + consumers)
    outs = [np.zeros(quota, dtype=U64) for _ in range(consumers)]
    jobs = [(_testing.mpmc_produce, (q, gate, p << 32, per_producer, PATIENCE))
            for p in range(producers)]
    jobs += [(_testing.mpmc_consume, (q, gate, quota, outs[c], PATIENCE))
             for c in range(consumers)]
    results = run_threads(*jobs)
    _check_counts(results, producers, per_producer, quota)
    assert q.empty()
    _check_records(outs, producers, per_producer)


@pytest.mark.concurrency
@pytest.mark.parametrize("capacity", [2, 64, 1024])
def test_mpmc_stress_4x4(capacity):
    per = scaled(250_000 if capacity > 2 else 50_000, minimum=400)
    _stress(MpmcQueue(capacity, dtype="uint64"), 4, 4, per)


@pytest.mark.concurrency
def test_mpmc_stress_wrap():
    per = scaled(150_000, minimum=400)
    q = _testing.mpmc_queue_at(32, "uint64", 2**64 - 2 * per)   # wraps mid-run
    _stress(q, 4, 4, per)
    enq, deq = _testing.mpmc_positions(q)
    assert enq == deq == 2 * per      # (2**64 - 2*per + 4*per) mod 2**64


@pytest.mark.concurrency
@pytest.mark.parametrize("start", [0, 2**64 - 3000])
def test_mpmc_stress_batches(start):
    producers, consumers = 3, 3
    per = scaled(300_000, minimum=600) // 3 * 3
    q = _testing.mpmc_queue_at(256, "uint64", start)
    quota = producers * per // consumers
    gate = _testing.StartGate(producers + consumers)
    outs = [np.zeros(quota, dtype=U64) for _ in range(consumers)]
    batches = [1, 7, 64]
    jobs = [(_testing.mpmc_produce_many, (q, gate, p << 32, per, batches[p], PATIENCE))
            for p in range(producers)]
    jobs += [(_testing.mpmc_consume_many, (q, gate, quota, batches[c], outs[c], PATIENCE))
             for c in range(consumers)]
    results = run_threads(*jobs)
    _check_counts(results, producers, per, quota)
    assert q.empty()
    _check_records(outs, producers, per)


@pytest.mark.concurrency
def test_mpmc_stress_mixed_single_and_batch():
    per = scaled(200_000, minimum=400) // 2 * 2
    q = MpmcQueue(128, dtype="uint64")
    gate = _testing.StartGate(4)
    outs = [np.zeros(per, dtype=U64) for _ in range(2)]
    results = run_threads(*[
        (_testing.mpmc_produce, (q, gate, 0, per, PATIENCE)),
        (_testing.mpmc_produce_many, (q, gate, 1 << 32, per, 32, PATIENCE)),
        (_testing.mpmc_consume, (q, gate, per, outs[0], PATIENCE)),
        (_testing.mpmc_consume_many, (q, gate, per, 16, outs[1], PATIENCE))])
    _check_counts(results, 2, per, per)
    assert q.empty()
    _check_records(outs, 2, per)


@pytest.mark.concurrency
def test_stampede_python_objects_blocking():
    # Python-level put/get of objects from 4+4 threads through a tiny queue:
    # the GIL serialises the calls, but blocked puts/gets wait without it, so
    # wake-ups and reference ownership are exercised across threads.
    per = scaled(3000, minimum=200)
    q = MpmcQueue(4)
    sentinel = object()
    seen = [[] for _ in range(4)]

    def produce(p):
        for i in range(per):
            q.put((p, i), timeout=60)

    def consume(c):
        while True:
            x = q.get(timeout=60)
            if x is sentinel:
                return
            seen[c].append(x)

    consumers = [threading.Thread(target=consume, args=(c,)) for c in range(4)]
    for t in consumers:
        t.start()
    run_threads(*[(produce, (p,)) for p in range(4)])
    for _ in consumers:
        q.put(sentinel, timeout=60)
    for t in consumers:
        t.join(60)
    assert not any(t.is_alive() for t in consumers)
    everything = sorted(x for s in seen for x in s)
    assert everything == [(p, i) for p in range(4) for i in range(per)]
    for s in seen:
        for p in range(4):
            mine = [i for (pp, i) in s if pp == p]
            assert mine == sorted(mine)


# ---- model-based: single-threaded semantics vs collections.deque --------------------------
class MpmcVsDeque(RuleBasedStateMachine):
    @initialize(capacity=st.integers(1, 9), as_u64=st.booleans(),
                start=st.sampled_from([0, 2**63, 2**64 - 5]))
    def build(self, capacity, as_u64, start):
        self.as_u64 = as_u64
        self.q = _testing.mpmc_queue_at(capacity, "uint64" if as_u64 else object, start)
        self.cap = self.q.capacity
        assert self.cap == max(2, 1 << (capacity - 1).bit_length())
        self.model = deque()

    def _item(self, n):
        return n if self.as_u64 else ("item", n)

    @rule(n=st.integers(0, MAX_U64), how=st.sampled_from(["nowait", "put0", "noblock"]))
    def put(self, n, how):
        x = self._item(n)
        call = {"nowait": lambda: self.q.put_nowait(x),
                "put0": lambda: self.q.put(x, timeout=0),
                "noblock": lambda: self.q.put(x, block=False)}[how]
        if len(self.model) < self.cap:
            call()
            self.model.append(x)
        else:
            with pytest.raises(QueueFullError):
                call()

    @rule(how=st.sampled_from(["nowait", "get0", "noblock"]))
    def get(self, how):
        call = {"nowait": self.q.get_nowait,
                "get0": lambda: self.q.get(timeout=0),
                "noblock": lambda: self.q.get(block=False)}[how]
        if self.model:
            assert call() == self.model.popleft()
        else:
            with pytest.raises(queue.Empty):
                call()

    @precondition(lambda self: self.as_u64)
    @rule(values=st.lists(st.integers(0, MAX_U64), max_size=12))
    def put_many(self, values):
        n = self.q.put_many(np.array(values, dtype=U64))
        assert n == min(len(values), self.cap - len(self.model))
        self.model.extend(values[:n])

    @precondition(lambda self: self.as_u64)
    @rule(size=st.integers(0, 12))
    def get_many(self, size):
        out = np.zeros(size, dtype=U64)
        n = self.q.get_many(out)
        assert n == min(size, len(self.model))
        assert out[:n].tolist() == [self.model.popleft() for _ in range(n)]

    @invariant()
    def sizes_agree(self):
        if hasattr(self, "q"):
            assert self.q.qsize() == len(self.q) == len(self.model)
            assert self.q.empty() == (not self.model)
            assert self.q.full() == (len(self.model) == self.cap)


MpmcVsDeque.TestCase.settings = settings(max_examples=80, stateful_step_count=40,
                                         deadline=None)
test_mpmc_vs_deque = MpmcVsDeque.TestCase


def test_stub_lists_public_names():
    import pathlib
    stub = pathlib.Path(mpmc_module.__file__).with_name("mpmc.pyi")
    if not stub.exists():  # installed without stubs
        pytest.skip("no stub next to the module")
    text = stub.read_text()
    for name in ("put_nowait", "get_nowait", "put_many", "get_many", "qsize",
                 "empty", "full", "capacity", "dtype"):
        assert name in text
