# cython: language_level=3
# Owns: PoolTable (state in _pools.pxd): building it from V2Pool / V3Pool records, the token
# graph and its 2- and 3-cycles, apply_sync, apply_v3_event, snapshots to and from bytes.
# Touches: _addrtable, tallyio.mempool.records, tallyio.eth.types (SyncEvent).
"""The pool table: every known pool's tokens, fee and reserves in numpy arrays
(float64 for screening, exact 256-bit limbs beside them), a token graph, and the
cycles of length 2 and 3 through each pool, precomputed.

V3 pools (:class:`~tallyio.mempool.records.V3Pool`) sit in the same rows and cycles:
their exact state is the price, the in-range liquidity, the tick and the initialized
tick range around it; their float64 "reserves" are the virtual reserves ``L / sqrtP``
and ``L sqrtP`` (within its range a V3 pool is a constant-product pool on them), so
the screen treats every hop alike.  ``apply_v3_event`` keeps them current from the
pools' ``Swap`` / ``Mint`` / ``Burn`` logs and from a resync's state.

Cycles: two pools of different exchanges on the same token pair make a 2-cycle; three
pools whose token pairs close a triangle make a 3-cycle.  Each is stored in both
directions, starting at WETH when it contains WETH (so profit is in ETH), else at its
lowest token index.

``apply_sync`` keeps it current from ``Sync`` logs.  Threading: the table is written by
one thread only while nothing reads it (the pipeline applies a block's Syncs at a
barrier, after every worker finished the transactions before the block).

    >>> from tallyio.mempool.records import V2Pool
    >>> from tallyio.eth.types import SyncEvent
    >>> A, B, W = b"\\xaa" * 20, b"\\xbb" * 20, b"\\xee" * 20
    >>> table = PoolTable([V2Pool(b"\\x01" * 20, A, W, 10**21, 10**21),
    ...                    V2Pool(b"\\x02" * 20, A, W, 10**21, 2 * 10**21, exchange=1)], weth=W)
    >>> len(table), table.cycle_count
    (2, 2)
    >>> table.apply_sync(SyncEvent(b"\\x01" * 20, 5, 7, 1, 0, b"\\x00" * 32))
    True
    >>> table.reserves_of(b"\\x01" * 20)
    (5, 7)
    >>> PoolTable.from_bytes(table.to_bytes()).reserves_of(b"\\x01" * 20)
    (5, 7)
"""
import struct

import numpy

from libc.stdint cimport uint8_t, uint32_t, int32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from tallyio._ext.u256 cimport tio_u256
from tallyio.mempool._addrtable cimport (addr_table_init, addr_table_free, addr_table_get,
                                         addr_table_put, TIO_ADDR_MISSING)
from tallyio.mempool._u256py cimport u256_to_int, int_to_u256, copy_address

from tallyio.mempool.records import V2Pool, V3Pool

__all__ = ["PoolTable"]

SNAPSHOT_MAGIC = b"TIOPOOL1"
"""A pool-table snapshot of V2 pools only starts with this (format version 1)."""
SNAPSHOT_MAGIC_V3 = b"TIOPOOL2"
"""A snapshot holding V3 pools starts with this (version 2: each row tagged with its kind)."""

cdef uint64_t MAX_RESERVE_BITS = 112


cdef inline void set_reserves(tio_pooltable *t, uint64_t i, const tio_u256 *r0,
                              const tio_u256 *r1) noexcept nogil:
    t.reserve_x[2 * i] = r0[0]
    t.reserve_x[2 * i + 1] = r1[0]
    # float64 copies: reserves are < 2**112, so limbs 0 and 1 hold them
    t.reserve_f[2 * i] = <double>r0.w[1] * 18446744073709551616.0 + <double>r0.w[0]
    t.reserve_f[2 * i + 1] = <double>r1.w[1] * 18446744073709551616.0 + <double>r1.w[0]


cdef int pooltable_apply_sync(tio_pooltable *t, const uint8_t *pool, const tio_u256 *r0,
                              const tio_u256 *r1) noexcept nogil:
    cdef uint32_t i = addr_table_get(&t.pool_index, pool)
    if i == TIO_ADDR_MISSING or t.kind[i] != POOL_KIND_V2:      # a V3 pool emits no Sync
        t.syncs_unknown += 1
        return 0
    if (r0.w[3] | r0.w[2] | r1.w[3] | r1.w[2]) or (r0.w[1] >> 48) or (r1.w[1] >> 48):
        return -1
    set_reserves(t, i, r0, r1)
    t.syncs_applied += 1
    return 1


cdef inline uint64_t limbs_of(object value, uint64_t *lo, uint64_t *hi, str what) except? 0:
    """A reserve (0 .. 2**112-1, the pair's uint112) as two limbs."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 0 or value >> 112:
        raise ValueError(f"{what} must be in 0 .. 2**112-1 (a uint112), got {value}")
    lo[0] = value & 0xFFFFFFFFFFFFFFFF
    hi[0] = value >> 64
    return 1


cdef double TWO64 = 18446744073709551616.0


cdef inline void set_v3_virtual(tio_pooltable *t, uint64_t i) noexcept nogil:
    """float64 virtual reserves of V3 row i for screening: (L / sqrtP, L sqrtP)."""
    cdef double price = ((<double>t.v3_sqrt_price[i].w[2] * TWO64 + <double>t.v3_sqrt_price[i].w[1]) * TWO64
                         + <double>t.v3_sqrt_price[i].w[0]) / 79228162514264337593543950336.0
    cdef double liquidity = <double>t.v3_liquidity[i].w[1] * TWO64 + <double>t.v3_liquidity[i].w[0]
    if price <= 0:
        t.reserve_f[2 * i] = 0
        t.reserve_f[2 * i + 1] = 0
        return
    t.reserve_f[2 * i] = liquidity / price
    t.reserve_f[2 * i + 1] = liquidity * price


cdef object check_int(object value, str what, object low, object high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low} .. {high}, got {value}")
    return value


cdef class PoolTable:
    """A table of pools built from :class:`~tallyio.mempool.records.V2Pool` and
    :class:`~tallyio.mempool.records.V3Pool` records (see the module doc).  ``weth``
    (20 bytes) marks the token cycles start from."""

    def __cinit__(self, *args, **kwargs):
        memset(&self.t, 0, sizeof(tio_pooltable))
        self.t.weth = -1

    def __init__(self, pools, weth=None, *, max_cycles=1_000_000):
        pools = [p if isinstance(p, (V2Pool, V3Pool)) else V2Pool(*p) for p in pools]
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 0:
            raise ValueError(f"PoolTable: max_cycles must be an int >= 0, got {max_cycles!r}")
        cdef uint8_t addr[20]
        cdef uint64_t n = len(pools)
        token_ids = {}
        for p in pools:
            for tok, what in ((p.token0, "token0"), (p.token1, "token1")):
                copy_address(tok, addr, 20, f"V2Pool.{what}")
                token_ids.setdefault(bytes(tok), len(token_ids))
            if p.token0 == p.token1:
                raise ValueError(f"{type(p).__name__} {p.address!r}: token0 == token1")
        if weth is not None:
            copy_address(weth, addr, 20, "weth")
            self.weth_address = bytes(weth)
        self.tokens = numpy.zeros((n, 2), dtype=numpy.int32)
        self.fee_bps = numpy.zeros(n, dtype=numpy.uint32)
        self.exchange = numpy.zeros(n, dtype=numpy.uint32)
        self.reserves = numpy.zeros((n, 2), dtype=numpy.float64)
        self.reserves_exact = numpy.zeros((n, 2, 4), dtype=numpy.uint64)
        self.kind = numpy.zeros(n, dtype=numpy.uint8)
        self.fee_pips = numpy.zeros(n, dtype=numpy.uint32)
        self.v3_sqrt_price = numpy.zeros((n, 4), dtype=numpy.uint64)
        self.v3_liquidity = numpy.zeros((n, 4), dtype=numpy.uint64)
        self.v3_ticks = numpy.zeros((n, 4), dtype=numpy.int32)
        self.v3_range_ok = numpy.zeros(n, dtype=numpy.uint8)
        self.pool_addr_arr = numpy.zeros((n if n else 1, 20), dtype=numpy.uint8)
        self.token_addr_arr = numpy.zeros((max(len(token_ids), 1), 20), dtype=numpy.uint8)
        self.pool_addresses = [bytes(p.address) for p in pools]
        self.token_addresses = list(token_ids)
        self._bind()
        self.t.n_pools = n
        self.t.n_tokens = len(token_ids)
        self.t.weth = token_ids.get(self.weth_address, -1) if weth is not None else -1
        if (addr_table_init(&self.t.pool_index, n) != 0
                or addr_table_init(&self.t.token_index, len(token_ids)) != 0):
            raise MemoryError("PoolTable: out of memory")
        for tok, k in token_ids.items():
            memcpy(&self.t.token_addr[20 * k], PyBytes_AS_STRING(tok), 20)
            addr_table_put(&self.t.token_index, &self.t.token_addr[20 * k], k)
        cdef uint64_t pair_cap = 16
        while pair_cap < 2 * n + 2:
            pair_cap <<= 1
        self.t.pairs = <tio_pair_entry *>calloc(pair_cap, sizeof(tio_pair_entry))
        if self.t.pairs == NULL:
            raise MemoryError("PoolTable: out of memory")
        self.t.pair_mask = pair_cap - 1
        self.t.v3pairs = <tio_v3pair_entry *>calloc(pair_cap, sizeof(tio_v3pair_entry))
        if self.t.v3pairs == NULL:
            raise MemoryError("PoolTable: out of memory")
        self.t.v3pair_mask = pair_cap - 1
        cdef tio_u256 r0, r1
        cdef uint64_t i, slot, key
        for i in range(n):
            p = pools[i]
            copy_address(p.address, &self.t.pool_addr[20 * i], 20, f"{type(p).__name__}.address")
            if addr_table_put(&self.t.pool_index, &self.t.pool_addr[20 * i], i) != 1:
                raise ValueError(f"PoolTable: pool {p.address.hex()} listed twice")
            if isinstance(p, V3Pool):
                self._add_v3(i, p, token_ids)
                continue
            if isinstance(p.fee_bps, bool) or not isinstance(p.fee_bps, int) or not 0 <= p.fee_bps < 10000:
                raise ValueError(f"V2Pool.fee_bps must be in 0 .. 9999, got {p.fee_bps!r}")
            if isinstance(p.exchange, bool) or not isinstance(p.exchange, int) or not 0 <= p.exchange < 65536:
                raise ValueError(f"V2Pool.exchange must be in 0 .. 65535, got {p.exchange!r}")
            a = token_ids[bytes(p.token0)]
            b = token_ids[bytes(p.token1)]
            self.t.tokens[2 * i] = a
            self.t.tokens[2 * i + 1] = b
            self.t.fee_bps[i] = p.fee_bps
            self.t.fee_pips[i] = p.fee_bps * 100
            self.t.exchange[i] = p.exchange
            memset(&r0, 0, sizeof(r0))
            memset(&r1, 0, sizeof(r1))
            limbs_of(p.reserve0, &r0.w[0], &r0.w[1], "V2Pool.reserve0")
            limbs_of(p.reserve1, &r1.w[0], &r1.w[1], "V2Pool.reserve1")
            set_reserves(&self.t, i, &r0, &r1)
            key = pair_key(p.exchange, a, b)
            slot = (key * 0x9E3779B97F4A7C15ULL >> 17) & self.t.pair_mask
            while self.t.pairs[slot].key != 0 and self.t.pairs[slot].key != key:
                slot = (slot + 1) & self.t.pair_mask
            if self.t.pairs[slot].key == 0:        # the first pool of a pair on an exchange wins
                self.t.pairs[slot].key = key
                self.t.pairs[slot].pool = <int32_t>i
        self._build_cycles(max_cycles)

    def _add_v3(self, uint64_t i, p, dict token_ids):
        """Row i from a V3Pool: state, fee, and its (exchange, tokens, fee) index entry."""
        check_int(p.fee_pips, "V3Pool.fee_pips", 0, 999_999)
        check_int(p.exchange, "V3Pool.exchange", 0, 65535)
        check_int(p.tick_spacing, "V3Pool.tick_spacing", 1, 16384)
        for what in ("tick", "tick_lower", "tick_upper"):
            check_int(getattr(p, what), f"V3Pool.{what}", -887273, 887273)
        check_int(p.sqrt_price_x96, "V3Pool.sqrt_price_x96", 4295128739, 2**160 - 1)
        check_int(p.liquidity, "V3Pool.liquidity", 0, 2**128 - 1)
        if not p.tick_lower <= p.tick < p.tick_upper:
            raise ValueError(f"V3Pool {bytes(p.address).hex()}: tick must lie in [tick_lower, tick_upper), "
                             f"got {p.tick_lower} <= {p.tick} < {p.tick_upper}")
        a = token_ids[bytes(p.token0)]
        b = token_ids[bytes(p.token1)]
        self.t.tokens[2 * i] = a
        self.t.tokens[2 * i + 1] = b
        self.t.kind[i] = POOL_KIND_V3
        self.t.fee_pips[i] = p.fee_pips
        self.t.fee_bps[i] = p.fee_pips // 100
        self.t.exchange[i] = p.exchange
        self._set_v3(i, p.sqrt_price_x96, p.liquidity, p.tick, p.tick_lower, p.tick_upper)
        self.t.v3_ticks[4 * i + 3] = p.tick_spacing
        cdef uint64_t key = pair_key(p.exchange, a, b)
        cdef uint64_t slot = ((key ^ (<uint64_t>p.fee_pips << 40)) * 0x9E3779B97F4A7C15ULL >> 17) & self.t.v3pair_mask
        while self.t.v3pairs[slot].key != 0 and not (self.t.v3pairs[slot].key == key
                                                     and self.t.v3pairs[slot].fee_pips == p.fee_pips):
            slot = (slot + 1) & self.t.v3pair_mask
        if self.t.v3pairs[slot].key == 0:
            self.t.v3pairs[slot].key = key
            self.t.v3pairs[slot].fee_pips = p.fee_pips
            self.t.v3pairs[slot].pool = <int32_t>i

    def _set_v3(self, uint64_t i, sqrt_price, liquidity, tick, tick_lower, tick_upper):
        int_to_u256(sqrt_price, &self.t.v3_sqrt_price[i], "sqrt_price_x96")
        int_to_u256(liquidity, &self.t.v3_liquidity[i], "liquidity")
        self.t.v3_ticks[4 * i] = tick
        self.t.v3_ticks[4 * i + 1] = tick_lower
        self.t.v3_ticks[4 * i + 2] = tick_upper
        self.t.v3_range_ok[i] = 1
        set_v3_virtual(&self.t, i)

    def _bind(self):
        """Point the C view at the numpy arrays (they are never resized)."""
        cdef int32_t[:, ::1] tokens = self.tokens
        cdef uint32_t[::1] fee = self.fee_bps
        cdef uint32_t[::1] exch = self.exchange
        cdef double[:, ::1] rf = self.reserves
        cdef uint64_t[:, :, ::1] rx = self.reserves_exact
        cdef uint8_t[:, ::1] pa = self.pool_addr_arr
        cdef uint8_t[:, ::1] ta = self.token_addr_arr
        self.t.tokens = &tokens[0, 0] if tokens.shape[0] else NULL
        self.t.fee_bps = &fee[0] if fee.shape[0] else NULL
        self.t.exchange = &exch[0] if exch.shape[0] else NULL
        self.t.reserve_f = &rf[0, 0] if rf.shape[0] else NULL
        self.t.reserve_x = <tio_u256 *>&rx[0, 0, 0] if rx.shape[0] else NULL
        self.t.pool_addr = &pa[0, 0]
        self.t.token_addr = &ta[0, 0]
        cdef uint8_t[::1] kind = self.kind
        cdef uint32_t[::1] fee_pips = self.fee_pips
        cdef uint64_t[:, ::1] sp = self.v3_sqrt_price
        cdef uint64_t[:, ::1] liq = self.v3_liquidity
        cdef int32_t[:, ::1] ticks = self.v3_ticks
        cdef uint8_t[::1] ok = self.v3_range_ok
        self.t.kind = &kind[0] if kind.shape[0] else NULL
        self.t.fee_pips = &fee_pips[0] if fee_pips.shape[0] else NULL
        self.t.v3_sqrt_price = <tio_u256 *>&sp[0, 0] if sp.shape[0] else NULL
        self.t.v3_liquidity = <tio_u256 *>&liq[0, 0] if liq.shape[0] else NULL
        self.t.v3_ticks = &ticks[0, 0] if ticks.shape[0] else NULL
        self.t.v3_range_ok = &ok[0] if ok.shape[0] else NULL

    def _build_cycles(self, max_cycles):
        """Enumerate the 2- and 3-cycles of the token graph, both directions, each
        starting at WETH when it has it (else at its lowest token)."""
        cdef uint64_t n = self.t.n_pools
        weth = self.t.weth
        by_pair = {}
        neighbours = {}
        for i in range(n):
            a, b = int(self.t.tokens[2 * i]), int(self.t.tokens[2 * i + 1])
            by_pair.setdefault((min(a, b), max(a, b)), []).append(i)
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        cycles = []          # (pools tuple, tokens-in tuple)
        truncated = 0

        def add(hops, start_index):
            # hops: [(pool, token_in)], rotated so the cycle starts at hops[start_index]
            nonlocal truncated
            if len(cycles) >= max_cycles:
                truncated += 1
                return
            hops = hops[start_index:] + hops[:start_index]
            cycles.append((tuple(h[0] for h in hops), tuple(h[1] for h in hops)))

        def start_of(tokens_in):
            if weth >= 0 and weth in tokens_in:
                return tokens_in.index(weth)
            return tokens_in.index(min(tokens_in))

        for (a, b), group in by_pair.items():
            for x in range(len(group)):
                for y in range(x + 1, len(group)):
                    p, q = group[x], group[y]
                    for hops in ([(p, a), (q, b)], [(q, a), (p, b)]):
                        add(hops, start_of([h[1] for h in hops]))
        for (a, b), group_ab in by_pair.items():
            for c in sorted(neighbours[a] & neighbours[b]):
                if c <= b:
                    continue            # each triangle a < b < c once
                group_bc = by_pair[(b, c)]
                group_ac = by_pair[(a, c)]
                for p in group_ab:
                    for q in group_bc:
                        for r in group_ac:
                            for hops in ([(p, a), (q, b), (r, c)], [(r, a), (q, c), (p, b)]):
                                add(hops, start_of([h[1] for h in hops]))
        m = len(cycles)
        self.cycles_truncated = truncated
        self.cycle_len = numpy.zeros(max(m, 1), dtype=numpy.uint8)
        self.cycle_pools = numpy.full((max(m, 1), 3), -1, dtype=numpy.int32)
        self.cycle_tokens_in = numpy.full((max(m, 1), 3), -1, dtype=numpy.int32)
        through = [[] for _ in range(n)]
        for c, (cp, ct) in enumerate(cycles):
            self.cycle_len[c] = len(cp)
            self.cycle_pools[c, :len(cp)] = cp
            self.cycle_tokens_in[c, :len(ct)] = ct
            for p in set(cp):
                through[p].append(c)
        offsets = numpy.zeros(n + 1, dtype=numpy.int32)
        for p in range(n):
            offsets[p + 1] = offsets[p] + len(through[p])
        ids = numpy.array([c for lst in through for c in lst] or [0], dtype=numpy.int32)
        self.pool_cycle_offsets = offsets
        self.pool_cycle_ids = ids
        cdef uint8_t[::1] cl = self.cycle_len
        cdef int32_t[:, ::1] cpool = self.cycle_pools
        cdef int32_t[:, ::1] cin = self.cycle_tokens_in
        cdef int32_t[::1] off = offsets
        cdef int32_t[::1] cid = ids
        self.t.n_cycles = m
        self.t.cyc_len = &cl[0]
        self.t.cyc_pool = &cpool[0, 0]
        self.t.cyc_in = &cin[0, 0]
        self.t.pool_cyc_off = &off[0]
        self.t.pool_cyc_ids = &cid[0]

    def __dealloc__(self):
        addr_table_free(&self.t.pool_index)
        addr_table_free(&self.t.token_index)
        free(self.t.pairs)
        free(self.t.v3pairs)

    def __len__(self):
        return self.t.n_pools

    def __repr__(self):
        return f"PoolTable(pools={self.t.n_pools}, tokens={self.t.n_tokens}, cycles={self.t.n_cycles})"

    @property
    def cycle_count(self) -> int:
        """Cycles stored (each direction counts once)."""
        return self.t.n_cycles

    @property
    def weth(self):
        """WETH's address, or None."""
        return self.weth_address

    def index_of(self, address) -> int:
        """The row of a pool, or -1 when unknown."""
        cdef uint8_t addr[20]
        copy_address(address, addr, 20, "pool address")
        cdef uint32_t i = addr_table_get(&self.t.pool_index, addr)
        return -1 if i == TIO_ADDR_MISSING else <int>i

    def reserves_of(self, address):
        """``(reserve0, reserve1)`` of a V2 pool as exact ints; KeyError when unknown,
        ValueError for a V3 pool (it has a price and liquidity: ``pool()``)."""
        cdef int i = self.index_of(address)
        if i < 0:
            raise KeyError(f"unknown pool {bytes(address).hex()}")
        if self.t.kind[i] != POOL_KIND_V2:
            raise ValueError(f"pool {bytes(address).hex()} is a V3 pool: it has no reserves (see pool())")
        return u256_to_int(&self.t.reserve_x[2 * i]), u256_to_int(&self.t.reserve_x[2 * i + 1])

    def pool(self, index):
        """The V2Pool (current reserves) or V3Pool (current state) at row `index`."""
        if not 0 <= index < <int>self.t.n_pools:
            raise IndexError(f"pool index {index} out of range 0 .. {self.t.n_pools - 1}")
        if self.t.kind[index] == POOL_KIND_V3:
            return V3Pool(self.pool_addresses[index], self.token_addresses[self.t.tokens[2 * index]],
                          self.token_addresses[self.t.tokens[2 * index + 1]], int(self.t.fee_pips[index]),
                          int(self.t.v3_ticks[4 * index + 3]), u256_to_int(&self.t.v3_sqrt_price[index]),
                          u256_to_int(&self.t.v3_liquidity[index]), int(self.t.v3_ticks[4 * index]),
                          int(self.t.v3_ticks[4 * index + 1]), int(self.t.v3_ticks[4 * index + 2]),
                          int(self.t.exchange[index]))
        r0, r1 = self.reserves_of(self.pool_addresses[index])
        return V2Pool(self.pool_addresses[index], self.token_addresses[self.t.tokens[2 * index]],
                      self.token_addresses[self.t.tokens[2 * index + 1]], r0, r1,
                      int(self.t.fee_bps[index]), int(self.t.exchange[index]))

    def pools(self):
        """Every pool as a V2Pool or V3Pool, in row order."""
        return [self.pool(i) for i in range(self.t.n_pools)]

    def v3_in_range(self, address) -> bool:
        """True while the V3 pool's initialized tick range is known (False after a Swap
        log moved it out of the range, until a resync: its swaps are then skipped)."""
        cdef int i = self.index_of(address)
        if i < 0 or self.t.kind[i] != POOL_KIND_V3:
            raise KeyError(f"not a V3 pool of the table: {bytes(address).hex()}")
        return self.t.v3_range_ok[i] != 0

    def v3_pool(self, exchange, token_a, token_b, fee_pips):
        """The address of the V3 pool of `exchange` trading the two tokens at `fee_pips`, or None."""
        cdef uint8_t a[20]
        cdef uint8_t b[20]
        copy_address(token_a, a, 20, "token_a")
        copy_address(token_b, b, 20, "token_b")
        ia = addr_table_get(&self.t.token_index, a)
        ib = addr_table_get(&self.t.token_index, b)
        if ia == TIO_ADDR_MISSING or ib == TIO_ADDR_MISSING:
            return None
        p = pooltable_v3_pool(&self.t, exchange, ia, ib, fee_pips)
        return None if p < 0 else self.pool_addresses[p]

    def pair(self, exchange, token_a, token_b):
        """The address of the V2 pool of `exchange` trading the two tokens, or None."""
        cdef uint8_t a[20]
        cdef uint8_t b[20]
        copy_address(token_a, a, 20, "token_a")
        copy_address(token_b, b, 20, "token_b")
        ia = addr_table_get(&self.t.token_index, a)
        ib = addr_table_get(&self.t.token_index, b)
        if ia == TIO_ADDR_MISSING or ib == TIO_ADDR_MISSING:
            return None
        p = pooltable_pair(&self.t, exchange, ia, ib)
        return None if p < 0 else self.pool_addresses[p]

    def cycles_through(self, address):
        """Cycles through a pool: a list of ``[(pool, token_in, token_out), ...]``
        (addresses), each starting and ending at its start token."""
        cdef int i = self.index_of(address)
        if i < 0:
            raise KeyError(f"unknown pool {bytes(address).hex()}")
        out = []
        for k in range(self.t.pool_cyc_off[i], self.t.pool_cyc_off[i + 1]):
            c = self.t.pool_cyc_ids[k]
            out.append(self.cycle(c))
        return out

    def cycle(self, c):
        """Cycle number `c` as ``[(pool, token_in, token_out), ...]`` (addresses)."""
        if not 0 <= c < <int>self.t.n_cycles:
            raise IndexError(f"cycle {c} out of range")
        hops = []
        L = self.t.cyc_len[c]
        for h in range(L):
            p = self.t.cyc_pool[3 * c + h]
            tin = self.t.cyc_in[3 * c + h]
            t0, t1 = self.t.tokens[2 * p], self.t.tokens[2 * p + 1]
            tout = t1 if tin == t0 else t0
            hops.append((self.pool_addresses[p], self.token_addresses[tin], self.token_addresses[tout]))
        return hops

    def apply_sync(self, event) -> bool:
        """Set a pool's reserves from a :class:`~tallyio.eth.SyncEvent`; False (counted
        in ``syncs_unknown``) when the pool is not in the table.  A removed log (a
        reorg) is applied the same way: the node resends the state that is current."""
        cdef uint8_t addr[20]
        cdef tio_u256 r0, r1
        cdef object pool = event.pool
        if type(pool) is bytes and PyBytes_GET_SIZE(pool) == 20:
            memcpy(addr, PyBytes_AS_STRING(pool), 20)
        else:
            copy_address(pool, addr, 20, "SyncEvent.pool")
        r0.w[2] = r0.w[3] = r1.w[2] = r1.w[3] = 0
        limbs_of(event.reserve0, &r0.w[0], &r0.w[1], "SyncEvent.reserve0")
        limbs_of(event.reserve1, &r1.w[0], &r1.w[1], "SyncEvent.reserve1")
        return pooltable_apply_sync(&self.t, addr, &r0, &r1) == 1

    def apply_v3_event(self, event) -> bool:
        """Apply a :class:`~tallyio.mempool.records.V3PoolEvent` to its V3 pool; False
        (counted in ``v3_events_unknown``) when the pool is not a V3 pool of the table.

        * ``swap``: the log's price, liquidity and tick.  When the tick left the known
          initialized range, the swap crossed a tick: the range is unknown until a resync
          (``v3_range_lost``; the analyzer skips the pool's swaps meanwhile).
        * ``mint`` / ``burn``: a position ``[tick_lower, tick_upper)`` gained / lost
          ``liquidity``; the in-range liquidity changes when it contains the tick.  A mint
          initializes its two ticks (the range narrows to them when they are nearer); a burn
          may uninitialize them, which the log does not say: the range is kept (narrower
          than the truth is safe: a swap reaching it is skipped, never mis-sized).
        * ``state``: a resync's full state (price, liquidity, tick and the range)."""
        cdef int i
        cdef uint8_t addr[20]
        copy_address(event.pool, addr, 20, "V3PoolEvent.pool")
        i = self.index_of(bytes(event.pool))
        if i < 0 or self.t.kind[i] != POOL_KIND_V3:
            self.v3_events_unknown += 1
            return False
        kind = event.kind
        tick, lower, upper = (int(self.t.v3_ticks[4 * i]), int(self.t.v3_ticks[4 * i + 1]),
                              int(self.t.v3_ticks[4 * i + 2]))
        ok = self.t.v3_range_ok[i] != 0
        if kind == "swap":
            check_int(event.tick, "V3PoolEvent.tick", -887272, 887272)
            check_int(event.sqrt_price_x96, "V3PoolEvent.sqrt_price_x96", 4295128739, 2**160 - 1)
            check_int(event.liquidity, "V3PoolEvent.liquidity", 0, 2**128 - 1)
            inside = ok and lower <= event.tick < upper
            self._set_v3(i, event.sqrt_price_x96, event.liquidity, event.tick, lower if inside else event.tick,
                         upper if inside else event.tick + 1)
            if not inside:
                self.t.v3_range_ok[i] = 0
                if ok:
                    self.v3_range_lost += 1
        elif kind == "mint" or kind == "burn":
            check_int(event.liquidity, "V3PoolEvent.liquidity", 0, 2**128 - 1)
            check_int(event.tick_lower, "V3PoolEvent.tick_lower", -887272, 887272)
            check_int(event.tick_upper, "V3PoolEvent.tick_upper", -887272, 887272)
            if event.tick_lower >= event.tick_upper:
                raise ValueError(f"V3PoolEvent: tick_lower must be < tick_upper, got "
                                 f"{event.tick_lower} >= {event.tick_upper}")
            liquidity = u256_to_int(&self.t.v3_liquidity[i])
            if event.tick_lower <= tick < event.tick_upper:
                liquidity += event.liquidity if kind == "mint" else -event.liquidity
            keep_ok = ok
            if not 0 <= liquidity < 2**128:
                keep_ok = False                # our state disagrees with the chain's: resync
                self.v3_range_lost += ok
                liquidity = 0
            if kind == "mint" and ok:
                for bound in (event.tick_lower, event.tick_upper):
                    if lower < bound <= tick:
                        lower = bound
                    elif tick < bound < upper:
                        upper = bound
            self._set_v3(i, u256_to_int(&self.t.v3_sqrt_price[i]), liquidity, tick, lower, upper)
            self.t.v3_range_ok[i] = keep_ok
        elif kind == "state":
            check_int(event.tick, "V3PoolEvent.tick", -887272, 887272)
            check_int(event.sqrt_price_x96, "V3PoolEvent.sqrt_price_x96", 4295128739, 2**160 - 1)
            check_int(event.liquidity, "V3PoolEvent.liquidity", 0, 2**128 - 1)
            if not event.tick_lower <= event.tick < event.tick_upper:
                raise ValueError(f"V3PoolEvent(state): tick must lie in [tick_lower, tick_upper), got "
                                 f"{event.tick_lower} <= {event.tick} < {event.tick_upper}")
            self._set_v3(i, event.sqrt_price_x96, event.liquidity, event.tick, event.tick_lower, event.tick_upper)
        else:
            raise ValueError(f"V3PoolEvent.kind must be 'swap', 'mint', 'burn' or 'state', got {kind!r}")
        self.v3_events_applied += 1
        return True

    @property
    def syncs_applied(self) -> int:
        return self.t.syncs_applied

    @property
    def syncs_unknown(self) -> int:
        return self.t.syncs_unknown

    def stats(self) -> dict:
        """pools, tokens, cycles, cycles_truncated, syncs_applied, syncs_unknown, v3_pools,
        v3_events_applied, v3_events_unknown, v3_range_lost (Swap logs that left the known range)."""
        return {"pools": self.t.n_pools, "tokens": self.t.n_tokens, "cycles": self.t.n_cycles,
                "cycles_truncated": self.cycles_truncated, "syncs_applied": self.t.syncs_applied,
                "syncs_unknown": self.t.syncs_unknown, "v3_pools": int(self.kind.sum()),
                "v3_events_applied": self.v3_events_applied, "v3_events_unknown": self.v3_events_unknown,
                "v3_range_lost": self.v3_range_lost}

    def to_bytes(self) -> bytes:
        """A snapshot: magic, version, WETH, then each pool's address, tokens, exact
        reserves (32-byte big-endian), fee and exchange.  With V3 pools, the version-2
        magic and each row tagged by kind (a V3 row: address, tokens, fee, spacing, price,
        liquidity, tick, range, exchange, whether the range is known).  ``from_bytes``
        rebuilds it (cycles are recomputed: they are a function of the pools)."""
        has_v3 = bool(self.kind.any())
        parts = [SNAPSHOT_MAGIC_V3 if has_v3 else SNAPSHOT_MAGIC, struct.pack("<I", self.t.n_pools),
                 self.weth_address if self.weth_address is not None else b"\x00" * 20,
                 b"\x01" if self.weth_address is not None else b"\x00"]
        for i, p in enumerate(self.pools()):
            if isinstance(p, V3Pool):
                parts.append(b"\x01" + p.address + p.token0 + p.token1 + struct.pack("<Ii", p.fee_pips, p.tick_spacing)
                             + p.sqrt_price_x96.to_bytes(32, "big") + p.liquidity.to_bytes(32, "big")
                             + struct.pack("<iiiHB", p.tick, p.tick_lower, p.tick_upper, p.exchange,
                                           int(self.t.v3_range_ok[i])))
                continue
            parts.append((b"\x00" if has_v3 else b"") + p.address + p.token0 + p.token1
                         + p.reserve0.to_bytes(32, "big") + p.reserve1.to_bytes(32, "big")
                         + struct.pack("<IH", p.fee_bps, p.exchange))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data):
        """Rebuild a table from ``to_bytes()``; ValueError naming what is wrong."""
        data = bytes(data)
        v3 = data.startswith(SNAPSHOT_MAGIC_V3)
        if not (v3 or data.startswith(SNAPSHOT_MAGIC)):
            raise ValueError("pool-table snapshot: bad magic (not a TIOPOOL1/TIOPOOL2 snapshot)")
        head = len(SNAPSHOT_MAGIC)
        if len(data) < head + 25:
            raise ValueError("pool-table snapshot: truncated header")
        (n,) = struct.unpack_from("<I", data, head)
        weth = data[head + 4:head + 24] if data[head + 24] else None
        row, row3 = 20 * 3 + 64 + 6, 20 * 3 + 8 + 64 + 15
        body = data[head + 25:]
        if not v3:
            if len(body) != n * row:
                raise ValueError(f"pool-table snapshot: {len(body)} body bytes for {n} pools "
                                 f"(expected {n * row})")
            body = b"".join(b"\x00" + body[k * row:(k + 1) * row] for k in range(n))
        pools, lost, at = [], [], 0
        for k in range(n):
            if at >= len(body) or body[at] > 1:
                raise ValueError(f"pool-table snapshot: pool {k}: truncated or bad kind byte")
            size = row3 if body[at] else row
            r = body[at + 1:at + 1 + size]
            if len(r) != size:
                raise ValueError(f"pool-table snapshot: pool {k}: truncated row")
            if body[at]:
                fee, spacing = struct.unpack_from("<Ii", r, 60)
                tick, lower, upper, exchange, ok = struct.unpack_from("<iiiHB", r, 132)
                pools.append(V3Pool(r[:20], r[20:40], r[40:60], fee, spacing, int.from_bytes(r[68:100], "big"),
                                    int.from_bytes(r[100:132], "big"), tick, lower, upper, exchange))
                if not ok:
                    lost.append(k)
            else:
                fee, exchange = struct.unpack_from("<IH", r, 124)
                pools.append(V2Pool(r[:20], r[20:40], r[40:60], int.from_bytes(r[60:92], "big"),
                                    int.from_bytes(r[92:124], "big"), fee, exchange))
            at += 1 + size
        if at != len(body):
            raise ValueError(f"pool-table snapshot: {len(body) - at} bytes after the last pool")
        table = cls(pools, weth)
        for k in lost:
            table.v3_range_ok[k] = 0
        return table
