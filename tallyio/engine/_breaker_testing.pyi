"""Type stub for the compiled module tallyio.engine._breaker_testing (test and benchmark helpers)."""
from typing_extensions import disjoint_base
from tallyio.engine._breaker import CircuitBreaker

__all__ = ["StartLine", "race_acquire", "race_failures", "hammer", "closed_acquire_record_ns"]

@disjoint_base
class StartLine:
    def __init__(self) -> None: ...

def race_acquire(breaker: CircuitBreaker, line: StartLine, nthreads: int, now_ns: int,
                 attempts: int) -> int: ...
def race_failures(breaker: CircuitBreaker, line: StartLine, nthreads: int, now_ns: int,
                  calls: int) -> tuple[int, int]: ...
def hammer(breaker: CircuitBreaker, line: StartLine, nthreads: int, calls: int, fail_permille: int,
           exclude_permille: int, seed: int) -> tuple[int, int, int, int, int]: ...
def closed_acquire_record_ns(breaker: CircuitBreaker, iterations: int) -> tuple[float, int]: ...
