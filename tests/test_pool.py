"""MemoryPool and Block: semantics, zero-copy views, bad input, garbage
collection, the C API's foreign/double-free checks, a hypothesis state
machine, and the concurrency test (nogil alloc/free churn on several threads,
every block tagged by its holder)."""
import copy
import ctypes
import gc
import pickle
import random
import sys
import time
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from conftest import scaled, run_threads
from tallyio import Block, BlockError, MemoryPool, PoolExhaustedError, TallyioError
from tallyio._ext import _testing
from tallyio._ext.pool import PoolStats

TIO_OK, TIO_EXHAUSTED, TIO_DOUBLE_FREE, TIO_FOREIGN = 0, 4, 5, 6


def drain(pool):
    """Allocate every free block (Python API); return the Blocks."""
    blocks = []
    while True:
        try:
            blocks.append(pool.alloc())
        except PoolExhaustedError:
            return blocks


# ---- smoke ------------------------------------------------------------------------
def test_smoke():
    pool = MemoryPool(256, 4)
    assert (pool.block_size, pool.block_count, pool.alignment) == (256, 4, 64)
    b = pool.alloc()
    assert isinstance(b, Block)
    assert len(b) == 256 and b.pool is pool and not b.freed
    assert 0 <= b.index < 4
    assert pool.stats() == PoolStats(capacity=4, in_use=1, high_water=1, block_size=256)
    memoryview(b)[:3] = b"abc"
    assert bytes(memoryview(b)[:3]) == b"abc"
    pool.free(b)
    assert b.freed
    assert pool.stats().in_use == 0
    assert "MemoryPool" in repr(pool) and "block_size=256" in repr(pool)
    assert "freed" in repr(b)


def test_fresh_blocks_are_zeroed():
    pool = MemoryPool(100, 8)
    for b in drain(pool):
        assert bytes(memoryview(b)) == bytes(100)


def test_exhaustion_then_free_one():
    pool = MemoryPool(32, 3)
    blocks = [pool.alloc() for _ in range(3)]
    with pytest.raises(PoolExhaustedError, match="no free block") as info:
        pool.alloc()
    assert isinstance(info.value, MemoryError) and isinstance(info.value, TallyioError)
    assert pool.stats().in_use == 3
    victim = blocks.pop(1)
    pool.free(victim)
    again = pool.alloc()
    assert again.index == victim.index      # LIFO: the block just freed comes back
    with pytest.raises(PoolExhaustedError):
        pool.alloc()


def test_indices_unique_and_complete():
    pool = MemoryPool(24, 50)
    blocks = drain(pool)
    assert sorted(b.index for b in blocks) == list(range(50))
    assert len({b.address for b in blocks}) == 50


def test_stats_identities():
    pool = MemoryPool(64, 10)
    held = []
    peak = 0
    rng = random.Random(7)
    for _ in range(500):
        if held and (len(held) == 10 or rng.random() < 0.45):
            pool.free(held.pop(rng.randrange(len(held))))
        else:
            held.append(pool.alloc())
        peak = max(peak, len(held))
        s = pool.stats()
        assert s.in_use == len(held)
        assert s.high_water == peak
        assert s.capacity == 10 and s.block_size == 64
    assert peak == 10


@pytest.mark.parametrize("block_size, alignment", [
    (1, 8), (8, 8), (9, 8), (64, 64), (65, 64), (100, 64), (300, 64),
    (1000, 128), (1, 4096), (5000, 4096), (24, 16),
])
def test_alignment_of_every_block(block_size, alignment):
    pool = MemoryPool(block_size, 33, alignment=alignment)
    blocks = drain(pool)
    assert len(blocks) == 33
    stride = -(-block_size // alignment) * alignment
    base = min(b.address for b in blocks)
    for b in blocks:
        assert b.address % alignment == 0
        assert b.address == base + b.index * stride
        assert len(b) == block_size
    assert _testing.pool_c_stride(pool) == stride


def test_blocks_do_not_overlap():
    pool = MemoryPool(40, 16, alignment=8)
    blocks = drain(pool)
    for b in blocks:
        memoryview(b)[:] = bytes([b.index]) * 40
    for b in blocks:
        assert bytes(memoryview(b)) == bytes([b.index]) * 40


# ---- zero-copy views ------------------------------------------------------------------
def test_numpy_and_memoryview_share_memory():
    pool = MemoryPool(64, 2)
    b = pool.alloc()
    arr = np.frombuffer(b, dtype=np.uint64)
    assert arr.shape == (8,) and arr.flags.writeable
    assert arr.ctypes.data == b.address            # no copy: same address
    mv = memoryview(b)
    assert mv.format == "B" and mv.ndim == 1 and mv.shape == (64,) and not mv.readonly
    assert mv.c_contiguous and mv.nbytes == 64
    arr[1] = 0x0102030405060708
    assert bytes(mv[8:16]) == (0x0102030405060708).to_bytes(8, "little")
    mv[0] = 0xAB
    assert arr[0] == 0xAB
    # a second view through the address sees both writes
    other = np.ctypeslib.as_array((ctypes.c_uint8 * 64).from_address(b.address))
    assert other[0] == 0xAB and other[8] == 0x08
    other[63] = 7
    assert mv[63] == 7 and np.frombuffer(b, dtype=np.uint8)[63] == 7
    del arr, mv, other
    pool.free(b)


def test_views_of_a_reused_block_see_the_new_holder():
    pool = MemoryPool(16, 1)
    with pool.block() as b:
        memoryview(b)[0] = 42
    with pool.block() as c:
        assert c.index == b.index and memoryview(c)[0] == 42   # contents persist


def test_buffer_error_while_exported_then_free_works():
    pool = MemoryPool(32, 2)
    b = pool.alloc()
    mv = memoryview(b)
    with pytest.raises(BufferError, match="exported"):
        pool.free(b)
    assert not b.freed and pool.stats().in_use == 1
    mv[0] = 1                                       # still valid memory
    arr = np.frombuffer(b, dtype=np.uint8)
    mv.release()
    with pytest.raises(BufferError):
        pool.free(b)                                # numpy still holds a view
    del arr
    pool.free(b)
    assert b.freed and pool.stats().in_use == 0


def test_buffer_error_on_with_exit():
    pool = MemoryPool(32, 2)
    with pytest.raises(BufferError):
        with pool.block() as b:
            view = memoryview(b)
    assert not b.freed and pool.stats().in_use == 1
    view.release()
    pool.free(b)


def test_view_escaping_with_block_is_returned_when_dropped():
    pool = MemoryPool(32, 1)
    with pytest.raises(BufferError):
        with pool.block() as b:
            arr = np.frombuffer(b, dtype=np.uint32)
    assert pool.stats().in_use == 1 and arr.base is not None
    arr[0] = 5                                   # the block is still ours: valid memory
    del arr, b
    assert pool.stats().in_use == 0
    assert pool.alloc().index == 0


def test_memoryview_of_freed_block_raises():
    pool = MemoryPool(32, 2)
    b = pool.alloc()
    pool.free(b)
    with pytest.raises(BlockError, match="freed"):
        memoryview(b)
    with pytest.raises(BlockError):
        np.frombuffer(b, dtype=np.uint8)


def test_memoryview_slices_count_as_one_export():
    pool = MemoryPool(32, 1)
    b = pool.alloc()
    mv = memoryview(b)
    part = mv[4:8]
    mv.release()
    with pytest.raises(BufferError):
        pool.free(b)                               # the slice keeps the export
    part.release()
    pool.free(b)


# ---- context managers ------------------------------------------------------------------
def test_with_block_frees_on_exit_and_on_exception():
    pool = MemoryPool(16, 2)
    with pool.block() as b:
        assert pool.stats().in_use == 1 and not b.freed
    assert b.freed and pool.stats().in_use == 0
    with pytest.raises(KeyError):
        with pool.block() as b:
            raise KeyError("boom")
    assert b.freed and pool.stats().in_use == 0
    with pool.alloc() as c:          # a Block is its own context manager
        pass
    assert c.freed


def test_with_block_already_freed_inside():
    pool = MemoryPool(16, 2)
    with pool.block() as b:
        pool.free(b)
    assert b.freed and pool.stats().in_use == 0


# ---- misuse ---------------------------------------------------------------------------------
def test_double_free_raises_and_pool_untouched():
    pool = MemoryPool(16, 4)
    b = pool.alloc()
    keep = pool.alloc()
    pool.free(b)
    with pytest.raises(BlockError, match="freed twice"):
        pool.free(b)
    assert pool.stats().in_use == 1
    assert len(drain(pool)) == 3                     # b is on the free list once
    del keep


def test_double_free_after_reuse_is_caught_by_the_block_object():
    pool = MemoryPool(16, 1)
    b = pool.alloc()
    pool.free(b)
    c = pool.alloc()                                 # same memory, new Block
    assert c.index == b.index
    with pytest.raises(BlockError):
        pool.free(b)                                 # stale handle: refused
    assert not c.freed and pool.stats().in_use == 1
    pool.free(c)


def test_free_block_of_another_pool():
    p1, p2 = MemoryPool(16, 2), MemoryPool(16, 2)
    b = p1.alloc()
    before = p2.stats()
    with pytest.raises(BlockError, match="another pool"):
        p2.free(b)
    assert p2.stats() == before
    assert not b.freed and p1.stats().in_use == 1
    p1.free(b)


@pytest.mark.parametrize("bad", [None, 0, b"x" * 16, bytearray(16), "block", memoryview(bytearray(16))])
def test_free_non_block_is_type_error(bad):
    pool = MemoryPool(16, 2)
    with pytest.raises(TypeError):
        pool.free(bad)
    assert pool.stats().in_use == 0


def test_free_takes_no_keywords_or_extra_args():
    pool = MemoryPool(16, 2)
    b = pool.alloc()
    with pytest.raises(TypeError):
        pool.free(block=b)
    with pytest.raises(TypeError):
        pool.free(b, b)
    with pytest.raises(TypeError):
        pool.alloc(1)
    pool.free(b)


def test_block_cannot_be_constructed():
    with pytest.raises(TypeError, match="MemoryPool.alloc"):
        Block()
    with pytest.raises(TypeError):
        Block(1, 2)
    # even a Block made behind __init__'s back is inert, not a crash
    fake = Block.__new__(Block)
    assert fake.freed and len(fake) == 0 and fake.pool is None
    with pytest.raises(BlockError, match="not a block"):
        memoryview(fake)
    with pytest.raises(BlockError, match="not a block"):
        MemoryPool(16, 1).free(fake)
    assert "not from a pool" in repr(fake)
    with pytest.raises(TypeError):
        class Sub(Block):          # final: no subclasses
            pass


def test_pickle_and_copy_refused():
    pool = MemoryPool(16, 1)
    b = pool.alloc()
    for obj in (pool, b):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(obj)
        with pytest.raises(TypeError):
            copy.copy(obj)
    pool.free(b)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(block_size="64", block_count=4), TypeError, "'block_size' must be an int"),
    (dict(block_size=64.0, block_count=4), TypeError, "'block_size' must be an int"),
    (dict(block_size=True, block_count=4), TypeError, "'block_size' must be an int"),
    (dict(block_size=None, block_count=4), TypeError, "'block_size' must be an int"),
    (dict(block_size=0, block_count=4), ValueError, "'block_size' must be >= 1"),
    (dict(block_size=-8, block_count=4), ValueError, "'block_size' must be >= 1"),
    (dict(block_size=64, block_count="4"), TypeError, "'block_count' must be an int"),
    (dict(block_size=64, block_count=4.5), TypeError, "'block_count' must be an int"),
    (dict(block_size=64, block_count=0), ValueError, "'block_count' must be >= 1"),
    (dict(block_size=64, block_count=-1), ValueError, "'block_count' must be >= 1"),
    (dict(block_size=64, block_count=2**32 - 1), ValueError, "'block_count' must be <="),
    (dict(block_size=64, block_count=2**64), ValueError, "'block_count' must be <="),
    (dict(block_size=64, block_count=4, alignment="64"), TypeError, "'alignment' must be an int"),
    (dict(block_size=64, block_count=4, alignment=64.0), TypeError, "'alignment' must be an int"),
    (dict(block_size=64, block_count=4, alignment=48), ValueError, "'alignment' must be a power of two"),
    (dict(block_size=64, block_count=4, alignment=0), ValueError, "'alignment' must be a power of two"),
    (dict(block_size=64, block_count=4, alignment=-64), ValueError, "'alignment' must be a power of two"),
    (dict(block_size=64, block_count=4, alignment=4), ValueError, "from 8 to 4096"),
    (dict(block_size=64, block_count=4, alignment=8192), ValueError, "from 8 to 4096"),
    (dict(block_size=2**64, block_count=1), ValueError, "'block_size' must be <="),
    (dict(block_size=2**100, block_count=1), ValueError, "'block_size' must be <="),
    (dict(block_size=2**40, block_count=2**20), ValueError, "limit"),
    (dict(block_size=2**31, block_count=2**31), ValueError, "limit"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MemoryPool(**kwargs)


def test_absurd_but_representable_size_is_memory_error():
    # 2**46 bytes (64 TiB) passes the sanity cap but not the machine
    with pytest.raises(MemoryError, match="RAM"):
        MemoryPool(2**36, 2**10)


def test_constructor_signature():
    with pytest.raises(TypeError):
        MemoryPool(64, 4, 64)            # alignment is keyword-only
    with pytest.raises(TypeError):
        MemoryPool(64)
    with pytest.raises(TypeError):
        MemoryPool(64, 4, alignment=64, extra=1)
    assert MemoryPool(block_size=8, block_count=1, alignment=8).alignment == 8


def test_largest_block_count_boundary_is_validated_before_allocating():
    # 2**32 - 2 blocks is the maximum count; 8-byte blocks make it 32 GiB plus
    # 20 GiB of metadata: checked against the machine's RAM before allocating
    import os
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if ram >= 2**36:
        pytest.skip("this machine has enough RAM for the boundary pool")
    with pytest.raises(MemoryError, match="RAM"):
        MemoryPool(8, 2**32 - 2, alignment=8)


# ---- garbage collection and lifetimes --------------------------------------------------------
def test_gc_returns_blocks():
    pool = MemoryPool(64, 4)
    b = pool.alloc()
    idx = b.index
    del b
    assert pool.stats().in_use == 0
    for _ in range(10):
        pool.alloc()                     # dropped at once: never exhausts
    assert pool.stats().in_use == 0
    blocks = drain(pool)
    assert len(blocks) == 4 and idx in {x.index for x in blocks}


def test_block_in_reference_cycle_is_returned():
    pool = MemoryPool(64, 2)
    holder = [pool.alloc()]
    holder.append(holder)                # a cycle that only the collector frees
    del holder
    gc.collect()
    assert pool.stats().in_use == 0
    assert len(drain(pool)) == 2


def test_pool_outlives_its_blocks():
    pool = MemoryPool(64, 2)
    ref = weakref.ref(pool)
    b = pool.alloc()
    del pool
    gc.collect()
    assert ref() is not None             # the block keeps its pool alive
    memoryview(b)[:] = b"x" * 64         # memory still valid (ASAN would say otherwise)
    assert b.pool.stats().in_use == 1
    del b
    gc.collect()
    assert ref() is None


def test_pool_refcounts_round_trip():
    pool = MemoryPool(64, 4)
    base = sys.getrefcount(pool)
    b = pool.alloc()
    assert sys.getrefcount(pool) == base + 1
    pool.free(b)
    assert sys.getrefcount(pool) == base + 1     # a freed Block still names its pool
    del b
    assert sys.getrefcount(pool) == base
    with pool.block():
        pass
    for _ in range(100):
        pool.free(pool.alloc())
    assert sys.getrefcount(pool) == base


def test_block_properties_after_free():
    pool = MemoryPool(64, 2)
    b = pool.alloc()
    addr, idx = b.address, b.index
    pool.free(b)
    assert b.freed and b.address == addr and b.index == idx and len(b) == 64


# ---- the C API's checks --------------------------------------------------------------------------
@pytest.mark.parametrize("block_size, alignment", [(64, 64), (300, 64), (24, 8), (40, 8), (3 * 4096, 4096)])
def test_c_api_foreign_and_double_free(block_size, alignment):
    pool = MemoryPool(block_size, 8, alignment=alignment)
    stride = _testing.pool_c_stride(pool)
    st, addr = _testing.pool_c_alloc(pool)
    assert st == TIO_OK
    base = _testing.pool_c_block_ptr(pool, 0)
    assert addr == base                               # a fresh pool hands out block 0 first
    for bad in (addr + 1, addr + stride - 8, addr - stride, addr - 1, base + 8 * stride,
                base + 100 * stride, 0, 2**64 - alignment, base + stride // 2):
        assert _testing.pool_c_free(pool, bad) == TIO_FOREIGN, hex(bad - base)
    assert pool.stats().in_use == 1
    assert _testing.pool_c_free(pool, addr) == TIO_OK
    assert _testing.pool_c_free(pool, addr) == TIO_DOUBLE_FREE
    assert _testing.pool_c_free(pool, base + 7 * stride) == TIO_DOUBLE_FREE   # never allocated
    assert pool.stats().in_use == 0
    st, again = _testing.pool_c_alloc(pool)
    assert (st, again) == (TIO_OK, addr)
    assert _testing.pool_c_free(pool, again) == TIO_OK


def test_c_api_exhausted():
    pool = MemoryPool(8, 2, alignment=8)
    assert _testing.pool_c_alloc(pool)[0] == TIO_OK
    assert _testing.pool_c_alloc(pool)[0] == TIO_OK
    assert _testing.pool_c_alloc(pool) == (TIO_EXHAUSTED, 0)


def test_block_freed_behind_python_back_is_reported():
    pool = MemoryPool(16, 2)
    b = pool.alloc()
    assert _testing.pool_c_free(pool, b.address) == TIO_OK
    with pytest.raises(BlockError, match="freed twice"):
        pool.free(b)          # the C state says FREE: the pool is not corrupted


@settings(max_examples=300, deadline=None)
@given(block_size=st.integers(1, 5000),
       alignment=st.sampled_from([8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]),
       count=st.integers(1, 40),
       offset=st.integers(-(2**20), 2**22))
def test_index_of_matches_division(block_size, alignment, count, offset):
    """tio_pool_index_of (a multiply, no division) agrees with divmod."""
    pool = MemoryPool(block_size, count, alignment=alignment)
    stride = _testing.pool_c_stride(pool)
    base = _testing.pool_c_block_ptr(pool, 0)
    st_, index = _testing.pool_c_index_of(pool, (base + offset) % 2**64)
    q, r = divmod(offset, stride)
    if r == 0 and 0 <= q < count:
        assert (st_, index) == (TIO_OK, q)
    else:
        assert st_ == TIO_FOREIGN
    # and the exact block starts, all of them
    for i in (0, count - 1, count // 2):
        assert _testing.pool_c_index_of(pool, base + i * stride) == (TIO_OK, i)


def test_stale_pop_cannot_win_after_aba():
    """Every pop bumps the tag, so a pop that read head before the top block
    was popped and pushed back fails its CAS (the ABA problem)."""
    pool = MemoryPool(16, 4)
    same_index, stale_won = _testing.pool_stale_pop_scenario(pool)
    assert same_index, "the scenario did not bring the same top block back"
    assert not stale_won, "a stale pop succeeded: the free list is corrupt (ABA)"
    check_pool_whole(pool)


# ---- hypothesis state machine -------------------------------------------------------------------
class PoolMachine(RuleBasedStateMachine):
    """alloc/free/with in random order against a model: the set of held indices."""

    @initialize(count=st.integers(1, 12), block_size=st.sampled_from([8, 16, 24, 100]))
    def setup(self, count, block_size):
        self.pool = MemoryPool(block_size, count, alignment=8)
        self.count = count
        self.held = {}            # index -> (Block, stamp written into it)
        self.freed = []           # Blocks given back (for double-free checks)
        self.peak = 0
        self.stamp = 0

    @rule()
    def alloc(self):
        if len(self.held) == self.count:
            with pytest.raises(PoolExhaustedError):
                self.pool.alloc()
            return
        b = self.pool.alloc()
        assert b.index not in self.held, "block handed out twice"
        self.stamp += 1
        memoryview(b)[:8] = self.stamp.to_bytes(8, "little")
        self.held[b.index] = (b, self.stamp)
        self.peak = max(self.peak, len(self.held))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def free(self, data):
        index = data.draw(st.sampled_from(sorted(self.held)))
        b, stamp = self.held.pop(index)
        assert int.from_bytes(bytes(memoryview(b)[:8]), "little") == stamp
        self.pool.free(b)
        self.freed.append(b)

    @precondition(lambda self: self.freed)
    @rule(data=st.data())
    def double_free(self, data):
        b = data.draw(st.sampled_from(self.freed))
        with pytest.raises(BlockError):
            self.pool.free(b)

    @rule()
    def with_block(self):
        if len(self.held) == self.count:
            with pytest.raises(PoolExhaustedError):
                self.pool.block()
            return
        with self.pool.block() as b:
            assert b.index not in self.held
            self.peak = max(self.peak, len(self.held) + 1)
            assert self.pool.stats().in_use == len(self.held) + 1
        assert b.freed

    @invariant()
    def stats_match_model(self):
        s = self.pool.stats()
        assert s.in_use == len(self.held)
        assert s.high_water == self.peak
        assert s.capacity == self.count


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# ---- concurrency ----------------------------------------------------------------------------------
def churn(pool, threads, iterations, hold, seed, use_cache=False):
    """Run `threads` nogil churn loops at once; return the per-thread results
    as an array of (violations, bad_frees, allocs, exhausted, checksum)."""
    gate = _testing.StartGate(threads)
    outs = np.zeros((threads, 5), dtype=np.uint64)
    run_threads(*[(_testing.pool_churn,
                   (pool, gate, t + 1, iterations, hold, seed * 1000 + t, use_cache, outs[t]))
                  for t in range(threads)])
    return outs


def check_pool_whole(pool):
    """After the churn: nothing in use, and the free list holds every block exactly once."""
    count = pool.block_count
    assert pool.stats().in_use == 0
    out = np.zeros(count + 8, dtype=np.uint64)
    n = _testing.pool_drain_indices(pool, out)
    assert n == count, f"free list has {n} entries, expected {count}"
    assert np.array_equal(np.sort(out[:n]), np.arange(count, dtype=np.uint64))
    # and through Python too
    blocks = drain(pool)
    assert sorted(b.index for b in blocks) == list(range(count))
    del blocks
    assert pool.stats().in_use == 0


@pytest.mark.concurrency
@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads, count, hold", [
    (4, 64, 4),      # roomy: mostly contention on the head
    (4, 8, 4),       # scarce: exhaustion every few steps
    (3, 3, 2),       # as many blocks as threads: the same blocks cycle constantly
])
def test_concurrent_churn_no_block_held_twice(threads, count, hold, seed):
    pool = MemoryPool(64, count, alignment=8)
    iterations = scaled(8_000_000, minimum=5_000)
    outs = churn(pool, threads, iterations, hold, seed)
    violations, bad_frees, allocs, exhausted = (int(outs[:, i].sum()) for i in range(4))
    assert violations == 0, f"{violations} blocks were held by two threads at once"
    assert bad_frees == 0
    assert allocs > 0 and (outs[:, 2] > 0).all()      # every thread got blocks
    assert pool.stats().high_water <= count
    check_pool_whole(pool)


@pytest.mark.concurrency
@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads, count, hold", [
    (4, 256, 8),     # caches refill and flush in batches of 16
    (2, 8, 4),       # fewer blocks than one cache holds: caches run dry and hoard
])
def test_concurrent_churn_with_thread_caches(threads, count, hold, seed):
    """Per-thread magazines (tio_pool_cache) over one shared pool."""
    pool = MemoryPool(64, count, alignment=8)
    iterations = scaled(2_000_000, minimum=5_000)
    outs = churn(pool, threads, iterations, hold, seed, use_cache=True)
    assert int(outs[:, 0].sum()) == 0
    assert int(outs[:, 1].sum()) == 0
    assert (outs[:, 2] > 0).all()
    check_pool_whole(pool)


@pytest.mark.concurrency
@pytest.mark.timeout(120)
def test_concurrent_python_alloc_free_with_nogil_churn(seed):
    """Python threads using alloc()/free() while nogil loops churn the same pool."""
    pool = MemoryPool(64, 32, alignment=8)
    iterations = scaled(200_000, minimum=5_000)
    gate = _testing.StartGate(2)
    outs = np.zeros((2, 5), dtype=np.uint64)
    errors = []

    def python_user(tid):
        rng = random.Random(seed + tid)
        for i in range(scaled(20_000, minimum=500)):
            try:
                b = pool.alloc()
            except PoolExhaustedError:
                continue
            arr = np.frombuffer(b, dtype=np.uint64)
            arr[:] = tid * 10**9 + i
            if rng.random() < 0.5:
                time.sleep(0)                      # let others in while we hold it
            if not (arr == tid * 10**9 + i).all():
                errors.append((tid, i))
            del arr
            pool.free(b)

    run_threads(*[(_testing.pool_churn, (pool, gate, t + 1, iterations, 4, seed + t, False, outs[t]))
                  for t in range(2)],
                (python_user, (100,)), (python_user, (200,)))
    assert errors == []
    assert int(outs[:, 0].sum()) == 0 and int(outs[:, 1].sum()) == 0
    check_pool_whole(pool)


def test_bench_pool_harness_runs():
    results = _testing.bench_pool(20_000)
    assert "alloc+free same thread" in results
    assert "alloc+free, 2 threads contending" in results
    assert all(v > 0 for v in results.values())
