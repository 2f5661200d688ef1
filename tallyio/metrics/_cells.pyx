"""Counter and gauge cells of the metrics registry (owned by tallyio.metrics;
touches nothing else).

A cell's update is one C operation done while the calling thread holds the
GIL, so concurrent Python threads never lose an increment (a Python
``self.value += n`` can: the read and the write are separate bytecodes) and
no lock is taken.
"""
from libc.math cimport isfinite

from tallyio.errors import MetricError

__all__ = ["CounterCell", "GaugeCell"]

cdef unsigned long long _U64_MAX = 0xFFFFFFFFFFFFFFFF


cdef class CounterCell:
    """A monotonically increasing integer count.

    >>> c = CounterCell(); c.inc(); c.inc(41); c.value
    42
    """

    cdef unsigned long long _value

    def inc(self, amount=1):
        """Add ``amount`` (a non-negative int; MetricError otherwise)."""
        cdef unsigned long long n
        if type(amount) is not int or amount < 0:
            if isinstance(amount, bool) or not isinstance(amount, int) and not hasattr(type(amount), "__index__"):
                raise TypeError(f"counter increment must be an int, got {type(amount).__name__} {amount!r}")
            amount = amount.__index__()
            if amount < 0:
                raise MetricError(f"a counter only goes up: increment must be >= 0, got {amount}")
        if amount > _U64_MAX - self._value:
            raise MetricError(f"counter would pass 2**64 - 1 (at {self._value}, increment {amount})")
        n = amount
        self._value += n

    @property
    def value(self):
        return self._value


cdef class GaugeCell:
    """A value that goes up and down (a queue depth, a balance), or the
    result of a function called at read time (``set_function``).

    >>> g = GaugeCell(); g.set(10); g.dec(3); g.value
    7.0
    >>> g.set_function(lambda: 5); g.value
    5.0
    """

    cdef double _value
    cdef object _function

    cdef double _finite(self, object amount, str what) except? -1.0:
        cdef double v
        try:
            v = amount
        except TypeError:
            raise TypeError(f"gauge {what} must be a number, got {type(amount).__name__} {amount!r}") from None
        if not isfinite(v):
            raise MetricError(f"gauge {what} must be finite, got {amount!r}")
        return v

    def set(self, value):
        self._function = None
        self._value = self._finite(value, "value")

    def inc(self, amount=1.0):
        self._value += self._finite(amount, "increment")

    def dec(self, amount=1.0):
        self._value -= self._finite(amount, "decrement")

    def set_function(self, fn):
        """Read the gauge by calling ``fn()`` (which must return a number)."""
        if not callable(fn):
            raise TypeError(f"set_function needs a callable, got {type(fn).__name__}")
        self._function = fn

    @property
    def value(self):
        if self._function is not None:
            return float(self._function())
        return self._value
