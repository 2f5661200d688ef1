"""The native replay feeder (tallyio/mempool/_feeder.pyx) and the record log's native
cursor (tallyio/state/_recordlog.pyx): the cursor reads exactly what RecordReader reads
(and stops where it stops); the feeder gives the same opportunities as run(ReplaySource)
and as the analyzer transaction by transaction, through its C path and through the
Python fallback; lockstep pauses, block hand-off, resume skips, backpressure, realtime
pacing and stop() behave as documented; the counters are conserved."""
import hashlib
import os
import random
import threading
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scaled
from test_mempool_pipeline import ROUTER_TARGETS, key, reference, scenario
from tallyio.errors import ForeignFileError
from tallyio.eth.types import BlockHeader, PendingTx
from tallyio.mempool._feeder import ReplayFeeder
from tallyio.mempool._pipeline import Pipeline
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.config import FilterConfig
from tallyio.mempool.recording import ReplaySource, embedded_recording, encode
from tallyio.mempool.synthetic import ROUTERS, WETH, make_market, swap_tx
from tallyio.state._recordlog import crc32, walk
from tallyio.state.recordlog import HEADER_SIZE, RecordType, RecordWriter, _check_header, _scan

NO_NONCES = FilterConfig(check_nonces=False)


def record(path, pools, items, **writer):
    """A recording of a pool snapshot then `items` (RecordWriter options: segments)."""
    with RecordWriter(path, **writer) as w:
        w.append(RecordType.POOL_SNAPSHOT, PoolTable(pools, weth=WETH).to_bytes(), ts=0)
        for item in items:
            rtype, payload, ts = encode(item)
            w.append(rtype, payload, ts=ts)


def digest(ops):
    """A canonical digest of a replay's opportunities (what they are, not when found)."""
    h = hashlib.sha256()
    for k in sorted(map(key, ops)):
        h.update(repr(k).encode())
    return h.hexdigest()


def replay(path, pools=None, how="feeder", routers=ROUTER_TARGETS, analyzer_config=None, **kw):
    table = ReplaySource(path).pool_table() if pools is None else PoolTable(pools, weth=WETH)
    with Pipeline(table, routers_v2=routers, filter_config=NO_NONCES, opportunity_capacity=1 << 16,
                  ring_capacity=kw.pop("ring_capacity", 4096), analyzer_config=analyzer_config) as pipe:
        info = None
        if how == "feeder":
            with ReplayFeeder(pipe, path, **kw) as feeder:
                info = feeder.run()
        else:
            pipe.run(ReplaySource(path))
        ops = pipe.opportunities.get_many(1 << 20)
        stats = pipe.stats()
    return ops, stats, info


# ---- the record log's native cursor ------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs(data, start):
    assert crc32(data, start) == zlib.crc32(data, start)


def test_the_cursor_reads_what_recordreader_reads_and_stops_where_it_stops(tmp_path, seed):
    path, _ = embedded_recording()
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\x00"))
    rng = random.Random(seed)
    cases = [data] + [data[:rng.randrange(HEADER_SIZE, end)] for _ in range(6)]
    for _ in range(12):
        bad = bytearray(data)
        bad[rng.randrange(HEADER_SIZE, end)] ^= 1 << rng.randrange(8)
        cases.append(bytes(bad))
    for case in cases:
        first = _check_header(case[:HEADER_SIZE], "case")
        expected = [(off, t, fl, n, seq, ts) for off, t, fl, n, seq, ts, _ in _scan(case, len(case), first)]
        records, end_offset, reason = walk(case, first)
        assert records == expected
        last = expected[-1][0] + ((24 + expected[-1][3] + 4 + 7) & ~7) if expected else HEADER_SIZE
        assert end_offset == last
        assert reason == ("end" if len(case) - end_offset < 28 else "invalid")
    assert len(walk(data, 1)[0]) == 211              # the snapshot and 210 items
    with pytest.raises(ValueError, match="offset 64 is past the 10 bytes"):
        walk(b"\x00" * 10, 1)


# ---- the same opportunities as the Python path ----------------------------------------

@pytest.mark.parametrize("native_kinds", [(1, 2, 3), (1,), (2, 3)])
def test_feeder_equals_the_python_replay_and_the_reference(tmp_path, seed, native_kinds):
    pools, items = scenario(seed, n_tx=240, blocks=4)
    path = tmp_path / "r.tio"
    record(path, pools, items)
    mine, s, info = replay(path, pools, native_kinds=native_kinds)
    theirs, s_py, _ = replay(path, pools, how="python")
    assert digest(mine) == digest(theirs) and sorted(map(key, mine)) == reference(pools, items)
    assert len(mine) > 0 and s["opportunities"]["dropped"] == 0
    assert info["end"] == "end of log" and info["records"] == len(items) + 1 and info["items"] == len(items)
    n_pending = sum(isinstance(i, PendingTx) for i in items)
    assert info["pending"] == n_pending
    native_items = sum(1 for i in items if encode(i)[0] in native_kinds)
    assert info["fallback"] == len(items) - native_items
    for name in ("filter", "decode", "analyzer", "arbitrage"):
        assert s[name] == s_py[name], name
    r = s["ring"]
    assert r["received"] == r["processed"] + r["dropped"] + r["in_flight"] and r["dropped"] == 0
    assert r["received"] == s["filter"]["passed"]
    if 1 in native_kinds:
        assert info["accepted"] == r["received"]
        assert info["kicks"] <= info["accepted"] // 32 + s["pipeline"]["blocks"] + s["pipeline"]["syncs"] + 1


def test_the_embedded_replay_gives_the_same_digest_natively_and_in_python():
    from test_mempool_replay import EXHAUSTIVE

    path, golden = embedded_recording()
    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    mine, s, info = replay(path, routers=routers, analyzer_config=EXHAUSTIVE)
    theirs, _, _ = replay(path, how="python", routers=routers, analyzer_config=EXHAUSTIVE)
    assert digest(mine) == digest(theirs) and len(mine) == len(golden["opportunities"])
    assert info["end"] == "end of log" and s["ring"]["dropped"] == 0


def test_a_recording_of_several_segments_and_foreign_records(tmp_path, seed):
    pools, items = scenario(seed, n_tx=300, blocks=3)
    path = tmp_path / "seg.tio"
    record(path, pools, items, chunk_size=4096, max_file_size=HEADER_SIZE + 8192)
    assert len([n for n in os.listdir(tmp_path) if n.startswith("seg.tio.")]) >= 3
    mine, _, info = replay(path, pools)
    assert sorted(map(key, mine)) == reference(pools, items) and info["items"] == len(items)
    odd = tmp_path / "odd.tio"
    with RecordWriter(odd) as w:
        w.append(0x9000, b"an application's own record", ts=1)
        w.append(RecordType.ENGINE_EVENT, b"x", ts=2)
        for item in items[:40]:
            w.append(*encode(item)[:2], ts=encode(item)[2])
    _, _, info = replay(odd, pools)
    assert info["records"] == 42 and info["items"] == 40 and info["fallback"] == 0


# ---- the engine's hooks: lockstep, blocks, resume, the dry run's lookup ------------------

def test_lockstep_pauses_blocks_and_resume_skips(tmp_path, seed):
    pools, items = scenario(seed, n_tx=120, blocks=3)
    path = tmp_path / "l.tio"
    record(path, pools, items)
    # where the engine's Python loop waited in lockstep: before a non-pending item that
    # follows pending ones fed (a resumed run's skipped ones do not count)
    skip = 20
    expected, since = [], False
    for index, item in enumerate(items, 1):
        if isinstance(item, PendingTx):
            since = since or index > skip
        elif since:
            expected.append(index - 1)
            since = False
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES,
                  opportunity_capacity=1 << 16) as pipe:
        positions, blocks = [], []

        def on_barrier(position):
            positions.append(position)
            s = pipe.stats()["ring"]        # every transaction before the barrier is queued or done
            assert s["received"] == s["processed"] + s["dropped"] + s["in_flight"]
            return True

        with ReplayFeeder(pipe, path, skip_pending=skip) as feeder:
            info = feeder.run(on_barrier=on_barrier, on_block=blocks.append)
            fed = [i for n, i in enumerate(items, 1) if isinstance(i, PendingTx) and n > skip
                   and i.to in ROUTERS]
            assert fed and all(feeder.pending_tx(tx.hash) == tx for tx in fed)
            assert feeder.pending_tx(b"\x00" * 32) is None
            with pytest.raises(ValueError, match="32 bytes"):
                feeder.pending_tx(b"\x01")
        assert feeder.pending_tx(fed[0].hash) is None          # closed: unmapped
        assert positions == expected and len(expected) >= 2
        assert blocks == [i for i in items if isinstance(i, BlockHeader)]
        assert info["skipped"] == sum(isinstance(i, PendingTx) for i in items[:skip])
        assert pipe.stats()["ring"]["received"] == len(fed)


def test_a_barrier_that_says_stop_stops(tmp_path, seed):
    pools, items = scenario(seed, n_tx=120, blocks=3)
    path = tmp_path / "s.tio"
    record(path, pools, items)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES) as pipe:
        with ReplayFeeder(pipe, path) as feeder:
            info = feeder.run(on_barrier=lambda position: False)
        assert info["end"] == "stopped" and info["items"] < len(items)
        with ReplayFeeder(pipe, path) as feeder:
            info = feeder.run(should_stop=lambda: True)
        assert info["end"] == "stopped"


# ---- backpressure, pacing, stop -------------------------------------------------------------

@pytest.mark.concurrency
def test_full_speed_waits_for_room_instead_of_dropping(tmp_path, seed):
    """A ring of 16 and thousands of swaps with no block in between: the nogil feeder
    outruns two workers, waits for room, and every transaction is analyzed exactly once."""
    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=8)
    n = scaled(6000)
    txs = [swap_tx(rng, pools, ROUTERS[k % 2], k) for k in range(n)]
    path = tmp_path / "flood.tio"
    record(path, pools, txs)
    _, s, info = replay(path, pools, ring_capacity=16)
    r = s["ring"]
    assert r["received"] == n == r["processed"] and r["dropped"] == 0 and r["in_flight"] == 0
    assert s["decode"]["ok"] == n == s["analyzer"]["swaps"] == s["pipeline"]["records"]
    assert info["accepted"] == n and info["kicks"] <= n // 32 + info["waits_for_room"] + 1


def test_realtime_paces_by_the_recorded_times(tmp_path, seed):
    pools = make_market(random.Random(seed), n_tokens=6)
    rng = random.Random(seed)
    step = 5_000_000
    txs = [swap_tx(rng, pools, ROUTERS[0], k)._replace(received_ns=10**9 + k * step) for k in range(20)]
    path = tmp_path / "rt.tio"
    record(path, pools, txs)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES) as pipe:
        with ReplayFeeder(pipe, path, realtime=True) as feeder:
            assert feeder.clock is None
            first, wall = feeder.start_clock()
            info = feeder.run()
            done = time.monotonic_ns()
            assert first == 10**9 and feeder.clock == (first, wall)
        assert done - wall >= 19 * step                       # the last one was due then
        assert info["sleeps"] >= 19 and pipe.stats()["ring"]["processed"] == 20
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES) as pipe:
        with ReplayFeeder(pipe, path) as feeder:              # full speed: no sleep
            assert feeder.run()["sleeps"] == 0 and feeder.clock is None


def test_stop_cuts_a_realtime_wait_short(tmp_path, seed):
    pools = make_market(random.Random(seed), n_tokens=6)
    rng = random.Random(seed)
    txs = [swap_tx(rng, pools, ROUTERS[0], 0)._replace(received_ns=1),
           swap_tx(rng, pools, ROUTERS[0], 1)._replace(received_ns=3600 * 10**9)]     # an hour later
    path = tmp_path / "late.tio"
    record(path, pools, txs)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES) as pipe:
        feeder = ReplayFeeder(pipe, path, realtime=True)
        out = []
        thread = threading.Thread(target=lambda: out.append(feeder.run()), daemon=True)
        thread.start()
        while pipe.stats()["ring"]["received"] < 1:
            time.sleep(0.001)
        feeder.stop()
        thread.join(60)
        assert not thread.is_alive() and out[0]["end"] == "stopped" and out[0]["items"] == 1
        feeder.close()
        with pytest.raises(RuntimeError, match="closed"):
            feeder.run()


# ---- bad input --------------------------------------------------------------------------------

def test_bad_arguments_are_named(tmp_path):
    pools = make_market(random.Random(3), n_tokens=4)
    path = tmp_path / "ok.tio"
    record(path, pools, [])
    foreign = tmp_path / "foreign.tio"
    foreign.write_bytes(b"not a record log" * 8)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS) as pipe:
        with pytest.raises(FileNotFoundError):
            ReplayFeeder(pipe, tmp_path / "missing.tio")
        with pytest.raises(ForeignFileError):
            ReplayFeeder(pipe, foreign)
        with pytest.raises(TypeError, match="realtime must be a bool"):
            ReplayFeeder(pipe, path, realtime=1)
        with pytest.raises(ValueError, match="skip_pending"):
            ReplayFeeder(pipe, path, skip_pending=-1)
        with pytest.raises(ValueError, match="native_kinds"):
            ReplayFeeder(pipe, path, native_kinds=(4,))
        with ReplayFeeder(pipe, path) as feeder:
            assert feeder.run()["items"] == 0 and feeder.stats()["end"] == "end of log"
    with pytest.raises(RuntimeError, match="closed"):
        ReplayFeeder(pipe, path)
    with pytest.raises(RuntimeError, match="closed"):
        pipe.replay_file(path)


# ---- ReplaySource's read path ------------------------------------------------------------

def test_replaysource_reads_what_recordreader_and_decode_read(tmp_path, seed):
    """ReplaySource walks with the native cursor and builds pending transactions in C:
    the same items and the same end as RecordReader + recording.decode, on the embedded
    recording, on damaged copies of it, and on a recording of several segments."""
    from tallyio.mempool.recording import decode
    from tallyio.mempool.synthetic import irrelevant_tx
    from tallyio.state.recordlog import RecordReader

    def python_items(p):
        reader = RecordReader(p)
        out = [decode(r.type, r.payload) for r in reader if r.type != RecordType.POOL_SNAPSHOT]
        return [i for i in out if i is not None], reader.end_reason

    path, _ = embedded_recording()
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\x00"))
    rng = random.Random(seed)
    cases = [data]
    for k in range(8):
        bad = bytearray(data[:rng.randrange(HEADER_SIZE, end)] if k % 2 else data)
        bad[rng.randrange(HEADER_SIZE, len(bad))] ^= 1 << rng.randrange(8)
        cases.append(bytes(bad))
    for k, case in enumerate(cases):
        p = tmp_path / f"case{k}.tio"
        p.write_bytes(case)
        src = ReplaySource(p)
        items, reason = python_items(p)
        assert list(src) == items and src.end_reason == reason
    pools, scenario_items = scenario(seed, n_tx=200, blocks=2)
    odd = [irrelevant_tx(rng, 7)._replace(to=None, raw=b"\x02raw", value=2**255 + 3)]
    seg = tmp_path / "seg.tio"
    record(seg, pools, scenario_items + odd, chunk_size=4096, max_file_size=HEADER_SIZE + 8192)
    src = ReplaySource(seg)
    assert list(src) == scenario_items + odd and src.end_reason == "end of log"
