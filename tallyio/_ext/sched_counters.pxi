# The scheduler's small shared helpers: the owner-written counters (one writer,
# relaxed load + store), the xorshift rng that picks victims and candidates,
# and a worker's queued load as placement and rebalancing read it.  Touches only
# the counter fields of tio_worker; included by scheduler.pyx.


cdef inline uint64_t rng_next(uint64_t *state) noexcept nogil:
    """xorshift64*: cheap, good enough to pick victims and candidates."""
    cdef uint64_t x = state[0]
    if x == 0:
        x = 0x9E3779B97F4A7C15ULL ^ <uint64_t><uintptr_t>state
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * 0x2545F4914F6CDD1DULL


cdef inline void counter_add(tio_atomic_u64 *c, uint64_t v) noexcept nogil:
    # relaxed load + store: owner-written counter (one writer), read by stats()
    tio_atomic_store_u64_relaxed(c, tio_atomic_load_u64_relaxed(c) + v)


cdef inline void counter_add_release(tio_atomic_u64 *c, uint64_t v) noexcept nogil:
    # release store (one writer): a task's completion counters.  join()'s
    # acquire loads pair with it, so everything the task (and its error
    # reporting) did is visible once join() sees it counted.
    tio_atomic_store_u64_release(c, tio_atomic_load_u64_relaxed(c) + v)


cdef inline uint64_t worker_queued_us(tio_worker *w) noexcept nogil:
    """Queued estimated microseconds (never negative: enq is counted before
    the push, deq/out after the pop)."""
    # relaxed: load figures are estimates, they order nothing
    cdef uint64_t deq = tio_atomic_load_u64_relaxed(&w.deq_us) + tio_atomic_load_u64_relaxed(&w.out_us)
    cdef uint64_t enq = tio_atomic_load_u64_relaxed(&w.enq_us) + tio_atomic_load_u64_relaxed(&w.own_enq_us)
    if <int64_t>(enq - deq) < 0:
        return 0
    return enq - deq


cdef inline uint64_t worker_queued_tasks(tio_worker *w) noexcept nogil:
    cdef uint64_t deq = tio_atomic_load_u64_relaxed(&w.deq_tasks) + tio_atomic_load_u64_relaxed(&w.out_tasks)
    cdef uint64_t enq = tio_atomic_load_u64_relaxed(&w.enq_tasks) + tio_atomic_load_u64_relaxed(&w.own_enq_tasks)
    if <int64_t>(enq - deq) < 0:
        return 0
    return enq - deq
