# cython: language_level=3
"""Declarations shared by every component of the C core.

* the atomics of include/tio_atomic.h (the only place atomics are spelled),
* the platform helpers of include/tio_platform.h,
* the status codes of include/tio_status.h,
* the ownership helpers that move a PyObject reference into and out of a
  uint64 slot, and the blocking wait used by put()/get() with a timeout.

Ownership rule (DESIGN.md): nogil code never touches a refcount.  The Python
wrapper INCREFs before it hands a PyObject* to a structure (``obj_to_item``);
whoever takes the item out receives that reference (``item_to_obj``).
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.exc cimport PyErr_CheckSignals

cdef extern from "tio_status.h" nogil:
    ctypedef enum tio_status:
        TIO_OK
        TIO_EMPTY
        TIO_FULL
        TIO_RETRY
        TIO_EXHAUSTED
        TIO_DOUBLE_FREE
        TIO_FOREIGN
        TIO_NOMEM
        TIO_INVALID
        TIO_INTERRUPTED
        TIO_CLOSED

cdef extern from "tio_atomic.h" nogil:
    ctypedef struct tio_atomic_u64:
        pass
    ctypedef struct tio_atomic_u32:
        pass
    ctypedef struct tio_atomic_u8:
        pass
    void tio_atomic_init_u64(tio_atomic_u64 *a, uint64_t v)
    void tio_atomic_init_u32(tio_atomic_u32 *a, uint32_t v)
    void tio_atomic_init_u8(tio_atomic_u8 *a, uint8_t v)
    uint64_t tio_atomic_load_u64_relaxed(const tio_atomic_u64 *a)
    uint64_t tio_atomic_load_u64_acquire(const tio_atomic_u64 *a)
    uint64_t tio_atomic_load_u64_seqcst(const tio_atomic_u64 *a)
    uint64_t tio_atomic_load_u64_fenced_relaxed(const tio_atomic_u64 *a)
    void tio_atomic_store_u64_relaxed(tio_atomic_u64 *a, uint64_t v)
    void tio_atomic_store_u64_release(tio_atomic_u64 *a, uint64_t v)
    void tio_atomic_store_u64_seqcst(tio_atomic_u64 *a, uint64_t v)
    void tio_atomic_store_u64_fenced_relaxed(tio_atomic_u64 *a, uint64_t v)
    bint tio_atomic_cas_u64_seqcst(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    bint tio_atomic_cas_u64_acqrel(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    bint tio_atomic_cas_u64_acquire(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    bint tio_atomic_cas_u64_release(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    bint tio_atomic_cas_u64_relaxed(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    bint tio_atomic_cas_weak_u64_relaxed(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)
    uint64_t tio_atomic_fetch_add_u64_relaxed(tio_atomic_u64 *a, uint64_t v)
    uint64_t tio_atomic_fetch_add_u64_acqrel(tio_atomic_u64 *a, uint64_t v)
    uint64_t tio_atomic_fetch_sub_u64_relaxed(tio_atomic_u64 *a, uint64_t v)
    uint64_t tio_atomic_fetch_add_u64_seqcst(tio_atomic_u64 *a, uint64_t v)
    uint64_t tio_atomic_fetch_or_u64_seqcst(tio_atomic_u64 *a, uint64_t v)
    uint32_t tio_atomic_load_u32_relaxed(const tio_atomic_u32 *a)
    uint32_t tio_atomic_load_u32_acquire(const tio_atomic_u32 *a)
    void tio_atomic_store_u32_relaxed(tio_atomic_u32 *a, uint32_t v)
    void tio_atomic_store_u32_release(tio_atomic_u32 *a, uint32_t v)
    uint32_t tio_atomic_fetch_add_u32_acqrel(tio_atomic_u32 *a, uint32_t v)
    uint32_t tio_atomic_load_u32_fenced_relaxed(const tio_atomic_u32 *a)
    void tio_atomic_store_u32_seqcst(tio_atomic_u32 *a, uint32_t v)
    bint tio_atomic_cas_u32_seqcst(tio_atomic_u32 *a, uint32_t *expected, uint32_t desired)
    uint32_t tio_atomic_fetch_or_u32_seqcst(tio_atomic_u32 *a, uint32_t v)
    uint32_t tio_atomic_fetch_and_u32_seqcst(tio_atomic_u32 *a, uint32_t v)
    void tio_atomic_wait_u32(tio_atomic_u32 *a, uint32_t expected, uint64_t timeout_ns)
    void tio_atomic_wake_u32(tio_atomic_u32 *a, int n)
    uint8_t tio_atomic_load_u8_relaxed(const tio_atomic_u8 *a)
    void tio_atomic_store_u8_relaxed(tio_atomic_u8 *a, uint8_t v)
    void tio_fence_seqcst()

cdef extern from "tio_platform.h" nogil:
    enum: TIO_CACHE_LINE
    bint TIO_LIKELY(bint x)
    bint TIO_UNLIKELY(bint x)
    void tio_cpu_relax()
    void *tio_aligned_calloc(size_t alignment, size_t size)
    void tio_aligned_free(void *p)
    uint64_t tio_now_ns()
    uint64_t tio_ticks()
    bint tio_is_pow2(uint64_t x)
    uint64_t tio_next_pow2(uint64_t x)
    uint64_t tio_mix64(uint64_t z)
    ctypedef struct tio_backoff:
        uint32_t step
    void tio_backoff_reset(tio_backoff *b)
    void tio_backoff_snooze(tio_backoff *b)


# ---- dtypes of the uint64 slot --------------------------------------------
# A structure built with dtype=object carries PyObject* (one owned reference
# per queued item); dtype="uint64" carries raw integers and allows the nogil
# batch methods (put_many/get_many over numpy uint64 arrays).
cdef enum:
    KIND_OBJECT = 0
    KIND_U64 = 1


cdef inline uint64_t obj_to_item(object o) noexcept:
    """Take a new reference to `o` and return it as a slot value.

    The reference now belongs to the slot; whoever removes the item owns it."""
    Py_INCREF(o)
    return <uint64_t><uintptr_t><PyObject*>o


cdef inline object item_to_obj(uint64_t item):
    """Turn a slot value back into an object, taking over the slot's reference."""
    cdef object o = <object><PyObject*><uintptr_t>item   # +1 (Cython's own ref)
    Py_DECREF(o)                                          # drop the slot's ref
    return o


cdef inline void release_item(uint64_t item) noexcept:
    """Drop the reference a slot holds (queue destroyed while holding it)."""
    Py_DECREF(<object><PyObject*><uintptr_t>item)


# ---- blocking waits -------------------------------------------------------
# A non-blocking attempt: returns a tio_status.
ctypedef int (*try_fn)(void *ctx) noexcept nogil

# How long a blocking wait stays without the GIL before it takes the GIL back
# to run signal handlers (so Ctrl+C interrupts a blocked get()).
cdef enum:
    WAIT_SLICE_NS = 20000000


cdef inline int wait_while_busy(try_fn attempt, void *ctx, int busy, double timeout) except -1:
    """Call ``attempt(ctx)`` until it answers something other than ``busy``.

    ``timeout`` < 0 waits forever; 0 tries once; > 0 gives up after that many
    seconds and returns ``busy``.  The GIL is released while waiting and taken
    back every WAIT_SLICE_NS to run signal handlers; if one raises, returns -1
    with the exception set.  Back-off: spin, then yield, then short sleeps
    (tio_backoff_snooze), so a long wait costs almost no CPU.
    """
    cdef int st = attempt(ctx)
    if st != busy or timeout == 0:
        return st
    cdef uint64_t now = tio_now_ns()
    cdef uint64_t deadline = 0
    cdef uint64_t slice_end
    cdef tio_backoff backoff
    if timeout > 0:
        deadline = now + <uint64_t>(timeout * 1e9)
    tio_backoff_reset(&backoff)
    while True:
        with nogil:
            slice_end = now + WAIT_SLICE_NS
            if deadline != 0 and deadline < slice_end:
                slice_end = deadline
            while True:
                tio_backoff_snooze(&backoff)
                st = attempt(ctx)
                now = tio_now_ns()
                if st != busy or now >= slice_end:
                    break
        if st != busy or (deadline != 0 and now >= deadline):
            return st
        if PyErr_CheckSignals() < 0:
            return -1


# ---- single-thread roles (SPSC producer/consumer, deque owner) -------------
cdef struct tio_role:
    unsigned long ident      # PyThread ident of the holder; 0 = nobody yet

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident() nogil
