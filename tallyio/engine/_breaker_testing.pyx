"""nogil loops over the circuit breaker's C API (tio_breaker.h), for the
concurrency tests and the ``breaker`` benchmark group: threads racing for a
half-open probe budget, threads recording outcomes at once, and the closed
breaker's acquire+record cost measured from C.

Owns nothing; touches only the breakers and start lines it is given.

    >>> from tallyio.engine._breaker import CircuitBreaker
    >>> b = CircuitBreaker("t", window_size=10, minimum_calls=10)
    >>> line = StartLine()
    >>> race_acquire(b, line, 1, 0, 5)          # closed: all five go ahead
    5
    >>> ns, admitted = closed_acquire_record_ns(b, 1000)
    >>> admitted
    1000
"""
from libc.stdint cimport uint32_t, uint64_t
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_init_u64, tio_atomic_load_u64_acquire,
                                  tio_atomic_fetch_add_u64_acqrel, tio_cpu_relax, tio_now_ns, TIO_OK)
from tallyio.engine._breaker cimport (CircuitBreaker, tio_breaker, tio_breaker_acquire,
                                      tio_breaker_acquire_at, tio_breaker_record,
                                      tio_breaker_record_at, TIO_BRK_SUCCESS, TIO_BRK_FAILURE,
                                      TIO_BRK_EXCLUDED)

__all__ = ["StartLine", "race_acquire", "race_failures", "hammer", "closed_acquire_record_ns"]


cdef class StartLine:
    """Threads arrive and spin until ``n`` have arrived, so a race starts at once.
    Reusable: each ``wait(n)`` call waits for the next multiple of ``n``."""
    cdef tio_atomic_u64 arrived

    def __cinit__(self):
        tio_atomic_init_u64(&self.arrived, 0)


cdef inline void _wait(StartLine line, uint64_t n) noexcept nogil:
    cdef uint64_t mine = tio_atomic_fetch_add_u64_acqrel(&line.arrived, 1) + 1
    cdef uint64_t target = ((mine + n - 1) // n) * n
    while tio_atomic_load_u64_acquire(&line.arrived) < target:
        tio_cpu_relax()


def race_acquire(CircuitBreaker breaker, StartLine line, uint64_t nthreads, uint64_t now_ns,
                 uint64_t attempts):
    """After ``nthreads`` threads reach ``line``, try ``attempts`` acquires at
    time ``now_ns`` without the GIL (0: the real clock); returns how many were
    admitted.  Records nothing, so a half-open budget stays spent."""
    cdef tio_breaker *b = breaker.b
    cdef uint64_t _i, permit, admitted = 0
    with nogil:
        _wait(line, nthreads)
        for _i in range(attempts):
            if now_ns == 0:
                if tio_breaker_acquire(b, &permit) == TIO_OK:
                    admitted += 1
            elif tio_breaker_acquire_at(b, now_ns, &permit) == TIO_OK:
                admitted += 1
    return admitted


def race_failures(CircuitBreaker breaker, StartLine line, uint64_t nthreads, uint64_t now_ns,
                  uint64_t calls):
    """After ``line``, ``calls`` times: acquire at ``now_ns`` and, if
    admitted, record a failure.  Returns (admitted, refused)."""
    cdef tio_breaker *b = breaker.b
    cdef uint64_t _i, permit, admitted = 0, refused = 0
    with nogil:
        _wait(line, nthreads)
        for _i in range(calls):
            if tio_breaker_acquire_at(b, now_ns, &permit) == TIO_OK:
                admitted += 1
                tio_breaker_record_at(b, permit, TIO_BRK_FAILURE, 0, now_ns)
            else:
                refused += 1
    return admitted, refused


def hammer(CircuitBreaker breaker, StartLine line, uint64_t nthreads, uint64_t calls,
           uint32_t fail_permille, uint32_t exclude_permille, uint64_t seed):
    """After ``line``, ``calls`` times on the real clock: acquire, and if
    admitted record a failure (``fail_permille``/1000 of the time), an
    excluded outcome (``exclude_permille``) or a success.  Returns
    (admitted, refused, successes, failures, excluded) as this thread saw them."""
    cdef tio_breaker *b = breaker.b
    cdef uint64_t _i, permit, x = seed | 1, r
    cdef uint64_t admitted = 0, refused = 0, ok = 0, bad = 0, excl = 0
    with nogil:
        _wait(line, nthreads)
        for _i in range(calls):
            if tio_breaker_acquire(b, &permit) != TIO_OK:
                refused += 1
                continue
            admitted += 1
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            r = x % 1000
            if r < fail_permille:
                bad += 1
                tio_breaker_record(b, permit, TIO_BRK_FAILURE, 0)
            elif r < fail_permille + exclude_permille:
                excl += 1
                tio_breaker_record(b, permit, TIO_BRK_EXCLUDED, 0)
            else:
                ok += 1
                tio_breaker_record(b, permit, TIO_BRK_SUCCESS, 0)
    return admitted, refused, ok, bad, excl


def closed_acquire_record_ns(CircuitBreaker breaker, uint64_t iterations):
    """ns per ``tio_breaker_acquire`` + ``tio_breaker_record(SUCCESS)`` pair in
    a nogil loop (the breaker should be closed), and the number admitted (the
    loop's result, so it cannot be optimised away; each call is atomics on
    shared memory anyway)."""
    cdef tio_breaker *b = breaker.b
    cdef uint64_t _i, permit, admitted = 0, t0, t1
    with nogil:
        t0 = tio_now_ns()
        for _i in range(iterations):
            if tio_breaker_acquire(b, &permit) == TIO_OK:
                admitted += 1
                tio_breaker_record(b, permit, TIO_BRK_SUCCESS, 1000)
        t1 = tio_now_ns()
    return (t1 - t0) / <double>(iterations if iterations else 1), admitted
