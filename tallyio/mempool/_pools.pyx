# cython: language_level=3
# Owns: PoolTable (state in _pools.pxd): building it from V2Pool records, the token graph
# and its 2- and 3-cycles, apply_sync, snapshots to and from bytes.
# Touches: _addrtable, tallyio.mempool.records, tallyio.eth.types (SyncEvent).
"""The V2 pool table: every known pool's tokens, fee and reserves in numpy arrays
(float64 for screening, exact 256-bit limbs beside them), a token graph, and the
cycles of length 2 and 3 through each pool, precomputed.

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
from tallyio.mempool._u256py cimport u256_to_int, copy_address

from tallyio.mempool.records import V2Pool

__all__ = ["PoolTable"]

SNAPSHOT_MAGIC = b"TIOPOOL1"
"""A pool-table snapshot starts with this (format version 1)."""

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
    if i == TIO_ADDR_MISSING:
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


cdef class PoolTable:
    """A table of V2 pools built from :class:`~tallyio.mempool.records.V2Pool` records
    (see the module doc).  ``weth`` (20 bytes) marks the token cycles start from."""

    def __cinit__(self, *args, **kwargs):
        memset(&self.t, 0, sizeof(tio_pooltable))
        self.t.weth = -1

    def __init__(self, pools, weth=None, *, max_cycles=1_000_000):
        pools = [p if isinstance(p, V2Pool) else V2Pool(*p) for p in pools]
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
                raise ValueError(f"V2Pool {p.address!r}: token0 == token1")
        if weth is not None:
            copy_address(weth, addr, 20, "weth")
            self.weth_address = bytes(weth)
        self.tokens = numpy.zeros((n, 2), dtype=numpy.int32)
        self.fee_bps = numpy.zeros(n, dtype=numpy.uint32)
        self.exchange = numpy.zeros(n, dtype=numpy.uint32)
        self.reserves = numpy.zeros((n, 2), dtype=numpy.float64)
        self.reserves_exact = numpy.zeros((n, 2, 4), dtype=numpy.uint64)
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
        cdef tio_u256 r0, r1
        cdef uint64_t i, slot, key
        for i in range(n):
            p = pools[i]
            copy_address(p.address, &self.t.pool_addr[20 * i], 20, "V2Pool.address")
            if addr_table_put(&self.t.pool_index, &self.t.pool_addr[20 * i], i) != 1:
                raise ValueError(f"PoolTable: pool {p.address.hex()} listed twice")
            if isinstance(p.fee_bps, bool) or not isinstance(p.fee_bps, int) or not 0 <= p.fee_bps < 10000:
                raise ValueError(f"V2Pool.fee_bps must be in 0 .. 9999, got {p.fee_bps!r}")
            if isinstance(p.exchange, bool) or not isinstance(p.exchange, int) or not 0 <= p.exchange < 65536:
                raise ValueError(f"V2Pool.exchange must be in 0 .. 65535, got {p.exchange!r}")
            a = token_ids[bytes(p.token0)]
            b = token_ids[bytes(p.token1)]
            self.t.tokens[2 * i] = a
            self.t.tokens[2 * i + 1] = b
            self.t.fee_bps[i] = p.fee_bps
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
        """``(reserve0, reserve1)`` of a pool as exact ints; KeyError when unknown."""
        cdef int i = self.index_of(address)
        if i < 0:
            raise KeyError(f"unknown pool {bytes(address).hex()}")
        return u256_to_int(&self.t.reserve_x[2 * i]), u256_to_int(&self.t.reserve_x[2 * i + 1])

    def pool(self, index):
        """The V2Pool at row `index`, with its current reserves."""
        if not 0 <= index < <int>self.t.n_pools:
            raise IndexError(f"pool index {index} out of range 0 .. {self.t.n_pools - 1}")
        r0, r1 = self.reserves_of(self.pool_addresses[index])
        return V2Pool(self.pool_addresses[index], self.token_addresses[self.t.tokens[2 * index]],
                      self.token_addresses[self.t.tokens[2 * index + 1]], r0, r1,
                      int(self.t.fee_bps[index]), int(self.t.exchange[index]))

    def pools(self):
        """Every pool as a V2Pool, in row order."""
        return [self.pool(i) for i in range(self.t.n_pools)]

    def pair(self, exchange, token_a, token_b):
        """The address of the pool of `exchange` trading the two tokens, or None."""
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

    @property
    def syncs_applied(self) -> int:
        return self.t.syncs_applied

    @property
    def syncs_unknown(self) -> int:
        return self.t.syncs_unknown

    def stats(self) -> dict:
        """pools, tokens, cycles, cycles_truncated, syncs_applied, syncs_unknown."""
        return {"pools": self.t.n_pools, "tokens": self.t.n_tokens, "cycles": self.t.n_cycles,
                "cycles_truncated": self.cycles_truncated, "syncs_applied": self.t.syncs_applied,
                "syncs_unknown": self.t.syncs_unknown}

    def to_bytes(self) -> bytes:
        """A snapshot: magic, version, WETH, then each pool's address, tokens, exact
        reserves (32-byte big-endian), fee and exchange.  ``from_bytes`` rebuilds it
        (cycles are recomputed: they are a function of the pools)."""
        parts = [SNAPSHOT_MAGIC, struct.pack("<I", self.t.n_pools),
                 self.weth_address if self.weth_address is not None else b"\x00" * 20,
                 b"\x01" if self.weth_address is not None else b"\x00"]
        for p in self.pools():
            parts.append(p.address + p.token0 + p.token1 + p.reserve0.to_bytes(32, "big")
                         + p.reserve1.to_bytes(32, "big") + struct.pack("<IH", p.fee_bps, p.exchange))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data):
        """Rebuild a table from ``to_bytes()``; ValueError naming what is wrong."""
        data = bytes(data)
        if not data.startswith(SNAPSHOT_MAGIC):
            raise ValueError("pool-table snapshot: bad magic (not a TIOPOOL1 snapshot)")
        head = len(SNAPSHOT_MAGIC)
        if len(data) < head + 25:
            raise ValueError("pool-table snapshot: truncated header")
        (n,) = struct.unpack_from("<I", data, head)
        weth = data[head + 4:head + 24] if data[head + 24] else None
        row = 20 * 3 + 64 + 6
        body = data[head + 25:]
        if len(body) != n * row:
            raise ValueError(f"pool-table snapshot: {len(body)} body bytes for {n} pools "
                             f"(expected {n * row})")
        pools = []
        for k in range(n):
            r = body[k * row:(k + 1) * row]
            fee, exchange = struct.unpack_from("<IH", r, 124)
            pools.append(V2Pool(r[:20], r[20:40], r[40:60], int.from_bytes(r[60:92], "big"),
                                int.from_bytes(r[92:124], "big"), fee, exchange))
        return cls(pools, weth)
