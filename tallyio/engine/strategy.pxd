# Native strategies: the C side of tallyio.engine.strategy (public; cimport it).
#
# A Cython strategy implements its on_opportunity hook as a C function that
# never takes the GIL:
#
#     cdef int my_hook(void *strategy, const tio_opportunity *op,
#                      tio_action_buf *out) noexcept nogil
#
# and publishes it in a tio_strategy_hooks (function pointer + its own state)
# held by a tallyio.engine._native.NativeHooks subclass; wrapped in a
# tallyio.engine._native.NativeStrategy, the Engine drives it like any
# Strategy (interest declarations included).  The engine fills *op, calls the
# hook without the GIL, and turns out->actions[0 .. out->count) into
# SwapActions.  Return 0, or a non-zero status: counted as a strategy error
# (the engine lives on).  tallyio/engine/_native_example.pyx is a complete one.
#
# Ownership: *op and *out belong to the engine for the duration of the call;
# the hook must not keep pointers into them.  `strategy` is the hooks' own
# state, owned by the NativeHooks object (alive while the strategy is).
# This file declares types only (strategy.py stays a Python module).
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from tallyio._ext.u256 cimport tio_u256

cdef enum:
    TIO_STRATEGY_MAX_HOPS = 8         # pools in an opportunity / hops in an action
    TIO_STRATEGY_MAX_ACTIONS = 4      # actions one call may return

ctypedef struct tio_opportunity:
    uint32_t kind                     # tallyio.mempool.OpportunityKind value
    uint32_t hops                     # pools used: 1 .. TIO_STRATEGY_MAX_HOPS
    uint8_t pools[8][20]              # pool addresses, trade order
    uint8_t tokens[9][20]             # token path: hops + 1 addresses (a cycle ends where it starts)
    tio_u256 amount_in
    tio_u256 profit                   # expected gross profit in the start token
    uint64_t gas_estimate
    uint64_t base_fee_per_gas         # saturated at 2**64 - 1
    uint64_t block_number
    uint64_t received_ns
    uint64_t detected_ns

ctypedef struct tio_swap_action:
    uint32_t hops
    uint8_t path[9][20]               # hops + 1 token addresses
    tio_u256 amount_in
    tio_u256 min_amount_out           # the swap reverts below it

ctypedef struct tio_action_buf:
    uint32_t count                    # set by the hook: 0 .. TIO_STRATEGY_MAX_ACTIONS
    tio_swap_action actions[4]

ctypedef int (*tio_on_opportunity_fn)(void *strategy, const tio_opportunity *op,
                                      tio_action_buf *out) noexcept nogil

ctypedef struct tio_strategy_hooks:
    tio_on_opportunity_fn on_opportunity
    void *strategy                    # passed back as the hook's first argument
