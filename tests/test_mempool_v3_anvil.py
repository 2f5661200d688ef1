"""V3 in the pipeline against a real node: anvil 1.7.1 with the published Uniswap V2 and V3
contracts (the chainfixtures deployment), plus a fresh token X with a small V2 pair X/WETH
on exchange A and a small V3 pool X/WETH (0.3 %, positions [-600, 600] and [-6000, 6000])
so that every input can be brute-forced.  NodeSource (websocket) feeds the Pipeline: the V3 pool's state
comes from the resync (slot0, liquidity, tickBitmap), then from its Swap logs.

Checks: a pending exactInputSingle from another account is simulated exactly (the chain's
own Swap log, once mined, has the amounts and price the reference math gives on the state
before it); the backrun it creates (V2 <-> V3) has the size and profit of a brute force over
every input on the chain's state after the victim (read by eth_call after mining it: V2
getReserves, V3 slot0 and liquidity), with the reference math; a swap that crosses the
position's tick is counted as skipped and never sized; its Swap log then marks the pool's
range lost."""
import time

import pytest

from tallyio.amm import reference as R
from tallyio.mempool import AnalyzerConfig, FilterConfig, NodeSource, OpportunityKind, Pipeline, PoolTable, V2Pool
from tallyio.mempool.records import POOL_V3, V3Pool
from tallyio.mempool.v3sync import read_v3_state

pytestmark = pytest.mark.timeout(300)

LIQ_V2 = 10**7
FEE, SPACING = 3000, 60


def b(address):
    return bytes.fromhex(address[2:])


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def small(anvil_node, chain_sender, uniswap, traders):
    """Token X, a V2 pair X/WETH on exchange A and a V3 pool X/WETH with one narrow position."""
    from tallyio.devnet import DEADLINE, dev_accounts, encode_call, load_artifact, set_automine, to_address
    from realparts import chain_dir

    rpc, me, trader = anvil_node.rpc, dev_accounts(1)[0], traders[0]
    send = lambda who, to, sig, *args: chain_sender.send(who, to, encode_call(sig, *args), wait=True)  # noqa: E731
    set_automine(rpc, True)
    try:
        erc20 = load_artifact("@uniswap/v2-periphery", "ERC20", chain_dir())
        code = erc20["bytecode"] if isinstance(erc20["bytecode"], str) else erc20["bytecode"]["object"]
        from eth_abi import encode
        tx = chain_sender.send(me, None, bytes.fromhex(code.removeprefix("0x")) + encode(["uint256"], [10**30]))
        x = to_address(chain_sender.receipt(tx)["contractAddress"])
        weth, router = uniswap.weth, uniswap.v2[0].router
        for spender in (router, uniswap.v3_position_manager):
            send(me, x, "approve(address,uint256)", spender, 2**256 - 1)
        send(me, router, "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)",
             x, weth, LIQ_V2, LIQ_V2, 0, 0, me.address, DEADLINE)
        (pair,) = chain_sender.call(uniswap.v2[0].factory, "getPair(address,address)", x, weth, returns=["address"])
        t0, t1 = sorted((x, weth))
        npm = uniswap.v3_position_manager
        send(me, npm, "createAndInitializePoolIfNecessary(address,address,uint24,uint160)", t0, t1, FEE, 2**96)
        send(me, npm, "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))",
             (t0, t1, FEE, -600, 600, 300_000, 300_000, 0, 0, me.address, DEADLINE))
        # a wider position: past -600 / 600 the price moves on with less liquidity (a real crossing)
        send(me, npm, "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))",
             (t0, t1, FEE, -6000, 6000, 600_000, 600_000, 0, 0, me.address, DEADLINE))
        (pool,) = chain_sender.call(uniswap.v3_factory, "getPool(address,address,uint24)", t0, t1, FEE,
                                    returns=["address"])
        send(me, x, "transfer(address,uint256)", trader.address, 10**12)
        send(trader, x, "approve(address,uint256)", uniswap.v3_router, 2**256 - 1)
    finally:
        set_automine(rpc, False)
    return dict(x=x, pair=to_address(pair), pool=to_address(pool), trader=trader)


def v2_reserves(rpc, pair):
    from tallyio.devnet import get_reserves

    return get_reserves(rpc, pair)


def v3_state(rpc, pool):
    return read_v3_state(lambda method, params: rpc.call(method, *params), b(pool), "latest")


def table_of(rpc, uniswap, small):
    state = v3_state(rpc, small["pool"])
    t0, t1 = sorted((small["x"], uniswap.weth))
    pools = [V2Pool(b(small["pair"]), b(t0), b(t1), *v2_reserves(rpc, small["pair"]), 30, 0),
             V3Pool(b(small["pool"]), b(t0), b(t1), FEE, SPACING, state.sqrt_price_x96, state.liquidity,
                    state.tick, state.tick_lower, state.tick_upper, 0)]
    return PoolTable(pools, weth=b(uniswap.weth))


def brute_force(reserves, state, weth_is_token0):
    """Best (amount_in, profit) of WETH -> X -> WETH through the pair and the pool, either
    order, over every input until the profit has been negative for a long run; V3 in range."""
    r0, r1 = reserves
    rw, rx = (r0, r1) if weth_is_token0 else (r1, r0)

    def v3(amount, weth_in):
        down = weth_in == weth_is_token0              # WETH in as token0: zero for one
        _, out, _, _, crosses = R.swap_in_range(state.sqrt_price_x96, state.liquidity, state.tick, amount, down,
                                                FEE, SPACING, state.tick_lower, state.tick_upper)
        return None if crosses else out

    best, negative, x = (0, 0), 0, 0
    while negative < 20_000:
        x += 1
        round_best = None
        for v2_first in (True, False):
            if v2_first:
                y = R.amount_out(x, rw, rx) if x else 0
                out = v3(y, False) if y else 0
            else:
                y = v3(x, True)
                out = None if y is None else (R.amount_out(y, rx, rw) if y else 0)
            if out is not None:
                round_best = max(round_best if round_best is not None else -x, out - x)
        if round_best is not None and round_best > best[1]:
            best = (x, round_best)
        negative = negative + 1 if round_best is None or round_best <= 0 else 0
    return best


def test_a_pending_v3_swap_on_anvil_is_simulated_and_its_backrun_sized_exactly(anvil_node, chain_sender, uniswap,
                                                                               small):
    from tallyio.devnet import mine, swap_v3

    rpc = anvil_node.rpc
    table = table_of(rpc, uniswap, small)
    assert table.pool(1)[8:10] == (-600, 600), "the resync's tickBitmap read finds the position's ticks"
    weth_is_token0 = int(uniswap.weth, 16) < int(small["x"], 16)
    config = AnalyzerConfig(max_evaluations=1 << 18, max_sized=2)
    with Pipeline(table, routers_v3=[(b(uniswap.v3_router), 0)], filter_config=FilterConfig(check_nonces=False),
                  analyzer_config=config, opportunity_capacity=4096) as pipe, \
            NodeSource(anvil_node.ws_url, pipe.feed, pools=[small["pair"]], v3_pools=[small["pool"]]) as source:
        assert source.wait_connected(30)
        wait_for(lambda: source.stats()["resynced_v3_pools"] == 1, "the V3 resync")
        wait_for(lambda: pipe.stats()["pipeline"]["v3_events"] >= 1, "the resync's state in the table")
        before = v3_state(rpc, small["pool"])
        assert table.pool(1)[5:10] == tuple(before[2:7])
        pipe.opportunities.get_many(4096)                      # no standing gap: the pools start at price 1

        # 1. a victim sells 100,000 X into the V3 pool (1 % of its depth): within the range
        victim = swap_v3(chain_sender, small["trader"], uniswap.v3_router, small["x"], uniswap.weth, 100_000)
        wait_for(lambda: pipe.stats()["analyzer"]["swaps"] == 1, "the pending V3 swap to be analyzed")
        pipe.drain()                                           # counters are exact once drained
        s = pipe.stats()["analyzer"]
        assert (s["v3_simulated"], s["v3_skipped"], s["mixed_cycles_sized"]) == (1, 0, 1)
        found = [op for op in pipe.opportunities.get_many(4096) if op.kind == OpportunityKind.BACKRUN]
        assert len(found) == 1, found
        [op] = found
        assert op.trigger_tx == victim and op.pool_kinds.count(POOL_V3) == 1 and op.token_path[0] == b(uniswap.weth)
        assert s["sized_exact"] == 1, "the whole in-range domain fit the budget: certified"
        mine(rpc)
        receipt = chain_sender.receipt(victim)
        after = v3_state(rpc, small["pool"])
        # the chain's Swap did what the reference loop predicts on the state before it
        x_is_token0 = not weth_is_token0
        paid, got, price, tick, crosses = R.swap_in_range(before.sqrt_price_x96, before.liquidity, before.tick,
                                                          100_000, x_is_token0, FEE, SPACING, -600, 600)
        assert not crosses and (after.sqrt_price_x96, after.tick) == (price, tick)
        swap_log = [lg for lg in receipt["logs"] if lg["address"].lower() == small["pool"]][-1]
        data = bytes.fromhex(swap_log["data"][2:])
        amounts = [int.from_bytes(data[k:k + 32], "big", signed=True) for k in (0, 32)]
        assert sorted(amounts) == [-got, paid]
        # the backrun equals a brute force over every input on the chain's post-victim state
        assert (op.amount_in, op.profit) == brute_force(v2_reserves(rpc, small["pair"]), after, weth_is_token0)
        wait_for(lambda: table.pool(1)[5:8] == (after.sqrt_price_x96, after.liquidity, after.tick),
                 "the Swap log to reach the table")

        # 2. a swap far past the position's tick: counted, never sized
        crossing = swap_v3(chain_sender, small["trader"], uniswap.v3_router, small["x"], uniswap.weth, 2_000_000,
                           gas=2_000_000)
        wait_for(lambda: pipe.stats()["analyzer"]["swaps"] == 2, "the crossing swap to be analyzed")
        pipe.drain()
        s = pipe.stats()["analyzer"]
        assert (s["v3_crosses_tick"], s["v3_skipped"], s["v3_simulated"]) == (1, 1, 1)
        assert not [o for o in pipe.opportunities.get_many(4096) if o.trigger_tx == crossing]
        mine(rpc)
        chain_sender.receipt(crossing)
        wait_for(lambda: not table.v3_in_range(b(small["pool"])), "the crossing Swap log to mark the range lost")
        assert table.stats()["v3_range_lost"] == 1 and source.stats()["v3_events"] >= 2
