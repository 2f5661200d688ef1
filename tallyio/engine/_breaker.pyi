"""Type stub for the compiled module tallyio.engine._breaker."""
import enum
from typing import Any, Callable, NamedTuple, Optional, final

__all__ = ["CircuitBreaker", "BreakerState", "BreakerStats"]

class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

class BreakerStats(NamedTuple):
    name: str
    state: BreakerState
    calls: int
    successes: int
    failures: int
    slow: int
    rejected: int
    excluded: int
    transitions: int
    failure_rate: float
    window_calls: int
    window_failures: int
    late: int
    listener_errors: int
    missed_transitions: int

_Listener = Callable[["CircuitBreaker", BreakerState, BreakerState], object]

@final
class CircuitBreaker:
    """A circuit breaker in native code, safe on any number of threads."""

    name: str
    def __init__(self, name: str, *, window: str = "count", window_size: int = 100,
                 window_seconds: float = 10.0, time_buckets: int = 20, minimum_calls: int = 10,
                 failure_rate_threshold: float = 0.5, slow_call_ns: Optional[int] = None,
                 open_seconds: float = 5.0, half_open_probes: int = 3,
                 exclude: Optional[Callable[[BaseException], bool]] = None,
                 clock: Optional[Callable[[], int]] = None) -> None: ...
    # the hot path
    def acquire(self) -> bool: ...
    def permit(self) -> int: ...
    def record_success(self, duration_ns: int = 0, permit: int = 0) -> None: ...
    def record_failure(self, duration_ns: int = 0, permit: int = 0) -> None: ...
    def record_exception(self, exc: BaseException, duration_ns: int = 0, permit: int = 0) -> None: ...
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
    def now_ns(self) -> int: ...
    # reading
    @property
    def state(self) -> BreakerState: ...
    @property
    def config(self) -> dict[str, Any]: ...
    def stats(self) -> BreakerStats: ...
    # operator controls
    def reset(self) -> None: ...
    def force_open(self) -> None: ...
    # listeners
    def add_listener(self, fn: _Listener) -> None: ...
    def remove_listener(self, fn: _Listener) -> None: ...
    def poll_transitions(self) -> int: ...
