"""Recordings of what a source saw, and their replay.

Owns: the payload encoding of PENDING_TX, BLOCK_HEADER, SYNC_EVENT, POOL_SNAPSHOT,
V3_POOL_EVENT and RAW_LOG records; ``Recorder`` (tees any source into a recording) and ``ReplaySource`` (reads one
back).  Touches: the state branch's record log (``tallyio.state.recordlog``: the
append-only memory-mapped file with a versioned header and per-record checksums; the
recording IS such a log), ``PoolTable`` snapshots.

Each record's timestamp is the item's ``received_ns`` (a pool snapshot: the time it was
taken), so a replay at full speed takes its time from the records, not the wall clock,
and is deterministic; ``realtime=True`` paces the items by those timestamps instead.

Payloads (little-endian integers, 256-bit amounts as 32-byte big-endian words):

    PENDING_TX     hash 32, sender 20, to 20, has_to u8, tx_type u8, nonce u64, gas u64,
                   value 32, max_fee_per_gas 32, max_priority_fee_per_gas 32,
                   received_ns u64, len(input) u32, len(raw) u32, input, raw
    BLOCK_HEADER   number u64, hash 32, parent_hash 32, timestamp u64, base_fee 32,
                   gas_limit u64, gas_used u64, received_ns u64
    SYNC_EVENT     pool 20, reserve0 32, reserve1 32, block_number u64, log_index i32,
                   transaction_hash 32, removed u8, received_ns u64
    POOL_SNAPSHOT  PoolTable.to_bytes() (TIOPOOL1; TIOPOOL2 when the table has V3 pools)
    V3_POOL_EVENT  version u8 (1), pool 20, kind u8 (0 swap, 1 mint, 2 burn, 3 state),
                   sqrt_price_x96 32, liquidity 32, tick i32, tick_lower i32, tick_upper i32,
                   block_number u64, log_index i32, received_ns u64
    RAW_LOG        version u8 (1), address 20, len(topics) u8 (0..4), block_number u64,
                   log_index u64, transaction_hash 32, removed u8, received_ns u64,
                   block_timestamp u64, len(data) u32, topics 32 each, data
    LENDING_SNAPSHOT  an Aave market's book (``PositionBook.snapshot``: starts with its
                   own magic and version, ``TIOLEND1``), written after each resync of the
                   live market so a replay starts from the same state

Versions: the record types are the log format's (``RecordType``: new kinds get new
numbers, never renumbered), so a recording made before V3_POOL_EVENT and RAW_LOG existed
reads as it always did; the two newer kinds start with a payload version byte, and a
version this reader does not know is a ValueError naming it (never a misread).  A
record type this module does not write (another application's) is skipped.

    >>> import os, tempfile
    >>> from tallyio.eth.types import BlockHeader
    >>> path = os.path.join(tempfile.mkdtemp(), "rec.tio")
    >>> head = BlockHeader(number=5, hash=b"\\x01" * 32, parent_hash=b"\\x02" * 32, timestamp=9,
    ...                    base_fee_per_gas=7, gas_limit=30_000_000, gas_used=1, received_ns=100)
    >>> with Recorder(path) as rec:
    ...     rec.write(head)
    >>> list(ReplaySource(path)) == [head]
    True
"""
from __future__ import annotations

import os
import struct
import time
from typing import Iterable, Iterator, Optional, Union

from tallyio.eth.types import BlockHeader, PendingTx, RawLog, SyncEvent
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.lending import LendingSnapshot
from tallyio.mempool.records import V3PoolEvent
from tallyio.state.recordlog import RecordReader, RecordType, RecordWriter

__all__ = ["Recorder", "ReplaySource", "encode", "decode", "embedded_recording"]

Item = Union[PendingTx, BlockHeader, SyncEvent, V3PoolEvent, RawLog, LendingSnapshot]

_TX_HEAD = struct.Struct("<32s20s20sBBQQ32s32s32sQII")
_BLOCK = struct.Struct("<Q32s32sQ32sQQQ")
_SYNC = struct.Struct("<20s32s32sQi32sBQ")   # log_index signed: a resync is -1
_V3_EVENT = struct.Struct("<B20sB32s32siiiQiQ")   # log_index signed: a resync's state is -1
_V3_KINDS = ("swap", "mint", "burn", "state")
_RAW_LOG = struct.Struct("<B20sBQQ32sBQQI")
_PAYLOAD_VERSION = 1                           # of V3_POOL_EVENT and RAW_LOG payloads


def _w(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _i(b: bytes) -> int:
    return int.from_bytes(b, "big")


def encode(item: Item) -> tuple[RecordType, bytes, int]:
    """``(record type, payload, timestamp)`` of a source item; TypeError for anything
    else, ValueError/OverflowError naming a field out of range."""
    try:
        if isinstance(item, PendingTx):
            head = _TX_HEAD.pack(item.hash, item.sender, item.to or b"\x00" * 20,
                                 item.to is not None, item.tx_type, item.nonce, item.gas,
                                 _w(item.value), _w(item.max_fee_per_gas),
                                 _w(item.max_priority_fee_per_gas), item.received_ns,
                                 len(item.input), len(item.raw))
            return RecordType.PENDING_TX, head + bytes(item.input) + bytes(item.raw), item.received_ns
        if isinstance(item, BlockHeader):
            return (RecordType.BLOCK_HEADER,
                    _BLOCK.pack(item.number, item.hash, item.parent_hash, item.timestamp,
                                _w(item.base_fee_per_gas), item.gas_limit, item.gas_used,
                                item.received_ns), item.received_ns)
        if isinstance(item, SyncEvent):
            return (RecordType.SYNC_EVENT,
                    _SYNC.pack(item.pool, _w(item.reserve0), _w(item.reserve1), item.block_number,
                               item.log_index, item.transaction_hash, item.removed,
                               item.received_ns), item.received_ns)
        if isinstance(item, V3PoolEvent):
            return _encode_v3_event(item)
        if isinstance(item, RawLog):
            return _encode_raw_log(item)
        if isinstance(item, LendingSnapshot):
            return RecordType.LENDING_SNAPSHOT, bytes(item.payload), item.received_ns or time.monotonic_ns()
    except struct.error as exc:
        raise ValueError(f"{type(item).__name__} cannot be recorded: {exc}") from None
    raise TypeError("a recording holds PendingTx, BlockHeader, SyncEvent, V3PoolEvent and RawLog records "
                    "and LendingSnapshots, "
                    f"got {type(item).__name__}")


def _encode_v3_event(item: V3PoolEvent) -> tuple[RecordType, bytes, int]:
    if item.kind not in _V3_KINDS:
        raise ValueError(f"V3PoolEvent.kind must be one of {_V3_KINDS}, got {item.kind!r}")
    payload = _V3_EVENT.pack(_PAYLOAD_VERSION, item.pool, _V3_KINDS.index(item.kind), _w(item.sqrt_price_x96),
                             _w(item.liquidity), item.tick, item.tick_lower, item.tick_upper, item.block_number,
                             item.log_index, item.received_ns)
    return RecordType.V3_POOL_EVENT, payload, item.received_ns or time.monotonic_ns()


def _encode_raw_log(item: RawLog) -> tuple[RecordType, bytes, int]:
    topics = tuple(item.topics)
    if len(topics) > 4 or any(not isinstance(t, bytes) or len(t) != 32 for t in topics):
        raise ValueError("RawLog.topics must be at most 4 topics of 32 bytes each")
    if not isinstance(item.address, bytes) or len(item.address) != 20:
        raise ValueError("RawLog.address must be 20 bytes")
    if not isinstance(item.transaction_hash, bytes) or len(item.transaction_hash) != 32:
        raise ValueError("RawLog.transaction_hash must be 32 bytes")
    head = _RAW_LOG.pack(_PAYLOAD_VERSION, item.address, len(topics), item.block_number, item.log_index,
                         item.transaction_hash, bool(item.removed), item.received_ns, item.block_timestamp,
                         len(item.data))
    return RecordType.RAW_LOG, head + b"".join(topics) + bytes(item.data), item.received_ns or time.monotonic_ns()


def _payload_version(name: str, payload: bytes) -> None:
    if not payload:
        raise ValueError(f"{name} record: empty payload")
    if payload[0] != _PAYLOAD_VERSION:
        raise ValueError(f"{name} record: payload version {payload[0]}, this reader knows {_PAYLOAD_VERSION} "
                         "(a newer tallyio wrote it)")


def _decode_v3_event(payload: bytes) -> V3PoolEvent:
    _payload_version("V3_POOL_EVENT", payload)
    if len(payload) != _V3_EVENT.size:
        raise ValueError(f"V3_POOL_EVENT record: {len(payload)} bytes, expected {_V3_EVENT.size}")
    (_, pool, kind, price, liquidity, tick, lower, upper, block, log_index,
     received) = _V3_EVENT.unpack(payload)
    if kind >= len(_V3_KINDS):
        raise ValueError(f"V3_POOL_EVENT record: kind {kind} is not one of 0..{len(_V3_KINDS) - 1}")
    return V3PoolEvent(pool, _V3_KINDS[kind], _i(price), _i(liquidity), tick, lower, upper, block, log_index,
                       received)


def _decode_raw_log(payload: bytes) -> RawLog:
    _payload_version("RAW_LOG", payload)
    if len(payload) < _RAW_LOG.size:
        raise ValueError(f"RAW_LOG record: {len(payload)} bytes, shorter than its {_RAW_LOG.size}-byte head")
    (_, address, n_topics, block, log_index, tx_hash, removed, received, block_ts,
     n_data) = _RAW_LOG.unpack_from(payload)
    body = payload[_RAW_LOG.size:]
    if n_topics > 4 or len(body) != 32 * n_topics + n_data:
        raise ValueError(f"RAW_LOG record: {len(body)} body bytes, header says {n_topics} topics and "
                         f"{n_data} data bytes")
    topics = tuple(body[32 * k:32 * k + 32] for k in range(n_topics))
    return RawLog(address, topics, body[32 * n_topics:], block, log_index, tx_hash, bool(removed), received,
                  block_ts)


def decode(rtype: int, payload: bytes) -> Union[Item, PoolTable, None]:
    """The item a record holds (a PoolTable for a snapshot); None for a record type
    this module does not write (another application's); ValueError naming what is wrong
    in a malformed payload."""
    payload = bytes(payload)
    if rtype == RecordType.PENDING_TX:
        (h, sender, to, has_to, tx_type, nonce, gas, value, fee, prio, received, n_in,
         n_raw) = _TX_HEAD.unpack_from(payload)
        body = payload[_TX_HEAD.size:]
        if len(body) != n_in + n_raw:
            raise ValueError(f"PENDING_TX record: {len(body)} body bytes, header says {n_in + n_raw}")
        return PendingTx(h, sender, to if has_to else None, nonce, _i(value), gas, _i(fee), _i(prio),
                         body[:n_in], tx_type, received, body[n_in:])
    if rtype == RecordType.BLOCK_HEADER:
        number, h, parent, ts, base_fee, gas_limit, gas_used, received = _BLOCK.unpack(payload)
        return BlockHeader(number, h, parent, ts, _i(base_fee), gas_limit, gas_used, received)
    if rtype == RecordType.SYNC_EVENT:
        pool, r0, r1, block, log_index, tx_hash, removed, received = _SYNC.unpack(payload)
        return SyncEvent(pool, _i(r0), _i(r1), block, log_index, tx_hash, bool(removed), received)
    if rtype == RecordType.POOL_SNAPSHOT:
        return PoolTable.from_bytes(payload)
    if rtype == RecordType.V3_POOL_EVENT:
        return _decode_v3_event(payload)
    if rtype == RecordType.RAW_LOG:
        return _decode_raw_log(payload)
    if rtype == RecordType.LENDING_SNAPSHOT:
        if payload[:8] != b"TIOLEND1":
            raise ValueError(f"LENDING_SNAPSHOT record: starts with {payload[:8]!r}, this reader knows b'TIOLEND1'")
        return LendingSnapshot(payload)
    return None


class Recorder:
    """Writes a recording: ``write(item)`` for each source item, ``snapshot(table)``
    for the pool table; ``tee(source)`` yields a source's items while recording them.
    As a sink for a push source (``NodeSource(url, recorder.write)``) it records
    from that source's thread; ``write`` is not meant for two threads at once."""

    def __init__(self, path: Union[str, os.PathLike], *, flush_policy: str = "none",
                 chunk_size: int = 1 << 20) -> None:
        self.path = path
        self._log = RecordWriter(path, flush_policy=flush_policy, chunk_size=chunk_size)
        self.records = 0

    def write(self, item: Item) -> None:
        rtype, payload, ts = encode(item)
        self._log.append(rtype, payload, ts=ts)
        self.records += 1

    __call__ = write

    def snapshot(self, table: PoolTable, ts: Optional[int] = None) -> None:
        """Record the pool table as it is now (a replay starts from the first one)."""
        self._log.append(RecordType.POOL_SNAPSHOT, table.to_bytes(),
                         ts=time.monotonic_ns() if ts is None else ts)
        self.records += 1

    def tee(self, source: Iterable[Item]) -> Iterator[Item]:
        for item in source:
            self.write(item)
            yield item

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReplaySource:
    """The items of a recording in order (pool snapshots are not yielded: see
    :meth:`pool_table`).  Deterministic: with ``realtime=False`` items come as fast as
    they are read; with ``realtime=True`` each waits until its recorded time, relative
    to the first item, has passed on the monotonic clock."""

    def __init__(self, path: Union[str, os.PathLike], *, realtime: bool = False) -> None:
        if not isinstance(realtime, bool):
            raise TypeError(f"realtime must be a bool, got {type(realtime).__name__}")
        self.path = path
        self.realtime = realtime
        RecordReader(path)                 # FileNotFoundError now, not at iteration
        self.end_reason = "not read yet"

    def pool_table(self) -> Optional[PoolTable]:
        """The recording's first pool-table snapshot, or None."""
        for record in RecordReader(self.path):
            if record.type == RecordType.POOL_SNAPSHOT:
                return PoolTable.from_bytes(record.payload)
        return None

    def __iter__(self) -> Iterator[Item]:
        # the records walked by the native cursor (tallyio.state._recordlog) and pending
        # transactions built in C; every other kind goes through decode() above
        from tallyio.mempool._feeder import replay_items

        end: dict = {}
        start_rec = start_wall = None
        for ts, item in replay_items(self.path, end):
            if self.realtime:
                if start_rec is None:
                    start_rec, start_wall = ts, time.monotonic_ns()
                wait = (ts - start_rec) - (time.monotonic_ns() - start_wall)
                if wait > 0:
                    time.sleep(wait / 1e9)
            yield item
        self.end_reason = end["end"]


def embedded_recording() -> tuple[str, dict]:
    """The recording that ships inside the package (``tallyio/data/replay.tio``, made by
    ``scripts/make_recording.py`` against anvil with the published Uniswap contracts) and
    its golden file: ``routers_v2`` (``[address, exchange]``), ``weth``, and the
    ``opportunities`` a brute force found in it.

    >>> path, golden = embedded_recording()
    >>> path.endswith("replay.tio"), len(golden["routers_v2"])
    (True, 2)
    """
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    golden = json.loads((data / "replay_golden.json").read_text())
    return str(data / "replay.tio"), golden
