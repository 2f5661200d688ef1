"""C-level timing loops for the pool math (the ``amm`` benchmark group): each runs
a nogil loop over the C API and returns nanoseconds per call.  Every result feeds
a checksum that is returned too, so the compiler cannot drop the work.  Owns
nothing else.

>>> ns, checksum = c_amount_out_ns(1000)
>>> ns > 0 and checksum > 0
True
"""
from libc.stdint cimport uint32_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from tallyio._ext.u256 cimport tio_u256, tio_u256_from_u64, u256_from_int
from tallyio.amm._v2 cimport v2_amount_out, AMM_OK
from tallyio.amm._cycle cimport v2_best_cycle_input, AMM_MAX_CYCLE_HOPS


cdef inline uint64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


def c_amount_out_ns(uint64_t n, reserve_in=3_000 * 10**18, reserve_out=9_000_000 * 10**6):
    """``(ns per v2_amount_out, checksum)`` over ``n`` calls with inputs that change each call."""
    cdef tio_u256 rin, rout, amount, out
    cdef uint64_t i, start, stop, checksum = 0
    u256_from_int(reserve_in, &rin, "reserve_in")
    u256_from_int(reserve_out, &rout, "reserve_out")
    with nogil:
        start = _now_ns()
        for i in range(n):
            tio_u256_from_u64(&amount, 1000000000000000000ULL + i * 7919ULL)
            if v2_amount_out(&amount, &rin, &rout, 30, &out) == AMM_OK:
                checksum += out.w[0]
        stop = _now_ns()
    return (stop - start) / <double>(n if n > 0 else 1), checksum


def c_best_cycle_ns(hops, uint64_t n):
    """``(ns per v2_best_cycle_input, checksum)`` for the cycle ``hops``, the first reserve
    nudged each call so no two calls are the same."""
    cdef tio_u256 reserves[2 * AMM_MAX_CYCLE_HOPS]
    cdef uint32_t fees[AMM_MAX_CYCLE_HOPS]
    cdef tio_u256 amount, profit
    cdef int certified, count = len(hops)
    cdef uint32_t evaluations
    cdef uint64_t i, start, stop, base, checksum = 0
    for k, (rin, rout, fee) in enumerate(hops):
        u256_from_int(rin, &reserves[2 * k], "reserve_in")
        u256_from_int(rout, &reserves[2 * k + 1], "reserve_out")
        fees[k] = fee
    base = reserves[0].w[0]
    with nogil:
        start = _now_ns()
        for i in range(n):
            reserves[0].w[0] = base + (i & 1023)
            if v2_best_cycle_input(reserves, fees, count, 4096, &amount, &profit, &certified, &evaluations) == AMM_OK:
                checksum += amount.w[0] + evaluations
        stop = _now_ns()
    return (stop - start) / <double>(n if n > 0 else 1), checksum
