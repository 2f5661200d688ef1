"""Uniswap V2 pool math, bit for bit with UniswapV2Library.sol (v2-periphery):
the C functions of ``_v2.pxd`` and their Python face.  Owns only this math;
reads no pool state.

Solidity 0.6's SafeMath reverts where an intermediate passes 2**256: here that
is ``AmmOverflowError``; each require() is an ``AmmError`` whose ``reason`` is
the library's message.

>>> from tallyio.amm import get_amount_out, get_amount_in
>>> get_amount_out(10**18, 100 * 10**18, 200_000 * 10**6)    # 1 ETH into a 100 ETH / 200k USDC pool
1974316068
>>> get_amount_in(1974316068, 100 * 10**18, 200_000 * 10**6)
999999999593763120
"""
from libc.stdint cimport uint32_t, uint64_t

from tallyio._ext.u256 cimport (tio_u256, tio_u256_is_zero, tio_u256_cmp, tio_u256_add, tio_u256_sub,
                                tio_u256_mul_u64, tio_u256_divmod_fast, tio_u256_mul_fast, tio_u256_from_u64,
                                u256_from_int, u256_to_int)
from tallyio.errors import AmmError, AmmOverflowError


cdef inline void _fee_fraction(uint32_t fee_bps, uint64_t *keep, uint64_t *base) noexcept nogil:
    # Written the way the contracts write it: 997/1000 for 30 bps (Uniswap, SushiSwap),
    # 998/1000 for 20, and x/10000 otherwise (PancakeSwap V2's 9975/10000).  The
    # quotient is the same either way (both terms scale by 10); only the point
    # where SafeMath overflows moves, and this keeps it where the contract has it.
    if fee_bps % 10 == 0:
        keep[0] = 1000 - fee_bps // 10
        base[0] = 1000
    else:
        keep[0] = 10000 - fee_bps
        base[0] = 10000


cdef int v2_amount_out(const tio_u256 *amount_in, const tio_u256 *reserve_in, const tio_u256 *reserve_out,
                       uint32_t fee_bps, tio_u256 *amount_out) noexcept nogil:
    cdef uint64_t keep, base
    cdef tio_u256 with_fee, numerator, denominator
    if fee_bps >= 10000:
        return AMM_BAD_FEE
    if tio_u256_is_zero(amount_in):
        return AMM_INSUFFICIENT_INPUT_AMOUNT
    if tio_u256_is_zero(reserve_in) or tio_u256_is_zero(reserve_out):
        return AMM_INSUFFICIENT_LIQUIDITY
    _fee_fraction(fee_bps, &keep, &base)
    if tio_v2_amount_out_small(amount_in, reserve_in, reserve_out, keep, base, amount_out) == 0:
        return AMM_OK                                                 # pool-sized operands (_v2.pxd)
    if tio_u256_mul_u64(&with_fee, amount_in, keep):                  # amountIn.mul(997)
        return AMM_OVERFLOW
    if tio_u256_mul_fast(&numerator, &with_fee, reserve_out):              # amountInWithFee.mul(reserveOut)
        return AMM_OVERFLOW
    if tio_u256_mul_u64(&denominator, reserve_in, base):              # reserveIn.mul(1000)
        return AMM_OVERFLOW
    if tio_u256_add(&denominator, &denominator, &with_fee):           # .add(amountInWithFee)
        return AMM_OVERFLOW
    tio_u256_divmod_fast(amount_out, NULL, &numerator, &denominator)      # denominator >= reserveIn*base > 0
    return AMM_OK


cdef int v2_amount_in(const tio_u256 *amount_out, const tio_u256 *reserve_in, const tio_u256 *reserve_out,
                      uint32_t fee_bps, tio_u256 *amount_in) noexcept nogil:
    cdef uint64_t keep, base
    cdef tio_u256 numerator, denominator, one
    if fee_bps >= 10000:
        return AMM_BAD_FEE
    if tio_u256_is_zero(amount_out):
        return AMM_INSUFFICIENT_OUTPUT_AMOUNT
    if tio_u256_is_zero(reserve_in) or tio_u256_is_zero(reserve_out):
        return AMM_INSUFFICIENT_LIQUIDITY
    _fee_fraction(fee_bps, &keep, &base)
    if tio_u256_mul_fast(&numerator, reserve_in, amount_out):              # reserveIn.mul(amountOut)
        return AMM_OVERFLOW
    if tio_u256_mul_u64(&numerator, &numerator, base):                # .mul(1000)
        return AMM_OVERFLOW
    if tio_u256_cmp(amount_out, reserve_out) >= 0:                    # sub underflow, or a zero denominator
        return AMM_OUTPUT_EXCEEDS_RESERVE
    tio_u256_sub(&denominator, reserve_out, amount_out)               # reserveOut.sub(amountOut)
    if tio_u256_mul_u64(&denominator, &denominator, keep):            # .mul(997)
        return AMM_OVERFLOW
    tio_u256_divmod_fast(amount_in, NULL, &numerator, &denominator)
    tio_u256_from_u64(&one, 1)
    if tio_u256_add(amount_in, amount_in, &one):                      # (numerator / denominator).add(1)
        return AMM_OVERFLOW
    return AMM_OK


cdef int v2_amounts_out(const tio_u256 *amount_in, const tio_u256 *reserves, const uint32_t *fee_bps,
                        int hops, tio_u256 *amounts) noexcept nogil:
    cdef int i, status
    if hops < 1:
        return AMM_INVALID_PATH
    amounts[0] = amount_in[0]
    for i in range(hops):
        status = v2_amount_out(&amounts[i], &reserves[2 * i], &reserves[2 * i + 1], fee_bps[i], &amounts[i + 1])
        if status != AMM_OK:
            return status
    return AMM_OK


cdef int v2_amounts_in(const tio_u256 *amount_out, const tio_u256 *reserves, const uint32_t *fee_bps,
                       int hops, tio_u256 *amounts) noexcept nogil:
    cdef int i, status
    if hops < 1:
        return AMM_INVALID_PATH
    amounts[hops] = amount_out[0]
    for i in range(hops - 1, -1, -1):
        status = v2_amount_in(&amounts[i + 1], &reserves[2 * i], &reserves[2 * i + 1], fee_bps[i], &amounts[i])
        if status != AMM_OK:
            return status
    return AMM_OK


# ---- the Python edge ------------------------------------------------------------------------

_MESSAGES = {
    AMM_INSUFFICIENT_INPUT_AMOUNT: ("INSUFFICIENT_INPUT_AMOUNT", "the input amount must be > 0"),
    AMM_INSUFFICIENT_OUTPUT_AMOUNT: ("INSUFFICIENT_OUTPUT_AMOUNT", "the output amount must be > 0"),
    AMM_INSUFFICIENT_LIQUIDITY: ("INSUFFICIENT_LIQUIDITY", "both reserves must be > 0"),
    AMM_OUTPUT_EXCEEDS_RESERVE: ("OUTPUT_EXCEEDS_RESERVE",
                                 "amount_out must be < reserve_out (the library reverts: ds-math-sub-underflow, "
                                 "or a division by zero when they are equal)"),
    AMM_BAD_FEE: ("BAD_FEE", "the fee must be below 100% (fee_bps < 10000, fee_pips < 1000000)"),
    AMM_INVALID_PATH: ("INVALID_PATH", f"a path needs 1 to {AMM_MAX_HOPS} hops"),
    AMM_V3_INVALID: ("V3_REVERT", "a require() of the V3 math failed (zero price or liquidity, or the "
                                  "amount would take the price past zero or 2**160)"),
    AMM_V3_AMOUNT_ZERO: ("AS", "amount_specified must not be 0"),
    AMM_V3_PRICE_LIMIT: ("SPL", "sqrt_price_limit_x96 must lie strictly between MIN_SQRT_RATIO and the current "
                                "price (zero_for_one) or between the current price and MAX_SQRT_RATIO"),
    AMM_V3_TICK_RANGE: ("T", "the tick must be within [-887272, 887272]"),
    AMM_V3_PRICE_RANGE: ("R", "the sqrt price must be within [MIN_SQRT_RATIO, MAX_SQRT_RATIO)"),
}


cdef int raise_amm_status(int status, str what) except -1:
    if status == AMM_OVERFLOW:
        raise AmmOverflowError(f"{what}: an intermediate needs more than 256 bits (SafeMath would revert)",
                               "OVERFLOW")
    reason, text = _MESSAGES.get(status, ("UNKNOWN", f"unexpected status {status}"))
    raise AmmError(f"{what}: {reason}: {text}", reason)


cdef uint32_t _fee(object fee_bps, str name) except? 0xFFFFFFFF:
    if type(fee_bps) is not int and (not isinstance(fee_bps, int) or isinstance(fee_bps, bool)):
        raise TypeError(f"{name} must be an int (basis points), got {type(fee_bps).__name__}")
    if not 0 <= fee_bps < 10000:
        raise ValueError(f"{name} must be in [0, 10000) basis points, got {fee_bps}")
    return <uint32_t>fee_bps


def get_amount_out(amount_in, reserve_in, reserve_out, fee_bps=30):
    """UniswapV2Library.getAmountOut: what a pool with these reserves pays for
    ``amount_in`` (fee in basis points; 30 is Uniswap's 0.3%).

    >>> get_amount_out(1000, 10**6, 10**6)
    996
    >>> get_amount_out(1000, 10**6, 10**6, fee_bps=25)
    996
    >>> get_amount_out(0, 10**6, 10**6)
    Traceback (most recent call last):
    ...
    tallyio.errors.AmmError: get_amount_out: INSUFFICIENT_INPUT_AMOUNT: the input amount must be > 0
    """
    cdef tio_u256 a, rin, rout, out
    u256_from_int(amount_in, &a, "amount_in")
    u256_from_int(reserve_in, &rin, "reserve_in")
    u256_from_int(reserve_out, &rout, "reserve_out")
    cdef uint32_t fee = _fee(fee_bps, "fee_bps")
    cdef int status = v2_amount_out(&a, &rin, &rout, fee, &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_amount_out")
    return u256_to_int(&out)


def get_amount_in(amount_out, reserve_in, reserve_out, fee_bps=30):
    """UniswapV2Library.getAmountIn: the input the library asks for to receive
    ``amount_out`` (it rounds up by adding 1, even when the division is exact).

    >>> get_amount_in(996, 10**6, 10**6)
    1000
    """
    cdef tio_u256 a, rin, rout, out
    u256_from_int(amount_out, &a, "amount_out")
    u256_from_int(reserve_in, &rin, "reserve_in")
    u256_from_int(reserve_out, &rout, "reserve_out")
    cdef uint32_t fee = _fee(fee_bps, "fee_bps")
    cdef int status = v2_amount_in(&a, &rin, &rout, fee, &out)
    if status != AMM_OK:
        raise_amm_status(status, "get_amount_in")
    return u256_to_int(&out)


cdef int _load_path(object reserves_path, object fee_bps, tio_u256 *reserves, uint32_t *fees) except -1:
    """Fill reserves (2 per hop) and fees from the Python arguments; returns the hop count."""
    try:
        hops = len(reserves_path)
    except TypeError:
        raise TypeError("reserves_path must be a sequence of (reserve_in, reserve_out) pairs") from None
    if not 1 <= hops <= AMM_MAX_HOPS:
        raise AmmError(f"reserves_path: INVALID_PATH: a path needs 1 to {AMM_MAX_HOPS} hops, got {hops}",
                       "INVALID_PATH")
    if isinstance(fee_bps, int):
        per_hop = [fee_bps] * hops
    else:
        per_hop = list(fee_bps)
        if len(per_hop) != hops:
            raise ValueError(f"fee_bps has {len(per_hop)} entries for {hops} hops")
    for i, pair in enumerate(reserves_path):
        try:
            reserve_in, reserve_out = pair
        except (TypeError, ValueError):
            raise TypeError(f"reserves_path[{i}] must be a (reserve_in, reserve_out) pair, got {pair!r}") from None
        u256_from_int(reserve_in, &reserves[2 * i], f"reserves_path[{i}][0] (reserve_in)")
        u256_from_int(reserve_out, &reserves[2 * i + 1], f"reserves_path[{i}][1] (reserve_out)")
        fees[i] = _fee(per_hop[i], f"fee_bps[{i}]")
    return hops


def get_amounts_out(amount_in, reserves_path, fee_bps=30):
    """UniswapV2Library.getAmountsOut over a path given as its pools'
    ``(reserve_in, reserve_out)`` pairs, in swap order.  ``fee_bps`` is one fee
    for every hop or one per hop.  Returns ``[amount_in, out_1, ..., out_n]``.

    >>> get_amounts_out(10**6, [(10**9, 2 * 10**9), (5 * 10**9, 10**9)])
    [1000000, 1992013, 397049]
    """
    cdef tio_u256 reserves[2 * AMM_MAX_HOPS]
    cdef tio_u256 amounts[AMM_MAX_HOPS + 1]
    cdef uint32_t fees[AMM_MAX_HOPS]
    cdef tio_u256 a
    u256_from_int(amount_in, &a, "amount_in")
    cdef int hops = _load_path(reserves_path, fee_bps, reserves, fees)
    cdef int status = v2_amounts_out(&a, reserves, fees, hops, amounts)
    if status != AMM_OK:
        raise_amm_status(status, "get_amounts_out")
    return [u256_to_int(&amounts[i]) for i in range(hops + 1)]


def get_amounts_in(amount_out, reserves_path, fee_bps=30):
    """UniswapV2Library.getAmountsIn: the inputs each hop asks for so the last
    pays ``amount_out``.  Returns ``[amount_in, ..., amount_out]``.

    >>> get_amounts_in(397049, [(10**9, 2 * 10**9), (5 * 10**9, 10**9)])
    [999999, 1992010, 397049]
    """
    cdef tio_u256 reserves[2 * AMM_MAX_HOPS]
    cdef tio_u256 amounts[AMM_MAX_HOPS + 1]
    cdef uint32_t fees[AMM_MAX_HOPS]
    cdef tio_u256 a
    u256_from_int(amount_out, &a, "amount_out")
    cdef int hops = _load_path(reserves_path, fee_bps, reserves, fees)
    cdef int status = v2_amounts_in(&a, reserves, fees, hops, amounts)
    if status != AMM_OK:
        raise_amm_status(status, "get_amounts_in")
    return [u256_to_int(&amounts[i]) for i in range(hops + 1)]
