# cython: language_level=3
# Owns: the opportunity record (tio_opp) and OpportunityQueue, the bounded drop-oldest queue
# of them (a tio_dropring) that workers fill and the engine reads.  Touches: _ring.
from libc.stdint cimport uint8_t, uint64_t
from tallyio._ext.u256 cimport tio_u256
from tallyio.mempool._ring cimport tio_dropring

cdef struct tio_opp:
    uint8_t kind                 # OpportunityKind
    uint8_t n_hops
    uint8_t start_is_weth
    uint8_t v3_hops              # bit h set: hop h is a V3 pool (records.POOL_V3)
    uint8_t _pad[4]
    uint64_t trigger_seq
    uint64_t received_ns
    uint64_t detected_ns
    uint64_t gas_estimate
    uint64_t base_fee
    uint64_t block_number
    tio_u256 amount_in
    tio_u256 profit
    uint8_t trigger_hash[32]
    uint8_t pools[3][20]
    uint8_t tokens[4][20]


cdef class OpportunityQueue:
    cdef tio_dropring *ring      # owned
