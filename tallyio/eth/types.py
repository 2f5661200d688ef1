"""The records that cross from a source (a node, a replay) into the pipeline.

Every source yields these three shapes and nothing else, so a filter, an
analyzer or a recorder never knows where a transaction came from. Raw values
stay raw: addresses and hashes are ``bytes`` (20 and 32 long), amounts are
Python ``int`` (256-bit values do not fit a float or an int64), and the receive
time is ``time.monotonic_ns()`` (CLOCK_MONOTONIC, comparable across the
processes of one machine) taken when the bytes arrived.

    >>> tx = PendingTx(hash=b"\\x11" * 32, sender=b"\\x22" * 20, to=b"\\x33" * 20,
    ...                nonce=7, value=10**18, gas=200_000, max_fee_per_gas=30 * 10**9,
    ...                max_priority_fee_per_gas=10**9, input=bytes.fromhex("38ed1739"),
    ...                tx_type=2, received_ns=123)
    >>> tx.to.hex()[:6], tx.nonce
    ('333333', 7)
"""
from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["PendingTx", "BlockHeader", "SyncEvent"]


class PendingTx(NamedTuple):
    """A transaction seen before it was mined."""

    hash: bytes
    """32-byte transaction hash."""
    sender: bytes
    """20-byte ``from`` address."""
    to: Optional[bytes]
    """20-byte ``to`` address; ``None`` for a contract creation."""
    nonce: int
    value: int
    """wei sent with the call."""
    gas: int
    """gas limit."""
    max_fee_per_gas: int
    """``maxFeePerGas`` (type 2/3) or ``gasPrice`` (legacy and type 1)."""
    max_priority_fee_per_gas: int
    """``maxPriorityFeePerGas`` (type 2/3) or ``gasPrice`` (legacy and type 1)."""
    input: bytes
    """calldata."""
    tx_type: int
    """EIP-2718 type: 0 legacy, 1 access list, 2 EIP-1559, 3 blob, 4 set-code."""
    received_ns: int
    """``time.monotonic_ns()`` when the source received it (replay: the recorded time)."""
    raw: bytes = b""
    """the signed EIP-2718 encoding when the source has it, else empty."""


class BlockHeader(NamedTuple):
    """A new block's header (``newHeads``)."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    """seconds since the epoch, as the block says."""
    base_fee_per_gas: int
    """0 before London."""
    gas_limit: int
    gas_used: int
    received_ns: int


class SyncEvent(NamedTuple):
    """A Uniswap V2 pair's ``Sync(uint112 reserve0, uint112 reserve1)`` log: the
    pair's reserves after a mint, burn, swap or sync in a mined block."""

    pool: bytes
    """20-byte pair address (the log's emitter)."""
    reserve0: int
    reserve1: int
    block_number: int
    log_index: int
    transaction_hash: bytes
    removed: bool = False
    """True when a reorg took the log back (the node resends it with removed=true)."""
    received_ns: int = 0
