"""Recordings with V3 pool events and raw logs (tallyio.mempool.recording's V3_POOL_EVENT and
RAW_LOG kinds): every field round-trips, old recordings still read, malformed or newer
payloads are refused naming what is wrong, a V3 snapshot (TIOPOOL2) round-trips through a
recording, and a replay through the Pipeline applies the V3 events as the live feed did.
The anvil proof (a recorded live session replays to the same opportunities and pool state)
is tests/test_recording_v3_anvil.py."""
import pytest

from tallyio.amm import reference as R
from tallyio.eth.types import BlockHeader, PendingTx, RawLog, SyncEvent
from tallyio.mempool import NodeSource, Pipeline, PoolTable, V2Pool
from tallyio.mempool.recording import Recorder, ReplaySource, decode, embedded_recording, encode
from tallyio.mempool.records import V3Pool, V3PoolEvent
from tallyio.state.recordlog import RecordReader, RecordType

W, X = b"\xee" * 20, b"\x0a" * 20
PAIR, POOL = b"\x01" * 20, b"\x03" * 20


def v3_events():
    return [V3PoolEvent(POOL, "state", 2**96, 10**18, 0, -600, 600, 7, -1, 11),
            V3PoolEvent(POOL, "swap", 2**96 - 12345, 10**18, -1, block_number=8, log_index=3, received_ns=12),
            V3PoolEvent(POOL, "mint", liquidity=2**127 + 5, tick_lower=-887220, tick_upper=887220, block_number=8,
                        log_index=4, received_ns=13),
            V3PoolEvent(POOL, "burn", liquidity=1, tick_lower=-60, tick_upper=60, block_number=9, log_index=0,
                        received_ns=14)]


def raw_logs():
    return [RawLog(b"\x0b" * 20, (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32), b"\x05" * 97, 2**40, 2**33,
                   b"\x06" * 32, True, 2**63, 1_700_000_000),
            RawLog(b"\x0c" * 20, (), b"", 0, 0, bytes(32)),
            RawLog(b"\x0d" * 20, (b"\xff" * 32,), b"\x00" * 64, 5, 1, b"\x07" * 32, False, 99)]


def test_v3_events_and_raw_logs_round_trip_in_order_beside_the_old_kinds(tmp_path):
    head = BlockHeader(5, b"\x01" * 32, b"\x02" * 32, 9, 7, 30_000_000, 1, 10)
    sync = SyncEvent(PAIR, 10**21, 2 * 10**21, 5, 0, b"\x03" * 32, False, 15)
    tx = PendingTx(b"\x11" * 32, b"\x22" * 20, b"\x33" * 20, 1, 0, 21000, 10**9, 10**9, b"\x38\xed", 2, 16, b"")
    items = [head, *v3_events(), sync, *raw_logs(), tx]
    path = tmp_path / "mixed.tio"
    with Recorder(path) as rec:
        for item in items:
            rec.write(item)
    out = list(ReplaySource(path))
    assert out == items
    assert [type(o) for o in out] == [type(i) for i in items]
    types = [r.type for r in RecordReader(path)]
    assert types.count(RecordType.V3_POOL_EVENT) == 4 and types.count(RecordType.RAW_LOG) == 3
    # each record's timestamp is the item's receive time (what a realtime replay paces by)
    # (0: unknown, stamped when written)
    stamps = [r.ts for r in RecordReader(path)]
    assert [ts for ts, i in zip(stamps, items) if i.received_ns] == [i.received_ns for i in items if i.received_ns]
    assert all(stamps)


def test_a_record_without_a_receive_time_is_stamped_when_written():
    rtype, payload, ts = encode(V3PoolEvent(POOL, "swap", 2**96, 1, 0))
    assert rtype == RecordType.V3_POOL_EVENT and ts > 0
    assert decode(rtype, payload).received_ns == 0          # the item itself keeps what it had


def test_old_recordings_still_read():
    """The embedded recording was written before V3_POOL_EVENT and RAW_LOG existed."""
    path, _ = embedded_recording()
    items = list(ReplaySource(path))
    assert items and all(isinstance(i, (PendingTx, BlockHeader, SyncEvent)) for i in items)
    assert ReplaySource(path).pool_table() is not None


def test_malformed_or_newer_payloads_are_refused_naming_what_is_wrong():
    _, good, _ = encode(v3_events()[1])
    with pytest.raises(ValueError, match="payload version 2"):
        decode(RecordType.V3_POOL_EVENT, b"\x02" + good[1:])
    with pytest.raises(ValueError, match="V3_POOL_EVENT record: .* bytes, expected"):
        decode(RecordType.V3_POOL_EVENT, good[:-1])
    with pytest.raises(ValueError, match="kind 9"):
        decode(RecordType.V3_POOL_EVENT, good[:21] + b"\x09" + good[22:])
    with pytest.raises(ValueError, match="empty payload"):
        decode(RecordType.RAW_LOG, b"")
    _, log, _ = encode(raw_logs()[0])
    with pytest.raises(ValueError, match="RAW_LOG record: .* body bytes"):
        decode(RecordType.RAW_LOG, log[:-1])
    with pytest.raises(ValueError, match="shorter than its"):
        decode(RecordType.RAW_LOG, log[:30])
    with pytest.raises(ValueError, match="payload version 7"):
        decode(RecordType.RAW_LOG, b"\x07" + log[1:])
    assert decode(0x8001, b"anything") is None              # another application's record: skipped


def test_items_that_cannot_be_recorded_say_why():
    with pytest.raises(ValueError, match="kind must be one of"):
        encode(V3PoolEvent(POOL, "flash"))
    with pytest.raises(ValueError, match="V3PoolEvent cannot be recorded"):
        encode(V3PoolEvent(POOL, "swap", tick=2**40))
    with pytest.raises(ValueError, match="topics"):
        encode(RawLog(W, (b"\x01" * 31,), b"", 0, 0, bytes(32)))
    with pytest.raises(ValueError, match="topics"):
        encode(RawLog(W, (b"\x01" * 32,) * 5, b"", 0, 0, bytes(32)))
    with pytest.raises(ValueError, match="address"):
        encode(RawLog(b"\x01" * 19, (), b"", 0, 0, bytes(32)))
    with pytest.raises(ValueError, match="transaction_hash"):
        encode(RawLog(W, (), b"", 0, 0, b""))
    with pytest.raises(TypeError, match="V3PoolEvent and RawLog"):
        encode(("not", "a", "record"))


def test_raw_log_from_and_to_json_rpc():
    obj = {"address": "0x" + "0a" * 20, "topics": ["0x" + "01" * 32, "0x" + "02" * 32], "data": "0x0506",
           "blockNumber": "0x10", "logIndex": "0x2", "transactionHash": "0x" + "ee" * 32, "removed": False,
           "blockHash": "0x" + "99" * 32, "blockTimestamp": "0x65"}
    log = RawLog.from_rpc(obj, received_ns=5)
    assert log == RawLog(b"\x0a" * 20, (b"\x01" * 32, b"\x02" * 32), b"\x05\x06", 16, 2, b"\xee" * 32, False, 5, 0x65)
    back = log.to_rpc()
    assert {k: back[k] for k in back} == {k: obj[k] for k in back}
    pending = RawLog.from_rpc({"address": "0x" + "0a" * 20, "topics": [], "data": "0x", "blockNumber": None,
                               "logIndex": None, "transactionHash": None})
    assert (pending.block_number, pending.log_index, pending.transaction_hash) == (0, 0, bytes(32))
    for bad, what in [([], "JSON object"), ({**obj, "topics": ["0x" + "01" * 31]}, "32 bytes"),
                      ({**obj, "topics": ["0x00" * 32] * 5}, "at most 4"), ({**obj, "address": "0x0a"}, "20 bytes"),
                      ({**obj, "data": "05"}, "'data'"), ({**obj, "data": "0xzz"}, "not hex"),
                      ({**obj, "blockNumber": 16}, "'blockNumber'"), ({**obj, "logIndex": "0xg"}, "hex quantity"),
                      ({**obj, "removed": "no"}, "'removed'")]:
        with pytest.raises(ValueError, match=what):
            RawLog.from_rpc(bad)


def test_a_replayed_raw_log_feeds_the_aave_decoder_as_the_live_log_did():
    """What the PositionBook's apply_log takes: the JSON-RPC shape, rebuilt from the record."""
    from tallyio.eth.aave import AAVE_TOPICS, decode_aave_log

    user, reserve = b"\x0c" * 20, b"\x0d" * 20
    topics = [AAVE_TOPICS["ReserveUsedAsCollateralEnabled"], "0x" + (bytes(12) + reserve).hex(),
              "0x" + (bytes(12) + user).hex()]
    live = {"address": "0x" + "0a" * 20, "topics": topics,
            "data": "0x", "blockNumber": "0x7", "logIndex": "0x1", "transactionHash": "0x" + "ab" * 32,
            "removed": False}
    _, payload, _ = encode(RawLog.from_rpc(live, received_ns=3))
    replayed = decode(RecordType.RAW_LOG, payload)
    assert decode_aave_log(replayed.to_rpc(), received_ns=3) == decode_aave_log(live, received_ns=3)


def v3_table():
    pools = [V2Pool(PAIR, X, W, 10**21, 10**21, 30, 0),
             V3Pool(POOL, X, W, 3000, 60, 2**96, 10**21, 0, -600, 600, 0)]
    return PoolTable(pools, weth=W)


def test_a_v3_pool_table_snapshot_round_trips_through_a_recording(tmp_path):
    table = v3_table()
    table.apply_v3_event(V3PoolEvent(POOL, "swap", 2**96 + 2**80, 10**21, 0, block_number=3))
    lost = v3_table()
    # a Swap log past the known range: the range is lost until a resync (the flag must survive too)
    lost.apply_v3_event(V3PoolEvent(POOL, "swap", R.sqrt_ratio_at_tick(700), 10**21, 700, block_number=3))
    assert not lost.v3_in_range(POOL)
    for t in (table, lost):
        path = tmp_path / f"snap{id(t)}.tio"
        with Recorder(path) as rec:
            rec.snapshot(t, ts=1)
        back = ReplaySource(path).pool_table()
        assert back.to_bytes() == t.to_bytes() and back.to_bytes()[:8] == b"TIOPOOL2"
        assert back.pools() == t.pools() and back.v3_in_range(POOL) == t.v3_in_range(POOL)


def test_a_replay_applies_the_v3_events_as_the_live_feed_did(tmp_path):
    events = [V3PoolEvent(POOL, "swap", R.sqrt_ratio_at_tick(-5) + 7, 10**21, -5, block_number=4, log_index=0),
              V3PoolEvent(POOL, "mint", liquidity=10**20, tick_lower=-60, tick_upper=60, block_number=4, log_index=1),
              V3PoolEvent(POOL, "burn", liquidity=10**19, tick_lower=-120, tick_upper=120, block_number=5)]
    head = BlockHeader(4, b"\x01" * 32, b"\x02" * 32, 9, 7, 30_000_000, 1, 10)
    live = v3_table()
    path = tmp_path / "v3.tio"
    with Recorder(path) as rec, Pipeline(live) as pipe:
        rec.snapshot(live, ts=0)
        for item in [head, *events, *raw_logs()]:
            rec.write(item)
            pipe.feed(item)
        assert pipe.stats()["pipeline"]["v3_events"] == 3
    replay = ReplaySource(path)
    again = replay.pool_table()
    with Pipeline(again) as pipe:
        assert pipe.run(replay) == 1 + 3 + 3
        assert pipe.stats()["pipeline"]["v3_events"] == 3
    assert replay.end_reason == "end of log"
    assert again.pools() == live.pools() and again.pools() != v3_table().pools()
    assert again.pool(1)[6] == 10**21 + 10**20 - 10**19     # the mint and burn around the tick both applied


def test_node_source_checks_its_raw_log_filters():
    with pytest.raises(ValueError, match=r"logs\[0\] must be a dict"):
        NodeSource("ws://127.0.0.1:1", print, logs=[{"from": "x"}])
    with pytest.raises(ValueError, match=r"logs\[1\]"):
        NodeSource("ws://127.0.0.1:1", print, logs=[{"address": "0x" + "00" * 20}, "topics"])
    with pytest.raises(ValueError, match="ws:// or wss:// only"):
        NodeSource("http://127.0.0.1:1", print, logs=[{"address": "0x" + "00" * 20}])
    source = NodeSource("ws://127.0.0.1:1", print, logs=[{"topics": ["0x" + "00" * 32]}])
    assert source.stats()["raw_logs"] == 0
    source.close()


def test_node_source_delivers_a_raw_log_notification_and_counts_a_malformed_one():
    """The watcher's dispatch of a "logs" notification for a raw filter (no node needed:
    the notification as the websocket reader hands it over; the anvil test runs it live)."""
    seen = []
    source = NodeSource("ws://127.0.0.1:1", seen.append, logs=[{"topics": ["0x" + "01" * 32]}])
    good = {"address": "0x" + "0a" * 20, "topics": ["0x" + "01" * 32], "data": "0x", "blockNumber": "0x3",
            "logIndex": "0x0", "transactionHash": "0x" + "ee" * 32, "removed": False}
    source._notification("rawlogs", {"address": "0x0a"}, 5)
    source._notification("rawlogs", good, 6)
    stats = source.stats()
    assert seen == [RawLog.from_rpc(good, received_ns=6)]
    assert stats["raw_logs"] == 1 and stats["skipped_by_reason"] == {"bad_field": 1}
    source.close()
