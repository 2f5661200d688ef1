"""WorkStealingDeque / Stealer: semantics, bad input, roles, reference counts,
a model check against collections.deque, and the cross-thread tests (nogil
owner and thief loops on several threads at once; every item exactly once)."""
import collections
import doctest
import gc
import queue
import sys
import threading
import weakref

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from conftest import scaled, run_threads
import tallyio
from tallyio import QueueFullError, RoleError, Steal, Stealer, WorkStealingDeque
from tallyio._ext import _testing
from tallyio._ext import deque as deque_module

U64_MAX = 2**64 - 1


class Token:
    """A weak-referenceable item."""

    def __init__(self, n=0):
        self.n = n


def exactly_once(parts, n):
    """The concatenation of `parts` is a permutation of range(n)."""
    seen = np.sort(np.concatenate([np.asarray(p, dtype=np.uint64) for p in parts]))
    assert len(seen) == n, f"{len(seen)} items seen, {n} pushed"
    assert np.array_equal(seen, np.arange(n, dtype=np.uint64)), "an item was lost or duplicated"


# ---- the public face ------------------------------------------------------------------
def test_exports_and_steal_values():
    assert tallyio.WorkStealingDeque is WorkStealingDeque
    assert tallyio.Stealer is Stealer and tallyio.Steal is Steal
    # the values are the C status codes (tio_status.h)
    assert (Steal.SUCCESS, Steal.EMPTY, Steal.RETRY) == (0, 1, 3)
    assert [m.name for m in Steal] == ["EMPTY", "SUCCESS", "RETRY"]


def test_doctests():
    result = doctest.testmod(deque_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted >= 20


# ---- smoke / is_empty ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [object, "uint64"])
def test_smoke_lifo_pop_fifo_steal(dtype):
    dq = WorkStealingDeque(8, dtype=dtype)
    thief = dq.stealer()
    for i in range(1, 6):
        dq.push(i)
    assert dq.pop() == 5                        # owner: newest first
    assert thief.steal() == (Steal.SUCCESS, 1)  # thief: oldest first
    assert thief.steal() == (Steal.SUCCESS, 2)
    assert dq.pop() == 4
    assert dq.pop() == 3
    assert thief.steal() == (Steal.EMPTY, None)
    with pytest.raises(queue.Empty, match="WorkStealingDeque"):
        dq.pop()
    status, item = thief.steal()
    assert status is Steal.EMPTY and item is None


def test_object_identity_and_uint64_range():
    dq = WorkStealingDeque(4)
    a, b = Token(), Token()
    dq.push(a)
    dq.push(b)
    assert dq.pop() is b
    assert dq.stealer().steal()[1] is a
    du = WorkStealingDeque(4, dtype="uint64")
    du.push(U64_MAX)
    du.push(0)
    assert du.stealer().steal() == (Steal.SUCCESS, U64_MAX)
    assert du.pop() == 0


def test_is_empty():
    dq = WorkStealingDeque(4)
    thief = dq.stealer()
    assert dq.empty() and thief.empty()
    assert len(dq) == 0 and len(thief) == 0
    dq.push("x")
    assert not dq.empty() and not thief.empty()
    assert len(dq) == 1 and len(thief) == 1
    thief.steal()
    assert dq.empty() and len(dq) == 0


def test_properties_and_repr():
    dq = WorkStealingDeque(100, dtype=np.uint64)
    assert dq.capacity == 128 and dq.dtype == "uint64"
    dq.push(7)
    assert repr(dq) == "WorkStealingDeque(capacity=128, dtype='uint64', len=1)"
    assert repr(dq.stealer()) == f"Stealer({dq!r})"
    assert WorkStealingDeque(capacity=1).capacity == 1
    assert WorkStealingDeque(3, dtype="object").dtype == "object"


def test_wraps_past_2_to_the_64():
    dq = WorkStealingDeque(4, dtype="uint64")
    _testing.deque_set_indices(dq, U64_MAX - 2)
    thief = dq.stealer()
    for round_ in range(3):
        for i in range(4):
            dq.push(10 * round_ + i)
        assert len(dq) == 4
        with pytest.raises(QueueFullError):
            dq.push(99)
        assert thief.steal() == (Steal.SUCCESS, 10 * round_)
        assert dq.pop() == 10 * round_ + 3
        out = np.zeros(4, dtype=np.uint64)
        assert dq.pop_many(out) == 2
        assert out[:2].tolist() == [10 * round_ + 2, 10 * round_ + 1]
        assert dq.empty()


# ---- full / empty -----------------------------------------------------------------------------
def test_full_raises_and_the_item_is_not_taken():
    dq = WorkStealingDeque(2)
    dq.push("a")
    dq.push("b")
    extra = Token()
    before = sys.getrefcount(extra)
    with pytest.raises(QueueFullError, match=r"capacity=2.*is full") as info:
        dq.push(extra)
    assert isinstance(info.value, queue.Full)
    del info
    assert sys.getrefcount(extra) == before
    assert len(dq) == 2
    assert dq.pop() == "b"
    dq.push(extra)
    assert dq.pop() is extra


def test_room_made_by_a_thief_is_reused():
    dq = WorkStealingDeque(2)
    thief = dq.stealer()
    dq.push(1)
    dq.push(2)
    assert thief.steal() == (Steal.SUCCESS, 1)
    dq.push(3)          # reuses the slot item 1 left
    assert thief.steal() == (Steal.SUCCESS, 2)
    assert thief.steal() == (Steal.SUCCESS, 3)


# ---- bad input -----------------------------------------------------------------------------
def test_stealer_cannot_be_built_directly():
    with pytest.raises(TypeError, match=r"stealer\(\)"):
        Stealer()
    with pytest.raises(TypeError, match=r"stealer\(\)"):
        Stealer(None, WorkStealingDeque(2))
    with pytest.raises(TypeError, match=r"stealer\(\)"):
        Stealer.__new__(Stealer)


def test_not_picklable_or_copyable():
    import copy
    import pickle
    dq = WorkStealingDeque(4)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            attempt(dq)
        with pytest.raises(TypeError):
            attempt(dq.stealer())


def test_steal_batch_bad_dest():
    src = WorkStealingDeque(8)
    src.push(1)
    thief = src.stealer()
    with pytest.raises(TypeError):
        thief.steal_batch(None)
    with pytest.raises(TypeError):
        thief.steal_batch([])
    with pytest.raises(TypeError, match="dtype"):
        thief.steal_batch(WorkStealingDeque(8, dtype="uint64"))
    assert len(src) == 1


# ---- batch methods ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5, 300, 1000])   # 300 and 1000 release the GIL
def test_push_many_pop_many(n):
    dq = WorkStealingDeque(512, dtype="uint64")
    items = np.arange(n, dtype=np.uint64) + 1000
    pushed = dq.push_many(items)
    assert pushed == min(n, 512)
    assert len(dq) == pushed
    out = np.zeros(n + 3, dtype=np.uint64)
    popped = dq.pop_many(out)
    assert popped == pushed
    assert out[:popped].tolist() == items[:pushed][::-1].tolist()
    assert dq.empty()


def test_pop_many_partial_and_with_thief_activity():
    dq = WorkStealingDeque(16, dtype="uint64")
    thief = dq.stealer()
    dq.push_many(np.arange(10, dtype=np.uint64))
    assert thief.steal() == (Steal.SUCCESS, 0)
    out = np.zeros(3, dtype=np.uint64)
    assert dq.pop_many(out) == 3 and out.tolist() == [9, 8, 7]
    out = np.zeros(10, dtype=np.uint64)
    assert dq.pop_many(out) == 6 and out[:6].tolist() == [6, 5, 4, 3, 2, 1]
    assert dq.pop_many(out) == 0
    assert thief.steal() == (Steal.EMPTY, None)


def test_steal_batch_moves_half_oldest_first():
    src = WorkStealingDeque(16)
    mine = WorkStealingDeque(16)
    for i in range(7):
        src.push(i)
    assert src.stealer().steal_batch(mine) == (Steal.SUCCESS, 4)   # ceil(7 / 2)
    assert len(src) == 3 and len(mine) == 4
    assert [mine.pop() for _ in range(4)] == [3, 2, 1, 0]
    assert mine.stealer().steal() == (Steal.EMPTY, None)
    assert src.pop() == 6
    assert src.stealer().steal_batch(mine) == (Steal.SUCCESS, 1)   # ceil(2 / 2)
    assert src.stealer().steal_batch(mine) == (Steal.SUCCESS, 1)
    assert src.stealer().steal_batch(mine) == (Steal.EMPTY, 0)
    assert mine.stealer().steal() == (Steal.SUCCESS, 4)


def test_steal_batch_limited_by_dest_room_and_full_dest():
    src = WorkStealingDeque(16, dtype="uint64")
    mine = WorkStealingDeque(4, dtype="uint64")
    src.push_many(np.arange(16, dtype=np.uint64))
    mine.push(100)
    assert src.stealer().steal_batch(mine) == (Steal.SUCCESS, 3)   # 8 wanted, 3 fit
    with pytest.raises(QueueFullError, match="capacity=4"):
        src.stealer().steal_batch(mine)
    assert len(src) == 13                                     # nothing taken
    assert [mine.pop() for _ in range(4)] == [2, 1, 0, 100]
    empty = WorkStealingDeque(4, dtype="uint64")
    assert empty.stealer().steal_batch(mine) == (Steal.EMPTY, 0)


def test_steal_batch_into_its_own_deque_is_a_no_op():
    dq = WorkStealingDeque(8)
    assert dq.stealer().steal_batch(dq) == (Steal.EMPTY, 0)
    dq.push("x")
    assert dq.stealer().steal_batch(dq) == (Steal.SUCCESS, 0)
    assert len(dq) == 1 and dq.pop() == "x"


def test_large_steal_batch_releases_the_gil():
    src = WorkStealingDeque(4096, dtype="uint64")
    mine = WorkStealingDeque(4096, dtype="uint64")
    src.push_many(np.arange(3000, dtype=np.uint64))
    assert src.stealer().steal_batch(mine) == (Steal.SUCCESS, 1500)
    out = np.zeros(4096, dtype=np.uint64)
    assert mine.pop_many(out) == 1500
    assert out[:1500].tolist() == list(range(1499, -1, -1))


# ---- roles -------------------------------------------------------------------------------------
def test_second_live_owner_thread_gets_role_error():
    dq = WorkStealingDeque(8, dtype="uint64")
    dq.push(1)                      # the main thread is the owner now
    seen = []
    stolen = []

    def intruder():
        for op in (lambda: dq.push(2), dq.pop,
                   lambda: dq.push_many(np.zeros(1, dtype=np.uint64)),
                   lambda: dq.pop_many(np.zeros(1, dtype=np.uint64)),
                   lambda: WorkStealingDeque(8, dtype="uint64").stealer().steal_batch(dq)):
            try:
                op()
            except RoleError as exc:
                seen.append(str(exc))
        stolen.append(dq.stealer().steal())        # thieves may be anyone

    t = threading.Thread(target=intruder)
    t.start()
    t.join()
    assert len(seen) == 5 and all("still alive" in m for m in seen)
    assert stolen == [(Steal.SUCCESS, 1)]
    assert len(dq) == 0


def test_owner_role_passes_on_when_its_thread_exits():
    dq = WorkStealingDeque(8)
    release = threading.Event()
    holding = threading.Event()

    def owner():
        dq.push("from the worker")
        holding.set()
        release.wait(30)

    t = threading.Thread(target=owner)
    t.start()
    assert holding.wait(30)
    with pytest.raises(RoleError):
        dq.pop()
    release.set()
    t.join()
    assert dq.pop() == "from the worker"     # the holder exited: the role is free
    dq.push(1)


# ---- reference counts and destructors ------------------------------------------------------------
def test_refcounts_unchanged_after_round_trips():
    obj = Token()
    before = sys.getrefcount(obj)
    dq = WorkStealingDeque(8)
    mine = WorkStealingDeque(8)
    thief = dq.stealer()
    for _ in range(3):
        dq.push(obj)
        assert sys.getrefcount(obj) == before + 1
        assert dq.pop() is obj
        dq.push(obj)
        status, got = thief.steal()
        assert got is obj
        del got
        dq.push(obj)
        dq.push(obj)
        assert thief.steal_batch(mine) == (Steal.SUCCESS, 1)
        assert mine.pop() is obj and dq.pop() is obj
    assert sys.getrefcount(obj) == before


def test_leftovers_released_when_deque_and_stealers_are_gone():
    items = [Token(i) for i in range(5)]
    refs = [weakref.ref(x) for x in items]
    dq = WorkStealingDeque(8)
    for x in items:
        dq.push(x)
    thief = dq.stealer()
    del items, x
    assert thief.steal()[1].n == 0       # the stolen item is released by the caller
    assert refs[0]() is None
    del dq                               # the stealer keeps the deque alive
    gc.collect()
    assert all(r() is not None for r in refs[1:])
    assert thief.steal()[1].n == 1
    del thief
    gc.collect()
    assert all(r() is None for r in refs)


def test_leftovers_released_after_wrap():
    dq = WorkStealingDeque(4)
    _testing.deque_set_indices(dq, U64_MAX - 1)
    tokens = [Token(i) for i in range(4)]
    refs = [weakref.ref(t) for t in tokens]
    for t in tokens:
        dq.push(t)
    del tokens, t
    del dq
    gc.collect()
    assert all(r() is None for r in refs)


# ---- model check against collections.deque ---------------------------------------------------------
class DequeMachine(RuleBasedStateMachine):
    """push = append, pop = pop, steal = popleft; steal_batch moves
    ceil(len/2) (at most dest's room) from the left of the model into a
    second deque, which the same thread owns."""

    @initialize(capacity=st.integers(1, 9), dest_capacity=st.integers(1, 5),
                uint64=st.booleans())
    def build(self, capacity, dest_capacity, uint64):
        dtype = "uint64" if uint64 else object
        self.uint64 = uint64
        self.dq = WorkStealingDeque(capacity, dtype=dtype)
        self.dest = WorkStealingDeque(dest_capacity, dtype=dtype)
        self.thief = self.dq.stealer()
        self.model = collections.deque()
        self.dest_model = collections.deque()
        self.counter = 0

    def new_item(self):
        self.counter += 1
        return self.counter if self.uint64 else Token(self.counter)

    def same(self, got, expected):
        if self.uint64:
            return got == expected
        return got is expected

    @rule()
    def push(self):
        item = self.new_item()
        if len(self.model) == self.dq.capacity:
            with pytest.raises(QueueFullError):
                self.dq.push(item)
        else:
            self.dq.push(item)
            self.model.append(item)

    @rule()
    def pop(self):
        if self.model:
            assert self.same(self.dq.pop(), self.model.pop())
        else:
            with pytest.raises(queue.Empty):
                self.dq.pop()

    @rule()
    def steal(self):
        status, item = self.thief.steal()
        if self.model:
            assert status is Steal.SUCCESS and self.same(item, self.model.popleft())
        else:
            assert (status, item) == (Steal.EMPTY, None)

    @precondition(lambda self: self.uint64)
    @rule(k=st.integers(0, 12))
    def push_many(self, k):
        items = np.arange(self.counter + 1, self.counter + 1 + k, dtype=np.uint64)
        self.counter += k
        pushed = self.dq.push_many(items)
        assert pushed == min(k, self.dq.capacity - len(self.model))
        self.model.extend(items[:pushed].tolist())

    @precondition(lambda self: self.uint64)
    @rule(k=st.integers(0, 12))
    def pop_many(self, k):
        out = np.zeros(k, dtype=np.uint64)
        popped = self.dq.pop_many(out)
        expected = [self.model.pop() for _ in range(min(k, len(self.model)))]
        assert out[:popped].tolist() == expected

    @rule()
    def steal_batch(self):
        room = self.dest.capacity - len(self.dest_model)
        if not self.model:
            assert self.thief.steal_batch(self.dest) == (Steal.EMPTY, 0)
        elif room == 0:
            with pytest.raises(QueueFullError):
                self.thief.steal_batch(self.dest)
        else:
            want = min((len(self.model) + 1) // 2, room)
            assert self.thief.steal_batch(self.dest) == (Steal.SUCCESS, want)
            for _ in range(want):
                self.dest_model.append(self.model.popleft())

    @rule()
    def pop_dest(self):
        if self.dest_model:
            assert self.same(self.dest.pop(), self.dest_model.pop())
        else:
            with pytest.raises(queue.Empty):
                self.dest.pop()

    @invariant()
    def lengths_agree(self):
        assert len(self.dq) == len(self.thief) == len(self.model)
        assert self.dq.empty() == self.thief.empty() == (not self.model)
        assert len(self.dest) == len(self.dest_model)


TestDequeModel = DequeMachine.TestCase
TestDequeModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# ---- concurrency: nogil loops on several threads ----------------------------------------------------
def owner_and_thieves(n, capacity, thieves, seed):
    dq = WorkStealingDeque(capacity, dtype="uint64")
    gate = _testing.StartGate(1 + thieves)
    done = _testing.DequeFlag()
    popped = np.zeros(n, dtype=np.uint64)
    stolen = [np.zeros(n, dtype=np.uint64) for _ in range(thieves)]
    counts = run_threads(
        (_testing.deque_owner_mixed, (dq, gate, done, n, popped, seed)),
        *[(_testing.deque_thief, (dq.stealer(), gate, done, s)) for s in stolen])
    assert all(c <= n for c in counts), "a thief saw more items than were pushed"
    return popped[:counts[0]], [s[:c] for s, c in zip(stolen, counts[1:])], dq


@pytest.mark.concurrency
@pytest.mark.parametrize("capacity, thieves", [(16, 1), (16, 3), (1024, 2)])
def test_owner_push_pop_racing_thieves(capacity, thieves, seed):
    n = scaled(2_000_000)
    popped, stolen, dq = owner_and_thieves(n, capacity, thieves, seed)
    exactly_once([popped, *stolen], n)
    for s in stolen:       # each thief takes from the top: increasing within a thief
        assert np.all(np.diff(s.astype(np.int64)) > 0)
    assert dq.empty()


@pytest.mark.concurrency
@pytest.mark.parametrize("thieves, share", [(1, 0.75), (2, 0.25)])
def test_last_item_race_has_exactly_one_winner(thieves, share):
    """One item per round; the owner's pop and the thieves' steals are
    released together (a million rounds in all at scale 1), and every round
    is checked: exactly one of them got the item."""
    rounds = scaled(int(1_000_000 * share))
    dq = WorkStealingDeque(4, dtype="uint64")
    gate = _testing.StartGate(1 + thieves)
    go, finished = _testing.DequeFlag(), _testing.DequeFlag()
    owner_got = np.zeros(rounds, dtype=np.uint64)
    thief_got = [np.zeros(rounds, dtype=np.uint64) for _ in range(thieves)]
    results = run_threads(
        (_testing.deque_race_owner, (dq, gate, go, finished, thieves, rounds, owner_got)),
        *[(_testing.deque_race_thief, (dq.stealer(), gate, go, finished, rounds, g))
          for g in thief_got])
    assert results[0] == 0, "rounds ended with the item still in the deque"
    for (wins, _retries), g in zip(results[1:], thief_got):
        assert wins == np.count_nonzero(g)
    got = np.stack([owner_got, *thief_got])           # got[who, round] = item + 1 or 0
    winners = np.count_nonzero(got, axis=0)
    bad = np.flatnonzero(winners != 1)
    assert bad.size == 0, f"round {bad[0]} had {winners[bad[0]]} winners"
    expected = np.arange(1, rounds + 1, dtype=np.uint64)
    assert np.array_equal(got.max(axis=0), expected), "a round's winner took another round's item"
    # Both sides won some rounds, or the race was never really run.  (With
    # scale-down runs the rounds may be too few to insist on it.)
    if rounds >= 200_000:
        assert np.count_nonzero(owner_got) > 0
        assert sum(np.count_nonzero(g) for g in thief_got) > 0


@pytest.mark.concurrency
@pytest.mark.parametrize("thieves", [2, 4])
def test_stampede_of_thieves_on_a_full_deque(thieves):
    n = scaled(1 << 20, minimum=1 << 12)
    capacity = 1 << (n - 1).bit_length()
    dq = WorkStealingDeque(capacity, dtype="uint64")
    assert dq.push_many(np.arange(n, dtype=np.uint64)) == n
    gate = _testing.StartGate(thieves)
    done = _testing.DequeFlag(1)        # no owner: stop at the first EMPTY
    stolen = [np.zeros(n, dtype=np.uint64) for _ in range(thieves)]
    counts = run_threads(*[(_testing.deque_thief, (dq.stealer(), gate, done, s)) for s in stolen])
    parts = [s[:c] for s, c in zip(stolen, counts)]
    exactly_once(parts, n)
    for p in parts:
        assert np.all(np.diff(p.astype(np.int64)) > 0)
    assert dq.empty()


@pytest.mark.concurrency
@pytest.mark.parametrize("limit, neighbours", [(2**64 - 1, False), (3, True), (2**64 - 1, True)])
def test_steal_batch_thieves_drain_into_their_own_deques(limit, neighbours, seed):
    n = scaled(1_000_000)
    thieves = 3
    dq = WorkStealingDeque(256, dtype="uint64")
    own = [WorkStealingDeque(32, dtype="uint64") for _ in range(thieves)]
    gate = _testing.StartGate(1 + thieves)
    done = _testing.DequeFlag()
    popped = np.zeros(n, dtype=np.uint64)
    got = [np.zeros(n, dtype=np.uint64) for _ in range(thieves)]
    targets = [(_testing.deque_owner_mixed, (dq, gate, done, n, popped, seed))]
    for i in range(thieves):
        neighbour = own[(i + 1) % thieves].stealer() if neighbours else None
        targets.append((_testing.deque_batch_thief,
                        (dq.stealer(), own[i], neighbour, gate, done, got[i], limit)))
    counts = run_threads(*targets)
    assert all(c <= n for c in counts)
    exactly_once([popped[:counts[0]], *[g[:c] for g, c in zip(got, counts[1:])]], n)
    assert dq.empty() and all(d.empty() for d in own)


@pytest.mark.concurrency
@pytest.mark.parametrize("burst", [8, 64])
def test_steal_batch_against_an_owner_popping_hard(burst):
    """The owner pushes a burst and pops it all back at once, so its no-CAS
    pops run into batch steals in progress (a batch that claimed several
    items with one CAS would duplicate them here)."""
    n = scaled(2_000_000)
    thieves = 3
    popped = np.zeros(n, dtype=np.uint64)
    got = [np.zeros(n, dtype=np.uint64) for _ in range(thieves)]
    for _ in range(4):    # short runs: each start lines the threads up again
        dq = WorkStealingDeque(256, dtype="uint64")
        own = [WorkStealingDeque(256, dtype="uint64") for _ in range(thieves)]
        gate = _testing.StartGate(1 + thieves)
        done = _testing.DequeFlag()
        counts = run_threads(
            (_testing.deque_owner_bursts, (dq, gate, done, n, popped, burst)),
            *[(_testing.deque_batch_thief,
               (dq.stealer(), own[i], None, gate, done, got[i], 2**64 - 1))
              for i in range(thieves)])
        assert all(c <= n for c in counts)
        exactly_once([popped[:counts[0]], *[g[:c] for g, c in zip(got, counts[1:])]], n)


@pytest.mark.concurrency
def test_python_batch_methods_racing_nogil_thieves():
    """push_many / pop_many release the GIL for long batches: an owner
    thread driving them in Python races two nogil thieves."""
    n = scaled(1_000_000, minimum=20_000)
    dq = WorkStealingDeque(4096, dtype="uint64")
    thieves = 2
    gate = _testing.StartGate(thieves)
    done = _testing.DequeFlag()
    stolen = [np.zeros(n, dtype=np.uint64) for _ in range(thieves)]
    popped = []

    def owner():
        items = np.arange(n, dtype=np.uint64)
        out = np.zeros(512, dtype=np.uint64)
        i = 0
        while i < n:
            i += dq.push_many(items[i:i + 2048])
            k = dq.pop_many(out)
            popped.append(out[:k].copy())
        while True:
            k = dq.pop_many(out)
            if k == 0:
                break
            popped.append(out[:k].copy())
        done.set(1)

    counts = run_threads((owner, ()),
                         *[(_testing.deque_thief, (dq.stealer(), gate, done, s)) for s in stolen])
    exactly_once([*popped, *[s[:c] for s, c in zip(stolen, counts[1:])]], n)
