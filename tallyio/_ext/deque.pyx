# cython: language_level=3
"""Chase-Lev work-stealing deque with a fixed capacity.

The owner thread pushes and pops at the bottom (LIFO, cache-warm work);
any number of thieves steal from the top (FIFO, the oldest work).  The C API
and the role of each function are in deque.pxd; the protocol write-up is in
tallyio/_ext/README.md.

    >>> from tallyio import WorkStealingDeque, Steal
    >>> dq = WorkStealingDeque(8)
    >>> for job in ("a", "b", "c"):
    ...     dq.push(job)
    >>> thief = dq.stealer()
    >>> thief.steal()
    (<Steal.SUCCESS: 0>, 'a')
    >>> dq.pop()
    'c'
"""
import enum

from cpython.buffer cimport Py_buffer, PyBuffer_Release
from libc.stdint cimport uint64_t, int64_t

from tallyio._ext.common cimport (
    KIND_OBJECT, obj_to_item, item_to_obj, release_item,
    tio_aligned_calloc, tio_aligned_free, tio_is_pow2, tio_atomic_init_u64,
)
from tallyio._ext.status cimport raise_status
from tallyio._ext.checks cimport (
    role_claim, check_capacity, check_allocation, parse_kind, require_u64,
    acquire_u64_buffer, object_to_u64, NOGIL_BATCH_MIN,
)

__all__ = ["Steal", "Stealer", "WorkStealingDeque"]


# ---- C setup / teardown -------------------------------------------------------

cdef tio_deque *tio_deque_new(uint64_t capacity_pow2) noexcept nogil:
    """A new empty deque, or NULL (capacity not a power of two, above
    TIO_DEQUE_MAX_CAPACITY, or out of memory).  Free with tio_deque_free."""
    cdef size_t header, size
    cdef tio_deque *d
    if not tio_is_pow2(capacity_pow2) or capacity_pow2 > TIO_DEQUE_MAX_CAPACITY:
        return NULL
    # the slots start on a fresh cache line right after the three header lines
    header = (sizeof(tio_deque) + TIO_CACHE_LINE - 1) & ~(<size_t>TIO_CACHE_LINE - 1)
    size = header + <size_t>capacity_pow2 * sizeof(tio_atomic_u64)
    d = <tio_deque *>tio_aligned_calloc(TIO_CACHE_LINE, size)
    if d == NULL:
        return NULL
    d.slots = <tio_atomic_u64 *>((<char *>d) + header)
    d.mask = capacity_pow2 - 1
    d.capacity = capacity_pow2
    tio_atomic_init_u64(&d.top, 0)
    tio_atomic_init_u64(&d.bottom, 0)
    # Slots stay as zeroed by calloc: a slot is always written (by push)
    # before any index that reaches it is published.
    return d


cdef void tio_deque_free(tio_deque *d) noexcept nogil:
    """Free the deque.  Items still inside are NOT released (see the .pxd)."""
    tio_aligned_free(d)


# ---- Python face ----------------------------------------------------------------

class Steal(enum.IntEnum):
    """Outcome of a steal, as in crossbeam: never a bool.

    ``SUCCESS`` is 0 (the C status ``TIO_OK``), so test it with ``is`` or
    ``==``, never by truth value.

    >>> Steal.SUCCESS, Steal.EMPTY, Steal.RETRY
    (<Steal.SUCCESS: 0>, <Steal.EMPTY: 1>, <Steal.RETRY: 3>)
    """
    EMPTY = TIO_EMPTY       #: nothing to steal
    SUCCESS = TIO_OK        #: an item (or a batch) was taken
    RETRY = TIO_RETRY       #: lost a race with another thread; try again


# Ready-made results so a steal allocates at most one tuple.
cdef object _SUCCESS = Steal.SUCCESS
cdef object _EMPTY = Steal.EMPTY
cdef object _RETRY = Steal.RETRY
cdef tuple _EMPTY_NONE = (Steal.EMPTY, None)
cdef tuple _RETRY_NONE = (Steal.RETRY, None)
cdef object _STEALER_TOKEN = object()


cdef class WorkStealingDeque:
    """WorkStealingDeque(capacity, dtype=object)

    A Chase-Lev work-stealing deque of fixed capacity (rounded up to a
    power of two, at most 2**30).  This object is the owner (Worker) side:
    ``push``/``pop`` and the batch methods belong to one thread at a time
    (another live thread gets RoleError; the role passes on when its holder
    exits).  Thieves on any thread use the handles from ``stealer()``.

    ``dtype=object`` holds Python objects by reference; ``dtype="uint64"``
    holds ints in 0 .. 2**64-1 and enables ``push_many``/``pop_many``.
    A push on a full deque raises QueueFullError and takes nothing: the
    caller puts the item somewhere else (the scheduler uses its inbox).

    >>> dq = WorkStealingDeque(4)
    >>> dq.push(1); dq.push(2); dq.push(3)
    >>> len(dq), dq.capacity, dq.dtype
    (3, 4, 'object')
    >>> dq.pop()
    3
    >>> dq.stealer().steal()
    (<Steal.SUCCESS: 0>, 1)
    """

    def __cinit__(self, capacity, dtype=object):
        self.handle = NULL
        self.owner_role.ident = 0
        self.kind = parse_kind(dtype, "WorkStealingDeque")
        cdef uint64_t cap = check_capacity(capacity, "WorkStealingDeque",
                                           TIO_DEQUE_MAX_CAPACITY)
        check_allocation(cap * sizeof(tio_atomic_u64), "WorkStealingDeque", f"a deque of {cap} slots")
        self.handle = tio_deque_new(cap)
        if self.handle == NULL:
            raise MemoryError(f"WorkStealingDeque: cannot allocate {cap} slots")
        self.what = f"WorkStealingDeque(capacity={cap}, dtype={self.dtype!r})"

    def __dealloc__(self):
        # No Stealer is left (each holds a reference to self) and no nogil
        # helper either (it would hold one too): plain loads are enough.
        cdef tio_deque *d = self.handle
        cdef uint64_t t, b
        if d == NULL:
            return
        self.handle = NULL
        if self.kind == KIND_OBJECT:
            t = tio_atomic_load_u64_relaxed(&d.top)
            b = tio_atomic_load_u64_relaxed(&d.bottom)
            while <int64_t>(b - t) > 0:
                # the slot's reference, released exactly once
                release_item(tio_atomic_load_u64_relaxed(&d.slots[t & d.mask]))
                t += 1
        tio_deque_free(d)

    @property
    def capacity(self):
        """The fixed capacity (the requested one rounded up to a power of two).

        >>> WorkStealingDeque(100).capacity
        128
        """
        return tio_deque_capacity(self.handle)

    @property
    def dtype(self):
        """``"object"`` or ``"uint64"``.

        >>> WorkStealingDeque(8, dtype="uint64").dtype
        'uint64'
        """
        return "object" if self.kind == KIND_OBJECT else "uint64"

    def __len__(self):
        """The number of items (exact for the owner while no thief is active)."""
        return tio_deque_len(self.handle)

    def empty(self):
        """True if the deque holds no item (a snapshot).

        >>> dq = WorkStealingDeque(8)
        >>> dq.empty()
        True
        >>> dq.push("x"); dq.empty()
        False
        """
        return tio_deque_len(self.handle) == 0

    def __repr__(self):
        cdef str what = self.what
        return f"{what[:len(what) - 1]}, len={tio_deque_len(self.handle)})"

    def push(self, item):
        """Push `item` at the bottom (owner thread only).

        Raises QueueFullError when the deque is full; the item is then not
        taken.  With dtype="uint64", `item` must be an int in 0 .. 2**64-1.

        >>> dq = WorkStealingDeque(1)
        >>> dq.push("first")
        >>> dq.push("second")
        Traceback (most recent call last):
        ...
        tallyio.errors.QueueFullError: WorkStealingDeque(capacity=1, dtype='object') is full
        """
        cdef uint64_t value = 0
        role_claim(&self.owner_role, self.what)
        if self.kind == KIND_OBJECT:
            value = obj_to_item(item)            # the slot's reference
            if tio_deque_push(self.handle, value) != TIO_OK:
                release_item(value)              # not queued: give it back
                raise_status(TIO_FULL, self.what)
        else:
            value = object_to_u64(item, self.what)
            if tio_deque_push(self.handle, value) != TIO_OK:
                raise_status(TIO_FULL, self.what)

    def pop(self):
        """Pop the newest item (LIFO; owner thread only).

        Raises QueueEmptyError (a queue.Empty) when there is none.

        >>> dq = WorkStealingDeque(8)
        >>> dq.push(1); dq.push(2)
        >>> dq.pop(), dq.pop()
        (2, 1)
        """
        cdef uint64_t value = 0
        role_claim(&self.owner_role, self.what)
        if tio_deque_pop(self.handle, &value) != TIO_OK:
            raise_status(TIO_EMPTY, self.what)
        if self.kind == KIND_OBJECT:
            return item_to_obj(value)            # the caller now owns it
        return value

    def push_many(self, items):
        """Push items[0], items[1], ... while there is room (owner thread only;
        dtype="uint64").  `items` is a 1-D C-contiguous numpy uint64 array.
        Returns how many were pushed: the rest, items[count:], were not taken.
        Long batches run without the GIL.

        >>> import numpy as np
        >>> dq = WorkStealingDeque(4, dtype="uint64")
        >>> dq.push_many(np.arange(6, dtype=np.uint64))
        4
        """
        cdef Py_buffer view
        cdef uint64_t n, pushed
        require_u64(self.kind, self.what, "push_many")
        role_claim(&self.owner_role, self.what)
        acquire_u64_buffer(items, &view, False, "WorkStealingDeque.push_many")
        n = <uint64_t>view.len // sizeof(uint64_t)
        if n >= NOGIL_BATCH_MIN:
            with nogil:
                pushed = tio_deque_push_many(self.handle, <const uint64_t *>view.buf, n)
        else:
            pushed = tio_deque_push_many(self.handle, <const uint64_t *>view.buf, n)
        PyBuffer_Release(&view)
        return pushed

    def pop_many(self, out):
        """Pop up to len(out) items, newest first, into the writable 1-D numpy
        uint64 array `out` (owner thread only; dtype="uint64").  Returns the
        count; out[:count] holds them.  Long batches run without the GIL.

        >>> import numpy as np
        >>> dq = WorkStealingDeque(8, dtype="uint64")
        >>> dq.push_many(np.array([1, 2, 3], dtype=np.uint64))
        3
        >>> out = np.zeros(8, dtype=np.uint64)
        >>> n = dq.pop_many(out); n, out[:n].tolist()
        (3, [3, 2, 1])
        """
        cdef Py_buffer view
        cdef uint64_t n, popped
        require_u64(self.kind, self.what, "pop_many")
        role_claim(&self.owner_role, self.what)
        acquire_u64_buffer(out, &view, True, "WorkStealingDeque.pop_many")
        n = <uint64_t>view.len // sizeof(uint64_t)
        if n >= NOGIL_BATCH_MIN:
            with nogil:
                popped = tio_deque_pop_many(self.handle, <uint64_t *>view.buf, n)
        else:
            popped = tio_deque_pop_many(self.handle, <uint64_t *>view.buf, n)
        PyBuffer_Release(&view)
        return popped

    def stealer(self):
        """A new Stealer for this deque (usable from any thread; make as many
        as you like).  It keeps the deque alive.

        >>> dq = WorkStealingDeque(8)
        >>> dq.stealer().steal()
        (<Steal.EMPTY: 1>, None)
        """
        return Stealer.__new__(Stealer, _STEALER_TOKEN, self)


cdef class Stealer:
    """The thief side of a WorkStealingDeque; get one from ``deque.stealer()``.

    Any thread may steal, many at once.  Steals take the oldest item (FIFO).

    >>> dq = WorkStealingDeque(8)
    >>> thief = dq.stealer()
    >>> dq.push("old"); dq.push("new")
    >>> thief.steal()
    (<Steal.SUCCESS: 0>, 'old')
    >>> len(thief), thief.empty()
    (1, False)
    """

    def __cinit__(self, token=None, WorkStealingDeque source=None):
        if token is not _STEALER_TOKEN or source is None:
            raise TypeError("Stealer cannot be created directly; "
                            "use WorkStealingDeque.stealer()")
        self.source = source
        self.handle = source.handle

    def __len__(self):
        """The number of items (approximate while others work on the deque)."""
        return tio_deque_len(self.handle)

    def empty(self):
        """True if the deque holds no item (a snapshot)."""
        return tio_deque_len(self.handle) == 0

    def __repr__(self):
        return f"Stealer({self.source!r})"

    def steal(self):
        """Steal the oldest item: ``(Steal.SUCCESS, item)``, ``(Steal.EMPTY, None)``
        or ``(Steal.RETRY, None)`` (lost a race; nothing taken, try again).

        >>> dq = WorkStealingDeque(8, dtype="uint64")
        >>> dq.push(42)
        >>> thief = dq.stealer()
        >>> thief.steal()
        (<Steal.SUCCESS: 0>, 42)
        >>> thief.steal()
        (<Steal.EMPTY: 1>, None)
        """
        cdef uint64_t item = 0
        cdef int status = tio_deque_steal(self.handle, &item)
        if status == TIO_OK:
            if self.source.kind == KIND_OBJECT:
                return (_SUCCESS, item_to_obj(item))   # the slot's reference is ours
            return (_SUCCESS, item)
        if status == TIO_EMPTY:
            return _EMPTY_NONE
        return _RETRY_NONE

    def steal_batch(self, WorkStealingDeque dest not None):
        """Steal about half of the items (oldest first, at most what fits in
        `dest`) and push them into `dest`, which the calling thread must own
        (RoleError otherwise) and which must have the same dtype (TypeError).

        Returns ``(Steal.SUCCESS, moved)`` with moved >= 1, ``(Steal.EMPTY, 0)``
        or ``(Steal.RETRY, 0)``.  Raises QueueFullError if `dest` is full
        (nothing is taken).  Large batches run without the GIL.  Stealing
        into the stealer's own deque moves nothing: ``(Steal.SUCCESS, 0)``
        if it has items, else ``(Steal.EMPTY, 0)``.

        >>> src, mine = WorkStealingDeque(8), WorkStealingDeque(8)
        >>> for i in range(5):
        ...     src.push(i)
        >>> src.stealer().steal_batch(mine)
        (<Steal.SUCCESS: 0>, 3)
        >>> mine.pop(), src.pop()
        (2, 4)
        """
        cdef uint64_t moved = 0
        cdef int status
        if dest.kind != self.source.kind:
            raise TypeError(f"steal_batch: dest has dtype {dest.dtype!r} but this "
                            f"stealer's deque has dtype {self.source.dtype!r}")
        role_claim(&dest.owner_role, dest.what)
        if tio_deque_len(self.handle) >= 2 * NOGIL_BATCH_MIN:
            with nogil:
                status = tio_deque_steal_batch(self.handle, dest.handle, &moved)
        else:
            status = tio_deque_steal_batch(self.handle, dest.handle, &moved)
        if status == TIO_OK:
            return (_SUCCESS, moved)
        if status == TIO_EMPTY:
            return (_EMPTY, 0)
        if status == TIO_RETRY:
            return (_RETRY, 0)
        raise_status(status, dest.what)


cdef int tio_deque_claim_owner(WorkStealingDeque d) except -1:
    """Make the calling thread the owner of ``d`` (RoleError if another live
    thread is): tio_deque_owner_of's role check, shared with push/pop."""
    return role_claim(&d.owner_role, d.what)
