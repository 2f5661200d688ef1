"""The analyzer against an exact brute force over the reserves: the swap applied with
Python integers, every cycle through the touched pools searched over every input."""
import pytest
from hypothesis import given, settings, strategies as st

from tallyio.errors import ConfigError
from tallyio.eth.types import PendingTx
from tallyio.mempool._analyzer import Analyzer
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.config import AnalyzerConfig
from tallyio.mempool.records import OpportunityKind, V2Pool

W, A, B = b"\xee" * 20, b"\xaa" * 20, b"\xbb" * 20
TX = PendingTx(hash=b"\x05" * 32, sender=b"\x06" * 20, to=b"\x07" * 20, nonce=0, value=0,
               gas=0, max_fee_per_gas=0, max_priority_fee_per_gas=0, input=b"", tx_type=2,
               received_ns=77)


def amount_out(a, rin, rout, fee=30):
    keep = 10000 - fee
    return a * keep * rout // (rin * 10000 + a * keep)


def amount_in(out, rin, rout, fee=30):
    return rin * out * 10000 // ((rout - out) * (10000 - fee)) + 1


def apply_swap(reserves, pools, exchange, path, amount, exact_in=True):
    """Python-int model of the router: returns the new reserves dict or None (reverts)."""
    hops = []
    for a, b in zip(path, path[1:]):
        match = [p for p in pools if p.exchange == exchange and {p.token0, p.token1} == {a, b}]
        if not match:
            return None
        hops.append((match[0], a))
    res = dict(reserves)

    def rr(p, tin):
        r0, r1 = res[p.address]
        return (r0, r1) if tin == p.token0 else (r1, r0)

    amounts = [amount] if exact_in else [None] * len(hops) + [amount]
    if exact_in:
        for p, tin in hops:
            rin, rout = rr(p, tin)
            if amounts[-1] == 0 or rin == 0 or rout == 0:
                return None
            amounts.append(amount_out(amounts[-1], rin, rout, p.fee_bps))
    else:
        for k in range(len(hops) - 1, -1, -1):
            p, tin = hops[k]
            rin, rout = rr(p, tin)
            if amounts[k + 1] >= rout or rin == 0:
                return None
            amounts[k] = amount_in(amounts[k + 1], rin, rout, p.fee_bps)
    for k, (p, tin) in enumerate(hops):
        r0, r1 = res[p.address]
        if tin == p.token0:
            res[p.address] = (r0 + amounts[k], r1 - amounts[k + 1])
        else:
            res[p.address] = (r0 - amounts[k + 1], r1 + amounts[k])
    return res, {h[0].address for h in hops}


def cycle_output(table, reserves, hops, x):
    for pool, tin, _tout in hops:
        p = table.pool(table.index_of(pool))
        r0, r1 = reserves[pool]
        rin, rout = (r0, r1) if tin == p.token0 else (r1, r0)
        if x == 0 or rin == 0 or rout == 0:
            return None
        x = amount_out(x, rin, rout, p.fee_bps)
    return x


def brute_force(table, reserves, touched):
    """{(pools...): (amount_in, profit)} for every cycle through a touched pool with
    integer profit >= 1, searching every input 1 .. 2 x the cycle's largest reserve
    (past that the output is below the input on any cycle: it is bounded by a reserve)."""
    best = {}
    for pool in touched:
        for hops in table.cycles_through(pool):
            key = tuple(h[0] for h in hops)
            if key in best:
                continue
            limit = 2 * max(max(reserves[h[0]]) for h in hops)
            top = (0, 0)
            for x in range(1, limit + 1):
                out = cycle_output(table, reserves, hops, x)
                if out is not None and out - x > top[1]:
                    top = (x, out - x)
            if top[1] >= 1:
                best[key] = top
    return best


@st.composite
def scenarios(draw):
    reserve = st.integers(200, 3000)
    pools = [V2Pool(b"\x01" * 20, W, A, draw(reserve), draw(reserve)),
             V2Pool(b"\x02" * 20, W, A, draw(reserve), draw(reserve), exchange=1),
             V2Pool(b"\x03" * 20, A, B, draw(reserve), draw(reserve), fee_bps=draw(st.sampled_from([30, 25]))),
             V2Pool(b"\x04" * 20, B, W, draw(reserve), draw(reserve), exchange=draw(st.integers(0, 1)))]
    path = draw(st.sampled_from([[W, A], [A, W], [W, A, B], [B, A], [B, W, A]]))
    exact_in = draw(st.booleans())
    amount = draw(st.integers(1, 1500))
    exchange = draw(st.integers(0, 1))
    return pools, path, amount, exact_in, exchange


@settings(max_examples=25, deadline=None)
@given(scenarios())
def test_opportunities_equal_an_exact_brute_force(scenario):
    pools, path, amount, exact_in, exchange = scenario
    table = PoolTable(pools, weth=W)
    analyzer = Analyzer(table, AnalyzerConfig(max_sized=64, max_cycles=10_000, max_evaluations=1 << 16))
    spec = dict(path=path, **({"amount_in": amount} if exact_in else {"amount_out": amount}))
    found = analyzer.analyze(TX, [spec], exchange=exchange, base_fee=7, block_number=11)
    reserves = {p.address: (p.reserve0, p.reserve1) for p in pools}
    model = apply_swap(reserves, pools, exchange, path, amount, exact_in)
    if model is None:
        assert found == []
        return
    after, touched = model
    expected = brute_force(table, after, touched)
    got = {op.pools: (op.amount_in, op.profit) for op in found}
    assert got == expected
    stats = analyzer.stats()
    assert stats["sized_near"] == 0 and stats["opportunities"] == len(found)
    for op in found:
        assert op.kind is OpportunityKind.BACKRUN and op.trigger_tx == TX.hash
        assert op.token_path[0] == op.token_path[-1] == W
        assert op.gas_estimate == 60_000 + 90_000 * len(op.pools)
        assert op.profit_net_of_gas == op.profit - op.gas_estimate * 7
        assert op.block_number == 11 and op.received_ns == 77 and op.detected_ns > 0
    assert table.reserves_of(b"\x01" * 20) == (pools[0].reserve0, pools[0].reserve1), \
        "the analyzer changed the table"


@settings(max_examples=40, deadline=None)
@given(r=st.lists(st.integers(10**15, 2**112 - 1), min_size=4, max_size=4),
       amount=st.integers(10**12, 2**100))
def test_large_reserves_profit_is_exact_for_the_chosen_input(r, amount):
    pools = [V2Pool(b"\x01" * 20, W, A, r[0], r[1]), V2Pool(b"\x02" * 20, W, A, r[2], r[3], exchange=1)]
    table = PoolTable(pools, weth=W)
    found = Analyzer(table).analyze(TX, [dict(path=[W, A], amount_in=amount)])
    model = apply_swap({p.address: (p.reserve0, p.reserve1) for p in pools}, pools, 0, [W, A], amount)
    for op in found:
        hops = next(h for h in table.cycles_through(op.pools[0]) if tuple(x[0] for x in h) == op.pools)
        assert cycle_output(table, model[0], hops, op.amount_in) - op.amount_in == op.profit > 0


def test_skips_are_counted():
    pools = [V2Pool(b"\x01" * 20, W, A, 1000, 1000), V2Pool(b"\x02" * 20, W, A, 1000, 1000, exchange=1)]
    an = Analyzer(PoolTable(pools, weth=W))
    assert an.analyze(TX, [dict(path=[W, A], amount_in=10, v3=True),
                           dict(path=[W, A], amount_in=10, fee_on_transfer=True),
                           dict(path=[W, B], amount_in=10),
                           dict(path=[W, A], amount_in=100, limit=10**9)], exchange=0) == []
    s = an.stats()
    # the V3 swap has no V3 pool in the table: skipped (v3_skipped) for that reason (no_pool)
    assert (s["swaps"], s["v3_skipped"], s["fee_on_transfer_skipped"], s["no_pool"],
            s["would_revert"], s["simulated"]) == (4, 1, 1, 2, 1, 0)


def test_work_per_transaction_is_bounded():
    pools = [V2Pool(bytes([k]) * 20, W, A, 1000, 1000 + k, exchange=k) for k in range(1, 12)]
    table = PoolTable(pools, weth=W)
    an = Analyzer(table, AnalyzerConfig(max_cycles=5, max_sized=1))
    found = an.analyze(TX, [dict(path=[W, A], amount_in=300)], exchange=1)
    s = an.stats()
    assert s["cycles_screened"] == 5 and s["cycles_truncated"] == 2 * 10 - 5
    assert len(found) <= 1


def test_bad_config_is_named():
    with pytest.raises(ConfigError, match="max_sized"):
        AnalyzerConfig(max_sized=0)
    with pytest.raises(TypeError, match="AnalyzerConfig"):
        Analyzer(PoolTable([]), {"max_cycles": 1})
    with pytest.raises(ValueError, match="path"):
        Analyzer(PoolTable([])).analyze(TX, [dict(path=[W], amount_in=1)])


@settings(max_examples=20, deadline=None)
@given(scenarios())
def test_standing_arbitrage_equals_an_exact_brute_force(scenario):
    pools = scenario[0]
    table = PoolTable(pools, weth=W)
    analyzer = Analyzer(table, AnalyzerConfig(max_sized=64, max_evaluations=1 << 16))
    found = analyzer.arbitrage(base_fee=3, block_number=9)
    reserves = {p.address: (p.reserve0, p.reserve1) for p in pools}
    expected = brute_force(table, reserves, [p.address for p in pools])
    assert {op.pools: (op.amount_in, op.profit) for op in found} == expected
    for op in found:
        assert op.kind is OpportunityKind.ARBITRAGE and op.trigger_tx is None
        assert op.block_number == 9 and op.received_ns == op.detected_ns > 0


@settings(max_examples=20, deadline=None)
@given(scenarios(), st.data())
def test_arbitrage_through_touched_pools_equals_a_brute_force_once_per_block(scenario, data):
    """What the Pipeline runs after a block's Syncs: only the cycles through the pools they
    changed, each once per block, equal to an exact brute force over those cycles."""
    pools = scenario[0]
    table = PoolTable(pools, weth=W)
    analyzer = Analyzer(table, AnalyzerConfig(max_sized=64, max_evaluations=1 << 16))
    touched = data.draw(st.lists(st.sampled_from([p.address for p in pools]), min_size=1, max_size=4))
    found = analyzer.arbitrage(base_fee=3, block_number=9, pools=touched)
    reserves = {p.address: (p.reserve0, p.reserve1) for p in pools}
    assert {op.pools: (op.amount_in, op.profit) for op in found} == brute_force(table, reserves, touched)
    assert len({op.pools for op in found}) == len(found)
    assert all(op.kind is OpportunityKind.ARBITRAGE and op.block_number == 9 for op in found)
    # the same block again: every cycle was screened for it already
    assert analyzer.arbitrage(base_fee=3, block_number=9, pools=touched) == []
    # the next block screens them again
    again = analyzer.arbitrage(base_fee=3, block_number=10, pools=touched)
    assert sorted((op.pools, op.amount_in, op.profit) for op in again) == \
        sorted((op.pools, op.amount_in, op.profit) for op in found)
    with pytest.raises(KeyError, match="unknown pool"):
        analyzer.arbitrage(pools=[b"\x77" * 20])


def test_standing_arbitrage_config_is_checked():
    with pytest.raises(ConfigError, match="standing_arbitrage"):
        AnalyzerConfig(standing_arbitrage=1)
    with pytest.raises(ConfigError, match="max_arbitrage_cycles"):
        AnalyzerConfig(max_arbitrage_cycles=0)


def test_arbitrage_scan_is_bounded_and_counted():
    pools = [V2Pool(b"\x01" * 20, W, A, 10**6, 10**6), V2Pool(b"\x02" * 20, W, A, 10**6, 2 * 10**6, exchange=1),
             V2Pool(b"\x03" * 20, W, A, 10**6, 3 * 10**6, exchange=2)]
    table = PoolTable(pools, weth=W)
    assert table.cycle_count == 6
    analyzer = Analyzer(table, AnalyzerConfig(max_sized=64, max_arbitrage_cycles=2))
    found = analyzer.arbitrage(block_number=1, pools=[b"\x01" * 20, b"\x02" * 20, b"\x03" * 20])
    s = analyzer.stats()
    assert s["cycles_screened"] == 2 and len(found) <= 2
