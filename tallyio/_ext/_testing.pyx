# cython: language_level=3
"""Test and benchmark helpers compiled with the package (not public API).

Concurrency tests drive these nogil loops from several Python threads at once:
each function releases the GIL for its whole loop, so the threads really run
in parallel, and a StartGate lines them up so they start together.  Each
component adds its helpers in testing/<component>.pxi; bench_* functions time
a nogil loop and return nanoseconds per operation (each folds what it took
into a checksum it returns or checks, so the loop cannot be optimised away).
"""
from libc.stdint cimport uint64_t, int64_t, uintptr_t
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_init_u64,
                                  tio_atomic_fetch_add_u64_acqrel,
                                  tio_atomic_load_u64_acquire, tio_backoff, tio_cpu_relax,
                                  tio_backoff_reset, tio_backoff_snooze,
                                  tio_now_ns, TIO_OK, TIO_EMPTY, TIO_RETRY)


cdef class StartGate:
    """A spin barrier for `parties` threads, waited on without the GIL."""
    cdef tio_atomic_u64 arrived
    cdef readonly uint64_t parties

    def __cinit__(self, uint64_t parties):
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self.parties = parties
        tio_atomic_init_u64(&self.arrived, 0)

    cdef void wait(self) noexcept nogil:
        cdef tio_backoff backoff
        tio_backoff_reset(&backoff)
        # acq_rel: every thread's setup happens-before every thread's start
        tio_atomic_fetch_add_u64_acqrel(&self.arrived, 1)
        # acquire: pairs with the other parties' fetch_add above.  Back off
        # (spin, then yield): with more threads than cores a pure spin would
        # keep the late arrivals off the CPU.
        while tio_atomic_load_u64_acquire(&self.arrived) < self.parties:
            tio_backoff_snooze(&backoff)


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    """splitmix64 finaliser: a cheap, well-spread checksum step."""
    x ^= x >> 30
    x *= 0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= 0x94d049bb133111ebULL
    x ^= x >> 31
    return x


include "testing/spsc.pxi"
include "testing/mpmc.pxi"
include "testing/deque.pxi"
include "testing/pool.pxi"
