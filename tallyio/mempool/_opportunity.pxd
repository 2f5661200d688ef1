# cython: language_level=3
# Owns: the opportunity record (tio_opp) and OpportunityQueue, the bounded drop-oldest queue
# of them (a tio_dropring) that workers fill and the engine reads, and its consumer wake-up
# (tio_opp_wake: a "waiting" flag + an eventfd).  Touches: _ring, tio_atomic.h.
from libc.stdint cimport uint8_t, uint64_t
from tallyio._ext.common cimport tio_atomic_u64
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
    # LIQUIDATION records only (pushed from Python by OpportunityQueue.push; the analyzer's
    # memset leaves them 0 and opp_to_python does not read them for its kinds)
    uint8_t liq_flags            # LIQ_HAS_TRIGGER | LIQ_HAS_NET | LIQ_HAS_NET_ETH
    uint8_t user[20]
    tio_u256 amount_out
    tio_u256 net                 # profit_net_of_gas, two's complement mod 2**256
    tio_u256 net_eth             # profit_net_of_gas_eth, two's complement mod 2**256


# The consumer's wake-up (see _opportunity.pyx's module doc for the no-lost-wake-up argument):
# a producer calls tio_opp_wake_signal after it committed records; it costs a fence and a
# load unless the consumer sleeps, and then one eventfd write per sleep (not per record).
cdef struct tio_opp_wake:
    tio_atomic_u64 waiting       # 1: the consumer sleeps on read_fd (armed), else 0
    tio_atomic_u64 signals       # eventfd writes: producers' wake-ups + wake_now()
    int read_fd                  # the eventfd (or a pipe's read end), owned by the queue
    int write_fd                 # the same eventfd (or the pipe's write end)

cdef void tio_opp_wake_signal(tio_opp_wake *w) noexcept nogil


cdef class OpportunityQueue:
    cdef tio_dropring *ring      # owned
    cdef tio_opp_wake wake       # the consumer's wake-up (fds owned)
