"""An example native strategy: its hook (``example_on_opportunity``) runs
without the GIL and returns one swap along the opportunity's cycle, sized as
the analyzer sized it, with ``min_amount_out = amount_in + 1`` (it reverts
rather than lose), for every opportunity whose profit reaches ``min_profit``.

Owns its hook and its state (a call counter per hooks object).  The model for
a user's own: subclass ``NativeHooks``, point ``self.hooks`` at a
``noexcept nogil`` function and at your state in ``__cinit__``.

    >>> hooks = ExampleCycleHooks(min_profit=10)
    >>> hooks.calls
    0
"""
from libc.stdint cimport uint64_t
from libc.string cimport memcpy
from tallyio._ext.u256 cimport tio_u256, tio_u256_add, tio_u256_cmp, tio_u256_from_u64, u256_from_int
from tallyio.engine._native cimport NativeHooks
from tallyio.engine.strategy cimport tio_action_buf, tio_opportunity, tio_swap_action


cdef struct example_state:
    tio_u256 min_profit
    uint64_t calls          # written by the thread calling the hook (one per hooks object)


cdef int example_on_opportunity(void *strategy, const tio_opportunity *op,
                                tio_action_buf *out) noexcept nogil:
    cdef example_state *st = <example_state *>strategy
    cdef tio_swap_action *action
    cdef tio_u256 one
    st.calls += 1
    out.count = 0
    if tio_u256_cmp(&op.profit, &st.min_profit) < 0:
        return 0
    action = &out.actions[0]
    action.hops = op.hops
    memcpy(action.path, op.tokens, (op.hops + 1) * 20)
    action.amount_in = op.amount_in
    tio_u256_from_u64(&one, 1)
    if tio_u256_add(&action.min_amount_out, &op.amount_in, &one):
        return 1                # amount_in == 2**256 - 1: no valid minimum: report, take nothing
    out.count = 1
    return 0


cdef class ExampleCycleHooks(NativeHooks):
    """Hooks taking every cycle whose expected profit reaches ``min_profit``."""

    cdef example_state st

    def __cinit__(self, min_profit=1, *args, **kwargs):
        u256_from_int(min_profit, &self.st.min_profit, "min_profit")
        self.st.calls = 0
        self.hooks.on_opportunity = example_on_opportunity
        self.hooks.strategy = &self.st

    @property
    def calls(self):
        """How many times the hook ran."""
        return self.st.calls
