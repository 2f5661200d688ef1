# cython: language_level=3
"""The circuit breaker's C API (tio_breaker.h) and its Python face
``CircuitBreaker`` (owned by tallyio.engine; touches nothing else).

C API for native strategies and executors (cimport it; acquire and record are
``noexcept nogil``, lock-free, never allocate, safe on any number of threads):

    from tallyio.engine._breaker cimport (CircuitBreaker, tio_breaker, tio_breaker_acquire,
                                          tio_breaker_record, TIO_BRK_SUCCESS, TIO_BRK_FAILURE)
    cdef CircuitBreaker breaker = engine_breaker          # the Python object owns the C struct
    cdef tio_breaker *b = breaker.b                       # keep `breaker` alive meanwhile
    cdef uint64_t permit
    with nogil:
        if tio_breaker_acquire(b, &permit) == TIO_OK:
            ...                                           # the call
            tio_breaker_record(b, permit, TIO_BRK_SUCCESS, elapsed_ns)

Python listeners of a transition made from C run on the next Python-level
operation on the breaker (any thread), or on ``poll_transitions()``.
The protocol is in docs/breaker.md.
"""
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef extern from "tio_breaker.h" nogil:
    enum:
        TIO_BRK_CLOSED
        TIO_BRK_OPEN
        TIO_BRK_HALF_OPEN
        TIO_BRK_SUCCESS
        TIO_BRK_FAILURE
        TIO_BRK_EXCLUDED
        TIO_BRK_WINDOW_COUNT
        TIO_BRK_WINDOW_TIME
        TIO_BRK_MAX_PROBES
        TIO_BRK_MAX_WINDOW
        TIO_BRK_MAX_BUCKETS
        TIO_BRK_LOG
    uint64_t TIO_BRK_READ_CLOCK

    ctypedef struct tio_breaker:
        pass

    int tio_breaker_init(tio_breaker *b, uint32_t window_kind, uint64_t window_size,
                         uint64_t window_ns, uint64_t nbuckets, uint64_t minimum_calls,
                         double threshold, uint64_t slow_call_ns, uint64_t open_ns,
                         uint32_t probes)
    void tio_breaker_destroy(tio_breaker *b)
    # hot path: TIO_OK (permit set) or TIO_FULL (refused, counted)
    int tio_breaker_acquire(tio_breaker *b, uint64_t *permit)
    int tio_breaker_acquire_at(tio_breaker *b, uint64_t now_ns, uint64_t *permit)
    # hot path: TIO_OK, or TIO_INVALID for an unknown outcome
    int tio_breaker_record(tio_breaker *b, uint64_t permit, int outcome, uint64_t duration_ns)
    int tio_breaker_record_at(tio_breaker *b, uint64_t permit, int outcome, uint64_t duration_ns,
                              uint64_t now_ns)
    void tio_breaker_reset(tio_breaker *b)
    void tio_breaker_force_open(tio_breaker *b)
    uint32_t tio_breaker_state(const tio_breaker *b)
    # reading (stats, listeners)
    enum:
        TIO_BRK_N_SUCCESS
        TIO_BRK_N_FAILURE
        TIO_BRK_N_SLOW
        TIO_BRK_N_EXCLUDED
        TIO_BRK_N_REJECTED
        TIO_BRK_N_TRANSITIONS
        TIO_BRK_N_LATE
        TIO_BRK_N_COUNTERS
    uint64_t tio_breaker_word(const tio_breaker *b)
    uint64_t tio_brk_gen_of(uint64_t sw)
    uint32_t tio_brk_state_of(uint64_t sw)
    uint64_t tio_brk_admitted_of(uint64_t sw)
    void tio_breaker_counters(const tio_breaker *b, uint64_t *out)
    void tio_breaker_window(tio_breaker *b, uint64_t now_ns, uint64_t *calls, int64_t *failures)
    int tio_breaker_log_read(const tio_breaker *b, uint64_t gen, uint32_t *frm, uint32_t *to)


cdef class CircuitBreaker:
    cdef tio_breaker *b
    cdef readonly str name
    cdef object _clock            # None: tio_now_ns; else a callable returning ns
    cdef object _exclude
    cdef list _listeners
    cdef object _dispatch_lock
    cdef uint64_t _seen_gen       # last generation whose transition listeners were dispatched
    cdef uint64_t _listener_errors
    cdef uint64_t _missed_transitions
    cdef dict _config
    cdef bint _timed              # slow_call_ns set: call() measures durations
    cdef object __weakref__

    cdef uint64_t _now(self) except? 0
    cdef int _acquire(self, uint64_t *permit) except -1
    cdef int _record(self, uint64_t permit, int outcome, uint64_t duration_ns) except -1
    cdef int _record_exc(self, uint64_t permit, object exc, uint64_t duration_ns) except -1
    cdef int _after(self) except -1
