"""V3 pool logs and resync for the node source: a pool's ``Swap`` / ``Mint`` / ``Burn``
log object (as ``eth_subscribe("logs")`` or ``eth_getFilterChanges`` sends it) as a
:class:`~tallyio.mempool.records.V3PoolEvent`, and a pool's whole state read back by
``eth_call`` after a (re)connection (``slot0``, ``liquidity``, ``tickSpacing`` and the
``tickBitmap`` words around the tick, for the initialized tick range).

Owns only this parsing and the resync's reads; everything a node sends is external
input: a malformed log raises :class:`BadRecord` with a reason (the source counts and
skips it).

    >>> event = parse_v3_log({"address": "0x" + "11" * 20, "topics": ["0x" + MINT_TOPIC.hex(),
    ...     "0x" + "00" * 32, "0x" + (-600 % 2**256).to_bytes(32, "big").hex(),
    ...     "0x" + (600).to_bytes(32, "big").hex()], "data": "0x" + "00" * 32 + (10**18).to_bytes(32, "big").hex()
    ...     + "00" * 64, "blockNumber": "0x5", "logIndex": "0x0"})
    >>> event.kind, event.tick_lower, event.tick_upper, event.liquidity
    ('mint', -600, 600, 1000000000000000000)
    >>> initialized_range(0, 60, {-1: 1 << 246, 0: 1 << 10})     # ticks -600 and 600 initialized
    (-600, 600)
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from tallyio.mempool._wsenc import keccak256
from tallyio.mempool._wstx import BadRecord
from tallyio.mempool.records import V3PoolEvent

__all__ = ["SWAP_TOPIC", "MINT_TOPIC", "BURN_TOPIC", "V3_TOPICS", "parse_v3_log", "initialized_range",
           "read_v3_state", "MAX_WORDS"]

SWAP_TOPIC = keccak256(b"Swap(address,address,int256,int256,uint160,uint128,int24)")
MINT_TOPIC = keccak256(b"Mint(address,address,int24,int24,uint128,uint256,uint256)")
BURN_TOPIC = keccak256(b"Burn(address,int24,int24,uint128,uint256,uint256)")
V3_TOPICS = (SWAP_TOPIC, MINT_TOPIC, BURN_TOPIC)
"""topic0 of the V3 pool logs the table follows."""

MAX_WORDS = 64
"""tickBitmap words read each way from the tick in a resync; past them, the word's edge is
taken as the range's bound (narrower than the truth: safe, a swap reaching it is skipped)."""

_MIN_TICK, _MAX_TICK = -887272, 887272


def _hex(obj: Mapping, key: str) -> bytes:
    value = obj.get(key)
    if type(value) is not str or value[:2] != "0x":
        raise BadRecord("bad_field", f"log '{key}' is not a 0x hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise BadRecord("bad_field", f"log '{key}' is not hex") from None


def _qty(obj: Mapping, key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0                                   # a pending log has no block yet
    if type(value) is not str or value[:2] != "0x":
        raise BadRecord("bad_field", f"log '{key}' is not a 0x quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise BadRecord("bad_field", f"log '{key}' is not a hex quantity") from None


def _word(data: bytes, k: int) -> int:
    return int.from_bytes(data[32 * k:32 * k + 32], "big")


def _int24(word: int, what: str) -> int:
    value = word - (1 << 256) if word >> 255 else word
    if not _MIN_TICK <= value <= _MAX_TICK:
        raise BadRecord("bad_field", f"{what} {value} is not a tick")
    return value


def parse_v3_log(obj: Any, received_ns: int = 0) -> V3PoolEvent:
    """A V3 pool's Swap, Mint or Burn log object as a V3PoolEvent (received at ``received_ns``);
    BadRecord naming what is wrong."""
    if type(obj) is not dict:
        raise BadRecord("bad_type", f"a log is a JSON object, got {type(obj).__name__}")
    topics = obj.get("topics")
    if type(topics) is not list or not topics or any(type(t) is not str for t in topics):
        raise BadRecord("bad_field", "'topics' is missing or not a list of hex strings")
    topic0 = _hex({"t": topics[0]}, "t")
    pool = _hex(obj, "address")
    if len(pool) != 20:
        raise BadRecord("bad_field", "log 'address' is not 20 bytes")
    data = _hex(obj, "data")
    block, index = _qty(obj, "blockNumber"), _qty(obj, "logIndex")
    if topic0 == SWAP_TOPIC:
        if len(data) != 5 * 32:
            raise BadRecord("bad_field", f"a V3 Swap log carries 160 data bytes, got {len(data)}")
        price, liquidity = _word(data, 2), _word(data, 3)
        if price >> 160 or liquidity >> 128:
            raise BadRecord("bad_field", "a V3 Swap log's price or liquidity does not fit its type")
        return V3PoolEvent(pool, "swap", price, liquidity, _int24(_word(data, 4), "Swap tick"),
                           block_number=block, log_index=index, received_ns=received_ns)
    if topic0 in (MINT_TOPIC, BURN_TOPIC):
        if len(topics) != 4:
            raise BadRecord("bad_field", f"a V3 Mint/Burn log has 4 topics, got {len(topics)}")
        lower = _int24(int.from_bytes(_hex({"t": topics[2]}, "t"), "big"), "tickLower")
        upper = _int24(int.from_bytes(_hex({"t": topics[3]}, "t"), "big"), "tickUpper")
        mint = topic0 == MINT_TOPIC
        if len(data) != (4 if mint else 3) * 32:
            raise BadRecord("bad_field", f"a V3 {'Mint' if mint else 'Burn'} log's data is {len(data)} bytes")
        amount = _word(data, 1 if mint else 0)
        if amount >> 128 or lower >= upper:
            raise BadRecord("bad_field", "a V3 Mint/Burn log's amount or tick range is invalid")
        return V3PoolEvent(pool, "mint" if mint else "burn", liquidity=amount, tick_lower=lower, tick_upper=upper,
                           block_number=block, log_index=index, received_ns=received_ns)
    raise BadRecord("not_v3", f"topic0 {topics[0][:20]}... is not a V3 Swap, Mint or Burn")


def initialized_range(tick: int, spacing: int, words: Mapping[int, int]) -> tuple[int, int]:
    """``(tick_lower, tick_upper)``: the greatest initialized tick <= ``tick`` and the least one
    above it, from ``tickBitmap`` words (word position -> 256-bit word) around the tick.  Where
    the words run out without one, the edge of the last word read is the bound (safe: narrower)."""
    compressed = tick // spacing
    word, bit = compressed >> 8, compressed & 255
    lower = upper = None
    w = word
    while w in words:
        masked = words[w] & ((1 << (bit + 1)) - 1 if w == word else (1 << 256) - 1)
        if masked:
            lower = ((w << 8) + masked.bit_length() - 1) * spacing
            break
        w -= 1
    if lower is None:
        lower = ((w + 1) << 8) * spacing
    up_word, up_bit = (compressed + 1) >> 8, (compressed + 1) & 255
    w = up_word
    while w in words:
        masked = words[w] & ~((1 << up_bit) - 1 if w == up_word else 0) & ((1 << 256) - 1)
        if masked:
            upper = ((w << 8) + (masked & -masked).bit_length() - 1) * spacing
            break
        w += 1
    if upper is None:
        upper = (w << 8) * spacing - spacing
    lower, upper = max(lower, _MIN_TICK), min(upper, _MAX_TICK)
    if upper <= tick:                               # no word read above: the next compressed tick
        upper = (compressed + 1) * spacing
    if lower > tick:
        lower = compressed * spacing
    return lower, upper


def _selector(signature: str) -> str:
    return "0x" + keccak256(signature.encode())[:4].hex()


_SLOT0 = _selector("slot0()")
_LIQUIDITY = _selector("liquidity()")
_SPACING = _selector("tickSpacing()")
_BITMAP = _selector("tickBitmap(int16)")


def read_v3_state(call: Callable[[str, list], Any], pool: bytes, block: str, *,
                  max_words: int = MAX_WORDS) -> V3PoolEvent:
    """A V3 pool's state at ``block`` by ``eth_call`` (slot0, liquidity, tickSpacing and the
    tickBitmap words from the tick's outwards until an initialized tick each way, at most
    ``max_words`` each way) as a ``"state"`` V3PoolEvent; BadRecord when an answer is malformed."""
    to = "0x" + pool.hex()

    def eth_call(data: str) -> bytes:
        out = call("eth_call", [{"to": to, "data": data}, block])
        if type(out) is not str or out[:2] != "0x":
            raise BadRecord("bad_v3_state", f"eth_call to 0x{pool.hex()} returned {str(out)[:80]!r}")
        try:
            return bytes.fromhex(out[2:])
        except ValueError:
            raise BadRecord("bad_v3_state", f"eth_call to 0x{pool.hex()} returned non-hex") from None

    slot0 = eth_call(_SLOT0)
    liquidity = eth_call(_LIQUIDITY)
    spacing_raw = eth_call(_SPACING)
    if len(slot0) != 7 * 32 or len(liquidity) != 32 or len(spacing_raw) != 32:
        raise BadRecord("bad_v3_state", f"0x{pool.hex()} is not a V3 pool (slot0/liquidity/tickSpacing sizes)")
    price, tick = _word(slot0, 0), _int24(_word(slot0, 1), "slot0 tick")
    spacing = _int24(_word(spacing_raw, 0), "tickSpacing")
    if spacing <= 0 or price >> 160 or _word(liquidity, 0) >> 128:
        raise BadRecord("bad_v3_state", f"0x{pool.hex()}: slot0 or tickSpacing out of range")
    compressed = tick // spacing
    words: dict[int, int] = {}

    def read_word(w: int) -> int:
        if w not in words:
            arg = (w % (1 << 256)).to_bytes(32, "big").hex()
            words[w] = _word(eth_call(_BITMAP + arg), 0)
        return words[w]

    w = compressed >> 8
    bit = compressed & 255
    for k in range(max_words):                       # downwards until a bit at or below the tick
        word = read_word(w - k)
        if word & ((1 << (bit + 1)) - 1 if k == 0 else (1 << 256) - 1):
            break
    w, bit = (compressed + 1) >> 8, (compressed + 1) & 255
    for k in range(max_words):                       # upwards until a bit above the tick
        word = read_word(w + k)
        if word >> (bit if k == 0 else 0):
            break
    lower, upper = initialized_range(tick, spacing, words)
    number = int(block, 16) if block[:2] == "0x" else 0
    return V3PoolEvent(pool, "state", price, _word(liquidity, 0), tick, lower, upper, number, -1)
