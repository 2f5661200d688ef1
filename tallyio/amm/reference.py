"""Pure-Python references for the pool math, written line by line from the
Solidity (UniswapV2Library; v3-core 1.0.1's FullMath, SqrtPriceMath, SwapMath,
TickMath) on Python integers.  They are the oracles of the tests and the peers
of the benchmarks ("what a Python searcher writes"), never used on a hot path.
Owns no state; a revert is a ``Revert`` exception carrying the library's reason.

>>> amount_out(10**6, 10**9, 2 * 10**9)
1992013
>>> cycle_brute_force([(5000, 10000, 30), (5000, 3000, 30)])
(136, 14)
"""
from __future__ import annotations

from math import isqrt
from typing import Sequence

M256 = 1 << 256


class Revert(Exception):
    """The contract would revert; ``args[0]`` is the reason."""


def _safe(value: int) -> int:
    if value >= M256:
        raise Revert("OVERFLOW")
    return value


def _fraction(fee_bps: int) -> tuple[int, int]:
    return (1000 - fee_bps // 10, 1000) if fee_bps % 10 == 0 else (10000 - fee_bps, 10000)


# ---- Uniswap V2 -------------------------------------------------------------------------------

def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """UniswapV2Library.getAmountOut with SafeMath."""
    if amount_in <= 0:
        raise Revert("INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise Revert("INSUFFICIENT_LIQUIDITY")
    keep, base = _fraction(fee_bps)
    with_fee = _safe(amount_in * keep)
    return _safe(with_fee * reserve_out) // _safe(_safe(reserve_in * base) + with_fee)


def cycle_output(amount_in: int, hops: Sequence[tuple[int, int, int]]) -> int:
    """The amount that comes back from pushing ``amount_in`` through every hop."""
    amount = amount_in
    for reserve_in, reserve_out, fee in hops:
        amount = amount_out(amount, reserve_in, reserve_out, fee)
    return amount


def cycle_profit(amount_in: int, hops: Sequence[tuple[int, int, int]]) -> int | None:
    """``output - input``, or None where a hop reverts (not a tradable input)."""
    try:
        return cycle_output(amount_in, hops) - amount_in
    except Revert:
        return None


def virtual_pool(hops: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """``(N, D, M)`` with the chain's continuous output ``N x / (D + M x)``, exactly."""
    n, d, m = 1, 1, 0
    for reserve_in, reserve_out, fee in hops:
        keep = 10000 - fee
        n, d, m = keep * reserve_out * n, 10000 * reserve_in * d, 10000 * reserve_in * m + keep * n
    return n, d, m


def _best_of(xs, hops, best: tuple[int, int]) -> tuple[int, int]:
    for x in xs:
        gain = cycle_profit(x, hops)
        if gain is not None and gain > 0 and (gain > best[1] or (gain == best[1] and x < best[0])):
            best = (x, gain)
    return best


def cycle_brute_force(hops: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """Every input that could profit, tried one by one (feasible for small reserves only):
    ``(smallest best input, profit)`` or ``(0, 0)``."""
    n, d, m = virtual_pool(hops)
    if n <= d:
        return 0, 0
    last = (n - d) // m + 1              # past it the continuous profit, an upper bound, is negative
    return _best_of(range(1, last + 1), hops, (0, 0))


def cycle_region(hops: Sequence[tuple[int, int, int]], t: int) -> tuple[int, int] | None:
    """Integer bounds ``[lo, hi]`` (a superset) of the inputs whose continuous profit is at
    least ``t``, exactly: ``M x^2 - b x + t D <= 0`` with ``b = N - D - M t``."""
    n, d, m = virtual_pool(hops)
    b = n - d - m * t
    disc = b * b - 4 * m * t * d
    if disc < 0 or b < 0:
        return None
    root = isqrt(disc)
    return max(1, (b - root - 1) // (2 * m)), (b + root + 1) // (2 * m) + 1


def cycle_search(hops: Sequence[tuple[int, int, int]], max_evaluations: int | None = None):
    """The same method as the C ``best_cycle_input``, on exact integers: the closed-form
    optimum (integer square root), its neighbours, then every input of the region where
    the continuous profit reaches the best found.  Returns ``(amount_in, profit, exact)``;
    ``exact`` is False only when the region held more than ``max_evaluations`` inputs
    (then the best of a window around the optimum is returned)."""
    n, d, m = virtual_pool(hops)
    x0 = (isqrt(n * d) - d) // m if n > d else 0
    best = _best_of(range(max(0, x0 - 2), x0 + 3), hops, (0, 0))
    region = cycle_region(hops, max(best[1], 1))
    if region is None:
        return best[0], best[1], True
    lo, hi = region
    if max_evaluations is None or hi - lo + 1 <= max_evaluations:
        best = _best_of(range(lo, hi + 1), hops, best)
        return best[0], best[1], True
    centre = best[0] or x0
    best = _best_of(range(max(1, centre - max_evaluations // 2), centre + max_evaluations // 2), hops, best)
    return best[0], best[1], False


def cycle_continuous_max(hops: Sequence[tuple[int, int, int]]) -> int:
    """``floor(max_x P(x))``: no integer input can earn more."""
    n, d, m = virtual_pool(hops)
    if n <= d:
        return 0
    # P* = (sqrt(N) - sqrt(D))**2 / M = (N + D - 2 sqrt(N D)) / M; isqrt rounds sqrt down,
    # so this rounds P* up (safe as an upper bound)
    return (n + d - 2 * isqrt(n * d)) // m + 1
