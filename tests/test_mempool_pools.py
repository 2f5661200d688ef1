"""The V2 pool table: Sync application against a dict model (hypothesis), snapshots,
the 2- and 3-cycles against an itertools enumeration, and bad input named."""
import itertools

import pytest
from hypothesis import given, settings, strategies as st

from tallyio.eth.types import SyncEvent
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.records import V2Pool

TOKENS = [bytes([0xA0 + k]) * 20 for k in range(6)]
WETH = TOKENS[0]


def addr(k):
    return k.to_bytes(20, "big")


@st.composite
def pool_sets(draw):
    n = draw(st.integers(1, 14))
    pools, seen = [], set()
    for k in range(n):
        a, b = draw(st.lists(st.sampled_from(TOKENS), min_size=2, max_size=2, unique=True))
        exchange = draw(st.integers(0, 2))
        if (exchange, frozenset((a, b))) in seen:
            continue
        seen.add((exchange, frozenset((a, b))))
        pools.append(V2Pool(addr(k + 1), a, b, draw(st.integers(0, 2**112 - 1)),
                            draw(st.integers(0, 2**112 - 1)), draw(st.sampled_from([30, 25, 5])),
                            exchange))
    return pools


def sync(pool, r0, r1, block=1):
    return SyncEvent(pool=pool, reserve0=r0, reserve1=r1, block_number=block, log_index=0,
                     transaction_hash=b"\x00" * 32)


@settings(max_examples=50, deadline=None)
@given(pools=pool_sets(), data=st.data())
def test_syncs_match_a_dict_model_and_snapshots_round_trip(pools, data):
    table = PoolTable(pools, weth=WETH)
    model = {p.address: (p.reserve0, p.reserve1) for p in pools}
    for _ in range(data.draw(st.integers(0, 30))):
        k = data.draw(st.integers(1, len(pools) + 2))
        r0, r1 = data.draw(st.integers(0, 2**112 - 1)), data.draw(st.integers(0, 2**112 - 1))
        known = table.apply_sync(sync(addr(k), r0, r1))
        assert known == (addr(k) in model)
        if known:
            model[addr(k)] = (r0, r1)
    for a, (r0, r1) in model.items():
        assert table.reserves_of(a) == (r0, r1)
        i = table.index_of(a)
        assert table.reserves[i, 0] == float(r0) and table.reserves[i, 1] == float(r1)
        limbs = table.reserves_exact[i]
        assert int(limbs[0, 0]) + (int(limbs[0, 1]) << 64) == r0
    again = PoolTable.from_bytes(table.to_bytes())
    assert again.pools() == table.pools() and again.weth == WETH
    assert again.cycle_count == table.cycle_count


def brute_cycles(pools):
    """Every 2- and 3-cycle as a set of (frozenset of pools, direction-defining tuple)."""
    found = set()
    for length in (2, 3):
        for combo in itertools.permutations(range(len(pools)), length):
            for start in TOKENS:
                token, ok, hops = start, True, []
                for i in combo:
                    p = pools[i]
                    if token not in (p.token0, p.token1):
                        ok = False
                        break
                    out = p.token1 if token == p.token0 else p.token0
                    hops.append((p.address, token, out))
                    token = out
                tokens_in = [h[1] for h in hops]
                if ok and token == start and len(set(tokens_in)) == length:
                    # a canonical form: rotate to the smallest hop
                    k = hops.index(min(hops))
                    found.add(tuple(hops[k:] + hops[:k]))
    return found


@settings(max_examples=40, deadline=None)
@given(pools=pool_sets())
def test_cycles_are_exactly_the_2_and_3_cycles(pools):
    table = PoolTable(pools, weth=WETH)
    stored = set()
    for c in range(table.cycle_count):
        hops = table.cycle(c)
        assert hops[0][1] == hops[-1][2]
        if any(WETH in (h[1], h[2]) for h in hops):
            assert hops[0][1] == WETH, "a cycle through WETH starts at WETH"
        k = hops.index(min(hops))
        stored.add(tuple(hops[k:] + hops[:k]))
    assert stored == brute_cycles(pools)
    assert table.cycle_count == len(stored), "a cycle stored twice"
    for p in pools:
        through = table.cycles_through(p.address)
        assert all(any(h[0] == p.address for h in c) for c in through)


def test_pair_lookup_and_cycle_cap():
    pools = [V2Pool(addr(1), TOKENS[1], WETH, 10, 20), V2Pool(addr(2), WETH, TOKENS[1], 30, 40, exchange=1)]
    table = PoolTable(pools, weth=WETH)
    assert table.pair(0, WETH, TOKENS[1]) == addr(1) and table.pair(1, TOKENS[1], WETH) == addr(2)
    assert table.pair(2, WETH, TOKENS[1]) is None
    assert table.cycle_count == 2
    capped = PoolTable(pools, weth=WETH, max_cycles=1)
    assert capped.cycle_count == 1 and capped.stats()["cycles_truncated"] == 1


def test_bad_input_is_named():
    good = V2Pool(addr(1), TOKENS[1], WETH, 10, 20)
    with pytest.raises(ValueError, match="reserve0"):
        PoolTable([good._replace(reserve0=2**112)])
    with pytest.raises(ValueError, match="token0 == token1"):
        PoolTable([good._replace(token1=TOKENS[1])])
    with pytest.raises(ValueError, match="listed twice"):
        PoolTable([good, good._replace(exchange=1)])
    with pytest.raises(ValueError, match="fee_bps"):
        PoolTable([good._replace(fee_bps=10000)])
    table = PoolTable([good])
    with pytest.raises(ValueError, match="SyncEvent.reserve1"):
        table.apply_sync(sync(addr(1), 1, -1))
    with pytest.raises(TypeError, match="SyncEvent.pool"):
        table.apply_sync(sync("0x01", 1, 1))
    assert table.reserves_of(addr(1)) == (10, 20), "a refused Sync changed nothing"
    with pytest.raises(ValueError, match="magic"):
        PoolTable.from_bytes(b"nope")
    with pytest.raises(ValueError, match="body bytes"):
        PoolTable.from_bytes(table.to_bytes()[:-1])
