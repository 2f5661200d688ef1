# cython: language_level=3, binding=False, always_allow_keywords=False, embedsignature.format=clinic
# binding=False: methods are plain method descriptors, which CPython's call
# specialisation handles (METH_NOARGS/METH_O), ~10 ns less per call than
# cyfunctions; clinic-format signatures keep inspect.signature() working.
"""MemoryPool and Block: fixed-size, aligned, lock-free blocks of memory.

The C core (declared in pool.pxd) is a Treiber stack of block indices with a
pop-counting tag against ABA; this module adds setup/teardown and the Python
face.  See pool.pxd for the C API and tallyio/_ext/README.md for the protocol.

    >>> from tallyio import MemoryPool
    >>> pool = MemoryPool(64, 4)
    >>> with pool.block() as b:
    ...     memoryview(b)[:5] = b"hello"
    ...     bytes(memoryview(b)[:5])
    b'hello'
    >>> pool.stats()
    PoolStats(capacity=4, in_use=0, high_water=1, block_size=64)
"""
cimport cython
from cpython.buffer cimport PyBUF_FORMAT
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from tallyio._ext.common cimport (
    tio_atomic_init_u64, tio_atomic_init_u32, tio_atomic_init_u8,
    tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
    tio_atomic_load_u32_relaxed, tio_atomic_store_u32_relaxed,
    tio_atomic_cas_u64_relaxed, tio_atomic_cas_u64_acquire,
    tio_atomic_cas_u64_release,
    tio_atomic_fetch_add_u64_relaxed, tio_atomic_fetch_sub_u64_relaxed,
    tio_aligned_calloc, tio_aligned_free, tio_is_pow2,
    TIO_CACHE_LINE, TIO_OK, TIO_EXHAUSTED, TIO_UNLIKELY,
)
from tallyio._ext.status cimport raise_status
from tallyio._ext.checks cimport check_size, check_allocation

from collections import namedtuple

from tallyio.errors import BlockError

__all__ = ["MemoryPool", "Block", "PoolStats"]


# ============================================================================
# C setup / teardown
# ============================================================================

cdef tio_pool *tio_pool_new(uint64_t block_size, uint64_t block_count,
                            uint64_t alignment) noexcept nogil:
    """A pool of `block_count` blocks of `block_size` bytes, each aligned to
    `alignment` (a power of two in 8..4096).  NULL when an argument is out of
    range, the total exceeds TIO_POOL_MAX_BYTES, or memory runs out.

    One allocation holds the header and the per-block metadata, another (the
    only one the blocks come from) the blocks; both are zeroed here, which
    first-touches their pages on the calling thread's NUMA node."""
    cdef uint64_t stride, span, odd, shift, inverse, i, _step
    cdef size_t header_bytes, meta_bytes, base_alignment
    cdef tio_pool *p
    cdef char *raw
    if (block_size < 1 or block_count < 1 or block_count > TIO_POOL_MAX_CAPACITY
            or alignment < TIO_POOL_MIN_ALIGNMENT or alignment > TIO_POOL_MAX_ALIGNMENT
            or not tio_is_pow2(alignment) or block_size > TIO_POOL_MAX_BYTES):
        return NULL
    stride = (block_size + alignment - 1) & ~(alignment - 1)
    if block_count > TIO_POOL_MAX_BYTES // stride:
        return NULL
    span = stride * block_count

    # header, then next[block_count] (u32), then state[block_count] (u8)
    header_bytes = (sizeof(tio_pool) + TIO_CACHE_LINE - 1) & ~(<size_t>TIO_CACHE_LINE - 1)
    meta_bytes = header_bytes + block_count * sizeof(tio_atomic_u32) + block_count * sizeof(tio_atomic_u8)
    raw = <char *>tio_aligned_calloc(TIO_CACHE_LINE, meta_bytes)
    if raw == NULL:
        return NULL
    p = <tio_pool *>raw
    p.next = <tio_atomic_u32 *>(raw + header_bytes)
    p.state = <tio_atomic_u8 *>(raw + header_bytes + block_count * sizeof(tio_atomic_u32))

    # blocks start on a cache line at least, so alignment=8 pools do not
    # share their first line with someone else's data
    base_alignment = alignment if alignment > TIO_CACHE_LINE else TIO_CACHE_LINE
    p.base = <char *>tio_aligned_calloc(base_alignment, span)
    if p.base == NULL:
        tio_aligned_free(raw)
        return NULL

    p.block_size = block_size
    p.stride = stride
    p.block_count = block_count
    p.alignment = alignment
    p.span = span
    # stride = odd << shift; inverse = odd^-1 mod 2**64 by Newton's iteration
    # (x = odd is right to 3 bits; each step doubles that: 6, 12, 24, 48, 96)
    shift = 0
    odd = stride
    while (odd & 1) == 0:
        odd >>= 1
        shift += 1
    inverse = odd
    for _step in range(5):
        inverse *= 2 - odd * inverse
    p.div_shift = shift
    p.low_mask = (<uint64_t>1 << shift) - 1
    p.div_inverse = inverse

    # every block free: 0 -> 1 -> ... -> count-1 -> NIL, head = (tag 0, 0)
    for i in range(block_count - 1):
        tio_atomic_init_u32(&p.next[i], <uint32_t>(i + 1))
    tio_atomic_init_u32(&p.next[block_count - 1], TIO_POOL_NIL)
    for i in range(block_count):
        tio_atomic_init_u8(&p.state[i], TIO_POOL_FREE)
    tio_atomic_init_u64(&p.head, 0)
    tio_atomic_init_u64(&p.in_use, 0)
    tio_atomic_init_u64(&p.high_water, 0)
    # The pool is handed to other threads by whatever publishes the pointer
    # (a Python attribute under the GIL, a release store in the scheduler).
    return p


cdef void tio_pool_free_all(tio_pool *p) noexcept nogil:
    """Destroy the pool.  Every block becomes invalid; nobody may use it."""
    if p == NULL:
        return
    tio_aligned_free(p.base)
    tio_aligned_free(p)      # header and metadata were one allocation


cdef void tio_pool_raise_high_water(tio_pool *p, uint64_t n) noexcept nogil:
    """high_water = max(high_water, n): the rare path of an alloc that set a
    new maximum, so the stats line sees a write only then."""
    # relaxed: a statistic; the CAS only keeps concurrent raisers monotonic
    cdef uint64_t seen = tio_atomic_load_u64_relaxed(&p.high_water)
    while n > seen:
        if tio_atomic_cas_u64_relaxed(&p.high_water, &seen, n):
            return


cdef int tio_pool_cache_refill(tio_pool_cache *c) noexcept nogil:
    """Move up to half a cache of indices from the shared list into the
    (empty) cache with one CAS.  Returns how many came (0: pool exhausted).

    Safe for the same reason as a single pop: if head still holds the tag we
    read, nothing was popped meanwhile, so the chain we walked below the top
    is still the top of the list (pushes would have changed head's index)."""
    cdef tio_pool *p = c.pool
    cdef uint32_t want = TIO_POOL_CACHE_SIZE // 2
    cdef uint32_t n, i, below
    cdef uint64_t got, hw
    # acquire: pairs with the release CAS of every push before the value we
    # read (all later changes of head are RMWs, extending each release
    # sequence), so next[] along the chain is visible
    cdef uint64_t old = tio_atomic_load_u64_acquire(&p.head)
    while True:
        i = <uint32_t>(old & TIO_POOL_INDEX_MASK)
        if i == TIO_POOL_NIL:
            return 0
        n = 0
        while True:
            c.indices[n] = i
            n += 1
            # relaxed: a stale value only matters if the chain changed, and
            # then a pop changed the tag and the CAS below fails
            below = tio_atomic_load_u32_relaxed(&p.next[i])
            if n == want or below == TIO_POOL_NIL:
                break
            i = below
        # acquire: as the load above; the tag bump defeats ABA
        if tio_atomic_cas_u64_acquire(&p.head, &old,
                                      ((old & TIO_POOL_TAG_MASK) + TIO_POOL_TAG_ONE) | below):
            break
    # the cache keeps them in pop order reversed, so the top of the shared
    # list (most recently freed, warmest) is handed out first
    for i in range(n // 2):
        below = c.indices[i]
        c.indices[i] = c.indices[n - 1 - i]
        c.indices[n - 1 - i] = below
    c.count = n
    # relaxed: statistics (cached blocks count as in use)
    got = tio_atomic_fetch_add_u64_relaxed(&p.in_use, n) + n
    hw = tio_atomic_load_u64_relaxed(&p.high_water)
    if got > hw:
        tio_pool_raise_high_water(p, got)
    return n


cdef void tio_pool_cache_flush(tio_pool_cache *c, uint32_t keep) noexcept nogil:
    """Give all but `keep` cached indices back to the shared list with one CAS
    (keep=0 empties the cache: do that before the owner thread exits)."""
    cdef tio_pool *p = c.pool
    cdef uint32_t j, n
    cdef uint64_t old
    if c.count <= keep:
        return
    n = c.count - keep
    # give back the oldest entries (bottom of the cache stack), keep the
    # most recently freed (warmest) ones
    # link indices[0] -> indices[1] -> ... -> indices[n-1] privately
    # (relaxed: the release CAS below publishes them)
    for j in range(n - 1):
        tio_atomic_store_u32_relaxed(&p.next[c.indices[j]], c.indices[j + 1])
    # relaxed: the value only seeds the CAS
    old = tio_atomic_load_u64_relaxed(&p.head)
    while True:
        tio_atomic_store_u32_relaxed(&p.next[c.indices[n - 1]],
                                     <uint32_t>(old & TIO_POOL_INDEX_MASK))
        # release: pairs with the acquire pop/refill that takes these blocks
        if tio_atomic_cas_u64_release(&p.head, &old,
                                      (old & TIO_POOL_TAG_MASK) | c.indices[0]):
            break
    for j in range(keep):
        c.indices[j] = c.indices[n + j]
    c.count = keep
    # relaxed: a statistic
    tio_atomic_fetch_sub_u64_relaxed(&p.in_use, n)


# ============================================================================
# Python face
# ============================================================================

PoolStats = namedtuple("PoolStats", ["capacity", "in_use", "high_water", "block_size"])
PoolStats.__doc__ = """Statistics of a MemoryPool at one moment.

capacity: number of blocks; in_use: blocks allocated now; high_water: most
blocks ever allocated at once; block_size: usable bytes per block.

    >>> from tallyio import MemoryPool
    >>> MemoryPool(32, 8).stats()
    PoolStats(capacity=8, in_use=0, high_water=0, block_size=32)
"""
PoolStats.__module__ = "tallyio._ext.pool"


cdef uint64_t _MAX_BYTES = TIO_POOL_MAX_BYTES


@cython.final
cdef class MemoryPool:
    """MemoryPool(block_size, block_count, *, alignment=64)
--

    `block_count` blocks of `block_size` bytes each, carved from one aligned
    allocation made (and zeroed) here, handed out and taken back lock-free.
    Every block starts on a multiple of `alignment` (a power of two, 8..4096;
    the default 64 keeps blocks off each other's cache lines).

    alloc() returns a :class:`Block` (PoolExhaustedError when none is free),
    free(block) gives it back; ``with pool.block() as b:`` frees on exit.
    A Block is a writable buffer: ``memoryview(b)`` and
    ``numpy.frombuffer(b, dtype)`` see the block's memory without a copy.

        >>> from tallyio import MemoryPool
        >>> pool = MemoryPool(256, 2)
        >>> a = pool.alloc(); b = pool.alloc()
        >>> a.address % 64, len(a), pool.stats().in_use
        (0, 256, 2)
        >>> pool.alloc()
        Traceback (most recent call last):
            ...
        tallyio.errors.PoolExhaustedError: MemoryPool(block_size=256, block_count=2) has no free block
        >>> pool.free(a); pool.free(b)
        >>> pool.stats().in_use
        0
    """

    def __cinit__(self, block_size, block_count, *, alignment=64):
        cdef uint64_t size = check_size(block_size, "MemoryPool", "'block_size'", _MAX_BYTES)
        cdef uint64_t count = check_size(block_count, "MemoryPool", "'block_count'", TIO_POOL_MAX_CAPACITY)
        if isinstance(alignment, bool) or not isinstance(alignment, int):
            raise TypeError(f"MemoryPool: 'alignment' must be an int, got {type(alignment).__name__}")
        if not (TIO_POOL_MIN_ALIGNMENT <= alignment <= TIO_POOL_MAX_ALIGNMENT) or alignment & (alignment - 1):
            raise ValueError(f"MemoryPool: 'alignment' must be a power of two from "
                             f"{TIO_POOL_MIN_ALIGNMENT} to {TIO_POOL_MAX_ALIGNMENT}, got {alignment}")
        cdef uint64_t align = <uint64_t>alignment
        stride = (block_size + alignment - 1) // alignment * alignment
        total = stride * block_count
        if total > _MAX_BYTES:
            raise ValueError(f"MemoryPool: {block_count} blocks of {stride} bytes "
                             f"(block_size {block_size} rounded up to alignment {alignment}) "
                             f"need {total} bytes, more than the {_MAX_BYTES}-byte limit")
        needed = total + block_count * 5     # + next[] and state[]
        check_allocation(needed, "MemoryPool", f"{block_count} blocks of {stride} bytes")
        with nogil:
            self.handle = tio_pool_new(size, count, align)
        self.what = f"MemoryPool(block_size={block_size}, block_count={block_count})"
        if self.handle == NULL:
            raise MemoryError(f"MemoryPool: could not allocate {needed} bytes for "
                              f"{block_count} blocks of {stride} bytes")

    def __dealloc__(self):
        # Every Block holds a reference to its pool, so no Block object can
        # still point into the memory freed here.
        tio_pool_free_all(self.handle)
        self.handle = NULL

    def alloc(self):
        """Take a free block: a :class:`Block` of `block_size` bytes.

        Raises PoolExhaustedError (a MemoryError) when every block is in use.
        The block's contents are whatever its previous holder left (zeros at
        first).

            >>> from tallyio import MemoryPool
            >>> pool = MemoryPool(16, 1)
            >>> b = pool.alloc()
            >>> b.index, len(b), b.freed
            (0, 16, False)
            >>> pool.free(b)
        """
        cdef uint32_t index = 0   # (set by alloc; initialised for -Wmaybe-uninitialized)
        if TIO_UNLIKELY(tio_pool_alloc_index(self.handle, &index) != TIO_OK):
            raise_status(TIO_EXHAUSTED, self.what)
        cdef Block b = Block.__new__(Block)
        b.owner = self
        b.ptr = <char *>tio_pool_block_ptr(self.handle, index)
        b.size = <Py_ssize_t>self.handle.block_size
        b.one = 1
        b.idx = index
        b.exports = 0
        b.live = True
        return b

    def free(self, Block block not None, /):
        """Give `block` back to the pool.

        BlockError if it was already freed or belongs to another pool (the
        pool is untouched); BufferError while a memoryview or numpy array of
        the block is alive (the block stays allocated: drop the views, then
        free again).

            >>> from tallyio import MemoryPool
            >>> pool = MemoryPool(16, 1)
            >>> b = pool.alloc()
            >>> pool.free(b)
            >>> pool.free(b)
            Traceback (most recent call last):
                ...
            tallyio.errors.BlockError: MemoryPool(block_size=16, block_count=1): block 0 freed twice
        """
        _free_block(self, block)

    def block(self):
        """Allocate a block for a ``with`` statement, which frees it on exit
        (also when the body raises).

        Views must not outlive the block: ``del`` a numpy array made with
        ``numpy.frombuffer(b)`` (or release the memoryview) inside the body.
        A view still alive at exit makes the exit raise BufferError (as
        mmap.close() does); the block then stays allocated and goes back to
        the pool once the views and the Block are gone, so nothing leaks.

            >>> from tallyio import MemoryPool
            >>> pool = MemoryPool(8, 1)
            >>> with pool.block() as b:
            ...     pool.stats().in_use
            1
            >>> pool.stats().in_use, b.freed
            (0, True)
        """
        return self.alloc()

    def stats(self):
        """A :class:`PoolStats` (capacity, in_use, high_water, block_size).

        in_use and high_water are read without stopping other threads, so
        under concurrent use they are a recent, not an instantaneous, value."""
        return PoolStats(self.handle.block_count, tio_pool_in_use(self.handle),
                         tio_pool_high_water(self.handle), self.handle.block_size)

    @property
    def block_size(self):
        """Usable bytes per block (as requested)."""
        return self.handle.block_size

    @property
    def block_count(self):
        """Number of blocks (the pool's capacity)."""
        return self.handle.block_count

    @property
    def alignment(self):
        """Every block address is a multiple of this."""
        return self.handle.alignment

    def __repr__(self):
        return (f"<tallyio.MemoryPool block_size={self.handle.block_size} "
                f"block_count={self.handle.block_count} alignment={self.handle.alignment} "
                f"in_use={tio_pool_in_use(self.handle)}>")

    def __reduce__(self):
        raise TypeError("MemoryPool objects cannot be pickled or copied: they own raw memory")


cdef inline int _free_block(MemoryPool pool, Block block) except -1:
    """MemoryPool.free and Block.__exit__: every check, then the C free."""
    cdef int status
    if TIO_UNLIKELY(block.owner is not pool):
        _foreign(pool, block)
    if TIO_UNLIKELY(not block.live or block.exports != 0):
        _not_freeable(pool, block)
    status = tio_pool_free_index(pool.handle, block.idx)
    if TIO_UNLIKELY(status != TIO_OK):
        # only reachable when C code freed this block behind the Block's back
        raise_status(status, pool.what)
    block.live = False
    return 0


cdef int _foreign(MemoryPool pool, Block block) except -1:
    if block.owner is None:
        raise BlockError(f"{pool.what}: {block!r} is not a block of any pool")
    raise BlockError(f"{pool.what}: block {block.idx} belongs to another pool "
                     f"({block.owner.what})")


cdef int _not_freeable(MemoryPool pool, Block block) except -1:
    if not block.live:
        raise BlockError(f"{pool.what}: block {block.idx} freed twice")
    raise BufferError(f"{pool.what}: block {block.idx} still has {block.exports} "
                      f"exported view(s) (memoryview or numpy array); release them "
                      f"before freeing it (the block stays allocated)")


@cython.final
@cython.no_gc
@cython.freelist(64)
cdef class Block:
    """One block of a :class:`MemoryPool` (made by ``pool.alloc()`` only).

    A writable 1-D buffer of ``len(block)`` unsigned bytes: memoryview(block)
    and numpy.frombuffer(block, dtype) share its memory, no copy.  A block
    cannot be freed while such a view is alive (BufferError), and using a
    freed block raises BlockError.  A Block that is garbage-collected without
    being freed returns its block to the pool.

        >>> import numpy as np
        >>> from tallyio import MemoryPool
        >>> pool = MemoryPool(64, 1)
        >>> with pool.alloc() as b:
        ...     a = np.frombuffer(b, dtype=np.uint64)
        ...     a[0] = 7
        ...     memoryview(b)[0]
        ...     del a
        7
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("Block objects are made by MemoryPool.alloc() or MemoryPool.block(), "
                        "not directly")

    def __dealloc__(self):
        # A block nobody freed goes back to the pool.  No view can be alive
        # (each holds a reference to this Block), and `owner` is still set:
        # Cython clears attributes after __dealloc__, and no_gc means no
        # tp_clear can have run before it.
        if self.live:
            self.live = False
            tio_pool_free_index(self.owner.handle, self.idx)

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if not self.live:
            raise BlockError(_freed_message(self))
        buffer.buf = self.ptr
        buffer.obj = self
        buffer.len = self.size
        buffer.readonly = 0
        buffer.itemsize = 1
        buffer.format = NULL            # NULL means unsigned bytes ("B")
        if flags & PyBUF_FORMAT:
            buffer.format = b"B"
        buffer.ndim = 1
        buffer.shape = &self.size
        buffer.strides = &self.one
        buffer.suboffsets = NULL
        buffer.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *buffer):
        self.exports -= 1

    def __len__(self):
        return self.size

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback, /):
        # idempotent: a block already freed in the body is left alone
        if self.live:
            _free_block(self.owner, self)

    @property
    def address(self):
        """The block's address (an int), a multiple of the pool's alignment."""
        return <uintptr_t>self.ptr

    @property
    def index(self):
        """The block's position in its pool, 0 .. block_count-1."""
        return self.idx

    @property
    def pool(self):
        """The MemoryPool this block belongs to."""
        return self.owner

    @property
    def freed(self):
        """True once the block was given back to its pool."""
        return not self.live

    def __repr__(self):
        if self.owner is None:
            return "<tallyio.Block (not from a pool)>"
        state = "freed" if not self.live else "in use"
        return (f"<tallyio.Block index={self.idx} size={self.size} "
                f"address={<uintptr_t>self.ptr:#x} {state}>")

    def __reduce__(self):
        raise TypeError("Block objects cannot be pickled or copied: they are views of pool memory")


cdef str _freed_message(Block block):
    if block.owner is None:
        return f"{block!r} is not a block of any pool"
    return f"{block.owner.what}: block {block.idx} was freed; it can no longer be used"
