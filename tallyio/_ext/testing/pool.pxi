# Test and benchmark helpers for MemoryPool (included by _testing.pyx; not
# public API).  Every loop runs without the GIL after waiting on a StartGate;
# the tests check the results in Python.
import os as _pool_os
import threading as _pool_threading

from libc.stdint cimport uint32_t
from libc.stdlib cimport malloc as _pool_malloc, free as _pool_c_free
from tallyio._ext.pool cimport (
    MemoryPool, tio_pool, tio_pool_alloc, tio_pool_free, tio_pool_alloc_index,
    tio_pool_free_index, tio_pool_index_of, tio_pool_block_ptr, tio_pool_cache,
    tio_pool_cache_init, tio_pool_cache_alloc, tio_pool_cache_free,
    tio_pool_cache_flush, tio_pool_pop_target, TIO_POOL_CACHE_SIZE,
    TIO_POOL_INDEX_MASK,
)
from tallyio._ext.common cimport (tio_atomic_cas_u64_acquire, tio_atomic_fetch_add_u64_relaxed,
                                  tio_backoff, tio_backoff_reset, tio_backoff_snooze,
                                  TIO_EXHAUSTED, TIO_DOUBLE_FREE, TIO_FOREIGN)

# How many blocks one churning thread may hold at once (at most).
POOL_CHURN_MAX_HOLD = 16


def pool_c_alloc(MemoryPool pool):
    """tio_pool_alloc through the C API: (status, address or 0)."""
    cdef void *block = NULL
    cdef int st = tio_pool_alloc(pool.handle, &block)
    return st, <uintptr_t>block


def pool_c_free(MemoryPool pool, uintptr_t address):
    """tio_pool_free of a raw address through the C API: the status code."""
    return tio_pool_free(pool.handle, <void *>address)


def pool_c_index_of(MemoryPool pool, uintptr_t address):
    """tio_pool_index_of: (status, index)."""
    cdef uint32_t index = 0
    cdef int st = tio_pool_index_of(pool.handle, <void *>address, &index)
    return st, index


def pool_c_block_ptr(MemoryPool pool, uint32_t index):
    """tio_pool_block_ptr: the address of block `index`."""
    return <uintptr_t>tio_pool_block_ptr(pool.handle, index)


def pool_c_stride(MemoryPool pool):
    """Distance between consecutive blocks (block_size rounded up to alignment)."""
    return pool.handle.stride


def pool_stale_pop_scenario(MemoryPool pool):
    """Replay the ABA interleaving deterministically on a pool with >= 2 free
    blocks: a pop reads head (top A, B below) and computes its CAS target;
    meanwhile A and B are popped and A is pushed back (head's index is A
    again, with a different block below).  Then the stale pop's CAS runs.

    Returns (head index is A again, stale CAS succeeded).  A correct pool
    answers (True, False); if the CAS succeeded the free list now contains B
    although B is allocated."""
    cdef tio_pool *p = pool.handle
    cdef uint32_t a, b
    cdef uint64_t seen = tio_atomic_load_u64_acquire(&p.head)
    cdef uint64_t target = tio_pool_pop_target(p, seen)
    if tio_pool_alloc_index(p, &a) != TIO_OK or tio_pool_alloc_index(p, &b) != TIO_OK:
        raise ValueError("needs a pool with at least 2 free blocks")
    tio_pool_free_index(p, a)
    cdef bint same_index = (tio_atomic_load_u64_acquire(&p.head) & TIO_POOL_INDEX_MASK) == a
    cdef bint stale_won = tio_atomic_cas_u64_acquire(&p.head, &seen, target)
    if not stale_won:
        tio_pool_free_index(p, b)
    return same_index, stale_won


cdef inline uint64_t _pool_next_random(uint64_t *state) noexcept nogil:
    # xorshift64: a cheap per-thread stream
    cdef uint64_t x = state[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    state[0] = x
    return x


cdef inline void _pool_tag(void *block, uint64_t last, uint64_t tag) noexcept nogil:
    # plain (non-atomic) writes on purpose: two holders of one block race here,
    # which both the tag check and ThreadSanitizer catch
    (<uint64_t *>block)[0] = tag
    (<uint64_t *>block)[last] = tag


cdef inline bint _pool_tag_intact(void *block, uint64_t last, uint64_t tag) noexcept nogil:
    return (<uint64_t *>block)[0] == tag and (<uint64_t *>block)[last] == tag


def pool_churn(MemoryPool pool, StartGate gate, uint64_t thread_id, uint64_t iterations,
               uint64_t hold, uint64_t seed, bint use_cache, uint64_t[::1] out):
    """One thread of the pool stress test, run without the GIL.

    Randomly allocates (holding at most `hold` blocks) and frees (a random held
    block), `iterations` steps.  Every block it takes gets an ownership tag
    (thread id << 40 | sequence) in its first and last 8 bytes; before freeing
    it checks the tag is still its own.  With use_cache, goes through a private
    tio_pool_cache (magazine) instead of the shared list.

    out[0] tag violations (a block held twice), out[1] failed frees (status
    != OK), out[2] successful allocs, out[3] times the pool was exhausted,
    out[4] checksum of the tags freed."""
    if hold < 1 or hold > POOL_CHURN_MAX_HOLD:
        raise ValueError(f"hold must be 1..{POOL_CHURN_MAX_HOLD}")
    if pool.handle.block_size < 16:
        raise ValueError("pool_churn needs blocks of >= 16 bytes")
    if out.shape[0] < 5:
        raise ValueError("out needs 5 entries")
    cdef tio_pool *p = pool.handle
    cdef tio_pool_cache cache
    cdef void *held[16]
    cdef uint64_t tags[16]
    cdef uint64_t nheld = 0, it, j, tag, rng = seed * 2 + 1
    cdef uint64_t violations = 0, bad_frees = 0, allocs = 0, exhausted = 0, checksum = 0
    cdef uint64_t last = p.block_size // 8 - 1
    cdef void *block
    cdef int st
    cdef tio_backoff backoff
    tio_pool_cache_init(&cache, p)
    with nogil:
        tio_backoff_reset(&backoff)
        gate.wait()
        for it in range(iterations):
            _pool_next_random(&rng)
            if nheld < hold and (nheld == 0 or (rng & 1)):
                if use_cache:
                    st = tio_pool_cache_alloc(&cache, &block)
                else:
                    st = tio_pool_alloc(p, &block)
                if st == TIO_OK:
                    tag = (thread_id << 40) | it
                    _pool_tag(block, last, tag)
                    held[nheld] = block
                    tags[nheld] = tag
                    nheld += 1
                    allocs += 1
                    tio_backoff_reset(&backoff)
                    continue
                exhausted += 1
                if nheld == 0:
                    # others hold every block: let them run (2 cores, 4 threads)
                    tio_backoff_snooze(&backoff)
                    continue
            # free a random held block, checking it is still ours
            j = (rng >> 11) % nheld
            block = held[j]
            if not _pool_tag_intact(block, last, tags[j]):
                violations += 1
            checksum += mix64(tags[j])
            if use_cache:
                st = tio_pool_cache_free(&cache, block)
            else:
                st = tio_pool_free(p, block)
            if st != TIO_OK:
                bad_frees += 1
            nheld -= 1
            held[j] = held[nheld]
            tags[j] = tags[nheld]
        while nheld > 0:
            nheld -= 1
            if not _pool_tag_intact(held[nheld], last, tags[nheld]):
                violations += 1
            checksum += mix64(tags[nheld])
            if use_cache:
                st = tio_pool_cache_free(&cache, held[nheld])
            else:
                st = tio_pool_free(p, held[nheld])
            if st != TIO_OK:
                bad_frees += 1
        if use_cache:
            tio_pool_cache_flush(&cache, 0)
    out[0] = violations
    out[1] = bad_frees
    out[2] = allocs
    out[3] = exhausted
    out[4] = checksum


def pool_drain_indices(MemoryPool pool, uint64_t[::1] out):
    """Allocate through the C API until exhausted, writing each block's index
    to `out`; then free them all again.  Returns how many there were (a
    block on the free list twice would show up twice)."""
    cdef tio_pool *p = pool.handle
    cdef uint64_t n = 0, i
    cdef uint32_t index
    with nogil:
        while n < <uint64_t>out.shape[0] and tio_pool_alloc_index(p, &index) == TIO_OK:
            out[n] = index
            n += 1
        for i in range(n):
            tio_pool_free_index(p, <uint32_t>out[i])
    return n


# ---------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------

cdef enum:
    _POOL_MODE_PAIR = 0          # tio_pool_alloc + tio_pool_free
    _POOL_MODE_INDEX = 1         # tio_pool_alloc_index + tio_pool_free_index
    _POOL_MODE_BATCH16 = 2       # 16 allocs then 16 frees (cost per pair)
    _POOL_MODE_CACHE = 3         # through a per-thread tio_pool_cache
    _POOL_MODE_MALLOC = 4        # glibc malloc(block_size) + free (reference)
    _POOL_MODE_LOCKED4 = 5       # 4 relaxed fetch_adds on a private line (the floor of a pair)


cdef uint64_t _pool_bench_loop(tio_pool *p, uint64_t n, int mode) noexcept nogil:
    """n alloc+free pairs; returns a checksum of the addresses (0 = failure)."""
    cdef uint64_t i, k, sum = 1
    cdef uint32_t index
    cdef void *block
    cdef void *batch[16]
    cdef tio_pool_cache cache
    cdef tio_atomic_u64 counter
    if mode == _POOL_MODE_PAIR:
        for i in range(n):
            if tio_pool_alloc(p, &block) != TIO_OK:
                return 0
            sum += <uintptr_t>block
            (<char *>block)[0] = <char>i
            tio_pool_free(p, block)
    elif mode == _POOL_MODE_INDEX:
        for i in range(n):
            if tio_pool_alloc_index(p, &index) != TIO_OK:
                return 0
            sum += index
            tio_pool_free_index(p, index)
    elif mode == _POOL_MODE_BATCH16:
        for i in range(n // 16):
            for k in range(16):
                if tio_pool_alloc(p, &batch[k]) != TIO_OK:
                    return 0
                sum += <uintptr_t>batch[k]
            for k in range(16):
                tio_pool_free(p, batch[15 - k])
    elif mode == _POOL_MODE_CACHE:
        tio_pool_cache_init(&cache, p)
        for i in range(n):
            if tio_pool_cache_alloc(&cache, &block) != TIO_OK:
                return 0
            sum += <uintptr_t>block
            (<char *>block)[0] = <char>i
            tio_pool_cache_free(&cache, block)
        tio_pool_cache_flush(&cache, 0)
    elif mode == _POOL_MODE_MALLOC:
        for i in range(n):
            block = _pool_malloc(p.block_size)
            if block == NULL:
                return 0
            (<char *>block)[0] = <char>i
            sum += <uintptr_t>block
            _pool_c_free(block)
    elif mode == _POOL_MODE_LOCKED4:
        tio_atomic_init_u64(&counter, 0)
        for i in range(n):
            # relaxed RMWs are still locked instructions on x86-64
            tio_atomic_fetch_add_u64_relaxed(&counter, 1)
            tio_atomic_fetch_add_u64_relaxed(&counter, i)
            tio_atomic_fetch_add_u64_relaxed(&counter, 1)
            sum += tio_atomic_fetch_add_u64_relaxed(&counter, 1)
    return sum


def _pool_bench_thread(MemoryPool pool, StartGate gate, uint64_t n, int mode,
                       int cpu, uint64_t[::1] out):
    """Body of one benchmark thread: pin to `cpu` (if >= 0), wait at the gate,
    run the loop; out[0] = elapsed ns, out[1] = checksum."""
    cdef uint64_t t0, t1, sum
    if cpu >= 0:
        _pool_os.sched_setaffinity(0, {cpu})
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        sum = _pool_bench_loop(pool.handle, n, mode)
        t1 = tio_now_ns()
    out[0] = t1 - t0
    out[1] = sum


def _pool_bench_threads(pools, uint64_t n, int mode):
    """Run one loop per pool in `pools` on its own thread (pinned to CPUs 0,
    1, ... when enough CPUs are allowed); ns per pair, averaged over threads."""
    import numpy as np
    cpus = sorted(_pool_os.sched_getaffinity(0))
    pin = len(cpus) >= len(pools)
    gate = StartGate(len(pools))
    outs = [np.zeros(2, dtype=np.uint64) for _ in pools]
    threads = [_pool_threading.Thread(
        target=_pool_bench_thread,
        args=(pl, gate, n, mode, cpus[i] if pin else -1, outs[i]))
        for i, pl in enumerate(pools)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outs:
        if o[1] == 0:
            raise RuntimeError("benchmark loop failed (pool exhausted?)")
    return sum(float(o[0]) for o in outs) / len(outs) / n


def bench_pool(n: int = 2_000_000) -> dict:
    """C-level costs of the pool in nanoseconds per alloc+free pair, from nogil
    loops of `n` pairs (checksums checked, so nothing is optimised away).
    Multi-thread cases start two threads pinned to CPUs 0 and 1 when allowed;
    their figure is each thread's time per pair while both run."""
    cdef uint64_t sum, t0, t1
    if n < 1:
        raise ValueError("bench_pool: n must be >= 1")
    cdef uint64_t count = n
    cdef MemoryPool pool = MemoryPool(256, 1024)
    cdef tio_pool *cp = pool.handle
    results = {}
    for name, mode in (("alloc+free same thread", _POOL_MODE_PAIR),
                       ("alloc_index+free_index same thread", _POOL_MODE_INDEX),
                       ("16 allocs then 16 frees same thread (per pair)", _POOL_MODE_BATCH16),
                       ("per-thread cache alloc+free same thread", _POOL_MODE_CACHE),
                       ("glibc malloc(256)+free same thread (reference)", _POOL_MODE_MALLOC),
                       ("4 uncontended locked RMWs (floor of one pair)", _POOL_MODE_LOCKED4)):
        with nogil:
            _pool_bench_loop(cp, count // 10, mode)   # warm up
            t0 = tio_now_ns()
            sum = _pool_bench_loop(cp, count, mode)
            t1 = tio_now_ns()
        if sum == 0:
            raise RuntimeError(f"benchmark loop {name!r} failed")
        results[name] = (t1 - t0) / n
    results["alloc+free, 2 threads contending"] = _pool_bench_threads([pool, pool], n, _POOL_MODE_PAIR)
    results["16 allocs then 16 frees, 2 threads contending"] = _pool_bench_threads([pool, pool], n, _POOL_MODE_BATCH16)
    results["per-thread cache alloc+free, 2 threads sharing a pool"] = _pool_bench_threads(
        [pool, pool], n, _POOL_MODE_CACHE)
    results["alloc+free, 2 threads, a pool each (no sharing)"] = _pool_bench_threads(
        [pool, MemoryPool(256, 1024)], n, _POOL_MODE_PAIR)
    if pool.stats().in_use != 0:
        raise RuntimeError("benchmark leaked blocks")
    return results
