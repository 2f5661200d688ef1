"""The ``amm`` group: exact pool math (tallyio.amm) beside what a Python searcher
writes with Python integers.

C-level figures are nanoseconds per call inside nogil loops
(``tallyio.amm._bench``); Python-level figures are the cost of one call from
Python, alternating with the peer in every repetition:

- ``get_amount_out`` vs the same formula on Python ints;
- ``best_cycle_input`` for a 2- and a 3-pool cycle with realistic reserves vs
  ``tallyio.amm.reference.cycle_search``: the same closed form (integer square
  root) and the same bounded search, on Python ints.

The group registers with the lead's ``tallyio.bench`` (``sections(mode)`` as in
``_core``).
"""
from __future__ import annotations

from time import perf_counter_ns
from typing import Callable

from tallyio.amm import best_cycle_input, get_amount_out
from tallyio.amm import reference
from tallyio.bench._figures import Figure, alternate, figures_for
from tallyio.bench._progress import Progress

# a WETH/USDC-like pool (3000 WETH, 9M USDC) and cycles through it with a few percent edge
RESERVE_IN, RESERVE_OUT = 3000 * 10**18, 9_000_000 * 10**6
CYCLES = {
    "2-pool cycle": [(3000 * 10**18, 9_000_000 * 10**6, 30), (9_000_000 * 10**6, 3100 * 10**18, 30)],
    "3-pool cycle": [(3000 * 10**18, 9_000_000 * 10**6, 30), (5_000_000 * 10**6, 5_000_000 * 10**18, 30),
                     (5_000_000 * 10**18, 1700 * 10**18, 30)],
}


def python_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """The peer: getAmountOut as a Python searcher writes it."""
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


def _amount_out_loop(fn: Callable[[int, int, int], int], calls: int) -> float:
    start = perf_counter_ns()
    for i in range(calls):
        fn(10**18 + i * 7919, RESERVE_IN, RESERVE_OUT)
    return (perf_counter_ns() - start) / calls


def _cycle_loop(fn: Callable[[list], object], hops: list, calls: int) -> float:
    # nudge a reserve each call so no result can be cached anywhere
    variants = [[(hops[0][0] + k, hops[0][1], hops[0][2])] + hops[1:] for k in range(64)]
    start = perf_counter_ns()
    for i in range(calls):
        fn(variants[i & 63])
    return (perf_counter_ns() - start) / calls


def _reference_cycle(hops: list) -> object:
    return reference.cycle_search(hops, max_evaluations=4096)


Section = tuple[str, Callable[[Progress], list[Figure]]]


def sections(mode: str) -> list[Section]:
    """The amm group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 3, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    result: list[Section] = []

    def c_level(progress: Progress) -> list[Figure]:
        from tallyio.amm import _bench
        n_out, n_cycle = max(1000, 2_000_000 // shrink), max(100, 40_000 // shrink)

        def measure() -> dict[str, float]:
            values = {"v2_amount_out": _bench.c_amount_out_ns(n_out)[0]}
            for name, hops in CYCLES.items():
                values[f"v2_best_cycle_input, {name}"] = _bench.c_best_cycle_ns(hops, n_cycle)[0]
            return values
        samples = alternate([("tallyio", measure)], reps, progress)
        cases = [(case, case) for case in samples["tallyio"]]
        return figures_for("C level, amm (nogil loop)", samples, cases, unit="ns/op", higher_is_better=False)
    result.append(("C level: amm", c_level))

    def amount_out(progress: Progress) -> list[Figure]:
        calls = max(200, 200_000 // shrink)
        case = "get_amount_out"
        samples = alternate([("tallyio", lambda: {case: _amount_out_loop(get_amount_out, calls)}),
                             ("Python ints", lambda: {case: _amount_out_loop(python_amount_out, calls)})],
                            reps, progress)
        return figures_for("Python level, amm per call", samples, [(case, case)], unit="ns/op",
                           higher_is_better=False)
    result.append(("Python level: get_amount_out", amount_out))

    for name, hops in CYCLES.items():
        def cycle(progress: Progress, name: str = name, hops: list = hops) -> list[Figure]:
            calls = max(20, 4000 // shrink)
            case = f"best_cycle_input, {name}"
            samples = alternate(
                [("tallyio", lambda: {case: _cycle_loop(best_cycle_input, hops, calls)}),
                 ("Python ints, same method", lambda: {case: _cycle_loop(_reference_cycle, hops, calls)})],
                reps, progress)
            return figures_for("Python level, amm per call", samples, [(case, case)], unit="ns/op",
                               higher_is_better=False)
        result.append((f"Python level: best_cycle_input, {name}", cycle))
    return result
