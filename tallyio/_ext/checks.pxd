"""Checks at the Python edge, shared by every structure of the C core:
single-thread role claims, argument checks (capacity, dtype, uint64 items,
numpy uint64 buffers) and the allocation guard.  Owns no state; raises only
TypeError / ValueError / OverflowError for bad arguments and RoleError /
ResourceLimitError (tallyio.errors) for misuse and sizes this machine cannot
hold.  Status codes become exceptions in tallyio._ext.status, not here."""
from cpython.buffer cimport Py_buffer
from libc.stdint cimport uint64_t
from tallyio._ext.common cimport tio_role, PyThread_get_thread_ident

# Batches of at least this many items are copied without the GIL (every
# structure's put_many/get_many/push_many/pop_many/steal_batch); shorter ones
# cost less than a GIL release and reacquire (~100 ns), so they keep it.
cdef enum:
    NOGIL_BATCH_MIN = 256


cdef int role_claim_slow(tio_role *role, unsigned long me, str what) except -1

cdef inline int role_claim(tio_role *role, str what) except -1:
    """Make the calling thread the holder of `role`, or raise RoleError.

    The fast path is one compare; the first call from a new thread goes to
    role_claim_slow, which takes the role over only when the previous holder
    has exited."""
    cdef unsigned long me = PyThread_get_thread_ident()
    if role.ident == me:
        return 0
    return role_claim_slow(role, me, what)


cdef uint64_t check_capacity(object capacity, str what, uint64_t maximum) except 0
cdef uint64_t check_size(object value, str what, str name, uint64_t maximum) except 0
cdef int check_allocation(uint64_t nbytes, str what, str layout) except -1
cdef int parse_kind(object dtype, str what) except -1
cdef int require_u64(int kind, str what, str method) except -1
cdef int acquire_u64_buffer(object arr, Py_buffer *view, bint writable, str what) except -1
cdef uint64_t object_to_u64(object value, str what) except? 0xFFFFFFFFFFFFFFFF
cdef double wait_seconds(bint block, object timeout) except? -2.0
