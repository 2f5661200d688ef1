"""The pipeline end to end: real Router02 calldata decoded and analyzed on scheduler
workers gives exactly what the analyzer gives transaction by transaction; blocks and
Syncs are applied at a barrier (deterministic); a recording replays to the same
opportunities; counters are conserved under a flood; real mainnet blocks go through."""
import json
import random

import pytest

from conftest import scaled
from realparts import mainnet_dir
from tallyio.eth import decode_call
from tallyio.eth.types import PendingTx
from tallyio.mempool._analyzer import Analyzer
from tallyio.mempool._pipeline import Pipeline
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.config import AnalyzerConfig, FilterConfig
from tallyio.mempool.records import OpportunityKind
from tallyio.mempool.recording import Recorder, ReplaySource
from tallyio.mempool.synthetic import (ROUTERS, WETH, block_header, irrelevant_tx, make_market,
                                       swap_tx, sync_event)

ROUTER_TARGETS = [(ROUTERS[0], 0), (ROUTERS[1], 1)]


def key(op):
    return (op.kind, op.trigger_tx or b"", op.pools, op.token_path, op.amount_in, op.profit, op.block_number,
            op.base_fee_per_gas)


def spec_of(tx):
    call = decode_call(tx.input)
    return dict(path=[bytes.fromhex(t[2:]) for t in call.args["path"]],
                amount_in=call.args["amountIn"], limit=call.args["amountOutMin"])


def reference(pools, items):
    """The analyzer run transaction by transaction, Syncs applied in order; after a run
    of Syncs, standing arbitrage on the cycles through the pools they touched (before the
    next pending transaction or head, and at the end)."""
    table = PoolTable(pools, weth=WETH)
    analyzer = Analyzer(table, AnalyzerConfig())
    base_fee = block = synced_block = 0
    found, touched = [], []

    def scan():
        nonlocal synced_block
        if touched:
            found.extend(analyzer.arbitrage(base_fee=base_fee, block_number=max(block, synced_block),
                                            pools=touched))
            touched.clear()
            synced_block = 0

    for item in items:
        if isinstance(item, PendingTx):
            scan()
            if item.to not in ROUTERS:
                continue
            found += analyzer.analyze(item, [spec_of(item)], exchange=ROUTERS.index(item.to),
                                      base_fee=base_fee, block_number=block)
        elif hasattr(item, "base_fee_per_gas"):
            scan()
            base_fee, block = item.base_fee_per_gas, item.number + 1
        elif table.apply_sync(item):
            touched.append(item.pool)
            synced_block = max(synced_block, item.block_number + 1)
    scan()
    return sorted(map(key, found))


def scenario(seed, n_tx=300, blocks=3):
    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=12, extra_pools=20)
    items, nonce = [], 0
    for b in range(blocks):
        items.append(block_header(100 + b, base_fee=(10 + b) * 10**9, received_ns=b * 10**9))
        for p in rng.sample(pools, 4):
            items.append(sync_event(p.address, int(p.reserve0 * rng.uniform(0.9, 1.1)),
                                    int(p.reserve1 * rng.uniform(0.9, 1.1)), 100 + b))
        for _ in range(n_tx // blocks):
            nonce += 1
            if rng.random() < 0.3:
                items.append(irrelevant_tx(rng, nonce))
            else:
                items.append(swap_tx(rng, pools, rng.choice(ROUTERS), nonce, size=0.05))
    return pools, items


def test_pipeline_equals_the_analyzer_transaction_by_transaction(seed):
    pools, items = scenario(seed)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS,
                  filter_config=FilterConfig(check_nonces=False),
                  opportunity_capacity=1 << 16) as pipe:
        pipe.run(items)
        got = sorted(map(key, pipe.opportunities.get_many(1 << 20)))
        s = pipe.stats()
    expected = reference(pools, items)
    assert got == expected and len(expected) > 0
    arbitrage = [k for k in got if k[0] == OpportunityKind.ARBITRAGE]
    assert arbitrage and all(k[1] == b"" for k in arbitrage), "each block's Syncs leave standing arbitrage"
    assert s["arbitrage"]["scans"] == 3 and s["arbitrage"]["pools"] == 12
    assert s["arbitrage"]["opportunities"] == len(arbitrage)
    swaps = sum(1 for i in items if isinstance(i, PendingTx) and i.to in ROUTERS)
    assert s["filter"]["passed"] == swaps == s["ring"]["received"] == s["ring"]["processed"]
    assert s["decode"]["ok"] == swaps and s["analyzer"]["swaps"] == swaps
    assert s["filter"]["not_target"] == len(items) - swaps - s["pipeline"]["blocks"] - s["pipeline"]["syncs"]
    assert s["analyzer"]["opportunities"] + len(arbitrage) == len(got) == s["opportunities"]["received"]
    assert s["pipeline"]["blocks"] == 3 and s["pipeline"]["syncs"] == 12


def test_recording_replays_to_the_same_opportunities_every_time(tmp_path, seed):
    pools, items = scenario(seed, n_tx=150)
    path = tmp_path / "replay.tio"
    with Recorder(path) as rec:
        rec.snapshot(PoolTable(pools, weth=WETH), ts=0)
        for _ in rec.tee(items):
            pass
    replay = ReplaySource(path)
    assert list(replay) == items and replay.end_reason == "end of log"
    runs = []
    for _ in range(2):
        table = ReplaySource(path).pool_table()
        assert table.pools() == PoolTable(pools, weth=WETH).pools()
        with Pipeline(table, routers_v2=ROUTER_TARGETS, opportunity_capacity=1 << 16,
                      filter_config=FilterConfig(check_nonces=False)) as pipe:
            pipe.run(ReplaySource(path))
            runs.append(sorted(map(key, pipe.opportunities.get_many(1 << 20))))
    assert runs[0] == runs[1] == reference(pools, items)


@pytest.mark.concurrency
def test_flood_conserves_every_counter(seed):
    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=8)
    n = scaled(20_000)
    txs = [swap_tx(rng, pools, ROUTERS[0], k) for k in range(n)]
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, ring_capacity=16,
                  filter_config=FilterConfig(check_nonces=False), opportunity_capacity=64) as pipe:
        for tx in txs:
            pipe.feed(tx)
        pipe.drain()
        s = pipe.stats()
        r = s["ring"]
        assert r["received"] == n == r["processed"] + r["dropped"] + r["in_flight"]
        assert r["in_flight"] == 0 and r["dropped"] == r["dropped_evicted"]
        assert s["analyzer"]["swaps"] == r["processed"] == s["decode"]["ok"] == s["pipeline"]["records"]
        o = s["opportunities"]
        assert o["received"] == s["analyzer"]["opportunities"]
        assert o["received"] == o["processed"] + o["dropped"] + o["in_flight"]
        assert o["queued"] <= 64
        fed = {tx.hash for tx in txs}
        assert all(op.trigger_tx in fed for op in pipe.opportunities.get_many(100))


def test_mainnet_blocks_go_through_without_a_crash():
    rows = json.loads((mainnet_dir() / "block_txs.json").read_text())
    routers = sorted({r["to"] for r in rows if r.get("router")})
    table = PoolTable([], weth=WETH)
    with Pipeline(table, routers_v2=[bytes.fromhex(a[2:]) for a in routers],
                  filter_config=FilterConfig(check_nonces=False)) as pipe:
        for r in rows:
            value = int(r["value"], 16) if isinstance(r["value"], str) else int(r["value"])
            pipe.feed(PendingTx(hash=bytes.fromhex(r["transaction_hash"][2:]),
                                sender=bytes.fromhex(r["from"][2:]),
                                to=bytes.fromhex(r["to"][2:]) if r["to"] else None, nonce=0,
                                value=value, gas=0, max_fee_per_gas=int(r["effective_gas_price"]),
                                max_priority_fee_per_gas=0, input=bytes.fromhex(r["input"][2:]),
                                tx_type=2, received_ns=0))
        pipe.drain()
        s = pipe.stats()
    n_router = sum(1 for r in rows if r.get("router"))
    assert s["filter"]["passed"] == n_router and s["filter"]["not_target"] == len(rows) - n_router
    assert s["ring"]["processed"] == n_router
    assert sum(s["decode"].values()) == n_router and s["decode"]["ok"] >= 180
    assert s["analyzer"]["no_pool"] > 0      # an empty table: every V2 swap finds no pool


def test_bad_records_are_named_and_counted():
    table = PoolTable(make_market(random.Random(1), n_tokens=3), weth=WETH)
    with Pipeline(table, routers_v2=ROUTER_TARGETS) as pipe:
        tx = swap_tx(random.Random(2), table.pools(), ROUTERS[0], 1)
        with pytest.raises(ValueError, match="PendingTx.hash"):
            pipe.feed(tx._replace(hash=b"\x01"))
        with pytest.raises(TypeError, match="PendingTx.value"):
            pipe.feed(tx._replace(value="1"))
        pipe.feed("not a record")
        pipe.drain()
        s = pipe.stats()
        assert s["ring"]["dropped_invalid"] == 2 and s["pipeline"]["unknown_records"] == 1
        assert s["ring"]["received"] == s["ring"]["processed"] + s["ring"]["dropped"]
    with pytest.raises(RuntimeError, match="closed"):
        pipe.feed(tx)


def test_native_replay_equals_the_python_replay_and_stops_at_a_torn_tail(tmp_path, seed):
    pools, items = scenario(seed, n_tx=150)
    path = tmp_path / "replay.tio"
    with Recorder(path) as rec:
        rec.snapshot(PoolTable(pools, weth=WETH), ts=0)
        for item in items:
            rec.write(item)

    def native(p):
        with Pipeline(ReplaySource(p).pool_table(), routers_v2=ROUTER_TARGETS,
                      opportunity_capacity=1 << 16, filter_config=FilterConfig(check_nonces=False)) as pipe:
            info = pipe.replay_file(p)
            return info, sorted(map(key, pipe.opportunities.get_many(1 << 20))), pipe.stats()

    info, got, s = native(path)
    assert info == {"records": len(items) + 1, "pending": sum(isinstance(i, PendingTx) for i in items),
                    "end": "end of log"}
    assert got == reference(pools, items)
    assert s["pipeline"]["blocks"] == 3 and s["pipeline"]["syncs"] == 12 and s["pipeline"]["bad_records"] == 0
    # a torn tail: flip a byte inside the last record; the replay stops before it
    data = bytearray(path.read_bytes())
    end = len(data.rstrip(b"\x00"))
    data[end - 10] ^= 0xFF
    torn = tmp_path / "torn.tio"
    torn.write_bytes(bytes(data))
    info, _, _ = native(torn)
    assert info["records"] == len(items) and info["end"].startswith("torn or invalid record")
