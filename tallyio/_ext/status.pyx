# cython: language_level=3
"""Status codes -> exceptions (the only such mapping in tallyio)."""
import operator
import queue
import threading

import numpy

from tallyio.errors import (QueueFullError, PoolExhaustedError, BlockError,
                            RoleError, TallyioError, SchedulerNotRunningError)
from tallyio._ext.common cimport (TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY,
                                  TIO_EXHAUSTED, TIO_DOUBLE_FREE, TIO_FOREIGN,
                                  TIO_NOMEM, TIO_INVALID, TIO_INTERRUPTED,
                                  TIO_CLOSED)


cdef int raise_status(int status, str what) except -1:
    """Raise the exception for `status`; `what` names the object, e.g.
    'SpscQueue(capacity=64)'.  Always returns -1 with an exception set."""
    if status == TIO_FULL:
        raise QueueFullError(f"{what} is full")
    if status == TIO_EMPTY:
        raise queue.Empty(f"{what} is empty")
    if status == TIO_EXHAUSTED:
        raise PoolExhaustedError(f"{what} has no free block")
    if status == TIO_DOUBLE_FREE:
        raise BlockError(f"{what}: block freed twice")
    if status == TIO_FOREIGN:
        raise BlockError(f"{what}: block does not belong to this pool")
    if status == TIO_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    if status == TIO_INVALID:
        raise ValueError(f"{what}: invalid argument")
    if status == TIO_INTERRUPTED:
        raise KeyboardInterrupt(f"{what}: wait interrupted")
    if status == TIO_CLOSED:
        raise SchedulerNotRunningError(f"{what} is not running")
    if status == TIO_RETRY:
        raise TallyioError(f"{what}: lost a race (retry); this is a tallyio bug if it escapes")
    raise TallyioError(f"{what}: unexpected status {status}")


cdef int role_claim_slow(tio_role *role, unsigned long me, str what) except -1:
    # Called with the GIL held, so two Python threads cannot race through here.
    cdef unsigned long holder = role.ident
    if holder != 0:
        alive = any(t.ident == holder for t in threading.enumerate())
        if alive:
            raise RoleError(
                f"{what} belongs to thread {holder}, which is still alive; "
                f"thread {me} may not use it (single-producer/single-consumer "
                f"roles are held by one thread at a time; the role passes on "
                f"only when its thread has exited)")
    role.ident = me
    return 0


# ---- argument checks at the Python edge ------------------------------------
from cpython.buffer cimport (Py_buffer, PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE)
from libc.stdint cimport uint64_t
from tallyio._ext.common cimport KIND_OBJECT, KIND_U64, tio_next_pow2


cdef uint64_t check_capacity(object capacity, str what, uint64_t maximum) except 0:
    """Validate a capacity and round it up to a power of two.

    Raises TypeError for a non-int (bool included), ValueError for < 1 or for a
    value whose power of two exceeds `maximum`; the message names `what`."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"{what}: capacity must be an int, got {type(capacity).__name__}")
    if capacity < 1:
        raise ValueError(f"{what}: capacity must be >= 1, got {capacity}")
    if capacity > maximum:
        raise ValueError(f"{what}: capacity {capacity} exceeds the maximum {maximum}")
    cdef uint64_t rounded = tio_next_pow2(<uint64_t>capacity)
    if rounded == 0 or rounded > maximum:
        raise ValueError(f"{what}: capacity {capacity} rounds up to a power of two above the maximum {maximum}")
    return rounded


cdef int parse_kind(object dtype, str what) except -1:
    """dtype=object (default) -> KIND_OBJECT; 'uint64' / numpy.uint64 -> KIND_U64."""
    if dtype is object or dtype is None:
        return KIND_OBJECT
    name = getattr(dtype, "__name__", None) if isinstance(dtype, type) else None
    if name is None:
        name = str(getattr(dtype, "name", dtype))
    if name in ("object", "O"):
        return KIND_OBJECT
    if name in ("uint64", "u8", "<u8", "=u8", "Q"):
        return KIND_U64
    raise TypeError(f"{what}: dtype must be object or 'uint64', got {dtype!r}")


cdef int acquire_u64_buffer(object arr, Py_buffer *view, bint writable, str what) except -1:
    """Get a C-contiguous 1-D buffer of 8-byte unsigned ints from `arr`.

    The caller owns `view` on success and must PyBuffer_Release it."""
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT
    if writable:
        flags |= PyBUF_WRITABLE
    try:
        PyObject_GetBuffer(arr, view, flags)
    except (TypeError, BufferError, ValueError) as exc:
        kind = "writable " if writable else ""
        raise TypeError(f"{what}: needs a {kind}C-contiguous 1-D numpy uint64 array, "
                        f"got {type(arr).__name__} ({exc})") from None
    fmt = (view.format or b"B").lstrip(b"@=<")
    if view.ndim != 1 or view.itemsize != 8 or fmt not in (b"Q", b"L"):
        desc = getattr(arr, "dtype", fmt.decode())
        shape = tuple(view.shape[i] for i in range(view.ndim)) if view.shape != NULL else ()
        PyBuffer_Release(view)
        raise TypeError(f"{what}: needs a 1-D numpy uint64 array, got dtype {desc} "
                        f"with shape {shape}")
    return 0


# bools are ints to Python but never a sensible uint64 item (numpy's bool also
# has a deprecated __index__)
_BOOL_TYPES = (bool, numpy.bool_)


cdef uint64_t object_to_u64(object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    """An int in 0 .. 2**64-1, for structures built with dtype='uint64'."""
    if isinstance(value, _BOOL_TYPES):
        raise TypeError(f"{what}: dtype='uint64' items must be ints, got {type(value).__name__}")
    if not isinstance(value, int):
        # numpy integer scalars (np.uint64(3)) and other __index__ types count as ints
        if not hasattr(type(value), "__index__"):
            raise TypeError(f"{what}: dtype='uint64' items must be ints, got {type(value).__name__}")
        value = operator.index(value)
    if value < 0 or value > 0xFFFFFFFFFFFFFFFF:
        raise OverflowError(f"{what}: item {value} is outside 0 .. 2**64-1")
    return <uint64_t>value
