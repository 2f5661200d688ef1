# cython: language_level=3
# Owns: OpportunityQueue (a tio_dropring of tio_opp records) and the record -> Opportunity
# conversion.  Touches: _ring (the dropring C API), tallyio.mempool.records.
"""The opportunity queue: bounded, drop-oldest (an old opportunity is stale), counted.

Workers push ``tio_opp`` records from nogil code (``tio_dropring_begin/commit``); the
engine takes them out as :class:`~tallyio.mempool.records.Opportunity` tuples.

    >>> q = OpportunityQueue(capacity=4)
    >>> q.get() is None, q.stats()["received"]
    (True, 0)
"""
from libc.stdint cimport uint32_t, uint64_t
from cpython.bytes cimport PyBytes_FromStringAndSize

from tallyio.mempool._ring cimport (tio_dropring_new, tio_dropring_free, tio_dropring_record,
                                    tio_dropring_pop_many, tio_dropring_release_many,
                                    tio_dropring_queued, dropring_stats, check_ring_capacity)
from tallyio.mempool._u256py cimport u256_to_int

from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["OpportunityQueue"]


cdef object opp_to_python(const tio_opp *o):
    cdef int h
    pools = tuple(PyBytes_FromStringAndSize(<char *>o.pools[h], 20) for h in range(o.n_hops))
    tokens = tuple(PyBytes_FromStringAndSize(<char *>o.tokens[h], 20) for h in range(o.n_hops + 1))
    profit = u256_to_int(&o.profit)
    gas_cost = o.gas_estimate * o.base_fee
    return Opportunity(
        kind=OpportunityKind(o.kind),
        trigger_tx=PyBytes_FromStringAndSize(<char *>o.trigger_hash, 32) if o.kind != 1 else None,
        pools=pools, token_path=tokens, amount_in=u256_to_int(&o.amount_in), profit=profit,
        gas_estimate=o.gas_estimate, base_fee_per_gas=o.base_fee,
        profit_net_of_gas=(profit - gas_cost) if o.start_is_weth else None,
        block_number=o.block_number, received_ns=o.received_ns, detected_ns=o.detected_ns,
        pool_kinds=tuple((o.v3_hops >> h) & 1 for h in range(o.n_hops)))


cdef class OpportunityQueue:
    """Bounded drop-oldest queue of opportunities (capacity rounded up to a power of 2)."""

    def __cinit__(self, capacity=1024):
        cdef uint64_t cap = check_ring_capacity(capacity, "OpportunityQueue")
        self.ring = tio_dropring_new(cap, sizeof(tio_opp))
        if self.ring == NULL:
            raise MemoryError(f"OpportunityQueue(capacity={cap}): out of memory")

    def __dealloc__(self):
        tio_dropring_free(self.ring)
        self.ring = NULL

    @property
    def capacity(self) -> int:
        return self.ring.capacity

    def __len__(self):
        return tio_dropring_queued(self.ring)

    def get(self):
        """The oldest opportunity, or None when there is none."""
        cdef uint32_t idx
        if tio_dropring_pop_many(self.ring, &idx, 1) == 0:
            return None
        try:
            return opp_to_python(<tio_opp *>tio_dropring_record(self.ring, idx))
        finally:
            tio_dropring_release_many(self.ring, &idx, 1)

    def get_many(self, limit=64):
        """Up to `limit` of the oldest opportunities, oldest first."""
        out = []
        while len(out) < limit:
            o = self.get()
            if o is None:
                break
            out.append(o)
        return out

    def stats(self) -> dict:
        """received (pushed), processed (taken), dropped (evicted oldest...), in_flight."""
        return dropring_stats(self.ring)
