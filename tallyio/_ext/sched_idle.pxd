# cython: language_level=3
"""The scheduler's idle word (tio_sched.idle): how many workers search for work
(low 32 bits) and how many sleep (high 32 bits), in one atomic u64 so a worker
moves between the two counts in one step.  Owns only the word's encoding and
its transitions; touches nothing but the word.  README: "Parking and waking".

Every transition is a seq_cst RMW (the sleep protocol's Dekker pairs need
them); each returns the word before the change, and checks with
TIO_DEBUG_ASSERT that the count it decrements was not zero.
"""
from libc.stdint cimport uint32_t, uint64_t
from tallyio._ext.common cimport tio_atomic_u64, tio_atomic_fetch_add_u64_seqcst

from tallyio._ext.sched_externs cimport TIO_DEBUG_ASSERT

cdef extern from *:
    """
    #define TIO_IDLE_SEARCHING 1ull                 /* one searcher: low half */
    #define TIO_IDLE_SLEEPING  0x100000000ull       /* one sleeper: high half */
    """
    const uint64_t TIO_IDLE_SEARCHING
    const uint64_t TIO_IDLE_SLEEPING


cdef inline uint32_t idle_searching(uint64_t word) noexcept nogil:
    """Workers searching for work (spinning or about to park)."""
    return <uint32_t>(word & 0xFFFFFFFFULL)


cdef inline uint32_t idle_sleeping(uint64_t word) noexcept nogil:
    """Workers parked (or announcing that they park)."""
    return <uint32_t>(word >> 32)


cdef inline bint idle_wake_needed(uint64_t word) noexcept nogil:
    """Nobody searches but somebody sleeps: new work needs a wake-up."""
    return idle_searching(word) == 0 and idle_sleeping(word) != 0


cdef inline uint64_t idle_begin_search(tio_atomic_u64 *idle) noexcept nogil:
    """A running worker found nothing: one searcher more."""
    return tio_atomic_fetch_add_u64_seqcst(idle, TIO_IDLE_SEARCHING)


cdef inline uint64_t idle_end_search(tio_atomic_u64 *idle) noexcept nogil:
    """A searcher found work (or exits): one searcher fewer."""
    cdef uint64_t prev = tio_atomic_fetch_add_u64_seqcst(idle, <uint64_t>0 - TIO_IDLE_SEARCHING)
    TIO_DEBUG_ASSERT(idle_searching(prev) >= 1)
    return prev


cdef inline uint64_t idle_to_sleeping(tio_atomic_u64 *idle) noexcept nogil:
    """A searcher announces it parks: searching -> sleeping in one step."""
    cdef uint64_t prev = tio_atomic_fetch_add_u64_seqcst(idle, TIO_IDLE_SLEEPING - TIO_IDLE_SEARCHING)
    TIO_DEBUG_ASSERT(idle_searching(prev) >= 1)
    return prev


cdef inline uint64_t idle_to_searching(tio_atomic_u64 *idle) noexcept nogil:
    """A sleeper is woken (or cancels its sleep) as a searcher: sleeping ->
    searching in one step, so a submitter never sees it as neither."""
    cdef uint64_t prev = tio_atomic_fetch_add_u64_seqcst(idle, TIO_IDLE_SEARCHING - TIO_IDLE_SLEEPING)
    TIO_DEBUG_ASSERT(idle_sleeping(prev) >= 1)
    return prev


cdef inline uint64_t idle_end_sleep(tio_atomic_u64 *idle) noexcept nogil:
    """A worker that announced sleep found its own work: one sleeper fewer,
    and it runs (counted in neither half)."""
    cdef uint64_t prev = tio_atomic_fetch_add_u64_seqcst(idle, <uint64_t>0 - TIO_IDLE_SLEEPING)
    TIO_DEBUG_ASSERT(idle_sleeping(prev) >= 1)
    return prev
