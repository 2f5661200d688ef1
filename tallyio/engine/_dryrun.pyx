"""The dry run's compiled core: ``DryRunCore.run(actions, trigger_tx)`` applies the
triggering transaction's V2 swaps and then the actions' swaps to a C overlay of the
pool table's exact reserves (``tio_u256``, Uniswap V2's integer math from
``tallyio.amm._v2``), the same steps ``DryRunExecutor``'s Python reference takes.

Owns: the overlay (a small array of pool -> reserves, a copy: the table is only
read), the cached overlay of the last trigger, and one decoder buffer.  Reads the
``PoolTable``'s C view, the decoder (``tio_decode_call``) and the V2 math; writes
nothing outside itself.  Not safe for two threads at once (one executor owns it).

Identity with the reference is by construction: whatever the native path cannot
prove it computes the way the reference does -- an unknown router or pool, a V3
pool, a value that is not a plain int in 0..2**256-1, an AMM ``require()`` that
would fail, a reserve that would leave 0..2**256-1, an overlay of more than 64
pools, a trigger whose amount the decoder could not tell from a missing one --
makes ``run`` return ``None`` before anything is committed, and the caller runs
the Python reference, which produces the result (or the error) itself.

    >>> from tallyio.mempool import PoolTable, V2Pool
    >>> from tallyio.engine import SwapAction
    >>> A, B, PAIR, ROUTER = b"\\x0a" * 20, b"\\x0b" * 20, b"\\x01" * 20, b"\\x02" * 20
    >>> core = DryRunCore(PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)]), {ROUTER: 0})
    >>> core.run([SwapAction(ROUTER, (A, B), 1000, 1990)], None)
    ((1992,), 992, 150000, -1)
    >>> core.run([SwapAction(b"\\x03" * 20, (A, B), 1000, 0)], None) is None   # unknown router: the reference says
    True
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset
from tallyio._ext.swap cimport (TIO_DECODE_OK, TIO_DECODE_UNKNOWN, TIO_PROTOCOL_V2, TIO_SWAP_AMOUNT_UNKNOWN,
                                TIO_SWAP_EXACT_IN, TIO_SWAP_FEE_ON_TRANSFER, tio_decode_stats, tio_decoded_call,
                                tio_swap)
from tallyio._ext.u256 cimport (tio_u256, tio_u256_add, tio_u256_cmp, tio_u256_from_pylong, tio_u256_is_zero,
                                tio_u256_sub, tio_u256_to_pylong)
from tallyio.amm._v2 cimport AMM_MAX_HOPS, AMM_OK, v2_amount_in, v2_amount_out, v2_amounts_out
from tallyio.eth._decode cimport tio_decode_call
from tallyio.mempool._addrtable cimport TIO_ADDR_MISSING, addr_table_get
from tallyio.mempool._pools cimport POOL_KIND_V2, PoolTable, pooltable_pair, tio_pooltable

from tallyio.engine.records import SwapAction
from tallyio.eth.types import PendingTx
from tallyio.mempool.records import Opportunity

# NamedTuple field positions read by index (a tuple item, not an attribute lookup) once the
# exact type is checked; the asserts tie them to the records' definitions
cdef Py_ssize_t OP_POOLS = Opportunity._fields.index("pools")
cdef Py_ssize_t OP_TOKEN_PATH = Opportunity._fields.index("token_path")
cdef Py_ssize_t TX_TO = PendingTx._fields.index("to")
cdef Py_ssize_t TX_VALUE = PendingTx._fields.index("value")
cdef Py_ssize_t TX_INPUT = PendingTx._fields.index("input")
assert SwapAction._fields[:5] == ("router", "path", "amount_in", "min_amount_out", "gas_limit")
assert SwapAction._fields.index("opportunity") == 8

__all__ = ["DryRunCore"]

cdef enum:
    OVERLAY_MAX = 64            # pools one execution may touch natively (more: the reference runs)
    GAS_BASE = 60000
    GAS_PER_HOP = 90000

# the two Router02 calls whose amount (in, or max in) is the call's value, not an argument: the
# decoder leaves that amount 0, which alone cannot be told from a literal 0 (see _amounts)
cdef uint32_t SEL_SWAP_EXACT_ETH_FOR_TOKENS = 0x7ff36ab5u
cdef uint32_t SEL_SWAP_ETH_FOR_EXACT_TOKENS = 0xfb3bdb41u


cdef struct overlay_entry:
    int32_t pool
    tio_u256 r[2]


cdef struct overlay_t:
    int n
    overlay_entry e[OVERLAY_MAX]


cdef inline overlay_entry *overlay_get(overlay_t *o, const tio_pooltable *t, int32_t pool) noexcept nogil:
    """The overlay's entry of `pool`, added with the table's reserves on first use; NULL when full."""
    cdef int i
    for i in range(o.n):
        if o.e[i].pool == pool:
            return &o.e[i]
    if o.n == OVERLAY_MAX:
        return NULL
    i = o.n
    o.n += 1
    o.e[i].pool = pool
    o.e[i].r[0] = t.reserve_x[2 * pool]
    o.e[i].r[1] = t.reserve_x[2 * pool + 1]
    return &o.e[i]


cdef inline bint apply_hops(overlay_entry **entries, const uint8_t *forward, const tio_u256 *amounts,
                            int hops) noexcept nogil:
    """Move amounts[k] into hop k's pool and amounts[k+1] out of it, in order (as the
    reference's ``entry[i] += ...; entry[o] -= ...``); False if a reserve would leave
    0..2**256-1 (the entries may then be half-updated: the caller discards the overlay)."""
    cdef int k
    cdef int i, o
    for k in range(hops):
        i = 0 if forward[k] else 1
        o = 1 - i
        if tio_u256_add(&entries[k].r[i], &entries[k].r[i], &amounts[k]) != 0:
            return False
        if tio_u256_sub(&entries[k].r[o], &entries[k].r[o], &amounts[k + 1]) != 0:
            return False
    return True


cdef inline bint as_u256(object value, tio_u256 *out):
    """`value` as a uint256 when it is a plain int in range; False otherwise (no exception left)."""
    if type(value) is not int or value < 0:
        return False
    try:
        tio_u256_from_pylong(value, out)
    except OverflowError:
        return False
    return True


cdef class DryRunCore:
    """The native dry run over ``table`` with ``routers`` (20-byte router -> exchange id).

    ``run(actions, trigger_tx)``: ``trigger_tx`` is the ``PendingTx`` that triggered
    the actions' opportunity, or None.  Returns ``(outputs, profit, gas, reverted)``
    -- each action's output (None where it reverted), the sum of output - amount_in
    over the successful ones, the gas estimate, the index of the first reverted
    action or -1 -- or ``None`` when the Python reference must decide (see the module
    docstring).  ``trigger_key`` and ``version`` key the cached trigger overlay
    (the triggering hash and the table's ``syncs_applied``).
    """

    cdef PoolTable table
    cdef dict routers
    cdef overlay_t trigger_overlay
    cdef object trigger_key
    cdef uint64_t trigger_version
    cdef bint trigger_valid
    cdef overlay_t work
    cdef tio_decoded_call call
    cdef tio_decode_stats decode_stats
    cdef readonly uint64_t deferred
    """calls ``run`` left to the reference (returned None)."""

    def __init__(self, PoolTable table not None, dict routers not None):
        self.table = table
        self.routers = routers
        self.trigger_valid = False
        self.trigger_key = None
        self.deferred = 0
        memset(&self.call, 0, sizeof(self.call))
        memset(&self.decode_stats, 0, sizeof(self.decode_stats))
        self.trigger_overlay.n = 0
        self.work.n = 0

    def run(self, actions, trigger_key=None, pending=None):
        """Simulate ``actions`` after the trigger ``pending(trigger_key)`` (see the class docstring).

        ``pending`` is called (with ``trigger_key``) only when the cached trigger overlay
        is not for that key and the table's current version."""
        if self.table is None:
            raise TypeError("DryRunCore.__init__ was not called")
        cdef uint64_t version = self.table.t.syncs_applied
        if trigger_key is None or pending is None:
            self.work.n = 0
        else:
            if not (self.trigger_valid and self.trigger_version == version and self.trigger_key == trigger_key):
                self.trigger_valid = False
                try:
                    tx = pending(trigger_key)
                except Exception:           # the reference calls it again and reports what it raises
                    self.deferred += 1
                    return None
                self.trigger_overlay.n = 0
                if tx is not None and not self._apply_trigger(tx):
                    self.deferred += 1
                    return None
                self.trigger_key = trigger_key
                self.trigger_version = version
                self.trigger_valid = True
            self.work.n = self.trigger_overlay.n
            memcpy(self.work.e, self.trigger_overlay.e, self.trigger_overlay.n * sizeof(overlay_entry))
        result = self._actions(actions)
        if result is None:
            self.deferred += 1
        return result

    # ---- the trigger: the reference's _apply_trigger ------------------------------------------
    cdef bint _apply_trigger(self, object tx) except -1:
        """Fill ``trigger_overlay`` with what the trigger's V2 swaps leave (n = 0: they change
        nothing); False: the reference must decide."""
        cdef const tio_pooltable *t = &self.table.t
        cdef overlay_t *trial = &self.trigger_overlay
        cdef overlay_entry *entries[AMM_MAX_HOPS]
        cdef uint8_t forward[AMM_MAX_HOPS]
        cdef tio_u256 amounts[AMM_MAX_HOPS + 1]
        cdef tio_u256 value, amount, limit
        cdef const tio_swap *sw
        cdef uint32_t s, ia, ib
        cdef int k, hops, status
        cdef int32_t pool
        cdef bint have_value
        trial.n = 0
        if type(tx) is not PendingTx:
            return False
        to = (<tuple>tx)[TX_TO]
        if to is None:
            return True
        if type(to) is not bytes:
            return False
        exchange = self.routers.get(to)
        if exchange is None:
            return True
        if exchange > 0xFFFFFFFF:
            return False
        data = (<tuple>tx)[TX_INPUT]
        if type(data) is not bytes:
            return False
        status = tio_decode_call(<const uint8_t *>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data),
                                 &self.call, &self.decode_stats)
        if status == TIO_DECODE_UNKNOWN:
            return True
        if status != TIO_DECODE_OK:
            return False            # the reference raises DecodeError: its result says so
        have_value = as_u256((<tuple>tx)[TX_VALUE], &value)
        for s in range(self.call.n_swaps):
            sw = &self.call.swaps[s]
            if sw.protocol != TIO_PROTOCOL_V2 or sw.flags & (TIO_SWAP_FEE_ON_TRANSFER | TIO_SWAP_AMOUNT_UNKNOWN):
                trial.n = 0
                return True
            hops = sw.path_len - 1
            if hops < 1 or hops > AMM_MAX_HOPS:
                return False
            for k in range(hops):
                ia = addr_table_get(&t.token_index, sw.path[k])
                ib = addr_table_get(&t.token_index, sw.path[k + 1])
                if ia == TIO_ADDR_MISSING or ib == TIO_ADDR_MISSING:
                    trial.n = 0
                    return True
                pool = pooltable_pair(t, <uint32_t>exchange, <int32_t>ia, <int32_t>ib)
                if pool < 0:
                    trial.n = 0
                    return True
                entries[k] = overlay_get(trial, t, pool)
                if entries[k] == NULL:
                    return False
                forward[k] = memcmp(sw.path[k], t.token_addr + 20 * <size_t>t.tokens[2 * pool], 20) == 0
            if sw.kind == TIO_SWAP_EXACT_IN:
                amount = sw.amount
                if tio_u256_is_zero(&amount):
                    # the reference spends tx.value only where the call carries no amount
                    if not (self.call.selector == SEL_SWAP_EXACT_ETH_FOR_TOKENS and self.call.n_swaps == 1
                            and have_value):
                        return False
                    amount = value
                amounts[0] = amount
                for k in range(hops):
                    if forward[k]:
                        status = v2_amount_out(&amounts[k], &entries[k].r[0], &entries[k].r[1],
                                               t.fee_bps[entries[k].pool], &amounts[k + 1])
                    else:
                        status = v2_amount_out(&amounts[k], &entries[k].r[1], &entries[k].r[0],
                                               t.fee_bps[entries[k].pool], &amounts[k + 1])
                    if status != AMM_OK:
                        return False
                # a zero limit is "no minimum" whether the call carried it or not
                if tio_u256_cmp(&amounts[hops], &sw.amount_limit) < 0:
                    trial.n = 0
                    return True
            else:
                limit = sw.amount_limit
                if tio_u256_is_zero(&limit):
                    if not (self.call.selector == SEL_SWAP_ETH_FOR_EXACT_TOKENS and self.call.n_swaps == 1
                            and have_value):
                        return False
                    limit = value
                amounts[hops] = sw.amount
                for k in range(hops - 1, -1, -1):
                    if forward[k]:
                        status = v2_amount_in(&amounts[k + 1], &entries[k].r[0], &entries[k].r[1],
                                              t.fee_bps[entries[k].pool], &amounts[k])
                    else:
                        status = v2_amount_in(&amounts[k + 1], &entries[k].r[1], &entries[k].r[0],
                                              t.fee_bps[entries[k].pool], &amounts[k])
                    if status != AMM_OK:
                        return False
                if tio_u256_cmp(&amounts[0], &limit) > 0:
                    trial.n = 0
                    return True
            if not apply_hops(entries, forward, amounts, hops):
                return False
        return True

    # ---- the actions: the reference's _hop_pools and _swap --------------------------------------
    cdef object _actions(self, object actions):
        cdef const tio_pooltable *t = &self.table.t
        cdef list outputs
        cdef overlay_t *work = &self.work
        cdef overlay_entry *entries[AMM_MAX_HOPS]
        cdef uint8_t forward[AMM_MAX_HOPS]
        cdef tio_u256 reserves[2 * AMM_MAX_HOPS]
        cdef uint32_t fees[AMM_MAX_HOPS]
        cdef tio_u256 amounts[AMM_MAX_HOPS + 1]
        cdef tio_u256 amount_in
        cdef Py_ssize_t k, hops, n, index
        cdef uint32_t ia, ib, p
        cdef int32_t pool
        if type(actions) is not list and type(actions) is not tuple:
            return None
        n = len(actions)
        if n == 0:
            return None
        outputs = [None] * n
        profit = 0
        gas = 0
        reverted = -1
        for index in range(n):
            action = (<list>actions)[index] if type(actions) is list else (<tuple>actions)[index]
            if type(action) is not SwapAction:
                return None
            router = (<tuple>action)[0]
            path = (<tuple>action)[1]
            amount_in_obj = (<tuple>action)[2]
            min_out = (<tuple>action)[3]
            gas_limit = (<tuple>action)[4]
            op = (<tuple>action)[8]
            if type(path) is not tuple or (gas_limit is not None and type(gas_limit) is not int):
                return None
            if type(min_out) is not int or not as_u256(amount_in_obj, &amount_in):
                return None
            hops = len(<tuple>path) - 1
            if hops < 1 or hops > AMM_MAX_HOPS:
                return None
            for k in range(hops + 1):
                token = (<tuple>path)[k]
                if type(token) is not bytes or PyBytes_GET_SIZE(token) != 20:
                    return None
            pools = None
            if op is not None:
                if type(op) is not Opportunity:
                    return None
                token_path = (<tuple>op)[OP_TOKEN_PATH]
                if type(token_path) is not tuple:
                    return None
                if path == token_path:
                    pools = (<tuple>op)[OP_POOLS]
                    if type(pools) is not tuple or len(<tuple>pools) != hops:
                        return None
            if pools is not None:
                for k in range(hops):
                    address = (<tuple>pools)[k]
                    if type(address) is not bytes or PyBytes_GET_SIZE(address) != 20:
                        return None
                    p = addr_table_get(&t.pool_index, <const uint8_t *>PyBytes_AS_STRING(address))
                    if p == TIO_ADDR_MISSING or t.kind[p] != POOL_KIND_V2:
                        return None
                    entries[k] = overlay_get(work, t, <int32_t>p)
                    if entries[k] == NULL:
                        return None
            else:
                if type(router) is not bytes:
                    return None
                exchange = self.routers.get(router)
                if exchange is None or exchange > 0xFFFFFFFF:
                    return None
                for k in range(hops):
                    ia = addr_table_get(&t.token_index, <const uint8_t *>PyBytes_AS_STRING((<tuple>path)[k]))
                    ib = addr_table_get(&t.token_index, <const uint8_t *>PyBytes_AS_STRING((<tuple>path)[k + 1]))
                    if ia == TIO_ADDR_MISSING or ib == TIO_ADDR_MISSING:
                        return None
                    pool = pooltable_pair(t, <uint32_t>exchange, <int32_t>ia, <int32_t>ib)
                    if pool < 0:
                        return None
                    entries[k] = overlay_get(work, t, pool)
                    if entries[k] == NULL:
                        return None
            for k in range(hops):
                pool = entries[k].pool
                forward[k] = memcmp(PyBytes_AS_STRING((<tuple>path)[k]),
                                    t.token_addr + 20 * <size_t>t.tokens[2 * pool], 20) == 0
                if forward[k]:
                    reserves[2 * k] = entries[k].r[0]
                    reserves[2 * k + 1] = entries[k].r[1]
                else:
                    reserves[2 * k] = entries[k].r[1]
                    reserves[2 * k + 1] = entries[k].r[0]
                fees[k] = t.fee_bps[pool]
            if v2_amounts_out(&amount_in, reserves, fees, <int>hops, amounts) != AMM_OK:
                return None
            out = tio_u256_to_pylong(&amounts[hops])
            gas += gas_limit if gas_limit is not None else GAS_BASE + GAS_PER_HOP * hops
            if out < min_out:
                if reverted < 0:
                    reverted = index
                continue
            if not apply_hops(entries, forward, amounts, <int>hops):
                return None
            outputs[index] = out
            profit += out - amount_in_obj
        return tuple(outputs), profit, gas, reverted
