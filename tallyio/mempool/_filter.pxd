# cython: language_level=3
# Owns: the transaction filter's state (known targets, recent hashes, per-sender nonces,
# floors, drop counters) and its nogil check.  Touches: _addrtable, _ring's tio_pending.
# One thread (the watcher) calls the check: the tables are single-writer; the counters
# are relaxed atomics so stats() may read them from any thread.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from tallyio._ext.common cimport tio_atomic_u64
from tallyio._ext.u256 cimport tio_u256
from tallyio._ext.common cimport tio_role
from tallyio.mempool._addrtable cimport tio_addr_table
from tallyio.mempool._ring cimport tio_pending

cdef enum:
    # target kinds (the high byte of a target-table value; the low 16 bits: exchange id)
    TARGET_ROUTER_V2 = 1
    TARGET_ROUTER_V3 = 2
    TARGET_UNIVERSAL_ROUTER = 3
    TARGET_POOL_V2 = 4
    TARGET_POOL_V3 = 5

cdef enum:
    # verdicts, in the order they are checked; PASS_ is 0
    FILTER_PASS = 0
    FILTER_NOT_TARGET = 1       # creation, or `to` is no known router or pool
    FILTER_DUPLICATE = 2        # the hash is among the recent ones
    FILTER_VALUE_FLOOR = 3
    FILTER_GAS_PRICE_FLOOR = 4
    FILTER_NONCE_GAP = 5
    FILTER_VERDICTS = 6


cdef struct tio_hash_key:
    uint64_t a
    uint64_t b                  # bytes 8..15 of the hash | 1 (0 marks an empty entry)


cdef struct tio_nonce_entry:
    uint64_t k0
    uint64_t k1
    uint64_t k2                 # 0: empty
    uint64_t next_nonce         # highest nonce seen from this sender + 1


cdef struct tio_filter:
    tio_addr_table targets
    tio_u256 min_value
    tio_u256 min_gas_price
    bint check_nonces
    # recent hashes: a FIFO of keys and a linear-probing index over them
    tio_hash_key *recent_fifo
    uint64_t recent_cap
    uint64_t recent_head        # next FIFO position to write
    uint64_t recent_count
    tio_hash_key *recent_index
    uint64_t recent_mask
    # per-sender nonces: direct mapped
    tio_nonce_entry *nonces
    uint64_t nonce_mask
    tio_atomic_u64 verdicts[6]  # counts by verdict (single writer, relaxed)


cdef int tio_filter_check(tio_filter *f, const tio_pending *p, uint32_t *target) noexcept nogil
# the first check alone, before a record is built: FILTER_NOT_TARGET (counted) when `to`
# (NULL: a creation) is no known target, else FILTER_PASS (nothing counted yet)
cdef int tio_filter_target(tio_filter *f, const uint8_t *to) noexcept nogil


cdef class TxFilter:
    cdef tio_filter f
    cdef tio_role role
    cdef readonly object config
    cdef dict target_names
