"""Exact pool math, bit for bit with the contracts: Uniswap V2 and forks on
256-bit integers in C, V3 within a tick range, optimal sizing of a cycle.

A leaf: used by the analyzer (``tallyio.mempool``) and the engine; imports no
other engine sub-package.  The C API for nogil callers is in ``_v2.pxd``
(hops and paths), ``_cycle.pxd`` (cycle sizing) and ``_v3.pxd`` (V3 within a tick range); docs/amm.md derives the math.

>>> from tallyio.amm import get_amounts_out
>>> get_amounts_out(10**18, [(100 * 10**18, 200_000 * 10**6)])
[1000000000000000000, 1974316068]
"""
from tallyio.amm._cycle import CycleSize, best_cycle_input, cycle_size
from tallyio.amm._v2 import get_amount_in, get_amount_out, get_amounts_in, get_amounts_out
from tallyio.amm._v3 import (MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, V3Swap, compute_swap_step,
                             get_amount0_delta, get_amount1_delta, get_next_sqrt_price_from_input,
                             get_next_sqrt_price_from_output, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio,
                             v3_swap_in_range, v3_swap_within_range)

__all__ = ["get_amount_out", "get_amount_in", "get_amounts_out", "get_amounts_in",
           "best_cycle_input", "cycle_size", "CycleSize",
           "v3_swap_within_range", "v3_swap_in_range", "V3Swap", "compute_swap_step", "get_amount0_delta",
           "get_amount1_delta",
           "get_next_sqrt_price_from_input", "get_next_sqrt_price_from_output", "get_sqrt_ratio_at_tick",
           "get_tick_at_sqrt_ratio", "MIN_TICK", "MAX_TICK", "MIN_SQRT_RATIO", "MAX_SQRT_RATIO"]
