"""Uniswap V3 pool math for a swap that stays within the current tick range,
bit for bit with v3-core 1.0.1 (TickMath, SqrtPriceMath, SwapMath and one step
of UniswapV3Pool.swap's loop): the C functions of ``_v3.pxd`` and their Python
face.  Owns only this math; crossing an initialized tick (liquidity changes,
fee growth, oracle) is the caller's business, reported as ``crosses_tick``.

>>> from tallyio.amm import v3_swap_within_range, get_sqrt_ratio_at_tick
>>> price = get_sqrt_ratio_at_tick(0)                   # price 1.0
>>> s = v3_swap_within_range(price, 10**24, 10**18, True, 3000,
...                          sqrt_price_limit_x96=get_sqrt_ratio_at_tick(-60), tick_next=-60)
>>> s.amount0, s.amount1, s.crosses_tick
(1000000000000000000, -996999005991991025, False)
"""
from collections import namedtuple

from libc.stdint cimport uint32_t, int32_t, int64_t, uint64_t

from tallyio._ext.u256 cimport (tio_u256, tio_u256_is_zero, tio_u256_cmp, tio_u256_add, tio_u256_sub,
                                tio_u256_mul, tio_u256_divmod, tio_u256_mul_div, tio_u256_mul_div_rounding_up,
                                tio_u256_div_rounding_up, tio_u256_shl, tio_u256_shr, tio_u256_from_u64,
                                tio_u256_bit_length, TIO_U256_OK, TIO_U256_OVERFLOW,
                                u256_from_int, u256_to_int)
from tallyio.amm._v2 cimport (raise_amm_status, AMM_OK, AMM_OVERFLOW, AMM_BAD_FEE, AMM_V3_INVALID,
                              AMM_V3_AMOUNT_ZERO, AMM_V3_PRICE_LIMIT, AMM_V3_TICK_RANGE, AMM_V3_PRICE_RANGE)

MIN_TICK = V3_MIN_TICK
MAX_TICK = V3_MAX_TICK
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

# TickMath's factors sqrt(1.0001)^-(2^i) in Q128.128, as (low, high) limbs; [0] is the odd-tick start
cdef uint64_t _TICK_FACTORS[20][2]
_TICK_FACTORS[:] = [
    [0xaa2d162d1a594001ULL, 0xfffcb933bd6fad37ULL], [0x59a46990580e213aULL, 0xfff97272373d4132ULL],
    [0xef12357cf3c7fdccULL, 0xfff2e50f5f656932ULL], [0x1c3624eaa0941cd0ULL, 0xffe5caca7e10e4e6ULL],
    [0xc9db58835c926644ULL, 0xffcb9843d60f6159ULL], [0x472e6896dfb254c0ULL, 0xff973b41fa98c081ULL],
    [0x43ec78b326b52861ULL, 0xff2ea16466c96a38ULL], [0x11c461f1969c3053ULL, 0xfe5dee046a99a2a8ULL],
    [0xdcffc83b479aa3a4ULL, 0xfcbe86c7900a88aeULL], [0x6f2b074cf7815e54ULL, 0xf987a7253ac41317ULL],
    [0x940c7a398e4b70f3ULL, 0xf3392b0822b70005ULL], [0x43b29c7fa6e889d9ULL, 0xe7159475a2c29b74ULL],
    [0x845ad8f792aa5825ULL, 0xd097f3bdfd2022b8ULL], [0x8a65dc1f90e061e5ULL, 0xa9f746462d870fdfULL],
    [0x90bb3df62baf32f7ULL, 0x70d869a156d2a1b8ULL], [0x81231505542fcfa6ULL, 0x31be135f97d08fd9ULL],
    [0xc677de54f3e99bc9ULL, 0x09aa508b5b7a84e1ULL], [0x6699c329225ee604ULL, 0x005d6af8dedb8119ULL],
    [0x1ea926041bedfe98ULL, 0x00002216e584f5faULL], [0x91f7dc42444e8fa2ULL, 0x00000000048a1703ULL],
]


cdef inline void _set(tio_u256 *x, uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3) noexcept nogil:
    x.w[0] = w0
    x.w[1] = w1
    x.w[2] = w2
    x.w[3] = w3


cdef inline int _status(int u256_status) noexcept nogil:
    # FullMath and checked division revert on a zero divisor or a result past 2**256
    if u256_status == TIO_U256_OK:
        return AMM_OK
    if u256_status == TIO_U256_OVERFLOW:
        return AMM_OVERFLOW
    return AMM_V3_INVALID


cdef inline void _q96(tio_u256 *x) noexcept nogil:
    _set(x, 0, 1ULL << 32, 0, 0)


cdef inline void _max_u160(tio_u256 *x) noexcept nogil:
    _set(x, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFFULL, 0)


cdef inline void _to_u160_truncate(tio_u256 *x) noexcept nogil:
    # Solidity's explicit uint160(...) keeps the low 160 bits
    x.w[2] &= 0xFFFFFFFFULL
    x.w[3] = 0


cdef inline bint _above_u160(const tio_u256 *x) noexcept nogil:
    return x.w[3] != 0 or x.w[2] > 0xFFFFFFFFULL


# ---- TickMath ---------------------------------------------------------------------------------

cdef int v3_sqrt_ratio_at_tick(int32_t tick, tio_u256 *sqrt_price_x96) noexcept nogil:
    cdef uint32_t abs_tick = <uint32_t>(-<int64_t>tick if tick < 0 else tick)
    cdef tio_u256 ratio, factor, rem, top
    cdef int bit
    if abs_tick > <uint32_t>V3_MAX_TICK:
        return AMM_V3_TICK_RANGE
    if abs_tick & 1:
        _set(&ratio, _TICK_FACTORS[0][0], _TICK_FACTORS[0][1], 0, 0)
    else:
        _set(&ratio, 0, 0, 1, 0)                                   # 2**128
    for bit in range(1, 20):
        if abs_tick & (1U << bit):
            _set(&factor, _TICK_FACTORS[bit][0], _TICK_FACTORS[bit][1], 0, 0)
            tio_u256_mul(&ratio, &ratio, &factor)                  # < 2**256: ratio <= 2**128, factor < 2**128
            tio_u256_shr(&ratio, &ratio, 128)
    if tick > 0:
        _set(&top, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFFFULL)
        tio_u256_divmod(&ratio, NULL, &top, &ratio)                # type(uint256).max / ratio
    # divide by 2**32 rounding up: Q128.128 -> Q128.96
    cdef uint64_t low32 = ratio.w[0] & 0xFFFFFFFFULL
    tio_u256_shr(sqrt_price_x96, &ratio, 32)
    if low32 != 0:
        tio_u256_from_u64(&rem, 1)
        tio_u256_add(sqrt_price_x96, sqrt_price_x96, &rem)
    _to_u160_truncate(sqrt_price_x96)
    return AMM_OK


cdef inline int32_t _sar128_to_int24(const tio_u256 *x) noexcept nogil:
    # int24(x >> 128) for a two's-complement int256 x: bits 128..151, sign-extended
    cdef uint32_t low24 = <uint32_t>(x.w[2] & 0xFFFFFFULL)
    return (<int32_t>(low24 << 8)) >> 8


cdef int v3_tick_at_sqrt_ratio(const tio_u256 *sqrt_price_x96, int32_t *tick) noexcept nogil:
    cdef tio_u256 ratio, r, lo_bound, hi_bound, log2_word, scale, log_sqrt, c, tmp, at_hi
    cdef int msb, shift
    cdef uint64_t f
    cdef int64_t integer_part
    cdef uint64_t fraction = 0
    cdef int32_t tick_low, tick_high
    _set(&lo_bound, 4295128739ULL, 0, 0, 0)
    _set(&hi_bound, 0x5d951d5263988d26ULL, 0xefd1fc6a50648849ULL, 0xfffd8963ULL, 0)
    if tio_u256_cmp(sqrt_price_x96, &lo_bound) < 0 or tio_u256_cmp(sqrt_price_x96, &hi_bound) >= 0:
        return AMM_V3_PRICE_RANGE
    tio_u256_shl(&ratio, sqrt_price_x96, 32)
    msb = tio_u256_bit_length(&ratio) - 1
    if msb >= 128:
        tio_u256_shr(&r, &ratio, msb - 127)
    else:
        tio_u256_shl(&r, &ratio, 127 - msb)
    # log_2 = (msb - 128) << 64 | fraction bits 63..50; r stays in [2**127, 2**128)
    for shift in range(63, 49, -1):
        tio_u256_mul(&r, &r, &r)                                   # r**2 < 2**256
        tio_u256_shr(&r, &r, 127)
        f = r.w[2] & 1                                             # r >> 128, which is 0 or 1
        fraction |= f << shift
        tio_u256_shr(&r, &r, <unsigned>f)
    # log_2 as a two's-complement int256: (msb - 128) * 2**64 + fraction
    integer_part = msb - 128
    log2_word.w[0] = fraction
    log2_word.w[1] = <uint64_t>integer_part
    log2_word.w[2] = log2_word.w[3] = 0xFFFFFFFFFFFFFFFFULL if integer_part < 0 else 0
    # log_sqrt10001 = log_2 * 255738958999603826347141 (wrapping multiply = signed multiply mod 2**256)
    _set(&scale, 0xa301d71055774c85ULL, 0x3627ULL, 0, 0)
    tio_u256_mul(&log_sqrt, &log2_word, &scale)
    _set(&c, 0x5af012a19d003aaaULL, 0x28f6481ab7f045aULL, 0, 0)
    tio_u256_sub(&tmp, &log_sqrt, &c)
    tick_low = _sar128_to_int24(&tmp)
    _set(&c, 0x455e260799a0632fULL, 0xdb2df09e81959a81ULL, 0, 0)
    tio_u256_add(&tmp, &log_sqrt, &c)
    tick_high = _sar128_to_int24(&tmp)
    if tick_low == tick_high:
        tick[0] = tick_low
        return AMM_OK
    v3_sqrt_ratio_at_tick(tick_high, &at_hi)
    tick[0] = tick_high if tio_u256_cmp(&at_hi, sqrt_price_x96) <= 0 else tick_low
    return AMM_OK


# ---- SqrtPriceMath ----------------------------------------------------------------------------

cdef int v3_next_sqrt_price_from_amount0_rounding_up(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                                     const tio_u256 *amount, bint add, tio_u256 *out) noexcept nogil:
    cdef tio_u256 numerator1, product, denominator, quotient
    cdef int overflowed, status
    if tio_u256_is_zero(amount):
        out[0] = sqrt_p[0]          # short-circuit: otherwise not guaranteed to return the input price
        return AMM_OK
    tio_u256_shl(&numerator1, liquidity, 96)
    # `(product = amount * sqrtPX96) / amount == sqrtPX96` is exactly "the product did not wrap"
    overflowed = tio_u256_mul(&product, amount, sqrt_p) != TIO_U256_OK
    if add:
        if not overflowed:
            if not tio_u256_add(&denominator, &numerator1, &product):     # denominator >= numerator1
                status = _status(tio_u256_mul_div_rounding_up(out, &numerator1, sqrt_p, &denominator))
                if status == AMM_OK:
                    _to_u160_truncate(out)
                return status
        # fallback: divRoundingUp(numerator1, (numerator1 / sqrtPX96).add(amount))
        if tio_u256_divmod(&quotient, NULL, &numerator1, sqrt_p) != TIO_U256_OK:
            return AMM_V3_INVALID
        if tio_u256_add(&quotient, &quotient, amount):
            return AMM_OVERFLOW
        tio_u256_div_rounding_up(out, &numerator1, &quotient)
        _to_u160_truncate(out)
        return AMM_OK
    if overflowed or tio_u256_cmp(&numerator1, &product) <= 0:
        return AMM_V3_INVALID
    tio_u256_sub(&denominator, &numerator1, &product)
    status = _status(tio_u256_mul_div_rounding_up(out, &numerator1, sqrt_p, &denominator))
    if status == AMM_OK and _above_u160(out):
        return AMM_OVERFLOW                                             # SafeCast.toUint160
    return status


cdef int v3_next_sqrt_price_from_amount1_rounding_down(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                                       const tio_u256 *amount, bint add, tio_u256 *out) noexcept nogil:
    cdef tio_u256 quotient, shifted, q96
    cdef int status
    _q96(&q96)
    if add:
        if not _above_u160(amount):
            tio_u256_shl(&shifted, amount, 96)
            if tio_u256_divmod(&quotient, NULL, &shifted, liquidity) != TIO_U256_OK:
                return AMM_V3_INVALID                                   # checked division by zero
        else:
            status = _status(tio_u256_mul_div(&quotient, amount, &q96, liquidity))
            if status != AMM_OK:
                return status
        if tio_u256_add(out, sqrt_p, &quotient):
            return AMM_OVERFLOW
        if _above_u160(out):
            return AMM_OVERFLOW                                         # SafeCast.toUint160
        return AMM_OK
    if not _above_u160(amount):
        tio_u256_shl(&shifted, amount, 96)
        tio_u256_div_rounding_up(&quotient, &shifted, liquidity)        # UnsafeMath: 0 for liquidity 0
    else:
        status = _status(tio_u256_mul_div_rounding_up(&quotient, amount, &q96, liquidity))
        if status != AMM_OK:
            return status
    if tio_u256_cmp(sqrt_p, &quotient) <= 0:
        return AMM_V3_INVALID
    tio_u256_sub(out, sqrt_p, &quotient)
    _to_u160_truncate(out)
    return AMM_OK


cdef int v3_next_sqrt_price_from_input(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                       const tio_u256 *amount_in, bint zero_for_one, tio_u256 *out) noexcept nogil:
    if tio_u256_is_zero(sqrt_p) or tio_u256_is_zero(liquidity):
        return AMM_V3_INVALID
    if zero_for_one:
        return v3_next_sqrt_price_from_amount0_rounding_up(sqrt_p, liquidity, amount_in, True, out)
    return v3_next_sqrt_price_from_amount1_rounding_down(sqrt_p, liquidity, amount_in, True, out)


cdef int v3_next_sqrt_price_from_output(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                        const tio_u256 *amount_out, bint zero_for_one, tio_u256 *out) noexcept nogil:
    if tio_u256_is_zero(sqrt_p) or tio_u256_is_zero(liquidity):
        return AMM_V3_INVALID
    if zero_for_one:
        return v3_next_sqrt_price_from_amount1_rounding_down(sqrt_p, liquidity, amount_out, False, out)
    return v3_next_sqrt_price_from_amount0_rounding_up(sqrt_p, liquidity, amount_out, False, out)


cdef int v3_amount0_delta(const tio_u256 *sqrt_a, const tio_u256 *sqrt_b, const tio_u256 *liquidity,
                          bint round_up, tio_u256 *out) noexcept nogil:
    cdef const tio_u256 *a = sqrt_a
    cdef const tio_u256 *b = sqrt_b
    cdef tio_u256 numerator1, numerator2, t
    cdef int status
    if tio_u256_cmp(a, b) > 0:
        a, b = sqrt_b, sqrt_a
    tio_u256_shl(&numerator1, liquidity, 96)
    tio_u256_sub(&numerator2, b, a)
    if tio_u256_is_zero(a):
        return AMM_V3_INVALID
    if round_up:
        status = _status(tio_u256_mul_div_rounding_up(&t, &numerator1, &numerator2, b))
        if status == AMM_OK:
            tio_u256_div_rounding_up(out, &t, a)
        return status
    status = _status(tio_u256_mul_div(&t, &numerator1, &numerator2, b))
    if status == AMM_OK:
        tio_u256_divmod(out, NULL, &t, a)
    return status


cdef int v3_amount1_delta(const tio_u256 *sqrt_a, const tio_u256 *sqrt_b, const tio_u256 *liquidity,
                          bint round_up, tio_u256 *out) noexcept nogil:
    cdef const tio_u256 *a = sqrt_a
    cdef const tio_u256 *b = sqrt_b
    cdef tio_u256 diff, q96
    if tio_u256_cmp(a, b) > 0:
        a, b = sqrt_b, sqrt_a
    tio_u256_sub(&diff, b, a)
    _q96(&q96)
    if round_up:
        return _status(tio_u256_mul_div_rounding_up(out, liquidity, &diff, &q96))
    return _status(tio_u256_mul_div(out, liquidity, &diff, &q96))


# ---- SwapMath.computeSwapStep ---------------------------------------------------------------

cdef int v3_compute_swap_step(const tio_u256 *current, const tio_u256 *target, const tio_u256 *liquidity,
                              const tio_u256 *remaining_abs, bint exact_in, uint32_t fee_pips,
                              v3_step *step) noexcept nogil:
    cdef bint zero_for_one = tio_u256_cmp(current, target) >= 0
    cdef tio_u256 less_fee, keep, million, fee, rest
    cdef int status
    cdef bint reached
    if fee_pips >= 1000000:
        return AMM_BAD_FEE
    tio_u256_from_u64(&step.amount_in, 0)
    tio_u256_from_u64(&step.amount_out, 0)
    tio_u256_from_u64(&million, 1000000)
    if exact_in:
        tio_u256_from_u64(&keep, 1000000 - fee_pips)
        status = _status(tio_u256_mul_div(&less_fee, remaining_abs, &keep, &million))
        if status != AMM_OK:
            return status
        if zero_for_one:
            status = v3_amount0_delta(target, current, liquidity, True, &step.amount_in)
        else:
            status = v3_amount1_delta(current, target, liquidity, True, &step.amount_in)
        if status != AMM_OK:
            return status
        if tio_u256_cmp(&less_fee, &step.amount_in) >= 0:
            step.sqrt_price_next_x96 = target[0]
        else:
            status = v3_next_sqrt_price_from_input(current, liquidity, &less_fee, zero_for_one,
                                                   &step.sqrt_price_next_x96)
            if status != AMM_OK:
                return status
    else:
        if zero_for_one:
            status = v3_amount1_delta(target, current, liquidity, False, &step.amount_out)
        else:
            status = v3_amount0_delta(current, target, liquidity, False, &step.amount_out)
        if status != AMM_OK:
            return status
        if tio_u256_cmp(remaining_abs, &step.amount_out) >= 0:
            step.sqrt_price_next_x96 = target[0]
        else:
            status = v3_next_sqrt_price_from_output(current, liquidity, remaining_abs, zero_for_one,
                                                    &step.sqrt_price_next_x96)
            if status != AMM_OK:
                return status
    reached = tio_u256_cmp(target, &step.sqrt_price_next_x96) == 0
    if zero_for_one:
        if not (reached and exact_in):
            status = v3_amount0_delta(&step.sqrt_price_next_x96, current, liquidity, True, &step.amount_in)
            if status != AMM_OK:
                return status
        if not (reached and not exact_in):
            status = v3_amount1_delta(&step.sqrt_price_next_x96, current, liquidity, False, &step.amount_out)
            if status != AMM_OK:
                return status
    else:
        if not (reached and exact_in):
            status = v3_amount1_delta(current, &step.sqrt_price_next_x96, liquidity, True, &step.amount_in)
            if status != AMM_OK:
                return status
        if not (reached and not exact_in):
            status = v3_amount0_delta(current, &step.sqrt_price_next_x96, liquidity, False, &step.amount_out)
            if status != AMM_OK:
                return status
    # cap the output amount to not exceed the remaining output amount
    if not exact_in and tio_u256_cmp(&step.amount_out, remaining_abs) > 0:
        step.amount_out = remaining_abs[0]
    if exact_in and not reached:
        tio_u256_sub(&step.fee_amount, remaining_abs, &step.amount_in)   # the rest of the input is fee
    else:
        tio_u256_from_u64(&fee, fee_pips)
        tio_u256_from_u64(&rest, 1000000 - fee_pips)
        status = _status(tio_u256_mul_div_rounding_up(&step.fee_amount, &step.amount_in, &fee, &rest))
        if status != AMM_OK:
            return status
    return AMM_OK


# ---- one step of UniswapV3Pool.swap ------------------------------------------------------------

cdef int v3_swap_step(const tio_u256 *sqrt_price, const tio_u256 *liquidity,
                              const tio_u256 *amount_abs, bint exact_input, bint zero_for_one,
                              uint32_t fee_pips, const tio_u256 *sqrt_price_limit, int32_t tick_next,
                              v3_swap_result *result) noexcept nogil:
    cdef tio_u256 min_ratio, max_ratio, next_price, target, paid, remaining
    cdef v3_step step
    cdef int status
    cdef bint beyond
    if tio_u256_is_zero(amount_abs):
        return AMM_V3_AMOUNT_ZERO
    _set(&min_ratio, 4295128739ULL, 0, 0, 0)
    _set(&max_ratio, 0x5d951d5263988d26ULL, 0xefd1fc6a50648849ULL, 0xfffd8963ULL, 0)
    if zero_for_one:
        if not (tio_u256_cmp(sqrt_price_limit, sqrt_price) < 0 and tio_u256_cmp(sqrt_price_limit, &min_ratio) > 0):
            return AMM_V3_PRICE_LIMIT
    elif not (tio_u256_cmp(sqrt_price_limit, sqrt_price) > 0 and tio_u256_cmp(sqrt_price_limit, &max_ratio) < 0):
        return AMM_V3_PRICE_LIMIT
    if tick_next < V3_MIN_TICK:
        tick_next = V3_MIN_TICK
    elif tick_next > V3_MAX_TICK:
        tick_next = V3_MAX_TICK
    v3_sqrt_ratio_at_tick(tick_next, &next_price)
    if zero_for_one:
        beyond = tio_u256_cmp(&next_price, sqrt_price_limit) < 0
    else:
        beyond = tio_u256_cmp(&next_price, sqrt_price_limit) > 0
    target = sqrt_price_limit[0] if beyond else next_price
    status = v3_compute_swap_step(sqrt_price, &target, liquidity, amount_abs, exact_input, fee_pips, &step)
    if status != AMM_OK:
        return status
    if tio_u256_add(&paid, &step.amount_in, &step.fee_amount) or paid.w[3] >> 63 or step.amount_out.w[3] >> 63:
        return AMM_OVERFLOW                                             # SafeCast.toInt256
    # what is left of amountSpecified: exact input spends in + fee, exact output receives out
    if exact_input:
        tio_u256_sub(&remaining, amount_abs, &paid)
    else:
        tio_u256_sub(&remaining, amount_abs, &step.amount_out)
    result.amount_in = paid
    result.amount_out = step.amount_out
    result.fee_amount = step.fee_amount
    result.sqrt_price_x96 = step.sqrt_price_next_x96
    result.tick_changed = 1
    if tio_u256_cmp(&step.sqrt_price_next_x96, &next_price) == 0:
        result.tick = tick_next - 1 if zero_for_one else tick_next
    elif tio_u256_cmp(&step.sqrt_price_next_x96, sqrt_price) != 0:
        status = v3_tick_at_sqrt_ratio(&step.sqrt_price_next_x96, &result.tick)
        if status != AMM_OK:
            return status
    else:
        result.tick_changed = 0
        result.tick = 0
    result.crosses_tick = (not tio_u256_is_zero(&remaining)
                           and tio_u256_cmp(&step.sqrt_price_next_x96, sqrt_price_limit) != 0)
    return AMM_OK


# ---- a whole swap inside the initialized tick range ----------------------------------------

cdef inline int32_t _floor_div(int32_t a, int32_t b) noexcept nogil:
    cdef int32_t q = a // b                     # cdivision: truncates towards zero
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef int v3_range_swap(const tio_u256 *sqrt_price, const tio_u256 *liquidity, int32_t tick,
                          int32_t tick_spacing, int32_t tick_lower, int32_t tick_upper,
                          const tio_u256 *amount_abs, bint exact_input, bint zero_for_one, uint32_t fee_pips,
                          const tio_u256 *sqrt_price_limit, uint32_t max_steps, v3_swap_result *result,
                          uint32_t *steps) noexcept nogil:
    cdef tio_u256 price = sqrt_price[0], remaining = amount_abs[0], total_in, total_out, total_fee, bound_price
    cdef int32_t compressed, word_edge, tick_next, bound = tick_lower if zero_for_one else tick_upper
    cdef v3_swap_result r
    cdef int status
    cdef uint32_t n = 0
    if tick_spacing <= 0 or not (tick_lower <= tick < tick_upper):
        return AMM_V3_INVALID
    tio_u256_from_u64(&total_in, 0)
    tio_u256_from_u64(&total_out, 0)
    tio_u256_from_u64(&total_fee, 0)
    status = v3_sqrt_ratio_at_tick(V3_MIN_TICK if bound < V3_MIN_TICK else (V3_MAX_TICK if bound > V3_MAX_TICK
                                                                             else bound), &bound_price)
    if status != AMM_OK:
        return status
    result.tick = tick
    result.tick_changed = 0
    result.crosses_tick = 0
    while True:
        if n == max_steps:
            result.crosses_tick = 1
            break
        # TickBitmap.nextInitializedTickWithinOneWord: the word's edge, or our bound when nearer
        compressed = _floor_div(tick, tick_spacing)
        if zero_for_one:
            word_edge = (compressed >> 8 << 8) * tick_spacing
            tick_next = tick_lower if tick_lower >= word_edge else word_edge
        else:
            word_edge = ((compressed + 1) >> 8 << 8 | 255) * tick_spacing
            tick_next = tick_upper if tick_upper <= word_edge else word_edge
        status = v3_swap_step(&price, liquidity, &remaining, exact_input, zero_for_one, fee_pips,
                              sqrt_price_limit, tick_next, &r)
        if status != AMM_OK:
            return status
        n += 1
        tio_u256_add(&total_in, &total_in, &r.amount_in)
        tio_u256_add(&total_out, &total_out, &r.amount_out)
        tio_u256_add(&total_fee, &total_fee, &r.fee_amount)
        if exact_input:
            tio_u256_sub(&remaining, &remaining, &r.amount_in)
        else:
            tio_u256_sub(&remaining, &remaining, &r.amount_out)
        price = r.sqrt_price_x96
        if r.tick_changed:
            tick = r.tick
            result.tick = tick
            result.tick_changed = 1
        if tio_u256_cmp(&price, &bound_price) == 0:
            # at an initialized tick's price the pool crosses it (liquidityNet) even with nothing left
            result.crosses_tick = 1
            break
        if tio_u256_is_zero(&remaining) or tio_u256_cmp(&price, sqrt_price_limit) == 0:
            break
    result.amount_in = total_in
    result.amount_out = total_out
    result.fee_amount = total_fee
    result.sqrt_price_x96 = price
    steps[0] = n
    return AMM_OK


# ---- the Python edge ------------------------------------------------------------------------

cdef int _bounded(object value, tio_u256 *out, str name, int bits) except -1:
    u256_from_int(value, out, name)
    if bits < 256 and value >> bits:
        raise ValueError(f"{name} must be < 2**{bits} (a uint{bits}), got {value}")
    return 0


cdef uint32_t _fee_pips(object fee_pips) except? 0xFFFFFFFF:
    if type(fee_pips) is not int or not 0 <= fee_pips < 1000000:
        raise ValueError(f"fee_pips must be an int in [0, 1000000) (hundredths of a basis point), got {fee_pips!r}")
    return <uint32_t>fee_pips


cdef int32_t _tick(object tick, str name) except? -2147483647:
    if type(tick) is not int and (not isinstance(tick, int) or isinstance(tick, bool)):
        raise TypeError(f"{name} must be an int, got {type(tick).__name__}")
    if not -(1 << 23) <= tick < 1 << 23:
        raise ValueError(f"{name} must fit an int24, got {tick}")
    return <int32_t>tick


def get_sqrt_ratio_at_tick(tick):
    """TickMath.getSqrtRatioAtTick: ``sqrt(1.0001**tick) * 2**96``, rounded up.

    >>> get_sqrt_ratio_at_tick(0) == 2**96
    True
    >>> get_sqrt_ratio_at_tick(-887272)
    4295128739
    """
    cdef tio_u256 out
    cdef int status = v3_sqrt_ratio_at_tick(_tick(tick, "tick"), &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_sqrt_ratio_at_tick")
    return u256_to_int(&out)


def get_tick_at_sqrt_ratio(sqrt_price_x96):
    """TickMath.getTickAtSqrtRatio: the greatest tick whose ratio is <= the price.

    >>> get_tick_at_sqrt_ratio(2**96), get_tick_at_sqrt_ratio(2**96 - 1)
    (0, -1)
    """
    cdef tio_u256 price
    cdef int32_t tick = 0
    _bounded(sqrt_price_x96, &price, "sqrt_price_x96", 160)
    cdef int status = v3_tick_at_sqrt_ratio(&price, &tick)
    if status != AMM_OK:
        raise_amm_status(status, "get_tick_at_sqrt_ratio")
    return tick


def get_next_sqrt_price_from_input(sqrt_price_x96, liquidity, amount_in, zero_for_one):
    """SqrtPriceMath.getNextSqrtPriceFromInput."""
    cdef tio_u256 p, l, a, out
    _bounded(sqrt_price_x96, &p, "sqrt_price_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    _bounded(amount_in, &a, "amount_in", 256)
    cdef int status = v3_next_sqrt_price_from_input(&p, &l, &a, bool(zero_for_one), &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_next_sqrt_price_from_input")
    return u256_to_int(&out)


def get_next_sqrt_price_from_output(sqrt_price_x96, liquidity, amount_out, zero_for_one):
    """SqrtPriceMath.getNextSqrtPriceFromOutput."""
    cdef tio_u256 p, l, a, out
    _bounded(sqrt_price_x96, &p, "sqrt_price_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    _bounded(amount_out, &a, "amount_out", 256)
    cdef int status = v3_next_sqrt_price_from_output(&p, &l, &a, bool(zero_for_one), &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_next_sqrt_price_from_output")
    return u256_to_int(&out)


def get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up):
    """SqrtPriceMath.getAmount0Delta: token0 between two prices for a liquidity.

    >>> get_amount0_delta(2**96, 2 * 2**96, 10**18, True)
    500000000000000000
    """
    cdef tio_u256 a, b, l, out
    _bounded(sqrt_ratio_a_x96, &a, "sqrt_ratio_a_x96", 160)
    _bounded(sqrt_ratio_b_x96, &b, "sqrt_ratio_b_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    cdef int status = v3_amount0_delta(&a, &b, &l, bool(round_up), &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_amount0_delta")
    return u256_to_int(&out)


def get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up):
    """SqrtPriceMath.getAmount1Delta: token1 between two prices for a liquidity.

    >>> get_amount1_delta(2**96, 2 * 2**96, 10**18, False)
    1000000000000000000
    """
    cdef tio_u256 a, b, l, out
    _bounded(sqrt_ratio_a_x96, &a, "sqrt_ratio_a_x96", 160)
    _bounded(sqrt_ratio_b_x96, &b, "sqrt_ratio_b_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    cdef int status = v3_amount1_delta(&a, &b, &l, bool(round_up), &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_amount1_delta")
    return u256_to_int(&out)


def compute_swap_step(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, amount_remaining, fee_pips):
    """SwapMath.computeSwapStep -> ``(sqrt_ratio_next_x96, amount_in, amount_out, fee_amount)``;
    ``amount_remaining`` is an int256: >= 0 exact input, < 0 exact output.

    >>> compute_swap_step(2**96, 2**96 * 101 // 100, 2 * 10**18, 10**15, 600)
    (79267752827072715483039444247, 999400000000000, 998900849245631, 600000000000)
    """
    cdef tio_u256 cur, tgt, l, rem
    cdef v3_step step
    _bounded(sqrt_ratio_current_x96, &cur, "sqrt_ratio_current_x96", 160)
    _bounded(sqrt_ratio_target_x96, &tgt, "sqrt_ratio_target_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    if type(amount_remaining) is not int or not -(1 << 255) <= amount_remaining < 1 << 255:
        raise ValueError(f"amount_remaining must be an int256, got {amount_remaining!r}")
    u256_from_int(abs(amount_remaining), &rem, "amount_remaining")
    cdef int status = v3_compute_swap_step(&cur, &tgt, &l, &rem, amount_remaining >= 0, _fee_pips(fee_pips), &step)
    if status != AMM_OK:
        raise_amm_status(status, "compute_swap_step")
    return (u256_to_int(&step.sqrt_price_next_x96), u256_to_int(&step.amount_in),
            u256_to_int(&step.amount_out), u256_to_int(&step.fee_amount))


V3Swap = namedtuple("V3Swap", ["amount0", "amount1", "amount_in", "amount_out", "fee_amount",
                               "sqrt_price_x96", "tick", "crosses_tick"])
V3Swap.__doc__ = """One step of a V3 swap: the pool's signed (amount0, amount1) as swap() returns
them (positive: paid in), the input (fee included), the output, the fee, the price and tick after
(tick None when the price did not move), and whether the swap would go on past tick_next (then
the amounts are only this step's and the caller counts it as "skipped: crosses a tick")."""


def v3_swap_within_range(sqrt_price_x96, liquidity, amount_specified, zero_for_one, fee_pips,
                         sqrt_price_limit_x96, tick_next):
    """What ``UniswapV3Pool.swap(recipient, zero_for_one, amount_specified, sqrt_price_limit_x96)``
    does while it stays between the current price and ``tick_next`` (the next initialized
    tick in the swap's direction, or the edge of the current tick-bitmap word: the end of
    the pool's current step).  ``amount_specified > 0`` is an exact input, ``< 0`` an exact
    output, as in the pool.  Returns a :class:`V3Swap`.

    >>> s = v3_swap_within_range(2**96, 10**18, -10**15, False, 500, 2**96 * 11 // 10, 60)
    >>> s.amount0, s.amount1 > 10**15, s.crosses_tick
    (-1000000000000000, True, False)
    """
    cdef tio_u256 price, l, amount, limit
    cdef v3_swap_result r
    _bounded(sqrt_price_x96, &price, "sqrt_price_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    _bounded(sqrt_price_limit_x96, &limit, "sqrt_price_limit_x96", 160)
    if type(amount_specified) is not int or not -(1 << 255) <= amount_specified < 1 << 255:
        raise ValueError(f"amount_specified must be an int256, got {amount_specified!r}")
    u256_from_int(abs(amount_specified), &amount, "amount_specified")
    cdef bint exact_input = amount_specified > 0
    cdef bint down = bool(zero_for_one)
    cdef int status = v3_swap_step(&price, &l, &amount, exact_input, down, _fee_pips(fee_pips), &limit,
                                           _tick(tick_next, "tick_next"), &r)
    if status != AMM_OK:
        raise_amm_status(status, "v3_swap_within_range")
    paid, received = u256_to_int(&r.amount_in), u256_to_int(&r.amount_out)
    amount0, amount1 = (paid, -received) if down else (-received, paid)
    return V3Swap(amount0, amount1, paid, received, u256_to_int(&r.fee_amount), u256_to_int(&r.sqrt_price_x96),
                  r.tick if r.tick_changed else None, bool(r.crosses_tick))


def v3_swap_in_range(sqrt_price_x96, liquidity, tick, amount_specified, zero_for_one, fee_pips, tick_spacing,
                     tick_lower, tick_upper, sqrt_price_limit_x96=None, max_steps=256):
    """A whole ``UniswapV3Pool.swap`` while the price stays inside the initialized tick range
    ``[tick_lower, tick_upper)`` around ``tick`` (the greatest initialized tick <= tick and the
    least one above it): the pool's loop, stepping over tick-bitmap word edges (uninitialized:
    the liquidity does not change), each step bit for bit as the pool.  ``crosses_tick`` is
    True when the price would reach a bound's price (crossing an initialized tick changes the
    liquidity by its liquidityNet, which this does not know): the amounts are then only those
    up to the bound, and a caller skips the swap.  ``sqrt_price_limit_x96`` None: no limit
    (MIN_SQRT_RATIO + 1 or MAX_SQRT_RATIO - 1, what a router passes for 0).

    >>> s = v3_swap_in_range(2**96, 10**18, 0, 10**15, True, 3000, 60, -600, 600)
    >>> s.amount0, s.amount1, s.tick, s.crosses_tick
    (1000000000000000, -996006981039903, -20, False)
    >>> v3_swap_in_range(2**96, 10**18, 0, 10**17, True, 3000, 60, -600, 600).crosses_tick
    True
    """
    cdef tio_u256 price, l, amount, limit
    cdef v3_swap_result r
    cdef uint32_t steps = 0
    _bounded(sqrt_price_x96, &price, "sqrt_price_x96", 160)
    _bounded(liquidity, &l, "liquidity", 128)
    down = bool(zero_for_one)
    if sqrt_price_limit_x96 is None:
        sqrt_price_limit_x96 = MIN_SQRT_RATIO + 1 if down else MAX_SQRT_RATIO - 1
    _bounded(sqrt_price_limit_x96, &limit, "sqrt_price_limit_x96", 160)
    if type(amount_specified) is not int or not -(1 << 255) <= amount_specified < 1 << 255:
        raise ValueError(f"amount_specified must be an int256, got {amount_specified!r}")
    cdef int32_t t = _tick(tick, "tick"), lo = _tick(tick_lower, "tick_lower"), hi = _tick(tick_upper, "tick_upper")
    cdef int32_t spacing = _tick(tick_spacing, "tick_spacing")
    if spacing <= 0:
        raise ValueError(f"tick_spacing must be > 0, got {tick_spacing}")
    if not lo <= t < hi:
        raise ValueError(f"tick must lie in [tick_lower, tick_upper), got {tick_lower} <= {tick} < {tick_upper}")
    if type(max_steps) is not int or not 1 <= max_steps < 1 << 32:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    u256_from_int(abs(amount_specified), &amount, "amount_specified")
    cdef int status = v3_range_swap(&price, &l, t, spacing, lo, hi, &amount, amount_specified > 0, down,
                                       _fee_pips(fee_pips), &limit, max_steps, &r, &steps)
    if status != AMM_OK:
        raise_amm_status(status, "v3_swap_in_range")
    paid, received = u256_to_int(&r.amount_in), u256_to_int(&r.amount_out)
    amount0, amount1 = (paid, -received) if down else (-received, paid)
    return V3Swap(amount0, amount1, paid, received, u256_to_int(&r.fee_amount), u256_to_int(&r.sqrt_price_x96),
                  r.tick if r.tick_changed else None, bool(r.crosses_tick))
