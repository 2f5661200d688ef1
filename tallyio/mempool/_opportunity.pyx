# cython: language_level=3
# Owns: OpportunityQueue (a tio_dropring of tio_opp records), the record -> Opportunity
# conversion and the consumer's wake-up (tio_opp_wake: the "waiting" flag and its eventfd).
# Touches: _ring (the dropring C API), tio_atomic.h, tallyio.mempool.records.
"""The opportunity queue: bounded, drop-oldest (an old opportunity is stale), counted.

Workers push ``tio_opp`` records from nogil code (``tio_dropring_begin/commit``); the
engine takes them out as :class:`~tallyio.mempool.records.Opportunity` tuples.

    >>> q = OpportunityQueue(capacity=4)
    >>> q.get() is None, q.stats()["received"]
    (True, 0)

Waking a sleeping consumer (no thread polls, no wake-up per opportunity).  The queue
owns an eventfd (``wake_fd``, a pipe where eventfd is missing) and a ``waiting`` flag:

* consumer, about to sleep: ``arm()`` stores waiting = 1 (seq_cst), a full fence, then
  looks at the queue; empty: it sleeps on ``wake_fd`` (``loop.add_reader`` or
  ``select``); not empty: it takes the flag back (exchange) and reads on.
* producer, after committing records: ``tio_opp_wake_signal`` -- a full fence, then reads
  the flag (relaxed); if it is 1, an acq_rel exchange to 0 and, for the one thread that
  got the 1, ONE eventfd write.

No lost wake-up: the two sides run "write mine, full fence, read theirs" on (the queue's
enqueue position, waiting).  With both fences seq_cst, at least one side reads the
other's write: the consumer sees the record (and does not sleep), or the producer sees
waiting = 1 (and writes the eventfd).  The exchange makes exactly one party take each
armed flag, so a sleep costs at most one write, however many records a batch brings;
records committed while the consumer is awake cost a fence and a load.  A flag the
consumer took back while a producer had already exchanged it leaves one stale eventfd
count: a spurious wake-up later, which the consumer treats as "look again" (never a
lost one).  ``wake_now()`` (stop, end of source) writes unconditionally.

    >>> q.arm(), q.disarm(), q.stats()["wakes"]
    (True, True, 0)
"""
import os

from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memset
from posix.unistd cimport read, write
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

from tallyio._ext.common cimport (TIO_OK, tio_atomic_init_u64, tio_atomic_load_u64_relaxed,
                                  tio_atomic_store_u64_seqcst, tio_atomic_fetch_add_u64_relaxed,
                                  tio_fence_seqcst, tio_cpu_relax, tio_now_ns)

from tallyio.mempool._ring cimport (tio_dropring_new, tio_dropring_free, tio_dropring_record,
                                    tio_dropring_pop_many, tio_dropring_release_many,
                                    tio_dropring_begin, tio_dropring_commit,
                                    tio_dropring_queued, dropring_stats, check_ring_capacity)
from tallyio.mempool._u256py cimport u256_to_int, int_to_u256, copy_address

from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["OpportunityQueue"]

cdef extern from "tio_atomic.h" nogil:
    uint64_t tio_atomic_exchange_u64_acqrel(tio_atomic_u64 *a, uint64_t v)


cdef inline void wake_write(tio_opp_wake *w) noexcept nogil:
    cdef uint64_t one = 1
    cdef Py_ssize_t _n              # write is warn_unused_result; a failed write means
    tio_atomic_fetch_add_u64_relaxed(&w.signals, 1)
    _n = write(w.write_fd, &one, sizeof(one))   # the counter/pipe is full: readable already


cdef void tio_opp_wake_signal(tio_opp_wake *w) noexcept nogil:
    """A producer committed records: wake the consumer if it sleeps (module doc)."""
    # full fence: our commits (the enqueue position) before the read of "waiting"; pairs
    # with the fence in arm()
    tio_fence_seqcst()
    if tio_atomic_load_u64_relaxed(&w.waiting) == 0:
        return
    # acq_rel exchange: exactly one producer (or the disarming consumer) takes the 1
    if tio_atomic_exchange_u64_acqrel(&w.waiting, 0) != 0:
        wake_write(w)


# the members by value, looked up by index (calling the enum costs a microsecond)
cdef tuple KIND_BY_VALUE = tuple(OpportunityKind(v) if v in OpportunityKind._value2member_map_ else None
                                 for v in range(256))
cdef object OPPORTUNITY = Opportunity
# opp_to_python fills every field by position: a field added to Opportunity must be added there too
if Opportunity._fields[12:] != ("user", "amount_out", "profit_net_of_gas_eth", "pool_kinds"):
    raise ImportError(f"tallyio.mempool._opportunity is out of step with Opportunity's fields {Opportunity._fields}")
# pool_kinds of an all-V2 cycle of n hops (POOL_V2 is 0)
cdef tuple V2_ONLY_KINDS = tuple((0,) * n for n in range(9))


# liq_flags bits of a LIQUIDATION record (_opportunity.pxd)
DEF LIQ_HAS_TRIGGER = 1
DEF LIQ_HAS_NET = 2
DEF LIQ_HAS_NET_ETH = 4
DEF KIND_LIQUIDATION = 3
cdef object TWO_256 = 1 << 256
cdef object TWO_255 = 1 << 255


cdef inline int signed_to_u256(object value, tio_u256 *out, str what) except -1:
    """A signed int in -2**255 .. 2**255-1 -> two's complement mod 2**256."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not -TWO_255 <= value < TWO_255:
        raise ValueError(f"{what} must be in -2**255 .. 2**255-1, got {value}")
    return int_to_u256(value % TWO_256, out, what)


cdef inline object u256_to_signed(const tio_u256 *v):
    value = u256_to_int(v)
    return value - TWO_256 if value >= TWO_255 else value


cdef object liquidation_to_python(const tio_opp *o):
    """A LIQUIDATION record (written by OpportunityQueue.push) back to its Opportunity."""
    cdef uint8_t flags = o.liq_flags
    profit = u256_to_signed(&o.profit)
    return tuple.__new__(OPPORTUNITY, (
        KIND_BY_VALUE[KIND_LIQUIDATION],
        PyBytes_FromStringAndSize(<char *>o.trigger_hash, 32) if flags & LIQ_HAS_TRIGGER else None,
        (PyBytes_FromStringAndSize(<char *>o.pools[0], 20),),
        (PyBytes_FromStringAndSize(<char *>o.tokens[0], 20), PyBytes_FromStringAndSize(<char *>o.tokens[1], 20)),
        u256_to_int(&o.amount_in), profit, o.gas_estimate, o.base_fee,
        u256_to_signed(&o.net) if flags & LIQ_HAS_NET else None, o.block_number, o.received_ns, o.detected_ns,
        PyBytes_FromStringAndSize(<char *>o.user, 20), u256_to_int(&o.amount_out),
        u256_to_signed(&o.net_eth) if flags & LIQ_HAS_NET_ETH else None, ()))


cdef object opp_to_python(const tio_opp *o):
    # positional tuple.__new__: Opportunity's fields in order (kind, trigger_tx, pools,
    # token_path, amount_in, profit, gas_estimate, base_fee_per_gas, profit_net_of_gas,
    # block_number, received_ns, detected_ns, and the defaults of user, amount_out,
    # profit_net_of_gas_eth, then pool_kinds) without the NamedTuple's keyword __new__
    cdef int h
    cdef int n = o.n_hops
    if o.kind == KIND_LIQUIDATION:
        return liquidation_to_python(o)
    kind = KIND_BY_VALUE[o.kind]
    if kind is None:
        kind = OpportunityKind(o.kind)          # raises ValueError naming the bad value
    pools = PyTuple_New(n)
    for h in range(n):
        item = PyBytes_FromStringAndSize(<char *>o.pools[h], 20)
        Py_INCREF(item)
        PyTuple_SET_ITEM(pools, h, item)
    tokens = PyTuple_New(n + 1)
    for h in range(n + 1):
        item = PyBytes_FromStringAndSize(<char *>o.tokens[h], 20)
        Py_INCREF(item)
        PyTuple_SET_ITEM(tokens, h, item)
    profit = u256_to_int(&o.profit)
    gas_cost = o.gas_estimate * o.base_fee
    if o.v3_hops == 0 and n < len(V2_ONLY_KINDS):
        kinds = V2_ONLY_KINDS[n]
    else:
        kinds = tuple((o.v3_hops >> h) & 1 for h in range(n))
    return tuple.__new__(OPPORTUNITY, (
        kind, PyBytes_FromStringAndSize(<char *>o.trigger_hash, 32) if o.kind != 1 else None,
        pools, tokens, u256_to_int(&o.amount_in), profit, o.gas_estimate, o.base_fee,
        (profit - gas_cost) if o.start_is_weth else None, o.block_number, o.received_ns, o.detected_ns,
        None, 0, None, kinds))


cdef class OpportunityQueue:
    """Bounded drop-oldest queue of opportunities (capacity rounded up to a power of 2)."""

    def __cinit__(self, capacity=1024):
        cdef uint64_t cap = check_ring_capacity(capacity, "OpportunityQueue")
        self.ring = tio_dropring_new(cap, sizeof(tio_opp))
        if self.ring == NULL:
            raise MemoryError(f"OpportunityQueue(capacity={cap}): out of memory")
        tio_atomic_init_u64(&self.wake.waiting, 0)
        tio_atomic_init_u64(&self.wake.signals, 0)
        self.wake.read_fd = self.wake.write_fd = -1
        if hasattr(os, "eventfd"):
            self.wake.read_fd = self.wake.write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:                                   # no eventfd (not Linux): a self-pipe
            self.wake.read_fd, self.wake.write_fd = os.pipe()
            os.set_blocking(self.wake.read_fd, False)
            os.set_blocking(self.wake.write_fd, False)

    def __dealloc__(self):
        tio_dropring_free(self.ring)
        self.ring = NULL
        if self.wake.write_fd >= 0 and self.wake.write_fd != self.wake.read_fd:
            os.close(self.wake.write_fd)
        if self.wake.read_fd >= 0:
            os.close(self.wake.read_fd)
        self.wake.read_fd = self.wake.write_fd = -1

    # ---- the consumer's wake-up (module doc) ----------------------------------------
    @property
    def wake_fd(self) -> int:
        """The fd that turns readable when a producer wakes an armed consumer."""
        return self.wake.read_fd

    def arm(self) -> bool:
        """About to sleep on ``wake_fd``: True when the queue is empty with "waiting"
        published (sleep: the next commit wakes it); False when records are queued (the
        flag is taken back: read them)."""
        tio_atomic_store_u64_seqcst(&self.wake.waiting, 1)
        # full fence: "waiting" before the read of the queue; pairs with tio_opp_wake_signal
        tio_fence_seqcst()
        if tio_dropring_queued(self.ring) == 0:
            return True
        tio_atomic_exchange_u64_acqrel(&self.wake.waiting, 0)
        return False

    def disarm(self) -> bool:
        """Stop waiting (woken, timed out, cancelled); True if no producer had taken
        the flag (no wake-up write is coming or pending for this sleep)."""
        return tio_atomic_exchange_u64_acqrel(&self.wake.waiting, 0) != 0

    def poll(self, uint64_t ns) -> bool:
        """Spin without the GIL for up to ``ns`` nanoseconds until an opportunity is
        queued; True if one is (take it with ``get``), False when the time ran out.  A
        consumer about to sleep polls first: at a steady flow the next opportunity comes
        within the spin and costs no wake-up (an eventfd wake-up through the loop is tens
        of microseconds on a VM); an idle consumer spends ``ns`` once, then sleeps.

            >>> q = OpportunityQueue(capacity=4)
            >>> q.poll(1000), q._push_synthetic(1), q.poll(1000)
            (False, 1, True)
        """
        cdef uint64_t deadline
        cdef uint32_t _k
        if tio_dropring_queued(self.ring) != 0:
            return True
        if ns == 0:
            return False
        with nogil:
            deadline = tio_now_ns() + ns
            while True:
                # a clock read every 64 pauses: the clock is ~25 ns, a pause ~40-140 ns
                for _k in range(64):
                    if tio_dropring_queued(self.ring) != 0:
                        break
                    tio_cpu_relax()
                if tio_dropring_queued(self.ring) != 0 or tio_now_ns() >= deadline:
                    break
        return tio_dropring_queued(self.ring) != 0

    def wake_now(self) -> None:
        """Make ``wake_fd`` readable now, armed or not (stop, end of the source)."""
        tio_atomic_exchange_u64_acqrel(&self.wake.waiting, 0)
        wake_write(&self.wake)

    def clear_wake(self) -> bool:
        """Consume what made ``wake_fd`` readable; True if there was something."""
        cdef char buf[64]
        cdef Py_ssize_t n
        cdef bint any_read = False
        while True:
            n = read(self.wake.read_fd, buf, 64 if self.wake.read_fd != self.wake.write_fd else 8)
            if n <= 0:
                return any_read
            any_read = True
            if self.wake.read_fd == self.wake.write_fd:
                return True                     # an eventfd read takes the whole count

    def _push_synthetic(self, uint64_t n, uint64_t tag=0, bint signal=True):
        """Push ``n`` records from nogil code, as a worker does (``trigger_seq`` =
        ``received_ns`` = ``tag + i``), each followed by ``tio_opp_wake_signal`` when
        ``signal``; for tests and benchmarks of the hand-off.  Returns ``n``."""
        cdef uint64_t i
        cdef uint32_t idx
        cdef tio_opp *o
        with nogil:
            for i in range(n):
                if tio_dropring_begin(self.ring, &idx) != TIO_OK:
                    continue                    # rejected: counted by the ring
                o = <tio_opp *>tio_dropring_record(self.ring, idx)
                memset(o, 0, sizeof(tio_opp))
                o.kind = 2                      # BACKRUN
                o.n_hops = 1
                o.trigger_seq = tag + i
                o.received_ns = tag + i
                o.detected_ns = tag + i
                tio_dropring_commit(self.ring, idx)
                if signal:
                    tio_opp_wake_signal(&self.wake)
        return n

    def push(self, op):
        """Queue one LIQUIDATION :class:`~tallyio.mempool.records.Opportunity` (one pool,
        token_path ``(debt asset, collateral asset)``, its ``user``) from Python, as a
        worker queues a cycle: the same drop-oldest ring, counters and consumer wake-up.
        Returns False when the ring refused it (counted), True when queued. A malformed
        opportunity raises (TypeError/ValueError naming the field) and queues nothing.

            >>> from tallyio.mempool.records import Opportunity, OpportunityKind
            >>> q = OpportunityQueue(capacity=4)
            >>> op = Opportunity(OpportunityKind.LIQUIDATION, None, (b"P" * 20,), (b"D" * 20, b"C" * 20),
            ...                  amount_in=10**6, profit=-3, gas_estimate=400_000, base_fee_per_gas=7,
            ...                  profit_net_of_gas=None, block_number=9, received_ns=1, detected_ns=2,
            ...                  user=b"U" * 20, amount_out=5 * 10**17, profit_net_of_gas_eth=-2**200)
            >>> q.push(op), q.get() == op
            (True, True)
        """
        cdef uint32_t idx
        cdef tio_opp rec
        cdef tio_opp *o
        cdef bint queued = False
        if not isinstance(op, OPPORTUNITY):
            raise TypeError(f"push takes an Opportunity, got {type(op).__name__}")
        if op.kind != KIND_LIQUIDATION:
            raise ValueError(f"push queues LIQUIDATION opportunities (the analyzer queues its own), got {op.kind!r}")
        if len(op.pools) != 1 or len(op.token_path) != 2 or op.user is None:
            raise ValueError("a LIQUIDATION opportunity has one pool, token_path (debt, collateral) and a user")
        memset(&rec, 0, sizeof(tio_opp))       # everything checked before the ring is touched
        rec.kind = KIND_LIQUIDATION
        rec.n_hops = 1
        copy_address(op.pools[0], rec.pools[0], 20, "Opportunity.pools[0]")
        copy_address(op.token_path[0], rec.tokens[0], 20, "Opportunity.token_path[0]")
        copy_address(op.token_path[1], rec.tokens[1], 20, "Opportunity.token_path[1]")
        copy_address(op.user, rec.user, 20, "Opportunity.user")
        if op.trigger_tx is not None:
            copy_address(op.trigger_tx, rec.trigger_hash, 32, "Opportunity.trigger_tx")
            rec.liq_flags |= LIQ_HAS_TRIGGER
        int_to_u256(op.amount_in, &rec.amount_in, "Opportunity.amount_in")
        int_to_u256(op.amount_out, &rec.amount_out, "Opportunity.amount_out")
        signed_to_u256(op.profit, &rec.profit, "Opportunity.profit")
        if op.profit_net_of_gas is not None:
            signed_to_u256(op.profit_net_of_gas, &rec.net, "Opportunity.profit_net_of_gas")
            rec.liq_flags |= LIQ_HAS_NET
        if op.profit_net_of_gas_eth is not None:
            signed_to_u256(op.profit_net_of_gas_eth, &rec.net_eth, "Opportunity.profit_net_of_gas_eth")
            rec.liq_flags |= LIQ_HAS_NET_ETH
        rec.gas_estimate = op.gas_estimate
        rec.base_fee = op.base_fee_per_gas
        rec.block_number = op.block_number
        rec.received_ns = op.received_ns
        rec.detected_ns = op.detected_ns
        with nogil:
            if tio_dropring_begin(self.ring, &idx) == TIO_OK:     # else rejected: counted by the ring
                o = <tio_opp *>tio_dropring_record(self.ring, idx)
                o[0] = rec
                tio_dropring_commit(self.ring, idx)
                tio_opp_wake_signal(&self.wake)
                queued = True
        return queued

    @property
    def capacity(self) -> int:
        return self.ring.capacity

    def __len__(self):
        return tio_dropring_queued(self.ring)

    def get(self):
        """The oldest opportunity, or None when there is none."""
        cdef uint32_t idx
        if tio_dropring_pop_many(self.ring, &idx, 1) == 0:
            return None
        try:
            return opp_to_python(<tio_opp *>tio_dropring_record(self.ring, idx))
        finally:
            tio_dropring_release_many(self.ring, &idx, 1)

    def get_many(self, limit=64):
        """Up to `limit` of the oldest opportunities, oldest first."""
        out = []
        while len(out) < limit:
            o = self.get()
            if o is None:
                break
            out.append(o)
        return out

    def stats(self) -> dict:
        """received (pushed), processed (taken), dropped (evicted oldest...), in_flight,
        and wakes (eventfd writes that woke, or would wake, a sleeping consumer)."""
        out = dropring_stats(self.ring)
        out["wakes"] = tio_atomic_load_u64_relaxed(&self.wake.signals)
        return out
