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


def smallest_input_for(target: int, hops: Sequence[tuple[int, int, int]]) -> int | None:
    """The least input whose output after every hop is >= ``target`` (None if none): from
    the last hop back, getAmountOut(z) >= y  <=>  z >= y base R_in / (keep (R_out - y))."""
    y = target
    for reserve_in, reserve_out, fee in reversed(hops):
        if y == 0:
            break
        if y >= reserve_out:
            return None
        keep, base = _fraction(fee)
        numerator, denominator = y * base * reserve_in, (reserve_out - y) * keep
        if numerator >= M256 or denominator >= M256:
            return None
        y = -(-numerator // denominator)
    return y


def _best_of(xs, hops, best: tuple[int, int]) -> tuple[int, int]:
    for x in xs:
        gain = cycle_profit(x, hops)
        if gain is None or gain <= 0:
            continue
        # every input of the run that ends at x pays the same: take the run's first
        first = smallest_input_for(gain + x, hops)
        if first is not None and 0 < first <= x:
            x, gain = first, gain + x - first
        if gain > best[1] or (gain == best[1] and x < best[0]):
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
    (then the best of the 4 inputs around the best found is returned)."""
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
    window = min(max_evaluations, 4)
    centre = best[0] or x0
    start = max(1, centre - window // 2)
    best = _best_of(range(start, start + window), hops, best)
    return best[0], best[1], False


def cycle_continuous_max(hops: Sequence[tuple[int, int, int]]) -> int:
    """``floor(max_x P(x))``: no integer input can earn more."""
    n, d, m = virtual_pool(hops)
    if n <= d:
        return 0
    # P* = (sqrt(N) - sqrt(D))**2 / M = (N + D - 2 sqrt(N D)) / M; isqrt rounds sqrt down,
    # so this rounds P* up (safe as an upper bound)
    return (n + d - 2 * isqrt(n * d)) // m + 1


# ---- Uniswap V3 (v3-core 1.0.1), integers as the EVM sees them ---------------------------------

Q96 = 1 << 96
MAX_U160 = (1 << 160) - 1
MIN_TICK, MAX_TICK = -887272, 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342


def mul_div(a: int, b: int, d: int) -> int:
    """FullMath.mulDiv: reverts on d == 0 or a result past 2**256 - 1."""
    if d == 0:
        raise Revert("mulDiv: denominator 0")
    return _safe(a * b // d)


def mul_div_rounding_up(a: int, b: int, d: int) -> int:
    """FullMath.mulDivRoundingUp."""
    result = mul_div(a, b, d)
    if a * b % d:
        result = _safe(result + 1)
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: the EVM's DIV and MOD give 0 for y == 0."""
    if y == 0:
        return 0
    return x // y + (1 if x % y else 0)


def _to_u160(value: int) -> int:
    """SafeCast.toUint160."""
    if value > MAX_U160:
        raise Revert("toUint160")
    return value


def next_sqrt_price_from_amount0_rounding_up(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp."""
    if amount == 0:
        return sqrt_p
    numerator1 = liquidity << 96
    product = (amount * sqrt_p) % M256                     # EVM MUL wraps
    if add:
        if product // amount == sqrt_p:
            denominator = (numerator1 + product) % M256
            if denominator >= numerator1:
                return mul_div_rounding_up(numerator1, sqrt_p, denominator) & MAX_U160   # uint160(...)
        return div_rounding_up(numerator1, _safe(numerator1 // sqrt_p + amount)) & MAX_U160
    if not (product // amount == sqrt_p and numerator1 > product):
        raise Revert("amount0 underflow")
    return _to_u160(mul_div_rounding_up(numerator1, sqrt_p, numerator1 - product))


def next_sqrt_price_from_amount1_rounding_down(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown."""
    if add:
        if amount <= MAX_U160:
            if liquidity == 0:
                raise Revert("division by zero")
            quotient = (amount << 96) // liquidity
        else:
            quotient = mul_div(amount, Q96, liquidity)
        return _to_u160(_safe(sqrt_p + quotient))
    if amount <= MAX_U160:
        quotient = div_rounding_up(amount << 96, liquidity)       # UnsafeMath: 0 when liquidity is 0
    else:
        quotient = mul_div_rounding_up(amount, Q96, liquidity)
    if not sqrt_p > quotient:
        raise Revert("sqrtP <= quotient")
    return sqrt_p - quotient


def next_sqrt_price_from_input(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput."""
    if sqrt_p == 0 or liquidity == 0:
        raise Revert("zero price or liquidity")
    if zero_for_one:
        return next_sqrt_price_from_amount0_rounding_up(sqrt_p, liquidity, amount_in, True)
    return next_sqrt_price_from_amount1_rounding_down(sqrt_p, liquidity, amount_in, True)


def next_sqrt_price_from_output(sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput."""
    if sqrt_p == 0 or liquidity == 0:
        raise Revert("zero price or liquidity")
    if zero_for_one:
        return next_sqrt_price_from_amount1_rounding_down(sqrt_p, liquidity, amount_out, False)
    return next_sqrt_price_from_amount0_rounding_up(sqrt_p, liquidity, amount_out, False)


def amount0_delta(a: int, b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta (unsigned form)."""
    if a > b:
        a, b = b, a
    numerator1, numerator2 = liquidity << 96, b - a
    if a == 0:
        raise Revert("sqrtRatioAX96 == 0")
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, b), a)
    return mul_div(numerator1, numerator2, b) // a


def amount1_delta(a: int, b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta (unsigned form)."""
    if a > b:
        a, b = b, a
    if round_up:
        return mul_div_rounding_up(liquidity, b - a, Q96)
    return mul_div(liquidity, b - a, Q96)


def compute_swap_step(current: int, target: int, liquidity: int, remaining: int, fee_pips: int):
    """SwapMath.computeSwapStep -> (sqrt_price_next, amount_in, amount_out, fee_amount)."""
    zero_for_one = current >= target
    exact_in = remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        less_fee = mul_div(remaining, 1_000_000 - fee_pips, 1_000_000)
        amount_in = (amount0_delta(target, current, liquidity, True) if zero_for_one
                     else amount1_delta(current, target, liquidity, True))
        nxt = (target if less_fee >= amount_in
               else next_sqrt_price_from_input(current, liquidity, less_fee, zero_for_one))
    else:
        amount_out = (amount1_delta(target, current, liquidity, False) if zero_for_one
                      else amount0_delta(current, target, liquidity, False))
        nxt = (target if -remaining >= amount_out
               else next_sqrt_price_from_output(current, liquidity, -remaining, zero_for_one))
    reached = target == nxt
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = amount0_delta(nxt, current, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount1_delta(nxt, current, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = amount1_delta(current, nxt, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount0_delta(current, nxt, liquidity, False)
    if not exact_in and amount_out > -remaining:
        amount_out = -remaining
    if exact_in and nxt != target:
        fee = remaining - amount_in
    else:
        fee = mul_div_rounding_up(amount_in, fee_pips, 1_000_000 - fee_pips)
    return nxt, amount_in, amount_out, fee


_TICK_FACTORS = [
    0xfff97272373d413259a46990580e213a, 0xfff2e50f5f656932ef12357cf3c7fdcc, 0xffe5caca7e10e4e61c3624eaa0941cd0,
    0xffcb9843d60f6159c9db58835c926644, 0xff973b41fa98c081472e6896dfb254c0, 0xff2ea16466c96a3843ec78b326b52861,
    0xfe5dee046a99a2a811c461f1969c3053, 0xfcbe86c7900a88aedcffc83b479aa3a4, 0xf987a7253ac413176f2b074cf7815e54,
    0xf3392b0822b70005940c7a398e4b70f3, 0xe7159475a2c29b7443b29c7fa6e889d9, 0xd097f3bdfd2022b8845ad8f792aa5825,
    0xa9f746462d870fdf8a65dc1f90e061e5, 0x70d869a156d2a1b890bb3df62baf32f7, 0x31be135f97d08fd981231505542fcfa6,
    0x9aa508b5b7a84e1c677de54f3e99bc9, 0x5d6af8dedb81196699c329225ee604, 0x2216e584f5fa1ea926041bedfe98,
    0x48a170391f7dc42444e8fa2,
]


def sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise Revert("T")
    ratio = 0xfffcb933bd6fad37aa2d162d1a594001 if abs_tick & 1 else 1 << 128
    for bit, factor in enumerate(_TICK_FACTORS, start=1):
        if abs_tick & (1 << bit):
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = (M256 - 1) // ratio
    return (ratio >> 32) + (1 if ratio % (1 << 32) else 0)


def tick_at_sqrt_ratio(sqrt_price: int) -> int:
    """TickMath.getTickAtSqrtRatio (its log2 by repeated squaring, on Python ints)."""
    if not MIN_SQRT_RATIO <= sqrt_price < MAX_SQRT_RATIO:
        raise Revert("R")
    ratio = sqrt_price << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_high = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if sqrt_ratio_at_tick(tick_high) <= sqrt_price else tick_low


def swap_within_range(sqrt_price: int, liquidity: int, amount_specified: int, zero_for_one: bool,
                      fee_pips: int, sqrt_price_limit: int, tick_next: int):
    """One step of UniswapV3Pool.swap's loop from ``sqrt_price`` towards ``tick_next`` (the
    step's end: the next initialized tick, or the bitmap word's edge), capped by the limit.
    Returns ``(amount0, amount1, sqrt_price_after, tick_after, crosses)``; ``crosses`` means
    the pool would go on past ``tick_next`` (amounts are then only this step's)."""
    if amount_specified == 0:
        raise Revert("AS")
    if zero_for_one:
        if not (MIN_SQRT_RATIO < sqrt_price_limit < sqrt_price):
            raise Revert("SPL")
    elif not (sqrt_price < sqrt_price_limit < MAX_SQRT_RATIO):
        raise Revert("SPL")
    exact_input = amount_specified > 0
    tick_next = max(MIN_TICK, min(MAX_TICK, tick_next))
    next_price = sqrt_ratio_at_tick(tick_next)
    beyond = next_price < sqrt_price_limit if zero_for_one else next_price > sqrt_price_limit
    target = sqrt_price_limit if beyond else next_price
    price, amount_in, amount_out, fee = compute_swap_step(sqrt_price, target, liquidity, amount_specified, fee_pips)
    if amount_in + fee >= 1 << 255 or amount_out >= 1 << 255:
        raise Revert("toInt256")
    if exact_input:
        remaining = amount_specified - (amount_in + fee)
        calculated = -amount_out
    else:
        remaining = amount_specified + amount_out
        calculated = amount_in + fee
    if price == next_price:
        tick = tick_next - 1 if zero_for_one else tick_next
    else:
        tick = tick_at_sqrt_ratio(price) if price != sqrt_price else None
    crosses = remaining != 0 and price != sqrt_price_limit
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return amount0, amount1, price, tick, crosses


def swap_in_range(sqrt_price: int, liquidity: int, tick: int, amount_specified: int, zero_for_one: bool,
                  fee_pips: int, tick_spacing: int, tick_lower: int, tick_upper: int,
                  sqrt_price_limit: int | None = None):
    """UniswapV3Pool.swap's whole loop while the price stays inside the initialized range
    ``[tick_lower, tick_upper)``: steps end at the tick-bitmap word's edge
    (TickBitmap.nextInitializedTickWithinOneWord) or at the bound when it is nearer.
    Returns ``(amount_in, amount_out, sqrt_price_after, tick_after, crosses)``; ``crosses``:
    the price reached a bound's price (an initialized tick would be crossed)."""
    if sqrt_price_limit is None:
        sqrt_price_limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    exact_input = amount_specified > 0
    remaining = abs(amount_specified)
    bound = tick_lower if zero_for_one else tick_upper
    bound_price = sqrt_ratio_at_tick(max(MIN_TICK, min(MAX_TICK, bound)))
    total_in = total_out = 0
    while True:
        compressed = tick // tick_spacing
        if zero_for_one:
            tick_next = max(tick_lower, (compressed >> 8 << 8) * tick_spacing)
        else:
            tick_next = min(tick_upper, (((compressed + 1) >> 8 << 8) + 255) * tick_spacing)
        signed = remaining if exact_input else -remaining
        a0, a1, sqrt_price_after, tick_after, _ = swap_within_range(sqrt_price, liquidity, signed, zero_for_one,
                                                                     fee_pips, sqrt_price_limit, tick_next)
        paid, got = (a0, -a1) if zero_for_one else (a1, -a0)
        total_in += paid
        total_out += got
        remaining -= paid if exact_input else got
        sqrt_price = sqrt_price_after
        if tick_after is not None:
            tick = tick_after
        if sqrt_price == bound_price:
            return total_in, total_out, sqrt_price, tick, True
        if remaining == 0 or sqrt_price == sqrt_price_limit:
            return total_in, total_out, sqrt_price, tick, False
