# cython: language_level=3
"""SpscQueue: a bounded single-producer single-consumer ring of uint64 slots.

C API for Cython code (``from tallyio._ext.spsc cimport ...``).  The hot
operations are ``noexcept nogil`` inline functions that return a status code;
they never raise, never allocate and never touch a reference count.

Roles.  Exactly one thread at a time may act as the producer (push,
push_many) and one as the consumer (pop, pop_many); the same thread may be
both.  The C API does not check this (the Python class does): two producers
or two consumers racing through it corrupt the ring.

Protocol (details in tallyio/_ext/README.md, "SpscQueue"):

* ``tail`` is written only by the producer, ``head`` only by the consumer.
  Both are free-running uint64 counters that wrap modulo 2**64; a slot is
  ``slots[index & mask]`` and the fill is ``tail - head`` in modular
  arithmetic, always in 0 .. capacity.
* The producer writes a slot, then publishes it with a release store of
  ``tail``; the consumer reads ``tail`` with acquire before reading slots.
  The consumer reads a slot, then frees it with a release store of ``head``;
  the producer reads ``head`` with acquire before overwriting slots.
* Each side keeps a private copy of the other side's index (``head_cache``
  for the producer, ``tail_cache`` for the consumer) and reloads the shared
  one only when its copy says full / empty (Rigtorp's SPSCQueue), so in the
  steady state neither side reads the other's cache line.

Ownership of Python objects (dtype=object).  Slots hold ``PyObject*`` cast to
uint64.  The Python wrapper INCREFs before push (``obj_to_item``); from then
on the slot owns that reference.  The thread that pops the item takes the
reference over (``item_to_obj``).  ``tio_spsc_free`` does not touch slots:
``SpscQueue.__dealloc__`` DECREFs whatever is still queued, exactly once,
with the GIL held.  Cython users who push their own uint64 values into an
object queue break this contract (the destructor would DECREF a number and
crash the interpreter): take the ring with ``tio_spsc_uint64_ring(q)``, which
raises TypeError unless the queue was built with dtype="uint64".
"""
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcpy
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_load_u64_relaxed,
                                  tio_atomic_load_u64_acquire,
                                  tio_atomic_store_u64_release, tio_role,
                                  TIO_OK, TIO_EMPTY, TIO_FULL, TIO_CACHE_LINE,
                                  TIO_UNLIKELY, KIND_U64)

cdef enum:
    # Largest capacity (slots) a queue may have: 2**30 slots = 8 GiB.
    TIO_SPSC_MAX_CAPACITY = 1 << 30


cdef struct tio_spsc:
    # Line 0, written once by tio_spsc_new before the ring is shared and read
    # by both sides: it stays Shared in both caches and costs nothing.
    uint64_t capacity            # number of slots, a power of two
    uint64_t mask                # capacity - 1
    uint64_t *slots              # capacity slots, right after this header
    char _pad_config[TIO_CACHE_LINE - 24]
    # Line 1: the producer's index, read by the consumer when it thinks it is empty.
    tio_atomic_u64 tail
    char _pad_tail[TIO_CACHE_LINE - 8]
    # Line 2: producer-private copy of head (never read by the consumer).
    uint64_t head_cache
    char _pad_head_cache[TIO_CACHE_LINE - 8]
    # Line 3: the consumer's index, read by the producer when it thinks it is full.
    tio_atomic_u64 head
    char _pad_head[TIO_CACHE_LINE - 8]
    # Line 4: consumer-private copy of tail (never read by the producer).
    uint64_t tail_cache
    char _pad_tail_cache[TIO_CACHE_LINE - 8]


# ---- setup / teardown (any thread, before / after the ring is shared) ------
cdef tio_spsc *tio_spsc_new(uint64_t capacity_pow2, uint64_t start_index) noexcept nogil
cdef void tio_spsc_free(tio_spsc *q) noexcept nogil


# ---- producer side -----------------------------------------------------------
cdef inline int tio_spsc_push(tio_spsc *q, uint64_t item) noexcept nogil:
    """Append `item`: TIO_OK, or TIO_FULL (nothing written)."""
    # relaxed: only this thread (the producer) ever writes tail
    cdef uint64_t tail = tio_atomic_load_u64_relaxed(&q.tail)
    if TIO_UNLIKELY(tail - q.head_cache >= q.capacity):
        # acquire: pairs with the release store of head in pop()/pop_many():
        # the consumer's reads of the slots it freed happen-before we reuse them
        q.head_cache = tio_atomic_load_u64_acquire(&q.head)
        if tail - q.head_cache >= q.capacity:
            return TIO_FULL
    q.slots[tail & q.mask] = item
    # release: publishes the slot write above; pairs with the acquire load of
    # tail in pop()/pop_many()/size()
    tio_atomic_store_u64_release(&q.tail, tail + 1)
    return TIO_OK


cdef inline uint64_t tio_spsc_push_many(tio_spsc *q, const uint64_t *items, uint64_t n) noexcept nogil:
    """Append the longest prefix of items[0:n] that fits; returns its length.

    One release store of tail publishes the whole batch."""
    if n == 0:
        return 0
    # relaxed: only this thread (the producer) ever writes tail
    cdef uint64_t tail = tio_atomic_load_u64_relaxed(&q.tail)
    cdef uint64_t room = q.capacity - (tail - q.head_cache)
    if room < n:
        # acquire: pairs with the release store of head in pop()/pop_many()
        q.head_cache = tio_atomic_load_u64_acquire(&q.head)
        room = q.capacity - (tail - q.head_cache)
        if room < n:
            n = room
            if n == 0:
                return 0
    cdef uint64_t start = tail & q.mask
    cdef uint64_t first = q.capacity - start      # slots before the ring wraps
    if first > n:
        first = n
    memcpy(q.slots + start, items, first * sizeof(uint64_t))
    if n > first:
        memcpy(q.slots, items + first, (n - first) * sizeof(uint64_t))
    # release: publishes all n slot writes; pairs with the acquire load of tail
    # in pop()/pop_many()/size()
    tio_atomic_store_u64_release(&q.tail, tail + n)
    return n


# ---- consumer side -----------------------------------------------------------
cdef inline int tio_spsc_pop(tio_spsc *q, uint64_t *out) noexcept nogil:
    """Remove the oldest item into *out: TIO_OK, or TIO_EMPTY (*out untouched)."""
    # relaxed: only this thread (the consumer) ever writes head
    cdef uint64_t head = tio_atomic_load_u64_relaxed(&q.head)
    if TIO_UNLIKELY(head == q.tail_cache):
        # acquire: pairs with the release store of tail in push()/push_many():
        # the producer's slot writes happen-before our slot reads
        q.tail_cache = tio_atomic_load_u64_acquire(&q.tail)
        if head == q.tail_cache:
            return TIO_EMPTY
    out[0] = q.slots[head & q.mask]
    # release: our slot read above happens-before the producer reuses the
    # slot; pairs with the acquire load of head in push()/push_many()/size()
    tio_atomic_store_u64_release(&q.head, head + 1)
    return TIO_OK


cdef inline uint64_t tio_spsc_pop_many(tio_spsc *q, uint64_t *out, uint64_t n) noexcept nogil:
    """Remove up to n of the oldest items into out[0:n]; returns how many.

    One release store of head frees the whole batch."""
    if n == 0:
        return 0
    # relaxed: only this thread (the consumer) ever writes head
    cdef uint64_t head = tio_atomic_load_u64_relaxed(&q.head)
    cdef uint64_t ready = q.tail_cache - head
    if ready < n:
        # acquire: pairs with the release store of tail in push()/push_many()
        q.tail_cache = tio_atomic_load_u64_acquire(&q.tail)
        ready = q.tail_cache - head
        if ready < n:
            n = ready
            if n == 0:
                return 0
    cdef uint64_t start = head & q.mask
    cdef uint64_t first = q.capacity - start      # slots before the ring wraps
    if first > n:
        first = n
    memcpy(out, q.slots + start, first * sizeof(uint64_t))
    if n > first:
        memcpy(out + first, q.slots, (n - first) * sizeof(uint64_t))
    # release: our slot reads happen-before the producer reuses the slots;
    # pairs with the acquire load of head in push()/push_many()/size()
    tio_atomic_store_u64_release(&q.head, head + n)
    return n


# ---- either side, or any other thread ----------------------------------------
cdef inline uint64_t tio_spsc_size(tio_spsc *q) noexcept nogil:
    """Items queued: exact from the producer or consumer when the other side
    is idle, otherwise a snapshot that was true at some instant; never more
    than the capacity."""
    # head first, with acquire (pairs with the release store of head in
    # pop()/pop_many()): the consumer read a tail >= head before storing head,
    # so by coherence the tail we load next is >= this head and the modular
    # difference cannot go "negative" (huge).
    cdef uint64_t head = tio_atomic_load_u64_acquire(&q.head)
    # acquire: pairs with the release store of tail in push()/push_many()
    cdef uint64_t tail = tio_atomic_load_u64_acquire(&q.tail)
    cdef uint64_t size = tail - head
    # the consumer may have moved on between the two loads, letting the
    # producer run further ahead than one instant's fill: clamp
    if size > q.capacity:
        size = q.capacity
    return size


cdef inline uint64_t tio_spsc_capacity(tio_spsc *q) noexcept nogil:
    """Number of slots (a power of two)."""
    return q.capacity


# ---- the Python class ----------------------------------------------------------
@cython.final
cdef class SpscQueue:
    # The ring (never NULL once constructed).  Cython code may drive it with
    # the C API above, in the producer and consumer roles described there.
    cdef tio_spsc *handle
    cdef tio_role _producer       # thread holding the producer role (put*)
    cdef tio_role _consumer       # thread holding the consumer role (get*)
    cdef int kind                 # KIND_OBJECT or KIND_U64 (common.pxd)
    cdef str what                 # "SpscQueue(capacity=64)", for messages
    cdef str _producer_what       # "the producer role of SpscQueue(...)"
    cdef str _consumer_what
    cdef str _put_many_what       # "SpscQueue(capacity=64).put_many"
    cdef str _get_many_what


# ---- the boundary for Cython code that moves raw uint64 values -----------------
cdef inline tio_spsc *tio_spsc_uint64_ring(SpscQueue q) except NULL:
    """The ring of ``q`` for pushing and popping raw uint64 values from Cython.
    TypeError for None, and for a queue built with dtype=object: its slots hold
    references that its destructor DECREFs, so a raw number there would crash
    the interpreter later, far from the mistake."""
    if q is None:
        raise TypeError("expected an SpscQueue built with dtype='uint64', got None")
    if q.kind != KIND_U64:
        raise TypeError(f"{q.what} holds Python objects (dtype=object); raw uint64 values need a "
                        f"queue built with SpscQueue(capacity, dtype='uint64')")
    return q.handle
