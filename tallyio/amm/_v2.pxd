# Uniswap V2 pool math (UniswapV2Library.getAmountOut/getAmountIn/getAmountsOut/getAmountsIn),
# exact on tio_u256, as a C API the analyzer calls without the GIL.  tallyio/amm/_v2.pyx.
#
# Every function returns AMM_OK or one of the statuses below (the require() the
# library would revert with); outputs are written only on AMM_OK.  fee_bps is the
# pool's fee in basis points (30 for Uniswap V2 and SushiSwap, 25 for PancakeSwap V2);
# it must be < 10000.  Pointers may not be NULL; outputs may not alias inputs.
from libc.stdint cimport uint32_t, uint64_t
from tallyio._ext.u256 cimport tio_u256

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
# reserveIn * 1000 + that < 2**128, their product with reserveOut < 2**255 -- and the
# quotient is below reserve_out, so it is computed on 128-bit halves (tio_v2_amount_out_small)
# and equals what v2_amount_out gives; any other input goes to v2_amount_out itself.  Same
# contract as v2_amount_out (outputs may not alias inputs).
cdef extern from * nogil:
    """
    /* getAmountOut on 128-bit halves for 0 < amount_in, reserve_in < 2**113 and
       0 < reserve_out < 2**128 with the fee as keep/base (base <= 10000): returns 0 and
       writes out, or 1 (nothing written) for any other operands */
    static inline int tio_v2_amount_out_small(const tio_u256 *amount_in, const tio_u256 *reserve_in,
                                              const tio_u256 *reserve_out, uint64_t keep, uint64_t base,
                                              tio_u256 *out)
    {
        if ((amount_in->w[2] | amount_in->w[3] | reserve_in->w[2] | reserve_in->w[3]
             | reserve_out->w[2] | reserve_out->w[3]) != 0
            || ((amount_in->w[1] | reserve_in->w[1]) >> 49) != 0)
            return 1;
        tio_u128_t a = ((tio_u128_t)amount_in->w[1] << 64) | amount_in->w[0];
        tio_u128_t r_in = ((tio_u128_t)reserve_in->w[1] << 64) | reserve_in->w[0];
        tio_u128_t r_out = ((tio_u128_t)reserve_out->w[1] << 64) | reserve_out->w[0];
        if (a == 0 || r_in == 0 || r_out == 0)
            return 1;
        tio_u128_t with_fee = a * keep;                    /* < 2**113 * 10000 < 2**127 */
        tio_u128_t denominator = r_in * base + with_fee;   /* < 2**127 + 2**127 */
        tio_u128_t hi, lo, q, r;
        tio_mul_128(with_fee, r_out, &hi, &lo);
        /* the quotient is below r_out < 2**128, so hi < denominator */
        tio_div_256_128(hi, lo, denominator, &q, &r);
        out->w[0] = (uint64_t)q;
        out->w[1] = (uint64_t)(q >> 64);
        out->w[2] = out->w[3] = 0;
        return 0;
    }

    /* The least z with getAmountOut(z) >= y on one hop: ceil(y * (base * reserve_in) /
       (keep * (reserve_out - y))) (getAmountOut(z) >= y  <=>  keep z (R_out - y) >= y base R_in),
       on 128-bit halves for 0 < y < reserve_out < 2**128, reserve_in < 2**113 and
       reserve_out - y < 2**113, where no product can pass 2**256 and the general route
       (y * reserve_in * base, then the division) gives the same quotient.  Returns 0 and
       writes out; 1 (nothing written) for other operands or a result of 2**128 or more. */
    static inline int tio_v2_least_input_small(const tio_u256 *y, const tio_u256 *reserve_in,
                                               const tio_u256 *reserve_out, uint64_t keep, uint64_t base,
                                               tio_u256 *out)
    {
        if ((y->w[2] | y->w[3] | reserve_in->w[2] | reserve_in->w[3] | reserve_out->w[2] | reserve_out->w[3]) != 0
            || (reserve_in->w[1] >> 49) != 0)
            return 1;
        tio_u128_t yy = ((tio_u128_t)y->w[1] << 64) | y->w[0];
        tio_u128_t r_in = ((tio_u128_t)reserve_in->w[1] << 64) | reserve_in->w[0];
        tio_u128_t r_out = ((tio_u128_t)reserve_out->w[1] << 64) | reserve_out->w[0];
        if (yy == 0 || yy >= r_out || ((r_out - yy) >> 113) != 0)
            return 1;
        tio_u128_t denominator = (r_out - yy) * keep;     /* < 2**113 * 10000 < 2**127, > 0 */
        tio_u128_t hi, lo, q, r;
        tio_mul_128(yy, r_in * base, &hi, &lo);           /* r_in * base < 2**127 */
        if (hi >= denominator)
            return 1;                                     /* the quotient passes 2**128 */
        tio_div_256_128(hi, lo, denominator, &q, &r);
        if (r != 0) {
            if (q == ~(tio_u128_t)0)
                return 1;
            q += 1;
        }
        out->w[0] = (uint64_t)q;
        out->w[1] = (uint64_t)(q >> 64);
        out->w[2] = out->w[3] = 0;
        return 0;
    }
    """
    int tio_v2_least_input_small(const tio_u256 *y, const tio_u256 *reserve_in, const tio_u256 *reserve_out,
                                 uint64_t keep, uint64_t base, tio_u256 *out)
    int tio_v2_amount_out_small(const tio_u256 *amount_in, const tio_u256 *reserve_in,
                                const tio_u256 *reserve_out, uint64_t keep, uint64_t base, tio_u256 *out)


cdef inline int v2_amount_out_inline(const tio_u256 *amount_in, const tio_u256 *reserve_in,
                                     const tio_u256 *reserve_out, uint32_t fee_bps,
                                     tio_u256 *amount_out) noexcept nogil:
    if fee_bps < 10000:
        # _v2.pyx's _fee_fraction: 997/1000 for 30 bps, x/10000 where the fee is not a multiple of 10
        if fee_bps % 10 == 0:
            if tio_v2_amount_out_small(amount_in, reserve_in, reserve_out, 1000 - fee_bps // 10, 1000,
                                       amount_out) == 0:
                return AMM_OK
        elif tio_v2_amount_out_small(amount_in, reserve_in, reserve_out, 10000 - fee_bps, 10000,
                                     amount_out) == 0:
            return AMM_OK
    return v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps, amount_out)
