"""The records the analyzer works with and hands on: a pool's description
(``V2Pool``, ``V3Pool``: what a pool table is built from), a V3 pool's log
(``V3PoolEvent``: Swap, Mint, Burn, or a resynced state) and an ``Opportunity``
(what the engine reads).  Plain data; imports nothing downstream.

    >>> p = V2Pool(address=b"\\x01" * 20, token0=b"\\x0a" * 20, token1=b"\\x0b" * 20,
    ...            reserve0=10**21, reserve1=2 * 10**21)
    >>> p.fee_bps, p.exchange
    (30, 0)
    >>> OpportunityKind.BACKRUN.name
    'BACKRUN'
"""
from __future__ import annotations

import enum
from typing import NamedTuple, Optional

__all__ = ["V2Pool", "V3Pool", "V3PoolEvent", "Opportunity", "OpportunityKind", "POOL_V2", "POOL_V3"]

POOL_V2 = 0
"""``Opportunity.pool_kinds`` entry of a constant-product pair."""
POOL_V3 = 1
"""``Opportunity.pool_kinds`` entry of a V3 (concentrated liquidity) pool."""


class V2Pool(NamedTuple):
    """A constant-product pair (Uniswap V2 or a fork) as the pool table knows it."""

    address: bytes
    """20-byte pair address."""
    token0: bytes
    token1: bytes
    reserve0: int
    reserve1: int
    fee_bps: int = 30
    """swap fee in basis points (30: Uniswap V2 and SushiSwap)."""
    exchange: int = 0
    """which factory (router family) the pair belongs to; a router only swaps through its own."""


class V3Pool(NamedTuple):
    """A Uniswap V3 pool as the pool table knows it: its current price, in-range
    liquidity and tick, and the initialized tick range around the price.

    ``tick_lower`` is the greatest initialized tick <= ``tick``, ``tick_upper`` the
    least initialized tick > ``tick`` (a position's bounds; a resync reads them from
    ``tickBitmap``).  A swap is simulated exactly only while the price stays strictly
    inside ``(sqrt(tick_lower), sqrt(tick_upper))``: reaching either bound crosses an
    initialized tick (its liquidityNet is not in the table), and the swap is skipped.
    Bounds narrower than the truth are safe (more skips, never a wrong amount)."""

    address: bytes
    token0: bytes
    token1: bytes
    fee_pips: int
    """swap fee in hundredths of a basis point (3000: 0.3 %)."""
    tick_spacing: int
    sqrt_price_x96: int
    liquidity: int
    tick: int
    tick_lower: int
    tick_upper: int
    exchange: int = 0
    """the router family (as ``V2Pool.exchange``; a V3 pool never shares the V2 pair index)."""


class V3PoolEvent(NamedTuple):
    """A V3 pool log, or its state read by a resync, for ``PoolTable.apply_v3_event``.

    ``kind``: ``"swap"`` (sets price, liquidity and tick from the Swap log), ``"mint"`` /
    ``"burn"`` (a position ``[tick_lower, tick_upper)`` gained / lost ``liquidity``), or
    ``"state"`` (a resync: every field is the pool's current state)."""

    pool: bytes
    kind: str
    sqrt_price_x96: int = 0
    liquidity: int = 0
    tick: int = 0
    tick_lower: int = 0
    tick_upper: int = 0
    block_number: int = 0
    log_index: int = 0
    received_ns: int = 0
    """``time.monotonic_ns()`` when the source received the log (replay: the recorded time); 0: unknown."""


class OpportunityKind(enum.IntEnum):
    """What kind of trade an opportunity is (we never front-run or sandwich)."""

    ARBITRAGE = 1
    """a cycle profitable on the current state alone."""
    BACKRUN = 2
    """a cycle that a pending transaction makes profitable: trade right after it."""
    LIQUIDATION = 3
    """an undercollateralized lending position (``tallyio.mempool.lending.PositionBook``)."""


class Opportunity(NamedTuple):
    """A sized trade the engine may execute. Amounts are exact integers in the start
    token's smallest unit."""

    kind: OpportunityKind
    trigger_tx: Optional[bytes]
    """hash of the pending transaction that created it (None for ARBITRAGE)."""
    pools: tuple
    """20-byte pool addresses, in trade order."""
    token_path: tuple
    """20-byte token addresses: start, ..., start (one more than pools)."""
    amount_in: int
    profit: int
    """expected gross profit in the start token (exact output - amount_in)."""
    gas_estimate: int
    base_fee_per_gas: int
    """the base fee the net profit was computed at (the latest block's)."""
    profit_net_of_gas: Optional[int]
    """profit - gas_estimate x base_fee when the start token is WETH; else None."""
    block_number: int
    """the block the opportunity is valid for (the next one)."""
    received_ns: int
    """when the triggering transaction was received (monotonic ns; replay: recorded)."""
    detected_ns: int
    """when the analyzer produced it (monotonic ns)."""
    # ---- LIQUIDATION (issue 15): the fields a liquidation needs beyond a cycle's; defaults elsewhere ----
    # For a liquidation: pools = (the lending pool,), token_path = (debt asset, collateral asset),
    # amount_in = the debt to cover, profit = the collateral received valued in the debt token minus
    # amount_in, profit_net_of_gas = that minus the gas cost valued in the debt token (None without an
    # ETH price), trigger_tx = the pending oracle update that makes it (None when already liquidatable).
    user: Optional[bytes] = None
    """the 20-byte borrower a LIQUIDATION liquidates."""
    amount_out: int = 0
    """the collateral the liquidator receives (underlying units, protocol fee already out)."""
    profit_net_of_gas_eth: Optional[int] = None
    """LIQUIDATION: the net profit in wei (oracle prices), None without an ETH price."""
    pool_kinds: tuple = ()
    """POOL_V2 / POOL_V3 per pool, in trade order (empty: all V2, records made before V3)."""
