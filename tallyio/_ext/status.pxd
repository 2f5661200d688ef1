# cython: language_level=3
"""The one place where tallyio status codes become Python exceptions, and the
slow path of the single-thread role check."""
from tallyio._ext.common cimport tio_role, PyThread_get_thread_ident

cdef int raise_status(int status, str what) except -1
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

from cpython.buffer cimport Py_buffer
from libc.stdint cimport uint64_t

# ---- argument checks at the Python edge (shared by every component) --------
cdef uint64_t check_capacity(object capacity, str what, uint64_t maximum) except 0
cdef int parse_kind(object dtype, str what) except -1
cdef int acquire_u64_buffer(object arr, Py_buffer *view, bint writable, str what) except -1
cdef uint64_t object_to_u64(object value, str what) except? 0xFFFFFFFFFFFFFFFF
