# cython: language_level=3
# Owns: the C face of Pipeline (tallyio/mempool/_pipeline.pyx): its state, and the raw-record
# entry points the native replay feeder (_feeder.pyx) drives from its nogil loop.
# Touches: the structs of _ring, _filter, _pools, _analyzer, _opportunity and the scheduler.
"""The pipeline's state and its raw-record C API (for tallyio/mempool/_feeder.pyx).

The feeder's thread is the pipeline's watcher (ONE thread feeds: ``Pipeline.feed`` or
these, never two at once).  ``pipe_feed_raw`` takes a payload in recording.py's layout;
a pending transaction is queued without waking a worker: the caller wakes them once per
batch with ``pipe_kick`` (the wake-up protocol is the one of the module doc), or, with time
to spare before its next record, analyzes what it queued itself with ``pipe_drain_inline``
(slot 0 taken by the same CAS, no wake-up at all); it ends a source with ``pipe_finish``."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t

from tallyio._ext.common cimport tio_atomic_u64, TIO_CACHE_LINE
from tallyio._ext.scheduler cimport tio_sched
from tallyio._ext.swap cimport tio_decoded_call, tio_decode_stats
from tallyio.mempool._ring cimport tio_dropring, PendingRing
from tallyio.mempool._filter cimport TxFilter, tio_filter
from tallyio.mempool._pools cimport PoolTable, tio_pooltable
from tallyio.mempool._analyzer cimport tio_analyze_ctx, tio_analyzer_cfg, tio_analyzer_stats, tio_arb_stats
from tallyio.mempool._opportunity cimport OpportunityQueue, tio_opp_wake

cdef enum:
    SLOT_IDLE = 0
    SLOT_RUNNING = 1
    BATCH = 32
    MAX_SLOTS = 64

cdef enum:
    # record types (tallyio.state.recordlog.RecordType) the native path applies itself
    REC_PENDING_TX = 1
    REC_BLOCK_HEADER = 2
    REC_SYNC_EVENT = 3
    REC_POOL_SNAPSHOT = 4

cdef enum:
    # pipe_feed_raw's results
    PIPE_FED = 0            # handled: applied, or a transaction the filter dropped
    PIPE_ACCEPTED = 1       # a pending transaction queued for the workers (not woken yet)
    PIPE_BAD = 2            # the payload does not parse (counted in stats()["pipeline"]["bad_records"])
    PIPE_NOT_NATIVE = 3     # not a type the native path takes: decode it in Python, then feed()


cdef struct pipe_slot:
    tio_atomic_u64 state                  # SLOT_IDLE / SLOT_RUNNING (see the module doc)
    void *pipe                            # pipe_state *
    uint64_t batches                      # this slot's counters: written by the task that
    uint64_t records                      # holds the slot, read by stats() (approximate
    tio_decode_stats dstats               # while tasks run, exact after drain())
    tio_analyzer_stats astats
    tio_decoded_call call                 # scratch: one per slot, never per transaction
    char _pad[TIO_CACHE_LINE]


cdef struct pipe_state:
    tio_dropring *ring
    tio_analyze_ctx ctx
    tio_opp_wake *wake           # the opportunity queue's consumer wake-up (the queue owns it)
    tio_sched *sched
    pipe_slot *slots
    int n_slots
    tio_atomic_u64 submit_failures
    # the watcher's own state (one thread: feed / the feeder)
    tio_filter *filter
    tio_pooltable *table
    uint64_t next_seq
    bint barrier_needed
    uint64_t blocks
    uint64_t syncs
    uint64_t syncs_refused       # a recorded Sync with a reserve >= 2**112
    uint64_t v3_events           # V3PoolEvent records fed (known pool or not: see pools' stats)
    uint64_t bad_records         # recorded payloads that do not parse
    uint64_t kick_at             # feed: wake a worker once this many records wait (1 live)
    bint inline_feed             # feed (live, kick_at 1): analyze on the caller's thread when slot 0 is idle
    uint64_t inline_feeds        # feed calls that analyzed inline (no worker woken)
    # standing arbitrage (the watcher's): pools applied Syncs changed since the last scan
    bint arbitrage               # AnalyzerConfig.standing_arbitrage
    uint64_t max_arb_cycles
    int32_t *touched             # [n_pools], in the order of their first Sync
    uint8_t *is_touched          # [n_pools]
    uint64_t n_touched
    uint64_t touched_block       # the block the touched state is valid for: max(Sync block + 1)
    uint64_t *cycle_stamp        # [n_cycles]: block + 1 a cycle was last screened for
    tio_analyzer_stats arb_st
    tio_arb_stats arb


cdef int pipe_feed_raw(pipe_state *pipe, uint16_t rtype, const uint8_t *payload,
                       uint64_t length) noexcept nogil
cdef void pipe_kick(pipe_state *pipe) noexcept nogil
cdef bint pipe_drain_inline(pipe_state *pipe) noexcept nogil
cdef void pipe_finish(pipe_state *pipe) noexcept nogil


cdef class Pipeline:
    cdef pipe_state *pipe
    cdef readonly PoolTable table
    cdef readonly TxFilter filter
    cdef readonly PendingRing ring
    cdef readonly OpportunityQueue opportunities
    cdef readonly object scheduler
    cdef readonly object analyzer_config
    cdef tio_analyzer_cfg cfg
    cdef bint own_scheduler
    cdef readonly uint64_t unknown_records
    cdef object closed
