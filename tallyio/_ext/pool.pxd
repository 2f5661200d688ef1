# cython: language_level=3
"""MemoryPool: fixed-size blocks carved from one aligned allocation, handed
out and taken back through a lock-free Treiber stack of block indices.

C API (cimport it from other Cython code; every hot function is
``noexcept nogil``, makes no syscall and never allocates):

    cdef tio_pool *p = tio_pool_new(256, 1024, 64)     # NULL on failure
    cdef void *block
    if tio_pool_alloc(p, &block) == TIO_OK:             # or TIO_EXHAUSTED
        ...                                             # use 256 bytes
        tio_pool_free(p, block)                         # TIO_OK / TIO_DOUBLE_FREE / TIO_FOREIGN
    tio_pool_free_all(p)                                # destroy (no block may be in use)

A Python ``MemoryPool`` owns its ``tio_pool`` (``pool.handle``); C code that
allocates through it must keep the MemoryPool object alive meanwhile.

Ownership: the pool owns every block.  A successful alloc lends the block to
the caller until the caller frees it; nothing is reference counted (blocks are
raw memory, never PyObjects).  A Python ``Block`` holds a reference to its
MemoryPool, so the memory outlives every Block object; a Block collected
without free() returns its block to the pool.

Protocol (see tallyio/_ext/README.md, "MemoryPool", for the full argument):
  head  = tag << 32 | index of the top free block (TIO_POOL_NIL: none free)
  next[i]  = index below block i on the free list (meaningful while i is free)
  state[i] = TIO_POOL_FREE / TIO_POOL_IN_USE (double-free detection only)
Every pop bumps the tag, so a pop whose view of head is stale (ABA) fails its
CAS.  Pushes need no bump: a push never reads beyond head itself.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from tallyio._ext.common cimport (
    tio_atomic_u64, tio_atomic_u32, tio_atomic_u8,
    tio_atomic_load_u64_acquire, tio_atomic_load_u64_relaxed,
    tio_atomic_cas_u64_acquire, tio_atomic_cas_u64_release,
    tio_atomic_cas_u64_relaxed,
    tio_atomic_fetch_add_u64_relaxed, tio_atomic_fetch_sub_u64_relaxed,
    tio_atomic_load_u32_relaxed, tio_atomic_store_u32_relaxed,
    tio_atomic_load_u8_relaxed, tio_atomic_store_u8_relaxed,
    TIO_CACHE_LINE, TIO_OK, TIO_EXHAUSTED, TIO_DOUBLE_FREE, TIO_FOREIGN,
    TIO_LIKELY, TIO_UNLIKELY,
)

cdef extern from *:
    """
    /* tallyio pool constants (from pool.pxd) */
    #ifndef TIO_POOL_CONSTANTS
    #define TIO_POOL_CONSTANTS
    #define TIO_POOL_NIL        0xFFFFFFFFu              /* empty-list index */
    #define TIO_POOL_INDEX_MASK 0x00000000FFFFFFFFull    /* head: low half */
    #define TIO_POOL_TAG_MASK   0xFFFFFFFF00000000ull    /* head: high half */
    #define TIO_POOL_TAG_ONE    0x0000000100000000ull    /* one pop */
    #define TIO_POOL_MAX_BYTES  0x0001000000000000ull    /* 2**48: sanity cap */
    #define TIO_POOL_MAX_CAPACITY 0xFFFFFFFEull          /* blocks; NIL is reserved */
    #define TIO_POOL_CACHE_SIZE 32
    #endif
    """
    const uint32_t TIO_POOL_NIL
    const uint64_t TIO_POOL_INDEX_MASK
    const uint64_t TIO_POOL_TAG_MASK
    const uint64_t TIO_POOL_TAG_ONE
    const uint64_t TIO_POOL_MAX_BYTES
    const uint64_t TIO_POOL_MAX_CAPACITY
    enum: TIO_POOL_CACHE_SIZE

cdef enum:
    TIO_POOL_FREE = 0
    TIO_POOL_IN_USE = 1
    TIO_POOL_MIN_ALIGNMENT = 8
    TIO_POOL_MAX_ALIGNMENT = 4096


ctypedef struct tio_pool:
    # ---- line 0: the free-list head, CAS'd by every alloc and free --------
    tio_atomic_u64 head              # tag << 32 | index of the top free block
    char _pad_head[TIO_CACHE_LINE - 8]
    # ---- line 1: statistics, one relaxed RMW per alloc and per free ------
    tio_atomic_u64 in_use            # blocks out of the free list (lags the list, never exceeds it)
    tio_atomic_u64 high_water        # max in_use ever seen; written only when exceeded
    char _pad_stats[TIO_CACHE_LINE - 16]
    # ---- read-only after tio_pool_new: shared by every core without traffic
    char *base                       # block i lives at base + i * stride
    uint64_t block_size              # as requested
    uint64_t stride                  # block_size rounded up to alignment
    uint64_t block_count
    uint64_t alignment
    uint64_t span                    # stride * block_count
    # pointer -> index without a division: stride = odd << div_shift and
    # div_inverse * odd == 1 (mod 2**64); see tio_pool_index_of
    uint64_t div_shift
    uint64_t low_mask                # (1 << div_shift) - 1
    uint64_t div_inverse
    tio_atomic_u32 *next             # next[i]: block below i on the free list
    tio_atomic_u8 *state             # state[i]: TIO_POOL_FREE / TIO_POOL_IN_USE


# A per-thread magazine: up to TIO_POOL_CACHE_SIZE free block indices owned by
# ONE thread (a scheduler worker embeds it; no atomics touch it).  It trades
# blocks with the shared list in batches of half its size, one CAS per batch.
# Blocks sitting in a cache count as in use in the pool's statistics.
ctypedef struct tio_pool_cache:
    tio_pool *pool
    uint32_t count
    uint32_t indices[TIO_POOL_CACHE_SIZE]


# ---- setup / teardown (pool.pyx) ------------------------------------------
cdef tio_pool *tio_pool_new(uint64_t block_size, uint64_t block_count,
                            uint64_t alignment) noexcept nogil
cdef void tio_pool_free_all(tio_pool *p) noexcept nogil
cdef void tio_pool_raise_high_water(tio_pool *p, uint64_t n) noexcept nogil
cdef int tio_pool_cache_refill(tio_pool_cache *c) noexcept nogil
cdef void tio_pool_cache_flush(tio_pool_cache *c, uint32_t keep) noexcept nogil


# ---- accessors --------------------------------------------------------------
cdef inline uint64_t tio_pool_block_size(const tio_pool *p) noexcept nogil:
    return p.block_size

cdef inline uint64_t tio_pool_block_count(const tio_pool *p) noexcept nogil:
    return p.block_count

cdef inline uint64_t tio_pool_stride(const tio_pool *p) noexcept nogil:
    return p.stride

cdef inline uint64_t tio_pool_in_use(const tio_pool *p) noexcept nogil:
    # relaxed: a statistic; exact when no alloc/free is in flight
    return tio_atomic_load_u64_relaxed(&p.in_use)

cdef inline uint64_t tio_pool_high_water(const tio_pool *p) noexcept nogil:
    # relaxed: a statistic
    return tio_atomic_load_u64_relaxed(&p.high_water)


# ---- index <-> pointer --------------------------------------------------------
cdef inline void *tio_pool_block_ptr(const tio_pool *p, uint32_t index) noexcept nogil:
    """Address of block `index` (no check: index < block_count)."""
    return p.base + <uint64_t>index * p.stride

cdef inline int tio_pool_index_of(const tio_pool *p, const void *block,
                                  uint32_t *index) noexcept nogil:
    """TIO_OK and the index of `block`, or TIO_FOREIGN when `block` is not
    the start of a block of this pool.

    Exact division by a constant (Hacker's Delight 10-16/10-17): with
    stride = d << s (d odd) and off = block - base (wrapping), off is a
    multiple of stride iff its low s bits are zero and (off >> s) * d^-1 mod
    2**64 <= (2**64 - 1) / d, in which case that product is off / stride.
    Since block_count * d < 2**64, one `q < block_count` test covers the
    range check (below base wraps to a huge off) and the remainder test."""
    cdef uint64_t off = <uint64_t>(<uintptr_t>block - <uintptr_t>p.base)
    cdef uint64_t q = (off >> p.div_shift) * p.div_inverse
    if TIO_UNLIKELY((off & p.low_mask) != 0 or q >= p.block_count):
        return TIO_FOREIGN
    index[0] = <uint32_t>q
    return TIO_OK


# ---- the hot path -------------------------------------------------------------
cdef inline uint64_t tio_pool_pop_target(tio_pool *p, uint64_t seen) noexcept nogil:
    """The head a pop that saw head == `seen` (not empty) installs: the tag one
    up, the index of the block below the top.  The tag bump is what makes a
    pop with a stale `seen` fail its CAS (ABA: the top block was popped and
    pushed back meanwhile, with a different block below it)."""
    # relaxed: if the top is popped and pushed back meanwhile, this may read
    # a newer next[top]; that pop bumped the tag, so the CAS using it fails.
    return (((seen & TIO_POOL_TAG_MASK) + TIO_POOL_TAG_ONE)
            | tio_atomic_load_u32_relaxed(&p.next[seen & TIO_POOL_INDEX_MASK]))


cdef inline int tio_pool_pop(tio_pool *p, uint32_t *index) noexcept nogil:
    """Take the top index off the shared free list (no statistics, no state)."""
    # acquire: pairs with the release CAS of head in tio_pool_push (every later
    # change of head is a CAS, so it continues that release sequence): the
    # pusher's write of next[top] and of the block's contents are visible.
    cdef uint64_t old = tio_atomic_load_u64_acquire(&p.head)
    while True:
        if TIO_UNLIKELY((old & TIO_POOL_INDEX_MASK) == TIO_POOL_NIL):
            return TIO_EXHAUSTED
        # acquire (success and failure): same pairing as the load above
        if TIO_LIKELY(tio_atomic_cas_u64_acquire(&p.head, &old, tio_pool_pop_target(p, old))):
            index[0] = <uint32_t>(old & TIO_POOL_INDEX_MASK)
            return TIO_OK


cdef inline void tio_pool_push(tio_pool *p, uint32_t index) noexcept nogil:
    """Put `index` back on the shared free list (no statistics, no state)."""
    # relaxed: the value only seeds the CAS; nothing is read through it.
    cdef uint64_t old = tio_atomic_load_u64_relaxed(&p.head)
    while True:
        # relaxed: published by the release CAS below
        tio_atomic_store_u32_relaxed(&p.next[index], <uint32_t>(old & TIO_POOL_INDEX_MASK))
        # release: pairs with the acquire load/CAS in tio_pool_pop, so
        # next[index] and everything the holder wrote into the block are
        # visible to the next allocator.  No tag bump: see the module doc.
        if TIO_LIKELY(tio_atomic_cas_u64_release(
                &p.head, &old, (old & TIO_POOL_TAG_MASK) | index)):
            return


cdef inline int tio_pool_alloc_index(tio_pool *p, uint32_t *index) noexcept nogil:
    """TIO_OK and a block index the caller now holds, or TIO_EXHAUSTED."""
    cdef uint32_t i
    cdef uint64_t n
    if tio_pool_pop(p, &i) != TIO_OK:
        return TIO_EXHAUSTED
    # relaxed: only the holder writes state[i]; the acquire pop ordered us
    # after the previous holder's FREE store.
    tio_atomic_store_u8_relaxed(&p.state[i], TIO_POOL_IN_USE)
    # relaxed: a statistic, incremented after the pop so it never exceeds the
    # number of blocks really out of the list
    n = tio_atomic_fetch_add_u64_relaxed(&p.in_use, 1) + 1
    # relaxed: a statistic; the slow path runs only when a new maximum is seen
    if TIO_UNLIKELY(n > tio_atomic_load_u64_relaxed(&p.high_water)):
        tio_pool_raise_high_water(p, n)
    index[0] = i
    return TIO_OK


cdef inline int tio_pool_alloc(tio_pool *p, void **out) noexcept nogil:
    """TIO_OK and a block in `out[0]`, or TIO_EXHAUSTED (out untouched)."""
    cdef uint32_t i
    if tio_pool_alloc_index(p, &i) != TIO_OK:
        return TIO_EXHAUSTED
    out[0] = p.base + <uint64_t>i * p.stride
    return TIO_OK


cdef inline int tio_pool_free_index(tio_pool *p, uint32_t index) noexcept nogil:
    """Give block `index` (< block_count) back: TIO_OK or TIO_DOUBLE_FREE.

    Double frees are caught exactly when no alloc of the same block came in
    between (the usual sequential mistake); two threads freeing the same
    block at the same moment may both pass the check (best effort: a
    relaxed read, not a locked exchange, keeps free cheap)."""
    # relaxed: state[index] is read and written by the block's holder only
    if TIO_UNLIKELY(tio_atomic_load_u8_relaxed(&p.state[index]) != TIO_POOL_IN_USE):
        return TIO_DOUBLE_FREE
    tio_atomic_store_u8_relaxed(&p.state[index], TIO_POOL_FREE)
    # relaxed: a statistic, decremented before the push so it never exceeds
    # the number of blocks really out of the list
    tio_atomic_fetch_sub_u64_relaxed(&p.in_use, 1)
    tio_pool_push(p, index)
    return TIO_OK


cdef inline int tio_pool_free(tio_pool *p, void *block) noexcept nogil:
    """TIO_OK, TIO_DOUBLE_FREE, or TIO_FOREIGN (not the start of a block of
    this pool).  The pool is untouched unless TIO_OK."""
    cdef uint32_t i
    if TIO_UNLIKELY(tio_pool_index_of(p, block, &i) != TIO_OK):
        return TIO_FOREIGN
    return tio_pool_free_index(p, i)


# ---- per-thread magazine (optional; one owner thread per cache) ---------------
cdef inline void tio_pool_cache_init(tio_pool_cache *c, tio_pool *p) noexcept nogil:
    c.pool = p
    c.count = 0

cdef inline int tio_pool_cache_alloc(tio_pool_cache *c, void **out) noexcept nogil:
    """Like tio_pool_alloc, from the calling thread's cache when it can."""
    cdef uint32_t i
    if TIO_UNLIKELY(c.count == 0):
        if tio_pool_cache_refill(c) == 0:
            return TIO_EXHAUSTED
    c.count -= 1
    i = c.indices[c.count]
    # relaxed: only the holder writes state[i]
    tio_atomic_store_u8_relaxed(&c.pool.state[i], TIO_POOL_IN_USE)
    out[0] = c.pool.base + <uint64_t>i * c.pool.stride
    return TIO_OK

cdef inline int tio_pool_cache_free(tio_pool_cache *c, void *block) noexcept nogil:
    """Like tio_pool_free, into the calling thread's cache when it can."""
    cdef uint32_t i
    if TIO_UNLIKELY(tio_pool_index_of(c.pool, block, &i) != TIO_OK):
        return TIO_FOREIGN
    # relaxed: state[i] is read and written by the block's holder only
    if TIO_UNLIKELY(tio_atomic_load_u8_relaxed(&c.pool.state[i]) != TIO_POOL_IN_USE):
        return TIO_DOUBLE_FREE
    tio_atomic_store_u8_relaxed(&c.pool.state[i], TIO_POOL_FREE)
    if TIO_UNLIKELY(c.count == TIO_POOL_CACHE_SIZE):
        tio_pool_cache_flush(c, TIO_POOL_CACHE_SIZE // 2)
    c.indices[c.count] = i
    c.count += 1
    return TIO_OK


# ---- Python classes -------------------------------------------------------------
cdef class MemoryPool:
    cdef tio_pool *handle            # owned; freed in __dealloc__
    cdef object __weakref__
    cdef str what                    # "MemoryPool(block_size=.., block_count=..)", for messages


cdef class Block:
    cdef MemoryPool owner            # keeps the pool (and so the memory) alive
    cdef char *ptr
    cdef Py_ssize_t size             # block_size; also the buffer's shape[0]
    cdef Py_ssize_t one              # the buffer's strides[0]
    cdef uint32_t idx
    cdef uint32_t exports            # live buffer exports (memoryview, numpy)
    cdef bint live                   # allocated and not yet freed


# ---- the boundary for Cython code ------------------------------------------------
cdef inline tio_pool *tio_pool_of(MemoryPool pool) except NULL:
    """The C pool of ``pool`` for tio_pool_alloc / tio_pool_free from Cython
    (TypeError for None).  It does not keep the pool alive: keep the Python
    object referenced while you use it."""
    if pool is None:
        raise TypeError("expected a MemoryPool, got None")
    return pool.handle
