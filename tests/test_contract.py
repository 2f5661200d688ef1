"""The contract every bounded structure of the core keeps, written once and run
against {SpscQueue, MpmcQueue, WorkStealingDeque} x {object, uint64} through the
``impl`` fixture (multidict's tests/conftest.py is the model): capacity, dtype,
uint64 items, the full/empty exceptions, reference counts, leftovers released on
destruction, refused items not leaked, the numpy batch methods, pickling.

Each per-structure file (test_spsc.py, test_mpmc.py, test_deque.py) keeps only
its own protocol, blocking, role and stress tests."""
import copy
import gc
import pickle
import queue
import sys
import weakref
from dataclasses import dataclass

import numpy as np
import pytest

from tallyio import MpmcQueue, QueueFullError, SpscQueue, TallyioError, WorkStealingDeque
from tallyio.errors import QueueEmptyError

U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Impl:
    """How the contract drives one structure with one dtype."""

    cls: type
    dtype: object

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def is_deque(self) -> bool:
        return self.cls is WorkStealingDeque

    def make(self, capacity):
        return self.cls(capacity, dtype=self.dtype)

    def put(self, s, item):
        return s.push(item) if self.is_deque else s.put_nowait(item)

    def get(self, s):
        return s.pop() if self.is_deque else s.get_nowait()

    def put_many(self, s, arr):
        return s.push_many(arr) if self.is_deque else s.put_many(arr)

    def get_many(self, s, out):
        return s.pop_many(out) if self.is_deque else s.get_many(out)

    @property
    def put_many_name(self) -> str:
        return "push_many" if self.is_deque else "put_many"

    @property
    def get_many_name(self) -> str:
        return "pop_many" if self.is_deque else "get_many"

    def sample(self, i):
        return i if self.dtype == "uint64" else Token(i)


class Token:
    """A heap object whose references we can count."""

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Token) and other.n == self.n

    __hash__ = None


STRUCTURES = [SpscQueue, MpmcQueue, WorkStealingDeque]


@pytest.fixture(params=STRUCTURES, ids=lambda c: c.__name__)
def structure(request):
    return request.param


@pytest.fixture(params=[object, "uint64"], ids=["object", "uint64"])
def impl(request, structure):
    return Impl(structure, request.param)


@pytest.fixture
def object_impl(structure):
    return Impl(structure, object)


@pytest.fixture
def u64_impl(structure):
    return Impl(structure, "uint64")


# ---- capacity --------------------------------------------------------------------------
@pytest.mark.parametrize("asked, real", [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (1000, 1024),
                                         (1024, 1024), (2**16, 2**16), (2**20 + 1, 2**21)])
def test_capacity_rounds_up_to_a_power_of_two_and_holds_that_many(impl, asked, real):
    if impl.cls is MpmcQueue and real == 1:
        real = 2      # Vyukov's ring needs two slots: 1 is rounded up to 2
    s = impl.make(asked)
    assert s.capacity == real
    if real <= 1024:
        for i in range(real):
            impl.put(s, impl.sample(i))
        assert len(s) == real
        with pytest.raises(QueueFullError):
            impl.put(s, impl.sample(real))
        assert len(s) == real


@pytest.mark.parametrize("capacity, exc", [
    (0, ValueError), (-1, ValueError), (2**30 + 1, ValueError), (2**40, ValueError), (2**64, ValueError),
    (10**100, ValueError), (1.5, TypeError), (8.0, TypeError), ("8", TypeError), (True, TypeError),
    (None, TypeError)])
def test_bad_capacity_names_the_problem(structure, capacity, exc):
    with pytest.raises(exc, match="capacity") as info:
        structure(capacity)
    assert structure.__name__ in str(info.value)


def test_cannot_be_built_without_a_capacity(structure):
    with pytest.raises(TypeError):
        structure()
    with pytest.raises(TypeError):
        structure.__new__(structure)


# ---- dtype and uint64 items ---------------------------------------------------------------
@pytest.mark.parametrize("dtype, name", [(object, "object"), (None, "object"), ("object", "object"),
                                         ("O", "object"), (np.dtype(object), "object"), ("uint64", "uint64"),
                                         (np.uint64, "uint64"), (np.dtype("uint64"), "uint64")])
def test_dtype_accepted(structure, dtype, name):
    assert structure(4, dtype=dtype).dtype == name


@pytest.mark.parametrize("dtype", ["int64", np.int64, float, int, "int", "float64", 42, "bogus", "u4",
                                   "uint32", np.dtype("u4")])
def test_dtype_rejected(structure, dtype):
    with pytest.raises(TypeError, match="dtype"):
        structure(4, dtype=dtype)


@pytest.mark.parametrize("item, expected", [
    (0, 0), (U64_MAX, U64_MAX), (np.uint64(2**63 + 5), 2**63 + 5), (np.int32(7), 7)])
def test_uint64_items_accept_ints_and_numpy_integers(u64_impl, item, expected):
    s = u64_impl.make(4)
    u64_impl.put(s, item)
    got = u64_impl.get(s)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("item, exc", [
    (True, TypeError), (np.bool_(True), TypeError), (1.0, TypeError), (np.float64(2), TypeError),
    ("3", TypeError), (None, TypeError), (-1, OverflowError), (2**64, OverflowError),
    (np.int64(-3), OverflowError)])
def test_uint64_items_reject_non_ints_with_a_clear_error(u64_impl, item, exc):
    s = u64_impl.make(4)
    with pytest.raises(exc, match=u64_impl.name):
        u64_impl.put(s, item)
    if not u64_impl.is_deque:                     # the blocking put checks the item the same way
        with pytest.raises(exc):
            s.put(item, timeout=0.01)
    assert len(s) == 0   # nothing half-queued
    u64_impl.put(s, U64_MAX)
    assert u64_impl.get(s) == U64_MAX


# ---- full and empty ----------------------------------------------------------------------
def test_full_and_empty_raise_tallyio_errors_that_are_the_stdlib_ones(impl):
    s = impl.make(2)
    with pytest.raises(queue.Empty) as empty:
        impl.get(s)
    assert isinstance(empty.value, QueueEmptyError) and isinstance(empty.value, TallyioError)
    assert impl.name in str(empty.value)
    for i in range(s.capacity):
        impl.put(s, impl.sample(i))
    with pytest.raises(queue.Full) as full:
        impl.put(s, impl.sample(99))
    assert isinstance(full.value, QueueFullError) and isinstance(full.value, TallyioError)
    assert impl.name in str(full.value) and "full" in str(full.value)
    got = sorted((impl.get(s) for _ in range(s.capacity)), key=lambda x: x if isinstance(x, int) else x.n)
    assert got == [impl.sample(i) for i in range(s.capacity)]   # the refused item never went in


# ---- reference counts (dtype=object) ----------------------------------------------------------
def test_refcount_unchanged_after_round_trips(object_impl):
    s = object_impl.make(8)
    item = Token(1)
    before = sys.getrefcount(item)
    for _ in range(1000):
        object_impl.put(s, item)
        assert object_impl.get(s) is item
    assert sys.getrefcount(item) == before


def test_queued_items_are_held_and_leftovers_released_exactly_once(object_impl):
    s = object_impl.make(8)
    kept = Token("kept")
    before = sys.getrefcount(kept)
    dropped = [Token(i) for i in range(5)]
    refs = [weakref.ref(t) for t in dropped]
    for t in dropped:
        object_impl.put(s, t)
    object_impl.put(s, kept)
    assert sys.getrefcount(kept) == before + 1     # the structure holds one reference
    del dropped, t
    gc.collect()
    assert all(r() is not None for r in refs)      # held while queued
    del s
    gc.collect()
    assert all(r() is None for r in refs)          # released when the structure goes
    assert sys.getrefcount(kept) == before         # once, not twice


def test_items_refused_when_full_are_not_leaked(object_impl):
    s = object_impl.make(2)
    for i in range(s.capacity):
        object_impl.put(s, Token(i))
    refused = Token("refused")
    before = sys.getrefcount(refused)
    for _ in range(100):
        with pytest.raises(QueueFullError):
            object_impl.put(s, refused)
    assert sys.getrefcount(refused) == before
    if not object_impl.is_deque:                  # the queues' blocking put refuses the same way
        with pytest.raises(QueueFullError):
            s.put(refused, timeout=0.001)
        assert sys.getrefcount(refused) == before


# ---- batch methods over numpy uint64 arrays ------------------------------------------------------
BAD_ARRAYS = {
    "int64": lambda: np.arange(4, dtype=np.int64),
    "float64": lambda: np.arange(4, dtype=np.float64),
    "uint32": lambda: np.arange(4, dtype=np.uint32),
    "big-endian": lambda: np.arange(4, dtype=">u8"),
    "non-contiguous": lambda: np.arange(8, dtype=np.uint64)[::2],
    "2-D": lambda: np.zeros((2, 2), dtype=np.uint64),
    "0-D": lambda: np.zeros((), dtype=np.uint64),
    "list": lambda: [1, 2, 3],
    "bytes": lambda: b"\x00" * 16,
    "None": lambda: None,
}


@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_batch_methods_reject_bad_arrays_and_lose_nothing(u64_impl, kind):
    s = u64_impl.make(8)
    u64_impl.put(s, 5)
    with pytest.raises(TypeError, match=u64_impl.put_many_name):
        u64_impl.put_many(s, BAD_ARRAYS[kind]())
    with pytest.raises(TypeError, match=u64_impl.get_many_name):
        u64_impl.get_many(s, BAD_ARRAYS[kind]())
    assert len(s) == 1 and u64_impl.get(s) == 5


def test_batch_methods_move_a_prefix_and_accept_read_only_input(u64_impl):
    s = u64_impl.make(4)
    src = np.arange(6, dtype=np.uint64)
    src.flags.writeable = False
    assert u64_impl.put_many(s, src) == 4                       # the prefix that fits
    assert u64_impl.put_many(s, np.arange(2, dtype=np.uint64)) == 0
    assert u64_impl.put_many(s, np.empty(0, dtype=np.uint64)) == 0
    assert u64_impl.get_many(s, np.empty(0, dtype=np.uint64)) == 0
    out = np.zeros(8, dtype=np.uint64)
    assert u64_impl.get_many(s, out) == 4
    assert sorted(out[:4].tolist()) == [0, 1, 2, 3] and out[4:].tolist() == [0] * 4
    assert u64_impl.get_many(s, out) == 0


def test_batch_output_must_be_writable(u64_impl):
    s = u64_impl.make(8)
    u64_impl.put(s, 5)
    out = np.zeros(4, dtype=np.uint64)
    out.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        u64_impl.get_many(s, out)
    assert u64_impl.get(s) == 5


def test_batch_methods_need_a_uint64_structure(object_impl):
    s = object_impl.make(8)
    with pytest.raises(TypeError, match="dtype='uint64'"):
        object_impl.put_many(s, np.arange(2, dtype=np.uint64))
    with pytest.raises(TypeError, match="dtype='uint64'"):
        object_impl.get_many(s, np.empty(2, dtype=np.uint64))
    assert len(s) == 0


# ---- pickling and copying ------------------------------------------------------------------
def test_cannot_be_pickled_or_copied(impl):
    s = impl.make(4)
    impl.put(s, impl.sample(1))
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        copy.copy(s)
    with pytest.raises(TypeError):
        copy.deepcopy(s)
    assert impl.get(s) == impl.sample(1)


# ---- the one error edge: every status code of the C core becomes a TallyioError --------------
@pytest.mark.parametrize("code, stdlib", [
    ("FULL", queue.Full), ("EMPTY", queue.Empty), ("EXHAUSTED", MemoryError), ("DOUBLE_FREE", ValueError),
    ("FOREIGN", ValueError), ("NOMEM", MemoryError), ("INVALID", ValueError),
    ("INTERRUPTED", InterruptedError), ("CLOSED", RuntimeError), ("RETRY", Exception)])
def test_every_status_code_raises_a_tallyio_error_that_is_the_stdlib_one(code, stdlib):
    from tallyio._ext import status
    with pytest.raises(TallyioError) as info:
        status.raise_for_status(getattr(status, code), "Thing(capacity=2)")
    assert isinstance(info.value, stdlib)
    assert str(info.value).startswith("Thing(capacity=2)")


def test_an_unknown_status_code_is_still_a_tallyio_error():
    from tallyio._ext import status
    with pytest.raises(TallyioError, match="unexpected status 77"):
        status.raise_for_status(77, "Thing")
