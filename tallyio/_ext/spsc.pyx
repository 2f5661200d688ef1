# cython: language_level=3
"""SpscQueue: a bounded single-producer single-consumer queue.

The fastest way to hand items from one thread to another: a ring of 64-bit
slots with the producer's and consumer's indices on separate cache lines
(the C API and its protocol are in spsc.pxd and tallyio/_ext/README.md).

    >>> from tallyio import SpscQueue
    >>> q = SpscQueue(4)
    >>> q.put_nowait("a"); q.put_nowait("b")
    >>> q.get_nowait(), q.qsize()
    ('a', 1)
"""
cimport cython
from cpython.buffer cimport Py_buffer, PyBuffer_Release
from cpython.ref cimport Py_DECREF
from libc.stdint cimport uint64_t

cdef extern from "<sched.h>" nogil:
    int sched_yield()

from tallyio._ext.common cimport (KIND_OBJECT, TIO_OK, TIO_EMPTY,
                                  TIO_FULL, TIO_CACHE_LINE, TIO_LIKELY,
                                  tio_aligned_calloc, tio_aligned_free,
                                  tio_atomic_init_u64, tio_atomic_load_u64_relaxed,
                                  tio_is_pow2, obj_to_item, item_to_obj,
                                  release_item, try_fn, wait_while_busy)
from tallyio._ext.status cimport raise_status
from tallyio._ext.checks cimport (role_claim, check_capacity, check_allocation, parse_kind,
                                  require_u64, acquire_u64_buffer, object_to_u64,
                                  wait_seconds, NOGIL_BATCH_MIN)

__all__ = ["SpscQueue"]


cdef inline void _yield_after_no_progress() noexcept nogil:
    # A batch call that moved nothing is being polled: the peer must run
    # before anything changes.  Yielding the CPU while the GIL is free lets a
    # Python peer thread (woken by the GIL release) take the GIL now, instead
    # of after sys.getswitchinterval() (5 ms).  Measured on two Python threads
    # polling put_many/get_many: 1.9 s -> 3 ms for 10**6 items.
    sched_yield()


# ---- setup / teardown ----------------------------------------------------------
cdef tio_spsc *tio_spsc_new(uint64_t capacity_pow2, uint64_t start_index) noexcept nogil:
    """A ring of `capacity_pow2` slots (a power of two, at most
    TIO_SPSC_MAX_CAPACITY) whose indices both start at `start_index` (tests
    start near 2**64 to exercise the wrap).  NULL on a bad capacity or when
    memory runs out.  One aligned allocation: header lines, then the slots."""
    if not tio_is_pow2(capacity_pow2) or capacity_pow2 > TIO_SPSC_MAX_CAPACITY:
        return NULL
    cdef char *mem = <char *>tio_aligned_calloc(
        TIO_CACHE_LINE, sizeof(tio_spsc) + capacity_pow2 * sizeof(uint64_t))
    if mem == NULL:
        return NULL
    cdef tio_spsc *q = <tio_spsc *>mem
    q.capacity = capacity_pow2
    q.mask = capacity_pow2 - 1
    q.slots = <uint64_t *>(mem + sizeof(tio_spsc))   # sizeof is a whole number of lines
    tio_atomic_init_u64(&q.tail, start_index)
    tio_atomic_init_u64(&q.head, start_index)
    q.head_cache = start_index
    q.tail_cache = start_index
    return q


cdef void tio_spsc_free(tio_spsc *q) noexcept nogil:
    """Free the ring.  Queued items are not released (SpscQueue does that)."""
    tio_aligned_free(q)


# ---- blocking waits: one non-blocking attempt, driven by wait_while_busy -------
cdef struct _push_ctx:
    tio_spsc *q
    uint64_t item

cdef struct _pop_ctx:
    tio_spsc *q
    uint64_t item


cdef int _try_push(void *ctx) noexcept nogil:
    cdef _push_ctx *c = <_push_ctx *>ctx
    return tio_spsc_push(c.q, c.item)


cdef int _try_pop(void *ctx) noexcept nogil:
    cdef _pop_ctx *c = <_pop_ctx *>ctx
    return tio_spsc_pop(c.q, &c.item)


@cython.final
cdef class SpscQueue:
    """SpscQueue(capacity, dtype=object)

    A bounded FIFO queue for exactly one producer thread and one consumer
    thread, lock-free and wait-free: ``put_nowait``/``get_nowait`` never
    block and never take a lock.

    ``capacity`` is rounded up to the next power of two (at most 2**30);
    the ``capacity`` property reports the real number of slots.

    ``dtype=object`` (default) queues Python objects by reference.
    ``dtype="uint64"`` queues ints in 0 .. 2**64-1 and enables ``put_many``/
    ``get_many``, which copy numpy uint64 arrays without the GIL.

    Roles: the first thread that calls a put method becomes the producer,
    the first that calls a get method the consumer (the same thread may be
    both).  Another thread using a role while its holder is alive raises
    :class:`~tallyio.RoleError`; the role passes on when its thread exits.
    ``qsize``/``empty``/``full``/``len`` may be called from any thread
    (a snapshot under concurrency).

    >>> q = SpscQueue(3)             # rounded up to 4 slots
    >>> q.capacity
    4
    >>> for tick in range(4):
    ...     q.put_nowait(tick)
    >>> q.full()
    True
    >>> q.put_nowait(4)
    Traceback (most recent call last):
    ...
    tallyio.errors.QueueFullError: SpscQueue(capacity=4) is full
    >>> [q.get_nowait() for _ in range(4)]
    [0, 1, 2, 3]
    """

    def __cinit__(self, capacity, dtype=object, *, uint64_t _start_index=0):
        # _start_index is private, for tests: both indices start there
        # (near 2**64 to exercise the wrap of the free-running counters).
        cdef uint64_t slots = check_capacity(capacity, "SpscQueue", TIO_SPSC_MAX_CAPACITY)
        self.kind = parse_kind(dtype, "SpscQueue")
        self.what = f"SpscQueue(capacity={slots})"
        self._producer_what = f"the producer role of {self.what}"
        self._consumer_what = f"the consumer role of {self.what}"
        self._put_many_what = f"{self.what}.put_many"
        self._get_many_what = f"{self.what}.get_many"
        self._producer.ident = 0
        self._consumer.ident = 0
        check_allocation(slots * sizeof(uint64_t), "SpscQueue", f"a ring of {slots} slots")
        self.handle = tio_spsc_new(slots, _start_index)
        if self.handle == NULL:
            raise MemoryError(f"{self.what}: out of memory")

    def __dealloc__(self):
        # Nobody else can reach the queue now.  Release the references that
        # queued objects still hold, exactly once, with the GIL.
        cdef uint64_t head, tail
        if self.handle == NULL:
            return
        if self.kind == KIND_OBJECT:
            head = tio_atomic_load_u64_relaxed(&self.handle.head)
            tail = tio_atomic_load_u64_relaxed(&self.handle.tail)
            while head != tail:
                release_item(self.handle.slots[head & self.handle.mask])
                head += 1
        tio_spsc_free(self.handle)
        self.handle = NULL

    # ---- producer ---------------------------------------------------------
    @cython.always_allow_keywords(False)
    def put_nowait(self, item):
        """put_nowait(item)

        Append `item` without waiting; raise QueueFullError (a queue.Full)
        if there is no room (the item is not taken).

        >>> q = SpscQueue(1)
        >>> q.put_nowait("order")
        >>> q.get_nowait()
        'order'
        """
        role_claim(&self._producer, self._producer_what)
        cdef uint64_t slot
        if self.kind == KIND_OBJECT:
            slot = obj_to_item(item)
            if TIO_LIKELY(tio_spsc_push(self.handle, slot) == TIO_OK):
                return
            Py_DECREF(item)               # not queued: give the reference back
        else:
            slot = object_to_u64(item, self.what)
            if TIO_LIKELY(tio_spsc_push(self.handle, slot) == TIO_OK):
                return
        raise_status(TIO_FULL, self.what)

    def put(self, item, block=True, timeout=None):
        """put(item, block=True, timeout=None)

        Append `item`, waiting for room like queue.Queue.put: forever when
        `timeout` is None, at most `timeout` seconds otherwise, not at all
        when `block` is false.  Raises QueueFullError if still full; the GIL
        is released while waiting and Ctrl+C interrupts the wait.  An item
        that could not be queued is not kept.

        >>> q = SpscQueue(1)
        >>> q.put(1)
        >>> q.put(2, timeout=0.01)
        Traceback (most recent call last):
        ...
        tallyio.errors.QueueFullError: SpscQueue(capacity=1) is full
        """
        role_claim(&self._producer, self._producer_what)
        cdef double wait = wait_seconds(block, timeout)
        cdef _push_ctx ctx
        cdef int status
        ctx.q = self.handle
        if self.kind == KIND_OBJECT:
            ctx.item = obj_to_item(item)
        else:
            ctx.item = object_to_u64(item, self.what)
        try:
            status = wait_while_busy(<try_fn>_try_push, &ctx, TIO_FULL, wait)
        except BaseException:
            if self.kind == KIND_OBJECT:
                Py_DECREF(item)           # interrupted: not queued
            raise
        if status != TIO_OK:
            if self.kind == KIND_OBJECT:
                Py_DECREF(item)           # timed out: not queued
            raise_status(status, self.what)

    @cython.always_allow_keywords(False)
    def put_many(self, arr):
        """put_many(arr) -> int

        Append the longest prefix of the 1-D uint64 array `arr` that fits and
        return its length (0 when full).  Only for dtype="uint64" queues;
        batches of 256 items or more are copied without the GIL.  A call
        that moves nothing yields the CPU once (without the GIL), so a
        consumer thread polling the other end gets to run.

        >>> import numpy as np
        >>> q = SpscQueue(4, dtype="uint64")
        >>> q.put_many(np.arange(6, dtype=np.uint64))
        4
        """
        cdef Py_buffer view
        cdef uint64_t n, wanted
        require_u64(self.kind, self.what, "put_many")
        role_claim(&self._producer, self._producer_what)
        acquire_u64_buffer(arr, &view, False, self._put_many_what)
        wanted = <uint64_t>view.shape[0]
        if wanted >= NOGIL_BATCH_MIN:
            with nogil:
                n = tio_spsc_push_many(self.handle, <const uint64_t *>view.buf, wanted)
                if n == 0:
                    _yield_after_no_progress()
        else:
            n = tio_spsc_push_many(self.handle, <const uint64_t *>view.buf, wanted)
            if n == 0 and wanted != 0:
                with nogil:
                    _yield_after_no_progress()
        PyBuffer_Release(&view)
        return n

    # ---- consumer ---------------------------------------------------------
    @cython.always_allow_keywords(False)
    def get_nowait(self):
        """get_nowait()

        Remove and return the oldest item without waiting; raise QueueEmptyError (a queue.Empty)
        if there is none.

        >>> q = SpscQueue(2, dtype="uint64")
        >>> q.put_nowait(2**64 - 1)
        >>> q.get_nowait()
        18446744073709551615
        """
        role_claim(&self._consumer, self._consumer_what)
        cdef uint64_t slot
        if TIO_LIKELY(tio_spsc_pop(self.handle, &slot) == TIO_OK):
            if self.kind == KIND_OBJECT:
                return item_to_obj(slot)
            return slot
        raise_status(TIO_EMPTY, self.what)

    def get(self, block=True, timeout=None):
        """get(block=True, timeout=None)

        Remove and return the oldest item, waiting like queue.Queue.get:
        forever when `timeout` is None, at most `timeout` seconds otherwise,
        not at all when `block` is false.  Raises QueueEmptyError (a queue.Empty) if nothing
        came; the GIL is released while waiting.

        >>> q = SpscQueue(2)
        >>> q.put("fill")
        >>> q.get(timeout=1.0)
        'fill'
        >>> q.get(timeout=0.01)
        Traceback (most recent call last):
        ...
        tallyio.errors.QueueEmptyError: SpscQueue(capacity=2) is empty
        """
        role_claim(&self._consumer, self._consumer_what)
        cdef double wait = wait_seconds(block, timeout)
        cdef _pop_ctx ctx
        ctx.q = self.handle
        ctx.item = 0
        cdef int status = wait_while_busy(<try_fn>_try_pop, &ctx, TIO_EMPTY, wait)
        if status != TIO_OK:
            raise_status(status, self.what)
        if self.kind == KIND_OBJECT:
            return item_to_obj(ctx.item)
        return ctx.item

    @cython.always_allow_keywords(False)
    def get_many(self, out):
        """get_many(out) -> int

        Move up to len(out) of the oldest items into the writable 1-D uint64
        array `out` (a prefix of it) and return how many.  Only for
        dtype="uint64" queues; batches of 256 items or more are copied
        without the GIL.  A call that moves nothing yields the CPU once
        (without the GIL), so a producer thread polling the other end gets
        to run.

        >>> import numpy as np
        >>> q = SpscQueue(8, dtype="uint64")
        >>> q.put_many(np.array([7, 8, 9], dtype=np.uint64))
        3
        >>> out = np.zeros(4, dtype=np.uint64)
        >>> q.get_many(out), out.tolist()
        (3, [7, 8, 9, 0])
        """
        cdef Py_buffer view
        cdef uint64_t n, wanted
        require_u64(self.kind, self.what, "get_many")
        role_claim(&self._consumer, self._consumer_what)
        acquire_u64_buffer(out, &view, True, self._get_many_what)
        wanted = <uint64_t>view.shape[0]
        if wanted >= NOGIL_BATCH_MIN:
            with nogil:
                n = tio_spsc_pop_many(self.handle, <uint64_t *>view.buf, wanted)
                if n == 0:
                    _yield_after_no_progress()
        else:
            n = tio_spsc_pop_many(self.handle, <uint64_t *>view.buf, wanted)
            if n == 0 and wanted != 0:
                with nogil:
                    _yield_after_no_progress()
        PyBuffer_Release(&view)
        return n

    # ---- any thread -------------------------------------------------------
    @cython.always_allow_keywords(False)
    def qsize(self):
        """qsize() -> int

        Number of queued items (a snapshot while the other side is active).

        >>> q = SpscQueue(8); q.put_nowait(None); q.qsize()
        1
        """
        return tio_spsc_size(self.handle)

    @cython.always_allow_keywords(False)
    def empty(self):
        """empty() -> bool

        True if nothing is queued (a snapshot while the other side is active).

        >>> SpscQueue(8).empty()
        True
        """
        return tio_spsc_size(self.handle) == 0

    @cython.always_allow_keywords(False)
    def full(self):
        """full() -> bool

        True if every slot is taken (a snapshot while the other side is active).

        >>> q = SpscQueue(1); q.put_nowait(0); q.full()
        True
        """
        return tio_spsc_size(self.handle) == self.handle.capacity

    def __len__(self):
        return tio_spsc_size(self.handle)

    @property
    def capacity(self):
        """Number of slots: the requested capacity rounded up to a power of two.

        >>> SpscQueue(1000).capacity
        1024
        """
        return self.handle.capacity

    @property
    def dtype(self):
        """'object' (items are Python objects) or 'uint64' (items are ints).

        >>> SpscQueue(8, dtype="uint64").dtype
        'uint64'
        """
        return "object" if self.kind == KIND_OBJECT else "uint64"

    def __repr__(self):
        return (f"<tallyio.SpscQueue capacity={self.handle.capacity} dtype={self.dtype} "
                f"qsize={tio_spsc_size(self.handle)}>")
