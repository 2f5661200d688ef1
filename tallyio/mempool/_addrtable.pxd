# cython: language_level=3
# Owns: the open-addressing table of 20-byte addresses -> uint32 values that the filter
# (known routers and pools) and the pool table (pool address -> pool index) share.
# Touches nothing else; inline, allocation-free lookups safe without the GIL.
"""Open addressing, linear probing, power-of-two capacity kept at most half full.

An address is three words: bytes 0-7, 8-15 and 16-19 (plus a "used" bit at bit 32
of the third word, so an all-zero address is still a key).  The hash mixes all three
words, because real addresses are not uniform in their first bytes (vanity addresses
start with zeros).  Entries are only added (setup, with the GIL) or looked up; a table
is rebuilt, never edited in place, while readers may run.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free

cdef struct tio_addr_entry:
    uint64_t k0
    uint64_t k1
    uint64_t k2            # bytes 16..19 | USED_BIT; 0 = empty entry
    uint32_t value
    uint32_t _pad


cdef struct tio_addr_table:
    tio_addr_entry *entries
    uint64_t mask          # capacity - 1
    uint64_t count


cdef enum:
    TIO_ADDR_MISSING = 0xFFFFFFFF


cdef inline void addr_key(const uint8_t *a, uint64_t *k0, uint64_t *k1, uint64_t *k2) noexcept nogil:
    cdef uint32_t tail = 0
    memcpy(k0, a, 8)
    memcpy(k1, a + 8, 8)
    memcpy(&tail, a + 16, 4)
    k2[0] = <uint64_t>tail | (<uint64_t>1 << 32)


cdef inline uint64_t addr_hash(uint64_t k0, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t h = k0 * 0x9E3779B97F4A7C15ULL
    h ^= (k1 + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL
    h ^= k2 * 0x165667B19E3779F9ULL
    return h ^ (h >> 29)


cdef inline int addr_table_init(tio_addr_table *t, uint64_t expected) noexcept nogil:
    """Room for `expected` keys at load <= 1/2; 0, or -1 when out of memory."""
    cdef uint64_t cap = 16
    while cap < 2 * expected + 2:
        cap <<= 1
    t.entries = <tio_addr_entry *>calloc(cap, sizeof(tio_addr_entry))
    if t.entries == NULL:
        return -1
    t.mask = cap - 1
    t.count = 0
    return 0


cdef inline void addr_table_free(tio_addr_table *t) noexcept nogil:
    free(t.entries)
    t.entries = NULL
    t.count = 0


cdef inline uint32_t addr_table_get(const tio_addr_table *t, const uint8_t *a) noexcept nogil:
    """The value stored for address `a`, or TIO_ADDR_MISSING."""
    cdef uint64_t k0, k1, k2, i
    cdef const tio_addr_entry *e
    addr_key(a, &k0, &k1, &k2)
    i = addr_hash(k0, k1, k2) & t.mask
    while True:
        e = &t.entries[i]
        if e.k2 == 0:
            return TIO_ADDR_MISSING
        if e.k0 == k0 and e.k1 == k1 and e.k2 == k2:
            return e.value
        i = (i + 1) & t.mask


cdef inline int addr_table_put(tio_addr_table *t, const uint8_t *a, uint32_t value) noexcept nogil:
    """Set `a` -> value: 1 added, 0 replaced, -1 full (the caller rebuilds bigger)."""
    cdef uint64_t k0, k1, k2, i
    cdef tio_addr_entry *e
    addr_key(a, &k0, &k1, &k2)
    i = addr_hash(k0, k1, k2) & t.mask
    while True:
        e = &t.entries[i]
        if e.k2 == 0:
            if 2 * (t.count + 1) > t.mask + 1:
                return -1
            e.k0 = k0
            e.k1 = k1
            e.k2 = k2
            e.value = value
            t.count += 1
            return 1
        if e.k0 == k0 and e.k1 == k1 and e.k2 == k2:
            e.value = value
            return 0
        i = (i + 1) & t.mask
