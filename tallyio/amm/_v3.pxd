# Uniswap V3 math within one step of the swap loop (v3-core 1.0.1: TickMath, SqrtPriceMath,
# SwapMath.computeSwapStep and the step logic of UniswapV3Pool.swap), exact on tio_u256, as a
# C API the analyzer calls without the GIL.  tallyio/amm/_v3.pyx.
#
# Values typed uint160/uint128 in Solidity (sqrt prices, liquidity) must be below 2**160 /
# 2**128 here too: the Python face checks, C callers must.  Statuses are those of _v2.pxd
# (AMM_OK, AMM_OVERFLOW for a FullMath/SafeMath/SafeCast revert, AMM_V3_* for the requires).
from libc.stdint cimport uint32_t, int32_t
from tallyio._ext.u256 cimport tio_u256

cdef enum:
    V3_MIN_TICK = -887272
    V3_MAX_TICK = 887272

ctypedef struct v3_step:
    tio_u256 sqrt_price_next_x96
    tio_u256 amount_in            # without the fee
    tio_u256 amount_out
    tio_u256 fee_amount

ctypedef struct v3_swap_result:
    tio_u256 amount_in            # paid into the pool, fee included (amount0 or amount1 > 0)
    tio_u256 amount_out           # paid out by the pool (the other amount, negated)
    tio_u256 fee_amount
    tio_u256 sqrt_price_x96       # after the step
    int32_t tick                  # the pool's tick after the step, when tick_changed
    int tick_changed              # 0: the price did not move, the tick is unchanged
    int crosses_tick              # 1: the swap goes on past tick_next; amounts are this step's only

cdef int v3_sqrt_ratio_at_tick(int32_t tick, tio_u256 *sqrt_price_x96) noexcept nogil
cdef int v3_tick_at_sqrt_ratio(const tio_u256 *sqrt_price_x96, int32_t *tick) noexcept nogil
cdef int v3_next_sqrt_price_from_amount0_rounding_up(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                                     const tio_u256 *amount, bint add, tio_u256 *out) noexcept nogil
cdef int v3_next_sqrt_price_from_amount1_rounding_down(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                                       const tio_u256 *amount, bint add, tio_u256 *out) noexcept nogil
cdef int v3_next_sqrt_price_from_input(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                       const tio_u256 *amount_in, bint zero_for_one, tio_u256 *out) noexcept nogil
cdef int v3_next_sqrt_price_from_output(const tio_u256 *sqrt_p, const tio_u256 *liquidity,
                                        const tio_u256 *amount_out, bint zero_for_one, tio_u256 *out) noexcept nogil
cdef int v3_amount0_delta(const tio_u256 *sqrt_a, const tio_u256 *sqrt_b, const tio_u256 *liquidity,
                          bint round_up, tio_u256 *out) noexcept nogil
cdef int v3_amount1_delta(const tio_u256 *sqrt_a, const tio_u256 *sqrt_b, const tio_u256 *liquidity,
                          bint round_up, tio_u256 *out) noexcept nogil
# amountRemaining as Solidity's int256: its magnitude and exact_in (amountRemaining >= 0)
cdef int v3_compute_swap_step(const tio_u256 *current, const tio_u256 *target, const tio_u256 *liquidity,
                              const tio_u256 *remaining_abs, bint exact_in, uint32_t fee_pips,
                              v3_step *step) noexcept nogil
# one step of UniswapV3Pool.swap from sqrt_price towards tick_next (the next initialized tick in
# the swap's direction, or the edge of the tick bitmap word, as nextInitializedTickWithinOneWord
# gives it), capped by the price limit; amount_specified as its magnitude and exact_input
cdef int v3_swap_step(const tio_u256 *sqrt_price, const tio_u256 *liquidity,
                              const tio_u256 *amount_abs, bint exact_input, bint zero_for_one,
                              uint32_t fee_pips, const tio_u256 *sqrt_price_limit, int32_t tick_next,
                              v3_swap_result *result) noexcept nogil
# a whole swap of UniswapV3Pool.swap while it stays inside the pool's initialized tick range
# [tick_lower, tick_upper) (the greatest initialized tick <= tick, the least one above it):
# the pool's loop over tick-bitmap word edges (uninitialized ticks: liquidity unchanged), each
# step by v3_swap_step.  result.crosses_tick = 1 when the price would reach tick_lower's or
# tick_upper's price (crossing an initialized tick changes liquidity: not simulated; amounts
# are then only those up to the bound).  *steps: loop iterations taken (bounded by max_steps;
# past it crosses_tick is set too).
cdef int v3_range_swap(const tio_u256 *sqrt_price, const tio_u256 *liquidity, int32_t tick,
                          int32_t tick_spacing, int32_t tick_lower, int32_t tick_upper,
                          const tio_u256 *amount_abs, bint exact_input, bint zero_for_one, uint32_t fee_pips,
                          const tio_u256 *sqrt_price_limit, uint32_t max_steps, v3_swap_result *result,
                          uint32_t *steps) noexcept nogil
