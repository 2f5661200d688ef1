"""The ``breaker`` group: what a closed circuit breaker costs a call.

* From C: ns per ``tio_breaker_acquire`` + ``tio_breaker_record`` pair in a
  nogil loop (count window and time window; the loop's admitted count is
  checked, and every call is atomics on shared memory, so nothing is
  optimised away), as the thread's CPU time (the targets) and as wall time,
  on one thread, and on two threads sharing one breaker.
* From Python: the overhead of ``CircuitBreaker.call(noop)`` and of
  ``acquire()`` + ``record_success()`` around ``noop()``, each minus a loop
  calling ``noop()`` directly, beside pybreaker's ``call(noop)`` overhead
  measured the same way in the same repetitions.  pybreaker has no
  acquire/record pair, so its ``call`` overhead is the peer of both cases.
"""
from __future__ import annotations

import threading
from time import perf_counter_ns, thread_time_ns
from typing import Callable

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

PYBREAKER = "pybreaker.CircuitBreaker.call"


def _noop() -> None:
    return None


def _loop_ns(body: Callable[[int], None], calls: int) -> float:
    start = perf_counter_ns()
    body(calls)
    return (perf_counter_ns() - start) / calls


def _direct(n: int) -> None:
    f = _noop
    for _ in range(n):
        f()


def _python_overheads(breaker, calls: int) -> dict[str, float]:
    """ns added per call by ``breaker.call`` and by acquire + record."""
    call, acquire, record = breaker.call, breaker.acquire, breaker.record_success

    def via_call(n: int) -> None:
        f = _noop
        for _ in range(n):
            call(f)

    def via_acquire_record(n: int) -> None:
        f = _noop
        for _ in range(n):
            if acquire():
                f()
                record(1000)

    base = _loop_ns(_direct, calls)
    return {"call": _loop_ns(via_call, calls) - base,
            "acquire+record": _loop_ns(via_acquire_record, calls) - base}


def _pybreaker_overhead(peer, calls: int) -> dict[str, float]:
    call = peer.call

    def via_call(n: int) -> None:
        f = _noop
        for _ in range(n):
            call(f)

    base = _loop_ns(_direct, calls)
    overhead = _loop_ns(via_call, calls) - base
    return {"call": overhead, "acquire+record": overhead}


def sections(mode: str) -> list[Section]:
    """The breaker group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 5, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    result: list[Section] = []

    def c_level(progress: Progress) -> list[Figure]:
        from tallyio.engine._breaker import CircuitBreaker
        from tallyio.engine._breaker_testing import closed_acquire_record_ns
        n = max(10_000, 10_000_000 // shrink)
        count = CircuitBreaker("bench-count", window="count", window_size=100, minimum_calls=10)
        timed = CircuitBreaker("bench-time", window="time", window_seconds=10.0, minimum_calls=10)

        def one(breaker) -> tuple[float, float]:
            cpu0 = thread_time_ns()
            ns, admitted = closed_acquire_record_ns(breaker, n)
            cpu = (thread_time_ns() - cpu0) / n
            if admitted != n or breaker.state != 0:
                raise RuntimeError(f"C bench admitted {admitted} of {n} calls (state {breaker.state!r})")
            return ns, cpu

        def two_threads(breaker) -> float:
            out = [0.0, 0.0]

            def body(i: int) -> None:
                out[i] = one(breaker)[0]

            threads = [threading.Thread(target=body, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return max(out)

        def measure() -> dict[str, float]:
            (count_wall, count_cpu), (time_wall, time_cpu) = one(count), one(timed)
            return {"count cpu": count_cpu, "time cpu": time_cpu, "count": count_wall, "time": time_wall,
                    "count, 2 threads": two_threads(count)}

        samples = alternate([("tallyio", measure)], reps, progress)
        cases = [("count cpu", "acquire + record, count window (100), thread CPU time"),
                 ("time cpu", "acquire + record, time window (10 s / 20 buckets), thread CPU time"),
                 ("count", "acquire + record, count window (100), wall time"),
                 ("time", "acquire + record, time window (10 s / 20 buckets), wall time"),
                 ("count, 2 threads", "acquire + record, count window, 2 threads on one breaker, wall time")]
        # the targets are on CPU time: on a shared machine wall time also counts
        # the time the loop's thread spent descheduled (both are reported)
        return figures_for("C level, closed breaker", samples, cases, unit="ns/op", higher_is_better=False,
                           targets={"count cpu": [Target(100.0)], "time cpu": [Target(100.0)]})
    result.append(("C level: closed breaker acquire + record", c_level))

    def python_level(progress: Progress) -> list[Figure]:
        from tallyio.engine._breaker import CircuitBreaker
        calls = max(2000, 400_000 // shrink)
        mine = CircuitBreaker("bench-python", window_size=100, minimum_calls=10)
        contenders = [("tallyio", lambda: _python_overheads(mine, calls))]
        skipped = {}
        try:
            import pybreaker
        except ImportError:
            skipped[PYBREAKER] = "pybreaker is not installed (pip install pybreaker)"
        else:
            peer = pybreaker.CircuitBreaker(fail_max=10, reset_timeout=5)
            contenders.append((PYBREAKER, lambda: _pybreaker_overhead(peer, calls)))
        samples = alternate(contenders, reps, progress)
        targets = [] if skipped else [Target(10.0, peer=PYBREAKER)]
        cases = [("call", "CircuitBreaker.call(noop), overhead per call"),
                 ("acquire+record", "acquire() + record_success() around noop(), overhead per call")]
        return figures_for("Python level, closed breaker", samples, cases, unit="ns/op",
                           higher_is_better=False, targets={key: targets for key, _ in cases},
                           skipped_peers=skipped)
    result.append(("Python level: closed breaker beside pybreaker", python_level))
    return result
