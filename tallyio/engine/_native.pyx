"""Native strategies: ``NativeHooks`` (the extension type a Cython strategy
subclasses to publish its nogil C hook, see ``tallyio/engine/strategy.pxd``) and
``NativeStrategy``, the ``Strategy`` the Engine drives: it converts the
opportunity into a ``tio_opportunity``, calls the hook WITHOUT the GIL, and
turns the ``tio_action_buf`` it filled into ``SwapAction``s.

Owns the conversion at the Python edge only; the hook's work is the native
strategy's.  Imports the engine's records and Strategy (same stage).

    >>> from tallyio.engine._native_example import ExampleCycleHooks
    >>> strategy = NativeStrategy(ExampleCycleHooks(min_profit=1))
    >>> strategy.name
    'ExampleCycleHooks'
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from tallyio._ext.u256 cimport u256_from_int, u256_to_int
from tallyio.engine.strategy cimport (TIO_STRATEGY_MAX_ACTIONS, TIO_STRATEGY_MAX_HOPS, tio_action_buf,
                                      tio_opportunity, tio_swap_action)

from tallyio.engine.records import SwapAction
from tallyio.engine.strategy import Strategy

__all__ = ["NativeHooks", "NativeStrategy", "fill_opportunity_calls"]


cdef class NativeHooks:
    """Holds a ``tio_strategy_hooks`` (function pointer + state); subclass it in
    Cython and set ``self.hooks`` in ``__cinit__``."""

    def __cinit__(self, *args, **kwargs):
        self.hooks.on_opportunity = NULL
        self.hooks.strategy = NULL
        self.name = type(self).__name__


cdef int _address(object value, uint8_t *out, str what) except -1:
    if type(value) is not bytes or len(<bytes>value) != 20:
        raise ValueError(f"{what} must be 20 bytes, got {value!r}")
    memcpy(out, <const char *><bytes>value, 20)
    return 0


cdef int fill_opportunity(object op, tio_opportunity *c) except -1:
    """Opportunity -> tio_opportunity (ValueError naming what does not fit)."""
    cdef Py_ssize_t hops = len(op.pools), k
    if hops < 1 or hops > TIO_STRATEGY_MAX_HOPS or len(op.token_path) != hops + 1:
        raise ValueError(f"a native strategy takes 1 .. {TIO_STRATEGY_MAX_HOPS} pools and one more token, "
                         f"got {hops} pools and {len(op.token_path)} tokens")
    memset(c, 0, sizeof(tio_opportunity))
    c.kind = <uint32_t>int(op.kind)
    c.hops = <uint32_t>hops
    for k in range(hops):
        _address(op.pools[k], c.pools[k], "Opportunity.pools[]")
    for k in range(hops + 1):
        _address(op.token_path[k], c.tokens[k], "Opportunity.token_path[]")
    u256_from_int(op.amount_in, &c.amount_in, "Opportunity.amount_in")
    u256_from_int(op.profit, &c.profit, "Opportunity.profit")
    c.gas_estimate = min(op.gas_estimate, 2**64 - 1)
    c.base_fee_per_gas = min(op.base_fee_per_gas, 2**64 - 1)
    c.block_number = op.block_number
    c.received_ns = op.received_ns
    c.detected_ns = op.detected_ns
    return 0


cdef list actions_from(const tio_action_buf *buf, object op, object router):
    cdef uint32_t i, k
    cdef const tio_swap_action *a
    out = []
    for i in range(buf.count):
        a = &buf.actions[i]
        if a.hops < 1 or a.hops > TIO_STRATEGY_MAX_HOPS:
            raise ValueError(f"native hook returned an action with {a.hops} hops (1 .. {TIO_STRATEGY_MAX_HOPS})")
        path = tuple((<const char *>a.path[k])[:20] for k in range(a.hops + 1))
        out.append(SwapAction(router=router, path=path, amount_in=u256_to_int(&a.amount_in),
                              min_amount_out=u256_to_int(&a.min_amount_out), opportunity=op))
    return out


def call_hook(NativeHooks hooks, op, router):
    """Run ``hooks``' on_opportunity for ``op`` (the hook itself runs without the
    GIL) and return its actions as SwapActions with ``router``."""
    cdef tio_opportunity c
    cdef tio_action_buf buf
    cdef int status
    if hooks.hooks.on_opportunity == NULL:
        raise ValueError(f"{hooks.name}: no on_opportunity hook was set")
    fill_opportunity(op, &c)
    buf.count = 0
    with nogil:
        status = hooks.hooks.on_opportunity(hooks.hooks.strategy, &c, &buf)
    if status != 0:
        raise RuntimeError(f"{hooks.name}.on_opportunity returned status {status}")
    if buf.count > TIO_STRATEGY_MAX_ACTIONS:
        raise ValueError(f"{hooks.name}.on_opportunity returned {buf.count} actions "
                         f"(at most {TIO_STRATEGY_MAX_ACTIONS})")
    return actions_from(&buf, op, router)


def fill_opportunity_calls(NativeHooks hooks, op, uint64_t n):
    """Test/benchmark helper: call the hook ``n`` times in one nogil loop on the
    same opportunity; returns the number of actions produced in total (several
    threads may run it at once on hooks whose state allows it)."""
    cdef tio_opportunity c
    cdef tio_action_buf buf
    cdef uint64_t _i, actions = 0
    cdef int status = 0
    if hooks.hooks.on_opportunity == NULL:
        raise ValueError(f"{hooks.name}: no on_opportunity hook was set")
    fill_opportunity(op, &c)
    with nogil:
        for _i in range(n):
            buf.count = 0
            status = hooks.hooks.on_opportunity(hooks.hooks.strategy, &c, &buf)
            if status != 0:
                break
            actions += buf.count
    if status != 0:
        raise RuntimeError(f"{hooks.name}.on_opportunity returned status {status}")
    return actions


class NativeStrategy(Strategy):
    """A Strategy whose ``on_opportunity`` is a native hook (``hooks``: a
    NativeHooks).  Interest declarations work as for any Strategy (set them on a
    subclass or the instance); the router of the actions is the context's router
    of exchange 0 (the dry run follows the opportunity's own pools)."""

    def __init__(self, hooks):
        if not isinstance(hooks, NativeHooks):
            raise TypeError(f"NativeStrategy takes a NativeHooks, got {type(hooks).__name__}")
        self.hooks = hooks

    @property
    def name(self):
        return self.hooks.name

    def on_opportunity(self, opportunity, ctx):
        routers = ctx.routers
        router = routers.get(0) if routers else None
        if router is None:
            router = next(iter(routers.values())) if routers else b"\x00" * 20
        return call_hook(self.hooks, opportunity, router)
