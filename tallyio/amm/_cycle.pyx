"""Sizing a cyclic arbitrage over Uniswap V2 pools: the closed-form optimum of
the chain's continuous profit, then an exact integer search around it whose
work is bounded.  Owns this search only; the hop math is ``_v2``.

The chain of n pools acts on x like one virtual pool, ``out(x) = N x / (D + M x)``
(N, D, M from the reserves and fees, docs/amm.md), so the continuous profit
``P(x) = out(x) - x`` is concave with its top at ``x* = (sqrt(N D) - D) / M``.
Each hop's floor only lowers the output, so the exact integer profit ``p(x)``
never exceeds ``P(x)``: once some input earns ``m``, every input that could do
at least as well lies where ``P(x) >= m``, an interval found from a quadratic.
When that interval holds at most ``max_evaluations`` inputs, all of them are
evaluated and the answer is certified equal to a brute-force search; otherwise
the 4 inputs around the best are tried and the answer is within the floors'
rounding slack of the optimum (a few units of the start token).

>>> from tallyio.amm import best_cycle_input, cycle_size
>>> best_cycle_input([(1_000_000, 2_000_000, 30), (1_000_000, 600_000, 30)])
(30559, 2845)
>>> cycle_size([(1_000_000, 2_000_000, 30), (1_000_000, 600_000, 30)]).certified
True
>>> best_cycle_input([(1_000_000, 1_000_000, 30), (1_000_000, 1_000_000, 30)])   # no edge: no trade
(0, 0)
"""
from collections import namedtuple

from libc.float cimport LDBL_EPSILON
from libc.math cimport sqrtl, fabsl, floorl, INFINITY
from libc.stdint cimport uint32_t, uint64_t

from tallyio._ext.u256 cimport (tio_u256, tio_u256_cmp, tio_u256_sub, tio_u256_add, tio_u256_is_zero,
                                tio_u256_from_u64, tio_u256_mul_fast, tio_u256_mul_u64, tio_u256_divmod_fast,
                                tio_u256_to_ld, tio_u256_from_ld_fast, u256_from_int, u256_to_int)
from tallyio.amm._v2 cimport (v2_amount_out_inline, tio_v2_least_input_small, raise_amm_status, AMM_OK,
                              AMM_INVALID_PATH, AMM_BAD_FEE, AMM_INSUFFICIENT_LIQUIDITY)
from tallyio.errors import AmmError


cdef int v2_cycle_output(const tio_u256 *amount_in, const tio_u256 *reserves, const uint32_t *fee_bps,
                         int hops, tio_u256 *amount_out) noexcept nogil:
    # Each hop writes into one of two scratch amounts and reads the other (the hop's output
    # may not alias its input), the last one into amount_out: copying each hop's output back
    # into the input would load 32 bytes just stored as four limbs, which the CPU cannot
    # forward from its store buffer (a stall of ~a dozen cycles per hop).
    cdef tio_u256 scratch[2]
    cdef const tio_u256 *source = amount_in
    cdef tio_u256 *target
    cdef int i, status
    for i in range(hops):
        target = amount_out if i == hops - 1 else &scratch[i & 1]
        status = v2_amount_out_inline(source, &reserves[2 * i], &reserves[2 * i + 1], fee_bps[i], target)
        if status != AMM_OK:
            return status
        source = target
    return AMM_OK


cdef int _smallest_input_for(const tio_u256 *target, const tio_u256 *reserves, const uint32_t *fee_bps,
                             int hops, tio_u256 *amount_in) noexcept nogil:
    """The smallest input whose output after every hop is >= target: hop by hop from the
    end, the least z with getAmountOut(z) >= y is ceil(y base R_in / (keep (R_out - y)))
    (getAmountOut(z) >= y  <=>  keep z (R_out - y) >= y base R_in).  0 on success; -1
    when no input reaches target or an intermediate needs more than 256 bits."""
    cdef tio_u256 y = target[0], numerator, denominator, rem
    cdef uint64_t keep, base
    cdef int i
    for i in range(hops - 1, -1, -1):
        if tio_u256_is_zero(&y):
            break
        if tio_u256_cmp(&y, &reserves[2 * i + 1]) >= 0:
            return -1
        keep = 10000 - fee_bps[i]
        base = 10000
        if fee_bps[i] % 10 == 0:
            keep = 1000 - fee_bps[i] // 10
            base = 1000
        if tio_v2_least_input_small(&y, &reserves[2 * i], &reserves[2 * i + 1], keep, base, &numerator) == 0:
            y = numerator                      # pool-sized operands: on 128-bit halves (_v2.pxd)
            continue
        tio_u256_sub(&denominator, &reserves[2 * i + 1], &y)
        if tio_u256_mul_fast(&numerator, &y, &reserves[2 * i]) or tio_u256_mul_u64(&numerator, &numerator, base):
            return -1
        if tio_u256_mul_u64(&denominator, &denominator, keep):
            return -1
        if tio_u256_divmod_fast(&y, &rem, &numerator, &denominator) != 0:    # keep > 0 and y < R_out: never
            return -1
        if not tio_u256_is_zero(&rem):
            tio_u256_from_u64(&rem, 1)
            if tio_u256_add(&y, &y, &rem):
                return -1
    amount_in[0] = y
    return 0


cdef struct _Best:
    tio_u256 amount_in
    tio_u256 profit          # 0 while nothing profitable was seen
    uint32_t evaluations
    # the last input evaluated and its output (valid when has_prev): the scans go up one
    # input at a time, which makes most run-start searches unnecessary (see _consider)
    tio_u256 prev_x
    tio_u256 prev_out
    bint has_prev


cdef inline void _consider(_Best *best, const tio_u256 *x, const tio_u256 *reserves, const uint32_t *fees,
                           int hops) noexcept nogil:
    """Evaluate x exactly and keep it if it earns strictly more (so ties keep the smaller
    input when inputs are tried in increasing order, and the earlier one otherwise)."""
    cdef tio_u256 out, gain, first, next_x, one
    cdef bint follows = False, same_run = False, run_starts_here = False
    best.evaluations += 1
    if tio_u256_is_zero(x):
        best.has_prev = False
        return
    if v2_cycle_output(x, reserves, fees, hops, &out) != AMM_OK:
        best.has_prev = False
        return                                   # the router would revert: not a tradable input
    # The cycle's output is nondecreasing in its input (every hop's is).  So when x directly
    # follows the input evaluated last: the same output means the same run (same first
    # input, same gain: nothing new to consider), and a larger one means the run starts
    # at x itself.  Only the first input of a scan needs the run-start search below.
    if best.has_prev:
        tio_u256_from_u64(&one, 1)
        tio_u256_add(&next_x, &best.prev_x, &one)
        follows = tio_u256_cmp(&next_x, x) == 0
        if follows:
            same_run = tio_u256_cmp(&out, &best.prev_out) == 0
            run_starts_here = tio_u256_cmp(&out, &best.prev_out) > 0
    best.prev_x = x[0]
    best.prev_out = out
    best.has_prev = True
    if same_run:
        return
    if tio_u256_cmp(&out, x) <= 0:
        return
    # Outputs are floors, so every input of a run ending at x pays out the same: the
    # run's first input earns more.  Move to it (its output is exactly `out`: no less
    # by construction, no more since it is <= x).
    if run_starts_here:
        first = x[0]
    elif _smallest_input_for(&out, reserves, fees, hops, &first) != 0 or tio_u256_is_zero(&first) \
            or tio_u256_cmp(&first, x) > 0:
        first = x[0]
    tio_u256_sub(&gain, &out, &first)
    if tio_u256_cmp(&gain, &best.profit) > 0 or (
            tio_u256_cmp(&gain, &best.profit) == 0 and tio_u256_cmp(&first, &best.amount_in) < 0):
        best.profit = gain
        best.amount_in = first


cdef int v2_best_cycle_input(const tio_u256 *reserves, const uint32_t *fee_bps, int hops,
                             uint32_t max_evaluations, tio_u256 *amount_in, tio_u256 *profit,
                             int *certified, uint32_t *evaluations) noexcept nogil:
    cdef int i
    cdef long double n = 1.0, d = 1.0, m = 0.0, keep, r_in, r_out
    cdef long double x0, t, b, disc, err_b, err_disc, root, lo, hi, count
    cdef tio_u256 x, one, start, stop, first_five
    cdef _Best best
    cdef uint64_t _k, steps
    if hops < 1 or hops > AMM_MAX_CYCLE_HOPS:
        return AMM_INVALID_PATH
    for i in range(hops):
        if fee_bps[i] >= 10000:
            return AMM_BAD_FEE
        if tio_u256_is_zero(&reserves[2 * i]) or tio_u256_is_zero(&reserves[2 * i + 1]):
            return AMM_INSUFFICIENT_LIQUIDITY
    # The chain as one virtual pool, out(x) = n x / (d + m x): composing hop k,
    # y -> keep R_out y / (10000 R_in + keep y), onto it gives the recurrence below
    # (docs/amm.md).  Long double (64-bit mantissa, 15-bit exponent) holds 8 hops of
    # 2**256 reserves without overflow; its rounding is covered by the widening in step 2.
    for i in range(hops):
        keep = <long double>(10000 - fee_bps[i])
        r_in = tio_u256_to_ld(&reserves[2 * i])
        r_out = tio_u256_to_ld(&reserves[2 * i + 1])
        m = 10000.0 * r_in * m + keep * n
        n = keep * r_out * n
        d = 10000.0 * r_in * d
    best.evaluations = 0
    best.has_prev = False
    # read only once has_prev is set; zeroed so gcc can see that (-Wmaybe-uninitialized)
    tio_u256_from_u64(&best.prev_x, 0)
    tio_u256_from_u64(&best.prev_out, 0)
    tio_u256_from_u64(&best.profit, 0)
    tio_u256_from_u64(&best.amount_in, 0)
    tio_u256_from_u64(&one, 1)

    # 1. the continuous optimum and its integer neighbours
    x0 = d * (sqrtl(n / d) - 1.0) / m if n > d else 0.0
    tio_u256_from_ld_fast(&x, x0 - 2.0 if x0 > 2.0 else 0.0)
    first_five = x
    for _k in range(5):
        _consider(&best, &x, reserves, fee_bps, hops)
        tio_u256_add(&x, &x, &one)

    # 2. every input that could match the best found lies where P(x) >= t, i.e. between
    #    the roots of m x^2 - b x + t d = 0 with b = n - d - m t (none when b < 0: both
    #    roots are then negative, their product t d / m being positive).  The roots are
    #    taken in the cancellation-free forms (b + root) / 2m and 2 t d / (b + root), and
    #    widened by generous bounds on the long double rounding of n, d, m: at most ~3 ulps
    #    per hop, 24 for 8 hops; the bounds allow 100 ulps on b and 1000 on the
    #    discriminant (1e-17 and 1e-16 with x86's 64-bit mantissa; wider where long
    #    double is a plain double).
    t = tio_u256_to_ld(&best.profit)
    if t < 1.0:
        t = 1.0
    b = n - d - m * t
    disc = b * b - 4.0 * m * t * d
    err_b = 100.0 * LDBL_EPSILON * (n + d + m * t)
    err_disc = 1000.0 * LDBL_EPSILON * (b * b + 4.0 * m * t * d) + 4.0 * fabsl(b) * err_b
    if b + err_b <= 0.0 or disc + err_disc < 0.0:
        lo, hi = 1.0, 0.0                          # empty: no input can earn >= t
    else:
        root = sqrtl(disc + err_disc)
        hi = (b + err_b + root) / (2.0 * m) * (1.0 + 1000.0 * LDBL_EPSILON) + 2.0
        lo = 2.0 * t * d / (b + err_b + root) * (1.0 - 1000.0 * LDBL_EPSILON) - 2.0
        if lo < 1.0:
            lo = 1.0
    certified[0] = 0
    if hi < lo and tio_u256_is_zero(&best.profit):
        certified[0] = 1                           # no input can earn >= 1
    else:
        # The integers floor(lo) .. floor(hi).  An empty region although an input earned t
        # (which lies in it by definition) means the bounds lost to cancellation in b, as
        # on reserves of 1 against 2**64 and more: then nothing is proven, and the inputs
        # around the best are scanned as for a region too wide to prove.
        count = floorl(hi) - floorl(lo) + 1.0 if hi >= lo else INFINITY
        if count <= <long double>max_evaluations:
            tio_u256_from_ld_fast(&x, lo)
            steps = <uint64_t>count
            for _k in range(steps):
                _consider(&best, &x, reserves, fee_bps, hops)
                tio_u256_add(&x, &x, &one)
            certified[0] = 1
        else:
            # Too wide to prove.  Inside the region the exact profit is within the floors'
            # few units of the continuous one (docs/amm.md), so a wide scan buys a few wei at
            # most: look only at the nearest AMM_CYCLE_LOCAL_WINDOW inputs around the best.
            steps = max_evaluations if max_evaluations < AMM_CYCLE_LOCAL_WINDOW else AMM_CYCLE_LOCAL_WINDOW
            start = best.amount_in if not tio_u256_is_zero(&best.amount_in) else x
            tio_u256_from_u64(&stop, steps // 2)
            if tio_u256_cmp(&start, &stop) > 0:
                tio_u256_sub(&x, &start, &stop)
            else:
                tio_u256_from_u64(&x, 1)
            tio_u256_from_u64(&stop, 4)
            tio_u256_add(&stop, &first_five, &stop)
            for _k in range(steps):
                # an input step 1 evaluated would only be considered again: skip it
                if tio_u256_cmp(&x, &first_five) < 0 or tio_u256_cmp(&x, &stop) > 0:
                    _consider(&best, &x, reserves, fee_bps, hops)
                tio_u256_add(&x, &x, &one)
    amount_in[0] = best.amount_in
    profit[0] = best.profit
    evaluations[0] = best.evaluations
    return AMM_OK


# ---- the Python edge ------------------------------------------------------------------------

CycleSize = namedtuple("CycleSize", ["amount_in", "profit", "certified", "evaluations"])
CycleSize.__doc__ = """The sizing of a cycle: the input, its exact profit, whether the result is
proven equal to a brute-force search, and how many exact path evaluations it took."""


cdef int _load_hops(object hops, tio_u256 *reserves, uint32_t *fees) except -1:
    """Fill reserves (2 per hop) and fees from ``hops``; returns the hop count."""
    cdef int count
    try:
        count = len(hops)
    except TypeError:
        raise TypeError("hops must be a sequence of (reserve_in, reserve_out, fee_bps) triples") from None
    if not 1 <= count <= AMM_MAX_CYCLE_HOPS:
        raise AmmError(f"hops: INVALID_PATH: a cycle needs 1 to {AMM_MAX_CYCLE_HOPS} hops, got {count}",
                       "INVALID_PATH")
    for i, hop in enumerate(hops):
        try:
            reserve_in, reserve_out, fee = hop
        except (TypeError, ValueError):
            raise TypeError(f"hops[{i}] must be a (reserve_in, reserve_out, fee_bps) triple, got {hop!r}") from None
        u256_from_int(reserve_in, &reserves[2 * i], f"hops[{i}] reserve_in")
        u256_from_int(reserve_out, &reserves[2 * i + 1], f"hops[{i}] reserve_out")
        if type(fee) is not int or not 0 <= fee < 10000:
            raise ValueError(f"hops[{i}] fee_bps must be an int in [0, 10000), got {fee!r}")
        fees[i] = fee
    return count


def cycle_size(hops, max_evaluations=AMM_CYCLE_DEFAULT_EVALUATIONS):
    """Size the cycle ``hops`` = ``[(reserve_in, reserve_out, fee_bps), ...]`` (token A ->
    ... -> A): a :class:`CycleSize`.  ``max_evaluations`` bounds the exact evaluations
    beyond the first five (default 4096).

    >>> r = cycle_size([(10**21, 2 * 10**21, 30), (10**21, 6 * 10**20, 30)], max_evaluations=64)
    >>> r.amount_in > 0 and r.profit > 0 and r.evaluations <= 64 + 5
    True
    """
    cdef tio_u256 reserves[2 * AMM_MAX_CYCLE_HOPS]
    cdef uint32_t fees[AMM_MAX_CYCLE_HOPS]
    cdef tio_u256 amount, gain
    cdef int certified = 0, status, count
    cdef uint32_t evaluations = 0, budget
    if type(max_evaluations) is not int or not 0 <= max_evaluations <= 1 << 30:
        raise ValueError(f"max_evaluations must be an int in [0, 2**30], got {max_evaluations!r}")
    count = _load_hops(hops, reserves, fees)
    budget = max_evaluations
    with nogil:
        status = v2_best_cycle_input(reserves, fees, count, budget, &amount, &gain, &certified, &evaluations)
    if status != AMM_OK:
        raise_amm_status(status, "best_cycle_input")
    return CycleSize(u256_to_int(&amount), u256_to_int(&gain), bool(certified), evaluations)


def best_cycle_input(hops, max_evaluations=AMM_CYCLE_DEFAULT_EVALUATIONS):
    """``(amount_in, profit)`` of the most profitable input for the cycle ``hops``
    = ``[(reserve_in, reserve_out, fee_bps), ...]``, profit being the exact output of
    get_amount_out hop by hop minus the input; ``(0, 0)`` when no input profits.
    See :func:`cycle_size` for whether the answer is certified.

    >>> best_cycle_input([(5000, 10000, 30), (5000, 3000, 30)])
    (136, 14)
    """
    r = cycle_size(hops, max_evaluations)
    return r.amount_in, r.profit


def cycle_output(amount_in, hops):
    """The amount of the start token that comes back from pushing ``amount_in`` through
    every hop of ``hops`` (getAmountOut hop by hop, the path the sizing evaluates);
    AmmError where a hop would revert.

    >>> cycle_output(30559, [(1_000_000, 2_000_000, 30), (1_000_000, 600_000, 30)])
    33404
    """
    cdef tio_u256 reserves[2 * AMM_MAX_CYCLE_HOPS]
    cdef uint32_t fees[AMM_MAX_CYCLE_HOPS]
    cdef tio_u256 amount, out
    cdef int count, status
    u256_from_int(amount_in, &amount, "amount_in")
    count = _load_hops(hops, reserves, fees)
    status = v2_cycle_output(&amount, reserves, fees, count, &out)
    if status != AMM_OK:
        raise_amm_status(status, "cycle_output")
    return u256_to_int(&out)


def smallest_input_for(target, hops):
    """The least input whose :func:`cycle_output` is at least ``target`` (what the sizing
    uses to find where a run of equal outputs starts), or ``None`` when no input reaches
    it (or an intermediate would pass 2**256).

    >>> smallest_input_for(33404, [(1_000_000, 2_000_000, 30), (1_000_000, 600_000, 30)])
    30559
    """
    cdef tio_u256 reserves[2 * AMM_MAX_CYCLE_HOPS]
    cdef uint32_t fees[AMM_MAX_CYCLE_HOPS]
    cdef tio_u256 wanted, first
    cdef int count
    u256_from_int(target, &wanted, "target")
    count = _load_hops(hops, reserves, fees)
    if _smallest_input_for(&wanted, reserves, fees, count, &first) != 0:
        return None
    return u256_to_int(&first)
