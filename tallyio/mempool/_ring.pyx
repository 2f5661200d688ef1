# cython: language_level=3
# Owns: the drop-oldest record ring (protocol in _ring.pxd) and PendingRing, its Python face
# for pending transactions.  Touches: tallyio._ext.mpmc / pool C APIs, tallyio.eth.types.
"""The pending-transaction ring: bounded, lock-free, drop-oldest, counted.

The watcher thread pushes each pending transaction's raw fields into a fixed-size
record; the pipeline's workers pop records in batches without the GIL.  When the ring
is full the OLDEST record is dropped (a pending transaction's value decays) and
counted; nothing is dropped silently, and

    received == processed + dropped + in_flight

holds whenever no push or pop is half done.

    >>> from tallyio.eth.types import PendingTx
    >>> ring = PendingRing(capacity=2)
    >>> def tx(n):
    ...     return PendingTx(hash=bytes([n]) * 32, sender=b"\\x01" * 20, to=b"\\x02" * 20,
    ...                      nonce=n, value=0, gas=21000, max_fee_per_gas=1,
    ...                      max_priority_fee_per_gas=1, input=b"", tx_type=2, received_ns=n)
    >>> [ring.push(tx(n)) for n in range(3)]
    [True, True, True]
    >>> ring.pop().nonce, ring.pop().nonce, ring.pop()
    (1, 2, None)
    >>> s = ring.stats(); (s["received"], s["processed"], s["dropped_evicted"], s["in_flight"])
    (3, 2, 1, 0)
"""
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize


from tallyio._ext.common cimport (
    TIO_OK, TIO_FULL, TIO_CACHE_LINE,
    tio_atomic_init_u64, tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
    tio_atomic_store_u64_release, tio_atomic_fetch_add_u64_relaxed,
    tio_atomic_fetch_add_u64_acqrel, tio_aligned_calloc, tio_aligned_free, tio_is_pow2,
    tio_next_pow2, tio_cpu_relax,
)
from tallyio._ext.mpmc cimport (tio_mpmc_new, tio_mpmc_free, tio_mpmc_push,
                                tio_mpmc_pop, tio_mpmc_pop_many, tio_mpmc_size)
from tallyio._ext.pool cimport (tio_pool_new, tio_pool_free_all,
                                tio_pool_alloc_index, tio_pool_free_index,
                                tio_pool_block_ptr, tio_pool_in_use)
from tallyio.mempool._u256py cimport int_to_u256, u256_to_int, copy_address

from tallyio.eth.types import PendingTx


__all__ = ["PendingRing", "MAX_INLINE_INPUT"]

MAX_INLINE_INPUT = TIO_PENDING_INLINE
"""Calldata bytes a pending record holds; a longer call is rejected and counted."""

cdef uint64_t POP_BATCH = 64


# ---- the generic drop-oldest ring ----------------------------------------------------

cdef tio_dropring *tio_dropring_new(uint64_t capacity_pow2, uint64_t record_size) noexcept nogil:
    """A ring of `capacity_pow2` queued records of `record_size` bytes, or NULL.

    The pool has twice as many blocks as the ring has places, so consumers may hold up
    to `capacity` records between pop and release before a producer is refused a block
    (DROP_NO_BLOCK).  Not shared yet: plain initialisation is enough."""
    cdef tio_dropring *r
    if not tio_is_pow2(capacity_pow2) or capacity_pow2 < 2 or capacity_pow2 > (1 << 24):
        return NULL
    r = <tio_dropring *>tio_aligned_calloc(TIO_CACHE_LINE, sizeof(tio_dropring))
    if r == NULL:
        return NULL
    r.order = tio_mpmc_new(capacity_pow2, 0)
    r.blocks = tio_pool_new(record_size, 2 * capacity_pow2, 64)
    if r.order == NULL or r.blocks == NULL:
        tio_dropring_free(r)
        return NULL
    r.capacity = capacity_pow2
    r.record_size = record_size
    tio_atomic_init_u64(&r.received.value, 0)
    tio_atomic_init_u64(&r.processed.value, 0)
    tio_atomic_init_u64(&r.closed.value, 0)
    for k in range(DROP_REASONS):
        tio_atomic_init_u64(&r.drops[k].value, 0)
    return r


cdef void tio_dropring_free(tio_dropring *r) noexcept nogil:
    """Free the ring (no thread may use it any more; queued records are discarded)."""
    if r == NULL:
        return
    if r.order != NULL:
        tio_mpmc_free(r.order)
    if r.blocks != NULL:
        tio_pool_free_all(r.blocks)
    tio_aligned_free(r)


cdef inline void count(tio_dropring_counter *c, uint64_t n) noexcept nogil:
    # relaxed: a statistic; the conservation check reads it after the threads joined
    tio_atomic_fetch_add_u64_relaxed(&c.value, n)


cdef inline bint evict_oldest(tio_dropring *r) noexcept nogil:
    """Pop the oldest queued record and free it, counted DROP_EVICTED.  False when
    nothing is queued (every busy block is held by a consumer)."""
    cdef uint64_t victim
    if tio_mpmc_pop(r.order, &victim) != TIO_OK:
        return False
    tio_pool_free_index(r.blocks, <uint32_t>victim)
    count(&r.drops[DROP_EVICTED], 1)
    return True


cdef int tio_dropring_begin(tio_dropring *r, uint32_t *idx) noexcept nogil:
    """Count one record received and lend a free block to fill: TIO_OK, or TIO_FULL
    when every block is held by a consumer (counted DROP_NO_BLOCK; nothing to commit)."""
    count(&r.received, 1)
    while tio_pool_alloc_index(r.blocks, idx) != TIO_OK:
        if not evict_oldest(r):
            count(&r.drops[DROP_NO_BLOCK], 1)
            return TIO_FULL
    return TIO_OK


cdef void tio_dropring_commit(tio_dropring *r, uint32_t idx) noexcept nogil:
    """Publish a filled block (from tio_dropring_begin), evicting the oldest records
    while the index ring is full.  Always succeeds: the evictions make room, and the
    block count (2 x capacity) means a full index ring always has something to evict."""
    # release (inside tio_mpmc_push): the record's bytes are visible to the consumer
    # that pops idx
    while tio_mpmc_push(r.order, idx) == TIO_FULL:
        if not evict_oldest(r):
            tio_cpu_relax()   # a consumer claimed the head and has not released the slot yet


cdef void tio_dropring_reject(tio_dropring *r, uint32_t reason) noexcept nogil:
    """Count one record received and dropped at once for `reason` (nothing was queued)."""
    count(&r.received, 1)
    count(&r.drops[reason], 1)


cdef void *tio_dropring_record(tio_dropring *r, uint32_t idx) noexcept nogil:
    return tio_pool_block_ptr(r.blocks, idx)


cdef uint64_t tio_dropring_pop_many(tio_dropring *r, uint32_t *idxs, uint64_t n) noexcept nogil:
    """Take up to n (<= 64) oldest records; the caller holds them until release."""
    cdef uint64_t raw[64]
    cdef uint64_t k
    if n > 64:
        n = 64
    # acquire (inside tio_mpmc_pop_many): pairs with the producer's publish
    k = tio_mpmc_pop_many(r.order, raw, n)
    for i in range(k):
        idxs[i] = <uint32_t>raw[i]
    return k


cdef void tio_dropring_release_many(tio_dropring *r, const uint32_t *idxs, uint64_t n) noexcept nogil:
    """Give back n records the caller popped and has finished reading."""
    for i in range(n):
        tio_pool_free_index(r.blocks, idxs[i])
    # acq_rel: the release half orders every read of these records before the count,
    # for a thread that acquire-loads `processed` (tio_dropring_processed_acquire)
    if n:
        tio_atomic_fetch_add_u64_acqrel(&r.processed.value, n)


cdef uint64_t tio_dropring_dropped(tio_dropring *r) noexcept nogil:
    cdef uint64_t total = 0
    for k in range(DROP_REASONS):
        # relaxed: a statistic
        total += tio_atomic_load_u64_relaxed(&r.drops[k].value)
    return total


cdef uint64_t tio_dropring_in_flight(tio_dropring *r) noexcept nogil:
    return tio_pool_in_use(r.blocks)


cdef uint64_t tio_dropring_queued(tio_dropring *r) noexcept nogil:
    return tio_mpmc_size(r.order)


cdef uint64_t tio_dropring_received(tio_dropring *r) noexcept nogil:
    # relaxed: a statistic (the producer's own counter when read by the producer)
    return tio_atomic_load_u64_relaxed(&r.received.value)


cdef uint64_t tio_dropring_processed_acquire(tio_dropring *r) noexcept nogil:
    # acquire: pairs with the release half of the add in tio_dropring_release_many
    return tio_atomic_load_u64_acquire(&r.processed.value)


cdef enum:
    # consistent-snapshot attempts in dropring_stats before it settles for the last read
    STATS_SNAPSHOT_ATTEMPTS = 1000


cdef dict dropring_stats(tio_dropring *r):
    """Every counter of a dropring as a dict (the Python face of its statistics).

    The counters move independently while producers push (received, then its block in
    use) and evict (a drop, then the oldest block freed) and the consumer takes
    (processed, its block freed), so one read of each can catch an operation half done
    and break ``received == processed + dropped + in_flight`` by one.  The read is
    repeated until two passes agree and the equation holds (a snapshot at a point no
    operation was half done), at most STATS_SNAPSHOT_ATTEMPTS times; a ring that
    really lost or leaked a record never balances and shows it in the last read."""
    cdef uint64_t received = 0, processed = 0, in_flight = 0, queued = 0, dropped = 0
    cdef uint64_t drops[4]
    cdef uint64_t again
    cdef int _attempt, k
    with nogil:
        for _attempt in range(STATS_SNAPSHOT_ATTEMPTS):
            # relaxed: statistics; the agreement check below stands in for ordering
            received = tio_atomic_load_u64_relaxed(&r.received.value)
            processed = tio_atomic_load_u64_relaxed(&r.processed.value)
            dropped = 0
            for k in range(4):
                drops[k] = tio_atomic_load_u64_relaxed(&r.drops[k].value)
                dropped += drops[k]
            in_flight = tio_pool_in_use(r.blocks)
            queued = tio_mpmc_size(r.order)
            again = tio_atomic_load_u64_relaxed(&r.received.value)
            if (again == received and received == processed + dropped + in_flight
                    and tio_atomic_load_u64_relaxed(&r.processed.value) == processed):
                break
            tio_cpu_relax()
    return {
        "received": received,
        "processed": processed,
        "dropped_evicted": drops[DROP_EVICTED],
        "dropped_no_block": drops[DROP_NO_BLOCK],
        "dropped_oversize": drops[DROP_OVERSIZE],
        "dropped_invalid": drops[DROP_INVALID],
        "in_flight": in_flight,
        "queued": queued,
        "capacity": r.capacity,
        "dropped": dropped,
    }


cdef uint64_t check_ring_capacity(object capacity, str what) except 0:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"{what}: capacity must be an int, got {type(capacity).__name__}")
    if capacity < 2 or capacity > (1 << 24):
        raise ValueError(f"{what}: capacity must be in 2 .. 2**24, got {capacity}")
    return tio_next_pow2(<uint64_t>capacity)


# ---- pending transactions ------------------------------------------------------------

cdef class PendingRing:
    """The bounded drop-oldest ring of pending transactions (capacity rounded up to a
    power of two).  ``push`` from the watcher thread, ``pop`` (Python) or the nogil C
    API (``tio_dropring_pop_many``) from consumers; ``stats()`` has every counter."""

    def __cinit__(self, capacity=4096):
        cdef uint64_t cap = check_ring_capacity(capacity, "PendingRing")
        self.ring = tio_dropring_new(cap, sizeof(tio_pending))
        if self.ring == NULL:
            raise MemoryError(f"PendingRing(capacity={cap}): out of memory")
        self.next_seq = 0

    def __dealloc__(self):
        tio_dropring_free(self.ring)
        self.ring = NULL

    @property
    def capacity(self) -> int:
        """Records queued at most before the oldest is dropped."""
        return self.ring.capacity

    def __len__(self):
        return tio_dropring_queued(self.ring)

    def __repr__(self):
        return f"PendingRing(capacity={self.ring.capacity}, queued={len(self)})"

    def push(self, tx) -> bool:
        """Queue a :class:`~tallyio.eth.PendingTx`; True when queued (possibly by
        evicting the oldest, counted), False when refused and counted (calldata longer
        than ``MAX_INLINE_INPUT``, or every slot held by consumers).  A field of the
        wrong type or range raises TypeError/ValueError naming it (counted invalid)."""
        cdef tio_pending rec
        if pending_fill(self.ring, tx, &rec) == 0:
            return False
        rec.seq = self.next_seq
        self.next_seq += 1
        return pending_push(self.ring, &rec) == 1

    def pop(self):
        """The oldest queued transaction as a PendingTx, or None when empty."""
        cdef uint32_t idx
        cdef tio_pending *p
        if tio_dropring_pop_many(self.ring, &idx, 1) == 0:
            return None
        p = <tio_pending *>tio_dropring_record(self.ring, idx)
        try:
            return pending_to_tx(p)
        finally:
            tio_dropring_release_many(self.ring, &idx, 1)

    def stats(self) -> dict:
        """Every counter: received, processed, dropped (and by reason: evicted,
        no_block, oversize, invalid), in_flight, queued, capacity."""
        return dropring_stats(self.ring)


cdef int pending_fill(tio_dropring *r, object tx, tio_pending *rec) except -1:
    cdef object data = tx.input
    cdef Py_ssize_t n
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray)):
            tio_dropring_reject(r, DROP_INVALID)
            raise TypeError(f"PendingTx.input must be bytes, got {type(data).__name__}")
        data = bytes(data)
    n = PyBytes_GET_SIZE(data)
    if n > TIO_PENDING_INLINE:
        tio_dropring_reject(r, DROP_OVERSIZE)
        return 0
    # validate every field into the caller's stack copy first: a bad field is refused
    # (counted) before a block is taken, so nothing is half queued
    try:
        copy_address(tx.hash, rec.hash, 32, "PendingTx.hash")
        copy_address(tx.sender, rec.sender, 20, "PendingTx.sender")
        to = tx.to
        if to is None:
            rec.has_to = 0
            memset(rec.to, 0, 20)
        else:
            rec.has_to = 1
            copy_address(to, rec.to, 20, "PendingTx.to")
        rec.nonce = tx.nonce
        rec.gas = tx.gas
        rec.tx_type = tx.tx_type
        rec.received_ns = tx.received_ns
        int_to_u256(tx.value, &rec.value, "PendingTx.value")
        int_to_u256(tx.max_fee_per_gas, &rec.max_fee_per_gas, "PendingTx.max_fee_per_gas")
        int_to_u256(tx.max_priority_fee_per_gas, &rec.max_priority_fee_per_gas,
                    "PendingTx.max_priority_fee_per_gas")
    except (TypeError, ValueError, OverflowError) as exc:
        tio_dropring_reject(r, DROP_INVALID)
        if isinstance(exc, OverflowError):
            raise ValueError(f"PendingTx field out of range: {exc}") from None
        raise
    rec.input_len = <uint32_t>n
    rec.target = 0
    rec.seq = 0
    memcpy(rec.input, PyBytes_AS_STRING(data), <size_t>n)
    return 1


cdef int pending_push(tio_dropring *r, const tio_pending *rec) noexcept nogil:
    cdef uint32_t idx
    if tio_dropring_begin(r, &idx) != TIO_OK:
        return 0
    cdef tio_pending *slot = <tio_pending *>tio_dropring_record(r, idx)
    # the header (everything before `input`), then only the calldata's own bytes
    memcpy(slot, rec, <size_t>(<char *>&rec.input[0] - <char *>rec))
    memcpy(slot.input, rec.input, rec.input_len)
    tio_dropring_commit(r, idx)
    return 1


cdef object pending_to_tx(const tio_pending *p):
    return PendingTx(
        hash=PyBytes_FromStringAndSize(<char *>p.hash, 32),
        sender=PyBytes_FromStringAndSize(<char *>p.sender, 20),
        to=PyBytes_FromStringAndSize(<char *>p.to, 20) if p.has_to else None,
        nonce=p.nonce, value=u256_to_int(&p.value), gas=p.gas,
        max_fee_per_gas=u256_to_int(&p.max_fee_per_gas),
        max_priority_fee_per_gas=u256_to_int(&p.max_priority_fee_per_gas),
        input=PyBytes_FromStringAndSize(<char *>p.input, p.input_len),
        tx_type=p.tx_type, received_ns=p.received_ns)


# ---- nogil stress helpers (tests and the benchmark) ------------------------------------

def stress_produce(PendingRing ring, uint64_t first, uint64_t n, uint64_t[::1] dropped_seen):
    """Push records with seq first .. first+n-1 from a nogil loop; count in
    dropped_seen[seq] every record this producer evicted.  Returns n."""
    cdef tio_dropring *r = ring.ring
    cdef uint32_t idx
    cdef uint64_t victim
    cdef tio_pending *p
    cdef uint64_t seq
    with nogil:
        for seq in range(first, first + n):
            count(&r.received, 1)
            while tio_pool_alloc_index(r.blocks, &idx) != TIO_OK:
                if tio_mpmc_pop(r.order, &victim) == TIO_OK:
                    p = <tio_pending *>tio_pool_block_ptr(r.blocks, <uint32_t>victim)
                    dropped_seen[p.seq] += 1
                    tio_pool_free_index(r.blocks, <uint32_t>victim)
                    count(&r.drops[DROP_EVICTED], 1)
                else:
                    tio_cpu_relax()
            p = <tio_pending *>tio_pool_block_ptr(r.blocks, idx)
            p.seq = seq
            p.nonce = seq * 3
            p.input_len = 8
            memcpy(p.input, &seq, 8)
            while tio_mpmc_push(r.order, idx) == TIO_FULL:
                if tio_mpmc_pop(r.order, &victim) == TIO_OK:
                    p = <tio_pending *>tio_pool_block_ptr(r.blocks, <uint32_t>victim)
                    dropped_seen[p.seq] += 1
                    tio_pool_free_index(r.blocks, <uint32_t>victim)
                    count(&r.drops[DROP_EVICTED], 1)
                else:
                    tio_cpu_relax()
    return n


def close(PendingRing ring):
    """Say no more records will come (consumers in stress_consume stop when empty)."""
    # release: every push before close() is visible to a consumer that sees closed
    tio_atomic_store_u64_release(&ring.ring.closed.value, 1)


def stress_consume(PendingRing ring, uint64_t[::1] seen):
    """Pop batches from a nogil loop until the ring is closed and empty; count each
    record's seq in seen[seq] and check its payload.  Returns (records, bad payloads)."""
    cdef tio_dropring *r = ring.ring
    cdef uint32_t idxs[64]
    cdef uint64_t k, got = 0, bad = 0, seq
    cdef tio_pending *p
    with nogil:
        while True:
            k = tio_dropring_pop_many(r, idxs, 32)
            if k == 0:
                # acquire: pairs with the release store in close()
                if tio_atomic_load_u64_acquire(&r.closed.value):
                    k = tio_dropring_pop_many(r, idxs, 32)
                    if k == 0:
                        break
                else:
                    tio_cpu_relax()
                    continue
            for i in range(k):
                p = <tio_pending *>tio_dropring_record(r, idxs[i])
                memcpy(&seq, p.input, 8)
                if seq != p.seq or p.nonce != seq * 3 or p.input_len != 8:
                    bad += 1
                seen[p.seq] += 1
            got += k
            tio_dropring_release_many(r, idxs, k)
    return got, bad
