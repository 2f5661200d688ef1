"""SpscQueue: semantics, bad input, roles, reference counts, and the
cross-thread stress tests (nogil producer and consumer loops on two threads,
with the free-running indices started near 2**64 so they wrap)."""
import collections
import gc
import math
import queue
import signal
import sys
import threading
import time
import weakref

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from conftest import scaled, run_threads
from tallyio import QueueFullError, RoleError, SpscQueue, TallyioError
from tallyio._ext import _testing

U64_MAX = 2**64 - 1


class Token:
    """A weak-referenceable item."""


# ---- smoke / is_empty ---------------------------------------------------------
def test_smoke():
    q = SpscQueue(4)
    a, b = Token(), "two"
    q.put_nowait(a)
    q.put(b)
    assert q.get_nowait() is a
    assert q.get() == "two"
    assert q.dtype == "object"
    with pytest.raises(queue.Empty):
        q.get_nowait()


@pytest.mark.parametrize("start", [0, 2**63, U64_MAX - 2, U64_MAX])
def test_is_empty_full_qsize(start):
    q = SpscQueue(4, _start_index=start)
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    for i in range(4):
        q.put_nowait(i)
        assert q.qsize() == len(q) == i + 1
        assert not q.empty()
    assert q.full()
    with pytest.raises(QueueFullError):
        q.put_nowait(4)
    assert q.qsize() == 4
    for i in range(4):
        assert q.get_nowait() == i
        assert q.qsize() == 3 - i
        assert not q.full()
    assert q.empty()


def test_repr():
    q = SpscQueue(5, dtype="uint64")
    q.put_nowait(1)
    assert repr(q) == "<tallyio.SpscQueue capacity=8 dtype=uint64 qsize=1>"


def test_ring_layout_keeps_indices_on_separate_lines():
    layout = _testing.spsc_layout(SpscQueue(8))
    assert layout["base_mod_line"] == 0
    lines = {layout[f] // 128 for f in ("capacity", "tail", "head_cache", "head", "tail_cache")}
    assert len(lines) == 5
    assert layout["slots"] % 128 == 0 and layout["slots"] >= layout["header_size"]


# ---- capacity and dtype -------------------------------------------------------
@pytest.mark.parametrize("capacity, ok", [(1, True), (8, True), (2**20, True), (0, False), (3, False),
                                          (1000, False), (2**31, False), (2**63, False)])
def test_c_constructor_needs_a_power_of_two_within_the_maximum(capacity, ok):
    assert _testing.spsc_c_new_accepts(capacity) is ok


# ---- batch methods ---------------------------------------------------------------
def test_put_many_get_many_prefix_and_wrap():
    # indices start 3 below 2**64 and the ring position near its end: batches
    # cross both the index wrap and the end of the slot array
    q = SpscQueue(8, dtype="uint64", _start_index=U64_MAX - 2)
    assert q.put_many(np.arange(5, dtype=np.uint64)) == 5
    out = np.zeros(3, dtype=np.uint64)
    assert q.get_many(out) == 3 and out.tolist() == [0, 1, 2]
    assert q.put_many(np.arange(5, 12, dtype=np.uint64)) == 6        # only 6 of 7 fit
    assert q.full() and q.qsize() == 8
    assert q.put_many(np.arange(3, dtype=np.uint64)) == 0
    out = np.full(10, 99, dtype=np.uint64)
    assert q.get_many(out) == 8
    assert out.tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 99, 99]     # untouched past the prefix
    assert q.get_many(out) == 0 and q.empty()
    assert q.get_many(np.empty(1000, dtype=np.uint64)) == 0       # the no-GIL path, empty
    assert q.put_many(np.arange(1000, dtype=np.uint64)) == 8      # the no-GIL path, prefix
    assert q.put_many(np.arange(1000, dtype=np.uint64)) == 0      # the no-GIL path, full
    assert q.get_many(np.empty(1000, dtype=np.uint64)) == 8
    assert q.put_many(np.empty(0, dtype=np.uint64)) == 0
    assert q.get_many(np.empty(0, dtype=np.uint64)) == 0


def test_batch_and_single_item_methods_mix():
    q = SpscQueue(16, dtype="uint64")
    q.put_nowait(1)
    q.put_many(np.array([2, 3], dtype=np.uint64))
    q.put(4)
    assert q.get_nowait() == 1
    out = np.empty(2, dtype=np.uint64)
    assert q.get_many(out) == 2 and out.tolist() == [2, 3]
    assert q.get() == 4


# ---- errors, timeouts and blocking -----------------------------------------------
def test_queue_full_error_is_queue_full_and_tallyio_error():
    q = SpscQueue(1)
    q.put_nowait(0)
    for attempt in (lambda: q.put_nowait(1), lambda: q.put(1, block=False),
                    lambda: q.put(1, timeout=0), lambda: q.put(1, timeout=0.01)):
        with pytest.raises(queue.Full) as info:
            attempt()
        assert isinstance(info.value, QueueFullError) and isinstance(info.value, TallyioError)
        assert "SpscQueue(capacity=1) is full" in str(info.value)
    assert q.get_nowait() == 0


def test_empty_raises_queue_empty():
    q = SpscQueue(2)
    for attempt in (q.get_nowait, lambda: q.get(block=False), lambda: q.get(timeout=0),
                    lambda: q.get(False, 5.0)):
        with pytest.raises(queue.Empty, match="SpscQueue"):
            attempt()


@pytest.mark.parametrize("timeout, exc", [(-1, ValueError), (-0.001, ValueError), (math.nan, ValueError),
                                          ("1", TypeError), ([], TypeError)])
def test_bad_timeout(timeout, exc):
    q = SpscQueue(2)
    with pytest.raises(exc):
        q.get(timeout=timeout)
    with pytest.raises(exc):
        q.put(Token(), timeout=timeout)
    assert q.empty()


def test_blocking_get_times_out_after_waiting():
    q = SpscQueue(2)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    assert time.monotonic() - start >= 0.049


def test_blocking_put_times_out_after_waiting():
    q = SpscQueue(1)
    q.put_nowait(0)
    start = time.monotonic()
    with pytest.raises(QueueFullError):
        q.put(1, timeout=0.05)
    assert time.monotonic() - start >= 0.049
    assert q.qsize() == 1


def test_blocking_get_wakes_when_another_thread_puts():
    q = SpscQueue(2)
    item = Token()

    def late_producer():
        time.sleep(0.05)
        q.put_nowait(item)

    t = threading.Thread(target=late_producer)
    t.start()
    try:
        assert q.get(timeout=30) is item       # waits without the GIL held
    finally:
        t.join()


def test_blocking_put_wakes_when_another_thread_gets():
    q = SpscQueue(1)
    q.put_nowait("first")
    got = []

    def late_consumer():
        time.sleep(0.05)
        got.append(q.get_nowait())

    t = threading.Thread(target=late_consumer)
    t.start()
    try:
        q.put("second")                        # timeout=None: waits for room
    finally:
        t.join()
    assert got == ["first"]
    assert q.get_nowait() == "second"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_interrupted_blocking_put_keeps_nothing():
    class Interrupt(Exception):
        pass

    def on_alarm(signum, frame):
        raise Interrupt

    q = SpscQueue(1)
    q.put_nowait("filler")
    item = Token()
    before = sys.getrefcount(item)
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupt):
            q.put(item)                        # would wait forever
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    after = sys.getrefcount(item)
    assert after == before
    assert q.get_nowait() == "filler" and q.empty()


# ---- roles --------------------------------------------------------------------------
def _hold_role_in_thread(action):
    """Start a thread that performs `action` then stays alive until released."""
    done, release, errors = threading.Event(), threading.Event(), []

    def body():
        try:
            action()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        done.set()
        release.wait(30)

    t = threading.Thread(target=body)
    t.start()
    assert done.wait(30)
    assert not errors, errors
    return t, release


def test_second_live_producer_raises_role_error_then_takes_over():
    q = SpscQueue(8, dtype="uint64")
    t, release = _hold_role_in_thread(lambda: q.put_nowait(1))
    try:
        for attempt in (lambda: q.put_nowait(2), lambda: q.put(2), lambda: q.put(2, timeout=0),
                        lambda: q.put_many(np.arange(2, dtype=np.uint64))):
            with pytest.raises(RoleError, match="producer role of SpscQueue") as info:
                attempt()
            assert isinstance(info.value, RuntimeError) and isinstance(info.value, TallyioError)
        assert q.qsize() == 1
        assert q.get_nowait() == 1              # the consumer role is still free
    finally:
        release.set()
        t.join()
    q.put_nowait(3)                             # the holder exited: the role passes on
    assert q.get_nowait() == 3


def test_second_live_consumer_raises_role_error_then_takes_over():
    q = SpscQueue(8, dtype="uint64")
    q.put_many(np.arange(4, dtype=np.uint64))
    t, release = _hold_role_in_thread(lambda: q.get_nowait())
    try:
        for attempt in (q.get_nowait, q.get, lambda: q.get(timeout=0),
                        lambda: q.get_many(np.empty(2, dtype=np.uint64))):
            with pytest.raises(RoleError, match="consumer role of SpscQueue"):
                attempt()
        assert q.qsize() == 3
        q.put_nowait(4)                         # the producer role is still free
        assert q.qsize() == 4 and not q.empty() and len(q) == 4   # any thread may look
    finally:
        release.set()
        t.join()
    assert q.get_nowait() == 1
    out = np.empty(8, dtype=np.uint64)
    assert q.get_many(out) == 3 and out[:3].tolist() == [2, 3, 4]


def test_same_thread_may_be_producer_and_consumer_of_several_queues():
    queues = [SpscQueue(2) for _ in range(3)]
    for i, q in enumerate(queues):
        q.put_nowait(i)
    assert [q.get_nowait() for q in queues] == [0, 1, 2]


# ---- reference counts / destructors --------------------------------------------
def test_queued_items_are_held_and_popped_items_owned_by_the_caller():
    q = SpscQueue(4)
    q.put_nowait(Token())                       # only the queue refers to it
    gc.collect()
    got = q.get_nowait()
    ref = weakref.ref(got)
    assert isinstance(got, Token)
    del got
    assert ref() is None


def test_destroyed_queue_releases_what_it_still_holds():
    items = [Token() for _ in range(10)]
    refs = [weakref.ref(x) for x in items]
    q = SpscQueue(16, _start_index=U64_MAX - 4)   # the queued run crosses the index wrap
    for x in items:
        q.put_nowait(x)
    del x
    survivor = q.get_nowait()
    assert survivor is items[0]
    del items
    assert all(r() is not None for r in refs)     # the queue keeps the other nine alive
    del q
    assert [r() is None for r in refs[1:]] == [True] * 9
    assert refs[0]() is survivor                  # popped before: not released again
    unique = object()
    q = SpscQueue(4)
    q.put_nowait(unique)
    before = sys.getrefcount(unique)
    del q
    after = sys.getrefcount(unique)
    assert after == before - 1


# ---- the harness can fail ------------------------------------------------------
def test_order_checker_reports_misordered_items():
    q = SpscQueue(8, dtype="uint64")
    for value in (0, 2, 1, 3):
        q.put_nowait(value)
    report = _testing.spsc_consume_check(q, 0, 4, _testing.StartGate(1))
    assert report == {"received": 4, "misordered": 2, "first_bad_position": 1, "first_bad_item": 2}
    q.put_many(np.array([0, 1, 5], dtype=np.uint64))
    report = _testing.spsc_consume_batches_check(q, 0, 3, 2, 7, _testing.StartGate(1))
    assert report["misordered"] == 1 and report["first_bad_position"] == 2


# ---- the spsc stress tests: nogil producer and consumer on two threads ---------
@pytest.mark.concurrency
def test_spsc_stress_in_order_through_64_slots_across_index_wrap():
    n = scaled(10_000_000)
    # both indices start so that they pass 2**64 - 1 -> 0 mid-run
    q = SpscQueue(64, dtype="uint64", _start_index=2**64 - n // 2)
    gate = _testing.StartGate(2)
    sent, report = run_threads((_testing.spsc_produce, (q, 0, n, gate)),
                               (_testing.spsc_consume_check, (q, 0, n, gate)))
    assert sent == n
    assert report == {"received": n, "misordered": 0, "first_bad_position": -1, "first_bad_item": -1}
    assert q.empty()


@pytest.mark.concurrency
def test_spsc_stress_object_queue_after_nogil_traffic():
    # the same ring type carrying objects: after the uint64 traffic above
    # proves order, check that objects survive a cross-thread hand-off
    n = scaled(200_000, minimum=1000)
    q = SpscQueue(64)
    items = [Token() for _ in range(256)]
    received = []

    def produce():
        for i in range(n):
            q.put(items[i % 256], timeout=60)

    def consume():
        for _ in range(n):
            received.append(q.get(timeout=60))

    first = items[0]
    before = sys.getrefcount(first)
    run_threads((produce, ()), (consume, ()))
    assert len(received) == n
    in_order = all(received[i] is items[i % 256] for i in range(n))
    assert in_order
    received.clear()
    after = sys.getrefcount(first)           # (outside assert: pytest's rewrite adds a reference)
    assert after == before
    assert q.empty()


@pytest.mark.concurrency
@pytest.mark.parametrize("max_chunk", [1, 64, 200])
def test_spsc_stress_batches_in_order(max_chunk, seed):
    n = scaled(4_000_000)
    q = SpscQueue(64, dtype="uint64", _start_index=2**64 - n // 3)
    gate = _testing.StartGate(2)
    sent, report = run_threads(
        (_testing.spsc_produce_batches, (q, 1000, n, max_chunk, seed, gate)),
        (_testing.spsc_consume_batches_check, (q, 1000, n, max_chunk, seed + 1, gate)))
    assert sent == n
    assert report == {"received": n, "misordered": 0, "first_bad_position": -1, "first_bad_item": -1}
    assert q.empty()


@pytest.mark.concurrency
def test_put_many_get_many_from_two_threads_in_order():
    # the Python batch methods copy without the GIL for chunks >= 256 items,
    # and a call that moves nothing yields so the polling peer gets the GIL
    n = scaled(2_000_000, minimum=20_000)
    chunk = 4096
    q = SpscQueue(4096, dtype="uint64", _start_index=2**64 - 3000)
    src = np.arange(n, dtype=np.uint64)
    dst = np.zeros(n, dtype=np.uint64)

    def produce():
        sent = 0
        deadline = time.monotonic() + 120
        while sent < n and time.monotonic() < deadline:
            sent += q.put_many(src[sent:sent + chunk])
        return sent

    def consume():
        got = 0
        deadline = time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            got += q.get_many(dst[got:got + chunk])
        return got

    assert run_threads((produce, ()), (consume, ())) == [n, n]
    assert np.array_equal(dst, src)


def test_bench_harness_runs():
    result = _testing.bench_spsc(10_000)
    assert set(result) >= {"push+pop same thread", "cross-thread per item",
                           "cross-thread batch of 64 per item"}
    assert all(v > 0 for v in result.values())


# ---- model check against collections.deque ---------------------------------------
class SpscQueueModel(RuleBasedStateMachine):
    """Single-threaded semantics: a bounded FIFO, checked against a deque."""

    @initialize(capacity=st.integers(1, 17), uint64=st.booleans(),
                start=st.sampled_from([0, 2**63, U64_MAX - 5, U64_MAX]))
    def build(self, capacity, uint64, start):
        self.uint64 = uint64
        self.q = SpscQueue(capacity, dtype="uint64" if uint64 else object, _start_index=start)
        self.capacity = 1 << (capacity - 1).bit_length()
        assert self.q.capacity == self.capacity
        self.model = collections.deque()

    def make(self, value):
        return value if self.uint64 else Token()

    @rule(value=st.integers(0, U64_MAX), how=st.sampled_from(["nowait", "block=False", "timeout=0"]))
    def put(self, value, how):
        item = self.make(value)
        call = {"nowait": lambda: self.q.put_nowait(item),
                "block=False": lambda: self.q.put(item, block=False),
                "timeout=0": lambda: self.q.put(item, timeout=0)}[how]
        if len(self.model) == self.capacity:
            with pytest.raises(QueueFullError):
                call()
        else:
            call()
            self.model.append(item)

    @rule(how=st.sampled_from(["nowait", "block=False", "timeout=0"]))
    def get(self, how):
        call = {"nowait": self.q.get_nowait,
                "block=False": lambda: self.q.get(block=False),
                "timeout=0": lambda: self.q.get(timeout=0)}[how]
        if not self.model:
            with pytest.raises(queue.Empty):
                call()
        else:
            expected = self.model.popleft()
            got = call()
            assert got is expected if not self.uint64 else got == expected

    @precondition(lambda self: self.uint64)
    @rule(values=st.lists(st.integers(0, U64_MAX), max_size=20))
    def put_many(self, values):
        accepted = self.q.put_many(np.array(values, dtype=np.uint64))
        assert accepted == min(len(values), self.capacity - len(self.model))
        self.model.extend(values[:accepted])

    @precondition(lambda self: self.uint64)
    @rule(k=st.integers(0, 20))
    def get_many(self, k):
        out = np.full(k, 12345, dtype=np.uint64)
        got = self.q.get_many(out)
        assert got == min(k, len(self.model))
        assert out[:got].tolist() == [self.model.popleft() for _ in range(got)]
        assert (out[got:] == 12345).all()

    @invariant()
    def sizes_agree(self):
        if not hasattr(self, "q"):
            return
        size = len(self.model)
        assert self.q.qsize() == len(self.q) == size
        assert self.q.empty() == (size == 0)
        assert self.q.full() == (size == self.capacity)


TestSpscQueueModel = SpscQueueModel.TestCase
TestSpscQueueModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
