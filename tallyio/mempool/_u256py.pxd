# cython: language_level=3
# Owns: conversions between Python ints / bytes and tio_u256 at the Python edge of the
# mempool modules (never on a nogil path).  Touches nothing else.
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from tallyio._ext.u256 cimport tio_u256, tio_u256_from_be32, tio_u256_to_be32

cdef inline int int_to_u256(object value, tio_u256 *out, str what) except -1:
    """`value` (a Python int in 0 .. 2**256-1) -> *out; TypeError/ValueError naming `what`."""
    cdef bytes be
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 0 or value >> 256:
        raise ValueError(f"{what} must be in 0 .. 2**256-1, got {value}")
    if value >> 64 == 0:
        out.w[0] = <uint64_t>value
        out.w[1] = 0
        out.w[2] = 0
        out.w[3] = 0
        return 0
    be = value.to_bytes(32, "big")
    tio_u256_from_be32(out, <const uint8_t *><char *>be)
    return 0


cdef inline object u256_to_int(const tio_u256 *v):
    cdef uint8_t be[32]
    if v.w[1] == 0 and v.w[2] == 0 and v.w[3] == 0:
        return v.w[0]
    tio_u256_to_be32(v, be)
    return int.from_bytes((<char *>be)[:32], "big")


cdef inline int copy_address(object value, uint8_t *out, Py_ssize_t n, str what) except -1:
    """`value` (bytes of length n) -> out[0:n]; TypeError/ValueError naming `what`."""
    if type(value) is not bytes:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
        value = bytes(value)
    if PyBytes_GET_SIZE(value) != n:
        raise ValueError(f"{what} must be {n} bytes, got {PyBytes_GET_SIZE(value)}")
    memcpy(out, PyBytes_AS_STRING(value), n)
    return 0
