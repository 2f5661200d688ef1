"""The pipeline against a real node: anvil 1.7.1 running the published Uniswap V2
contracts, pending swaps sent from other accounts (automine off), NodeSource feeding
the Pipeline.  Checks: each swap decoded and analyzed once; every opportunity's profit
is the exact Python-integer result on the on-chain reserves and no neighbouring input
does better; the chain's own post-swap reserves equal the analyzer's simulation; after
mining, the pool table equals getReserves of every pool."""
import time

import pytest

from tallyio.mempool import FilterConfig, NodeSource, OpportunityKind, Pipeline, PoolTable, V2Pool

pytestmark = pytest.mark.timeout(300)


def b(address):
    return bytes.fromhex(address[2:])


def amount_out(a, rin, rout):
    return a * 997 * rout // (rin * 1000 + a * 997)


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def chain_reserves(rpc, uniswap):
    from tallyio.devnet import get_reserves

    return {pair: get_reserves(rpc, pair) for pair in uniswap.all_v2_pairs()}


def table_from_chain(rpc, uniswap):
    reserves = chain_reserves(rpc, uniswap)
    pools, seen = [], set()
    for k, ex in enumerate(uniswap.v2):
        for (x, y), pair in ex.pairs.items():
            if pair in seen:
                continue
            seen.add(pair)
            t0, t1 = sorted((x, y))       # a V2 pair's token0 is the lower address
            pools.append(V2Pool(b(pair), b(t0), b(t1), *reserves[pair], 30, k))
    return PoolTable(pools, weth=b(uniswap.weth))


def cycle_profit(table, reserves, op, x):
    amount = x
    for pool, tin in zip(op.pools, op.token_path):
        p = table.pool(table.index_of(pool))
        r0, r1 = reserves["0x" + pool.hex()]
        rin, rout = (r0, r1) if tin == p.token0 else (r1, r0)
        amount = amount_out(amount, rin, rout)
    return amount - x


def test_swaps_on_anvil_are_analyzed_exactly_and_the_table_follows_the_chain(
        anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import mine, swap_v2

    rpc = anvil_node.rpc
    table = table_from_chain(rpc, uniswap)
    routers = [(b(ex.router), k) for k, ex in enumerate(uniswap.v2)]
    rounds = [(0, 25 * 10**18, [uniswap.tokens[0], uniswap.weth]),
              (1, 40 * 10**18, [uniswap.weth, uniswap.tokens[1]]),
              (0, 10 * 10**18, [uniswap.tokens[1], uniswap.tokens[0]])]
    with Pipeline(table, routers_v2=routers, filter_config=FilterConfig(check_nonces=False),
                  opportunity_capacity=4096) as pipe, \
            NodeSource(anvil_node.ws_url, pipe.feed, pools=uniswap.all_v2_pairs()) as source:
        assert source.wait_connected(30)
        for n, (exchange, amount, path) in enumerate(rounds, start=1):
            before = chain_reserves(rpc, uniswap)
            tx_hash = swap_v2(chain_sender, traders[n], uniswap.v2[exchange].router, amount, path)
            wait_for(lambda: pipe.stats()["analyzer"]["swaps"] == n, "the swap to be analyzed")
            pipe.drain()                # a swap is counted when its analysis starts: let it push
            s = pipe.stats()
            assert s["decode"]["ok"] == n and s["filter"]["passed"] == n, "each swap once, decoded"
            # the standing arbitrage the resync and each block leave: its own test below
            found = [op for op in pipe.opportunities.get_many(100) if op.kind == OpportunityKind.BACKRUN]
            assert found, "a 25-40 token swap against a 3% price gap leaves a backrun"
            # the router's own math on the chain's reserves, in Python ints
            after = dict(before)
            a = amount
            for x, y in zip(path, path[1:]):
                pair = uniswap.v2[exchange].pair(x, y)
                r0, r1 = before[pair]
                zero_in = int(x, 16) < int(y, 16)
                rin, rout = (r0, r1) if zero_in else (r1, r0)
                out = amount_out(a, rin, rout)
                after[pair] = (r0 + a, r1 - out) if zero_in else (r0 - out, r1 + a)
                a = out
            for op in found:
                assert op.trigger_tx == tx_hash and op.token_path[0] == op.token_path[-1]
                profit = cycle_profit(table, after, op, op.amount_in)
                assert op.profit == profit > 0
                assert cycle_profit(table, after, op, op.amount_in - 1) <= profit
                assert cycle_profit(table, after, op, op.amount_in + 1) <= profit
                assert op.profit_net_of_gas == op.profit - op.gas_estimate * op.base_fee_per_gas
            mine(rpc)
            mined = chain_reserves(rpc, uniswap)
            assert mined == after, "the chain did what the analyzer simulated"
            wait_for(lambda: all(table.reserves_of(b(p)) == r for p, r in mined.items()) and
                     pipe.stats()["pipeline"]["blocks"] >= n, "the Sync logs and the head to reach the table")
        s = pipe.stats()
        r = s["ring"]
        assert r["received"] == r["processed"] + r["dropped"] + r["in_flight"]
        assert s["pipeline"]["syncs"] >= len(uniswap.all_v2_pairs()) + 3


def test_standing_arbitrage_after_each_block_on_anvil(anvil_node, chain_sender, uniswap, traders):
    """The node path of standing arbitrage: NodeSource's on_idle runs the pipeline's scan
    once the node has sent a block's Sync logs; each ARBITRAGE found is exact on the
    chain's reserves (no neighbouring input does better), valid for the next block, and
    goes through a pool the block changed; the best such cycle is among them."""
    from tallyio.devnet import mine, swap_v2
    from tallyio.mempool import AnalyzerConfig

    rpc = anvil_node.rpc
    table = table_from_chain(rpc, uniswap)
    routers = [(b(ex.router), k) for k, ex in enumerate(uniswap.v2)]
    config = AnalyzerConfig(max_sized=64)          # every profitable cycle, not only the best

    def arbitrage(found):
        return [op for op in found if op.kind == OpportunityKind.ARBITRAGE]

    def check_exact(ops, reserves):
        for op in ops:
            assert op.trigger_tx is None and op.token_path[0] == op.token_path[-1]
            profit = cycle_profit(table, reserves, op, op.amount_in)
            assert op.profit == profit > 0
            assert cycle_profit(table, reserves, op, op.amount_in - 1) <= profit
            assert cycle_profit(table, reserves, op, op.amount_in + 1) <= profit

    with Pipeline(table, routers_v2=routers, filter_config=FilterConfig(check_nonces=False),
                  analyzer_config=config, opportunity_capacity=4096) as pipe, \
            NodeSource(anvil_node.ws_url, pipe.feed, pools=uniswap.all_v2_pairs(),
                       on_idle=pipe.scan_arbitrage) as source:
        assert source.wait_connected(30)
        # the resync at connect delivers every pool's reserves as Syncs: scanned once idle
        wait_for(lambda: pipe.stats()["arbitrage"]["scans"] >= 1, "the resync's arbitrage scan")
        check_exact(arbitrage(pipe.opportunities.get_many(4096)), chain_reserves(rpc, uniswap))
        scans = pipe.stats()["arbitrage"]["scans"]
        # a large swap on exchange 1 opens a price gap to exchange 0; mined, its Syncs follow
        path = [uniswap.weth, uniswap.tokens[0]]
        swap_v2(chain_sender, traders[0], uniswap.v2[1].router, 60 * 10**18, path)
        wait_for(lambda: pipe.stats()["analyzer"]["swaps"] >= 1, "the pending swap")
        mine(rpc)
        mined_block = int(rpc.call("eth_blockNumber"), 16)
        mined = chain_reserves(rpc, uniswap)
        wait_for(lambda: all(table.reserves_of(b(p)) == r for p, r in mined.items())
                 and pipe.stats()["arbitrage"]["scans"] > scans, "the block's Syncs and their scan")
        found = arbitrage(pipe.opportunities.get_many(4096))
        s = pipe.stats()
    assert found, "a 60 WETH swap on one exchange leaves arbitrage against the other"
    check_exact(found, mined)
    touched = {b(uniswap.v2[1].pair(*path))}
    assert all(op.block_number == mined_block + 1 for op in found)
    assert all(touched & set(op.pools) for op in found), "only cycles through a pool the block changed"
    assert len({(op.pools, op.token_path) for op in found}) == len(found), "each cycle once per block"
    # completeness: every cycle through the changed pool that earns at its closed-form
    # optimum (Python floats for the optimum, Python ints for the profit) is among them
    import math
    found_cycles = {op.pools for op in found}
    for hops in table.cycles_through(next(iter(touched))):
        sides = []
        for pool, tin, _ in hops:
            p = table.pool(table.index_of(pool))
            r0, r1 = mined["0x" + pool.hex()]
            sides.append((r0, r1) if tin == p.token0 else (r1, r0))
        ei, eo = float(sides[0][0]), 0.997 * sides[0][1]
        for rin, rout in sides[1:]:
            d = rin + 0.997 * eo
            ei, eo = ei * rin / d, 0.997 * eo * rout / d
        if eo <= ei:
            continue
        x_star = int(math.sqrt(ei * eo) - ei)
        best_profit = -1
        for x in range(max(1, x_star - 2), x_star + 3):
            amount = x
            for rin, rout in sides:
                amount = amount_out(amount, rin, rout)
            best_profit = max(best_profit, amount - x)
        if best_profit > 0:
            assert tuple(h[0] for h in hops) in found_cycles
    assert s["arbitrage"]["sized_near"] + s["arbitrage"]["sized_exact"] >= len(found)
    assert source.stats()["idle_calls"] >= 2
