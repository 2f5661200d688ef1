# Optimal input of a cycle of Uniswap V2 pools (token A -> ... -> A), exact on
# tio_u256, as a C API the analyzer calls without the GIL.  tallyio/amm/_cycle.pyx;
# the method and its guarantee are in docs/amm.md.
#
# reserves[2*i], reserves[2*i+1] are hop i's (reserve_in, reserve_out) and fee_bps[i] its
# fee, for 1 <= hops <= AMM_MAX_CYCLE_HOPS.  On AMM_OK: amount_in/profit hold the smallest
# input with the largest exact profit (final output - input, through v2_amount_out hop by
# hop) among the inputs examined, both 0 when none is profitable; certified is 1 when the
# examined inputs provably include every input that could beat it (the result then equals
# a brute-force search over all inputs), else 0; evaluations counts the exact path
# evaluations spent, at most max_evaluations + 5 (the work is bounded on any input; when the
# region is too wide to prove, only AMM_CYCLE_LOCAL_WINDOW + 5, the usual case for real reserves).
from libc.stdint cimport uint32_t
from tallyio._ext.u256 cimport tio_u256

cdef enum:
    AMM_MAX_CYCLE_HOPS = 8
    AMM_CYCLE_DEFAULT_EVALUATIONS = 4096
    AMM_CYCLE_LOCAL_WINDOW = 4             # inputs tried around the best when the region is too wide

# final amount of token A for `amount_in` pushed around the cycle (a status when a hop reverts)
cdef int v2_cycle_output(const tio_u256 *amount_in, const tio_u256 *reserves, const uint32_t *fee_bps,
                         int hops, tio_u256 *amount_out) noexcept nogil

cdef int v2_best_cycle_input(const tio_u256 *reserves, const uint32_t *fee_bps, int hops,
                             uint32_t max_evaluations, tio_u256 *amount_in, tio_u256 *profit,
                             int *certified, uint32_t *evaluations) noexcept nogil
