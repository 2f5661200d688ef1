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
           "AaveUserAction", "AaveLiquidation", "AavePriceUpdate", "RawLog"]


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


# ---- any contract's log, undecoded (issue 12: recorded and replayed for the subscribers that decode it) ----


def _rpc_hex(obj: dict, key: str, size: Optional[int] = None) -> bytes:
    value = obj.get(key)
    if type(value) is not str or value[:2] not in ("0x", "0X"):
        raise ValueError(f"log '{key}' must be a 0x hex string, got {str(value)[:40]!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"log '{key}' is not hex: {value[:40]!r}") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"log '{key}' must be {size} bytes, got {len(raw)}")
    return raw


def _rpc_quantity(obj: dict, key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0                                   # a pending log has no block yet
    if type(value) is not str or value[:2] not in ("0x", "0X"):
        raise ValueError(f"log '{key}' must be a 0x quantity, got {str(value)[:40]!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"log '{key}' is not a hex quantity: {value[:40]!r}") from None


class RawLog(NamedTuple):
    """A contract's log as a node sent it (``eth_subscribe("logs")``, ``eth_getLogs``),
    not decoded: what a recording keeps of the events other subscribers decode (an Aave
    market's, for ``PositionBook.apply_log(log.to_rpc())``).

        >>> log = RawLog.from_rpc({"address": "0x" + "0a" * 20, "topics": ["0x" + "01" * 32],
        ...                        "data": "0x05", "blockNumber": "0x10", "logIndex": "0x2",
        ...                        "transactionHash": "0x" + "ee" * 32}, received_ns=7)
        >>> log.block_number, log.log_index, log.data, log.received_ns
        (16, 2, b'\\x05', 7)
        >>> RawLog.from_rpc(log.to_rpc(), received_ns=7) == log
        True
    """

    address: bytes
    """20-byte emitter."""
    topics: tuple
    """0 to 4 topics, each 32 bytes."""
    data: bytes
    block_number: int
    log_index: int
    transaction_hash: bytes
    """32 bytes (zeros when the node gave none)."""
    removed: bool = False
    """True when a reorg took the log back."""
    received_ns: int = 0
    block_timestamp: int = 0
    """the block's time when the node sent it (``blockTimestamp``), else 0."""

    @classmethod
    def from_rpc(cls, obj: dict, received_ns: int = 0) -> "RawLog":
        """A JSON-RPC log object as a RawLog; ValueError naming the field that is wrong."""
        if type(obj) is not dict:
            raise ValueError(f"a log is a JSON object, got {type(obj).__name__}")
        topics = obj.get("topics")
        if type(topics) is not list or len(topics) > 4:
            raise ValueError("log 'topics' must be a list of at most 4 topics")
        parsed = tuple(_rpc_hex({"topic": t}, "topic", 32) for t in topics)
        tx_hash = _rpc_hex(obj, "transactionHash", 32) if obj.get("transactionHash") is not None else bytes(32)
        removed = obj.get("removed", False)
        if type(removed) is not bool:
            raise ValueError(f"log 'removed' must be a bool, got {removed!r}")
        return cls(_rpc_hex(obj, "address", 20), parsed, _rpc_hex(obj, "data"), _rpc_quantity(obj, "blockNumber"),
                   _rpc_quantity(obj, "logIndex"), tx_hash, removed, received_ns,
                   _rpc_quantity(obj, "blockTimestamp"))

    def to_rpc(self) -> dict:
        """The JSON-RPC log object (hex strings) this log came from, for decoders that take one."""
        out = {"address": "0x" + self.address.hex(), "topics": ["0x" + t.hex() for t in self.topics],
               "data": "0x" + self.data.hex(), "blockNumber": hex(self.block_number),
               "logIndex": hex(self.log_index), "transactionHash": "0x" + self.transaction_hash.hex(),
               "removed": self.removed}
        if self.block_timestamp:
            out["blockTimestamp"] = hex(self.block_timestamp)
        return out
