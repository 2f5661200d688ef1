"""Recordings of what a source saw, and their replay.

Owns: the payload encoding of PENDING_TX, BLOCK_HEADER, SYNC_EVENT and POOL_SNAPSHOT
records; ``Recorder`` (tees any source into a recording) and ``ReplaySource`` (reads one
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
    POOL_SNAPSHOT  PoolTable.to_bytes()

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

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool._pools import PoolTable
from tallyio.state.recordlog import RecordReader, RecordType, RecordWriter

__all__ = ["Recorder", "ReplaySource", "encode", "decode", "embedded_recording"]

Item = Union[PendingTx, BlockHeader, SyncEvent]

_TX_HEAD = struct.Struct("<32s20s20sBBQQ32s32s32sQII")
_BLOCK = struct.Struct("<Q32s32sQ32sQQQ")
_SYNC = struct.Struct("<20s32s32sQi32sBQ")   # log_index signed: a resync is -1


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
    except struct.error as exc:
        raise ValueError(f"{type(item).__name__} cannot be recorded: {exc}") from None
    raise TypeError(f"a recording holds PendingTx, BlockHeader and SyncEvent, got {type(item).__name__}")


def decode(rtype: int, payload: bytes) -> Union[Item, PoolTable, None]:
    """The item a record holds (a PoolTable for a snapshot); None for a record type
    this module does not write (another application's)."""
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
