"""V3 recordings and sqrtPriceLimitX96 against a real node: anvil 1.7.1 with the published
Uniswap V2 and V3 contracts and test_mempool_v3_anvil's small X/WETH pair and V3 pool.

1. A live session (NodeSource over websocket: pending V3 swaps, heads, the pair's Sync logs,
   the pool's Swap logs and resynced state, and token X's Transfer logs as raw logs) is
   recorded while a Pipeline analyzes it; replaying the recording into a fresh Pipeline from
   its TIOPOOL2 snapshot gives the same opportunities and the same pool state (which is the
   chain's), and the raw logs come back in order, equal to the chain's eth_getLogs.
2. A pending exactInputSingle with a binding sqrtPriceLimitX96: the mined Swap log equals the
   reference loop stopped at the limit, the pool ends at the limit, and the backrun the
   pipeline sized on its simulation equals a brute force over the chain's state after it."""
import pytest

from tallyio.amm import reference as R
from tallyio.eth._keccak import keccak256
from tallyio.eth.types import RawLog
from tallyio.mempool import AnalyzerConfig, FilterConfig, NodeSource, OpportunityKind, Pipeline
from tallyio.mempool.recording import Recorder, ReplaySource
from tallyio.mempool.records import V3PoolEvent
from test_mempool_v3_anvil import FEE, SPACING, b, brute_force, table_of, v2_reserves, v3_state, wait_for
from test_mempool_v3_anvil import small as market

pytestmark = pytest.mark.timeout(300)
SHARED_FIXTURES = (market,)     # test_mempool_v3_anvil's token X, pair and V3 pool, registered here as "market"

TRANSFER = keccak256(b"Transfer(address,address,uint256)")


def make_pipeline(table, uniswap):
    return Pipeline(table, routers_v3=[(b(uniswap.v3_router), 0)], filter_config=FilterConfig(check_nonces=False),
                    analyzer_config=AnalyzerConfig(max_evaluations=1 << 18, max_sized=2), opportunity_capacity=4096)


def sell_x(chain_sender, uniswap, small, amount, sqrt_limit=0):
    """SwapRouter exactInputSingle X -> WETH from the trader (pending: automine is off)."""
    from tallyio.devnet import DEADLINE, encode_call

    trader = small["trader"]
    data = encode_call("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))",
                       (small["x"], uniswap.weth, FEE, trader.address, DEADLINE, amount, 0, sqrt_limit))
    return chain_sender.send(trader, uniswap.v3_router, data, gas=400_000)


def comparable(op):
    """An opportunity minus its detection time (the one field a replay cannot reproduce; an
    ARBITRAGE, with no trigger, was also "received" then)."""
    return op._replace(detected_ns=0, received_ns=op.received_ns if op.trigger_tx else 0)


def test_a_live_v3_session_recorded_replays_to_the_same_opportunities_and_pool_state(anvil_node, chain_sender,
                                                                                     uniswap, market, tmp_path):
    from tallyio.devnet import mine

    rpc = anvil_node.rpc
    table = table_of(rpc, uniswap, market)
    path = tmp_path / "v3session.tio"
    live_logs, victims = [], []
    with Recorder(path) as rec:
        rec.snapshot(table)
        with make_pipeline(table, uniswap) as pipe:
            def sink(record):                      # the watcher thread: record, then analyze
                rec.write(record)
                if type(record) is RawLog:
                    live_logs.append(record)
                pipe.feed(record)

            with NodeSource(anvil_node.ws_url, sink, pools=[market["pair"]], v3_pools=[market["pool"]],
                            logs=[{"address": market["x"], "topics": ["0x" + TRANSFER.hex()]}]) as source:
                assert source.wait_connected(30)
                wait_for(lambda: pipe.stats()["pipeline"]["v3_events"] >= 1, "the V3 resync")
                for amount in (50_000, 30_000):
                    seen = pipe.stats()["analyzer"]["swaps"]
                    victims.append(sell_x(chain_sender, uniswap, market, amount))
                    wait_for(lambda: pipe.stats()["analyzer"]["swaps"] == seen + 1, "the pending swap analyzed")
                    mine(rpc)
                    chain_sender.receipt(victims[-1])
                    after = v3_state(rpc, market["pool"])
                    wait_for(lambda: table.pool(1)[5:8] == (after.sqrt_price_x96, after.liquidity, after.tick),
                             "the Swap log in the table")
                    wait_for(lambda: len(live_logs) == len(victims), "X's Transfer log")
                mine(rpc)                              # a head after the last Swap log
                wait_for(lambda: pipe.blocks >= 3, "the heads")
                assert source.stats()["raw_logs"] == 2 and source.stats()["v3_events"] == 2
            pipe.scan_arbitrage()
            pipe.drain()
            live = [comparable(op) for op in pipe.opportunities.get_many(4096)]
            live_stats = pipe.stats()["analyzer"]
    assert {op.trigger_tx for op in live if op.kind == OpportunityKind.BACKRUN} == set(victims)
    assert live_stats["v3_simulated"] == 2

    # the replay, from the recording alone
    replay = ReplaySource(path)
    again = replay.pool_table()
    assert again is not None and again.to_bytes()[:8] == b"TIOPOOL2"
    with make_pipeline(again, uniswap) as pipe:
        pipe.run(replay)
        replayed = [comparable(op) for op in pipe.opportunities.get_many(4096)]
        assert pipe.stats()["analyzer"] == live_stats
    assert replay.end_reason == "end of log"
    assert sorted(replayed, key=repr) == sorted(live, key=repr) and replayed
    assert again.pools() == table.pools()
    # ... and that state is the chain's
    state = v3_state(rpc, market["pool"])
    assert again.pool(1)[5:8] == (state.sqrt_price_x96, state.liquidity, state.tick)
    assert again.pool(0)[3:5] == v2_reserves(rpc, market["pair"])
    # the records in order: V3 events as the node sent them, raw logs as the chain has them
    items = list(ReplaySource(path))
    assert [i for i in items if type(i) is RawLog] == live_logs
    assert [i.kind for i in items if type(i) is V3PoolEvent] == ["state", "swap", "swap"]
    chain_logs = rpc.call("eth_getLogs", {"address": market["x"], "topics": ["0x" + TRANSFER.hex()],
                                          "fromBlock": hex(live_logs[0].block_number), "toBlock": "latest"})
    assert [RawLog.from_rpc(lg) for lg in chain_logs] == [lg._replace(received_ns=0) for lg in live_logs]
    assert [lg.transaction_hash for lg in live_logs] == victims


def test_a_binding_price_limit_on_anvil_fills_what_the_simulation_says(anvil_node, chain_sender, uniswap, market):
    from tallyio.devnet import mine

    rpc = anvil_node.rpc
    table = table_of(rpc, uniswap, market)
    weth_is_token0 = int(uniswap.weth, 16) < int(market["x"], 16)
    down = not weth_is_token0                         # selling X, token0: the price falls
    amount = 100_000
    before = v3_state(rpc, market["pool"])

    def reference(limit=None):
        return R.swap_in_range(before.sqrt_price_x96, before.liquidity, before.tick, amount, down, FEE, SPACING,
                               before.tick_lower, before.tick_upper, limit)

    *_, free_price, _, crosses = reference()
    assert not crosses
    limit = (before.sqrt_price_x96 + free_price) // 2
    paid, got, price, tick, crosses = reference(limit)
    assert price == limit and paid < amount and not crosses
    with make_pipeline(table, uniswap) as pipe, \
            NodeSource(anvil_node.ws_url, pipe.feed, pools=[market["pair"]], v3_pools=[market["pool"]]) as source:
        assert source.wait_connected(30)
        wait_for(lambda: pipe.stats()["pipeline"]["v3_events"] >= 1, "the V3 resync")
        pipe.drain()
        pipe.opportunities.get_many(4096)
        victim = sell_x(chain_sender, uniswap, market, amount, limit)
        wait_for(lambda: pipe.stats()["analyzer"]["swaps"] == 1, "the pending swap analyzed")
        pipe.drain()
        s = pipe.stats()["analyzer"]
        assert (s["v3_simulated"], s["v3_price_limited"], s["v3_skipped"]) == (1, 1, 0)
        found = [op for op in pipe.opportunities.get_many(4096)
                 if op.trigger_tx == victim and op.kind == OpportunityKind.BACKRUN]
        mine(rpc)
        receipt = chain_sender.receipt(victim)
    after = v3_state(rpc, market["pool"])
    assert (after.sqrt_price_x96, after.tick) == (limit, tick)          # the pool stopped at the limit
    swap_log = [lg for lg in receipt["logs"] if lg["address"].lower() == market["pool"]][-1]
    data = bytes.fromhex(swap_log["data"][2:])
    amounts = [int.from_bytes(data[k:k + 32], "big", signed=True) for k in (0, 32)]
    assert sorted(amounts) == [-got, paid]                              # what the simulation filled
    [op] = found
    assert (op.amount_in, op.profit) == brute_force(v2_reserves(rpc, market["pair"]), after, weth_is_token0)
