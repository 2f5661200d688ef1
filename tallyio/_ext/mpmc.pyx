# cython: language_level=3
"""Bounded multi-producer multi-consumer queue (Vyukov's ring) for Python.

The lock-free ring and its C API live in mpmc.pxd; this module holds its
setup/teardown and the Python class :class:`MpmcQueue`.
"""
cimport cython
from cpython.buffer cimport Py_buffer, PyBuffer_Release
from libc.stdint cimport uint64_t
from tallyio._ext.common cimport (
    tio_atomic_init_u64, tio_aligned_calloc, tio_aligned_free, tio_is_pow2,
    TIO_CACHE_LINE, TIO_OK, TIO_EMPTY, TIO_FULL,
    KIND_OBJECT, obj_to_item, item_to_obj, release_item, wait_while_busy,
)
from tallyio._ext.status cimport raise_status
from tallyio._ext.checks cimport (check_capacity, check_allocation, parse_kind, require_u64,
                                  acquire_u64_buffer, object_to_u64, wait_seconds,
                                  NOGIL_BATCH_MIN)

cdef extern from "Python.h":
    # declared without an exception clause: _item_u64 checks the error itself
    bint PyLong_CheckExact(object o)
    unsigned long long PyLong_AsUnsignedLongLong(object o)
    void PyErr_Clear()
    void *PyErr_Occurred()


# ---- setup / teardown -------------------------------------------------------
cdef tio_mpmc *tio_mpmc_new(uint64_t capacity_pow2, uint64_t start_pos) noexcept nogil:
    """A new empty ring of `capacity_pow2` slots whose positions start at
    `start_pos` (tests start near 2**64 to exercise the wrap).

    1 is rounded up to 2 (see mpmc.pxd).  Returns NULL when the capacity is
    not a power of two, exceeds TIO_MPMC_MAX_CAPACITY, or memory runs out.
    The ring is not shared yet, so plain initialisation is enough; whoever
    hands it to other threads must do so through a synchronising operation
    (starting a thread, a release store, a lock)."""
    cdef uint64_t k
    cdef tio_mpmc *q
    if capacity_pow2 == 1:
        capacity_pow2 = 2
    if not tio_is_pow2(capacity_pow2) or capacity_pow2 > TIO_MPMC_MAX_CAPACITY:
        return NULL
    q = <tio_mpmc *>tio_aligned_calloc(TIO_CACHE_LINE, sizeof(tio_mpmc))
    if q == NULL:
        return NULL
    q.slots = <tio_mpmc_slot *>tio_aligned_calloc(TIO_CACHE_LINE, capacity_pow2 * sizeof(tio_mpmc_slot))
    if q.slots == NULL:
        tio_aligned_free(q)
        return NULL
    q.capacity = capacity_pow2
    q.mask = capacity_pow2 - 1
    # Position start_pos + k starts out free in its slot: seq == its position.
    for k in range(capacity_pow2):
        tio_atomic_init_u64(&q.slots[(start_pos + k) & q.mask].seq, start_pos + k)
    tio_atomic_init_u64(&q.enqueue_pos, start_pos)
    tio_atomic_init_u64(&q.dequeue_pos, start_pos)
    return q


cdef void tio_mpmc_free(tio_mpmc *q) noexcept nogil:
    """Free a ring (NULL is fine).  No thread may use it any more; object
    items still inside must have been popped and released first."""
    if q != NULL:
        tio_aligned_free(q.slots)
        tio_aligned_free(q)


# ---- blocking waits: one non-blocking attempt each ---------------------------
cdef struct _wait_ctx:
    tio_mpmc *q
    uint64_t item           # the item to push, or where a pop puts it


cdef int _try_push(void *ctx) noexcept nogil:
    cdef _wait_ctx *c = <_wait_ctx *>ctx
    return tio_mpmc_push(c.q, c.item)


cdef int _try_pop(void *ctx) noexcept nogil:
    cdef _wait_ctx *c = <_wait_ctx *>ctx
    return tio_mpmc_pop(c.q, &c.item)


cdef uint64_t _push_all(tio_mpmc *q, const uint64_t *src, uint64_t n) noexcept nogil:
    """Push src[0:n] in batches until the ring is full; returns how many went in."""
    cdef uint64_t done = 0, k
    while done < n:
        k = tio_mpmc_push_many(q, src + done, n - done)
        if k == 0:
            break
        done += k
    return done


cdef uint64_t _pop_all(tio_mpmc *q, uint64_t *dst, uint64_t n) noexcept nogil:
    """Pop into dst[0:n] in batches until the ring is empty; returns how many came."""
    cdef uint64_t done = 0, k
    while done < n:
        k = tio_mpmc_pop_many(q, dst + done, n - done)
        if k == 0:
            break
        done += k
    return done


cdef inline uint64_t _item_u64(object item, str what) except? 0xFFFFFFFFFFFFFFFF:
    """An item for a dtype='uint64' queue: a fast path for exact ints in
    range; everything else goes through object_to_u64 for its checks and
    its error messages."""
    cdef unsigned long long v
    if PyLong_CheckExact(item):
        v = PyLong_AsUnsignedLongLong(item)
        if v != <unsigned long long>-1 or PyErr_Occurred() == NULL:
            return v
        PyErr_Clear()
    return object_to_u64(item, what)


# ---- the Python class -----------------------------------------------------------
cdef class MpmcQueue:
    """MpmcQueue(capacity, dtype=object)

    A bounded lock-free queue that any number of threads may put to and get
    from at once (Dmitry Vyukov's bounded MPMC ring).  ``capacity`` is
    rounded up to a power of two (and 1 to 2); the maximum is 2**30.

    ``dtype=object`` (default) holds Python objects by reference;
    ``dtype="uint64"`` holds ints in 0 .. 2**64-1 and also offers the nogil
    batch methods :meth:`put_many` / :meth:`get_many` over numpy arrays.
    Methods follow the stdlib :mod:`queue` vocabulary; a full queue raises
    :class:`tallyio.QueueFullError` (a :class:`queue.Full`), an empty one
    :class:`tallyio.errors.QueueEmptyError` (a :class:`queue.Empty`).

    >>> q = MpmcQueue(3)
    >>> q.capacity
    4
    >>> q.put_nowait("a"); q.put("b")
    >>> len(q), q.get_nowait(), q.get()
    (2, 'a', 'b')
    >>> q.empty()
    True
    """

    def __cinit__(self, capacity, dtype=object):
        cdef uint64_t cap = check_capacity(capacity, "MpmcQueue", TIO_MPMC_MAX_CAPACITY)
        self.kind = parse_kind(dtype, "MpmcQueue")
        if cap == 1:
            cap = 2                                # as tio_mpmc_new does (see mpmc.pxd)
        self.what = f"MpmcQueue(capacity={cap})"
        check_allocation(cap * sizeof(tio_mpmc_slot), "MpmcQueue", f"a ring of {cap} slots")
        self.handle = tio_mpmc_new(cap, 0)
        if self.handle == NULL:
            raise MemoryError(f"{self.what}: cannot allocate the ring")

    def __dealloc__(self):
        cdef uint64_t item
        if self.handle == NULL:
            return
        # No other reference to the queue exists, so no thread can be using it.
        if self.kind == KIND_OBJECT:
            while tio_mpmc_pop(self.handle, &item) == TIO_OK:
                release_item(item)          # the slot's reference, dropped once
        tio_mpmc_free(self.handle)
        self.handle = NULL

    # -- properties ----------------------------------------------------------
    @property
    def capacity(self):
        """Number of slots, after rounding up to a power of two.

        >>> MpmcQueue(1000).capacity
        1024
        """
        return self.handle.capacity

    @property
    def dtype(self):
        """``"object"`` or ``"uint64"``.

        >>> MpmcQueue(8, dtype="uint64").dtype
        'uint64'
        """
        return "object" if self.kind == KIND_OBJECT else "uint64"

    # -- single items --------------------------------------------------------
    # METH_O / METH_NOARGS: no keyword handling on the two hottest calls.
    @cython.always_allow_keywords(False)
    def put_nowait(self, item):
        """Append `item` or raise QueueFullError at once (nothing is kept).

        >>> q = MpmcQueue(2)
        >>> q.put_nowait(1); q.put_nowait(2)
        >>> q.put_nowait(3)
        Traceback (most recent call last):
        ...
        tallyio.errors.QueueFullError: MpmcQueue(capacity=2) is full
        """
        cdef uint64_t v
        if self.kind == KIND_OBJECT:
            v = obj_to_item(item)                  # +1, owned by the slot on success
            if tio_mpmc_push(self.handle, v) == TIO_OK:
                return None
            release_item(v)                        # not queued: give the reference back
        else:
            v = _item_u64(item, "MpmcQueue.put_nowait")
            if tio_mpmc_push(self.handle, v) == TIO_OK:
                return None
        return raise_status(TIO_FULL, self.what)

    @cython.always_allow_keywords(False)
    def get_nowait(self):
        """Remove and return the oldest item, or raise QueueEmptyError (a queue.Empty) at once.

        >>> q = MpmcQueue(4, dtype="uint64")
        >>> q.put_nowait(7); q.get_nowait()
        7
        """
        cdef uint64_t v
        if tio_mpmc_pop(self.handle, &v) == TIO_OK:
            if self.kind == KIND_OBJECT:
                return item_to_obj(v)              # takes over the slot's reference
            return v
        return raise_status(TIO_EMPTY, self.what)

    def put(self, item, bint block=True, timeout=None):
        """Append `item`, waiting for room if `block` (at most `timeout` seconds).

        Raises QueueFullError if no room came in time (the item is not kept).
        The GIL is released while waiting; Ctrl+C interrupts the wait.

        >>> q = MpmcQueue(2)
        >>> q.put("x", timeout=0.5); q.get()
        'x'
        """
        cdef double t = wait_seconds(block, timeout)
        cdef _wait_ctx ctx
        cdef int st
        ctx.q = self.handle
        if self.kind == KIND_OBJECT:
            ctx.item = obj_to_item(item)
            try:
                st = wait_while_busy(_try_push, &ctx, TIO_FULL, t)
            except BaseException:
                release_item(ctx.item)             # interrupted: nothing half-queued
                raise
            if st == TIO_OK:
                return None
            release_item(ctx.item)
        else:
            ctx.item = _item_u64(item, "MpmcQueue.put")
            st = wait_while_busy(_try_push, &ctx, TIO_FULL, t)
            if st == TIO_OK:
                return None
        return raise_status(st, self.what)

    def get(self, bint block=True, timeout=None):
        """Remove and return the oldest item, waiting if `block` (at most
        `timeout` seconds); raises QueueEmptyError (a queue.Empty) if none came in time.

        >>> q = MpmcQueue(2)
        >>> q.get(timeout=0.01)
        Traceback (most recent call last):
        ...
        tallyio.errors.QueueEmptyError: MpmcQueue(capacity=2) is empty
        """
        cdef double t = wait_seconds(block, timeout)
        cdef _wait_ctx ctx
        ctx.q = self.handle
        cdef int st = wait_while_busy(_try_pop, &ctx, TIO_EMPTY, t)
        if st == TIO_OK:
            if self.kind == KIND_OBJECT:
                return item_to_obj(ctx.item)
            return ctx.item
        return raise_status(st, self.what)

    # -- size ----------------------------------------------------------------
    def qsize(self):
        """Approximate number of items (exact when no other thread is active).

        >>> q = MpmcQueue(4); q.put(1); q.qsize()
        1
        """
        return tio_mpmc_size(self.handle)

    def empty(self):
        """True if the queue looked empty (approximate, like queue.Queue.empty).

        >>> MpmcQueue(4).empty()
        True
        """
        return tio_mpmc_size(self.handle) == 0

    def full(self):
        """True if the queue looked full (approximate, like queue.Queue.full).

        >>> q = MpmcQueue(2); q.put(1); q.put(2); q.full()
        True
        """
        return tio_mpmc_size(self.handle) >= self.handle.capacity

    def __len__(self):
        return tio_mpmc_size(self.handle)

    # -- batches (dtype="uint64" only) ----------------------------------------
    def put_many(self, items):
        """Append the longest prefix of `items` that fits; return its length.

        `items` is a 1-D C-contiguous numpy uint64 array (read-only is fine).
        Runs without the GIL; needs a queue built with dtype="uint64".

        >>> import numpy as np
        >>> q = MpmcQueue(4, dtype="uint64")
        >>> q.put_many(np.arange(6, dtype=np.uint64))
        4
        """
        cdef Py_buffer view
        cdef const uint64_t *src
        cdef uint64_t n, done
        require_u64(self.kind, self.what, "put_many")
        acquire_u64_buffer(items, &view, False, "MpmcQueue.put_many")
        src = <const uint64_t *>view.buf
        n = <uint64_t>view.shape[0]
        if n >= NOGIL_BATCH_MIN:
            with nogil:
                done = _push_all(self.handle, src, n)
        else:
            done = _push_all(self.handle, src, n)
        PyBuffer_Release(&view)
        return done

    def get_many(self, out):
        """Fill a prefix of `out` with the oldest items; return how many.

        `out` is a writable 1-D C-contiguous numpy uint64 array.  Runs without
        the GIL; needs a queue built with dtype="uint64".

        >>> import numpy as np
        >>> q = MpmcQueue(8, dtype="uint64")
        >>> q.put_many(np.array([5, 6, 7], dtype=np.uint64))
        3
        >>> out = np.zeros(4, dtype=np.uint64)
        >>> q.get_many(out), out.tolist()
        (3, [5, 6, 7, 0])
        """
        cdef Py_buffer view
        cdef uint64_t *dst
        cdef uint64_t n, done
        require_u64(self.kind, self.what, "get_many")
        acquire_u64_buffer(out, &view, True, "MpmcQueue.get_many")
        dst = <uint64_t *>view.buf
        n = <uint64_t>view.shape[0]
        if n >= NOGIL_BATCH_MIN:
            with nogil:
                done = _pop_all(self.handle, dst, n)
        else:
            done = _pop_all(self.handle, dst, n)
        PyBuffer_Release(&view)
        return done

    def __repr__(self):
        return (f"MpmcQueue(capacity={self.handle.capacity}, dtype={self.dtype!r}) "
                f"with {tio_mpmc_size(self.handle)} items")
