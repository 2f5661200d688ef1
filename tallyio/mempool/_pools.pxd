# cython: language_level=3
# Owns: the pool table's C view (tio_pooltable: pointers into PoolTable's numpy arrays for V2
# pairs and V3 pools, the address, pair and V3-pool indexes, the precomputed cycles) and its
# nogil lookups.
# Touches: _addrtable.  Written only by one thread at a quiescent point (apply_sync from the
# watcher while no analysis runs: the pipeline's block barrier); read by workers without the GIL.
from libc.stdint cimport uint8_t, uint32_t, int32_t, uint64_t
from tallyio._ext.u256 cimport tio_u256
from tallyio.mempool._addrtable cimport tio_addr_table

cdef enum:
    CYCLE_MAX_HOPS = 3


cdef struct tio_pair_entry:
    uint64_t key            # exchange << 48 | low token << 24 | high token, + 1; 0 = empty
    int32_t pool


cdef enum:
    POOL_KIND_V2 = 0
    POOL_KIND_V3 = 1


cdef struct tio_v3pair_entry:
    uint64_t key            # as tio_pair_entry's key; 0 = empty
    uint32_t fee_pips
    int32_t pool


cdef struct tio_pooltable:
    uint64_t n_pools
    uint64_t n_tokens
    int32_t *tokens          # [2 n]: token0, token1 indexes of pool i
    uint32_t *fee_bps        # [n]
    uint32_t *exchange       # [n]
    double *reserve_f        # [2 n]: float64 copies for screening
    tio_u256 *reserve_x      # [2 n]: exact reserves
    uint8_t *pool_addr       # [20 n]
    uint8_t *token_addr      # [20 n_tokens]
    int32_t weth             # token index of WETH, or -1
    tio_addr_table pool_index    # pool address -> pool
    tio_addr_table token_index   # token address -> token
    tio_pair_entry *pairs
    uint64_t pair_mask
    # cycles: cycle c has cyc_len[c] hops; hop h uses pool cyc_pool[3c+h], entering with
    # token cyc_in[3c+h]; it starts (and ends) at token cyc_in[3c]
    uint64_t n_cycles
    uint8_t *cyc_len
    int32_t *cyc_pool
    int32_t *cyc_in
    int32_t *pool_cyc_off    # [n + 1]: cycles through pool p are pool_cyc_ids[off[p] .. off[p+1])
    int32_t *pool_cyc_ids
    uint64_t syncs_applied   # written by the one writer (see the file's first lines)
    uint64_t syncs_unknown
    # V3 pools (rows of kind POOL_KIND_V3; V2 rows hold zeros): reserve_f holds a V3 pool's
    # virtual reserves (L / sqrtP, L sqrtP: it is a constant-product pool within the range)
    # for screening; the exact state is below.  fee_pips: every row (V2: fee_bps x 100).
    uint8_t *kind            # [n] POOL_KIND_*
    uint32_t *fee_pips       # [n]
    tio_u256 *v3_sqrt_price  # [n] sqrtPriceX96
    tio_u256 *v3_liquidity   # [n]
    int32_t *v3_ticks        # [4 n]: tick, tick_lower, tick_upper, tick_spacing
    uint8_t *v3_range_ok     # [n]: 0 after a Swap log left the known range, until a resync
    tio_v3pair_entry *v3pairs
    uint64_t v3pair_mask


cdef inline uint64_t pair_key(uint32_t exchange, int32_t a, int32_t b) noexcept nogil:
    if a > b:
        a, b = b, a
    return ((<uint64_t>exchange << 48) | (<uint64_t>a << 24) | <uint64_t>b) + 1


cdef inline int32_t pooltable_pair(const tio_pooltable *t, uint32_t exchange, int32_t a,
                                   int32_t b) noexcept nogil:
    """The pool of `exchange` trading tokens a and b, or -1."""
    cdef uint64_t key = pair_key(exchange, a, b)
    cdef uint64_t i = (key * 0x9E3779B97F4A7C15ULL >> 17) & t.pair_mask
    while t.pairs[i].key != 0:
        if t.pairs[i].key == key:
            return t.pairs[i].pool
        i = (i + 1) & t.pair_mask
    return -1


cdef inline int32_t pooltable_v3_pool(const tio_pooltable *t, uint32_t exchange, int32_t a, int32_t b,
                                      uint32_t fee_pips) noexcept nogil:
    """The V3 pool of `exchange` trading tokens a and b at fee_pips, or -1."""
    cdef uint64_t key = pair_key(exchange, a, b)
    cdef uint64_t i = ((key ^ (<uint64_t>fee_pips << 40)) * 0x9E3779B97F4A7C15ULL >> 17) & t.v3pair_mask
    while t.v3pairs[i].key != 0:
        if t.v3pairs[i].key == key and t.v3pairs[i].fee_pips == fee_pips:
            return t.v3pairs[i].pool
        i = (i + 1) & t.v3pair_mask
    return -1


# the one writer's Sync: 1 applied, 0 unknown pool (counted), -1 a reserve >= 2**112 (nothing changed)
cdef int pooltable_apply_sync(tio_pooltable *t, const uint8_t *pool, const tio_u256 *r0,
                              const tio_u256 *r1) noexcept nogil


cdef class PoolTable:
    cdef tio_pooltable t
    cdef readonly object tokens          # numpy int32 (n, 2)
    cdef readonly object fee_bps         # numpy uint32 (n,)
    cdef readonly object exchange        # numpy uint32 (n,)
    cdef readonly object reserves        # numpy float64 (n, 2)
    cdef readonly object reserves_exact  # numpy uint64 (n, 2, 4): limbs, least significant first
    cdef readonly object kind            # numpy uint8 (n,): POOL_KIND_V2 / POOL_KIND_V3
    cdef readonly object fee_pips        # numpy uint32 (n,)
    cdef readonly object v3_sqrt_price   # numpy uint64 (n, 4) limbs
    cdef readonly object v3_liquidity    # numpy uint64 (n, 4) limbs
    cdef readonly object v3_ticks        # numpy int32 (n, 4): tick, tick_lower, tick_upper, spacing
    cdef readonly object v3_range_ok     # numpy uint8 (n,)
    cdef readonly uint64_t v3_events_applied
    cdef readonly uint64_t v3_events_unknown
    cdef readonly uint64_t v3_range_lost
    cdef readonly object cycle_len       # numpy uint8 (m,)
    cdef readonly object cycle_pools     # numpy int32 (m, 3)
    cdef readonly object cycle_tokens_in  # numpy int32 (m, 3)
    cdef object pool_cycle_offsets, pool_cycle_ids, pool_addr_arr, token_addr_arr
    cdef readonly list pool_addresses
    cdef readonly list token_addresses
    cdef readonly uint64_t cycles_truncated
    cdef object weth_address
