# The node source's two hot encoders, compiled: Keccak-256 and RLP.
#
# Owns: a Keccak-f[1600] sponge (FIPS 202's permutation with the original
# Keccak padding 0x01..0x80 that Ethereum uses; written from the specification)
# and an RLP encoder for bytes / non-negative ints / nested lists. Touches no
# other module. The hash check of every pending transaction runs both, so they
# are compiled: in Python they cost ~60 us per transaction (see the report), and
# the C sponge frees the base install from needing pycryptodome.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

cdef uint64_t[24] _RC = [
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
]
# rotation offset of lane (x, y), at index x + 5 * y
cdef int[25] _ROT = [
    0, 1, 62, 28, 27,
    36, 44, 6, 55, 20,
    3, 10, 43, 25, 39,
    41, 45, 15, 21, 8,
    18, 2, 61, 56, 14,
]

cdef enum:
    RATE = 136  # bytes absorbed per permutation for a 256-bit output (1600 - 2 * 256 bits)


cdef inline uint64_t _rotl(uint64_t v, int n) noexcept nogil:
    return v if n == 0 else ((v << n) | (v >> (64 - n)))


cdef void _keccak_f(uint64_t* a) noexcept nogil:
    cdef uint64_t c[5]
    cdef uint64_t d[5]
    cdef uint64_t b[25]
    cdef int rnd, x, y
    for rnd in range(24):
        # theta: each lane takes the parity of two neighbouring columns
        for x in range(5):
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20]
        for x in range(5):
            d[x] = c[(x + 4) % 5] ^ _rotl(c[(x + 1) % 5], 1)
        for y in range(0, 25, 5):
            for x in range(5):
                a[y + x] ^= d[x]
        # rho and pi: rotate each lane, move (x, y) to (y, 2x + 3y)
        for y in range(5):
            for x in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(a[x + 5 * y], _ROT[x + 5 * y])
        # chi: the only non-linear step, along rows
        for y in range(0, 25, 5):
            for x in range(5):
                a[y + x] = b[y + x] ^ ((~b[y + (x + 1) % 5]) & b[y + (x + 2) % 5])
        # iota
        a[0] ^= _RC[rnd]


cdef inline uint64_t _load_le(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


cdef void _keccak256(const uint8_t* data, Py_ssize_t n, uint8_t* out) noexcept nogil:
    cdef uint64_t state[25]
    cdef uint8_t block[RATE]
    cdef Py_ssize_t i
    memset(state, 0, sizeof(state))
    while n >= RATE:
        for i in range(RATE // 8):
            state[i] ^= _load_le(data + 8 * i)
        _keccak_f(state)
        data += RATE
        n -= RATE
    memset(block, 0, RATE)
    memcpy(block, data, n)
    block[n] ^= 0x01          # Keccak padding (SHA-3 would use 0x06)
    block[RATE - 1] ^= 0x80
    for i in range(RATE // 8):
        state[i] ^= _load_le(block + 8 * i)
    _keccak_f(state)
    for i in range(32):
        out[i] = <uint8_t>(state[i // 8] >> (8 * (i % 8)))


def keccak256(data) -> bytes:
    """Keccak-256 (Ethereum's hash, not NIST SHA3-256) of a bytes-like object.

    >>> keccak256(b"").hex()
    'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470'
    """
    cdef const uint8_t[::1] view = data
    cdef uint8_t out[32]
    cdef uint8_t empty = 0
    cdef Py_ssize_t n = view.shape[0]
    with nogil:
        _keccak256(&view[0] if n else &empty, n, out)
    return PyBytes_FromStringAndSize(<char*>out, 32)


# ---- RLP ----

cdef int _prefix(bytearray out, Py_ssize_t length, uint8_t short_base) except -1:
    cdef uint8_t buf[9]
    cdef int size = 0, i
    cdef Py_ssize_t v = length
    if length < 56:
        out.append(short_base + length)
        return 0
    while v:
        size += 1
        v >>= 8
    buf[0] = short_base + 55 + size
    for i in range(size):
        buf[size - i] = <uint8_t>(length >> (8 * i))
    out += PyBytes_FromStringAndSize(<char*>buf, size + 1)
    return 0


cdef int _encode_bytes(bytearray out, bytes value) except -1:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    if n == 1 and <uint8_t>PyBytes_AS_STRING(value)[0] < 0x80:
        out += value
        return 0
    _prefix(out, n, 0x80)
    out += value
    return 0


cdef int _encode_int(bytearray out, object value) except -1:
    cdef uint64_t v
    cdef uint8_t buf[9]
    cdef int size = 0, i
    if value < 0:
        raise ValueError(f"RLP encodes non-negative integers, got {value}")
    if value < 0x80:
        out.append(0x80 if value == 0 else value)  # 0 is the empty string; 1..127 are themselves
        return 0
    if value <= 0xFFFFFFFFFFFFFFFF:
        v = value
        while v:
            size += 1
            v >>= 8
        v = value
        buf[0] = 0x80 + size
        for i in range(size):
            buf[size - i] = <uint8_t>(v >> (8 * i))
        out += PyBytes_FromStringAndSize(<char*>buf, size + 1)
        return 0
    return _encode_bytes(out, value.to_bytes((value.bit_length() + 7) // 8, "big"))


cdef int _encode(bytearray out, object item) except -1:
    cdef bytearray payload
    if type(item) is bytes:
        return _encode_bytes(out, <bytes>item)
    if type(item) is int or type(item) is bool:
        return _encode_int(out, int(item))
    if type(item) is list or type(item) is tuple:
        payload = bytearray()
        for x in item:
            _encode(payload, x)
        _prefix(out, len(payload), 0xC0)
        out += payload
        return 0
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _encode_bytes(out, bytes(item))
    if isinstance(item, int):
        return _encode_int(out, int(item))
    raise TypeError(f"RLP encodes bytes, non-negative ints and lists of them, got {type(item).__name__}")


def rlp_encode(item) -> bytes:
    """RLP of ``bytes`` / ``int`` (minimal big-endian) / lists of those.

    >>> rlp_encode([b"cat", b"dog"]).hex()
    'c88363617483646f67'
    >>> rlp_encode(1024).hex(), rlp_encode(0).hex(), rlp_encode(b"\\x7f").hex()
    ('820400', '80', '7f')
    """
    out = bytearray()
    _encode(out, item)
    return bytes(out)
