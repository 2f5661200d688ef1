"""Checks at the Python edge shared by every structure (see checks.pxd):
role claims, argument checks and the allocation guard.  Touches no structure;
reads the machine's memory limit through tallyio.resources."""
import operator
import threading

import numpy

from cpython.buffer cimport (Py_buffer, PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE)
from libc.stdint cimport uint64_t
from tallyio._ext.common cimport KIND_OBJECT, KIND_U64, tio_next_pow2

from tallyio.errors import ResourceLimitError, RoleError
from tallyio.resources import machine_memory_bytes


# ---- single-thread roles -----------------------------------------------------
cdef int role_claim_slow(tio_role *role, unsigned long me, str what) except -1:
    # Called with the GIL held, so two Python threads cannot race through here.
    cdef unsigned long holder = role.ident
    if holder != 0:
        alive = any(t.ident == holder for t in threading.enumerate())
        if alive:
            raise RoleError(
                f"{what} belongs to thread {holder}, which is still alive; "
                f"thread {me} may not use it (single-thread roles are held by "
                f"one thread at a time; the role passes on only when its thread "
                f"has exited)")
    role.ident = me
    return 0


# ---- sizes -------------------------------------------------------------------
cdef uint64_t check_size(object value, str what, str name, uint64_t maximum) except 0:
    """An int in 1 .. maximum; TypeError for a non-int (bool included),
    ValueError otherwise.  The message names `what` and the argument `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: {name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what}: {name} must be >= 1, got {value}")
    if value > maximum:
        raise ValueError(f"{what}: {name} must be <= {maximum}, got {value}")
    return <uint64_t>value


cdef uint64_t check_capacity(object capacity, str what, uint64_t maximum) except 0:
    """Validate a capacity and round it up to a power of two.

    Raises TypeError for a non-int (bool included), ValueError for < 1 or for a
    value whose power of two exceeds `maximum`; the message names `what`."""
    check_size(capacity, what, "capacity", maximum)
    cdef uint64_t rounded = tio_next_pow2(<uint64_t>capacity)
    if rounded == 0 or rounded > maximum:
        raise ValueError(f"{what}: capacity {capacity} rounds up to a power of two above the maximum {maximum}")
    return rounded


cdef object _machine_memory = None        # (bytes, phrase) or False once read


cdef int check_allocation(uint64_t nbytes, str what, str layout) except -1:
    """Refuse, before anything is allocated, a structure of `nbytes` that this
    machine (its RAM or its cgroup's memory limit) can never hold: the
    allocation would succeed on an overcommitting kernel and zeroing it would
    take minutes and end in the OOM killer.  Raises ResourceLimitError (a
    MemoryError and a ConfigError) naming `what`, `layout`, the size and the
    limit.  The limit is read once (tallyio.resources.machine_memory_bytes)."""
    global _machine_memory
    if _machine_memory is None:
        _machine_memory = machine_memory_bytes() or False
    if _machine_memory is not False and nbytes > _machine_memory[0]:
        raise ResourceLimitError(
            f"{what}: {layout} needs {nbytes} bytes ({nbytes / 2**30:.1f} GiB), more than "
            f"{_machine_memory[1]}; choose a smaller size")
    return 0


# ---- dtypes and items ----------------------------------------------------------
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


cdef int require_u64(int kind, str what, str method) except -1:
    """TypeError unless `kind` is KIND_U64: the batch methods move raw uint64
    values and have no meaning for a structure of Python objects."""
    if kind != KIND_U64:
        raise TypeError(f"{what}.{method} needs a structure built with dtype='uint64'; "
                        f"this one holds Python objects (dtype=object)")
    return 0


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


# ---- timeouts ------------------------------------------------------------------
cdef double wait_seconds(bint block, object timeout) except? -2.0:
    """queue.Queue's (block, timeout) -> common.wait_while_busy's timeout: 0
    tries once, < 0 waits forever, > 0 waits that many seconds.  TypeError for
    a non-number, ValueError for a negative or NaN one."""
    if not block:
        return 0.0                         # like queue.Queue: timeout is ignored
    if timeout is None:
        return -1.0
    cdef double seconds = timeout          # TypeError for a non-number
    if not seconds >= 0.0:                 # negative or NaN
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout!r}")
    if seconds > 1e9:                      # ~31 years, or inf: wait forever
        return -1.0
    return seconds
