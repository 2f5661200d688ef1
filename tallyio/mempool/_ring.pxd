# cython: language_level=3
# Owns: the drop-oldest record ring (tio_dropring) and the pending-transaction record
# (tio_pending) the watcher writes and the pipeline's workers read without the GIL.
# Touches: tallyio._ext.mpmc (the index ring) and tallyio._ext.pool (the record slots), through
# their public C APIs only.  The opportunity queue (_opportunity.pyx) is a second dropring.
"""A bounded, lock-free ring of fixed-size records that drops its OLDEST record when full.

Layout: records live in the blocks of a ``tio_pool`` (fixed size, no allocation on
the hot path); the order is a Vyukov MPMC ring (``tio_mpmc``) of block indices.

Producer (any thread, usually the watcher)::

    tio_dropring_begin(r, &idx)    # a free record; evicts the oldest queued one if needed
    ... fill tio_dropring_record(r, idx) ...
    tio_dropring_commit(r, idx)    # publish it; evicts the oldest if the index ring is full

Consumer (any thread, usually a scheduler worker)::

    k = tio_dropring_pop_many(r, idxs, n)      # take up to n oldest records
    ... read tio_dropring_record(r, idxs[i]) ...
    tio_dropring_release_many(r, idxs, k)      # give the blocks back; processed += k

Why eviction is safe: an evicting producer pops the oldest index exactly as a consumer
would (one CAS on the ring's dequeue position), so a record is owned by exactly one of
{the ring, one consumer, the evicting producer}; the evictor frees it at once.

Counters (each a relaxed atomic on its own cache line; exact once nothing is in flight):
    received  = records offered (begin called, including ones then rejected)
    processed = records released by consumers
    dropped   = evicted oldest + rejected (no block: every block held by consumers) +
                rejected by the caller (``tio_dropring_reject``, e.g. oversized input)
    in_flight = blocks in use (queued or held by a consumer)
    received == processed + dropped + in_flight   (the conservation law the tests check)

``processed`` is incremented with release after the consumer finished reading, so a
thread that acquire-loads it and sees ``processed == received - dropped`` knows every
consumer is done with every record (the pipeline's quiescence barrier before it
mutates the pool table at a block boundary).
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from tallyio._ext.common cimport tio_atomic_u64, TIO_CACHE_LINE
from tallyio._ext.mpmc cimport tio_mpmc
from tallyio._ext.pool cimport tio_pool
from tallyio._ext.u256 cimport tio_u256

cdef enum:
    # calldata bytes a pending record holds inline; longer calldata is rejected, counted
    # (DROP_OVERSIZE).  Real router swaps are 200-1,500 bytes; 99%+ of mempool calls fit.
    TIO_PENDING_INLINE = 1920

cdef enum:
    # why a record was dropped (index into tio_dropring.drops)
    DROP_EVICTED = 0        # the oldest queued record, evicted to make room
    DROP_NO_BLOCK = 1       # every block was held by consumers: the new record was refused
    DROP_OVERSIZE = 2       # the caller rejected it: calldata longer than the inline buffer
    DROP_INVALID = 3        # the caller rejected it: a field out of range
    DROP_REASONS = 4


cdef struct tio_dropring_counter:
    tio_atomic_u64 value
    char _pad[TIO_CACHE_LINE - 8]


cdef struct tio_dropring:
    tio_mpmc *order                 # block indices, oldest first
    tio_pool *blocks                # the records
    uint64_t capacity               # queued records at most (the index ring's size)
    uint64_t record_size
    char _pad0[TIO_CACHE_LINE - 32]
    tio_dropring_counter received   # producers only
    tio_dropring_counter processed  # consumers only (release: see the module doc)
    tio_dropring_counter drops[4]   # by reason; producers (evicting or rejecting)
    tio_dropring_counter closed     # 1 once a producer says no more records will come


cdef struct tio_pending:
    uint64_t seq                    # arrival number given by the producer (0, 1, 2, ...)
    uint64_t received_ns            # when the source got the bytes (monotonic ns)
    uint64_t nonce
    uint64_t gas
    tio_u256 value
    tio_u256 max_fee_per_gas
    tio_u256 max_priority_fee_per_gas
    uint8_t hash[32]
    uint8_t sender[20]
    uint8_t to[20]
    uint8_t has_to                  # 0: contract creation
    uint8_t tx_type
    uint8_t _pad[2]
    uint32_t input_len
    uint32_t target                 # the filter's verdict value for `to` (kind << 24 | exchange)
    uint8_t input[TIO_PENDING_INLINE]


# ---- setup / teardown (_ring.pyx) ------------------------------------------------------
cdef tio_dropring *tio_dropring_new(uint64_t capacity_pow2, uint64_t record_size) noexcept nogil
cdef void tio_dropring_free(tio_dropring *r) noexcept nogil

# ---- hot path (_ring.pyx; noexcept nogil, status codes) ----------------------------------
cdef int tio_dropring_begin(tio_dropring *r, uint32_t *idx) noexcept nogil
cdef void tio_dropring_commit(tio_dropring *r, uint32_t idx) noexcept nogil
cdef void tio_dropring_reject(tio_dropring *r, uint32_t reason) noexcept nogil
cdef void *tio_dropring_record(tio_dropring *r, uint32_t idx) noexcept nogil
cdef uint64_t tio_dropring_pop_many(tio_dropring *r, uint32_t *idxs, uint64_t n) noexcept nogil
cdef void tio_dropring_release_many(tio_dropring *r, const uint32_t *idxs, uint64_t n) noexcept nogil
cdef uint64_t tio_dropring_dropped(tio_dropring *r) noexcept nogil
cdef uint64_t tio_dropring_in_flight(tio_dropring *r) noexcept nogil
cdef uint64_t tio_dropring_queued(tio_dropring *r) noexcept nogil
cdef uint64_t tio_dropring_received(tio_dropring *r) noexcept nogil
cdef uint64_t tio_dropring_processed_acquire(tio_dropring *r) noexcept nogil

# ---- Python edge -------------------------------------------------------------------------
cdef dict dropring_stats(tio_dropring *r)
cdef uint64_t check_ring_capacity(object capacity, str what) except 0


# a PendingTx -> a pending record on the caller's stack (the input copied inline):
# 1 filled, 0 refused and counted (calldata longer than TIO_PENDING_INLINE); a field of the
# wrong type or range raises TypeError/ValueError naming it (counted DROP_INVALID)
cdef int pending_fill(tio_dropring *r, object tx, tio_pending *rec) except -1
# publish a filled record (begin, copy header + input, commit): 1, or 0 when refused (counted)
cdef int pending_push(tio_dropring *r, const tio_pending *rec) noexcept nogil


cdef class PendingRing:
    cdef tio_dropring *ring         # owned
    cdef uint64_t next_seq          # producer-side arrival numbers (Python pushes)
