# cython: language_level=3
# Owns: Pipeline, the wiring of the mempool stages: the watcher side (feed: filter, ring,
# block barrier, Sync application, the standing-arbitrage scan after a block's Syncs) and
# the workers' native task (decode -> analyze).
# Touches: _ring, _filter, _pools, _analyzer, _opportunity (their C APIs), tallyio.eth's
# nogil decoder, and NumaScheduler's native-task C API (tio_submit_native).
"""The mempool pipeline: a source's records in, opportunities out.

One thread (the watcher: a NodeSource's thread, or whoever calls ``run``/``feed``)
hands each record to ``feed``:

* ``PendingTx``: the filter (nogil; an irrelevant transaction is dropped after one
  address lookup), then the bounded drop-oldest ring; if a worker slot is idle, one
  native task is submitted to the NumaScheduler for it;
* ``BlockHeader`` / ``SyncEvent`` / ``V3PoolEvent`` (a V3 pool's Swap, Mint, Burn log or
  its resynced state): the block barrier (wait until every worker has
  released every transaction accepted so far), then the pool table and the base fee
  are updated.  The table is thus written only while nothing reads it, and a pending
  transaction is always analyzed against the state of the block it was seen in: a
  replay gives the same opportunities on every run.

A worker's native task (``drain_task``) pops batches of up to 32 records and, without
the GIL, decodes each (``tio_decode_call``) and analyzes its V2 swaps
(``tio_analyze_call``), pushing opportunities into the bounded drop-oldest queue; it
keeps going until the ring is empty, so one wake-up serves a whole batch.

Wake-up protocol (no lost work): a slot is IDLE or RUNNING.  The watcher publishes a
record, then (seq_cst fence) reads the slot state and, if IDLE, CASes it to RUNNING and
submits the task.  The task, on finding the ring empty, stores IDLE, then (seq_cst
fence) looks at the ring again and takes the slot back (CAS IDLE -> RUNNING) if a record
arrived.  The two fences order "publish, then read state" against "store IDLE, then read
ring": at least one side sees the other, so a record is never left with no task coming.
A realtime replay feeder may also take slot 0 by the same CAS and run the task on its own
thread (``pipe_drain_inline``: no wake-up when it has time before its next record), and so
does ``feed`` on a live source's thread with ``inline_analysis=True`` (counted in
``stats()["pipeline"]["inline_feeds"]``; a burst of more than a batch, or a busy slot 0,
still kicks the workers); the slot is held and released exactly as a worker holds it
(tallyio/_ext/README.md).

    >>> from tallyio.mempool.records import V2Pool
    >>> from tallyio.mempool._pools import PoolTable
    >>> W, T = b"\\xee" * 20, b"\\xaa" * 20
    >>> table = PoolTable([V2Pool(b"\\x01" * 20, W, T, 10**6, 10**6)], weth=W)
    >>> with Pipeline(table, routers_v2=[b"\\x07" * 20]) as pipe:
    ...     pipe.drain()
    ...     pipe.stats()["ring"]["received"], pipe.next_opportunity(timeout=0)
    (0, None)

Standing arbitrage: after a run of ``SyncEvent`` records, the cycles through the pools
they changed are scanned on the new state alone (at the next pending transaction or
head, at the end of a replay, or on ``scan_arbitrage()``, which ``NodeSource``'s
``on_idle`` calls when the node goes quiet), each cycle once per block:

    >>> from tallyio.eth.types import SyncEvent
    >>> two = PoolTable([V2Pool(b"\\x01" * 20, W, T, 10**6, 10**6),
    ...                  V2Pool(b"\\x02" * 20, W, T, 10**6, 10**6, exchange=1)], weth=W)
    >>> with Pipeline(two, routers_v2=[b"\\x07" * 20]) as pipe:
    ...     pipe.feed(SyncEvent(b"\\x01" * 20, 10**6, 2 * 10**6, 41, 0, b"\\x00" * 32))
    ...     found = pipe.scan_arbitrage()
    ...     op = pipe.next_opportunity(timeout=0)
    >>> found, op.kind.name, op.trigger_tx, op.block_number
    (1, 'ARBITRAGE', None, 42)
"""
import time

from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t
from libc.string cimport memcpy
from libc.stdlib cimport calloc, free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from tallyio._ext.common cimport (
    TIO_OK, tio_atomic_init_u64, tio_atomic_load_u64_acquire,
    tio_atomic_load_u64_relaxed, tio_atomic_store_u64_seqcst, tio_atomic_cas_u64_acqrel,
    tio_atomic_fetch_add_u64_relaxed, tio_fence_seqcst, tio_cpu_relax, tio_backoff,
    tio_backoff_reset, tio_backoff_snooze, tio_now_ns,
)
from tallyio._ext.scheduler cimport tio_sched, tio_sched_of, tio_submit_native
from tallyio._ext.swap cimport TIO_DECODE_OK
from tallyio.eth._decode cimport tio_decode_call
from tallyio.mempool._ring cimport (
    tio_pending, tio_dropring_pop_many, tio_dropring_release_many,
    tio_dropring_record, tio_dropring_queued, tio_dropring_received, tio_dropring_dropped,
    tio_dropring_processed_acquire, tio_dropring_reject, pending_fill, pending_push,
    PendingRing, DROP_OVERSIZE, TIO_PENDING_INLINE,
)
from tallyio._ext.u256 cimport tio_u256, tio_u256_from_be32
from tallyio.mempool._filter cimport (TxFilter, tio_filter_check, tio_filter_target,
                                      FILTER_PASS)
from tallyio.mempool._pools cimport PoolTable, pooltable_apply_sync
from tallyio.mempool._addrtable cimport addr_table_get, TIO_ADDR_MISSING
from tallyio.mempool._analyzer cimport (tio_analyze_ctx, tio_analyzer_cfg, tio_analyze_call, fill_cfg,
                                        AN_COUNTERS, AN_OPPORTUNITIES, tio_scan_touched)
from tallyio.mempool._analyzer import COUNTERS as ANALYZER_COUNTERS
from tallyio.mempool._opportunity cimport OpportunityQueue, tio_opp_wake_signal
from tallyio.state._recordlog cimport tio_le32, tio_le64

from tallyio.eth import DECODE_STATUSES
from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool.config import AnalyzerConfig, FilterConfig
from tallyio.mempool.records import V3PoolEvent

__all__ = ["Pipeline"]

cdef void drain_task(void *arg) noexcept nogil:
    """The workers' native task: decode and analyze records until the ring is empty."""
    cdef pipe_slot *slot = <pipe_slot *>arg
    cdef pipe_state *pipe = <pipe_state *>slot.pipe
    cdef uint32_t idxs[BATCH]
    cdef uint64_t k, i
    cdef uint64_t expected, found
    cdef tio_pending *rec
    while True:
        k = tio_dropring_pop_many(pipe.ring, idxs, BATCH)
        if k == 0:
            # seq_cst store, then a full fence before looking at the ring again (pairs with
            # the watcher's fence between publishing a record and reading the slot state)
            tio_atomic_store_u64_seqcst(&slot.state, SLOT_IDLE)
            tio_fence_seqcst()
            if tio_dropring_queued(pipe.ring) == 0:
                return
            expected = SLOT_IDLE
            # acq_rel: taking the slot back; fails when the watcher already resubmitted it
            if not tio_atomic_cas_u64_acqrel(&slot.state, &expected, SLOT_RUNNING):
                return
            continue
        slot.batches += 1
        slot.records += k
        for i in range(k):
            rec = <tio_pending *>tio_dropring_record(pipe.ring, idxs[i])
            if tio_decode_call(rec.input, rec.input_len, &slot.call, &slot.dstats) == TIO_DECODE_OK:
                if slot.call.n_swaps:
                    found = slot.astats.count[AN_OPPORTUNITIES]
                    tio_analyze_call(&pipe.ctx, rec, rec.target & 0xFFFF, &slot.call, &slot.astats)
                    if slot.astats.count[AN_OPPORTUNITIES] != found:
                        # at once, not at the batch's end: costs a fence unless the consumer
                        # sleeps, and then one eventfd write per sleep (_opportunity's doc)
                        tio_opp_wake_signal(pipe.wake)
        # release (inside): every read of these records and of the pool table is done
        # before the watcher's block barrier can see them processed
        tio_dropring_release_many(pipe.ring, idxs, k)


cdef void kick(pipe_state *pipe, uint64_t min_queued) noexcept nogil:
    """Make sure enough slots run for what is queued: slot s is started when more than
    s x BATCH records wait (slot 0 when at least `min_queued`, and at least one, do).
    A live source kicks at 1 (lowest latency); a full-speed replay at BATCH, so a worker
    is woken for a batch, not for each record (a wake-up costs tens of microseconds)."""
    cdef uint64_t queued, expected
    cdef int s
    # full fence: orders our last publish before the reads of the slot states below
    tio_fence_seqcst()
    queued = tio_dropring_queued(pipe.ring)
    if queued < min_queued:
        return
    for s in range(pipe.n_slots):
        if queued <= <uint64_t>s * BATCH:
            return
        # relaxed pre-check; the CAS decides
        if tio_atomic_load_u64_relaxed(&pipe.slots[s].state) != SLOT_IDLE:
            continue
        expected = SLOT_IDLE
        if tio_atomic_cas_u64_acqrel(&pipe.slots[s].state, &expected, SLOT_RUNNING):
            if tio_submit_native(pipe.sched, drain_task, &pipe.slots[s], 0, -1) != TIO_OK:
                # the scheduler refused (full or stopping): give the slot back; the records
                # stay queued for the next kick (counted)
                tio_atomic_store_u64_seqcst(&pipe.slots[s].state, SLOT_IDLE)
                tio_atomic_fetch_add_u64_relaxed(&pipe.submit_failures, 1)


cdef bint quiescent(pipe_state *pipe) noexcept nogil:
    """Every accepted record released by the workers (the watcher's own counters give
    `accepted`: it is the only producer)."""
    cdef uint64_t accepted = tio_dropring_received(pipe.ring) - tio_dropring_dropped(pipe.ring)
    # acquire: pairs with the release in tio_dropring_release_many
    return tio_dropring_processed_acquire(pipe.ring) == accepted


cdef bint wait_quiescent(pipe_state *pipe, uint64_t timeout_ns) noexcept nogil:
    cdef tio_backoff backoff
    cdef uint64_t deadline = tio_now_ns() + timeout_ns
    tio_backoff_reset(&backoff)
    while not quiescent(pipe):
        kick(pipe, 1)
        if tio_now_ns() > deadline:
            return False
        tio_backoff_snooze(&backoff)
    return True


# ---- standing arbitrage after a block's Syncs (the watcher) ------------------------------
# A Sync that changed a pool marks it touched; the scan runs at the first record that is not
# a Sync (a pending transaction or a head: the block's Syncs are then all applied), at the
# end of a replay, or when the feeding thread calls scan_arbitrage() (NodeSource's on_idle).
# Its opportunities are valid for max(the latest head + 1, the Syncs' block + 1).  The
# table is written only by this thread, so reading it here needs no barrier.

cdef inline void mark_touched(pipe_state *pipe, const uint8_t *pool, uint64_t block) noexcept nogil:
    mark_touched_row(pipe, addr_table_get(&pipe.table.pool_index, pool), block)


cdef inline void mark_touched_row(pipe_state *pipe, uint32_t i, uint64_t block) noexcept nogil:
    # a node may send a block's Sync logs before or after its head: the state after the
    # Syncs of block N is valid for N + 1 either way
    if block < <uint64_t>-1 and block + 1 > pipe.touched_block:
        pipe.touched_block = block + 1
    if i == TIO_ADDR_MISSING or i >= pipe.table.n_pools or pipe.is_touched[i]:
        return
    pipe.is_touched[i] = 1
    pipe.touched[pipe.n_touched] = <int32_t>i
    pipe.n_touched += 1


cdef int scan_touched(pipe_state *pipe) noexcept nogil:
    """Scan the cycles through the touched pools (once per cycle and block); returns the
    ARBITRAGE opportunities pushed."""
    cdef uint64_t k
    cdef int found = 0
    cdef tio_analyze_ctx ctx = pipe.ctx
    if pipe.n_touched == 0:
        return 0
    if pipe.touched_block > ctx.block_number:
        ctx.block_number = pipe.touched_block
    if pipe.arbitrage:
        found = tio_scan_touched(&ctx, pipe.touched, pipe.n_touched, pipe.cycle_stamp,
                                 pipe.max_arb_cycles, &pipe.arb_st, &pipe.arb)
    for k in range(pipe.n_touched):
        pipe.is_touched[pipe.touched[k]] = 0
    pipe.n_touched = 0
    pipe.touched_block = 0
    if found > 0:
        tio_opp_wake_signal(pipe.wake)
    return found


# ---- raw records (the native replay feeder, tallyio/mempool/_feeder.pyx) ------------------
# The payload layouts of tallyio/mempool/recording.py, read in place (the record log's own
# framing and checksums are tallyio/state/_recordlog's): the same fields feed() takes from a
# PendingTx / BlockHeader / SyncEvent, applied the same way.

cdef enum:
    TX_HEAD = 202          # recording.py _TX_HEAD.size
    BLOCK_SIZE = 136       # _BLOCK.size
    SYNC_SIZE = 137        # _SYNC.size


cdef inline void replay_barrier(pipe_state *pipe) noexcept nogil:
    if pipe.barrier_needed:
        wait_quiescent(pipe, <uint64_t>1 << 62)   # no deadline (2**62 ns: 146 years)
        pipe.barrier_needed = False


cdef int feed_raw_pending(pipe_state *pipe, const uint8_t *p, uint64_t n) noexcept nogil:
    cdef tio_pending rec
    cdef uint32_t n_in, n_raw, target = 0
    if n < TX_HEAD:
        pipe.bad_records += 1
        return PIPE_BAD
    n_in = tio_le32(p + 194)
    n_raw = tio_le32(p + 198)
    if <uint64_t>TX_HEAD + n_in + n_raw != n:
        pipe.bad_records += 1
        return PIPE_BAD
    if pipe.n_touched:
        scan_touched(pipe)              # the Syncs before this record are all applied
    if not p[72]:
        tio_filter_target(pipe.filter, NULL)
        return PIPE_FED
    if tio_filter_target(pipe.filter, p + 52) != FILTER_PASS:
        return PIPE_FED
    if n_in > TIO_PENDING_INLINE:
        tio_dropring_reject(pipe.ring, DROP_OVERSIZE)
        return PIPE_FED
    memcpy(rec.hash, p, 32)
    memcpy(rec.sender, p + 32, 20)
    memcpy(rec.to, p + 52, 20)
    rec.has_to = 1
    rec.tx_type = p[73]
    rec.nonce = tio_le64(p + 74)
    rec.gas = tio_le64(p + 82)
    tio_u256_from_be32(&rec.value, p + 90)
    tio_u256_from_be32(&rec.max_fee_per_gas, p + 122)
    tio_u256_from_be32(&rec.max_priority_fee_per_gas, p + 154)
    rec.received_ns = tio_le64(p + 186)
    rec.input_len = n_in
    memcpy(rec.input, p + TX_HEAD, n_in)
    if tio_filter_check(pipe.filter, &rec, &target) != FILTER_PASS:
        return PIPE_FED
    rec.target = target
    rec.seq = pipe.next_seq
    pipe.next_seq += 1
    pending_push(pipe.ring, &rec)       # no wake-up here: the caller kicks once per batch
    pipe.barrier_needed = True
    return PIPE_ACCEPTED


cdef int pipe_feed_raw(pipe_state *pipe, uint16_t rtype, const uint8_t *payload,
                       uint64_t length) noexcept nogil:
    """One recorded payload into the pipeline (the feeder's thread is the watcher): a
    PENDING_TX is filtered and queued WITHOUT waking a worker (call pipe_kick once per
    batch); a BLOCK_HEADER / SYNC_EVENT waits at the block barrier and is applied.
    PIPE_ACCEPTED (a transaction queued), PIPE_FED (handled), PIPE_BAD (counted in
    bad_records), PIPE_NOT_NATIVE (another type: decode it in Python and feed())."""
    cdef tio_u256 r0, r1, base_fee
    cdef int status
    if rtype == REC_PENDING_TX:
        return feed_raw_pending(pipe, payload, length)
    if rtype == REC_BLOCK_HEADER:
        if length != BLOCK_SIZE:
            pipe.bad_records += 1
            return PIPE_BAD
        scan_touched(pipe)              # the block's Syncs are all applied
        replay_barrier(pipe)
        tio_u256_from_be32(&base_fee, payload + 80)
        pipe.ctx.base_fee = (base_fee.w[0] if (base_fee.w[1] | base_fee.w[2] | base_fee.w[3]) == 0
                             else <uint64_t>-1)
        pipe.ctx.block_number = tio_le64(payload) + 1
        pipe.blocks += 1
        return PIPE_FED
    if rtype == REC_SYNC_EVENT:
        if length != SYNC_SIZE:
            pipe.bad_records += 1
            return PIPE_BAD
        replay_barrier(pipe)
        tio_u256_from_be32(&r0, payload + 20)
        tio_u256_from_be32(&r1, payload + 52)
        status = pooltable_apply_sync(pipe.table, payload, &r0, &r1)
        if status < 0:
            pipe.syncs_refused += 1
        elif status == 1:
            mark_touched(pipe, payload, tio_le64(payload + 84))
        pipe.syncs += 1
        return PIPE_FED
    return PIPE_NOT_NATIVE


cdef void pipe_kick(pipe_state *pipe) noexcept nogil:
    """Wake the workers the queued records need (one call per batch, not per record)."""
    kick(pipe, 1)


cdef bint pipe_drain_inline(pipe_state *pipe) noexcept nogil:
    """The watcher runs the workers' task itself, on its own thread, when slot 0 is idle
    and at most a batch waits: a realtime source that has time before its next record
    saves the worker's wake-up (a futex wake and a context switch: tens of microseconds
    on a VM, most of a transaction's latency).  The slot protocol is unchanged: the
    watcher takes slot 0 by the same CAS a kick does and runs drain_task, which stores
    IDLE and looks at the ring again after its fence before it returns.  False (nothing
    done) when slot 0 is held or more than a batch waits: the caller kicks instead."""
    cdef uint64_t expected = SLOT_IDLE
    if tio_dropring_queued(pipe.ring) > BATCH:
        return False
    # relaxed pre-check; the CAS decides (acq_rel: as kick takes a slot)
    if tio_atomic_load_u64_relaxed(&pipe.slots[0].state) != SLOT_IDLE:
        return False
    if not tio_atomic_cas_u64_acqrel(&pipe.slots[0].state, &expected, SLOT_RUNNING):
        return False
    drain_task(&pipe.slots[0])
    return True


cdef void pipe_finish(pipe_state *pipe) noexcept nogil:
    """End of a source: the last Syncs' standing cycles, then every queued record analyzed."""
    scan_touched(pipe)
    wait_quiescent(pipe, <uint64_t>1 << 62)
    pipe.barrier_needed = False


cdef class Pipeline:
    """decode -> filter -> analyze on a NumaScheduler's workers (see the module doc).

    ``table``: the PoolTable (the pipeline applies Sync logs to it at block barriers).
    ``scheduler``: a started NumaScheduler, or None to start and own one with 2 workers.
    ``routers_v2`` / ``routers_v3`` / ``universal_routers``: addresses the filter lets
    through, each optionally ``(address, exchange_id)`` (the exchange whose pools the
    router swaps through, as in ``V2Pool.exchange``).  ``inline_analysis``: ``feed`` analyzes
    a transaction on the calling thread when slot 0 is idle and at most a batch waits (a
    live source's latency: no worker wake-up); ``run`` never does.  ``feed`` from one
    thread only."""

    def __cinit__(self, *args, **kwargs):
        self.pipe = NULL

    def __init__(self, PoolTable table, *, scheduler=None, filter_config=None,
                 analyzer_config=None, routers_v2=(), routers_v3=(), universal_routers=(),
                 ring_capacity=4096, opportunity_capacity=1024, workers=None, inline_analysis=False):
        from tallyio import NumaScheduler, SchedulerConfig
        if not isinstance(inline_analysis, bool):
            raise TypeError(f"Pipeline: inline_analysis must be a bool, got {type(inline_analysis).__name__}")
        self.table = table
        self.filter = TxFilter(filter_config if filter_config is not None else FilterConfig(),
                               routers_v2=routers_v2, routers_v3=routers_v3,
                               universal_routers=universal_routers)
        self.analyzer_config = analyzer_config if analyzer_config is not None else AnalyzerConfig()
        if not isinstance(self.analyzer_config, AnalyzerConfig):
            raise TypeError(f"Pipeline: analyzer_config must be an AnalyzerConfig, "
                            f"got {type(self.analyzer_config).__name__}")
        self.ring = PendingRing(ring_capacity)
        self.opportunities = OpportunityQueue(opportunity_capacity)
        if scheduler is None:
            scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=2))
            scheduler.start()
            self.own_scheduler = True
        self.scheduler = scheduler
        cdef tio_sched *sched = tio_sched_of(scheduler)
        n_slots = workers if workers is not None else scheduler.worker_count
        if isinstance(n_slots, bool) or not isinstance(n_slots, int) or not 1 <= n_slots <= MAX_SLOTS:
            raise ValueError(f"Pipeline: workers must be an int in 1 .. {MAX_SLOTS}, got {n_slots!r}")
        fill_cfg(self.analyzer_config, &self.cfg)
        self.pipe = <pipe_state *>calloc(1, sizeof(pipe_state))
        if self.pipe == NULL:
            raise MemoryError("Pipeline: out of memory")
        self.pipe.slots = <pipe_slot *>calloc(n_slots, sizeof(pipe_slot))
        if self.pipe.slots == NULL:
            raise MemoryError("Pipeline: out of memory")
        self.pipe.n_slots = n_slots
        self.pipe.ring = self.ring.ring
        self.pipe.sched = sched
        self.pipe.ctx.table = &table.t
        self.pipe.ctx.cfg = &self.cfg
        self.pipe.ctx.out = self.opportunities.ring
        self.pipe.wake = &self.opportunities.wake
        self.pipe.filter = &self.filter.f
        self.pipe.table = &table.t
        tio_atomic_init_u64(&self.pipe.submit_failures, 0)
        self.pipe.kick_at = 1
        self.pipe.inline_feed = inline_analysis
        self.pipe.arbitrage = self.analyzer_config.standing_arbitrage
        self.pipe.max_arb_cycles = self.analyzer_config.max_arbitrage_cycles
        # + 1: calloc(0) may return NULL
        self.pipe.touched = <int32_t *>calloc(table.t.n_pools + 1, sizeof(int32_t))
        self.pipe.is_touched = <uint8_t *>calloc(table.t.n_pools + 1, 1)
        self.pipe.cycle_stamp = <uint64_t *>calloc(table.t.n_cycles + 1, sizeof(uint64_t))
        if self.pipe.touched == NULL or self.pipe.is_touched == NULL or self.pipe.cycle_stamp == NULL:
            raise MemoryError("Pipeline: out of memory")
        for s in range(n_slots):
            tio_atomic_init_u64(&self.pipe.slots[s].state, SLOT_IDLE)
            self.pipe.slots[s].pipe = self.pipe
        self.closed = False

    # ---- the watcher side -------------------------------------------------------------
    def feed(self, record):
        """Take one source record (PendingTx, BlockHeader, SyncEvent or V3PoolEvent); other types are
        counted in ``unknown_records`` and ignored.  A PendingTx field of the wrong type or
        range raises TypeError/ValueError naming it (counted, nothing queued)."""
        cdef tio_pending rec
        cdef uint32_t target = 0
        cdef object to
        if self.closed:
            raise RuntimeError("Pipeline is closed")
        if type(record) is PendingTx:
            if self.pipe.n_touched:
                with nogil:
                    scan_touched(self.pipe)
            to = (<tuple>record)[2]
            if to is None:
                tio_filter_target(&self.filter.f, NULL)
                return
            if type(to) is bytes and PyBytes_GET_SIZE(to) == 20:
                if tio_filter_target(&self.filter.f, <const uint8_t *>PyBytes_AS_STRING(to)) != FILTER_PASS:
                    return
            if pending_fill(self.pipe.ring, record, &rec) == 0:
                return
            if tio_filter_check(&self.filter.f, &rec, &target) != FILTER_PASS:
                return
            rec.target = target
            rec.seq = self.pipe.next_seq
            self.pipe.next_seq += 1
            with nogil:
                pending_push(self.pipe.ring, &rec)
                # live (kick_at 1): analyzed here when slot 0 is idle and at most a batch waits,
                # saving the worker's wake-up; else (and at full speed) the workers take it
                if self.pipe.inline_feed and self.pipe.kick_at == 1 and pipe_drain_inline(self.pipe):
                    self.pipe.inline_feeds += 1
                else:
                    kick(self.pipe, self.pipe.kick_at)
            self.pipe.barrier_needed = True
        elif type(record) is SyncEvent:
            self._barrier()
            if self.table.apply_sync(record):
                mark_touched_row(self.pipe, <uint32_t>self.table.index_of(record.pool),
                                 min(max(record.block_number, 0), 2**64 - 1))
            self.pipe.syncs += 1
        elif type(record) is V3PoolEvent:
            self._barrier()
            if self.table.apply_v3_event(record):
                mark_touched_row(self.pipe, <uint32_t>self.table.index_of(record.pool),
                                 min(max(record.block_number, 0), 2**64 - 1))
            self.pipe.v3_events += 1
        elif type(record) is BlockHeader:
            with nogil:
                scan_touched(self.pipe)
            self._barrier()
            self.pipe.ctx.base_fee = min(record.base_fee_per_gas, 2**64 - 1)
            self.pipe.ctx.block_number = record.number + 1
            self.pipe.blocks += 1
        else:
            self.unknown_records += 1

    __call__ = feed

    def _barrier(self):
        if self.pipe.barrier_needed:
            self.drain()
            self.pipe.barrier_needed = False

    @property
    def blocks(self) -> int:
        """Block headers applied."""
        return self.pipe.blocks

    @property
    def syncs(self) -> int:
        """Sync events applied (known or not to the table)."""
        return self.pipe.syncs

    def run(self, source):
        """Feed every record of an iterable source (a ReplaySource), then drain.
        Returns the number of records fed."""
        n = 0
        feed = self.feed
        # full speed: wake a worker per batch, not per record (drain and barriers kick the rest)
        self.pipe.kick_at = BATCH
        try:
            for record in source:
                feed(record)
                n += 1
        finally:
            self.pipe.kick_at = 1
        with nogil:
            scan_touched(self.pipe)
        self.drain()
        return n

    def replay_file(self, path):
        """Feed a recording to the pipeline at full speed from its memory map without the
        GIL (``tallyio.mempool._feeder.ReplayFeeder``: the native twin of
        ``run(ReplaySource(path))``, records checked the same way), then drain.
        Returns ``{"records", "pending", "end"}`` (``end``: "end of log" or where a torn
        or invalid record stopped it)."""
        from tallyio.mempool._feeder import ReplayFeeder
        if self.closed:
            raise RuntimeError("Pipeline is closed")
        with ReplayFeeder(self, path) as feeder:
            info = feeder.run()
        return {"records": info["records"], "pending": info["pending"], "end": info["end"]}

    def scan_arbitrage(self) -> int:
        """Scan now for standing arbitrage on the pools the Syncs applied since the last
        scan touched (it also runs by itself at the next pending transaction or head, and
        at the end of a replay); returns the ARBITRAGE opportunities pushed.  Call it from
        the thread that feeds: ``NodeSource(url, pipe.feed, on_idle=pipe.scan_arbitrage)``
        runs it whenever the node has nothing more to send, so a block's arbitrage does
        not wait for the next pending transaction."""
        cdef int found
        if self.closed:
            raise RuntimeError("Pipeline is closed")
        if not self.pipe.n_touched:
            # nothing to scan (the common idle: no Sync since the last scan); no GIL release,
            # which would hand the GIL to (and take it back from) a consumer waiting for it
            return 0
        with nogil:
            found = scan_touched(self.pipe)
        return found

    def drain(self, timeout=60.0):
        """Wait until every accepted transaction has been analyzed; TimeoutError after
        `timeout` seconds (the workers are stuck or the scheduler stopped)."""
        cdef uint64_t ns = <uint64_t>(timeout * 1e9)
        cdef bint ok
        with nogil:
            ok = wait_quiescent(self.pipe, ns)
        if not ok:
            raise TimeoutError(f"Pipeline.drain: work still in flight after {timeout} s "
                               f"({self.ring.stats()})")

    # ---- the engine side ----------------------------------------------------------------
    def next_opportunity(self, timeout=None):
        """The oldest detected opportunity; waits up to `timeout` seconds (None: forever,
        0: not at all) and returns None when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            op = self.opportunities.get()
            if op is not None or (deadline is not None and time.monotonic() >= deadline):
                return op
            time.sleep(0.0002)

    def stats(self) -> dict:
        """Every counter: ``ring`` (received == processed + dropped + in_flight), ``filter``
        (by verdict), ``decode`` (by status), ``analyzer``, ``opportunities``, ``pools``,
        and the pipeline's own (blocks, syncs, batches, submit_failures...).  Worker
        counters are exact once drain() returned, approximate while work runs."""
        cdef pipe_slot *slot
        decode = {name: 0 for name in DECODE_STATUSES}
        analyzer = {name: 0 for name in ANALYZER_COUNTERS}
        batches = records = 0
        for s in range(self.pipe.n_slots):
            slot = &self.pipe.slots[s]
            batches += slot.batches
            records += slot.records
            for i, name in enumerate(DECODE_STATUSES):
                decode[name] += slot.dstats.by_status[i]
            for i in range(AN_COUNTERS):
                analyzer[ANALYZER_COUNTERS[i]] += slot.astats.count[i]
        arbitrage = {"scans": self.pipe.arb.scans, "pools": self.pipe.arb.pools,
                     "repeats": self.pipe.arb.repeats, "truncated": self.pipe.arb.truncated,
                     "pending_pools": self.pipe.n_touched}
        for name in ("cycles_screened", "candidates", "sized_exact", "sized_near",
                     "opportunities", "unprofitable"):
            arbitrage[name] = self.pipe.arb_st.count[ANALYZER_COUNTERS.index(name)]
        return {"ring": self.ring.stats(), "filter": self.filter.stats(), "decode": decode,
                "analyzer": analyzer, "arbitrage": arbitrage, "opportunities": self.opportunities.stats(),
                "pools": self.table.stats(),
                "pipeline": {"blocks": self.pipe.blocks, "syncs": self.pipe.syncs,
                             "syncs_refused": self.pipe.syncs_refused, "v3_events": self.pipe.v3_events,
                             "bad_records": self.pipe.bad_records, "batches": batches,
                             "inline_feeds": self.pipe.inline_feeds,
                             "records": records, "unknown_records": self.unknown_records,
                             "submit_failures": tio_atomic_load_u64_relaxed(&self.pipe.submit_failures),
                             "block_number": self.pipe.ctx.block_number,
                             "base_fee": self.pipe.ctx.base_fee}}

    def close(self):
        """Drain, then stop the scheduler if the pipeline started it."""
        if self.closed:
            return
        self.drain()
        self._wait_idle()
        self.closed = True
        if self.own_scheduler:
            self.scheduler.stop()

    def _wait_idle(self):
        """Until no slot's task runs (after drain(), a task may still be finishing its
        last empty look at the ring)."""
        cdef int s
        with nogil:
            for s in range(self.pipe.n_slots):
                # acquire: pairs with the task's seq_cst store of IDLE
                while tio_atomic_load_u64_acquire(&self.pipe.slots[s].state) != SLOT_IDLE:
                    tio_cpu_relax()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        cdef int s
        if self.pipe != NULL:
            if self.pipe.slots != NULL:
                # a task may still point at its slot: never free under it
                with nogil:
                    for s in range(self.pipe.n_slots):
                        while tio_atomic_load_u64_acquire(&self.pipe.slots[s].state) != SLOT_IDLE:
                            tio_cpu_relax()
                free(self.pipe.slots)
            free(self.pipe.touched)
            free(self.pipe.is_touched)
            free(self.pipe.cycle_stamp)
            free(self.pipe)
            self.pipe = NULL


# ---- benchmark helpers (tallyio/bench/_mempool.py) ---------------------------------------

def bench_tx_path(PoolTable table, list txs, list routers, out_ns, analyzer_config=None):
    """filter -> decode -> analyze each transaction once on this thread without the GIL,
    as a worker would, timing each with the monotonic clock into out_ns[i] (uint64).
    A fresh filter (so no duplicate) and a 65,536-place opportunity queue; returns the
    opportunities found.  The pool table is only read."""
    cdef uint64_t[::1] ns = out_ns
    cdef Py_ssize_t n = len(txs), i
    cdef tio_pending *recs = <tio_pending *>calloc(n if n else 1, sizeof(tio_pending))
    cdef pipe_slot *slot = <pipe_slot *>calloc(1, sizeof(pipe_slot))
    cdef tio_analyzer_cfg cfg
    cdef tio_analyze_ctx ctx
    cdef uint32_t target
    cdef uint64_t t0
    cdef TxFilter filt = TxFilter(FilterConfig(check_nonces=False), routers_v2=routers)
    cdef PendingRing scratch = PendingRing(2)
    cdef OpportunityQueue queue = OpportunityQueue(1 << 16)
    if recs == NULL or slot == NULL:
        free(recs)
        free(slot)
        raise MemoryError("bench_tx_path: out of memory")
    if ns.shape[0] < n:
        raise ValueError(f"out_ns has {ns.shape[0]} places for {n} transactions")
    try:
        for i in range(n):
            pending_fill(scratch.ring, txs[i], &recs[i])
        fill_cfg(analyzer_config if analyzer_config is not None else AnalyzerConfig(), &cfg)
        ctx.table = &table.t
        ctx.cfg = &cfg
        ctx.out = queue.ring
        ctx.base_fee = 10 * 10**9
        ctx.block_number = 1
        with nogil:
            for i in range(n):
                t0 = tio_now_ns()
                if tio_filter_check(&filt.f, &recs[i], &target) == FILTER_PASS:
                    if tio_decode_call(recs[i].input, recs[i].input_len, &slot.call,
                                       &slot.dstats) == TIO_DECODE_OK and slot.call.n_swaps:
                        tio_analyze_call(&ctx, &recs[i], target & 0xFFFF, &slot.call, &slot.astats)
                ns[i] = tio_now_ns() - t0
        return queue.stats()["received"]
    finally:
        free(recs)
        free(slot)


def bench_filter_reject(Pipeline pipe, list txs, uint64_t rounds):
    """ns per transaction of the filter's first check (the target lookup) over the `to`
    of each transaction, `rounds` times, in a nogil loop (what an irrelevant transaction
    costs once its fields are in C)."""
    cdef Py_ssize_t n = len(txs), i
    cdef uint8_t *tos = <uint8_t *>calloc(n * 20 + 1, 1)
    cdef uint64_t t0, _round, passed = 0
    if tos == NULL:
        raise MemoryError
    try:
        for i in range(n):
            memcpy(&tos[20 * i], PyBytes_AS_STRING(txs[i].to), 20)
        with nogil:
            t0 = tio_now_ns()
            for _round in range(rounds):
                for i in range(n):
                    passed += tio_filter_target(&pipe.filter.f, &tos[20 * i]) == FILTER_PASS
            t0 = tio_now_ns() - t0
        return t0 / <double>(n * rounds), passed
    finally:
        free(tos)
