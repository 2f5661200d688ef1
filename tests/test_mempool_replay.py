"""The embedded recording (made against anvil by scripts/make_recording.py): replayed
through the pipeline, every opportunity of its brute-force golden file is found and none
outside it -- backruns and the standing arbitrage each block's Syncs leave -- natively and
through ReplaySource, with the default filter (nonce checks on)."""
import pytest

from tallyio.mempool import AnalyzerConfig, Pipeline
from tallyio.mempool.recording import ReplaySource, embedded_recording

# the golden file is exhaustive over every cycle: size every candidate, with a budget that
# certifies at these reserves (a few hundred thousand wei)
EXHAUSTIVE = AnalyzerConfig(max_sized=64, max_cycles=100_000, max_evaluations=1 << 20)


def golden_keys(golden, kind):
    return sorted((bytes.fromhex(o["trigger_tx"] or ""), tuple(bytes.fromhex(p) for p in o["pools"]),
                   tuple(bytes.fromhex(t) for t in o["token_path"]), o["amount_in"], o["profit"],
                   o["block_number"], o["base_fee_per_gas"])
                  for o in golden["opportunities"] if o["kind"] == kind)


def found_keys(found, kind):
    return sorted((o.trigger_tx or b"", o.pools, o.token_path, o.amount_in, o.profit, o.block_number,
                   o.base_fee_per_gas) for o in found if o.kind.name == kind)


@pytest.mark.parametrize("how", ["native", "python"])
def test_every_golden_opportunity_and_nothing_else(how):
    path, golden = embedded_recording()
    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    with Pipeline(ReplaySource(path).pool_table(), routers_v2=routers, analyzer_config=EXHAUSTIVE,
                  opportunity_capacity=1 << 14) as pipe:
        if how == "native":
            info = pipe.replay_file(path)
            assert info["end"] == "end of log"
        else:
            pipe.run(ReplaySource(path))
        found = pipe.opportunities.get_many(1 << 20)
        s = pipe.stats()
    assert s["opportunities"]["dropped"] == 0
    backruns, arbitrage = golden_keys(golden, "BACKRUN"), golden_keys(golden, "ARBITRAGE")
    assert len(backruns) > 100 and len(arbitrage) > 50
    assert found_keys(found, "BACKRUN") == backruns
    assert found_keys(found, "ARBITRAGE") == arbitrage, "standing arbitrage once per (cycle, block)"
    assert len(found) == len(backruns) + len(arbitrage)
    assert s["analyzer"]["sized_near"] == 0, "every size certified equal to a brute force"
    assert s["arbitrage"]["sized_near"] == 0 and s["arbitrage"]["opportunities"] == len(arbitrage)
    assert s["arbitrage"]["truncated"] == 0 and s["arbitrage"]["scans"] >= golden["rounds"]
    assert s["filter"]["nonce_gap"] == 0 and s["filter"]["duplicate"] == 0
    assert s["ring"]["dropped"] == 0 and s["pipeline"]["blocks"] == golden["rounds"]


def test_realtime_replay_paces_by_the_recorded_times():
    path, _ = embedded_recording()
    items = list(ReplaySource(path))
    times = [i.received_ns for i in items if i.received_ns]
    span = (max(times) - min(times)) / 1e9
    import time
    t0 = time.monotonic()
    assert list(ReplaySource(path, realtime=True)) == items
    assert time.monotonic() - t0 >= span * 0.9


def test_corrupt_recordings_stop_cleanly_and_bad_payloads_are_counted(tmp_path, seed):
    import random

    from tallyio.state.recordlog import RecordType, RecordWriter

    path, golden = embedded_recording()
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\x00"))
    rng = random.Random(seed)
    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    table = ReplaySource(path).pool_table()
    for k in range(12):
        bad = bytearray(data)
        if k % 3 == 0:
            bad = bad[:rng.randrange(64, end)]                     # truncated
        else:
            for _ in range(rng.randrange(1, 4)):                   # bytes flipped
                bad[rng.randrange(64, end)] ^= 1 << rng.randrange(8)
        p = tmp_path / f"bad{k}.tio"
        p.write_bytes(bytes(bad))
        with Pipeline(table, routers_v2=routers) as pipe:
            info = pipe.replay_file(p)
            assert info["records"] <= 211
            s = pipe.stats()["ring"]
            assert s["received"] == s["processed"] + s["dropped"] + s["in_flight"]
    # CRC-valid records whose payloads are not ours: counted, skipped
    odd = tmp_path / "odd.tio"
    with RecordWriter(odd) as w:
        w.append(RecordType.PENDING_TX, b"short", ts=1)
        w.append(RecordType.BLOCK_HEADER, b"\x00" * 10, ts=2)
        w.append(RecordType.SYNC_EVENT, b"\x00" * 200, ts=3)
        w.append(0x9000, b"an application's own record", ts=4)
    with Pipeline(table, routers_v2=routers) as pipe:
        assert pipe.replay_file(odd) == {"records": 4, "pending": 1, "end": "end of log"}
        assert pipe.stats()["pipeline"]["bad_records"] == 3


def test_the_soak_script_reports_flat_memory_on_a_short_run(capsys):
    """scripts/replay_soak.py (the 10-million-transaction memory check, docs/mempool.md)
    on a short run: it replays, samples RSS each round and judges it flat."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "replay_soak.py"
    spec = importlib.util.spec_from_file_location("replay_soak", script)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    assert soak.main(["--records", "3000", "--chunk", "1000", "--tolerance-mib", "64"]) == 0
    out = capsys.readouterr().out
    assert "round 3/3: 3,000 tx" in out and "memory flat" in out
    assert "ring received" in out and "arbitrage scans 3" in out
