# cython: language_level=3
# Owns: TxFilter and tio_filter_check (state declared in _filter.pxd).
# Touches: _addrtable (targets), _ring (the pending record layout), tallyio.mempool.config.
"""The filter: which pending transactions are worth decoding and analyzing.

Checks, cheapest and most selective first, each drop counted by reason:

1. ``not_target``: a contract creation, or ``to`` is no known router or pool
   (an open-addressing table of addresses);
2. ``duplicate``: the hash is one of the last ``recent_hashes`` seen (a bounded set:
   a FIFO of keys plus a linear-probing index, the oldest forgotten first);
3. ``value_floor`` / ``gas_price_floor``: below the config's floors;
4. ``nonce_gap``: the nonce is beyond the highest seen from its sender + 1.

The check runs on one thread (the watcher), without the GIL, before the transaction
takes a ring slot.  A hash's key is its 32 bytes folded to 128 bits (a false duplicate
needs a 128-bit collision between two of the last ``recent_hashes`` keccak hashes).

    >>> from tallyio.eth.types import PendingTx
    >>> router = bytes.fromhex("7a250d5630b4cf539739df2c5dacb4c659f2488d")
    >>> f = TxFilter(FilterConfig(min_gas_price_wei=10), routers_v2=[router])
    >>> tx = PendingTx(hash=b"\\x01" * 32, sender=b"\\x02" * 20, to=router, nonce=0, value=0,
    ...                gas=1, max_fee_per_gas=20, max_priority_fee_per_gas=1, input=b"",
    ...                tx_type=2, received_ns=0)
    >>> f.check(tx), f.check(tx), f.check(tx._replace(hash=b"\\x03" * 32, nonce=5))
    ('pass', 'duplicate', 'nonce_gap')
    >>> f.check(tx._replace(to=b"\\x09" * 20)), f.stats()["passed"]
    ('not_target', 1)
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free

from tallyio._ext.common cimport (tio_atomic_init_u64, tio_atomic_load_u64_relaxed,
                                  tio_atomic_store_u64_relaxed, tio_next_pow2, tio_mix64)
from tallyio._ext.checks cimport role_claim
from tallyio._ext.u256 cimport tio_u256_cmp
from tallyio.mempool._addrtable cimport (addr_table_init, addr_table_free,
                                         addr_table_get, addr_table_put, addr_key, addr_hash,
                                         TIO_ADDR_MISSING)
from tallyio.mempool._ring cimport tio_pending
from tallyio.mempool._u256py cimport int_to_u256, copy_address

from tallyio.mempool.config import FilterConfig

__all__ = ["TxFilter", "FilterConfig", "VERDICTS", "TARGET_KINDS"]

VERDICTS = ("pass", "not_target", "duplicate", "value_floor", "gas_price_floor", "nonce_gap")
"""Verdict names, indexed by the C codes FILTER_*."""

TARGET_KINDS = {"router_v2": TARGET_ROUTER_V2, "router_v3": TARGET_ROUTER_V3,
                "universal_router": TARGET_UNIVERSAL_ROUTER, "pool_v2": TARGET_POOL_V2,
                "pool_v3": TARGET_POOL_V3}


# ---- the recent-hash set -----------------------------------------------------------

cdef inline void key_of(const uint8_t *h, tio_hash_key *key) noexcept nogil:
    """A 32-byte hash folded to its 128-bit key (b never 0: 0 marks an empty index slot)."""
    cdef uint64_t w0, w1, w2, w3
    memcpy(&w0, h, 8)
    memcpy(&w1, h + 8, 8)
    memcpy(&w2, h + 16, 8)
    memcpy(&w3, h + 24, 8)
    key.a = w0 ^ (w2 * 0x9E3779B97F4A7C15ULL)
    key.b = (w1 ^ (w3 * 0xC2B2AE3D27D4EB4FULL)) | 1


cdef inline uint64_t hash_slot(const tio_filter *f, const tio_hash_key *k) noexcept nogil:
    # both words through a full avalanche: the slot is the low bits, and keys that differ
    # only in their high bits (hashes numbered big-endian, as tests and benches make them)
    # all landed in one slot with a multiply-shift, every lookup probing the whole set
    return tio_mix64(k.a ^ tio_mix64(k.b)) & f.recent_mask


cdef inline bint recent_contains(const tio_filter *f, const tio_hash_key *k) noexcept nogil:
    cdef uint64_t i = hash_slot(f, k)
    while f.recent_index[i].b != 0:
        if f.recent_index[i].a == k.a and f.recent_index[i].b == k.b:
            return True
        i = (i + 1) & f.recent_mask
    return False


cdef inline void recent_remove(tio_filter *f, const tio_hash_key *k) noexcept nogil:
    """Delete k from the index by backward shifting (no tombstones, so a lookup's probe
    never grows with the number of deletions)."""
    cdef uint64_t i = hash_slot(f, k), j, home
    cdef tio_hash_key *idx = f.recent_index
    while idx[i].b != 0 and not (idx[i].a == k.a and idx[i].b == k.b):
        i = (i + 1) & f.recent_mask
    if idx[i].b == 0:
        return
    j = i
    while True:
        j = (j + 1) & f.recent_mask
        if idx[j].b == 0:
            break
        home = hash_slot(f, &idx[j])
        # move idx[j] into the hole at i unless its home lies cyclically in (i, j]
        if (i <= j and (home <= i or home > j)) or (i > j and home <= i and home > j):
            idx[i] = idx[j]
            i = j
    idx[i].a = 0
    idx[i].b = 0


cdef inline void recent_add(tio_filter *f, const tio_hash_key *k) noexcept nogil:
    cdef uint64_t i
    if f.recent_count == f.recent_cap:
        recent_remove(f, &f.recent_fifo[f.recent_head])    # forget the oldest
    else:
        f.recent_count += 1
    f.recent_fifo[f.recent_head] = k[0]
    f.recent_head += 1
    if f.recent_head == f.recent_cap:
        f.recent_head = 0
    i = hash_slot(f, k)
    while f.recent_index[i].b != 0:
        i = (i + 1) & f.recent_mask
    f.recent_index[i] = k[0]


# ---- the check -----------------------------------------------------------------------

cdef inline int verdict(tio_filter *f, int v) noexcept nogil:
    # relaxed load + store: this thread is the only writer; readers want a statistic
    tio_atomic_store_u64_relaxed(&f.verdicts[v], tio_atomic_load_u64_relaxed(&f.verdicts[v]) + 1)
    return v


cdef int tio_filter_check(tio_filter *f, const tio_pending *p, uint32_t *target) noexcept nogil:
    """The verdict for one pending record (FILTER_*); on FILTER_PASS `*target` is the
    target table's value for `to` (kind << 24 | exchange id).  One thread only."""
    cdef uint32_t t
    cdef tio_hash_key key
    cdef uint64_t k0, k1, k2
    cdef tio_nonce_entry *e
    if not p.has_to:
        return verdict(f, FILTER_NOT_TARGET)
    t = addr_table_get(&f.targets, p.to)
    if t == TIO_ADDR_MISSING:
        return verdict(f, FILTER_NOT_TARGET)
    key_of(p.hash, &key)
    if recent_contains(f, &key):
        return verdict(f, FILTER_DUPLICATE)
    recent_add(f, &key)
    if tio_u256_cmp(&p.value, &f.min_value) < 0:
        return verdict(f, FILTER_VALUE_FLOOR)
    if tio_u256_cmp(&p.max_fee_per_gas, &f.min_gas_price) < 0:
        return verdict(f, FILTER_GAS_PRICE_FLOOR)
    if f.check_nonces:
        addr_key(p.sender, &k0, &k1, &k2)
        e = &f.nonces[addr_hash(k0, k1, k2) & f.nonce_mask]
        if e.k2 == k2 and e.k0 == k0 and e.k1 == k1:
            if p.nonce > e.next_nonce:
                return verdict(f, FILTER_NONCE_GAP)
            if p.nonce + 1 > e.next_nonce:
                e.next_nonce = p.nonce + 1
        else:
            # first sight of this sender (or it lost its slot): its chain nonce is unknown,
            # so this transaction starts the sequence
            e.k0 = k0
            e.k1 = k1
            e.k2 = k2
            e.next_nonce = p.nonce + 1
    target[0] = t
    return verdict(f, FILTER_PASS)


cdef int tio_filter_target(tio_filter *f, const uint8_t *to) noexcept nogil:
    if to == NULL or addr_table_get(&f.targets, to) == TIO_ADDR_MISSING:
        return verdict(f, FILTER_NOT_TARGET)
    return FILTER_PASS


# ---- Python face ------------------------------------------------------------------------

cdef class TxFilter:
    """The pending-transaction filter (see the module doc).  ``routers_v2`` etc. are
    iterables of 20-byte addresses, or of ``(address, exchange_id)`` pairs."""

    def __cinit__(self, config=None, *, routers_v2=(), routers_v3=(), universal_routers=(),
                  pools_v2=(), pools_v3=()):
        memset(&self.f, 0, sizeof(tio_filter))

    def __init__(self, config=None, *, routers_v2=(), routers_v3=(), universal_routers=(),
                 pools_v2=(), pools_v3=()):
        if config is None:
            config = FilterConfig()
        if not isinstance(config, FilterConfig):
            raise TypeError(f"TxFilter: config must be a FilterConfig, got {type(config).__name__}")
        self.config = config
        entries = []
        for kind, items in ((TARGET_ROUTER_V2, routers_v2), (TARGET_ROUTER_V3, routers_v3),
                            (TARGET_UNIVERSAL_ROUTER, universal_routers),
                            (TARGET_POOL_V2, pools_v2), (TARGET_POOL_V3, pools_v3)):
            for item in items:
                address, exchange = (item if isinstance(item, tuple) else (item, 0))
                if isinstance(exchange, bool) or not isinstance(exchange, int) or not 0 <= exchange < 65536:
                    raise ValueError(f"TxFilter: exchange id must be in 0 .. 65535, got {exchange!r}")
                entries.append((address, (kind << 24) | exchange))
        if addr_table_init(&self.f.targets, len(entries)) != 0:
            raise MemoryError("TxFilter: out of memory")
        cdef uint8_t addr[20]
        for address, value in entries:
            copy_address(address, addr, 20, "TxFilter target address")
            addr_table_put(&self.f.targets, addr, value)
        int_to_u256(config.min_value_wei, &self.f.min_value, "FilterConfig.min_value_wei")
        int_to_u256(config.min_gas_price_wei, &self.f.min_gas_price, "FilterConfig.min_gas_price_wei")
        self.f.check_nonces = config.check_nonces
        self.f.recent_cap = config.recent_hashes
        self.f.recent_mask = tio_next_pow2(2 * self.f.recent_cap) - 1
        self.f.recent_fifo = <tio_hash_key *>calloc(self.f.recent_cap, sizeof(tio_hash_key))
        self.f.recent_index = <tio_hash_key *>calloc(self.f.recent_mask + 1, sizeof(tio_hash_key))
        self.f.nonce_mask = tio_next_pow2(config.nonce_senders) - 1
        self.f.nonces = <tio_nonce_entry *>calloc(self.f.nonce_mask + 1, sizeof(tio_nonce_entry))
        if self.f.recent_fifo == NULL or self.f.recent_index == NULL or self.f.nonces == NULL:
            raise MemoryError("TxFilter: out of memory")
        for v in range(FILTER_VERDICTS):
            tio_atomic_init_u64(&self.f.verdicts[v], 0)

    def __dealloc__(self):
        addr_table_free(&self.f.targets)
        free(self.f.recent_fifo)
        free(self.f.recent_index)
        free(self.f.nonces)

    def target(self, address):
        """``(kind, exchange_id)`` of a known target, or None."""
        cdef uint8_t addr[20]
        copy_address(address, addr, 20, "address")
        cdef uint32_t t = addr_table_get(&self.f.targets, addr)
        if t == TIO_ADDR_MISSING:
            return None
        kinds = {v: k for k, v in TARGET_KINDS.items()}
        return kinds[t >> 24], t & 0xFFFF

    def check(self, tx) -> str:
        """The verdict for a PendingTx: ``'pass'`` or the drop reason (counted)."""
        cdef tio_pending rec
        cdef uint32_t target = 0
        role_claim(&self.role, "TxFilter (single-threaded: the watcher's)")
        copy_address(tx.hash, rec.hash, 32, "PendingTx.hash")
        copy_address(tx.sender, rec.sender, 20, "PendingTx.sender")
        if tx.to is None:
            rec.has_to = 0
        else:
            rec.has_to = 1
            copy_address(tx.to, rec.to, 20, "PendingTx.to")
        rec.nonce = tx.nonce
        int_to_u256(tx.value, &rec.value, "PendingTx.value")
        int_to_u256(tx.max_fee_per_gas, &rec.max_fee_per_gas, "PendingTx.max_fee_per_gas")
        return VERDICTS[tio_filter_check(&self.f, &rec, &target)]

    def _recent_slot(self, bytes tx_hash) -> int:
        """The recent-hash index slot a 32-byte hash starts its probe at (for tests of the
        index's spread; not public API)."""
        cdef tio_hash_key key
        if len(tx_hash) != 32:
            raise ValueError(f"_recent_slot: a hash is 32 bytes, got {len(tx_hash)}")
        key_of(tx_hash, &key)
        return hash_slot(&self.f, &key)

    def stats(self) -> dict:
        """Counts: ``seen``, ``passed`` and one per drop reason (``not_target`` ...)."""
        cdef dict out = {}
        for v in range(FILTER_VERDICTS):
            out[VERDICTS[v]] = tio_atomic_load_u64_relaxed(&self.f.verdicts[v])
        out["passed"] = out.pop("pass")
        out["seen"] = sum(out.values())
        return out
