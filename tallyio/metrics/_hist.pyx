"""Native HDR-style latency histograms (owned by tallyio.metrics; the C code is
tallyio/_ext/include/tio_hist.h, whose header comment states the layout, the
precision and the one-writer protocol).

* ``Histogram``: one histogram, one writer thread at a time; values are
  non-negative ints (nanoseconds by convention).
* ``HistogramSet``: one ``Histogram`` per recording thread, merged on read, so
  any number of threads record without sharing a cache line or a lock.
"""
import threading
import weakref

import numpy

from cpython.buffer cimport Py_buffer, PyBuffer_Release
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.long cimport PyLong_CheckExact
from libc.stdint cimport uint64_t, int32_t
from libc.math cimport isnan

from tallyio._ext.common cimport (
    tio_atomic_load_u64_relaxed, tio_atomic_store_u64_relaxed, tio_now_ns, TIO_OK, TIO_NOMEM,
)
from tallyio._ext.checks cimport acquire_u64_buffer
from tallyio.errors import MetricError

__all__ = ["Histogram", "HistogramSet", "Buckets"]

from collections import namedtuple

Buckets = namedtuple("Buckets", ["lowest", "highest", "counts"])
Buckets.__doc__ = """Cells of a Histogram: ``lowest[i] .. highest[i]`` (inclusive) held
``counts[i]`` values; three numpy uint64 arrays of one length."""

#: one hour in nanoseconds: the default highest trackable value
DEFAULT_HIGHEST = 3_600_000_000_000
_U64_MAX = 0xFFFFFFFFFFFFFFFF


cdef uint64_t _value_slow(object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    """The non-fast-path conversion: numpy integers, and every bad input with
    an error saying what was wrong."""
    if isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{what} must be an int (nanoseconds), got {type(value).__name__}")
    if not isinstance(value, int):
        if not hasattr(type(value), "__index__"):
            raise TypeError(f"{what} must be an int (nanoseconds), got {type(value).__name__} {value!r}")
        value = value.__index__()
    if value < 0:
        raise MetricError(f"{what} must be >= 0, got {value}")
    if value > _U64_MAX:
        raise MetricError(f"{what} must be < 2**64, got {value}")
    return <uint64_t>value


cdef extern from "Python.h":
    # unsigned long is 64 bits on the LP64 platforms tallyio builds for; the
    # error (negative, too large) is checked by hand below, so noexcept
    unsigned long PyLong_AsUnsignedLong(object value) noexcept


cdef inline uint64_t _value(object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    # fast path: an exact int converts in a few instructions, with no Python
    # comparison; anything else (and any error) takes the slow path, which
    # names what was wrong
    cdef unsigned long v
    if PyLong_CheckExact(value):
        v = PyLong_AsUnsignedLong(value)
        if v != <unsigned long>-1 or PyErr_Occurred() == NULL:
            return v
        PyErr_Clear()
    return _value_slow(value, what)


cdef class Histogram:
    """An HDR-style log-linear histogram of non-negative integer values
    (nanoseconds by convention) kept in C: constant memory, constant record
    cost, ``significant_digits`` (1..4) decimal digits of precision, values up
    to ``highest`` (larger ones are recorded as ``highest`` and counted in
    ``saturated``).

    One thread records into a histogram at a time (use a ``HistogramSet`` for
    many); any thread may read it while it records and sees a slightly stale
    but consistent view.

    >>> h = Histogram(significant_digits=3)
    >>> for v in range(1, 10_001):
    ...     h.record(v * 1000)                     # 1 us .. 10 ms
    >>> h.count, h.min, h.max
    (10000, 1000, 10000000)
    >>> h.percentile(50), h.percentile(99)         # true: 5,000,000 and 9,900,000
    (5001215, 9904127)
    >>> abs(h.percentile(99) - 9_900_000) / 9_900_000 < 1e-3
    True
    >>> h.mean
    5000500.0
    """

    def __cinit__(self, *, int significant_digits=3, highest=DEFAULT_HIGHEST, lowest=1):
        cdef uint64_t lo, hi
        cdef int status
        if not TIO_HIST_MIN_DIGITS <= significant_digits <= TIO_HIST_MAX_DIGITS:
            raise MetricError(f"significant_digits must be in {TIO_HIST_MIN_DIGITS}..{TIO_HIST_MAX_DIGITS}, "
                              f"got {significant_digits}")
        lo = _value(lowest, "lowest")
        hi = _value(highest, "highest")
        if lo < 1:
            raise MetricError(f"lowest must be >= 1, got {lowest}")
        if hi < 2 * lo:
            raise MetricError(f"highest must be >= 2 * lowest ({2 * lo}), got {highest}")
        if hi > TIO_HIST_MAX_TRACKABLE:
            raise MetricError(f"highest must be <= 2**62, got {highest}")
        status = tio_hist_init(&self.h, lo, hi, significant_digits)
        if status == TIO_NOMEM:
            raise MemoryError(f"Histogram: cannot allocate {self.h.counts_len} cells")
        if status != TIO_OK:
            raise MetricError(f"Histogram: invalid layout (digits {significant_digits}, lowest {lo}, highest {hi})")

    def __dealloc__(self):
        tio_hist_destroy(&self.h)

    # ---- recording (the owner thread) --------------------------------------

    def record(self, value):
        """Record one value (a non-negative int).  Never allocates; a value
        above ``highest`` is recorded as ``highest`` and counted in
        ``saturated``.

        >>> h = Histogram(); h.record(250); h.count
        1
        """
        tio_hist_record(&self.h, _value(value, "Histogram.record: value"))

    def record_n(self, value, count):
        """Record ``count`` occurrences of ``value``.

        >>> h = Histogram(); h.record_n(1000, 5); h.count, h.sum
        (5, 5000)
        """
        tio_hist_record_n(&self.h, _value(value, "Histogram.record_n: value"),
                          _value(count, "Histogram.record_n: count"))

    def record_corrected(self, value, expected_interval):
        """Record ``value`` measured by a loop meant to measure every
        ``expected_interval``, plus the measurements a stall of that length hid
        (coordinated-omission correction, as HdrHistogram's
        ``recordValueWithExpectedInterval``): ``value - expected_interval``,
        ``value - 2 * expected_interval``, ... down to the last one >=
        ``expected_interval``.  ``expected_interval`` 0 records ``value`` alone.

        >>> h = Histogram(); h.record_corrected(1000, 300)   # 1000, 700, 400
        >>> h.count, h.sum, h.min
        (3, 2100, 400)
        """
        tio_hist_record_corrected(&self.h, _value(value, "Histogram.record_corrected: value"),
                                  _value(expected_interval, "Histogram.record_corrected: expected_interval"))

    def record_many(self, values):
        """Record every value of a 1-D numpy uint64 array, without the GIL
        (other threads run meanwhile; this thread stays the only writer).

        >>> import numpy as np
        >>> h = Histogram(); h.record_many(np.arange(1, 101, dtype=np.uint64)); h.count, h.max
        (100, 100)
        """
        cdef Py_buffer view
        cdef const uint64_t *data
        cdef Py_ssize_t i, n
        acquire_u64_buffer(values, &view, False, "Histogram.record_many")
        try:
            data = <const uint64_t *>view.buf
            n = view.shape[0]
            with nogil:
                for i in range(n):
                    tio_hist_record(&self.h, data[i])
        finally:
            PyBuffer_Release(&view)

    def record_corrected_many(self, values, expected_interval):
        """``record_corrected`` for every value of a 1-D numpy uint64 array, without the GIL."""
        cdef Py_buffer view
        cdef const uint64_t *data
        cdef Py_ssize_t i, n
        cdef uint64_t interval = _value(expected_interval, "Histogram.record_corrected_many: expected_interval")
        acquire_u64_buffer(values, &view, False, "Histogram.record_corrected_many")
        try:
            data = <const uint64_t *>view.buf
            n = view.shape[0]
            with nogil:
                for i in range(n):
                    tio_hist_record_corrected(&self.h, data[i], interval)
        finally:
            PyBuffer_Release(&view)

    def merge(self, Histogram other not None):
        """Add every value ``other`` holds into this histogram (same layout:
        same significant_digits, lowest and highest).  ``other`` may be
        recording on another thread meanwhile: what it held at the moment of
        reading is added.

        >>> a, b = Histogram(), Histogram(); a.record(5); b.record(7); a.merge(b); a.count, a.max
        (2, 7)
        """
        if not tio_hist_same_layout(&self.h, &other.h):
            raise MetricError(f"Histogram.merge: layouts differ ({self._layout()} vs {other._layout()})")
        if other is self:
            other = other.copy()
        with nogil:
            tio_hist_merge(&self.h, &other.h)

    def reset(self):
        """Forget every value.  Call it from the recording thread, or when no
        thread records into this histogram (a reset racing a record may lose
        either).

        >>> h = Histogram(); h.record(3); h.reset(); h.count, h.max
        (0, None)
        """
        tio_hist_reset(&self.h)

    def copy(self):
        """A new histogram of the same layout holding the same values.

        >>> h = Histogram(); h.record(9); h.copy().count
        1
        """
        cdef Histogram out = Histogram(significant_digits=self.h.significant_digits,
                                       highest=self.h.highest_trackable, lowest=self.h.lowest_discernible)
        tio_hist_merge(&out.h, &self.h)
        return out

    # ---- reading (any thread) ------------------------------------------------

    @property
    def count(self):
        """How many values were recorded."""
        return tio_atomic_load_u64_relaxed(&self.h.total)

    def __len__(self):
        return tio_atomic_load_u64_relaxed(&self.h.total)

    @property
    def sum(self):
        """Sum of the values recorded (exact, modulo 2**64)."""
        return tio_atomic_load_u64_relaxed(&self.h.sum)

    @property
    def min(self):
        """Smallest value recorded (exact), None when empty."""
        if tio_atomic_load_u64_relaxed(&self.h.total) == 0:
            return None
        return tio_atomic_load_u64_relaxed(&self.h.min)

    @property
    def max(self):
        """Largest value recorded (exact, or ``highest`` if it saturated), None when empty."""
        if tio_atomic_load_u64_relaxed(&self.h.total) == 0:
            return None
        return tio_atomic_load_u64_relaxed(&self.h.max)

    @property
    def mean(self):
        """Exact mean of the values recorded, NaN when empty."""
        cdef uint64_t n = tio_atomic_load_u64_relaxed(&self.h.total)
        if n == 0:
            return float("nan")
        return tio_atomic_load_u64_relaxed(&self.h.sum) / <double>n

    @property
    def saturated(self):
        """How many values were above ``highest`` (recorded as ``highest``)."""
        return tio_atomic_load_u64_relaxed(&self.h.saturated)

    @property
    def significant_digits(self):
        return self.h.significant_digits

    @property
    def highest(self):
        """Highest trackable value."""
        return self.h.highest_trackable

    @property
    def lowest(self):
        """Resolution of the lowest cells (``lowest`` rounded down to a power of two)."""
        return self.h.lowest_discernible

    @property
    def relative_precision(self):
        """Upper bound of (reported - true) / true for any percentile: one cell
        width over the value, 1/1024 at 3 digits, 1/128 at 2.

        >>> Histogram(significant_digits=3).relative_precision
        0.0009765625
        """
        return 1.0 / self.h.sub_bucket_half_count

    @property
    def nbytes(self):
        """Memory held by the cells (constant: fixed at construction)."""
        return self.h.counts_len * 8

    def percentile(self, double p):
        """The nearest-rank ``p``-th percentile (0 <= p <= 100): the smallest
        recorded value with at least ceil(p/100 * count) values at or below it
        (``numpy.percentile(..., method="inverted_cdf")``), reported as the
        highest value of its cell, so at most ``relative_precision`` above the
        true one.  ``percentile(0)`` is the lowest value of the first cell.
        None when empty.

        >>> h = Histogram(); h.record_many(__import__("numpy").arange(1, 1001, dtype="uint64"))
        >>> h.percentile(50), h.percentile(99.9), h.percentile(100)
        (500, 999, 1000)
        """
        cdef uint64_t v
        if isnan(p) or not 0.0 <= p <= 100.0:
            raise MetricError(f"Histogram.percentile: p must be in 0..100, got {p}")
        if tio_atomic_load_u64_relaxed(&self.h.total) == 0:
            return None
        with nogil:
            v = tio_hist_value_at_percentile(&self.h, p)
        return v

    def percentiles(self, ps=(50.0, 90.0, 99.0, 99.9, 99.99)):
        """``{p: percentile(p)}`` for each p of ``ps``.

        >>> h = Histogram(); h.record_n(40, 99); h.record(4000); h.percentiles((50, 100))
        {50: 40, 100: 4001}
        """
        return {p: self.percentile(p) for p in ps}

    def count_at_or_below(self, value):
        """How many recorded values are certainly <= ``value`` (every cell
        whose highest value is <= value): a Prometheus ``le`` bucket.

        >>> h = Histogram(); h.record_many(__import__("numpy").array([1, 5, 9], dtype="uint64"))
        >>> h.count_at_or_below(5)
        2
        """
        return tio_hist_count_at_or_below(&self.h, _value(value, "Histogram.count_at_or_below: value"))

    def counts(self):
        """Every cell's count as a numpy uint64 array (a snapshot; its sum is
        self-consistent even while a writer records)."""
        out = numpy.zeros(self.h.counts_len, dtype=numpy.uint64)
        cdef uint64_t[::1] view = out
        with nogil:
            tio_hist_snapshot(&self.h, &view[0])
        return out

    def buckets(self, bint nonzero=True):
        """The cells as ``Buckets(lowest, highest, counts)``, three numpy uint64
        arrays: every cell, or (default) only those that hold values.

        >>> h = Histogram(); h.record_n(3000, 2)
        >>> b = h.buckets(); [int(x) for x in b.lowest], [int(x) for x in b.highest], [int(x) for x in b.counts]
        ([3000], [3001], [2])
        """
        counts = self.counts()
        index = numpy.flatnonzero(counts) if nonzero else numpy.arange(self.h.counts_len)
        lowest = numpy.empty(len(index), dtype=numpy.uint64)
        highest = numpy.empty(len(index), dtype=numpy.uint64)
        cdef uint64_t[::1] lo = lowest
        cdef uint64_t[::1] hi = highest
        cdef long long[::1] idx = index.astype(numpy.int64)
        cdef Py_ssize_t i
        for i in range(len(index)):
            lo[i] = tio_hist_lowest_at(&self.h, <int32_t>idx[i])
            hi[i] = tio_hist_highest_at(&self.h, <int32_t>idx[i])
        return Buckets(lowest, highest, counts[index])

    # ---- layout and serialisation --------------------------------------------

    def _layout(self):
        return (f"significant_digits={self.h.significant_digits}, lowest={self.h.lowest_discernible}, "
                f"highest={self.h.highest_trackable}")

    def to_dict(self):
        """A JSON-able description (layout, non-empty cells, exact summary)
        that ``from_dict`` turns back into an equal histogram.

        >>> h = Histogram(significant_digits=2); h.record_n(123, 4)
        >>> Histogram.from_dict(h.to_dict()).percentiles((50,)) == h.percentiles((50,))
        True
        """
        counts = self.counts()
        index = numpy.flatnonzero(counts)
        return {
            "significant_digits": self.h.significant_digits,
            "lowest": int(self.h.lowest_discernible),
            "highest": int(self.h.highest_trackable),
            "index": [int(i) for i in index],
            "counts": [int(c) for c in counts[index]],
            "sum": int(tio_atomic_load_u64_relaxed(&self.h.sum)),
            "min": self.min,
            "max": self.max,
            "saturated": int(tio_atomic_load_u64_relaxed(&self.h.saturated)),
        }

    @classmethod
    def from_dict(cls, state):
        """The histogram ``to_dict`` described (MetricError if it is malformed)."""
        cdef Histogram h
        cdef uint64_t total = 0, c
        cdef Py_ssize_t i
        try:
            h = Histogram(significant_digits=int(state["significant_digits"]), highest=int(state["highest"]),
                          lowest=int(state["lowest"]))
            index, counts = list(state["index"]), list(state["counts"])
            if len(index) != len(counts):
                raise MetricError("Histogram.from_dict: 'index' and 'counts' differ in length")
            for i in range(len(index)):
                if not 0 <= int(index[i]) < h.h.counts_len:
                    raise MetricError(f"Histogram.from_dict: cell {index[i]} outside 0..{h.h.counts_len - 1}")
                c = _value(counts[i], "Histogram.from_dict: count")
                tio_atomic_store_u64_relaxed(&h.h.counts[<int32_t>int(index[i])], c)
                total += c
            tio_atomic_store_u64_relaxed(&h.h.total, total)
            tio_atomic_store_u64_relaxed(&h.h.sum, _value(state["sum"], "Histogram.from_dict: sum"))
            tio_atomic_store_u64_relaxed(&h.h.saturated, _value(state["saturated"], "Histogram.from_dict: saturated"))
            if total:
                tio_atomic_store_u64_relaxed(&h.h.min, _value(state["min"], "Histogram.from_dict: min"))
                tio_atomic_store_u64_relaxed(&h.h.max, _value(state["max"], "Histogram.from_dict: max"))
        except (KeyError, TypeError) as exc:
            raise MetricError(f"Histogram.from_dict: malformed state ({type(exc).__name__}: {exc})") from None
        return h

    def __reduce__(self):
        return (Histogram.from_dict, (self.to_dict(),))

    def __eq__(self, other):
        """Same layout, same counts in every cell, same exact summary."""
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_dict() == (<Histogram>other).to_dict()

    __hash__ = None

    def __repr__(self):
        n = self.count
        if n == 0:
            return f"Histogram({self._layout()}, empty)"
        return (f"Histogram({self._layout()}, count={n}, min={self.min}, p50={self.percentile(50)}, "
                f"p99={self.percentile(99)}, max={self.max})")


class _Lease:
    """Held in a thread's threading.local: when the thread ends, its dict is
    cleared and the lease hands the thread's histogram back to the set, so a
    later thread reuses it (memory stays bounded by the threads alive at once,
    not by every thread that ever recorded)."""

    __slots__ = ("owner", "histogram", "__weakref__")

    def __init__(self, owner, histogram):
        self.owner = weakref.ref(owner)
        self.histogram = histogram

    def __del__(self):
        owner = self.owner()
        if owner is not None:
            owner._retire(self.histogram)


cdef class HistogramSet:
    """One ``Histogram`` per recording thread, merged on read: any number of
    threads record at once without locks or shared cache lines (each
    histogram keeps exactly one writer).

    ``local()`` returns the calling thread's histogram (made on its first
    call; keep it in a local variable on hot paths); when that thread ends its
    histogram, with everything it recorded, passes to the next new thread, so
    memory is bounded by the threads recording at once.  ``grow(n)`` /
    ``histogram(i)`` are for code that assigns recorders itself (a scheduler's
    worker i); ``merged()`` gives a new Histogram holding everything recorded
    so far.

    >>> hs = HistogramSet(significant_digits=2)
    >>> rec = hs.local(); rec.record(1500); rec.record(2500)
    >>> hs.merged().count, len(hs)
    (2, 1)
    """

    cdef readonly int significant_digits
    cdef readonly object highest
    cdef readonly object lowest
    cdef list _members
    cdef list _retired
    cdef object _local
    cdef object _lock
    cdef object __weakref__

    def __cinit__(self, *, int significant_digits=3, highest=DEFAULT_HIGHEST, lowest=1):
        Histogram(significant_digits=significant_digits, highest=highest, lowest=lowest)   # validates
        self.significant_digits = significant_digits
        self.highest = highest
        self.lowest = lowest
        self._members = []
        self._retired = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _new(self):
        h = Histogram(significant_digits=self.significant_digits, highest=self.highest, lowest=self.lowest)
        with self._lock:
            self._members.append(h)
        return h

    def _retire(self, h):
        # called from an ending thread: its last record happens-before the next
        # owner's first one through this lock
        with self._lock:
            self._retired.append(h)

    def local(self):
        """The calling thread's own histogram (made, or inherited from an
        ended thread, on first use)."""
        try:
            return self._local.histogram
        except AttributeError:
            pass
        with self._lock:
            h = self._retired.pop() if self._retired else None
        if h is None:
            h = self._new()
        self._local.lease = _Lease(self, h)
        self._local.histogram = h
        return h

    def record(self, value):
        """Record into the calling thread's histogram (``local().record``)."""
        try:
            h = self._local.histogram
        except AttributeError:
            h = self.local()
        (<Histogram>h).record(value)

    def grow(self, int n):
        """Make sure at least ``n`` histograms exist; returns them as a list (for
        code that hands histogram i to worker i)."""
        while len(self._members) < n:
            self._new()
        return list(self._members[:n])

    def histogram(self, int i):
        """The i-th histogram (IndexError if fewer exist; see ``grow``)."""
        return self._members[i]

    def __len__(self):
        return len(self._members)

    def merged(self):
        """A new Histogram with every member's values (members may be recording
        meanwhile: each contributes what it held when read).

        >>> hs = HistogramSet(); hs.grow(3)[2].record(42); hs.merged().max
        42
        """
        cdef Histogram out = Histogram(significant_digits=self.significant_digits, highest=self.highest,
                                       lowest=self.lowest)
        cdef Histogram member
        with self._lock:
            members = list(self._members)
        for member in members:
            with nogil:
                tio_hist_merge(&out.h, &member.h)
        return out

    def reset(self):
        """Reset every member: only when no thread records (see Histogram.reset)."""
        for member in list(self._members):
            member.reset()

    def __repr__(self):
        return f"HistogramSet({len(self._members)} recorders, merged={self.merged()!r})"


# ---- benchmark helper (tallyio.bench._metrics): the C-level record cost -------

def _bench_record_c(uint64_t n, int significant_digits=3):
    """Nanoseconds per tio_hist_record in a nogil loop of ``n`` records over
    4096 pre-drawn values spread over 1 ns .. 1 s (log-uniform), and the
    histogram's count afterwards (== n: the records really happened)."""
    cdef Histogram h = Histogram(significant_digits=significant_digits)
    rng = numpy.random.default_rng(12345)
    values = numpy.exp(rng.uniform(0, numpy.log(1e9), 4096)).astype(numpy.uint64)
    cdef uint64_t[::1] v = values
    cdef uint64_t i, start, end
    with nogil:
        start = tio_now_ns()
        for i in range(n):
            tio_hist_record(&h.h, v[i & 4095])
        end = tio_now_ns()
    return (end - start) / <double>n, h.count


cdef Histogram histogram_from_c(const tio_hist *src):
    """See _hist.pxd."""
    cdef Histogram out = Histogram(significant_digits=src.significant_digits, highest=src.highest_trackable,
                                   lowest=src.lowest_discernible)
    with nogil:
        tio_hist_merge(&out.h, src)
    return out
