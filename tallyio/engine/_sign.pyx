"""Type-2 transaction signing's compiled part (``tallyio.engine.keys.Signer`` calls it):
from the unsigned transaction's RLP list to the raw signed transaction and its hash
in one call -- Keccak-256 of ``0x02 || rlp`` (its own register-resident permutation), libsecp256k1's
``secp256k1_ecdsa_sign_recoverable`` on that digest with the key read in place from
the signer's ``bytearray`` (RFC 6979 nonce, low s: what eth-account produces), the
signature appended to the RLP list without re-encoding its fields, and the hash of
the result.

Owns nothing long-lived but ``SecpFunctions``: the addresses of two libsecp256k1
functions and of the shared context, taken from coincurve's cffi module (the library
coincurve loaded is the one called, with the context coincurve created; no second
copy of libsecp256k1 is linked).  Never copies the key: it is read where it lies,
without the GIL (the caller holds its own lock so the key cannot be zeroed meanwhile).

    >>> from tallyio.engine.keys import Signer
    >>> s = Signer.from_hex("0x" + "11" * 32)
    >>> raw, tx_hash = s.sign_transaction({"chainId": 1, "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1,
    ...                                    "gas": 21_000, "to": b"\\x22" * 20, "value": 1})
    >>> raw[:1], len(tx_hash)
    (b'\\x02', 32)
"""
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

cdef extern from *:
    """
    /* Keccak-f[1600] with the 25 lanes in local variables and the rho/pi lane moves written
       out (FIPS 202 section 3.2, derived lane by lane: B[y][2x+3y] = rot(A[x][y] ^ D[x], r[x][y])),
       so the compiler keeps the state in registers: about 2-3x tio_keccak.h's looped permutation
       here; the tests check every digest against it.  aXY / bXY name lane (x, y). */
    #include <stdint.h>
    #include <string.h>
    #define TIO_ROL(v, n) (((v) << (n)) | ((v) >> (64 - (n))))
    static inline void tio_sign_keccak_f(uint64_t s[25])
    {
        static const uint64_t rc[24] = {
            0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
            0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
            0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
            0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
            0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
            0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
        uint64_t a00 = s[0], a10 = s[1], a20 = s[2], a30 = s[3], a40 = s[4];
        uint64_t a01 = s[5], a11 = s[6], a21 = s[7], a31 = s[8], a41 = s[9];
        uint64_t a02 = s[10], a12 = s[11], a22 = s[12], a32 = s[13], a42 = s[14];
        uint64_t a03 = s[15], a13 = s[16], a23 = s[17], a33 = s[18], a43 = s[19];
        uint64_t a04 = s[20], a14 = s[21], a24 = s[22], a34 = s[23], a44 = s[24];
        for (int r = 0; r < 24; r++) {
            /* theta */
            uint64_t c0 = a00 ^ a01 ^ a02 ^ a03 ^ a04, c1 = a10 ^ a11 ^ a12 ^ a13 ^ a14;
            uint64_t c2 = a20 ^ a21 ^ a22 ^ a23 ^ a24, c3 = a30 ^ a31 ^ a32 ^ a33 ^ a34;
            uint64_t c4 = a40 ^ a41 ^ a42 ^ a43 ^ a44;
            uint64_t d0 = c4 ^ TIO_ROL(c1, 1), d1 = c0 ^ TIO_ROL(c2, 1), d2 = c1 ^ TIO_ROL(c3, 1);
            uint64_t d3 = c2 ^ TIO_ROL(c4, 1), d4 = c3 ^ TIO_ROL(c0, 1);
            /* rho + pi: B[y][2x+3y] = rot(A[x][y] ^ D[x], r[x][y]); bXY names the destination (x, y) */
            uint64_t b00 = a00 ^ d0;
            uint64_t b01 = TIO_ROL(a30 ^ d3, 28),
                     b02 = TIO_ROL(a10 ^ d1, 1),
                     b03 = TIO_ROL(a40 ^ d4, 27),
                     b04 = TIO_ROL(a20 ^ d2, 62);
            uint64_t b10 = TIO_ROL(a11 ^ d1, 44),
                     b11 = TIO_ROL(a41 ^ d4, 20),
                     b12 = TIO_ROL(a21 ^ d2, 6),
                     b13 = TIO_ROL(a01 ^ d0, 36),
                     b14 = TIO_ROL(a31 ^ d3, 55);
            uint64_t b20 = TIO_ROL(a22 ^ d2, 43),
                     b21 = TIO_ROL(a02 ^ d0, 3),
                     b22 = TIO_ROL(a32 ^ d3, 25),
                     b23 = TIO_ROL(a12 ^ d1, 10),
                     b24 = TIO_ROL(a42 ^ d4, 39);
            uint64_t b30 = TIO_ROL(a33 ^ d3, 21),
                     b31 = TIO_ROL(a13 ^ d1, 45),
                     b32 = TIO_ROL(a43 ^ d4, 8),
                     b33 = TIO_ROL(a23 ^ d2, 15),
                     b34 = TIO_ROL(a03 ^ d0, 41);
            uint64_t b40 = TIO_ROL(a44 ^ d4, 14),
                     b41 = TIO_ROL(a24 ^ d2, 61),
                     b42 = TIO_ROL(a04 ^ d0, 18),
                     b43 = TIO_ROL(a34 ^ d3, 56),
                     b44 = TIO_ROL(a14 ^ d1, 2);
            /* chi along each row y: A[x][y] = B[x][y] ^ (~B[x+1][y] & B[x+2][y]) */
            a00 = b00 ^ (~b10 & b20); a10 = b10 ^ (~b20 & b30); a20 = b20 ^ (~b30 & b40);
            a30 = b30 ^ (~b40 & b00); a40 = b40 ^ (~b00 & b10);
            a01 = b01 ^ (~b11 & b21); a11 = b11 ^ (~b21 & b31); a21 = b21 ^ (~b31 & b41);
            a31 = b31 ^ (~b41 & b01); a41 = b41 ^ (~b01 & b11);
            a02 = b02 ^ (~b12 & b22); a12 = b12 ^ (~b22 & b32); a22 = b22 ^ (~b32 & b42);
            a32 = b32 ^ (~b42 & b02); a42 = b42 ^ (~b02 & b12);
            a03 = b03 ^ (~b13 & b23); a13 = b13 ^ (~b23 & b33); a23 = b23 ^ (~b33 & b43);
            a33 = b33 ^ (~b43 & b03); a43 = b43 ^ (~b03 & b13);
            a04 = b04 ^ (~b14 & b24); a14 = b14 ^ (~b24 & b34); a24 = b24 ^ (~b34 & b44);
            a34 = b34 ^ (~b44 & b04); a44 = b44 ^ (~b04 & b14);
            a00 ^= rc[r];
        }
        s[0] = a00; s[1] = a10; s[2] = a20; s[3] = a30; s[4] = a40;
        s[5] = a01; s[6] = a11; s[7] = a21; s[8] = a31; s[9] = a41;
        s[10] = a02; s[11] = a12; s[12] = a22; s[13] = a32; s[14] = a42;
        s[15] = a03; s[16] = a13; s[17] = a23; s[18] = a33; s[19] = a43;
        s[20] = a04; s[21] = a14; s[22] = a24; s[23] = a34; s[24] = a44;
    }

    static inline void tio_sign_keccak256(const uint8_t *data, size_t n, uint8_t out[32])
    {
        uint64_t a[25];
        uint8_t last[136];
        memset(a, 0, sizeof a);
        for (;;) {
            const uint8_t *block = data;
            int final = n < 136;
            if (final) {            /* the rest, Keccak's 0x01 pad byte, zeros, 0x80 on the last byte */
                memset(last, 0, sizeof last);
                if (n)
                    memcpy(last, data, n);
                last[n] ^= 0x01;
                last[135] ^= 0x80;
                block = last;
            }
            for (int i = 0; i < 17; i++) {
                uint64_t lane = 0;
                for (int k = 7; k >= 0; k--)
                    lane = (lane << 8) | block[8 * i + k];
                a[i] ^= lane;
            }
            tio_sign_keccak_f(a);
            if (final)
                break;
            data += 136;
            n -= 136;
        }
        for (int i = 0; i < 32; i++)
            out[i] = (uint8_t)(a[i / 8] >> (8 * (i % 8)));
    }
    """
    void tio_sign_keccak256(const uint8_t *data, size_t n, uint8_t *out) nogil


def keccak256(data):
    """Keccak-256 of ``bytes`` with this module's permutation (for the tests).

    >>> keccak256(b"").hex()[:16]
    'c5d2460186f7233c'
    """
    cdef bytes raw = bytes(data)
    cdef uint8_t digest[32]
    tio_sign_keccak256(<const uint8_t *>PyBytes_AS_STRING(raw), <size_t>PyBytes_GET_SIZE(raw), digest)
    return PyBytes_FromStringAndSize(<char *>digest, 32)


__all__ = ["SecpFunctions", "sign_type2", "sign_type2_dict"]

# libsecp256k1's API (include/secp256k1_recovery.h): the context and the 65-byte opaque
# recoverable signature are passed by address; a NULL nonce function is RFC 6979.
ctypedef int (*sign_recoverable_fn)(const void *ctx, uint8_t *sig65, const uint8_t *msghash32,
                                    const uint8_t *seckey, const void *noncefp,
                                    const void *ndata) noexcept nogil
ctypedef int (*serialize_compact_fn)(const void *ctx, uint8_t *output64, int *recid,
                                     const uint8_t *sig65) noexcept nogil

cdef enum:
    STACK_PAYLOAD = 2048        # digests of payloads up to this size are hashed from a stack buffer


cdef class SecpFunctions:
    """The libsecp256k1 entry points coincurve's cffi module exposes, as C addresses.

    ``SecpFunctions(ffi, lib, ctx)`` with coincurve's ``ffi``, ``lib`` and
    ``GLOBAL_CONTEXT.ctx``; raises ``TypeError`` when they are not cffi objects with
    those functions (the caller then keeps signing through cffi)."""

    cdef sign_recoverable_fn sign_recoverable
    cdef serialize_compact_fn serialize_compact
    cdef const void *ctx
    cdef object _keep      # the cffi objects whose addresses are held: kept alive with this one

    def __init__(self, ffi, lib, ctx):
        try:
            sign = int(ffi.cast("uintptr_t", ffi.addressof(lib, "secp256k1_ecdsa_sign_recoverable")))
            serialize = int(ffi.cast("uintptr_t",
                                     ffi.addressof(lib, "secp256k1_ecdsa_recoverable_signature_serialize_compact")))
            context = int(ffi.cast("uintptr_t", ctx))
        except (AttributeError, TypeError, ValueError) as exc:
            raise TypeError(f"SecpFunctions needs coincurve's cffi ffi, lib and context: {exc}") from None
        if not sign or not serialize or not context:
            raise TypeError("SecpFunctions: a libsecp256k1 address is NULL")
        self.sign_recoverable = <sign_recoverable_fn><uintptr_t>sign
        self.serialize_compact = <serialize_compact_fn><uintptr_t>serialize
        self.ctx = <const void *><uintptr_t>context
        self._keep = (ffi, lib, ctx)


cdef inline Py_ssize_t list_header(uint8_t *out, Py_ssize_t length) noexcept nogil:
    """RLP list header of a payload of `length` bytes written to out (<= 9 bytes); its size."""
    cdef Py_ssize_t size = 0, v = length, i
    if length < 56:
        out[0] = <uint8_t>(0xC0 + length)
        return 1
    while v:
        size += 1
        v >>= 8
    out[0] = <uint8_t>(0xF7 + size)
    for i in range(size):
        out[size - i] = <uint8_t>(length >> (8 * i))
    return size + 1


cdef inline Py_ssize_t scalar(uint8_t *out, const uint8_t *be32) noexcept nogil:
    """RLP of the 32-byte big-endian integer be32 (minimal, as an int); its size."""
    cdef Py_ssize_t skip = 0
    while skip < 32 and be32[skip] == 0:
        skip += 1
    if skip == 32:
        out[0] = 0x80
        return 1
    if skip == 31 and be32[31] < 0x80:
        out[0] = be32[31]
        return 1
    out[0] = <uint8_t>(0x80 + 32 - skip)
    memcpy(out + 1, be32 + skip, 32 - skip)
    return 33 - skip


def sign_type2(SecpFunctions secp not None, bytearray key not None, bytes unsigned_rlp not None):
    """``(raw, tx_hash)`` of the type-2 transaction whose unsigned fields RLP-encode to
    ``unsigned_rlp`` (an RLP list), signed with ``key`` (32 bytes, read in place).

    Raises ``ValueError`` when ``unsigned_rlp`` is not one RLP list or ``key`` is not 32
    bytes, ``RuntimeError`` when libsecp256k1 refuses (a zeroed key); never with the key
    in the message."""
    return _sign_rlp(secp, key, <const uint8_t *>PyBytes_AS_STRING(unsigned_rlp), PyBytes_GET_SIZE(unsigned_rlp))


cdef object _sign_rlp(SecpFunctions secp, bytearray key, const uint8_t *rlp, Py_ssize_t n):
    if secp.sign_recoverable == NULL or secp.serialize_compact == NULL or secp.ctx == NULL:
        raise TypeError("SecpFunctions.__init__ was not called")
    cdef Py_ssize_t head, body, total, at, i
    cdef uint64_t stated
    cdef uint8_t stack[STACK_PAYLOAD]
    cdef uint8_t *hashed
    cdef uint8_t digest[32]
    cdef uint8_t sig[65]
    cdef uint8_t compact[64]
    cdef uint8_t tail[1 + 33 + 33]
    cdef uint8_t header[9]
    cdef Py_ssize_t tail_len, header_len
    cdef int recid = 0
    cdef int ok = 0
    cdef const uint8_t *secret
    cdef uint8_t *out
    if PyByteArray_GET_SIZE(key) != 32:
        raise ValueError("sign_type2: the key must be 32 bytes")
    if n < 1 or rlp[0] < 0xC0:
        raise ValueError("sign_type2: unsigned_rlp must be an RLP list")
    head = 1 if rlp[0] <= 0xF7 else 1 + (rlp[0] - 0xF7)
    if head > 9 or head > n:
        raise ValueError("sign_type2: unsigned_rlp must be exactly one RLP list")
    stated = rlp[0] - 0xC0 if head == 1 else 0
    for i in range(1, head):
        stated = (stated << 8) | rlp[i]
    if stated != <uint64_t>(n - head):
        raise ValueError("sign_type2: unsigned_rlp must be exactly one RLP list")
    body = n - head
    if n + 1 <= STACK_PAYLOAD:
        hashed = &stack[0]
    else:
        hashed = <uint8_t *>malloc(n + 1)
    if hashed == NULL:
        raise MemoryError()
    secret = <const uint8_t *>PyByteArray_AS_STRING(key)
    with nogil:
        hashed[0] = 0x02
        memcpy(hashed + 1, rlp, n)
        tio_sign_keccak256(hashed, n + 1, digest)
        if hashed != &stack[0]:
            free(hashed)
        ok = secp.sign_recoverable(secp.ctx, sig, digest, secret, NULL, NULL)
        if ok:
            secp.serialize_compact(secp.ctx, compact, &recid, sig)
    if not ok:
        raise RuntimeError("libsecp256k1 could not sign (the key is zero or out of range)")
    tail[0] = 0x01 if recid == 1 else 0x80     # y parity: 1 is itself, 0 the empty string
    tail_len = 1
    tail_len += scalar(tail + tail_len, compact)
    tail_len += scalar(tail + tail_len, compact + 32)
    header_len = list_header(header, body + tail_len)
    total = 1 + header_len + body + tail_len
    raw = PyBytes_FromStringAndSize(NULL, total)
    out = <uint8_t *>PyBytes_AS_STRING(raw)
    out[0] = 0x02
    at = 1
    memcpy(out + at, header, header_len)
    at += header_len
    memcpy(out + at, rlp + head, body)
    at += body
    memcpy(out + at, tail, tail_len)
    with nogil:
        tio_sign_keccak256(out, total, digest)
    return raw, PyBytes_FromStringAndSize(<char *>digest, 32)


# ---- the common transaction, encoded here: a dict of plain ints and bytes -------------------------

cdef enum:
    FIELDS_MAX = 2048           # the fast path's RLP fits a stack buffer of this size (longer data: Python)

cdef object _KINDS = (2, "0x2", "0x02")
cdef tuple _KNOWN = ("type", "chainId", "nonce", "maxFeePerGas", "maxPriorityFeePerGas", "gas", "to", "value", "data",
                     "accessList")


cdef inline bint scalar_u256(object value, uint8_t *be32, bint wide):
    """A plain int in 0..2**64-1 (wide: 0..2**256-1) as 32 big-endian bytes; False otherwise."""
    cdef unsigned long long v
    cdef int i
    if type(value) is not int or value < 0:
        return False
    if not wide:
        if value > 0xFFFFFFFFFFFFFFFF:
            return False
        v = value
        memset(be32, 0, 24)
        for i in range(8):
            be32[31 - i] = <uint8_t>(v >> (8 * i))
        return True
    try:
        tio_be32_from_pylong(value, be32)
    except OverflowError:
        return False
    return True


cdef inline Py_ssize_t put_string(uint8_t *out, const uint8_t *data, Py_ssize_t n) noexcept nogil:
    """RLP of the byte string data[0..n) (n < 2**32) written to out; its size."""
    cdef Py_ssize_t head
    if n == 1 and data[0] < 0x80:
        out[0] = data[0]
        return 1
    head = list_header(out, n)          # a string's header is a list's minus 0x40
    out[0] -= 0x40
    memcpy(out + head, data, n)
    return head + n


cdef extern from *:
    """
    static inline int tio_be32_from_pylong(PyObject *v, unsigned char *be32)
    {
    #if PY_VERSION_HEX >= 0x030d0000
        return _PyLong_AsByteArray((PyLongObject *)v, be32, 32, 0, 0, 1);
    #else
        return _PyLong_AsByteArray((PyLongObject *)v, be32, 32, 0, 0);
    #endif
    }
    """
    int tio_be32_from_pylong(object v, uint8_t *be32) except? -1


def sign_type2_dict(SecpFunctions secp not None, bytearray key not None, tx):
    """``sign_type2`` of the transaction dict ``tx`` when it is the common kind -- a
    ``dict`` of eth-account's field names with plain ``int`` numbers in range, ``to``
    as 20 bytes or ``0x`` + 40 hex digits (or absent/None), ``data`` as ``bytes``, no
    access list (or an empty one), an encoding under 2 KiB -- or ``None``: the caller
    then validates (and explains) with its Python path.  Same bytes either way."""
    cdef uint8_t ints[6][32]
    cdef uint8_t buf[FIELDS_MAX]
    cdef Py_ssize_t at, head, data_len
    cdef uint8_t header[9]
    cdef int k
    cdef const uint8_t *to_ptr = NULL
    cdef const uint8_t *data_ptr
    if type(tx) is not dict:
        return None
    fields = <dict>tx
    present = 0
    for name in _KNOWN:
        if name in fields:
            present += 1
    if present != len(fields):                    # a field eth-account does not know: Python explains
        return None
    if "type" in fields and fields["type"] not in _KINDS:
        return None
    # chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, value: the RLP order
    if not (scalar_u256(fields.get("chainId"), ints[0], False) and scalar_u256(fields.get("nonce"), ints[1], False)
            and scalar_u256(fields.get("maxPriorityFeePerGas"), ints[2], True)
            and scalar_u256(fields.get("maxFeePerGas"), ints[3], True)
            and scalar_u256(fields.get("gas"), ints[4], False)):
        return None
    if memcmp(ints[2], ints[3], 32) > 0:         # priority above the cap: the Python path says so
        return None
    value = fields.get("value", 0)
    if not scalar_u256(value, ints[5], True):
        return None
    to = fields.get("to")
    if type(to) is str and len(<str>to) == 42 and (<str>to)[:2] in ("0x", "0X"):
        try:
            to = bytes.fromhex((<str>to)[2:])
        except ValueError:
            return None
    if type(to) is bytes and PyBytes_GET_SIZE(to) == 20:
        to_ptr = <const uint8_t *>PyBytes_AS_STRING(to)
    elif not (to is None or to == b"" or to == ""):
        return None
    data = fields.get("data", b"")
    if type(data) is not bytes:
        return None
    if fields.get("accessList"):
        return None
    data_len = PyBytes_GET_SIZE(data)
    if data_len > FIELDS_MAX - 400:
        return None
    data_ptr = <const uint8_t *>PyBytes_AS_STRING(data)
    at = 9                                        # room for the list header, written last
    for k in range(5):
        at += scalar(buf + at, ints[k])
    if to_ptr != NULL:
        at += put_string(buf + at, to_ptr, 20)
    else:
        buf[at] = 0x80
        at += 1
    at += scalar(buf + at, ints[5])
    at += put_string(buf + at, data_ptr, data_len)
    buf[at] = 0xC0                                # the (empty) access list
    at += 1
    head = list_header(header, at - 9)
    memcpy(buf + 9 - head, header, head)
    return _sign_rlp(secp, key, buf + 9 - head, at - 9 + head)
