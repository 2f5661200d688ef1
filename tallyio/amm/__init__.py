"""Exact pool math, bit for bit with the contracts: Uniswap V2 and forks on
256-bit integers in C, V3 within a tick range, optimal sizing of a cycle.

A leaf: used by the analyzer (``tallyio.mempool``) and the engine; imports no
other engine sub-package.
"""
