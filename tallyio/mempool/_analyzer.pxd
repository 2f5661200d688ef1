# cython: language_level=3
# Owns: the backrun analyzer's C API (tio_analyze_call, the arbitrage scans), its per-worker
# counters and the counters; it writes tio_opp records (_opportunity.pxd) into the opportunity dropring.
# Touches: _pools (reads the table), _ring (tio_pending, the dropring), tallyio.amm (V2 math),
# tallyio._ext.swap (the decoder's record).  Never writes the pool table.
from libc.stdint cimport uint8_t, uint32_t, int32_t, uint64_t
from tallyio._ext.u256 cimport tio_u256
from tallyio._ext.swap cimport tio_decoded_call, tio_swap
from tallyio.mempool._pools cimport tio_pooltable
from tallyio.mempool._ring cimport tio_pending, tio_dropring
from tallyio.mempool._opportunity cimport tio_opp

cdef enum:
    # analyzer counters (index into tio_analyzer_stats.count)
    AN_SWAPS = 0                 # swaps looked at
    AN_V3_SKIPPED = 1            # V3 swaps not simulated (any reason; the reason is counted too)
    AN_FEE_ON_TRANSFER = 2       # ...SupportingFeeOnTransferTokens: amounts not exact, skipped
    AN_AMOUNT_UNKNOWN = 3        # the input is decided at run time (Universal Router), skipped
    AN_NO_POOL = 4               # a hop's pool (on the router's exchange) is not in the table
    AN_WOULD_REVERT = 5          # its own limit (amountOutMin / amountInMax) or V2 math fails
    AN_SIMULATED = 6             # swaps applied to a copy of the reserves
    AN_CYCLES_SCREENED = 7
    AN_CYCLES_TRUNCATED = 8      # cycles not screened: the per-transaction bound was hit
    AN_CANDIDATES = 9            # cycles profitable in float64
    AN_SIZED_EXACT = 10          # sized by amm's search, certified equal to a brute force
    AN_SIZED_NEAR = 11           # sized by amm's search, not certified (region over budget)
    AN_OPPORTUNITIES = 12
    AN_UNPROFITABLE = 13         # sized exactly, profit below min_profit
    AN_V3_SIMULATED = 14         # V3 swaps applied exactly within the pool's initialized tick range
    AN_V3_CROSSES_TICK = 15      # V3 swaps skipped: the price would reach an initialized tick
    AN_V3_RANGE_UNKNOWN = 16     # V3 swaps skipped: the pool's range is unknown (a Swap log left it; resync)
    AN_MIXED_SIZED = 17          # cycles with a V3 hop sized (exact objective, integer search in range)
    AN_V3_PRICE_LIMITED = 18     # V3 swaps simulated that stop at their sqrtPriceLimitX96 (a partial fill)
    AN_COUNTERS = 19


cdef struct tio_analyzer_stats:
    uint64_t count[19]


cdef struct tio_analyzer_cfg:
    uint64_t max_cycles
    uint64_t max_sized
    uint32_t max_evaluations
    tio_u256 min_profit
    uint64_t gas_base
    uint64_t gas_per_hop


cdef struct tio_analyze_ctx:
    const tio_pooltable *table
    const tio_analyzer_cfg *cfg
    tio_dropring *out            # the opportunity queue
    uint64_t base_fee            # the latest block's
    uint64_t block_number        # the block an opportunity is valid for


cdef int tio_analyze_call(const tio_analyze_ctx *ctx, const tio_pending *p, uint32_t exchange,
                          const tio_decoded_call *call, tio_analyzer_stats *st) noexcept nogil

# ARBITRAGE: every cycle on the current reserves (no trigger); once per block
cdef int tio_scan_arbitrage(const tio_analyze_ctx *ctx, tio_analyzer_stats *st) noexcept nogil

# standing ARBITRAGE on the cycles through the pools a block's Syncs touched (the pipeline's
# watcher, once the block's Syncs are applied); each cycle at most once per block
cdef struct tio_arb_stats:
    uint64_t scans               # scans run (one per burst of Syncs)
    uint64_t pools               # touched pools scanned
    uint64_t repeats             # cycles not screened again: already screened for this block
    uint64_t truncated           # cycles not screened: the per-scan bound was hit

cdef int tio_scan_touched(const tio_analyze_ctx *ctx, const int32_t *pools, uint64_t n_pools,
                          uint64_t *cycle_stamp, uint64_t max_cycles, tio_analyzer_stats *st,
                          tio_arb_stats *arb) noexcept nogil

# AnalyzerConfig -> the C settings (the Python edge)
cdef int fill_cfg(object config, tio_analyzer_cfg *cfg) except -1
