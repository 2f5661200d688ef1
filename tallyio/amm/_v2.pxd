# Uniswap V2 pool math (UniswapV2Library.getAmountOut/getAmountIn/getAmountsOut/getAmountsIn),
# exact on tio_u256, as a C API the analyzer calls without the GIL.  tallyio/amm/_v2.pyx.
#
# Every function returns AMM_OK or one of the statuses below (the require() the
# library would revert with); outputs are written only on AMM_OK.  fee_bps is the
# pool's fee in basis points (30 for Uniswap V2 and SushiSwap, 25 for PancakeSwap V2);
# it must be < 10000.  Pointers may not be NULL; outputs may not alias inputs.
from libc.stdint cimport uint32_t, uint64_t
from tallyio._ext.u256 cimport (tio_u256, tio_u256_mul_u64, tio_u256_add, tio_u256_is_zero,
                                tio_u256_mul_divmod_q128)

cdef enum:
    AMM_OK = 0
    AMM_INSUFFICIENT_INPUT_AMOUNT = 101    # amount_in == 0
    AMM_INSUFFICIENT_OUTPUT_AMOUNT = 102   # amount_out == 0
    AMM_INSUFFICIENT_LIQUIDITY = 103       # a reserve is 0
    AMM_OVERFLOW = 104                     # a SafeMath mul/add would overflow 256 bits
    AMM_OUTPUT_EXCEEDS_RESERVE = 105       # get_amount_in with amount_out >= reserve_out (sub underflow / div by 0)
    AMM_BAD_FEE = 106                      # fee_bps >= 10000 (or V3 fee_pips >= 1e6)
    AMM_INVALID_PATH = 107                 # fewer than 1 hop (or more than a caller's bound)
    AMM_V3_INVALID = 108                   # a V3 require() without a message (zero price or liquidity, price underflow)
    AMM_V3_AMOUNT_ZERO = 109               # UniswapV3Pool.swap: require(amountSpecified != 0, 'AS')
    AMM_V3_PRICE_LIMIT = 110               # UniswapV3Pool.swap: the sqrt price limit is on the wrong side ('SPL')
    AMM_V3_TICK_RANGE = 111                # TickMath: |tick| > 887272 ('T')
    AMM_V3_PRICE_RANGE = 112               # TickMath: sqrt price outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO) ('R')
    AMM_MAX_HOPS = 16                      # the longest path the Python face accepts

# one hop: amount_out for amount_in (getAmountOut)
cdef int v2_amount_out(const tio_u256 *amount_in, const tio_u256 *reserve_in, const tio_u256 *reserve_out,
                       uint32_t fee_bps, tio_u256 *amount_out) noexcept nogil
# one hop: the amount_in getAmountIn asks for amount_out (floor(...) + 1, as the library rounds)
cdef int v2_amount_in(const tio_u256 *amount_out, const tio_u256 *reserve_in, const tio_u256 *reserve_out,
                      uint32_t fee_bps, tio_u256 *amount_in) noexcept nogil
# a path of `hops` pools: reserves[2*i], reserves[2*i+1] are hop i's (reserve_in, reserve_out),
# fee_bps[i] its fee; amounts gets hops + 1 entries, amounts[0] == amount_in
cdef int v2_amounts_out(const tio_u256 *amount_in, const tio_u256 *reserves, const uint32_t *fee_bps,
                        int hops, tio_u256 *amounts) noexcept nogil
# the same backwards from amounts[hops] == amount_out
cdef int v2_amounts_in(const tio_u256 *amount_out, const tio_u256 *reserves, const uint32_t *fee_bps,
                       int hops, tio_u256 *amounts) noexcept nogil

# the Python edge: raise the AmmError for `status` (always returns -1 with an exception set)
cdef int raise_amm_status(int status, str what) except -1


# v2_amount_out with its common case compiled into the caller (the cycle sizing's inner loop):
# amount_in and reserve_in below 2**113 and reserve_out below 2**128 (every real V2 pool:
# reserves are uint112).  Then no SafeMath step can overflow -- amountIn * 997 < 2**127,
# reserveIn * 1000 + that < 2**128, their product with reserveOut < 2**255 -- and the quotient
# is below reserve_out, so one 128-bit mulDiv gives exactly what v2_amount_out gives; any
# other input goes to v2_amount_out itself.  Same contract (outputs may not alias inputs).
cdef inline int v2_amount_out_inline(const tio_u256 *amount_in, const tio_u256 *reserve_in,
                                     const tio_u256 *reserve_out, uint32_t fee_bps,
                                     tio_u256 *amount_out) noexcept nogil:
    cdef uint64_t keep, base
    cdef tio_u256 with_fee, denominator
    if (fee_bps < 10000
            and (amount_in.w[2] | amount_in.w[3] | reserve_in.w[2] | reserve_in.w[3]
                 | reserve_out.w[2] | reserve_out.w[3]) == 0
            and ((amount_in.w[1] | reserve_in.w[1]) >> 49) == 0
            and not tio_u256_is_zero(amount_in) and not tio_u256_is_zero(reserve_in)
            and not tio_u256_is_zero(reserve_out)):
        if fee_bps % 10 == 0:                  # _v2.pyx's _fee_fraction: 997/1000 for 30 bps
            keep = 1000 - fee_bps // 10
            base = 1000
        else:
            keep = 10000 - fee_bps
            base = 10000
        tio_u256_mul_u64(&with_fee, amount_in, keep)
        tio_u256_mul_u64(&denominator, reserve_in, base)
        tio_u256_add(&denominator, &denominator, &with_fee)
        if tio_u256_mul_divmod_q128(amount_out, NULL, &with_fee, reserve_out, &denominator) == 0:
            return AMM_OK
    return v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps, amount_out)
