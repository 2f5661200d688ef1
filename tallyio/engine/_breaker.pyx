"""The circuit breaker (owned by tallyio.engine; the state machine, windows
and counters are C in tallyio/_ext/include/tio_breaker.h, the protocol is in
docs/breaker.md).  This module is its Python face: argument checking, the
``exclude`` predicate, ``call()``, and the listeners, which run outside any
lock, after the C transition that concerns them.

    >>> from tallyio.engine._breaker import CircuitBreaker, BreakerState
    >>> now = [0]
    >>> b = CircuitBreaker("demo", window_size=4, minimum_calls=2, open_seconds=1.0,
    ...                    half_open_probes=1, clock=lambda: now[0])
    >>> b.acquire(), b.record_failure(), b.acquire(), b.record_failure()
    (True, None, True, None)
    >>> b.state, b.acquire()
    (<BreakerState.OPEN: 1>, False)
    >>> now[0] = 1_000_000_000                    # the open period has passed
    >>> b.acquire(), b.state, b.acquire()         # one probe
    (True, <BreakerState.HALF_OPEN: 2>, False)
    >>> b.record_success(); b.state
    <BreakerState.CLOSED: 0>
"""
import enum
import logging
import threading
from typing import NamedTuple

from libc.stdint cimport uint32_t, uint64_t, int64_t
from libc.math cimport isnan, isinf

from tallyio._ext.common cimport (tio_aligned_calloc, tio_aligned_free, tio_cpu_relax, tio_now_ns,
                                  TIO_CACHE_LINE, TIO_OK, TIO_NOMEM)
from tallyio.errors import BreakerOpenError

__all__ = ["CircuitBreaker", "BreakerState", "BreakerStats"]

_log = logging.getLogger("tallyio.engine.breaker")


class BreakerState(enum.IntEnum):
    """Where a circuit breaker is."""

    CLOSED = TIO_BRK_CLOSED
    """calls go ahead; outcomes fill the sliding window."""
    OPEN = TIO_BRK_OPEN
    """every call is refused until the open period has passed (or ``reset()``)."""
    HALF_OPEN = TIO_BRK_HALF_OPEN
    """exactly ``half_open_probes`` calls go ahead; all succeeding closes, one failing re-opens."""


_STATES = (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN)


class BreakerStats(NamedTuple):
    """A snapshot of a breaker's counters (each read on its own: totals taken
    while other threads record may be a few calls apart)."""

    name: str
    state: BreakerState
    calls: int
    #: outcomes recorded: successes + failures + excluded.
    successes: int
    failures: int
    #: failed calls, slow successes included.
    slow: int
    #: calls slower than ``slow_call_ns`` (counted as failures).
    rejected: int
    #: acquires refused (open, or half-open with the probe budget spent).
    excluded: int
    #: outcomes the ``exclude`` predicate made count as neither.
    transitions: int
    #: state changes since the breaker was made.
    failure_rate: float
    #: failures / calls in the current window (0.0 when not closed or empty).
    window_calls: int
    window_failures: int
    late: int
    #: outcomes that arrived after the breaker had moved on (not in any window).
    listener_errors: int
    #: listener calls that raised (logged, not propagated).
    missed_transitions: int
    #: transitions no listener heard of: more than 1024 happened (in C, with no
    #: Python-level operation on the breaker) between two deliveries.


cdef class CircuitBreaker:
    """A circuit breaker in native code: callers on any number of threads may
    acquire and record at once (see docs/breaker.md).

    window="count" keeps the last ``window_size`` outcomes; window="time" the
    outcomes of the last ``window_seconds`` in ``time_buckets`` buckets.  Once
    the window holds at least ``minimum_calls`` outcomes and the failure rate
    reaches ``failure_rate_threshold`` (0 < x <= 1), the breaker opens for
    ``open_seconds``; then it admits exactly ``half_open_probes`` calls: all
    succeeding close it, one failing re-opens it.  A call slower than
    ``slow_call_ns`` counts as a failure; exceptions for which ``exclude(exc)``
    is true count as neither.  ``clock``: a callable returning monotonic
    nanoseconds (for tests); default the C core's ``tio_now_ns``.

        >>> b = CircuitBreaker("node", window="time", window_seconds=10.0, minimum_calls=5)
        >>> b.call(sum, [1, 2, 3])
        6
        >>> b.stats().successes, b.state.name
        (1, 'CLOSED')
    """

    def __cinit__(self, *args, **kwargs):
        self.b = NULL

    def __init__(self, str name, *, str window="count", window_size=100, window_seconds=10.0,
                 time_buckets=20, minimum_calls=10, failure_rate_threshold=0.5,
                 slow_call_ns=None, open_seconds=5.0, half_open_probes=3, exclude=None,
                 clock=None):
        if self.b != NULL:
            raise RuntimeError("CircuitBreaker.__init__ called twice")
        if not name:
            raise ValueError("name must be a non-empty string")
        if window not in ("count", "time"):
            raise ValueError(f"window must be 'count' or 'time', got {window!r}")
        window_size = _int_arg("window_size", window_size, 1, TIO_BRK_MAX_WINDOW)
        time_buckets = _int_arg("time_buckets", time_buckets, 1, TIO_BRK_MAX_BUCKETS)
        minimum_calls = _int_arg("minimum_calls", minimum_calls, 1, 2 ** 32)
        half_open_probes = _int_arg("half_open_probes", half_open_probes, 1, TIO_BRK_MAX_PROBES)
        threshold = _float_arg("failure_rate_threshold", failure_rate_threshold)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"failure_rate_threshold must be in (0, 1], got {failure_rate_threshold!r}")
        open_ns = _seconds_ns("open_seconds", open_seconds)
        window_ns = _seconds_ns("window_seconds", window_seconds)
        slow_ns = 0 if slow_call_ns is None else _int_arg("slow_call_ns", slow_call_ns, 1, 2 ** 63)
        if window == "count" and minimum_calls > window_size:
            raise ValueError(f"minimum_calls ({minimum_calls}) must be <= window_size ({window_size}) "
                             "for a count window, or the breaker could never open")
        if window == "time" and window_ns < time_buckets:
            raise ValueError(f"window_seconds ({window_seconds!r}) is too short for {time_buckets} buckets")
        if exclude is not None and not callable(exclude):
            raise TypeError(f"exclude must be a callable taking an exception, got {type(exclude).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning nanoseconds, got {type(clock).__name__}")
        self.b = <tio_breaker *>tio_aligned_calloc(TIO_CACHE_LINE, sizeof(tio_breaker))
        if self.b == NULL:
            raise MemoryError("CircuitBreaker: cannot allocate its state")
        st = tio_breaker_init(self.b, TIO_BRK_WINDOW_COUNT if window == "count" else TIO_BRK_WINDOW_TIME,
                              window_size, window_ns, time_buckets, minimum_calls, threshold,
                              slow_ns, open_ns, half_open_probes)
        if st != TIO_OK:
            tio_aligned_free(self.b)
            self.b = NULL
            if st == TIO_NOMEM:
                raise MemoryError(f"CircuitBreaker: cannot allocate a window of {window_size} outcomes")
            raise ValueError("CircuitBreaker: the C core refused the configuration")
        self.name = name
        self._clock = clock
        self._timed = slow_ns != 0        # a duration only matters to the slow-call rule
        self._exclude = exclude
        self._listeners = []
        self._dispatch_lock = threading.Lock()
        self._seen_gen = 0
        self._listener_errors = 0
        self._missed_transitions = 0
        self._config = dict(window=window, window_size=window_size if window == "count" else None,
                            window_seconds=float(window_seconds) if window == "time" else None,
                            time_buckets=time_buckets if window == "time" else None,
                            minimum_calls=minimum_calls, failure_rate_threshold=threshold,
                            slow_call_ns=slow_call_ns, open_seconds=float(open_seconds),
                            half_open_probes=half_open_probes)

    def __dealloc__(self):
        if self.b != NULL:
            tio_breaker_destroy(self.b)
            tio_aligned_free(self.b)
            self.b = NULL

    def __repr__(self):
        return f"CircuitBreaker({self.name!r}, state={self.state.name})"

    # ---- internals --------------------------------------------------------
    cdef uint64_t _now(self) except? 0:
        if self._clock is None:
            return TIO_BRK_READ_CLOCK
        t = self._clock()
        if t < 0:
            raise ValueError(f"clock returned a negative time: {t!r}")
        return <uint64_t>t

    cdef int _acquire(self, uint64_t *permit) except -1:
        if self._clock is None:
            tio_breaker_acquire(self.b, permit)
        else:
            tio_breaker_acquire_at(self.b, self._now(), permit)
        return 0

    cdef int _record(self, uint64_t permit, int outcome, uint64_t duration_ns) except -1:
        if self._clock is None:
            tio_breaker_record(self.b, permit, outcome, duration_ns)
        else:
            tio_breaker_record_at(self.b, permit, outcome, duration_ns, self._now())
        return 0

    cdef int _record_exc(self, uint64_t permit, object exc, uint64_t duration_ns) except -1:
        cdef int outcome = TIO_BRK_FAILURE
        if not isinstance(exc, Exception):
            outcome = TIO_BRK_EXCLUDED     # KeyboardInterrupt, SystemExit: not the callee's health
        elif self._exclude is not None:
            try:
                if self._exclude(exc):
                    outcome = TIO_BRK_EXCLUDED
            except Exception:
                # a broken predicate must not hide the call's own exception
                _log.error("circuit breaker %r: exclude predicate raised; counting a failure",
                           self.name, exc_info=True)
        return self._record(permit, outcome, duration_ns)

    cdef int _after(self) except -1:
        # listeners: only when a transition happened since the last dispatch
        if tio_brk_gen_of(tio_breaker_word(self.b)) != self._seen_gen:
            self.poll_transitions()
        return 0

    # ---- the hot path -----------------------------------------------------
    def acquire(self) -> bool:
        """May a call go ahead now?  False when open, or half-open with its
        probe budget spent (the refusal is counted)."""
        cdef uint64_t permit
        self._acquire(&permit)
        self._after()
        return permit != 0

    def permit(self) -> int:
        """Like ``acquire`` but returns the permit (0: refused): pass it to
        ``record_*(..., permit=)`` so an outcome that arrives after the
        breaker has moved on is never taken for a probe's."""
        cdef uint64_t permit
        self._acquire(&permit)
        self._after()
        return permit

    def record_success(self, long long duration_ns=0, unsigned long long permit=0):
        """The admitted call succeeded after ``duration_ns`` (a slow success
        counts as a failure)."""
        if duration_ns < 0:
            raise ValueError(f"duration_ns must be >= 0, got {duration_ns}")
        self._record(permit, TIO_BRK_SUCCESS, duration_ns)
        self._after()

    def record_failure(self, long long duration_ns=0, unsigned long long permit=0):
        """The admitted call failed."""
        if duration_ns < 0:
            raise ValueError(f"duration_ns must be >= 0, got {duration_ns}")
        self._record(permit, TIO_BRK_FAILURE, duration_ns)
        self._after()

    def record_exception(self, exc, long long duration_ns=0, unsigned long long permit=0):
        """The admitted call raised ``exc``: excluded if ``exclude(exc)`` is
        true (or ``exc`` is not an ``Exception``), else a failure."""
        if not isinstance(exc, BaseException):
            raise TypeError(f"exc must be an exception, got {type(exc).__name__}")
        if duration_ns < 0:
            raise ValueError(f"duration_ns must be >= 0, got {duration_ns}")
        self._record_exc(permit, exc, duration_ns)
        self._after()

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` behind the breaker: raises
        ``BreakerOpenError`` (without calling ``fn``) when refused; otherwise
        records the outcome and its duration, and returns or re-raises."""
        cdef uint64_t permit, t0, t1
        self._acquire(&permit)
        if permit == 0:
            self._after()
            raise BreakerOpenError(self.name, self.state)
        if self._clock is None:
            # durations only feed the slow-call rule: without one, no clock reads
            t0 = tio_now_ns() if self._timed else 0
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                t1 = tio_now_ns() if self._timed else 0
                self._record_exc(permit, exc, t1 - t0 if t1 > t0 else 0)
                self._after()
                raise
            t1 = tio_now_ns() if self._timed else 0
            tio_breaker_record(self.b, permit, TIO_BRK_SUCCESS, t1 - t0 if t1 > t0 else 0)
        else:
            t0 = self._now()
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                t1 = self._now()
                self._record_exc(permit, exc, t1 - t0 if t1 > t0 else 0)
                self._after()
                raise
            t1 = self._now()
            self._record(permit, TIO_BRK_SUCCESS, t1 - t0 if t1 > t0 else 0)
        self._after()
        return result

    def now_ns(self) -> int:
        """The breaker's clock: the injected ``clock()`` or the C core's
        monotonic ``tio_now_ns`` (what ``call`` times durations with)."""
        return tio_now_ns() if self._clock is None else self._now()

    # ---- reading ----------------------------------------------------------
    @property
    def state(self):
        """The current ``BreakerState`` (an OPEN breaker whose period has
        passed stays OPEN until the next acquire half-opens it)."""
        self._after()
        return _STATES[tio_breaker_state(self.b)]

    @property
    def config(self) -> dict:
        """The settings the breaker was made with."""
        return dict(self._config)

    def stats(self):
        """A ``BreakerStats`` snapshot."""
        cdef uint64_t c[TIO_BRK_N_COUNTERS]
        cdef uint64_t wcalls
        cdef int64_t wfail
        self._after()
        tio_breaker_counters(self.b, c)
        tio_breaker_window(self.b, self._now(), &wcalls, &wfail)
        return BreakerStats(
            self.name, _STATES[tio_breaker_state(self.b)],
            c[TIO_BRK_N_SUCCESS] + c[TIO_BRK_N_FAILURE] + c[TIO_BRK_N_EXCLUDED],
            c[TIO_BRK_N_SUCCESS], c[TIO_BRK_N_FAILURE], c[TIO_BRK_N_SLOW], c[TIO_BRK_N_REJECTED],
            c[TIO_BRK_N_EXCLUDED], c[TIO_BRK_N_TRANSITIONS],
            (wfail / <double>wcalls) if wcalls else 0.0, wcalls, wfail, c[TIO_BRK_N_LATE],
            self._listener_errors, self._missed_transitions)

    # ---- operator controls -----------------------------------------------
    def reset(self) -> None:
        """Close the breaker with an empty window, whatever its state."""
        tio_breaker_reset(self.b)
        self._after()

    def force_open(self) -> None:
        """Open the breaker until ``reset()`` (it does not half-open by itself)."""
        tio_breaker_force_open(self.b)
        self._after()

    # ---- listeners --------------------------------------------------------
    def add_listener(self, fn) -> None:
        """Call ``fn(breaker, old_state, new_state)`` on every transition.

        Listeners run on the thread of the first Python-level operation on the
        breaker after the transition, outside any lock (a listener may use the
        breaker); one that raises is logged and counted in
        ``stats().listener_errors``, never propagated."""
        if not callable(fn):
            raise TypeError(f"listener must be callable, got {type(fn).__name__}")
        self._listeners.append(fn)

    def remove_listener(self, fn) -> None:
        """Stop calling ``fn`` (ValueError if it was not added)."""
        self._listeners.remove(fn)

    def poll_transitions(self) -> int:
        """Deliver the transitions made since the last delivery (by any
        thread, C code included) to the listeners; returns how many.  Every
        Python-level operation does this; native-only users call it."""
        cdef uint64_t start, cur, g
        cdef uint32_t frm = 0, to = 0
        cdef int r
        cdef list todo = []
        # claim a range of generations under the lock, call listeners outside it:
        # each transition is delivered exactly once, and a listener that uses the
        # breaker (or waits on a thread that does) cannot deadlock on the lock
        with self._dispatch_lock:
            cur = tio_brk_gen_of(tio_breaker_word(self.b))
            start = self._seen_gen
            if cur == start:
                return 0
            self._seen_gen = cur
        g = start
        while g != cur:
            g = (g + 1) & 0x7fffffff
            while True:
                r = tio_breaker_log_read(self.b, g, &frm, &to)
                if r != 0:
                    break
                tio_cpu_relax()   # its winner is between the CAS and the log store
            if r < 0:
                self._missed_transitions += 1
            elif frm != to:
                todo.append((_STATES[frm], _STATES[to]))
        for old, new in todo:
            for fn in tuple(self._listeners):
                try:
                    fn(self, old, new)
                except Exception:
                    self._listener_errors += 1
                    _log.error("circuit breaker %r: listener %r raised on %s -> %s",
                               self.name, fn, old.name, new.name, exc_info=True)
        return len(todo)


cdef object _int_arg(str what, object value, object lo, object hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be in {lo}..{hi}, got {value}")
    return value


cdef double _float_arg(str what, object value) except? -1.0:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    cdef double v = value
    if isnan(v) or isinf(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return v


cdef uint64_t _seconds_ns(str what, object value) except? 0:
    cdef double v = _float_arg(what, value)
    if not v > 0 or v > 1e9:
        raise ValueError(f"{what} must be > 0 seconds (and below 1e9), got {value!r}")
    if v * 1e9 < 1:
        raise ValueError(f"{what} must be at least 1 ns, got {value!r}")
    return <uint64_t>(v * 1e9)
