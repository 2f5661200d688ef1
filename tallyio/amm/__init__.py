"""Exact pool math, bit for bit with the contracts: Uniswap V2 and forks on
256-bit integers in C, V3 within a tick range, optimal sizing of a cycle.

A leaf: used by the analyzer (``tallyio.mempool``) and the engine; imports no
other engine sub-package.  The C API for nogil callers is in ``_v2.pxd``
(hops and paths) and ``_cycle.pxd`` (cycle sizing); docs/amm.md derives the math.

>>> from tallyio.amm import get_amounts_out
>>> get_amounts_out(10**18, [(100 * 10**18, 200_000 * 10**6)])
[1000000000000000000, 1974316068]
"""
from tallyio.amm._cycle import CycleSize, best_cycle_input, cycle_size
from tallyio.amm._v2 import get_amount_in, get_amount_out, get_amounts_in, get_amounts_out

__all__ = ["get_amount_out", "get_amount_in", "get_amounts_out", "get_amounts_in",
           "best_cycle_input", "cycle_size", "CycleSize"]
