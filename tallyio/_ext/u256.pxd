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


# ---- fast paths for operands that fit 128 bits (tallyio/amm's V2 hops) ----------------------
# A V2 pool's reserves are uint112 and a sane trade's amounts are as small, so getAmountOut's
# product fits 2**256, its denominator 2**128 and its quotient (< reserve_out) 2**128.  For
# such operands the schoolbook loops and the general Knuth division above spend most of their
# time on limbs that are zero.  Each helper below returns exactly what its general
# counterpart returns, for every input: it takes the short route only when its operands allow
# and otherwise calls the general one.
cdef extern from * nogil:
    """
    /* One quotient digit of a 2-digit divisor: floor((r * 2**64 + u) / v) for r < v and v
       normalised (bit 127 set); r becomes the remainder.  The trial digit from the top
       digits (one 128/64 division) is corrected against v's low digit: with a 2-digit
       divisor that test sees all of v, so the digit is exact afterwards (Knuth 4.3.1, D3:
       qhat * v > r * 2**64 + u  <=>  qhat * v0 > rhat * 2**64 + u while rhat < 2**64). */
    static inline uint64_t tio_div_digit_192_128(tio_u128_t *r, uint64_t u, tio_u128_t v)
    {
        uint64_t v1 = (uint64_t)(v >> 64), v0 = (uint64_t)v;
        uint64_t r1 = (uint64_t)(*r >> 64), r0 = (uint64_t)*r;
        uint64_t qhat, rhat;
        int rhat_big = 0;
        if (r1 >= v1) {
            /* r1 == v1 (r < v): the digit is below 2**64; try 2**64 - 1, whose rhat is
               r1 * 2**64 + r0 - (2**64 - 1) v1 = r0 + v1 */
            qhat = UINT64_MAX;
            rhat = r0 + v1;
            rhat_big = rhat < v1;
        } else {
            qhat = tio_div_128_64(r1, r0, v1, &rhat);
        }
        while (!rhat_big && (tio_u128_t)qhat * v0 > (((tio_u128_t)rhat << 64) | u)) {
            qhat--;
            rhat += v1;
            rhat_big = rhat < v1;              /* wrapped: rhat >= 2**64 */
        }
        /* the true remainder is < v < 2**128, so arithmetic mod 2**128 gives it exactly */
        *r = ((((tio_u128_t)r0) << 64) | u) - (tio_u128_t)qhat * v;
        return qhat;
    }

    /* floor((hi:lo) / d) and its remainder for d != 0 and hi < d (the quotient fits 128
       bits): one digit step when the quotient fits 64 bits (the usual case for pool
       amounts), else two; a one-digit d uses 128/64 divisions directly. */
    static inline void tio_div_256_128(tio_u128_t hi, tio_u128_t lo, tio_u128_t d, tio_u128_t *q,
                                       tio_u128_t *r)
    {
        uint64_t q1 = 0, q0, d1 = (uint64_t)(d >> 64), lo1 = (uint64_t)(lo >> 64), lo0 = (uint64_t)lo;
        if (d1 == 0) {                         /* hi < d < 2**64 */
            uint64_t rem = lo1;
            if ((uint64_t)hi != 0 || lo1 >= (uint64_t)d)
                q1 = tio_div_128_64((uint64_t)hi, lo1, (uint64_t)d, &rem);
            q0 = tio_div_128_64(rem, lo0, (uint64_t)d, &rem);
            *r = rem;
        } else {
            int s = __builtin_clzll(d1);
            tio_u128_t v = d << s, rem;
            tio_u128_t mid = (hi << 64) | lo1;
            if ((uint64_t)(hi >> 64) == 0 && mid < d) {
                /* (mid:lo0) << s: its top 128 bits stay below v */
                rem = s ? (mid << s) | (lo0 >> (64 - s)) : mid;
            } else {
                /* (hi:lo) << s: its top half stays below v because hi < d */
                rem = s ? (hi << s) | (lo >> (128 - s)) : hi;
                q1 = tio_div_digit_192_128(&rem, (uint64_t)((lo << s) >> 64), v);
            }
            q0 = tio_div_digit_192_128(&rem, lo0 << s, v);
            *r = rem >> s;
        }
        *q = ((tio_u128_t)q1 << 64) | q0;
    }

    /* q = a / b, r = a % b (either may be NULL) when b < 2**128, b != 0 and the quotient
       fits 128 bits (a's top 128 bits < b).  Returns 0 then; 1, writing nothing, otherwise. */
    static inline int tio_u256_divmod_q128(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
    {
        if (b->w[2] | b->w[3])
            return 1;
        tio_u128_t d = ((tio_u128_t)b->w[1] << 64) | b->w[0];
        tio_u128_t hi = ((tio_u128_t)a->w[3] << 64) | a->w[2];
        if (d == 0 || hi >= d)
            return 1;
        tio_u128_t qq, rr;
        tio_div_256_128(hi, ((tio_u128_t)a->w[1] << 64) | a->w[0], d, &qq, &rr);
        if (q) {
            q->w[0] = (uint64_t)qq; q->w[1] = (uint64_t)(qq >> 64); q->w[2] = q->w[3] = 0;
        }
        if (r) {
            r->w[0] = (uint64_t)rr; r->w[1] = (uint64_t)(rr >> 64); r->w[2] = r->w[3] = 0;
        }
        return 0;
    }

    /* the 256-bit product of a, b < 2**128 as (hi, lo) */
    static inline void tio_mul_128(tio_u128_t a, tio_u128_t b, tio_u128_t *hi, tio_u128_t *lo)
    {
        uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64), b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
        tio_u128_t ll = (tio_u128_t)a0 * b0, lh = (tio_u128_t)a0 * b1;
        tio_u128_t hl = (tio_u128_t)a1 * b0, hh = (tio_u128_t)a1 * b1;
        tio_u128_t mid = (ll >> 64) + (uint64_t)lh + (uint64_t)hl;     /* < 3 * 2**64 */
        *lo = (mid << 64) | (uint64_t)ll;
        *hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);              /* < 2**128 */
    }

    /* out = floor(a * b / d) and r = a * b % d (r may be NULL) when a, b, d < 2**128,
       d != 0 and the quotient fits 128 bits (FullMath.mulDiv on small operands).  Returns
       0 then; 1, writing nothing, otherwise.  out may alias a, b or d. */
    static inline int tio_u256_mul_divmod_q128(tio_u256 *out, tio_u256 *r, const tio_u256 *a,
                                               const tio_u256 *b, const tio_u256 *d)
    {
        if ((a->w[2] | a->w[3] | b->w[2] | b->w[3] | d->w[2] | d->w[3]) != 0)
            return 1;
        tio_u128_t dd = ((tio_u128_t)d->w[1] << 64) | d->w[0], hi, lo, q, rem;
        tio_mul_128(((tio_u128_t)a->w[1] << 64) | a->w[0], ((tio_u128_t)b->w[1] << 64) | b->w[0], &hi, &lo);
        if (dd == 0 || hi >= dd)
            return 1;
        tio_div_256_128(hi, lo, dd, &q, &rem);
        out->w[0] = (uint64_t)q; out->w[1] = (uint64_t)(q >> 64); out->w[2] = out->w[3] = 0;
        if (r) {
            r->w[0] = (uint64_t)rem; r->w[1] = (uint64_t)(rem >> 64); r->w[2] = r->w[3] = 0;
        }
        return 0;
    }

    /* tio_u256_divmod, with the short route above when it applies (same results) */
    static inline int tio_u256_divmod_fast(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
    {
        if (tio_u256_divmod_q128(q, r, a, b) == 0)
            return TIO_U256_OK;
        return tio_u256_divmod(q, r, a, b);
    }

    /* tio_u256_mul (product mod 2**256, TIO_U256_OVERFLOW past it), with four 64x64
       products when both operands are below 2**128 (same results) */
    static inline int tio_u256_mul_fast(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    {
        if ((a->w[2] | a->w[3] | b->w[2] | b->w[3]) != 0)
            return tio_u256_mul(out, a, b);
        tio_u128_t hi, lo;
        tio_mul_128(((tio_u128_t)a->w[1] << 64) | a->w[0], ((tio_u128_t)b->w[1] << 64) | b->w[0], &hi, &lo);
        out->w[0] = (uint64_t)lo;
        out->w[1] = (uint64_t)(lo >> 64);
        out->w[2] = (uint64_t)hi;
        out->w[3] = (uint64_t)(hi >> 64);
        return TIO_U256_OK;
    }

    /* tio_u256_from_ld (floor, clamped), without its long double divisions when
       1 <= x < 2**64, where it yields (uint64_t)x: every higher digit is 0 (same results) */
    static inline void tio_u256_from_ld_fast(tio_u256 *out, long double x)
    {
        if (x >= 1.0L && x < 18446744073709551616.0L) {
            tio_u256_from_u64(out, (uint64_t)x);
            return;
        }
        tio_u256_from_ld(out, x);
    }
    """
    int tio_u256_divmod_q128(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
    int tio_u256_divmod_fast(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
    int tio_u256_mul_fast(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
    int tio_u256_mul_divmod_q128(tio_u256 *out, tio_u256 *r, const tio_u256 *a, const tio_u256 *b,
                                 const tio_u256 *d)
    void tio_u256_from_ld_fast(tio_u256 *out, long double x)


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
