"""V3 pools in the mempool pipeline: the in-range swap (tallyio.amm.v3_swap_in_range)
against the pure-Python reference loop; the pool table's V3 rows kept from Swap / Mint /
Burn logs and resync states; the analyzer's exact simulation of pending V3 swaps
(crossing a tick is skipped and counted, never mis-sized) and its sizing of mixed V2/V3
cycles, equal to a brute force over every input with the reference math; the log parser
and the tick-bitmap range; BackrunStrategy declining a V3 hop."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyio.amm import get_sqrt_ratio_at_tick
from tallyio.amm import reference as R
from tallyio.amm._v3 import v3_swap_in_range
from tallyio.errors import AmmError
from tallyio.eth.types import PendingTx
from tallyio.mempool import Analyzer, AnalyzerConfig, Pipeline, PoolTable, V2Pool
from tallyio.mempool._wstx import BadRecord
from tallyio.mempool.records import POOL_V3, V3Pool, V3PoolEvent
from tallyio.mempool.v3sync import BURN_TOPIC, MINT_TOPIC, SWAP_TOPIC, initialized_range, parse_v3_log

W, T = b"\x01" * 20, b"\x02" * 20          # W < T: token0 is W
P2, P3 = b"\x22" * 20, b"\x33" * 20
TX = PendingTx(hash=b"\x05" * 32, sender=b"\x06" * 20, to=b"\x07" * 20, nonce=0, value=0, gas=0,
               max_fee_per_gas=0, max_priority_fee_per_gas=0, input=b"", tx_type=2, received_ns=0)


def v3pool(liquidity=10**7, tick=0, lower=-600, upper=600, spacing=60, fee=3000, price=None):
    return V3Pool(P3, W, T, fee, spacing, price or get_sqrt_ratio_at_tick(tick), liquidity, tick, lower, upper)


# ---- the in-range swap: C against the Python reference -------------------------------------

@settings(max_examples=300, deadline=None)
@given(tick=st.integers(-3000, 3000), spacing=st.sampled_from([1, 10, 60, 200]),
       liquidity=st.integers(10**3, 10**24), amount=st.integers(1, 10**22), exact_in=st.booleans(),
       down=st.booleans(), fee=st.sampled_from([100, 500, 3000, 10000]), width=st.integers(1, 40))
def test_swap_in_range_equals_the_reference_loop(tick, spacing, liquidity, amount, exact_in, down, fee, width):
    lower = tick // spacing * spacing - spacing * (width // 2)
    upper = tick // spacing * spacing + spacing * (width - width // 2 + 1)
    price = R.sqrt_ratio_at_tick(tick)
    signed = amount if exact_in else -amount
    try:
        want = R.swap_in_range(price, liquidity, tick, signed, down, fee, spacing, lower, upper)
    except R.Revert:
        with pytest.raises(AmmError):          # the same require() fails in C
            v3_swap_in_range(price, liquidity, tick, signed, down, fee, spacing, lower, upper)
        return
    got = v3_swap_in_range(price, liquidity, tick, signed, down, fee, spacing, lower, upper)
    assert (got.amount_in, got.amount_out, got.sqrt_price_x96, got.crosses_tick) == want[:3] + (want[4],)
    if got.tick is not None:
        assert got.tick == want[3]
    if not got.crosses_tick:
        assert (got.amount_in if exact_in else got.amount_out) == amount
        assert lower <= want[3] < upper


def test_swap_in_range_steps_over_bitmap_words_like_the_pool():
    # spacing 1: a word is 256 ticks, so moving ~1000 ticks takes several steps, each rounded
    # on its own: the result differs from one step to the far tick, and equals the reference loop
    price = get_sqrt_ratio_at_tick(0)
    got = v3_swap_in_range(price, 10**18, 0, 6 * 10**16, False, 3000, 1, -5000, 5000)
    want = R.swap_in_range(price, 10**18, 0, 6 * 10**16, False, 3000, 1, -5000, 5000)
    assert got.tick > 512 and not got.crosses_tick
    assert (got.amount_in, got.amount_out, got.sqrt_price_x96, got.tick) == want[:4]


def test_swap_in_range_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tick must lie"):
        v3_swap_in_range(2**96, 10**18, 700, 10, True, 3000, 60, -600, 600)
    with pytest.raises(ValueError, match="tick_spacing"):
        v3_swap_in_range(2**96, 10**18, 0, 10, True, 3000, 0, -600, 600)
    with pytest.raises(ValueError, match="max_steps"):
        v3_swap_in_range(2**96, 10**18, 0, 10, True, 3000, 60, -600, 600, max_steps=0)
    # a step budget that is too small is reported as crossing, never as a result
    assert v3_swap_in_range(2**96, 10**18, 0, 6 * 10**16, False, 3000, 1, -5000, 5000, max_steps=1).crosses_tick


# ---- the pool table's V3 rows --------------------------------------------------------------

def test_v3_rows_in_the_table_and_the_cycles():
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), v3pool()], weth=W)
    assert table.stats()["v3_pools"] == 1 and table.cycle_count == 2
    assert table.v3_pool(0, T, W, 3000) == P3 and table.v3_pool(0, W, T, 500) is None
    assert table.pair(0, W, T) == P2                     # the V2 pair index never returns a V3 pool
    assert table.pool(1) == v3pool() and table.v3_in_range(P3)
    assert table.reserves[1, 0] == pytest.approx(10**7) and table.reserves[1, 1] == pytest.approx(10**7)
    with pytest.raises(ValueError, match="V3 pool"):
        table.reserves_of(P3)
    with pytest.raises(KeyError):
        table.v3_in_range(P2)
    copy = PoolTable.from_bytes(table.to_bytes())
    assert copy.pools() == table.pools() and copy.to_bytes()[:8] == b"TIOPOOL2"
    assert PoolTable([V2Pool(P2, W, T, 5, 7)]).to_bytes()[:8] == b"TIOPOOL1"
    with pytest.raises(ValueError, match="tick must lie"):
        PoolTable([v3pool(tick=600)])
    with pytest.raises(ValueError, match="fee_pips"):
        PoolTable([v3pool(fee=10**6)])
    with pytest.raises(ValueError, match="bytes after"):
        PoolTable.from_bytes(table.to_bytes() + b"\x00")


def test_v3_events_keep_the_state():
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), v3pool(liquidity=10**9)], weth=W)
    p = get_sqrt_ratio_at_tick(-100)
    assert table.apply_v3_event(V3PoolEvent(P3, "swap", p, 10**9, -100))
    assert table.pool(1)[5:10] == (p, 10**9, -100, -600, 600)
    # a mint containing the tick adds liquidity and narrows the range to its nearer bounds
    table.apply_v3_event(V3PoolEvent(P3, "mint", liquidity=5, tick_lower=-120, tick_upper=300))
    assert table.pool(1)[6:10] == (10**9 + 5, -100, -120, 300)
    # a mint outside the tick: liquidity unchanged, its nearer bound narrows the range
    table.apply_v3_event(V3PoolEvent(P3, "mint", liquidity=7, tick_lower=120, tick_upper=240))
    assert table.pool(1)[6:10] == (10**9 + 5, -100, -120, 120)
    # a burn containing the tick removes liquidity; the range is kept (narrower is safe)
    table.apply_v3_event(V3PoolEvent(P3, "burn", liquidity=5, tick_lower=-120, tick_upper=300))
    assert table.pool(1)[6:10] == (10**9, -100, -120, 120)
    # a Swap log past the range: the swap crossed a tick, the range is lost until a resync
    assert table.apply_v3_event(V3PoolEvent(P3, "swap", get_sqrt_ratio_at_tick(130), 10**9 - 7, 130))
    assert not table.v3_in_range(P3) and table.stats()["v3_range_lost"] == 1
    table.apply_v3_event(V3PoolEvent(P3, "state", get_sqrt_ratio_at_tick(130), 10**9 - 7, 130, 120, 240))
    assert table.v3_in_range(P3) and table.pool(1)[8:10] == (120, 240)
    # a burn larger than our liquidity: our state disagrees with the chain: resync needed
    table.apply_v3_event(V3PoolEvent(P3, "burn", liquidity=10**12, tick_lower=-600, tick_upper=600))
    assert not table.v3_in_range(P3)
    assert not table.apply_v3_event(V3PoolEvent(P2, "swap", 2**96, 1, 0))       # a V2 pool: counted
    assert table.stats()["v3_events_unknown"] == 1
    with pytest.raises(ValueError, match="kind"):
        table.apply_v3_event(V3PoolEvent(P3, "flash"))
    with pytest.raises(ValueError, match="tick_lower must be < tick_upper"):
        table.apply_v3_event(V3PoolEvent(P3, "mint", liquidity=1, tick_lower=60, tick_upper=60))
    with pytest.raises(ValueError, match="sqrt_price"):
        table.apply_v3_event(V3PoolEvent(P3, "swap", 1, 1, 0))
    from tallyio.eth.types import SyncEvent
    assert not table.apply_sync(SyncEvent(P3, 5, 7, 1, 0, b"\x00" * 32))        # no Sync for a V3 pool


# ---- the analyzer ----------------------------------------------------------------------------

def brute_force(v2_reserves, pool, start_down, top):
    """Best (amount_in, profit) of the W -> T -> W cycle through the V2 pair and the V3 pool
    (either order), every input 1 .. top, with the Python reference math; V3 hops must stay
    in range."""
    r0, r1 = v2_reserves
    best = (0, 0)
    for x in range(1, top + 1):
        for v2_first in (True, False):
            if v2_first:
                y = R.amount_out(x, r0, r1) if x else 0
                if y == 0:
                    continue
                _, out, _, _, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, pool.tick, y, False,
                                                        pool.fee_pips, pool.tick_spacing, pool.tick_lower,
                                                        pool.tick_upper)
            else:
                _, y, _, _, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, pool.tick, x, True,
                                                      pool.fee_pips, pool.tick_spacing, pool.tick_lower,
                                                      pool.tick_upper)
                out = R.amount_out(y, r1, r0) if y else 0
            if not crosses and out - x > best[1]:
                best = (x, out - x)
    return best


@pytest.mark.parametrize("victim", [dict(amount_in=100_000), dict(amount_out=90_000, limit=200_000)])
def test_a_pending_v3_swap_makes_a_v2_v3_cycle_sized_exactly(victim):
    pool = v3pool()
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), pool], weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=1 << 18))    # the whole domain: certified
    [op] = an.analyze(TX, [dict(path=[W, T], v3=True, fees=[3000], **victim)])
    s = an.stats()
    assert (s["v3_simulated"], s["v3_skipped"], s["mixed_cycles_sized"], s["sized_exact"]) == (1, 0, 1, 1)
    assert op.pool_kinds == (0, POOL_V3) and op.pools == (P2, P3) and op.token_path == (W, T, W)
    # the pool after the victim, by the reference loop
    signed = victim.get("amount_in") or -victim["amount_out"]
    _, _, price, tick, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, 0, signed, True, 3000, 60,
                                                 -600, 600)
    assert not crosses
    after = pool._replace(sqrt_price_x96=price, tick=tick)
    assert (op.amount_in, op.profit) == brute_force((10**7, 10**7), after, True, 70_000)


def test_a_v3_swap_that_crosses_a_tick_is_counted_and_not_sized():
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), v3pool()], weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=1 << 17))
    assert an.analyze(TX, [dict(path=[W, T], amount_in=10**6, v3=True)]) == []    # ~ -2000 ticks past -600
    s = an.stats()
    assert (s["v3_crosses_tick"], s["v3_skipped"], s["v3_simulated"], s["opportunities"]) == (1, 1, 0, 0)
    assert an.analyze(TX, [dict(path=[W, T], amount_in=10**5, v3=True, fees=[500])]) == []   # no 0.05 % pool
    assert an.stats()["no_pool"] == 1
    assert an.analyze(TX, [dict(path=[W, T], amount_in=10**5, v3=True, limit=10**6)]) == []  # amountOutMinimum
    assert an.stats()["would_revert"] == 1
    table.apply_v3_event(V3PoolEvent(P3, "swap", get_sqrt_ratio_at_tick(700), 10**7, 700))  # range lost
    assert an.analyze(TX, [dict(path=[W, T], amount_in=10**3, v3=True)]) == []
    assert an.stats()["v3_range_unknown"] == 1 and an.stats()["v3_skipped"] == 4
    with pytest.raises(ValueError, match="one fee per hop"):
        an.analyze(TX, [dict(path=[W, T], amount_in=1, v3=True, fees=[])])


def test_a_multi_hop_v3_swap_and_the_standing_scan():
    U = b"\x03" * 20
    p_wt = v3pool(liquidity=10**9)
    p_tu = V3Pool(b"\x44" * 20, T, U, 500, 10, 2**96, 10**9, 0, -1000, 1000)
    table = PoolTable([V2Pool(P2, W, T, 10**9, 10**9), p_wt, p_tu, V2Pool(b"\x55" * 20, W, U, 10**9, 10**9)],
                      weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=64, max_sized=4))
    ops = an.analyze(TX, [dict(path=[W, T, U], amount_in=2 * 10**7, v3=True, fees=[3000, 500])])
    s = an.stats()
    assert s["v3_simulated"] == 1 and ops and s["sized_near"] >= 1, s
    _, t_out, _, _, _ = R.swap_in_range(p_wt.sqrt_price_x96, 10**9, 0, 2 * 10**7, True, 3000, 60, -600, 600)
    _, u_out, _, _, crosses = R.swap_in_range(2**96, 10**9, 0, t_out, False, 500, 10, -1000, 1000)
    assert not crosses
    _, _, price_wt, tick_wt, _ = R.swap_in_range(p_wt.sqrt_price_x96, 10**9, 0, 2 * 10**7, True, 3000, 60,
                                                 -600, 600)
    _, _, price_tu, tick_tu, _ = R.swap_in_range(2**96, 10**9, 0, t_out, True, 500, 10, -1000, 1000)
    state = {P2: (10**9, 10**9), b"\x55" * 20: (10**9, 10**9),
             P3: p_wt._replace(sqrt_price_x96=price_wt, tick=tick_wt),
             b"\x44" * 20: p_tu._replace(sqrt_price_x96=price_tu, tick=tick_tu)}

    def output(op, x):       # the cycle's exact output on the post-victim state, reference math
        for pool, tin in zip(op.pools, op.token_path):
            s = state[pool]
            if isinstance(s, V3Pool):
                _, x, _, _, crosses = R.swap_in_range(s.sqrt_price_x96, s.liquidity, s.tick, x, tin == s.token0,
                                                      s.fee_pips, s.tick_spacing, s.tick_lower, s.tick_upper)
                assert not crosses
            else:
                token0 = table.pool(table.index_of(pool)).token0
                rin, rout = s if tin == token0 else s[::-1]
                x = R.amount_out(x, rin, rout) if x else 0
        return x

    for op in ops:           # every reported profit is the exact cycle output on the post-victim state
        assert op.profit > 0 and POOL_V3 in op.pool_kinds
        assert output(op, op.amount_in) - op.amount_in == op.profit
        assert all(output(op, op.amount_in + d) - op.amount_in - d <= op.profit for d in (-1, 1))
    # a V3 state with no pending swap: a standing ARBITRAGE scan sizes the same kind of cycle
    table.apply_v3_event(V3PoolEvent(P3, "swap", get_sqrt_ratio_at_tick(-300), 10**9, -300))
    [arb] = an.arbitrage(pools=[P3])[:1]
    assert arb.kind.name == "ARBITRAGE" and POOL_V3 in arb.pool_kinds and arb.profit > 0


def test_the_pipeline_applies_v3_events_and_backrun_declines_v3_hops():
    from tallyio.engine.backrun import BackrunStrategy
    from tallyio.engine.strategy import StrategyContext

    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), v3pool()], weth=W)
    with Pipeline(table, routers_v3=[b"\x07" * 20]) as pipe:
        pipe.feed(V3PoolEvent(P3, "swap", get_sqrt_ratio_at_tick(-300), 10**7, -300, block_number=9))
        assert pipe.scan_arbitrage() == 1
        op = pipe.next_opportunity(timeout=0)
        assert pipe.stats()["pipeline"]["v3_events"] == 1 and table.pool(1).tick == -300
    assert op.pool_kinds == (0, POOL_V3) and op.block_number == 10
    strategy = BackrunStrategy(table)
    assert strategy.on_opportunity(op, StrategyContext(routers={0: b"\x77" * 20})) == []
    assert strategy.declined["v3_hop"] == 1


# ---- logs and the tick bitmap ----------------------------------------------------------------

def word(value):
    return (value % 2**256).to_bytes(32, "big").hex()


def test_parse_v3_logs():
    base = {"address": "0x" + P3.hex(), "blockNumber": "0x7", "logIndex": "0x2"}
    swap = dict(base, topics=["0x" + SWAP_TOPIC.hex(), "0x" + "00" * 32, "0x" + "00" * 32],
                data="0x" + word(5) + word(-4) + word(2**96) + word(10**18) + word(-3))
    assert parse_v3_log(swap) == V3PoolEvent(P3, "swap", 2**96, 10**18, -3, 0, 0, 7, 2)
    burn = dict(base, topics=["0x" + BURN_TOPIC.hex(), "0x" + "00" * 32, "0x" + word(-60), "0x" + word(60)],
                data="0x" + word(9) + word(1) + word(1))
    assert parse_v3_log(burn)[1:7] == ("burn", 0, 9, 0, -60, 60)
    for bad, reason in ((dict(swap, data="0x00"), "bad_field"), ([], "bad_type"),
                        (dict(swap, topics=["0x" + "11" * 32]), "not_v3"),
                        (dict(burn, topics=burn["topics"][:3]), "bad_field"),
                        (dict(swap, data="0x" + word(5) + word(-4) + word(2**160) + word(1) + word(0)), "bad_field"),
                        (dict(burn, topics=["0x" + MINT_TOPIC.hex()] + burn["topics"][1:]), "bad_field"),
                        (dict(swap, address="0x12"), "bad_field"), (dict(swap, logIndex=7), "bad_field")):
        with pytest.raises(BadRecord) as err:
            parse_v3_log(bad)
        assert err.value.reason == reason


def test_read_v3_state_rejects_malformed_answers():
    from tallyio.mempool.v3sync import read_v3_state

    # a node's answers are external input; a fake `call` is the only way to produce these faults
    def node(slot0=None, liquidity=None):
        def call(method, params):
            data = params[0]["data"]
            if data.startswith("0x3850c7bd"):                       # slot0()
                return slot0 if slot0 is not None else "0x" + word(2**96) + word(0) + word(0) * 5
            if data.startswith("0x1a686502"):                       # liquidity()
                return liquidity if liquidity is not None else "0x" + word(10**18)
            if data.startswith("0xd0c93a7c"):                       # tickSpacing()
                return "0x" + word(60)
            return "0x" + word(1 << 10 if data.endswith(word(0)) else 1 << 246)   # tickBitmap(0 / -1)
        return call

    state = read_v3_state(node(), P3, "0x10")
    assert state[1:8] == ("state", 2**96, 10**18, 0, -600, 600, 16)
    for bad in (dict(slot0="0x12"), dict(slot0="latest"), dict(slot0="0xzz"), dict(liquidity="0x" + word(2**130))):
        with pytest.raises(BadRecord) as err:
            read_v3_state(node(**bad), P3, "latest")
        assert err.value.reason == "bad_v3_state"
    from tallyio.mempool import NodeSource
    with pytest.raises(ValueError, match="ws://"):
        NodeSource("http://127.0.0.1:1", print, v3_pools=[P3])


def test_initialized_range_from_bitmap_words():
    # spacing 60: ticks -600 (word -1, bit 246) and 600 (word 0, bit 10)
    assert initialized_range(0, 60, {-1: 1 << 246, 0: 1 << 10}) == (-600, 600)
    assert initialized_range(600, 60, {0: 1 << 10}) == (600, 15360 - 60)   # at an initialized tick
    assert initialized_range(-61, 60, {-1: 1 << 255 | 1 << 246, 0: 0}) == (-600, -60)   # -60 is bit 255
    # no word beyond the ones read: the last word's edge bounds the range (narrower: safe)
    assert initialized_range(0, 1, {0: 0}) == (0, 255)
