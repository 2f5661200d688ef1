# cython: language_level=3
"""Chase-Lev work-stealing deque (fixed capacity): C API and Python types.

Protocol: Le, Pop, Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing
for Weak Memory Models" (PPoPP 2013), without the resizing: a push on a full
deque answers TIO_FULL and the caller overflows elsewhere (the scheduler's
inbox).  No buffer is ever replaced, so there is nothing to reclaim.  The
write-up (states, invariants, which fence stops which race) is the deque
section of tallyio/_ext/README.md.

Roles are types
---------------
Worker (the owner; ONE thread at a time -- the Python face enforces it with a
tio_role and raises RoleError for a second live thread):
    tio_deque_push, tio_deque_push_many, tio_deque_pop, tio_deque_pop_many;
    the *dest* deque of tio_deque_steal_batch / tio_deque_steal_batch_limit
    (the calling thread must own dest).
Stealer (ANY thread, any number at once, including the owner):
    tio_deque_steal, the *src* deque of tio_deque_steal_batch*,
    tio_deque_len, tio_deque_capacity.
Setup / teardown (no other thread may hold the deque):
    tio_deque_new, tio_deque_free.

Indices top and bottom are uint64 that only grow (bottom dips by one during a
pop); every comparison is on the signed difference ``<int64_t>(b - t)`` so
wrapping past 2**64 is harmless.  Slot i lives at ``slots[i & mask]``.

Ownership of PyObject references (WorkStealingDeque(dtype=object))
-----------------------------------------------------------------
* push: the wrapper INCREFs the item (obj_to_item) and hands that reference
  to the slot; if tio_deque_push answers TIO_FULL the wrapper DECREFs it again
  (release_item): nothing half-queued, nothing leaked.
* pop / steal / steal_batch: whoever's call answers TIO_OK owns the reference
  of each item it took (item_to_obj).  A thief that read a slot and then lost
  the CAS on top (TIO_RETRY) owns nothing and must forget what it read.
  steal_batch moves references from src's slots to dest's slots untouched.
* free: WorkStealingDeque.__dealloc__ (GIL held, no Stealer left because each
  holds a reference to its deque) DECREFs the items in [top, bottom) once,
  then calls tio_deque_free.  tio_deque_free itself never touches refcounts.
"""
from libc.stdint cimport uint64_t, int64_t
from tallyio._ext.common cimport (
    tio_status, TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY, TIO_CACHE_LINE, KIND_U64,
    tio_atomic_u64, tio_role,
    tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
    tio_atomic_load_u64_seqcst, tio_atomic_load_u64_fenced_relaxed,
    tio_atomic_store_u64_relaxed, tio_atomic_store_u64_release,
    tio_atomic_store_u64_fenced_relaxed, tio_atomic_cas_u64_seqcst,
    tio_fence_seqcst,
)

# Largest capacity accepted by tio_deque_new (and by the Python constructor).
cdef enum:
    TIO_DEQUE_MAX_CAPACITY = 1 << 30


# One allocation: this header (three 128-byte lines) followed by the slots.
cdef struct tio_deque:
    # line 0: read-only after tio_deque_new, shared by everyone
    tio_atomic_u64 *slots           # capacity cells, item i at slots[i & mask]
    uint64_t mask                   # capacity - 1
    uint64_t capacity               # a power of two
    char _pad_readonly[TIO_CACHE_LINE - 24]
    # line 1: top -- CAS'd by thieves (and by the owner for the last item)
    tio_atomic_u64 top
    char _pad_top[TIO_CACHE_LINE - 8]
    # line 2: bottom -- written only by the owner, read by thieves
    tio_atomic_u64 bottom
    char _pad_bottom[TIO_CACHE_LINE - 8]


# ---- setup / teardown ------------------------------------------------------
cdef tio_deque *tio_deque_new(uint64_t capacity_pow2) noexcept nogil
cdef void tio_deque_free(tio_deque *d) noexcept nogil


# ---- Worker (owner) operations ----------------------------------------------

cdef inline int tio_deque_push(tio_deque *d, uint64_t item) noexcept nogil:
    """Owner: push `item` at the bottom.  TIO_OK, or TIO_FULL (item not taken)."""
    # relaxed: only this thread writes bottom
    cdef uint64_t b = tio_atomic_load_u64_relaxed(&d.bottom)
    # acquire: pairs with the seq_cst CAS of top in steal(): a thief's read of
    # slot t happens-before we overwrite that slot one lap later
    cdef uint64_t t = tio_atomic_load_u64_acquire(&d.top)
    if <int64_t>(b - t) >= <int64_t>d.capacity:
        return TIO_FULL
    # relaxed: published by the release store of bottom just below
    tio_atomic_store_u64_relaxed(&d.slots[b & d.mask], item)
    # release: pairs with the seq_cst (so acquire) load of bottom in steal():
    # a thief that sees b + 1 also sees the slot
    tio_atomic_store_u64_release(&d.bottom, b + 1)
    return TIO_OK


cdef inline uint64_t tio_deque_push_many(tio_deque *d, const uint64_t *items,
                                         uint64_t n) noexcept nogil:
    """Owner: push items[0], items[1], ... while there is room (items[n-1]
    ends at the bottom, popped first).  Returns how many were pushed."""
    cdef uint64_t b = tio_atomic_load_u64_relaxed(&d.bottom)   # relaxed: owner's own index
    # acquire: pairs with the CAS of top in steal() (as in tio_deque_push)
    cdef uint64_t t = tio_atomic_load_u64_acquire(&d.top)
    cdef int64_t free_slots = <int64_t>d.capacity - <int64_t>(b - t)
    cdef uint64_t i
    if free_slots <= 0:
        return 0
    if n > <uint64_t>free_slots:
        n = <uint64_t>free_slots
    for i in range(n):
        # relaxed: published by the release store of bottom below
        tio_atomic_store_u64_relaxed(&d.slots[(b + i) & d.mask], items[i])
    if n:
        # release: pairs with the seq_cst (so acquire) load of bottom in steal()
        tio_atomic_store_u64_release(&d.bottom, b + n)
    return n


cdef inline int tio_deque_pop(tio_deque *d, uint64_t *out) noexcept nogil:
    """Owner: pop the newest item (LIFO) into *out.  TIO_OK or TIO_EMPTY.
    *out is written only on TIO_OK."""
    cdef uint64_t b = tio_atomic_load_u64_relaxed(&d.bottom)   # relaxed: owner's own index
    # relaxed: an early exit only; top never shrinks, so an old t still proves empty
    cdef uint64_t t = tio_atomic_load_u64_relaxed(&d.top)
    cdef int64_t size
    cdef bint won
    if <int64_t>(b - t) <= 0:
        return TIO_EMPTY
    b -= 1
    # Claim slot b before looking at top (store->load: needs the full fence).
    # It pairs with the seq_cst loads in steal(): either a thief sees
    # bottom = b and keeps off slot b, or we see its CAS on top (Le et al.
    # 2013, take()).
    tio_atomic_store_u64_fenced_relaxed(&d.bottom, b)
    tio_fence_seqcst()
    t = tio_atomic_load_u64_fenced_relaxed(&d.top)
    size = <int64_t>(b - t)
    if size < 0:
        # thieves emptied it meanwhile: undo the claim (bottom back to == top).
        # fenced_relaxed like the claim: no thief can take anything at any
        # bottom value it may read now, so no ordering is needed
        tio_atomic_store_u64_fenced_relaxed(&d.bottom, b + 1)
        return TIO_EMPTY
    if size > 0:
        # t < b: no thief can reach slot b any more
        out[0] = tio_atomic_load_u64_relaxed(&d.slots[b & d.mask])   # own write
        return TIO_OK
    # t == b: the last item; race the thieves for it with a CAS on top.
    # seq_cst: pairs with the thieves' seq_cst CAS of top (one winner)
    won = tio_atomic_cas_u64_seqcst(&d.top, &t, t + 1)
    # the deque is empty either way: top == bottom == b + 1 (fenced_relaxed:
    # as in the empty case above)
    tio_atomic_store_u64_fenced_relaxed(&d.bottom, b + 1)
    if not won:
        return TIO_EMPTY
    out[0] = tio_atomic_load_u64_relaxed(&d.slots[b & d.mask])   # own write
    return TIO_OK


cdef inline uint64_t tio_deque_pop_many(tio_deque *d, uint64_t *out,
                                        uint64_t n) noexcept nogil:
    """Owner: pop up to n items, newest first, into out[0..].  Returns the count.

    tio_deque_pop for k items with one fence: claim [b-k, b) by lowering
    bottom, then read top.  Only slot t can still be contended (a thief that
    read the old bottom); it is raced for with a CAS as pop() does."""
    cdef uint64_t b = tio_atomic_load_u64_relaxed(&d.bottom)   # relaxed: owner's own index
    # relaxed: an early exit and a size estimate; top never shrinks
    cdef uint64_t t = tio_atomic_load_u64_relaxed(&d.top)
    cdef int64_t avail = <int64_t>(b - t)
    cdef uint64_t k, nb, i, got, last
    if avail <= 0 or n == 0:
        return 0
    k = n if n < <uint64_t>avail else <uint64_t>avail
    nb = b - k
    # claim [nb, b), store->load fence, then top (as in tio_deque_pop; the
    # fence pairs with the seq_cst loads in steal())
    tio_atomic_store_u64_fenced_relaxed(&d.bottom, nb)
    tio_fence_seqcst()
    t = tio_atomic_load_u64_fenced_relaxed(&d.top)
    if <int64_t>(nb - t) > 0:
        # t < nb: no thief can reach the claimed slots
        for i in range(k):
            out[i] = tio_atomic_load_u64_relaxed(&d.slots[(b - 1 - i) & d.mask])   # own writes
        return k
    if <int64_t>(b - t) <= 0:
        # thieves took everything meanwhile: bottom back to b (== top);
        # fenced_relaxed as in tio_deque_pop's empty case
        tio_atomic_store_u64_fenced_relaxed(&d.bottom, b)
        return 0
    # nb <= t < b: slots (t, b) are ours; slot t is raced for; then empty
    got = 0
    while got < b - 1 - t:
        out[got] = tio_atomic_load_u64_relaxed(&d.slots[(b - 1 - got) & d.mask])   # own writes
        got += 1
    last = t
    # seq_cst: pairs with the thieves' CAS of top (one winner), as in pop()
    if tio_atomic_cas_u64_seqcst(&d.top, &last, t + 1):
        out[got] = tio_atomic_load_u64_relaxed(&d.slots[t & d.mask])   # own write
        got += 1
    # empty either way: top == bottom == t + 1 (fenced_relaxed, as in pop)
    tio_atomic_store_u64_fenced_relaxed(&d.bottom, t + 1)
    return got


# ---- any thread ---------------------------------------------------------------

cdef inline uint64_t tio_deque_len(tio_deque *d) noexcept nogil:
    """Any thread: the number of items, approximate while others work on it
    (exact for the owner when no thief is active).  0 .. capacity."""
    # acquire: top before bottom, each paired with the writers' release halves
    cdef uint64_t t = tio_atomic_load_u64_acquire(&d.top)
    cdef uint64_t b = tio_atomic_load_u64_acquire(&d.bottom)
    cdef int64_t n = <int64_t>(b - t)
    if n <= 0:
        return 0
    if <uint64_t>n > d.capacity:
        return d.capacity
    return <uint64_t>n


cdef inline uint64_t tio_deque_capacity(tio_deque *d) noexcept nogil:
    """Any thread: the fixed capacity (a power of two)."""
    return d.capacity


# ---- Stealer operations (any thread) ----------------------------------------

cdef inline int tio_deque_steal(tio_deque *d, uint64_t *out) noexcept nogil:
    """Any thread: take the oldest item (FIFO end) into *out.
    TIO_OK, TIO_EMPTY, or TIO_RETRY (lost a race; nothing taken, try again)."""
    # seq_cst loads instead of the paper's acquire + fence + acquire: equally
    # correct and one locked instruction cheaper on x86 (README).  seq_cst
    # pairs with the fence in pop(): if pop's load of top missed a CAS we can
    # see, that fence precedes our loads in the seq_cst order, so we see pop's
    # claim on bottom.  The acquire half pairs with the release store of bottom
    # in push(): slot t is visible.
    cdef uint64_t t = tio_atomic_load_u64_seqcst(&d.top)
    cdef uint64_t b = tio_atomic_load_u64_seqcst(&d.bottom)
    cdef uint64_t item
    if <int64_t>(b - t) <= 0:
        return TIO_EMPTY
    # Read before the CAS: once top moves past t the owner may reuse the slot.
    # relaxed: if the owner is overwriting it, our CAS below fails and the
    # value is dropped (the slot is atomic, so this is no data race).
    item = tio_atomic_load_u64_relaxed(&d.slots[t & d.mask])
    # seq_cst: pairs with the owner's CAS on the last item and other thieves'
    # CAS (one winner per index); its release half pairs with the acquire load
    # of top in push()
    if not tio_atomic_cas_u64_seqcst(&d.top, &t, t + 1):
        return TIO_RETRY
    out[0] = item
    return TIO_OK


cdef inline int tio_deque_steal_batch_limit(tio_deque *src, tio_deque *dest,
                                            uint64_t limit,
                                            uint64_t *moved) noexcept nogil:
    """Steal about half of src (at most `limit`, at most dest's free room) into
    dest, oldest first, one CAS per item.  The caller must own dest.

    TIO_OK (*moved >= 1), TIO_EMPTY, TIO_RETRY (lost the first CAS), or
    TIO_FULL (dest has no room; src untouched).  src == dest: no-op answering
    TIO_OK or TIO_EMPTY.  One CAS per item because the owner pops slots
    below its bottom without a CAS: claiming [t, t+k) at once could take
    slots it is popping at the same moment (README, deque section)."""
    moved[0] = 0
    cdef uint64_t t, b, db, dt, want, k, item
    cdef int64_t n, dest_free
    if src == dest:
        return TIO_OK if tio_deque_len(src) > 0 else TIO_EMPTY
    # seq_cst: pairs with the fence in pop(); acquire half with push() (as in
    # tio_deque_steal)
    t = tio_atomic_load_u64_seqcst(&src.top)
    b = tio_atomic_load_u64_seqcst(&src.bottom)
    n = <int64_t>(b - t)
    if n <= 0:
        return TIO_EMPTY
    want = (<uint64_t>n + 1) >> 1
    if want > limit:
        want = limit
    db = tio_atomic_load_u64_relaxed(&dest.bottom)   # relaxed: we own dest
    # acquire: pairs with the CAS of dest's thieves (their slot reads are done)
    dt = tio_atomic_load_u64_acquire(&dest.top)
    dest_free = <int64_t>dest.capacity - <int64_t>(db - dt)
    if dest_free <= 0:
        return TIO_FULL
    if want > <uint64_t>dest_free:
        want = <uint64_t>dest_free
    if want == 0:
        return TIO_EMPTY   # limit == 0
    k = 0
    while True:
        # relaxed: validated by the CAS below (as in tio_deque_steal)
        item = tio_atomic_load_u64_relaxed(&src.slots[t & src.mask])
        # seq_cst: one winner per index (as in tio_deque_steal)
        if not tio_atomic_cas_u64_seqcst(&src.top, &t, t + 1):
            break
        # relaxed: published by the release store of dest.bottom below
        tio_atomic_store_u64_relaxed(&dest.slots[(db + k) & dest.mask], item)
        k += 1
        t += 1
        if k == want:
            break
        # Before the next item re-read bottom, seq_cst and after our seq_cst
        # CAS: the same pairing with pop()'s fence as a fresh steal, so we never
        # take a slot the owner has claimed without a CAS.  Acquire half: pairs
        # with the release store of bottom in push().
        b = tio_atomic_load_u64_seqcst(&src.bottom)
        if <int64_t>(b - t) <= 0:
            break
    if k == 0:
        return TIO_RETRY
    # release: pairs with the seq_cst load of bottom by dest's thieves
    tio_atomic_store_u64_release(&dest.bottom, db + k)
    moved[0] = k
    return TIO_OK


cdef inline int tio_deque_steal_batch(tio_deque *src, tio_deque *dest,
                                      uint64_t *moved) noexcept nogil:
    """tio_deque_steal_batch_limit without a limit (about half of src)."""
    return tio_deque_steal_batch_limit(src, dest, <uint64_t>-1, moved)


# ---- Python types ------------------------------------------------------------

cdef class WorkStealingDeque:
    """The owner (Worker) side; see deque.pyx."""
    cdef tio_deque *handle     # owned; freed in __dealloc__
    cdef int kind               # KIND_OBJECT or KIND_U64
    cdef tio_role owner_role    # the thread that may push/pop
    cdef str what               # 'WorkStealingDeque(capacity=..., dtype=...)' for messages


cdef class Stealer:
    """A thief handle (any thread); see deque.pyx."""
    cdef WorkStealingDeque source   # keeps the deque (and its C struct) alive
    cdef tio_deque *handle         # == source.handle


# ---- the boundary for Cython code that moves raw uint64 values -----------------
cdef inline tio_deque *tio_deque_uint64_ring(WorkStealingDeque d) except NULL:
    """The C deque of ``d`` for pushing, popping and stealing raw uint64 values
    from Cython; TypeError for None and for a dtype=object deque (whose
    destructor would DECREF the raw numbers as objects)."""
    if d is None:
        raise TypeError("expected a WorkStealingDeque built with dtype='uint64', got None")
    if d.kind != KIND_U64:
        raise TypeError(f"{d.what} holds Python objects; raw uint64 values need a deque built with "
                        f"WorkStealingDeque(capacity, dtype='uint64')")
    return d.handle


# ---- role-typed handles: the compiler enforces who may call what ----------------
# A tio_deque_owner may push, pop and be the destination of a batch steal; a
# tio_deque_thief may steal and read the length.  They are distinct C struct
# types, so passing a thief where an owner is expected (pushing through a thief
# handle) is a compile-time error, not a corrupted deque at run time.  Get them
# from a dtype='uint64' WorkStealingDeque with tio_deque_owner_of(d, &owner) /
# tio_deque_thief_of(d, &thief); the owner handle also claims the
# deque's owner role for the calling thread (RoleError if another live thread
# holds it).  Neither keeps the deque alive: keep the Python object referenced.
cdef struct tio_deque_owner:
    tio_deque *deque

cdef struct tio_deque_thief:
    tio_deque *deque


cdef inline int tio_deque_owner_of(WorkStealingDeque d, tio_deque_owner *owner) except -1:
    """Set *owner to the owner handle of ``d`` for the calling thread (see above)."""
    owner.deque = tio_deque_uint64_ring(d)
    return tio_deque_claim_owner(d)


cdef inline int tio_deque_thief_of(WorkStealingDeque d, tio_deque_thief *thief) except -1:
    """Set *thief to a thief handle of ``d`` (any thread, any number of them)."""
    thief.deque = tio_deque_uint64_ring(d)
    return 0


cdef int tio_deque_claim_owner(WorkStealingDeque d) except -1


cdef inline int tio_deque_owner_push(tio_deque_owner owner, uint64_t item) noexcept nogil:
    """TIO_OK or TIO_FULL (nothing taken)."""
    return tio_deque_push(owner.deque, item)


cdef inline uint64_t tio_deque_owner_push_many(tio_deque_owner owner, const uint64_t *items,
                                               uint64_t n) noexcept nogil:
    """Push items[0:k] while there is room; returns k."""
    return tio_deque_push_many(owner.deque, items, n)


cdef inline int tio_deque_owner_pop(tio_deque_owner owner, uint64_t *out) noexcept nogil:
    """The newest item into *out: TIO_OK or TIO_EMPTY."""
    return tio_deque_pop(owner.deque, out)


cdef inline uint64_t tio_deque_owner_pop_many(tio_deque_owner owner, uint64_t *out,
                                              uint64_t n) noexcept nogil:
    """Up to n items, newest first; returns how many."""
    return tio_deque_pop_many(owner.deque, out, n)


cdef inline int tio_deque_thief_steal(tio_deque_thief thief, uint64_t *out) noexcept nogil:
    """The oldest item into *out: TIO_OK, TIO_EMPTY or TIO_RETRY (lost a race)."""
    return tio_deque_steal(thief.deque, out)


cdef inline int tio_deque_thief_steal_batch(tio_deque_thief thief, tio_deque_owner dest,
                                            uint64_t *moved) noexcept nogil:
    """About half of the thief's deque into ``dest`` (which the caller owns):
    TIO_OK (*moved >= 1), TIO_EMPTY, TIO_RETRY or TIO_FULL."""
    return tio_deque_steal_batch(thief.deque, dest.deque, moved)


cdef inline uint64_t tio_deque_thief_len(tio_deque_thief thief) noexcept nogil:
    """Number of items (a snapshot)."""
    return tio_deque_len(thief.deque)
