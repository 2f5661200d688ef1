"""Turn what a node sends (JSON transaction, header and log objects) into the
records of :mod:`tallyio.eth.types`, treating every field as untrusted input.

Owns: field validation, the typed transaction envelopes (legacy, 1, 2, 3, 4:
which fields, in which order, RLP-encoded by the compiled ``_wsenc``) and the hash
check (Keccak-256 of that encoding must equal the ``hash`` the node claims), and
the ``Sync`` topic. Raises only
:class:`BadRecord`, whose ``reason`` is the counter name the node source bumps.

    >>> keccak256(b"").hex()[:16]
    'c5d2460186f7233c'
    >>> rlp_encode([b"cat", b"dog"]).hex()
    'c88363617483646f67'
    >>> SYNC_TOPIC.hex()[:8]
    '1c411e9a'
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint64_t

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent

__all__ = ["BadRecord", "keccak256", "rlp_encode", "parse_pending_tx", "parse_header", "parse_sync_log",
           "SYNC_TOPIC"]

# compiled (tallyio/mempool/_wsenc.pyx): the hash check runs both for every pending transaction
from tallyio.mempool._wsenc import keccak256, rlp_encode

SYNC_TOPIC = bytes.fromhex("1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1")
"""topic0 of ``Sync(uint112 reserve0, uint112 reserve1)``: keccak of the signature."""


class BadRecord(ValueError):
    """A node object failed validation; ``reason`` names the stats counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# ---- field readers: each raises BadRecord naming the field ----
# Hex text is checked character by character in C (int() and bytes.fromhex() would
# let underscores and whitespace through) and converted in the same pass.

cdef inline int _nibble(char c) noexcept nogil:
    if b"0" <= c <= b"9":
        return c - 48
    if b"a" <= c <= b"f":
        return c - 87
    if b"A" <= c <= b"F":
        return c - 55
    return -1


cdef const char* _hex_body(object raw, str key, Py_ssize_t* length) except NULL:
    """The text after ``0x`` of a JSON string field, and its length."""
    cdef Py_ssize_t n
    cdef const char* p
    if type(raw) is not str:
        raise BadRecord("bad_field", f"{key!r} is not a 0x hex string: {str(raw)[:80]!r}")
    p = PyUnicode_AsUTF8AndSize(raw, &n)
    if n < 2 or p[0] != b"0" or (p[1] != b"x" and p[1] != b"X"):
        raise BadRecord("bad_field", f"{key!r} does not start with 0x: {raw[:80]!r}")
    length[0] = n - 2
    return p + 2


cdef object _qty(dict obj, str key, object default=None):
    cdef object raw = obj.get(key)
    cdef Py_ssize_t n, i
    cdef const char* p
    cdef uint64_t v = 0
    cdef int d
    if raw is None:
        if default is not None:
            return default
        raise BadRecord("missing_field", f"no {key!r}")
    p = _hex_body(raw, key, &n)
    if n < 1 or n > 64:
        raise BadRecord("bad_field", f"{key!r} is not a 0x quantity of 1..64 hex digits: {raw[:80]!r}")
    for i in range(n):
        d = _nibble(p[i])
        if d < 0:
            raise BadRecord("bad_field", f"{key!r} is not hex: {raw[:80]!r}")
        v = (v << 4) | <uint64_t>d
    if n <= 16:
        return v
    return int(raw, 16)  # wider than 64 bits: every digit was checked above


cdef bytes _data(dict obj, str key, Py_ssize_t size=-1, Py_ssize_t cap=1 << 24):
    cdef object raw = obj.get(key)
    cdef Py_ssize_t n, i, m
    cdef const char* p
    cdef int hi, lo
    cdef bytes value
    cdef char* out
    if raw is None:
        raise BadRecord("missing_field", f"no {key!r}")
    p = _hex_body(raw, key, &n)
    if n % 2 or n > 2 * cap:
        raise BadRecord("bad_field", f"{key!r} is not 0x + an even number of hex digits: {raw[:80]!r}")
    m = n // 2
    if size >= 0 and m != size:
        raise BadRecord("bad_field", f"{key!r} has {m} bytes, expected {size}")
    value = PyBytes_FromStringAndSize(NULL, m)
    out = PyBytes_AS_STRING(value)
    for i in range(m):
        hi = _nibble(p[2 * i])
        lo = _nibble(p[2 * i + 1])
        if hi < 0 or lo < 0:
            raise BadRecord("bad_field", f"{key!r} is not hex: {raw[:80]!r}")
        out[i] = <char>((hi << 4) | lo)
    return value


cdef list _access_list(dict obj):
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


cdef list _authorizations(dict obj):
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


def parse_pending_tx(obj, received_ns, *, verify_hash=True):
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
        fields = [nonce, gas_price, gas, to_field, value, data, _qty(obj, "v"), r, s]
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


def parse_header(obj, received_ns):
    """A ``newHeads`` object (or a block from ``eth_getBlockBy*``) as a :class:`BlockHeader`."""
    if type(obj) is not dict:
        raise BadRecord("bad_type", f"a header is a JSON object, got {type(obj).__name__}")
    return BlockHeader(_qty(obj, "number"), _data(obj, "hash", 32), _data(obj, "parentHash", 32),
                       _qty(obj, "timestamp"), _qty(obj, "baseFeePerGas", 0), _qty(obj, "gasLimit"),
                       _qty(obj, "gasUsed"), received_ns)


def parse_sync_log(obj, received_ns):
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
