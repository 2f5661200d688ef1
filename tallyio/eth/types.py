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

__all__ = ["PendingTx", "BlockHeader", "SyncEvent", "AaveReserveUpdate", "AaveTokenEvent", "AaveCollateralToggle",
           "AaveUserAction", "AaveLiquidation", "AavePriceUpdate"]


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


# ---- Aave v3 (issue 15): what tallyio.eth.aave decodes from a market's logs and the oracle's calls ----
# Every log record ends with where the log was (block, index, transaction, the block's timestamp when
# the node gave it, removed on a reorg) and the receive time, all with defaults.


class AaveReserveUpdate(NamedTuple):
    """The Pool's ``ReserveDataUpdated``: a reserve's rates and indexes (ray) after
    an action; the indexes are as of the block's timestamp."""

    reserve: bytes
    """20-byte underlying asset."""
    liquidity_rate: int
    stable_borrow_rate: int
    variable_borrow_rate: int
    liquidity_index: int
    variable_borrow_index: int
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    """the block's time (0 when the log did not carry it)."""
    removed: bool = False
    received_ns: int = 0


class AaveTokenEvent(NamedTuple):
    """An aToken's or variable-debt token's ``Mint``, ``Burn`` or ``BalanceTransfer``:
    with the ``index`` it carries, the holder's scaled balance change is exact
    (:attr:`scaled_deltas`)."""

    token: bytes
    """20-byte aToken or debt token (the log's emitter)."""
    kind: str
    """``"mint"``, ``"burn"`` or ``"transfer"``."""
    user: bytes
    """mint: ``onBehalfOf``; burn: ``from``; transfer: ``from``."""
    other: bytes
    """mint: ``caller``; burn: ``target``; transfer: ``to``."""
    value: int
    """mint/burn: the logged ``value`` (amount +/- accrued interest); transfer: the SCALED amount."""
    balance_increase: int
    """interest accrued since the holder's last action (0 for a transfer)."""
    index: int
    """the reserve's liquidity (aToken) or variable-borrow (debt token) index, ray."""
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    removed: bool = False
    received_ns: int = 0


class AaveCollateralToggle(NamedTuple):
    """``ReserveUsedAsCollateralEnabled`` / ``Disabled`` of one user's reserve."""

    reserve: bytes
    user: bytes
    enabled: bool
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    removed: bool = False
    received_ns: int = 0


class AaveUserAction(NamedTuple):
    """The Pool's ``Supply``, ``Withdraw``, ``Borrow`` or ``Repay`` (what the user
    asked for, in underlying units; the balances follow the token events)."""

    kind: str
    """``"supply"``, ``"withdraw"``, ``"borrow"`` or ``"repay"``."""
    reserve: bytes
    user: bytes
    """whose position changed (``onBehalfOf`` for supply/borrow; ``user`` otherwise)."""
    amount: int
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    removed: bool = False
    received_ns: int = 0


class AaveLiquidation(NamedTuple):
    """The Pool's ``LiquidationCall``."""

    collateral_asset: bytes
    debt_asset: bytes
    user: bytes
    debt_to_cover: int
    liquidated_collateral_amount: int
    liquidator: bytes
    receive_a_token: bool
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    removed: bool = False
    received_ns: int = 0


class AavePriceUpdate(NamedTuple):
    """A price from the market's oracle: a mined ``AssetPriceUpdated`` log, or a
    pending ``setAssetPrice(asset, price)`` call (``pending`` True: it will hold
    from the next block, ``transaction_hash`` is the pending transaction)."""

    oracle: bytes
    asset: bytes
    price: int
    pending: bool = False
    block_number: int = 0
    log_index: int = 0
    transaction_hash: bytes = b""
    block_timestamp: int = 0
    removed: bool = False
    received_ns: int = 0
