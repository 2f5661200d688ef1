# Stub for tallyio._ext._testing: nogil stress loops and the C-level benchmark
# harness used by the tests and by `tallyio bench`.  Not public API: the
# helper signatures follow the tests that call them and may change freely.
from typing import Any
from typing_extensions import Self, disjoint_base

@disjoint_base
class StartGate:
    """A spin barrier for `parties` threads, waited on without the GIL."""
    parties: int
    def __new__(cls, parties: int) -> Self: ...

# C-level benchmark harness: {case name: nanoseconds per operation}
def bench_spsc(n: int, capacity: int = ...) -> dict[str, float]: ...
def bench_mpmc(n: int = ...) -> dict[str, float]: ...
def bench_deque(n: int = ...) -> dict[str, float]: ...
def bench_pool(n: int = ...) -> dict[str, float]: ...

# test helpers (spsc_*, mpmc_*, deque_*, pool_*): see testing/*.pxi
def __getattr__(name: str) -> Any: ...
