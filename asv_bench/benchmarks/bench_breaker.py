"""tallyio.engine.breaker benchmarks: a closed circuit breaker's cost per
call from C (a nogil acquire + record loop, 100,000 pairs per timing) and from
Python (1,000 calls per timing: ``call(noop)`` and ``acquire()`` +
``record_success()``) beside pybreaker's ``call(noop)``."""
from tallyio.engine._breaker import CircuitBreaker
from tallyio.engine._breaker_testing import closed_acquire_record_ns

CALLS = 1000
C_PAIRS = 100_000


def _noop():
    return None


class BreakerClosed:
    params = ["count", "time"]
    param_names = ["window"]

    def setup(self, window):
        self.breaker = CircuitBreaker("asv", window=window, window_size=100, window_seconds=10.0,
                                      minimum_calls=10, slow_call_ns=2_000_000)

    def time_c_acquire_record(self, window):
        closed_acquire_record_ns(self.breaker, C_PAIRS)

    def time_python_call(self, window):
        call = self.breaker.call
        for _ in range(CALLS):
            call(_noop)

    def time_python_acquire_record(self, window):
        acquire, record = self.breaker.acquire, self.breaker.record_success
        for _ in range(CALLS):
            if acquire():
                _noop()
                record(1000)


class PybreakerClosed:
    def setup(self):
        import pybreaker
        self.peer = pybreaker.CircuitBreaker(fail_max=10, reset_timeout=5)

    def time_pybreaker_call(self):
        call = self.peer.call
        for _ in range(CALLS):
            call(_noop)
