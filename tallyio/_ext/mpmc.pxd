# cython: language_level=3
"""Bounded multi-producer multi-consumer queue (Dmitry Vyukov's ring).

Public C API: other Cython code may ``cimport`` this file and drive the ring
from nogil code.  The full protocol write-up is in tallyio/_ext/README.md
(section "MPMC queue").

Layout
------
A power-of-two array of slots.  Each slot is a sequence number (atomic) next
to a plain uint64 value.  ``enqueue_pos`` and ``dequeue_pos`` are free-running
uint64 positions, each alone on its own 128-byte line; a position ``p`` uses
slot ``p & mask``.  Positions wrap at 2**64; every comparison is a signed
difference ``<int64_t>(a - b)``, which stays correct across the wrap because
the two sides are never more than ``capacity`` apart.

Slot states for position ``p`` (``capacity`` = C)::

    seq == p        free: the producer that claims p may write it
    seq == p + 1    full: the consumer that claims p may read it
    seq == p + C    free again, for position p + C (the next lap)

Capacity 1 is rounded up to 2: with C == 1 "full for p" (p + 1) and "free for
p + 1" (p + 1) would be the same number.  ``tio_mpmc_new(1, ...)`` therefore
builds a 2-slot ring and ``capacity`` reports 2.

Ownership of PyObject references (dtype=object queues)
------------------------------------------------------
The ring itself only moves uint64 values and never touches a refcount.  The
Python wrapper INCREFs an object (``obj_to_item``) before ``tio_mpmc_push``;
from a successful push until the matching pop, that reference belongs to the
slot.  Whoever pops the item owns the reference and must either hand it to
Python (``item_to_obj``) or DECREF it with the GIL held.  A push that fails
(TIO_FULL) leaves the reference with the caller, who must DECREF it.  Items
still queued when the MpmcQueue is deallocated are DECREF'd there, once.
nogil code that pops from an object queue must take the GIL before it does
anything with the object.
"""
from libc.stdint cimport uint64_t, int64_t
from tallyio._ext.common cimport (
    tio_atomic_u64, tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
    tio_atomic_store_u64_release, tio_atomic_cas_weak_u64_relaxed,
    TIO_OK, TIO_EMPTY, TIO_FULL, TIO_LIKELY, TIO_CACHE_LINE, KIND_U64,
)

cdef enum:
    # Largest ring tio_mpmc_new accepts (the Python class enforces the same).
    TIO_MPMC_MAX_CAPACITY = 1 << 30


cdef struct tio_mpmc_slot:
    tio_atomic_u64 seq      # see the slot states above
    uint64_t value          # written only by the claiming producer, read only by the claiming consumer


cdef struct tio_mpmc:
    # Line 0: read-only after tio_mpmc_new, shared by every thread.
    tio_mpmc_slot *slots
    uint64_t mask           # capacity - 1
    uint64_t capacity
    char _pad0[TIO_CACHE_LINE - 24]
    # Line 1: producers' CAS target.
    tio_atomic_u64 enqueue_pos
    char _pad1[TIO_CACHE_LINE - 8]
    # Line 2: consumers' CAS target.
    tio_atomic_u64 dequeue_pos
    char _pad2[TIO_CACHE_LINE - 8]


# ---- setup / teardown (implemented in mpmc.pyx) ---------------------------
cdef tio_mpmc *tio_mpmc_new(uint64_t capacity_pow2, uint64_t start_pos) noexcept nogil
cdef void tio_mpmc_free(tio_mpmc *q) noexcept nogil


# ---- hot path ---------------------------------------------------------------
cdef inline uint64_t tio_mpmc_capacity(const tio_mpmc *q) noexcept nogil:
    return q.capacity


cdef inline int tio_mpmc_push(tio_mpmc *q, uint64_t item) noexcept nogil:
    """Append `item`.  TIO_OK, or TIO_FULL (nothing was written).

    Any thread may call it.  FULL means the slot for the current enqueue
    position has not been released by its consumer yet -- this includes a
    consumer that has claimed it but not finished reading."""
    cdef tio_mpmc_slot *slots = q.slots     # read-only fields: load once, not after
    cdef uint64_t mask = q.mask               # every acquire (a compiler barrier)
    cdef tio_mpmc_slot *slot
    cdef uint64_t seq, now
    cdef int64_t diff
    # relaxed: only a starting guess; the CAS below validates it
    cdef uint64_t pos = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
    while True:
        slot = &slots[pos & mask]
        # acquire: pairs with the consumer's release store seq = pos (it read
        # the previous lap's value before that store, so our write below
        # cannot overwrite a value still being read)
        seq = tio_atomic_load_u64_acquire(&slot.seq)
        diff = <int64_t>(seq - pos)
        if TIO_LIKELY(diff == 0):
            # relaxed: the CAS only decides who owns position `pos`; the data
            # is published and consumed through `seq`.  On failure `pos`
            # receives the current value and we try again from there.
            if tio_atomic_cas_weak_u64_relaxed(&q.enqueue_pos, &pos, pos + 1):
                break
        elif diff < 0:
            # The slot still holds the item of position pos - capacity: full,
            # unless another producer has moved on and our `pos` is stale.
            # relaxed: a fresh guess, validated like the first one
            now = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
            if now == pos:
                return TIO_FULL
            pos = now
        else:
            # Another producer claimed `pos` already; catch up.
            pos = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
    slot.value = item
    # release: publishes `value`; pairs with the acquire load of seq in
    # tio_mpmc_pop / tio_mpmc_pop_many
    tio_atomic_store_u64_release(&slot.seq, pos + 1)
    return TIO_OK


cdef inline int tio_mpmc_pop(tio_mpmc *q, uint64_t *out) noexcept nogil:
    """Take the oldest item into `*out`.  TIO_OK, or TIO_EMPTY (`*out` untouched).

    Any thread may call it.  EMPTY means the slot for the current dequeue
    position has not been published yet -- this includes a producer that
    has claimed it but not finished writing."""
    cdef tio_mpmc_slot *slots = q.slots     # read-only fields: load once, not after
    cdef uint64_t mask = q.mask               # every acquire (a compiler barrier)
    cdef tio_mpmc_slot *slot
    cdef uint64_t seq, now
    cdef int64_t diff
    # relaxed: only a starting guess; the CAS below validates it
    cdef uint64_t pos = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
    while True:
        slot = &slots[pos & mask]
        # acquire: pairs with the producer's release store seq = pos + 1, so
        # its write of `value` is visible to our read below
        seq = tio_atomic_load_u64_acquire(&slot.seq)
        diff = <int64_t>(seq - (pos + 1))
        if TIO_LIKELY(diff == 0):
            # relaxed: ownership only (see tio_mpmc_push)
            if tio_atomic_cas_weak_u64_relaxed(&q.dequeue_pos, &pos, pos + 1):
                break
        elif diff < 0:
            # Not published for this lap yet: empty, unless our `pos` is stale.
            # relaxed: a fresh guess, validated like the first one
            now = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
            if now == pos:
                return TIO_EMPTY
            pos = now
        else:
            # Another consumer took `pos` already; catch up.
            pos = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
    out[0] = slot.value
    # release: our read of `value` happens-before the next lap's producer
    # (its acquire load of seq in tio_mpmc_push) overwrites it
    tio_atomic_store_u64_release(&slot.seq, pos + mask + 1)
    return TIO_OK


cdef inline uint64_t tio_mpmc_push_many(tio_mpmc *q, const uint64_t *items, uint64_t n) noexcept nogil:
    """Append a prefix of items[0:n] with one CAS; return its length.

    Scans the slots from the enqueue position while each is free for its
    position (seq == pos + i), claims that run with ONE CAS of enqueue_pos
    from pos to pos + k, then writes and publishes the k slots in order.
    Returns 0 only when the ring is full at the enqueue position (or n == 0).
    May return less than would fit (the run stops at a slot not yet released
    or when a race moved the position); call again for the rest."""
    cdef tio_mpmc_slot *slots = q.slots     # read-only fields: load once
    cdef uint64_t mask = q.mask
    cdef uint64_t lap = q.capacity
    cdef uint64_t pos, seq, now, k, i, limit
    cdef int64_t diff = 0
    cdef tio_mpmc_slot *slot
    if n == 0:
        return 0
    limit = n if n < lap else lap
    # relaxed: only a starting guess; the CAS below validates it
    pos = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
    while True:
        k = 0
        while k < limit:
            # acquire: pairs with the consumer's release store seq = pos + k
            # (see tio_mpmc_push)
            seq = tio_atomic_load_u64_acquire(&slots[(pos + k) & mask].seq)
            diff = <int64_t>(seq - (pos + k))
            if diff != 0:
                break
            k += 1
        if k == 0:
            if diff < 0:
                # relaxed: is `pos` stale, or is the ring really full here?
                now = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
                if now == pos:
                    return 0
                pos = now
            else:
                pos = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
            continue
        # relaxed: ownership of positions pos .. pos+k-1 (see tio_mpmc_push);
        # success means nobody claimed any of them since we read `pos`, and
        # each slot's seq (== pos + i) cannot change until one is claimed.
        if tio_atomic_cas_weak_u64_relaxed(&q.enqueue_pos, &pos, pos + k):
            break
    for i in range(k):
        slot = &slots[(pos + i) & mask]
        slot.value = items[i]
        # release: publishes value i; pairs with the consumer's acquire load
        tio_atomic_store_u64_release(&slot.seq, pos + i + 1)
    return k


cdef inline uint64_t tio_mpmc_pop_many(tio_mpmc *q, uint64_t *out, uint64_t n) noexcept nogil:
    """Take up to n of the oldest items into out[0:k] with one CAS; return k.

    The mirror of tio_mpmc_push_many: scans while each slot is full for its
    position (seq == pos + i + 1), claims the run with ONE CAS of dequeue_pos,
    then reads and releases the slots.  Returns 0 only when the ring is empty
    at the dequeue position (or n == 0).  May return fewer than are queued."""
    cdef tio_mpmc_slot *slots = q.slots     # read-only fields: load once
    cdef uint64_t mask = q.mask
    cdef uint64_t lap = q.capacity
    cdef uint64_t pos, seq, now, k, i, limit
    cdef int64_t diff = 0
    cdef tio_mpmc_slot *slot
    if n == 0:
        return 0
    limit = n if n < lap else lap
    # relaxed: only a starting guess; the CAS below validates it
    pos = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
    while True:
        k = 0
        while k < limit:
            # acquire: pairs with the producer's release store seq = pos + k + 1,
            # making its value visible to the reads below
            seq = tio_atomic_load_u64_acquire(&slots[(pos + k) & mask].seq)
            diff = <int64_t>(seq - (pos + k + 1))
            if diff != 0:
                break
            k += 1
        if k == 0:
            if diff < 0:
                # relaxed: is `pos` stale, or is the ring really empty here?
                now = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
                if now == pos:
                    return 0
                pos = now
            else:
                pos = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
            continue
        # relaxed: ownership of positions pos .. pos+k-1 (see tio_mpmc_push_many)
        if tio_atomic_cas_weak_u64_relaxed(&q.dequeue_pos, &pos, pos + k):
            break
    for i in range(k):
        slot = &slots[(pos + i) & mask]
        out[i] = slot.value
        # release: our read happens-before the next lap's producer write;
        # pairs with the acquire load of seq in tio_mpmc_push / _push_many
        tio_atomic_store_u64_release(&slot.seq, pos + i + lap)
    return k


cdef inline uint64_t tio_mpmc_size(tio_mpmc *q) noexcept nogil:
    """Approximate number of queued items, clamped to 0 .. capacity.

    Counts claimed positions, so an item being written or read still counts.
    Exact when no other thread is pushing or popping."""
    cdef uint64_t head, tail
    cdef int64_t size
    while True:
        # relaxed loads: a snapshot, not a synchronisation point.  Retry until
        # the enqueue position is the same before and after reading the
        # dequeue position, so both numbers come from one instant.
        tail = tio_atomic_load_u64_relaxed(&q.enqueue_pos)
        head = tio_atomic_load_u64_relaxed(&q.dequeue_pos)
        if tio_atomic_load_u64_relaxed(&q.enqueue_pos) == tail:
            break
    size = <int64_t>(tail - head)
    if size < 0:
        return 0
    if <uint64_t>size > q.capacity:
        return q.capacity
    return <uint64_t>size


# ---- the Python class -------------------------------------------------------
cdef class MpmcQueue:
    cdef tio_mpmc *handle      # owned; freed in __dealloc__
    cdef int kind           # KIND_OBJECT or KIND_U64 (tallyio._ext.common)
    cdef str what           # "MpmcQueue(capacity=64)", for messages


# ---- the boundary for Cython code that moves raw uint64 values -----------------
cdef inline tio_mpmc *tio_mpmc_uint64_ring(MpmcQueue q) except NULL:
    """The ring of ``q`` for pushing and popping raw uint64 values from Cython;
    TypeError for None and for a dtype=object queue (whose destructor would
    DECREF the raw numbers as objects)."""
    if q is None:
        raise TypeError("expected an MpmcQueue built with dtype='uint64', got None")
    if q.kind != KIND_U64:
        raise TypeError(f"MpmcQueue(capacity={q.handle.capacity}) holds Python objects (dtype=object); raw "
                        f"uint64 values need a queue built with MpmcQueue(capacity, dtype='uint64')")
    return q.handle
