"""Decoding of an Aave v3 market's logs and of the mock oracle's pending
``setAssetPrice`` calls into the typed records of :mod:`tallyio.eth.types`.

Owns: the event topics and the one function selector (computed from their
signatures at import and checked against the values Aave's ABI gives, so a
typo cannot pass silently), :func:`decode_aave_log` (a JSON-RPC log object, as
``eth_getLogs`` / a ``logs`` subscription deliver it) and
:func:`decode_oracle_call` (a :class:`~tallyio.eth.types.PendingTx`). No I/O;
imports nothing downstream.

    >>> log = {"address": "0x" + "0a" * 20, "topics": [AAVE_TOPICS["ReserveUsedAsCollateralEnabled"],
    ...        "0x" + "00" * 12 + "bb" * 20, "0x" + "00" * 12 + "cc" * 20], "data": "0x",
    ...        "blockNumber": "0x10", "logIndex": "0x2", "transactionHash": "0x" + "11" * 32}
    >>> rec = decode_aave_log(log)
    >>> type(rec).__name__, rec.enabled, rec.reserve.hex()[:4], rec.block_number
    ('AaveCollateralToggle', True, 'bbbb', 16)
    >>> SET_ASSET_PRICE_SELECTOR.hex()
    '51323f72'
"""
from __future__ import annotations

from typing import Any, Optional, Union

from tallyio.eth._keccak import keccak256
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, PendingTx)

__all__ = ["AAVE_TOPICS", "SET_ASSET_PRICE_SELECTOR", "AaveRecord", "decode_aave_log", "decode_oracle_call"]

_SIGNATURES = {
    "ReserveDataUpdated": ("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)", "804c9b842b2748a2"),
    "Supply": ("Supply(address,address,address,uint256,uint16)", "2b627736bca15cd5"),
    "Withdraw": ("Withdraw(address,address,address,uint256)", "3115d1449a7b732c"),
    "Borrow": ("Borrow(address,address,address,uint256,uint8,uint256,uint16)", "b3d084820fb1a9de"),
    "Repay": ("Repay(address,address,address,uint256,bool)", "a534c8dbe71f871f"),
    "LiquidationCall": ("LiquidationCall(address,address,address,uint256,uint256,address,bool)", "e413a321e8681d83"),
    "ReserveUsedAsCollateralEnabled": ("ReserveUsedAsCollateralEnabled(address,address)", "00058a56ea94653c"),
    "ReserveUsedAsCollateralDisabled": ("ReserveUsedAsCollateralDisabled(address,address)", "44c58d81365b66dd"),
    "Mint": ("Mint(address,address,uint256,uint256,uint256)", "458f5fa412d0f69b"),
    "Burn": ("Burn(address,address,uint256,uint256,uint256)", "4cf25bc1d991c175"),
    "BalanceTransfer": ("BalanceTransfer(address,address,uint256,uint256)", "4beccb90f994c31a"),
    "AssetPriceUpdated": ("AssetPriceUpdated(address,uint256,uint256)", "ce6e0b57367bae95"),
}


def _topics() -> dict:
    out = {}
    for name, (signature, prefix) in _SIGNATURES.items():
        topic = keccak256(signature.encode()).hex()
        if not topic.startswith(prefix):  # the first 8 bytes as Aave's published ABI hashes them
            raise ImportError(f"topic of {signature} is 0x{topic}, expected 0x{prefix}...")
        out[name] = "0x" + topic
    return out


#: event name -> topic0 (``0x`` + 64 lowercase hex digits)
AAVE_TOPICS: dict = _topics()
_BY_TOPIC = {topic: name for name, topic in AAVE_TOPICS.items()}
#: the mock ``PriceOracle``'s ``setAssetPrice(address,uint256)``
SET_ASSET_PRICE_SELECTOR = keccak256(b"setAssetPrice(address,uint256)")[:4]
assert SET_ASSET_PRICE_SELECTOR == bytes.fromhex("51323f72"), SET_ASSET_PRICE_SELECTOR.hex()

AaveRecord = Union[AaveReserveUpdate, AaveTokenEvent, AaveCollateralToggle, AaveUserAction, AaveLiquidation,
                   AavePriceUpdate]


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _hexbytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not (isinstance(value, str) and value[:2] in ("0x", "0X")):
        raise ValueError(f"{what} must be 0x-prefixed hex, got {value!r}")
    return bytes.fromhex(value[2:])


def _topic_address(topic: Any) -> bytes:
    raw = _hexbytes(topic, "an indexed address topic")
    if len(raw) != 32:
        raise ValueError(f"a topic has 32 bytes, got {len(raw)}")
    return raw[12:]


def _words(data: bytes, count: int, name: str) -> list:
    if len(data) < 32 * count:
        raise ValueError(f"{name} log data has {len(data)} bytes, expected at least {32 * count}")
    return [int.from_bytes(data[32 * i: 32 * i + 32], "big") for i in range(count)]


def _word_address(word: int) -> bytes:
    return word.to_bytes(32, "big")[12:]


def decode_aave_log(log: dict, *, received_ns: int = 0) -> Optional[AaveRecord]:
    """The record of one Aave log (Pool, aToken, debt token or oracle event), or
    None for a log of another event. A log with an Aave topic but the wrong
    shape (topics or data too short) raises ValueError saying what was wrong.
    Which emitter is which (Pool vs. token vs. oracle) is the caller's filter:
    the topics already tell the events apart."""
    topics = log.get("topics") or ()
    if not topics:
        return None
    name = _BY_TOPIC.get(str(topics[0]).lower())
    if name is None:
        return None
    data = _hexbytes(log.get("data") or "0x", "log data")
    where = dict(block_number=_int(log.get("blockNumber") or 0), log_index=_int(log.get("logIndex") or 0),
                 transaction_hash=_hexbytes(log.get("transactionHash") or "0x", "transactionHash"),
                 block_timestamp=_int(log.get("blockTimestamp") or 0), removed=bool(log.get("removed", False)),
                 received_ns=received_ns)
    emitter = _hexbytes(log.get("address") or "0x", "address")
    need = {"ReserveDataUpdated": 2, "Supply": 4, "Withdraw": 4, "Borrow": 4, "Repay": 4, "LiquidationCall": 4,
            "ReserveUsedAsCollateralEnabled": 3, "ReserveUsedAsCollateralDisabled": 3, "Mint": 3, "Burn": 3,
            "BalanceTransfer": 3, "AssetPriceUpdated": 1}[name]
    if len(topics) < need:
        raise ValueError(f"{name} log has {len(topics)} topics, expected {need}")
    t = [_topic_address(x) for x in topics[1:need]]
    if name == "ReserveDataUpdated":
        w = _words(data, 5, name)
        return AaveReserveUpdate(t[0], w[0], w[1], w[2], w[3], w[4], **where)
    if name in ("Mint", "Burn"):
        w = _words(data, 3, name)
        # Mint(caller, onBehalfOf, ...), Burn(from, target, ...): the holder is onBehalfOf / from
        user, other = (t[1], t[0]) if name == "Mint" else (t[0], t[1])
        return AaveTokenEvent(emitter, name.lower(), user, other, w[0], w[1], w[2], **where)
    if name == "BalanceTransfer":
        w = _words(data, 2, name)
        return AaveTokenEvent(emitter, "transfer", t[0], t[1], w[0], 0, w[1], **where)
    if name in ("ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralDisabled"):
        return AaveCollateralToggle(t[0], t[1], name.endswith("Enabled"), **where)
    if name == "Supply":       # Supply(reserve idx, user, onBehalfOf idx, amount, referral idx)
        w = _words(data, 2, name)
        return AaveUserAction("supply", t[0], t[1], w[1], **where)
    if name == "Borrow":       # Borrow(reserve idx, user, onBehalfOf idx, amount, mode, rate, referral idx)
        w = _words(data, 2, name)
        return AaveUserAction("borrow", t[0], t[1], w[1], **where)
    if name == "Withdraw":     # Withdraw(reserve idx, user idx, to idx, amount)
        w = _words(data, 1, name)
        return AaveUserAction("withdraw", t[0], t[1], w[0], **where)
    if name == "Repay":        # Repay(reserve idx, user idx, repayer idx, amount, useATokens)
        w = _words(data, 1, name)
        return AaveUserAction("repay", t[0], t[1], w[0], **where)
    if name == "LiquidationCall":
        w = _words(data, 4, name)
        return AaveLiquidation(t[0], t[1], t[2], w[0], w[1], _word_address(w[2]), bool(w[3]), **where)
    # AssetPriceUpdated(address asset, uint256 price, uint256 timestamp): nothing indexed
    w = _words(data, 3, name)
    return AavePriceUpdate(emitter, _word_address(w[0]), w[1], False, **where)


def decode_oracle_call(tx: PendingTx, oracle: Optional[bytes] = None) -> Optional[AavePriceUpdate]:
    """A pending ``setAssetPrice(asset, price)`` to ``oracle`` (any address when
    None) as a ``pending`` :class:`AavePriceUpdate`, or None for another call."""
    if tx.to is None or (oracle is not None and tx.to != oracle):
        return None
    data = tx.input
    if len(data) < 4 or data[:4] != SET_ASSET_PRICE_SELECTOR:
        return None
    if len(data) != 4 + 64:
        raise ValueError(f"setAssetPrice calldata has {len(data) - 4} argument bytes, expected 64")
    if data[4:16] != bytes(12):
        raise ValueError("setAssetPrice's asset argument is not a clean address word")
    return AavePriceUpdate(tx.to, data[16:36], int.from_bytes(data[36:68], "big"), True,
                           transaction_hash=tx.hash, received_ns=tx.received_ns)
