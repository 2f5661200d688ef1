"""The uint256 arithmetic of tio_u256.h seen from Python: one thin wrapper per
C operation, so tests compare each one with Python's own integers and callers
can check a figure by hand.  Owns nothing else; the hot paths live in C.

Every function takes ints in [0, 2**256) and returns ints; checked operations
raise where the EVM/Solidity code would revert.

>>> from tallyio.amm import _u256
>>> _u256.add(2**256 - 1, 1)           # wraps, and says so
(0, 1)
>>> _u256.mul_div(2**255, 6, 4)        # FullMath.mulDiv: a 512-bit intermediate
86844066927987146567678238756515930889952488499230423029593188005934847229952
>>> _u256.mul_div_rounding_up(7, 1, 2)
4
"""
from tallyio._ext.u256 cimport (
    tio_u256, tio_u512, TIO_U256_OVERFLOW, TIO_U256_DIV_ZERO,
    tio_u256_add, tio_u256_sub, tio_u256_mul_u64, tio_u256_mul_full, tio_u256_mul,
    tio_u256_divmod, tio_u512_divmod_u256, tio_u256_mul_div, tio_u256_mul_div_rounding_up,
    tio_u256_div_rounding_up, tio_u256_shl, tio_u256_shr, tio_u256_to_ld, tio_u256_from_ld,
    tio_u256_cmp, tio_u256_bit_length, u256_from_int, u256_to_int,
    tio_u256_mul_fast, tio_u256_divmod_fast, tio_u256_divmod_q128, tio_u256_from_ld_fast)
from libc.stdint cimport uint64_t


cdef int _check(int status, str what) except -1:
    if status == TIO_U256_DIV_ZERO:
        raise ZeroDivisionError(f"{what}: division by zero")
    if status == TIO_U256_OVERFLOW:
        raise OverflowError(f"{what}: the result does not fit in 256 bits")
    return 0


def roundtrip(a):
    """``a`` through tio_u256 and back (the conversions at the Python edge)."""
    cdef tio_u256 x
    u256_from_int(a, &x, "a")
    return u256_to_int(&x)


def add(a, b):
    """``(a + b mod 2**256, carry)``."""
    cdef tio_u256 x, y, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    cdef uint64_t carry = tio_u256_add(&r, &x, &y)
    return u256_to_int(&r), int(carry)


def sub(a, b):
    """``(a - b mod 2**256, borrow)``."""
    cdef tio_u256 x, y, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    cdef uint64_t borrow = tio_u256_sub(&r, &x, &y)
    return u256_to_int(&r), int(borrow)


def mul_u64(a, uint64_t b):
    """``(a * b mod 2**256, the limb above)`` for a 64-bit ``b``."""
    cdef tio_u256 x, r
    u256_from_int(a, &x, "a")
    cdef uint64_t top = tio_u256_mul_u64(&r, &x, b)
    return u256_to_int(&r), int(top)


def mul_full(a, b):
    """The exact 512-bit product ``a * b``."""
    cdef tio_u256 x, y, lo, hi
    cdef tio_u512 p
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    tio_u256_mul_full(&p, &x, &y)
    for i in range(4):
        lo.w[i] = p.w[i]
        hi.w[i] = p.w[i + 4]
    return (u256_to_int(&hi) << 256) | u256_to_int(&lo)


def mul(a, b):
    """``a * b``; OverflowError past 2**256 - 1 (SafeMath.mul)."""
    cdef tio_u256 x, y, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    _check(tio_u256_mul(&r, &x, &y), "mul")
    return u256_to_int(&r)


def divmod256(a, b):
    """``(a // b, a % b)``; ZeroDivisionError for b == 0."""
    cdef tio_u256 x, y, q, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    _check(tio_u256_divmod(&q, &r, &x, &y), "divmod")
    return u256_to_int(&q), u256_to_int(&r)


def divmod512(u, d):
    """``(u // d, u % d)`` for ``0 <= u < 2**512``; OverflowError when the quotient
    needs more than 256 bits."""
    cdef tio_u256 lo, hi, y, q, r
    cdef tio_u512 x
    if not isinstance(u, int) or not 0 <= u < 1 << 512:
        raise ValueError("u must be an int in [0, 2**512)")
    u256_from_int(u & ((1 << 256) - 1), &lo, "u"); u256_from_int(u >> 256, &hi, "u")
    u256_from_int(d, &y, "d")
    for i in range(4):
        x.w[i] = lo.w[i]
        x.w[i + 4] = hi.w[i]
    _check(tio_u512_divmod_u256(&q, &r, &x, &y), "divmod512")
    return u256_to_int(&q), u256_to_int(&r)


def mul_div(a, b, d):
    """FullMath.mulDiv: ``a * b // d`` exactly; reverts (ZeroDivisionError,
    OverflowError) where the library does."""
    cdef tio_u256 x, y, z, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b"); u256_from_int(d, &z, "d")
    _check(tio_u256_mul_div(&r, &x, &y, &z), "mul_div")
    return u256_to_int(&r)


def mul_div_rounding_up(a, b, d):
    """FullMath.mulDivRoundingUp: ``ceil(a * b / d)``."""
    cdef tio_u256 x, y, z, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b"); u256_from_int(d, &z, "d")
    _check(tio_u256_mul_div_rounding_up(&r, &x, &y, &z), "mul_div_rounding_up")
    return u256_to_int(&r)


def div_rounding_up(a, b):
    """UnsafeMath.divRoundingUp: ``ceil(a / b)``, and 0 for b == 0 as the EVM's DIV gives."""
    cdef tio_u256 x, y, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    tio_u256_div_rounding_up(&r, &x, &y)
    return u256_to_int(&r)


def shl(a, unsigned n):
    """``a << n mod 2**256`` (0 for n >= 256)."""
    cdef tio_u256 x, r
    u256_from_int(a, &x, "a")
    tio_u256_shl(&r, &x, n)
    return u256_to_int(&r)


def shr(a, unsigned n):
    """``a >> n`` (0 for n >= 256)."""
    cdef tio_u256 x, r
    u256_from_int(a, &x, "a")
    tio_u256_shr(&r, &x, n)
    return u256_to_int(&r)


def cmp(a, b):
    """-1, 0 or 1 as a <, == or > b."""
    cdef tio_u256 x, y
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    return tio_u256_cmp(&x, &y)


def bit_length(a):
    """The number of significant bits of ``a``."""
    cdef tio_u256 x
    u256_from_int(a, &x, "a")
    return tio_u256_bit_length(&x)


def to_float(a):
    """``a`` as the nearest long double at or below it, returned as a float."""
    cdef tio_u256 x
    u256_from_int(a, &x, "a")
    return <double>tio_u256_to_ld(&x)


def from_float(double x):
    """``floor(x)`` clamped to [0, 2**256 - 1]."""
    cdef tio_u256 r
    tio_u256_from_ld(&r, x)
    return u256_to_int(&r)


# ---- the 128-bit fast paths of u256.pxd (same results as mul / divmod256, by construction
# and by tests/test_amm_u256_fast.py) ----------------------------------------------------------

def mul_fast(a, b):
    """``a * b`` like :func:`mul`, four 64-bit products when both are below 2**128."""
    cdef tio_u256 x, y, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    _check(tio_u256_mul_fast(&r, &x, &y), "mul")
    return u256_to_int(&r)


def divmod_fast(a, b):
    """``(a // b, a % b)`` like :func:`divmod256`, one or two digit steps when
    ``b < 2**128`` and the quotient fits 128 bits."""
    cdef tio_u256 x, y, q, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    _check(tio_u256_divmod_fast(&q, &r, &x, &y), "divmod")
    return u256_to_int(&q), u256_to_int(&r)


def divmod_q128(a, b):
    """``(a // b, a % b)`` by the short route alone, ``None`` when it does not apply
    (``b == 0``, ``b >= 2**128`` or a quotient of 2**128 or more).

    >>> divmod_q128(10**30, 7), divmod_q128(2**200, 3)
    ((142857142857142857142857142857, 1), None)
    """
    cdef tio_u256 x, y, q, r
    u256_from_int(a, &x, "a"); u256_from_int(b, &y, "b")
    if tio_u256_divmod_q128(&q, &r, &x, &y) != 0:
        return None
    return u256_to_int(&q), u256_to_int(&r)


def from_float_fast(double x):
    """``floor(x)`` clamped to [0, 2**256 - 1], like :func:`from_float` (one conversion
    when ``1 <= x < 2**64``)."""
    cdef tio_u256 r
    tio_u256_from_ld_fast(&r, x)
    return u256_to_int(&r)
