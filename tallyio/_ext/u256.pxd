# The EVM's uint256 as C sees it (tallyio/_ext/include/tio_u256.h): four 64-bit limbs, least
# significant first. Shared by the decoder (tallyio.eth) and the pool math (tallyio.amm).
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "tio_u256.h" nogil:
    ctypedef struct tio_u256:
        uint64_t w[4]
    void tio_u256_from_be32(tio_u256 *out, const uint8_t *be)
    void tio_u256_to_be32(const tio_u256 *inp, uint8_t *be)
    void tio_u256_from_u64(tio_u256 *out, uint64_t v)
    int tio_u256_is_zero(const tio_u256 *a)
    int tio_u256_cmp(const tio_u256 *a, const tio_u256 *b)
    int tio_u256_bit_length(const tio_u256 *a)

    # ---- arithmetic (tallyio/amm); see the header for each one's EVM/Solidity semantics ----
    enum: TIO_U256_OK
    enum: TIO_U256_OVERFLOW
    enum: TIO_U256_DIV_ZERO
    ctypedef struct tio_u512:
        uint64_t w[8]
    uint64_t tio_u256_add(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    uint64_t tio_u256_sub(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    uint64_t tio_u256_mul_u64(tio_u256 *out, const tio_u256 *a, uint64_t b)
    void tio_u256_mul_full(tio_u512 *out, const tio_u256 *a, const tio_u256 *b)
    int tio_u256_mul(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    int tio_u256_divmod(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
    int tio_u512_divmod_u256(tio_u256 *q, tio_u256 *r, const tio_u512 *u, const tio_u256 *d)
    int tio_u256_mul_div(tio_u256 *out, const tio_u256 *a, const tio_u256 *b, const tio_u256 *d)
    int tio_u256_mul_div_rounding_up(tio_u256 *out, const tio_u256 *a, const tio_u256 *b, const tio_u256 *d)
    void tio_u256_div_rounding_up(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    void tio_u256_shl(tio_u256 *out, const tio_u256 *a, unsigned n)
    void tio_u256_shr(tio_u256 *out, const tio_u256 *a, unsigned n)
    long double tio_u256_to_ld(const tio_u256 *a)
    void tio_u256_from_ld(tio_u256 *out, long double x)


# ---- Python int <-> tio_u256 at the Python edge (need the GIL) ----------------------------
# _PyLong_AsByteArray / _PyLong_FromByteArray copy the int's digits in one pass (the
# fastest exact route CPython offers; 3.13 added a with_exceptions argument).  On a
# little-endian host the 32 little-endian bytes are the four limbs as they lie in memory.
cdef extern from *:
    """
    #include <Python.h>
    static inline int tio_u256_from_pylong(PyObject *v, tio_u256 *out)
    {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        unsigned char *le = (unsigned char *)out->w;
    #else
        unsigned char le[32];
    #endif
    #if PY_VERSION_HEX >= 0x030d0000
        int rc = _PyLong_AsByteArray((PyLongObject *)v, le, 32, 1, 0, 1);
    #else
        int rc = _PyLong_AsByteArray((PyLongObject *)v, le, 32, 1, 0);
    #endif
    #if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
        if (rc == 0)
            for (int limb = 0; limb < 4; limb++) {
                uint64_t x = 0;
                for (int i = 7; i >= 0; i--)
                    x = (x << 8) | le[8 * limb + i];
                out->w[limb] = x;
            }
    #endif
        return rc;
    }
    static inline PyObject *tio_u256_to_pylong(const tio_u256 *a)
    {
        if ((a->w[1] | a->w[2] | a->w[3]) == 0)
            return PyLong_FromUnsignedLongLong(a->w[0]);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return _PyLong_FromByteArray((const unsigned char *)a->w, 32, 1, 0);
    #else
        unsigned char le[32];
        for (int limb = 0; limb < 4; limb++)
            for (int i = 0; i < 8; i++)
                le[8 * limb + i] = (unsigned char)(a->w[limb] >> (8 * i));
        return _PyLong_FromByteArray(le, 32, 1, 0);
    #endif
    }
    """
    int tio_u256_from_pylong(object v, tio_u256 *out) except? -1
    object tio_u256_to_pylong(const tio_u256 *a)


cdef inline int u256_from_int(object value, tio_u256 *out, str name) except -1:
    """Store the Python int `value` (0 <= value < 2**256) in `out`; TypeError or
    ValueError naming `name` otherwise."""
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    try:
        tio_u256_from_pylong(value, out)
    except OverflowError:
        # CPython refuses both a negative int and one past 32 bytes with OverflowError
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (a uint256), got {value}") from None
        raise ValueError(f"{name} must be < 2**256 (a uint256), got a {value.bit_length()}-bit int") from None
    return 0


cdef inline object u256_to_int(const tio_u256 *a):
    """The Python int equal to `a`."""
    return tio_u256_to_pylong(a)
