# cython: language_level=3
# Owns: the backrun analyzer (tio_analyze_call and its Python face Analyzer) and the
# standing-arbitrage scans (every cycle: tio_scan_arbitrage; through touched pools: tio_scan_touched).
# Touches: reads _pools' table; writes tio_opp records into an OpportunityQueue's dropring;
# exact V2 math, V3 math within a tick range and cycle sizing from tallyio.amm (_v2.pxd, _v3.pxd,
# _cycle.pxd C APIs).
"""The backrun analyzer: what a pending V2 or V3 swap does to the pools it trades
through, and which cycles it makes profitable, sized exactly.

For each decoded V2 swap of a transaction (``tio_swap``, filled by the decoder):

1. find the pool of each hop on the router's exchange (pair index of the pool table);
2. apply the swap to a COPY of those reserves with exact ``getAmountOut`` /
   ``getAmountIn`` along its path; a swap that would revert on its own limit is skipped;
3. screen the cycles through the touched pools in float64: a chain of constant-product
   pools is one virtual pool ``(Ei, Eo)`` with the first hop's fee, whose optimal input
   is ``(sqrt(g Ei Eo) - Ei) / g``; at most ``max_cycles`` cycles per transaction;
4. size the ``max_sized`` best exactly with ``tallyio.amm``'s ``v2_best_cycle_input``:
   the closed form, then an exact integer search of the region where the integer
   optimum can lie, with a budget of ``max_evaluations`` (4) evaluations.  When the
   region fits the budget the result is the exact optimum (smallest input on ties: counted
   ``sized_exact``); otherwise it is the best input examined (``sized_near``: with
   reserves of 10**18 and more that region is billions of inputs wide);
5. compute the exact profit and push an ``Opportunity`` (kind BACKRUN) when it reaches
   ``min_profit_wei``.

V3 swaps (SwapRouter's exactInput*/exactOutput*, the Universal Router's V3 commands)
are applied exactly while every hop stays inside its pool's initialized tick range
(``tallyio.amm``'s ``v3_swap_in_range`` semantics: the pool's own loop over tick-bitmap
words, the fee); a hop whose price would reach an initialized tick is counted
``v3_crosses_tick`` and the swap skipped (crossing needs that tick's liquidityNet), a
pool whose range is unknown (a Swap log left it; until a resync) ``v3_range_unknown``.
Every skipped V3 swap also counts in ``v3_skipped``.  A single-pool call's
``sqrtPriceLimitX96`` (the decoder carries it) stops the simulated swap where the pool's
own loop stops: at the limit, with what was filled up to there (``v3_price_limited``; an
exactOutputSingle with a limit may then deliver less than asked, as the router allows);
a limit on the wrong side of the price reverts in the pool (``would_revert``); 0 means
none (the router passes MIN_SQRT_RATIO + 1 / MAX_SQRT_RATIO - 1).

Cycles through a V3 pool (a V2 pool and a V3 pool on the same pair, or a triangle) are
screened on the V3 pool's virtual reserves and sized on the exact objective (each hop's
exact integer math) by an integer search bounded so every V3 hop stays inside its range:
the whole domain is scanned when it holds at most ``max(64, max_evaluations)`` inputs
(then the size is certified: ``sized_exact``), else a ternary search narrows it to that
many and scans them (``sized_near``).  Their opportunities carry ``pool_kinds``.

Fee-on-transfer swaps and run-time amounts are counted and skipped.

    >>> from tallyio.mempool.records import V2Pool
    >>> from tallyio.mempool._pools import PoolTable
    >>> from tallyio.eth.types import PendingTx
    >>> W, T = b"\\xee" * 20, b"\\xaa" * 20
    >>> table = PoolTable([V2Pool(b"\\x01" * 20, W, T, 10**6, 10**6),
    ...                    V2Pool(b"\\x02" * 20, W, T, 10**6, 10**6, exchange=1)], weth=W)
    >>> an = Analyzer(table, AnalyzerConfig(max_evaluations=4096))   # small reserves: certified
    >>> tx = PendingTx(hash=b"\\x05" * 32, sender=b"\\x06" * 20, to=b"\\x07" * 20, nonce=0,
    ...                value=0, gas=0, max_fee_per_gas=0, max_priority_fee_per_gas=0,
    ...                input=b"", tx_type=2, received_ns=0)
    >>> [op] = an.analyze(tx, [dict(path=[W, T], amount_in=100_000)], exchange=0)
    >>> op.kind.name, [p[:1].hex() for p in op.pools], op.amount_in, op.profit
    ('BACKRUN', ['02', '01'], 46123, 4460)
    >>> an.stats()["sized_exact"]
    1
"""
from libc.stdint cimport uint8_t, uint32_t, int32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.math cimport sqrt

from tallyio._ext.common cimport TIO_OK, tio_now_ns
from tallyio._ext.u256 cimport tio_u256, tio_u256_cmp, tio_u256_is_zero
from tallyio._ext.swap cimport (tio_decoded_call, tio_swap, TIO_PROTOCOL_V2, TIO_PROTOCOL_V3,
                                TIO_SWAP_EXACT_IN, TIO_SWAP_EXACT_OUT, TIO_SWAP_ETH_IN,
                                TIO_SWAP_FEE_ON_TRANSFER, TIO_SWAP_AMOUNT_UNKNOWN)
from tallyio.mempool._addrtable cimport addr_table_get, TIO_ADDR_MISSING
from tallyio.mempool._pools cimport tio_pooltable, pooltable_pair, PoolTable, CYCLE_MAX_HOPS
from tallyio.mempool._ring cimport (tio_pending, tio_dropring_begin,
                                    tio_dropring_commit, tio_dropring_record)
from tallyio.mempool._opportunity cimport tio_opp, OpportunityQueue
from tallyio._ext.u256 cimport tio_u256_add, tio_u256_sub
from tallyio.amm._v2 cimport v2_amount_out, v2_amount_in, AMM_OK
from tallyio.amm._v3 cimport v3_range_swap, v3_swap_result
from tallyio.mempool._pools cimport POOL_KIND_V3, pooltable_v3_pool
from tallyio._ext.u256 cimport tio_u256_from_u64, tio_u256_shr, tio_u256_shl, tio_u256_divmod
from tallyio.amm._cycle cimport v2_best_cycle_input
from tallyio.mempool._u256py cimport int_to_u256, copy_address

from tallyio.mempool.config import AnalyzerConfig

__all__ = ["Analyzer", "COUNTERS"]

COUNTERS = ("swaps", "v3_skipped", "fee_on_transfer_skipped", "amount_unknown_skipped",
            "no_pool", "would_revert", "simulated", "cycles_screened", "cycles_truncated",
            "candidates", "sized_exact", "sized_near", "opportunities", "unprofitable",
            "v3_simulated", "v3_crosses_tick", "v3_range_unknown", "mixed_cycles_sized", "v3_price_limited")
"""Analyzer counter names, indexed by the C codes AN_*."""

cdef enum:
    OV_MAX = 8            # pools one transaction may touch (TIO_SWAP_MAX_PATH - 1 per swap)
    SCAN_MAX = 4096       # widest neighbourhood scanned exhaustively
    CAND_MAX = 64

cdef double TWO64 = 18446744073709551616.0


cdef struct overlay:
    int n
    int32_t pool[8]
    tio_u256 r[16]        # r[2k], r[2k+1]: reserves of overlay pool k after the swaps (V3: r[2k] is
    double rf[16]         # the sqrt price, rf the virtual reserves; the liquidity stays the table's)
    int32_t tick[8]       # V3: the tick after the swaps


cdef double Q96 = 79228162514264337593543950336.0
# the price limits a router passes for sqrtPriceLimitX96 = 0: MIN_SQRT_RATIO + 1, MAX_SQRT_RATIO - 1
cdef tio_u256 LIMIT_DOWN, LIMIT_UP
LIMIT_DOWN.w[0] = 4295128740ULL
LIMIT_DOWN.w[1] = LIMIT_DOWN.w[2] = LIMIT_DOWN.w[3] = 0
LIMIT_UP.w[0] = 0x5d951d5263988d25ULL
LIMIT_UP.w[1] = 0xefd1fc6a50648849ULL
LIMIT_UP.w[2] = 0xfffd8963ULL
LIMIT_UP.w[3] = 0


cdef inline double u256_to_double(const tio_u256 *v) noexcept nogil:
    return ((<double>v.w[3] * TWO64 + <double>v.w[2]) * TWO64 + <double>v.w[1]) * TWO64 + <double>v.w[0]


cdef inline int ov_slot(const overlay *ov, int32_t pool) noexcept nogil:
    cdef int k
    for k in range(ov.n):
        if ov.pool[k] == pool:
            return k
    return -1


cdef inline void hop_reserves(const tio_pooltable *t, const overlay *ov, int32_t pool,
                              int32_t token_in, const tio_u256 **rin, const tio_u256 **rout) noexcept nogil:
    """Exact (reserve_in, reserve_out) of `pool` entered with `token_in`, overlay first."""
    cdef int k = ov_slot(ov, pool)
    cdef int side = 0 if t.tokens[2 * pool] == token_in else 1
    if k >= 0:
        rin[0] = &ov.r[2 * k + side]
        rout[0] = &ov.r[2 * k + 1 - side]
    else:
        rin[0] = &t.reserve_x[2 * pool + side]
        rout[0] = &t.reserve_x[2 * pool + 1 - side]


cdef inline void hop_reserves_f(const tio_pooltable *t, const overlay *ov, int32_t pool,
                                int32_t token_in, double *rin, double *rout) noexcept nogil:
    cdef int k = ov_slot(ov, pool)
    cdef int side = 0 if t.tokens[2 * pool] == token_in else 1
    if k >= 0:
        rin[0] = ov.rf[2 * k + side]
        rout[0] = ov.rf[2 * k + 1 - side]
    else:
        rin[0] = t.reserve_f[2 * pool + side]
        rout[0] = t.reserve_f[2 * pool + 1 - side]


cdef inline bint screen_cycle(const tio_pooltable *t, const overlay *ov, uint64_t c,
                              double *profit, double *x_opt) noexcept nogil:
    """Float64 profit at the optimum of cycle c: True when it is profitable at all."""
    cdef int L = t.cyc_len[c]
    cdef double ei = 0, eo = 0, g0 = 1, g = 1, rin, rout, d, x
    cdef int32_t pool
    cdef uint32_t fee, last_fee = 0xFFFFFFFF
    cdef int h
    for h in range(L):
        pool = t.cyc_pool[3 * c + h]
        hop_reserves_f(t, ov, pool, t.cyc_in[3 * c + h], &rin, &rout)
        fee = t.fee_pips[pool]
        if fee != last_fee:                 # the hops of a cycle mostly share a fee: one division, same value
            g = (1000000.0 - fee) / 1000000.0
            last_fee = fee
        if h == 0:
            ei = rin
            eo = rout
            g0 = g
        else:
            d = rin + g * eo
            if d <= 0:
                return False
            ei = ei * rin / d
            eo = g * eo * rout / d
    if ei <= 0 or g0 * eo <= ei:
        return False
    x = (sqrt(g0 * ei * eo) - ei) / g0
    if x < 1:
        return False
    d = ei + g0 * x
    profit[0] = g0 * x * eo / d - x
    if x_opt != NULL:
        x_opt[0] = x
    return profit[0] > 0


cdef inline bint cycle_has_v3(const tio_pooltable *t, uint64_t c) noexcept nogil:
    cdef int h
    for h in range(t.cyc_len[c]):
        if t.kind[t.cyc_pool[3 * c + h]] == POOL_KIND_V3:
            return True
    return False


cdef inline int v3_hop(const tio_pooltable *t, const overlay *ov, int32_t pool, int32_t token_in,
                       const tio_u256 *amount, bint exact_in, v3_swap_result *r,
                       const tio_u256 *limit=NULL) noexcept nogil:
    """V3 pool `pool` entered with `token_in` for `amount` (exact in or out), from the overlay
    state when it has the pool, stopping at the sqrt price `limit` (NULL: none); AMM status
    (r.crosses_tick: the price would reach a bound)."""
    cdef int k = ov_slot(ov, pool)
    cdef bint down = t.tokens[2 * pool] == token_in
    cdef uint32_t steps
    cdef const tio_u256 *price
    cdef int32_t tick
    if k >= 0:
        price = &ov.r[2 * k]
        tick = ov.tick[k]
    else:
        price = &t.v3_sqrt_price[pool]
        tick = t.v3_ticks[4 * pool]
    return v3_range_swap(price, &t.v3_liquidity[pool], tick, t.v3_ticks[4 * pool + 3], t.v3_ticks[4 * pool + 1],
                         t.v3_ticks[4 * pool + 2], amount, exact_in, down, t.fee_pips[pool],
                         limit if limit != NULL else (&LIMIT_DOWN if down else &LIMIT_UP), 64, r, &steps)


cdef inline void ov_set_v3(const tio_pooltable *t, overlay *ov, int slot, int32_t pool,
                           const v3_swap_result *r) noexcept nogil:
    cdef double price, liquidity
    ov.r[2 * slot] = r.sqrt_price_x96
    if r.tick_changed:
        ov.tick[slot] = r.tick
    price = u256_to_double(&r.sqrt_price_x96) / Q96
    liquidity = u256_to_double(&t.v3_liquidity[pool])
    ov.rf[2 * slot] = liquidity / price if price > 0 else 0
    ov.rf[2 * slot + 1] = liquidity * price


cdef inline int ov_take(const tio_pooltable *t, overlay *ov, int32_t pool) noexcept nogil:
    """The overlay slot of `pool`, added (copied from the table) when new; -1 when full."""
    cdef int slot = ov_slot(ov, pool)
    if slot >= 0:
        return slot
    if ov.n == OV_MAX:
        return -1
    slot = ov.n
    ov.n += 1
    ov.pool[slot] = pool
    if t.kind[pool] == POOL_KIND_V3:
        ov.r[2 * slot] = t.v3_sqrt_price[pool]
        ov.tick[slot] = t.v3_ticks[4 * pool]
    else:
        ov.r[2 * slot] = t.reserve_x[2 * pool]
        ov.r[2 * slot + 1] = t.reserve_x[2 * pool + 1]
    ov.rf[2 * slot] = t.reserve_f[2 * pool]
    ov.rf[2 * slot + 1] = t.reserve_f[2 * pool + 1]
    return slot


cdef inline bint cycle_output(const tio_pooltable *t, const overlay *ov, uint64_t c, const tio_u256 *x,
                              tio_u256 *out) noexcept nogil:
    """The exact output of cycle c for input x, each hop with its own integer math; False
    when a hop fails (V2: an overflow; V3: a revert, or its price would reach a bound).  An
    amount rounded down to 0 gives 0 from there on (a loss, not a failure: the domain of
    the search is the inputs that keep every V3 hop in range, an interval from 1)."""
    cdef tio_u256 amount = x[0], nxt
    cdef const tio_u256 *rin
    cdef const tio_u256 *rout
    cdef v3_swap_result r
    cdef int32_t pool, tin
    cdef int h
    for h in range(t.cyc_len[c]):
        pool = t.cyc_pool[3 * c + h]
        tin = t.cyc_in[3 * c + h]
        if tio_u256_is_zero(&amount):
            break
        if t.kind[pool] == POOL_KIND_V3:
            if not t.v3_range_ok[pool] or v3_hop(t, ov, pool, tin, &amount, True, &r) != AMM_OK or r.crosses_tick:
                return False
            nxt = r.amount_out
        else:
            hop_reserves(t, ov, pool, tin, &rin, &rout)
            if v2_amount_out(&amount, rin, rout, t.fee_bps[pool], &nxt) != AMM_OK:
                return False
        amount = nxt
    out[0] = amount
    return True


cdef tio_u256 BIAS          # 2**255: score = output - input + BIAS orders profits as unsigned
BIAS.w[0] = BIAS.w[1] = BIAS.w[2] = 0
BIAS.w[3] = 1ULL << 63


cdef inline bint score_at(const tio_pooltable *t, const overlay *ov, uint64_t c, const tio_u256 *x,
                          tio_u256 *score, uint32_t *evaluations) noexcept nogil:
    cdef tio_u256 out
    evaluations[0] += 1
    if not cycle_output(t, ov, c, x, &out):
        tio_u256_from_u64(score, 0)                  # below every valid score
        return False
    tio_u256_add(score, &out, &BIAS)
    tio_u256_sub(score, score, x)
    return True


cdef inline void u256_of_double(double v, tio_u256 *out) noexcept nogil:
    cdef double hi
    tio_u256_from_u64(out, 0)
    if v < 1:
        return
    if v >= 3.4e38:
        v = 3.4e38
    hi = v / TWO64
    out.w[1] = <uint64_t>hi
    out.w[0] = <uint64_t>(v - <double>out.w[1] * TWO64) if v - <double>out.w[1] * TWO64 > 0 else 0


cdef bint size_mixed(const tio_pooltable *t, const overlay *ov, uint64_t c, uint32_t max_evaluations,
                     tio_u256 *best_x, tio_u256 *best_profit, bint *certified) noexcept nogil:
    """Exact integer sizing of a cycle with a V3 hop: the domain is the inputs for which
    every V3 hop stays in its range (found by doubling from the float optimum, then
    bisection of the validity edge); scanned whole when it is at most `window` wide
    (certified), else narrowed by ternary search on the exact objective to `window` inputs,
    which are scanned (smallest input on ties)."""
    cdef tio_u256 one, two, three, lo, hi, good, bad, mid, m1, m2, third, width, win, s1, s2, best_s, x
    cdef double x_f = 0, prof
    cdef uint32_t evaluations = 0
    cdef uint64_t window = max_evaluations if max_evaluations > 64 else 64
    cdef int _grow
    tio_u256_from_u64(&one, 1)
    tio_u256_from_u64(&two, 2)
    tio_u256_from_u64(&three, 3)
    tio_u256_from_u64(&win, window)
    certified[0] = False
    if not score_at(t, ov, c, &one, &s1, &evaluations):
        return False                                  # a V3 hop is already at its bound
    screen_cycle(t, ov, c, &prof, &x_f)
    u256_of_double(2 * x_f, &hi)
    if tio_u256_cmp(&hi, &two) < 0:
        hi = two
    good = one
    # grow until past the optimum (profit <= 0) or out of the domain
    for _grow in range(200):
        if not score_at(t, ov, c, &hi, &s2, &evaluations):
            break
        good = hi
        if tio_u256_cmp(&s2, &BIAS) <= 0 or hi.w[3] >> 56:
            break
        tio_u256_shl(&hi, &hi, 1)
    if tio_u256_cmp(&good, &hi) != 0:
        # the validity edge lies in (good, hi): bisect it
        bad = hi
        while True:
            tio_u256_sub(&width, &bad, &good)
            if tio_u256_cmp(&width, &one) <= 0:
                break
            tio_u256_shr(&mid, &width, 1)
            tio_u256_add(&mid, &mid, &good)
            if score_at(t, ov, c, &mid, &s2, &evaluations):
                good = mid
            else:
                bad = mid
        hi = good
    lo = one
    tio_u256_sub(&width, &hi, &lo)
    certified[0] = tio_u256_cmp(&width, &win) < 0
    while True:
        tio_u256_sub(&width, &hi, &lo)
        if tio_u256_cmp(&width, &win) < 0:
            break
        tio_u256_divmod(&third, NULL, &width, &three)
        tio_u256_add(&m1, &lo, &third)
        tio_u256_sub(&m2, &hi, &third)
        score_at(t, ov, c, &m1, &s1, &evaluations)    # inside [1, hi]: valid
        score_at(t, ov, c, &m2, &s2, &evaluations)
        if tio_u256_cmp(&s1, &s2) < 0:
            tio_u256_add(&lo, &m1, &one)
        else:
            tio_u256_sub(&hi, &m2, &one)
    best_s = BIAS
    tio_u256_from_u64(best_x, 0)
    x = lo
    while tio_u256_cmp(&x, &hi) <= 0:
        if score_at(t, ov, c, &x, &s1, &evaluations) and tio_u256_cmp(&s1, &best_s) > 0:
            best_s = s1
            best_x[0] = x
        tio_u256_add(&x, &x, &one)
    if tio_u256_cmp(&best_s, &BIAS) <= 0:
        tio_u256_from_u64(best_profit, 0)
        return False
    tio_u256_sub(best_profit, &best_s, &BIAS)
    return True


cdef inline bint size_cycle(const tio_pooltable *t, const overlay *ov, uint64_t c,
                            uint32_t max_evaluations, tio_u256 *best_x, tio_u256 *best_profit,
                            bint *certified) noexcept nogil:
    """Exact integer sizing of cycle c on the overlay reserves: tallyio.amm's
    v2_best_cycle_input (closed form, then an exact search of the region where the
    integer optimum can lie; certified when that region fit the evaluation budget)."""
    cdef tio_u256 reserves[2 * CYCLE_MAX_HOPS]
    cdef uint32_t fees[CYCLE_MAX_HOPS]
    cdef const tio_u256 *rin
    cdef const tio_u256 *rout
    cdef int L = t.cyc_len[c], h, cert = 0
    cdef uint32_t evaluations = 0
    cdef int32_t pool
    if cycle_has_v3(t, c):
        return size_mixed(t, ov, c, max_evaluations, best_x, best_profit, certified)
    for h in range(L):
        pool = t.cyc_pool[3 * c + h]
        hop_reserves(t, ov, pool, t.cyc_in[3 * c + h], &rin, &rout)
        reserves[2 * h] = rin[0]
        reserves[2 * h + 1] = rout[0]
        fees[h] = t.fee_bps[pool]
    if v2_best_cycle_input(reserves, fees, L, max_evaluations, best_x, best_profit,
                           &cert, &evaluations) != AMM_OK:
        return False
    certified[0] = cert != 0
    return not tio_u256_is_zero(best_profit)


cdef inline void emit(const tio_analyze_ctx *ctx, const tio_pending *p, uint64_t c,
                      const tio_u256 *amount_in, const tio_u256 *profit, uint8_t kind) noexcept nogil:
    cdef const tio_pooltable *t = ctx.table
    cdef uint32_t idx
    cdef tio_opp *o
    cdef int L = t.cyc_len[c]
    cdef int32_t pool
    cdef int h
    if tio_dropring_begin(ctx.out, &idx) != TIO_OK:
        return                      # counted by the queue (no block)
    o = <tio_opp *>tio_dropring_record(ctx.out, idx)
    memset(o, 0, sizeof(tio_opp))
    o.kind = kind                   # OpportunityKind: 1 ARBITRAGE (p == NULL), 2 BACKRUN
    o.n_hops = <uint8_t>L
    o.start_is_weth = t.weth >= 0 and t.cyc_in[3 * c] == t.weth
    o.v3_hops = 0
    o.detected_ns = tio_now_ns()
    if p != NULL:
        o.trigger_seq = p.seq
        o.received_ns = p.received_ns
        memcpy(o.trigger_hash, p.hash, 32)
    else:
        o.received_ns = o.detected_ns
    o.gas_estimate = ctx.cfg.gas_base + ctx.cfg.gas_per_hop * <uint64_t>L
    o.base_fee = ctx.base_fee
    o.block_number = ctx.block_number
    o.amount_in = amount_in[0]
    o.profit = profit[0]
    for h in range(L):
        pool = t.cyc_pool[3 * c + h]
        memcpy(o.pools[h], &t.pool_addr[20 * pool], 20)
        if t.kind[pool] == POOL_KIND_V3:
            o.v3_hops |= <uint8_t>(1 << h)
        memcpy(o.tokens[h], &t.token_addr[20 * t.cyc_in[3 * c + h]], 20)
    memcpy(o.tokens[L], &t.token_addr[20 * t.cyc_in[3 * c]], 20)
    tio_dropring_commit(ctx.out, idx)


cdef inline bint keep_best(uint64_t *cand_c, double *cand_p, int *n_cand, uint64_t max_sized,
                           uint64_t c, double prof) noexcept nogil:
    """Keep the max_sized best cycles by float profit (insertion into a short list sorted
    best first); False when cycle c did not make the list."""
    cdef int i
    if <uint64_t>n_cand[0] < max_sized:
        n_cand[0] += 1
    elif prof <= cand_p[n_cand[0] - 1]:
        return False
    i = n_cand[0] - 1
    while i > 0 and cand_p[i - 1] < prof:
        cand_c[i] = cand_c[i - 1]
        cand_p[i] = cand_p[i - 1]
        i -= 1
    cand_c[i] = c
    cand_p[i] = prof
    return True


cdef inline int size_and_emit(const tio_analyze_ctx *ctx, const overlay *ov, const tio_pending *p,
                              const uint64_t *cand_c, int n_cand, uint8_t kind,
                              tio_analyzer_stats *st) noexcept nogil:
    """Size each screened candidate exactly on the overlay reserves and push those whose
    profit reaches min_profit as opportunities of `kind`; returns how many were pushed."""
    cdef tio_u256 best_x, best_profit
    cdef bint exhaustive
    cdef int i, emitted = 0
    for i in range(n_cand):
        if not size_cycle(ctx.table, ov, cand_c[i], ctx.cfg.max_evaluations, &best_x, &best_profit, &exhaustive):
            st.count[AN_UNPROFITABLE] += 1
            continue
        st.count[AN_SIZED_EXACT if exhaustive else AN_SIZED_NEAR] += 1
        if cycle_has_v3(ctx.table, cand_c[i]):
            st.count[AN_MIXED_SIZED] += 1
        if tio_u256_cmp(&best_profit, &ctx.cfg.min_profit) < 0:
            st.count[AN_UNPROFITABLE] += 1
            continue
        emit(ctx, p, cand_c[i], &best_x, &best_profit, kind)
        st.count[AN_OPPORTUNITIES] += 1
        emitted += 1
    return emitted


cdef inline bint path_tokens(const tio_pooltable *t, const tio_swap *s, int32_t *tok,
                             tio_analyzer_stats *st) noexcept nogil:
    """tok[k] = the token-table index of the swap's path[k] (V2 and V3 paths alike); False
    (counted: amount_unknown for a run-time amount or a bad path, no_pool for an unknown
    token) when the swap cannot be simulated."""
    cdef uint32_t ti
    cdef int k
    if s.flags & TIO_SWAP_AMOUNT_UNKNOWN or s.path_len < 2 or s.path_len > 8:
        st.count[AN_AMOUNT_UNKNOWN] += 1
        return False
    for k in range(s.path_len):
        ti = addr_table_get(&t.token_index, s.path[k])
        if ti == TIO_ADDR_MISSING:
            st.count[AN_NO_POOL] += 1
            return False
        tok[k] = <int32_t>ti
    return True


cdef int simulate_swap(const tio_pooltable *t, overlay *ov, const tio_pending *p,
                       uint32_t exchange, const tio_swap *s, tio_analyzer_stats *st) noexcept nogil:
    """Apply one V2 swap to the overlay; 1 when applied, 0 when skipped (counted)."""
    cdef int32_t tok[8]
    cdef int32_t pools[7]
    cdef tio_u256 amounts[8]
    cdef tio_u256 amount, limit
    cdef const tio_u256 *rin
    cdef const tio_u256 *rout
    cdef int hops = s.path_len - 1, k, side, slot
    if s.protocol == TIO_PROTOCOL_V3:
        if simulate_v3(t, ov, p, exchange, s, st):
            return 1
        st.count[AN_V3_SKIPPED] += 1
        return 0
    if s.flags & TIO_SWAP_FEE_ON_TRANSFER:
        st.count[AN_FEE_ON_TRANSFER] += 1
        return 0
    if not path_tokens(t, s, tok, st):
        return 0
    for k in range(hops):
        pools[k] = pooltable_pair(t, exchange, tok[k], tok[k + 1])
        if pools[k] < 0:
            st.count[AN_NO_POOL] += 1
            return 0
    amount = s.amount
    limit = s.amount_limit
    if s.flags & TIO_SWAP_ETH_IN:
        if s.kind == TIO_SWAP_EXACT_IN and tio_u256_is_zero(&amount):
            amount = p.value
        elif s.kind == TIO_SWAP_EXACT_OUT and tio_u256_is_zero(&limit):
            limit = p.value
    if s.kind == TIO_SWAP_EXACT_IN:
        amounts[0] = amount
        for k in range(hops):
            hop_reserves(t, ov, pools[k], tok[k], &rin, &rout)
            if v2_amount_out(&amounts[k], rin, rout, t.fee_bps[pools[k]], &amounts[k + 1]) != AMM_OK:
                st.count[AN_WOULD_REVERT] += 1
                return 0
        if tio_u256_cmp(&amounts[hops], &limit) < 0:
            st.count[AN_WOULD_REVERT] += 1
            return 0
    elif s.kind == TIO_SWAP_EXACT_OUT:
        amounts[hops] = amount
        for k in range(hops - 1, -1, -1):
            hop_reserves(t, ov, pools[k], tok[k], &rin, &rout)
            if v2_amount_in(&amounts[k + 1], rin, rout, t.fee_bps[pools[k]], &amounts[k]) != AMM_OK:
                st.count[AN_WOULD_REVERT] += 1
                return 0
        if tio_u256_cmp(&amounts[0], &limit) > 0:
            st.count[AN_WOULD_REVERT] += 1
            return 0
    else:
        st.count[AN_AMOUNT_UNKNOWN] += 1
        return 0
    # commit the hops to the overlay, in order (a path may cross the same pool twice)
    for k in range(hops):
        slot = ov_take(t, ov, pools[k])
        if slot < 0:
            st.count[AN_CYCLES_TRUNCATED] += 1
            return 0
        side = 0 if t.tokens[2 * pools[k]] == tok[k] else 1
        tio_u256_add(&ov.r[2 * slot + side], &ov.r[2 * slot + side], &amounts[k])
        tio_u256_sub(&ov.r[2 * slot + 1 - side], &ov.r[2 * slot + 1 - side], &amounts[k + 1])
        ov.rf[2 * slot] = u256_to_double(&ov.r[2 * slot])
        ov.rf[2 * slot + 1] = u256_to_double(&ov.r[2 * slot + 1])
    st.count[AN_SIMULATED] += 1
    return 1


cdef int simulate_v3(const tio_pooltable *t, overlay *ov, const tio_pending *p,
                     uint32_t exchange, const tio_swap *s, tio_analyzer_stats *st) noexcept nogil:
    """Apply one V3 swap (every hop inside its pool's initialized tick range) to the overlay;
    1 when applied, 0 when skipped (the reason counted; the caller counts v3_skipped)."""
    cdef int32_t tok[8]
    cdef int32_t pools[7]
    cdef tio_u256 amounts[8]
    cdef tio_u256 amount, limit
    cdef v3_swap_result r
    cdef overlay tmp
    cdef const tio_u256 *price_limit = NULL
    cdef const tio_u256 *now
    cdef int hops = s.path_len - 1, k, slot, status
    cdef bint limited = False
    if not path_tokens(t, s, tok, st):
        return 0
    for k in range(hops):
        pools[k] = pooltable_v3_pool(t, exchange, tok[k], tok[k + 1], s.fees[k])
        if pools[k] < 0:
            st.count[AN_NO_POOL] += 1
            return 0
        if not t.v3_range_ok[pools[k]]:
            st.count[AN_V3_RANGE_UNKNOWN] += 1
            return 0
    amount = s.amount
    limit = s.amount_limit
    if tio_u256_is_zero(&amount):
        st.count[AN_WOULD_REVERT] += 1                 # the pool requires amountSpecified != 0
        return 0
    tmp = ov[0]
    if hops == 1 and not tio_u256_is_zero(&s.sqrt_price_limit):
        # UniswapV3Pool.swap's require('SPL'): the limit lies beyond the price, inside the ratio bounds
        k = ov_slot(&tmp, pools[0])
        now = &tmp.r[2 * k] if k >= 0 else &t.v3_sqrt_price[pools[0]]
        if (tio_u256_cmp(&s.sqrt_price_limit, now) >= 0 or tio_u256_cmp(&s.sqrt_price_limit, &LIMIT_DOWN) < 0
                if t.tokens[2 * pools[0]] == tok[0] else
                tio_u256_cmp(&s.sqrt_price_limit, now) <= 0 or tio_u256_cmp(&s.sqrt_price_limit, &LIMIT_UP) > 0):
            st.count[AN_WOULD_REVERT] += 1
            return 0
        price_limit = &s.sqrt_price_limit
    if s.kind == TIO_SWAP_EXACT_IN:
        amounts[0] = amount
        for k in range(hops):                          # the router swaps hop by hop, in order
            status = v3_hop(t, &tmp, pools[k], tok[k], &amounts[k], True, &r, price_limit)
            if status == AMM_OK and r.crosses_tick:
                st.count[AN_V3_CROSSES_TICK] += 1
                return 0
            if status != AMM_OK or tio_u256_is_zero(&r.amount_out):
                st.count[AN_WOULD_REVERT] += 1
                return 0
            amounts[k + 1] = r.amount_out
            if price_limit != NULL and tio_u256_cmp(&r.amount_in, &amounts[k]) != 0:
                amounts[k] = r.amount_in               # stopped at the limit: the router pays what was used
                limited = True
            slot = ov_take(t, &tmp, pools[k])
            if slot < 0:
                st.count[AN_CYCLES_TRUNCATED] += 1
                return 0
            ov_set_v3(t, &tmp, slot, pools[k], &r)
        if tio_u256_cmp(&amounts[hops], &limit) < 0:
            st.count[AN_WOULD_REVERT] += 1
            return 0
    elif s.kind == TIO_SWAP_EXACT_OUT:
        amounts[hops] = amount
        for k in range(hops - 1, -1, -1):              # exactOutput swaps the last pool first
            status = v3_hop(t, &tmp, pools[k], tok[k], &amounts[k + 1], False, &r, price_limit)
            if status == AMM_OK and r.crosses_tick:
                st.count[AN_V3_CROSSES_TICK] += 1
                return 0
            if status == AMM_OK and price_limit != NULL and tio_u256_cmp(&r.amount_out, &amounts[k + 1]) < 0:
                # the router requires the full output only without a limit: with one, a partial fill
                amounts[k + 1] = r.amount_out
                limited = True
            if status != AMM_OK or tio_u256_cmp(&r.amount_out, &amounts[k + 1]) != 0:
                st.count[AN_WOULD_REVERT] += 1
                return 0
            amounts[k] = r.amount_in
            slot = ov_take(t, &tmp, pools[k])
            if slot < 0:
                st.count[AN_CYCLES_TRUNCATED] += 1
                return 0
            ov_set_v3(t, &tmp, slot, pools[k], &r)
        if tio_u256_cmp(&amounts[0], &limit) > 0:
            st.count[AN_WOULD_REVERT] += 1
            return 0
    else:
        st.count[AN_AMOUNT_UNKNOWN] += 1
        return 0
    ov[0] = tmp
    if limited:
        st.count[AN_V3_PRICE_LIMITED] += 1
    st.count[AN_V3_SIMULATED] += 1
    st.count[AN_SIMULATED] += 1
    return 1


cdef int tio_analyze_call(const tio_analyze_ctx *ctx, const tio_pending *p, uint32_t exchange,
                          const tio_decoded_call *call, tio_analyzer_stats *st) noexcept nogil:
    """Analyze one decoded transaction; returns the opportunities pushed.  `st` belongs
    to the calling thread (plain counters)."""
    cdef const tio_pooltable *t = ctx.table
    cdef overlay ov
    cdef uint64_t cand_c[64]
    cdef double cand_p[64]
    cdef int n_cand = 0, k, i
    cdef int32_t j
    cdef uint64_t screened = 0, c, max_sized = ctx.cfg.max_sized
    cdef int32_t pool
    cdef double prof
    cdef bint dup
    ov.n = 0
    if max_sized > CAND_MAX:
        max_sized = CAND_MAX
    for k in range(<int>call.n_swaps):
        st.count[AN_SWAPS] += 1
        simulate_swap(t, &ov, p, exchange, &call.swaps[k], st)
    if ov.n == 0:
        return 0
    for k in range(ov.n):
        pool = ov.pool[k]
        for j in range(t.pool_cyc_off[pool], t.pool_cyc_off[pool + 1]):
            if screened == ctx.cfg.max_cycles:
                st.count[AN_CYCLES_TRUNCATED] += <uint64_t>(t.pool_cyc_off[pool + 1] - j)
                break
            c = <uint64_t>t.pool_cyc_ids[j]
            screened += 1
            if not screen_cycle(t, &ov, c, &prof, NULL):
                continue
            dup = False
            for i in range(n_cand):
                if cand_c[i] == c:
                    dup = True
            if dup:
                continue
            st.count[AN_CANDIDATES] += 1
            keep_best(cand_c, cand_p, &n_cand, max_sized, c, prof)
    st.count[AN_CYCLES_SCREENED] += screened
    return size_and_emit(ctx, &ov, p, cand_c, n_cand, 2, st)


cdef int tio_scan_arbitrage(const tio_analyze_ctx *ctx, tio_analyzer_stats *st) noexcept nogil:
    """ARBITRAGE: every cycle of the table screened on the current reserves (no pending
    transaction), the max_sized best sized exactly and pushed (kind ARBITRAGE) when their
    profit reaches min_profit.  Returns the opportunities pushed.  Bounded by the table's
    cycle count, not by max_cycles (call it once per block, not per transaction)."""
    cdef const tio_pooltable *t = ctx.table
    cdef overlay ov
    cdef uint64_t cand_c[64]
    cdef double cand_p[64]
    cdef int n_cand = 0
    cdef uint64_t c, max_sized = ctx.cfg.max_sized
    cdef double prof
    ov.n = 0
    if max_sized > CAND_MAX:
        max_sized = CAND_MAX
    for c in range(t.n_cycles):
        if not screen_cycle(t, &ov, c, &prof, NULL):
            continue
        st.count[AN_CANDIDATES] += 1
        keep_best(cand_c, cand_p, &n_cand, max_sized, c, prof)
    st.count[AN_CYCLES_SCREENED] += t.n_cycles
    return size_and_emit(ctx, &ov, NULL, cand_c, n_cand, 1, st)


cdef int tio_scan_touched(const tio_analyze_ctx *ctx, const int32_t *pools, uint64_t n_pools,
                          uint64_t *cycle_stamp, uint64_t max_cycles, tio_analyzer_stats *st,
                          tio_arb_stats *arb) noexcept nogil:
    """Standing ARBITRAGE after a block's Sync logs: the cycles through `pools` (the pools
    those logs touched) screened on the current reserves, each at most once per block
    (cycle_stamp[c] holds the block it was last screened for, plus one), at most
    `max_cycles` screened; the max_sized best sized exactly and pushed (kind ARBITRAGE,
    no trigger) when their profit reaches min_profit.  Returns the opportunities pushed.
    Reads the table only: the caller is its one writer (the watcher)."""
    cdef const tio_pooltable *t = ctx.table
    cdef overlay ov
    cdef uint64_t cand_c[64]
    cdef double cand_p[64]
    cdef int n_cand = 0
    cdef uint64_t k, c, screened = 0, max_sized = ctx.cfg.max_sized
    cdef uint64_t stamp = ctx.block_number + 1
    cdef int32_t j, pool
    cdef double prof
    cdef int found
    ov.n = 0
    if max_sized > CAND_MAX:
        max_sized = CAND_MAX
    arb.pools += n_pools
    for k in range(n_pools):
        pool = pools[k]
        for j in range(t.pool_cyc_off[pool], t.pool_cyc_off[pool + 1]):
            c = <uint64_t>t.pool_cyc_ids[j]
            if cycle_stamp[c] == stamp:
                arb.repeats += 1             # through two touched pools, or scanned earlier this block
                continue
            if screened == max_cycles:
                arb.truncated += 1
                continue
            cycle_stamp[c] = stamp
            screened += 1
            if not screen_cycle(t, &ov, c, &prof, NULL):
                continue
            st.count[AN_CANDIDATES] += 1
            keep_best(cand_c, cand_p, &n_cand, max_sized, c, prof)
    st.count[AN_CYCLES_SCREENED] += screened
    found = size_and_emit(ctx, &ov, NULL, cand_c, n_cand, 1, st)
    # counted once done: whoever sees `scans` move also finds this scan's opportunities queued
    arb.scans += 1
    return found


# ---- Python face -------------------------------------------------------------------------

cdef int fill_swap(dict spec, tio_swap *s) except -1:
    """A swap described in Python (path, amount_in or amount_out, limit, eth_in, v3,
    fee_on_transfer) -> tio_swap, as the decoder would fill it."""
    memset(s, 0, sizeof(tio_swap))
    path = spec["path"]
    if not 2 <= len(path) <= 8:
        raise ValueError(f"swap path must have 2 .. 8 tokens, got {len(path)}")
    s.path_len = len(path)
    for k, token in enumerate(path):
        copy_address(token, s.path[k], 20, f"swap path[{k}]")
    s.protocol = TIO_PROTOCOL_V3 if spec.get("v3") else TIO_PROTOCOL_V2
    fees = spec.get("fees", [3000] * (len(path) - 1) if spec.get("v3") else [])
    if spec.get("v3") and len(fees) != len(path) - 1:
        raise ValueError(f"a V3 swap needs one fee per hop: {len(path) - 1}, got {len(fees)}")
    for k, fee in enumerate(fees):
        if isinstance(fee, bool) or not isinstance(fee, int) or not 0 <= fee < 1000000:
            raise ValueError(f"swap fees[{k}] must be an int in 0 .. 999999 (pips), got {fee!r}")
        s.fees[k] = fee
    if "amount_in" in spec:
        s.kind = TIO_SWAP_EXACT_IN
        int_to_u256(spec["amount_in"], &s.amount, "amount_in")
    elif "amount_out" in spec:
        s.kind = TIO_SWAP_EXACT_OUT
        int_to_u256(spec["amount_out"], &s.amount, "amount_out")
    else:
        raise ValueError("a swap needs amount_in or amount_out")
    int_to_u256(spec.get("limit", 0 if s.kind == TIO_SWAP_EXACT_IN else 2**256 - 1),
                &s.amount_limit, "limit")
    int_to_u256(spec.get("sqrt_price_limit", 0), &s.sqrt_price_limit, "sqrt_price_limit")
    if s.sqrt_price_limit.w[3] or s.sqrt_price_limit.w[2] >> 32:
        raise ValueError(f"sqrt_price_limit must be a uint160, got {spec['sqrt_price_limit']}")
    if spec.get("eth_in"):
        s.flags |= TIO_SWAP_ETH_IN
    if spec.get("fee_on_transfer"):
        s.flags |= TIO_SWAP_FEE_ON_TRANSFER
    return 0


cdef class Analyzer:
    """The analyzer over a PoolTable, with its own opportunity queue and counters.

    ``analyze(tx, swaps, exchange)`` runs the C analyzer on swaps described in Python
    (each a dict: ``path`` (token addresses), ``amount_in`` or ``amount_out``, optional
    ``limit``, ``eth_in``, ``v3`` with ``fees`` (pips per hop, default 3000) and
    ``sqrt_price_limit`` (a single hop's sqrtPriceLimitX96, default 0: none),
    ``fee_on_transfer``) and returns the opportunities;
    the pipeline calls the same C function on the decoder's records without the GIL."""

    cdef readonly PoolTable table
    cdef readonly object config
    cdef readonly OpportunityQueue queue
    cdef tio_analyzer_cfg cfg
    cdef tio_analyzer_stats st
    cdef tio_arb_stats arb
    cdef object cycle_stamp

    def __init__(self, PoolTable table, config=None, OpportunityQueue queue=None):
        if config is None:
            config = AnalyzerConfig()
        if not isinstance(config, AnalyzerConfig):
            raise TypeError(f"Analyzer: config must be an AnalyzerConfig, got {type(config).__name__}")
        self.table = table
        self.config = config
        self.queue = queue if queue is not None else OpportunityQueue(1024)
        fill_cfg(config, &self.cfg)
        memset(&self.st, 0, sizeof(tio_analyzer_stats))
        memset(&self.arb, 0, sizeof(tio_arb_stats))

    def analyze(self, tx, swaps, exchange=0, base_fee=0, block_number=0):
        """Opportunities the swaps of `tx` create (also counted in ``stats()``)."""
        cdef tio_decoded_call call
        cdef tio_pending rec
        cdef tio_analyze_ctx ctx
        if len(swaps) > 8:
            raise ValueError(f"at most 8 swaps per transaction, got {len(swaps)}")
        memset(&call, 0, sizeof(call))
        for k, spec in enumerate(swaps):
            fill_swap(spec, &call.swaps[k])
        call.n_swaps = len(swaps)
        memset(&rec, 0, sizeof(rec))
        copy_address(tx.hash, rec.hash, 32, "PendingTx.hash")
        int_to_u256(tx.value, &rec.value, "PendingTx.value")
        rec.received_ns = tx.received_ns
        ctx.table = &self.table.t
        ctx.cfg = &self.cfg
        ctx.out = self.queue.ring
        ctx.base_fee = base_fee
        ctx.block_number = block_number
        tio_analyze_call(&ctx, &rec, exchange, &call, &self.st)
        return self.queue.get_many(1 << 20)

    def arbitrage(self, base_fee=0, block_number=0, pools=None):
        """ARBITRAGE opportunities on the table's current reserves (no trigger): every
        cycle screened (``pools=None``), or only the cycles through ``pools`` (addresses:
        the pools a block's Syncs touched; each cycle at most once per ``block_number``,
        at most ``max_arbitrage_cycles`` screened: what the Pipeline does after a block's
        Syncs); the ``max_sized`` best sized exactly."""
        cdef tio_analyze_ctx ctx
        cdef int32_t[::1] rows
        cdef uint64_t[::1] stamps
        ctx.table = &self.table.t
        ctx.cfg = &self.cfg
        ctx.out = self.queue.ring
        ctx.base_fee = base_fee
        ctx.block_number = block_number
        if pools is None:
            tio_scan_arbitrage(&ctx, &self.st)
            return self.queue.get_many(1 << 20)
        import numpy
        if self.cycle_stamp is None:
            self.cycle_stamp = numpy.zeros(self.table.t.n_cycles + 1, dtype=numpy.uint64)
        order = []
        for address in pools:
            row = self.table.index_of(address)
            if row < 0:
                raise KeyError(f"Analyzer.arbitrage: unknown pool {bytes(address).hex()}")
            if row not in order:
                order.append(row)
        rows = numpy.array(order + [0], dtype=numpy.int32)
        stamps = self.cycle_stamp
        tio_scan_touched(&ctx, &rows[0], len(order), &stamps[0], self.config.max_arbitrage_cycles,
                         &self.st, &self.arb)
        return self.queue.get_many(1 << 20)

    def stats(self) -> dict:
        """Every analyzer counter (see COUNTERS)."""
        return stats_dict(&self.st)


cdef int fill_cfg(object config, tio_analyzer_cfg *cfg) except -1:
    cfg.max_cycles = config.max_cycles
    cfg.max_sized = config.max_sized
    cfg.max_evaluations = config.max_evaluations
    int_to_u256(config.min_profit_wei, &cfg.min_profit, "AnalyzerConfig.min_profit_wei")
    cfg.gas_base = config.gas_base
    cfg.gas_per_hop = config.gas_per_hop
    return 0


cdef dict stats_dict(const tio_analyzer_stats *st):
    return {COUNTERS[k]: st.count[k] for k in range(AN_COUNTERS)}
