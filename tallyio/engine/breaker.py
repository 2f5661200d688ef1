"""Circuit breakers and the trading-state gate in front of the executors
(owned by tallyio.engine; touches nothing else).

* ``CircuitBreaker`` (compiled, ``tallyio.engine._breaker``; state machine and
  windows in C, docs/breaker.md): one per executor, safe on any number of
  threads, usable from nogil code through its ``.pxd``.
* ``TradingState`` / ``TradingGate``: above the breakers, as NautilusTrader's
  risk engine has: ACTIVE lets every action through, REDUCING only those that
  reduce exposure, HALTED none.

    >>> from tallyio.engine.breaker import CircuitBreaker, BreakerState, TradingGate, TradingState
    >>> gate = TradingGate()
    >>> gate.admits(), gate.set_state(TradingState.HALTED, "operator"), gate.admits()
    (True, <TradingState.ACTIVE: 0>, False)
    >>> gate.refusal()
    'trading HALTED: operator'
"""
from __future__ import annotations

import enum
import logging
import threading
from typing import Any, Awaitable, Callable, List, Optional, TypeVar

from tallyio.engine._breaker import BreakerState, BreakerStats, CircuitBreaker
from tallyio.engine.records import Action
from tallyio.errors import BreakerOpenError

__all__ = ["CircuitBreaker", "BreakerState", "BreakerStats", "BreakerOpenError", "TradingState",
           "TradingGate", "opens_exposure", "call_async"]

_log = logging.getLogger("tallyio.engine.breaker")

T = TypeVar("T")


async def call_async(breaker: CircuitBreaker, fn: Callable[..., Awaitable[T]], *args: Any,
                     **kwargs: Any) -> T:
    """``await fn(*args, **kwargs)`` behind ``breaker`` (``CircuitBreaker.call``
    for coroutines): raises ``BreakerOpenError`` without calling ``fn`` when
    refused; records the outcome with its permit, so an outcome that arrives
    after the breaker moved on is never taken for a probe's.  Cancellation
    (``asyncio.CancelledError``) counts as neither success nor failure.

        >>> import asyncio
        >>> async def send(x):
        ...     return x * 2
        >>> b = CircuitBreaker("async")
        >>> asyncio.run(call_async(b, send, 21)), b.stats().successes
        (42, 1)
    """
    permit = breaker.permit()
    if not permit:
        raise BreakerOpenError(breaker.name, breaker.state)
    t0 = breaker.now_ns()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        breaker.record_exception(exc, max(0, breaker.now_ns() - t0), permit)
        raise
    breaker.record_success(max(0, breaker.now_ns() - t0), permit)
    return result


class TradingState(enum.IntEnum):
    """What the engine may do (NautilusTrader's ``TradingState``)."""

    ACTIVE = 0
    """every action may go ahead (the breakers still decide per executor)."""
    REDUCING = 1
    """only actions that reduce exposure; backruns and arbitrages are refused."""
    HALTED = 2
    """no action at all."""


def opens_exposure(action: Optional[Action]) -> bool:
    """Does ``action`` take on new risk?

    Our choice for backruns and cyclic arbitrage (a ``SwapAction`` whose path
    starts and ends on one token): they open AND close within one transaction,
    so they hold no position afterwards, but each one is a new bet that spends
    gas and can lose to a revert or a race.  They reduce nothing, so REDUCING
    refuses them.  Only an action that says it reduces exposure (an attribute
    ``reduces_exposure`` that is true, as a future liquidation or unwind action
    may carry) passes in REDUCING.  ``None`` (an unspecified action) opens.

        >>> from tallyio.engine.records import SwapAction
        >>> a, b = b"\\x0a" * 20, b"\\x0b" * 20
        >>> opens_exposure(SwapAction(router=b"\\x01" * 20, path=(a, b, a), amount_in=1, min_amount_out=2))
        True
    """
    return not bool(getattr(action, "reduces_exposure", False))


class TradingGate:
    """Holds the engine's ``TradingState`` and answers whether an action may
    go ahead; thread-safe (one lock, never held while listeners run).

        >>> gate = TradingGate(TradingState.REDUCING)
        >>> class Unwind:                      # an action that reduces exposure
        ...     reduces_exposure = True
        >>> gate.admits(Unwind()), gate.admits(None)
        (True, False)
    """

    def __init__(self, state: TradingState = TradingState.ACTIVE, reason: str = "") -> None:
        self._state = TradingState(_check_state(state))
        self._reason = reason
        self._lock = threading.Lock()
        self._listeners: List[Callable[["TradingGate", TradingState, TradingState], object]] = []
        self.admitted = 0
        """actions ``admits`` let through."""
        self.refused = 0
        """actions ``admits`` refused."""

    def __repr__(self) -> str:
        return f"TradingGate({self._state.name}{', ' + repr(self._reason) if self._reason else ''})"

    @property
    def state(self) -> TradingState:
        """The current ``TradingState``."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the state was last set (empty if nobody said)."""
        return self._reason

    def set_state(self, state: TradingState, reason: str = "") -> TradingState:
        """Move to ``state`` (saying why); returns the previous state.
        Listeners are called if the state changed."""
        state = TradingState(_check_state(state))
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {type(reason).__name__}")
        with self._lock:
            old, self._state, self._reason = self._state, state, reason
        if old != state:
            for fn in tuple(self._listeners):
                try:
                    fn(self, old, state)
                except Exception:
                    _log.error("trading gate listener %r raised on %s -> %s", fn, old.name,
                               state.name, exc_info=True)
        return old

    def halt(self, reason: str = "") -> TradingState:
        """``set_state(HALTED, reason)``."""
        return self.set_state(TradingState.HALTED, reason)

    def reduce(self, reason: str = "") -> TradingState:
        """``set_state(REDUCING, reason)``."""
        return self.set_state(TradingState.REDUCING, reason)

    def resume(self, reason: str = "") -> TradingState:
        """``set_state(ACTIVE, reason)``."""
        return self.set_state(TradingState.ACTIVE, reason)

    def refusal(self, action: Optional[Action] = None) -> Optional[str]:
        """Why ``action`` may not go ahead now, or None if it may (not counted)."""
        state = self._state
        if state == TradingState.ACTIVE:
            return None
        if state == TradingState.REDUCING and not opens_exposure(action):
            return None
        return f"trading {state.name}" + (f": {self._reason}" if self._reason else "")

    def admits(self, action: Optional[Action] = None) -> bool:
        """May ``action`` go ahead now?  Counted in ``admitted`` / ``refused``."""
        ok = self.refusal(action) is None
        if ok:
            self.admitted += 1
        else:
            self.refused += 1
        return ok

    def add_listener(self, fn: Callable[["TradingGate", TradingState, TradingState], object]) -> None:
        """Call ``fn(gate, old_state, new_state)`` on every change (a listener
        that raises is logged, not propagated)."""
        if not callable(fn):
            raise TypeError(f"listener must be callable, got {type(fn).__name__}")
        self._listeners.append(fn)


def _check_state(state: object) -> int:
    if isinstance(state, bool) or not isinstance(state, int):
        raise TypeError(f"state must be a TradingState, got {type(state).__name__}")
    if state not in (0, 1, 2):
        raise ValueError(f"state must be ACTIVE, REDUCING or HALTED, got {state!r}")
    return state
