"""Turn what a node sends (JSON transaction, header and log objects) into the
records of :mod:`tallyio.eth.types`, treating every field as untrusted input.

Owns: field validation, the RLP encoding of the typed transaction envelopes
(legacy, 1, 2, 3, 4) and the hash check (keccak of that encoding must equal the
``hash`` the node claims), and the ``Sync`` topic. Raises only
:class:`BadRecord`, whose ``reason`` is the counter name the node source bumps.

    >>> keccak256(b"").hex()[:16]
    'c5d2460186f7233c'
    >>> rlp_encode([b"cat", b"dog"]).hex()
    'c88363617483646f67'
    >>> SYNC_TOPIC.hex()[:8]
    '1c411e9a'
"""
from __future__ import annotations

from typing import Any, Callable

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent

__all__ = ["BadRecord", "keccak256", "rlp_encode", "parse_pending_tx", "parse_header", "parse_sync_log",
           "SYNC_TOPIC"]

keccak256: Callable[[bytes], bytes]
try:  # pycryptodome: ~1 us for a transaction's envelope
    from Crypto.Hash import keccak as _keccak

    def keccak256(data: bytes) -> bytes:
        """Keccak-256 (Ethereum's hash, not NIST SHA3-256) of ``data``."""
        return _keccak.new(data=data, digest_bits=256).digest()
except ImportError:  # pragma: no cover - depends on the install
    try:
        from eth_hash.auto import keccak as keccak256  # type: ignore[no-redef]
    except ImportError:
        def keccak256(data: bytes) -> bytes:  # type: ignore[misc]
            raise ImportError("Keccak-256 needs pycryptodome (pip install pycryptodome) or eth-hash")

SYNC_TOPIC = bytes.fromhex("1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1")
"""topic0 of ``Sync(uint112 reserve0, uint112 reserve1)``: keccak of the signature."""


class BadRecord(ValueError):
    """A node object failed validation; ``reason`` names the stats counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# ---- RLP ----

def _length_prefix(length: int, short: int) -> bytes:
    if length < 56:
        return bytes((short + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((short + 55 + len(size),)) + size


def rlp_encode(item: Any) -> bytes:
    """RLP of ``bytes`` / ``int`` (minimal big-endian) / lists of those."""
    if isinstance(item, (bytes, bytearray)):
        if len(item) == 1 and item[0] < 0x80:
            return bytes(item)
        return _length_prefix(len(item), 0x80) + bytes(item)
    if isinstance(item, int):
        return rlp_encode(item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b"")
    payload = b"".join([rlp_encode(x) for x in item])
    return _length_prefix(len(payload), 0xC0) + payload


# ---- field readers: each raises BadRecord naming the field ----

def _qty(obj: dict, key: str, default: int | None = None) -> int:
    raw = obj.get(key)
    if raw is None:
        if default is not None:
            return default
        raise BadRecord("missing_field", f"no {key!r}")
    if type(raw) is not str or raw[:2] != "0x" or len(raw) > 66 or len(raw) < 3:
        raise BadRecord("bad_field", f"{key!r} is not a 0x quantity of at most 256 bits: {str(raw)[:80]!r}")
    try:
        return int(raw, 16)
    except ValueError:
        raise BadRecord("bad_field", f"{key!r} is not hex: {raw[:80]!r}") from None


def _data(obj: dict, key: str, size: int | None = None, cap: int = 1 << 24) -> bytes:
    raw = obj.get(key)
    if raw is None:
        raise BadRecord("missing_field", f"no {key!r}")
    if type(raw) is not str or raw[:2] != "0x" or len(raw) % 2 or len(raw) > 2 + 2 * cap:
        raise BadRecord("bad_field", f"{key!r} is not 0x hex bytes: {str(raw)[:80]!r}")
    try:
        value = bytes.fromhex(raw[2:])
    except ValueError:
        raise BadRecord("bad_field", f"{key!r} is not hex: {raw[:80]!r}") from None
    if size is not None and len(value) != size:
        raise BadRecord("bad_field", f"{key!r} has {len(value)} bytes, expected {size}")
    return value


def _access_list(obj: dict) -> list:
    raw = obj.get("accessList")
    if raw is None:
        return []
    if type(raw) is not list:
        raise BadRecord("bad_field", "'accessList' is not a list")
    out = []
    for entry in raw:
        if type(entry) is not dict or type(entry.get("storageKeys", [])) is not list:
            raise BadRecord("bad_field", "an 'accessList' entry is not {address, storageKeys}")
        keys = [_data({"k": k}, "k", 32) for k in entry.get("storageKeys", [])]
        out.append([_data(entry, "address", 20), keys])
    return out


def _authorizations(obj: dict) -> list:
    raw = obj.get("authorizationList")
    if type(raw) is not list:
        raise BadRecord("bad_field", "'authorizationList' is missing or not a list")
    out = []
    for auth in raw:
        if type(auth) is not dict:
            raise BadRecord("bad_field", "an 'authorizationList' entry is not an object")
        out.append([_qty(auth, "chainId"), _data(auth, "address", 20), _qty(auth, "nonce"),
                    _qty(auth, "yParity"), _qty(auth, "r"), _qty(auth, "s")])
    return out


def parse_pending_tx(obj: Any, received_ns: int, *, verify_hash: bool = True) -> PendingTx:
    """A node's JSON transaction object as a :class:`PendingTx` with ``raw``
    (the signed EIP-2718 encoding) filled. With ``verify_hash`` the hash is
    recomputed from the fields and must equal the node's ``hash``."""
    if type(obj) is not dict:
        raise BadRecord("bad_type", f"a transaction is a JSON object, got {type(obj).__name__}")
    tx_hash = _data(obj, "hash", 32)
    sender = _data(obj, "from", 20)
    to_raw = obj.get("to")
    to = None if to_raw is None else _data(obj, "to", 20)
    tx_type = _qty(obj, "type", 0)
    nonce = _qty(obj, "nonce")
    value = _qty(obj, "value")
    gas = _qty(obj, "gas")
    data = _data(obj, "input")
    r, s = _qty(obj, "r"), _qty(obj, "s")
    to_field = b"" if to is None else to
    if tx_type == 0:
        gas_price = _qty(obj, "gasPrice")
        max_fee = max_prio = gas_price
        fields: list = [nonce, gas_price, gas, to_field, value, data, _qty(obj, "v"), r, s]
        prefix = b""
    elif tx_type in (1, 2, 3, 4):
        chain_id = _qty(obj, "chainId")
        y_parity = _qty(obj, "yParity", -1)
        if y_parity < 0:
            y_parity = _qty(obj, "v")
        access = _access_list(obj)
        if tx_type == 1:
            gas_price = _qty(obj, "gasPrice")
            max_fee = max_prio = gas_price
            fields = [chain_id, nonce, gas_price, gas, to_field, value, data, access, y_parity, r, s]
        else:
            max_fee, max_prio = _qty(obj, "maxFeePerGas"), _qty(obj, "maxPriorityFeePerGas")
            fields = [chain_id, nonce, max_prio, max_fee, gas, to_field, value, data, access]
            if tx_type == 3:
                blobs = obj.get("blobVersionedHashes")
                if type(blobs) is not list:
                    raise BadRecord("bad_field", "'blobVersionedHashes' is missing or not a list")
                fields += [_qty(obj, "maxFeePerBlobGas"), [_data({"h": h}, "h", 32) for h in blobs]]
            elif tx_type == 4:
                fields.append(_authorizations(obj))
            fields += [y_parity, r, s]
        prefix = bytes((tx_type,))
    else:
        raise BadRecord("unknown_type", f"transaction type {tx_type} is not 0..4")
    raw = prefix + rlp_encode(fields)
    if verify_hash and keccak256(raw) != tx_hash:
        raise BadRecord("hash_mismatch", f"the fields of 0x{tx_hash.hex()} hash to 0x{keccak256(raw).hex()}")
    return PendingTx(tx_hash, sender, to, nonce, value, gas, max_fee, max_prio, data, tx_type, received_ns, raw)


def parse_header(obj: Any, received_ns: int) -> BlockHeader:
    """A ``newHeads`` object (or a block from ``eth_getBlockBy*``) as a :class:`BlockHeader`."""
    if type(obj) is not dict:
        raise BadRecord("bad_type", f"a header is a JSON object, got {type(obj).__name__}")
    return BlockHeader(_qty(obj, "number"), _data(obj, "hash", 32), _data(obj, "parentHash", 32),
                       _qty(obj, "timestamp"), _qty(obj, "baseFeePerGas", 0), _qty(obj, "gasLimit"),
                       _qty(obj, "gasUsed"), received_ns)


def parse_sync_log(obj: Any, received_ns: int) -> SyncEvent:
    """A ``Sync`` log object as a :class:`SyncEvent` (its topic and data checked)."""
    if type(obj) is not dict:
        raise BadRecord("bad_type", f"a log is a JSON object, got {type(obj).__name__}")
    topics = obj.get("topics")
    if type(topics) is not list or not topics or type(topics[0]) is not str:
        raise BadRecord("bad_field", "'topics' is missing or not a list of hex strings")
    if _data({"t": topics[0]}, "t", 32) != SYNC_TOPIC:
        raise BadRecord("not_sync", f"topic0 {topics[0][:20]}... is not Sync(uint112,uint112)")
    data = _data(obj, "data", 64)
    removed = obj.get("removed", False)
    if type(removed) is not bool:
        raise BadRecord("bad_field", "'removed' is not a boolean")
    reserve0, reserve1 = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    if reserve0 >> 112 or reserve1 >> 112:
        raise BadRecord("bad_field", "a Sync reserve does not fit uint112")
    return SyncEvent(_data(obj, "address", 20), reserve0, reserve1, _qty(obj, "blockNumber"),
                     _qty(obj, "logIndex"), _data(obj, "transactionHash", 32), removed, received_ns)
