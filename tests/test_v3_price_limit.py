"""sqrtPriceLimitX96 from the calldata to the V3 simulation: the decoder carries the limit of
exactInputSingle / exactOutputSingle (SwapRouter and SwapRouter02, bare or in a multicall;
eth-abi is the oracle), and the analyzer stops a swap where the pool's own loop stops (a
binding limit fills less than asked): the backrun it sizes equals a brute force on the pool
state the reference loop gives WITH the limit.  A limit on the wrong side of the price
reverts in the pool (counted, never simulated).  On anvil: tests/test_recording_v3_anvil.py."""
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode

from tallyio.amm import get_sqrt_ratio_at_tick
from tallyio.amm import reference as R
from tallyio.eth import decode_call
from tallyio.eth._keccak import keccak256
from tallyio.eth.types import PendingTx
from tallyio.mempool import Analyzer, AnalyzerConfig, FilterConfig, Pipeline, PoolTable, V2Pool
from tallyio.mempool.records import V3Pool

W, T = b"\x01" * 20, b"\x02" * 20          # W < T: token0 is W
P2, P3 = b"\x22" * 20, b"\x33" * 20
ROUTER = b"\x07" * 20
TX = PendingTx(hash=b"\x05" * 32, sender=b"\x06" * 20, to=ROUTER, nonce=0, value=0, gas=300_000,
               max_fee_per_gas=10**9, max_priority_fee_per_gas=10**9, input=b"", tx_type=2, received_ns=0)

SINGLES = {
    "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))": True,
    "exactOutputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))": True,
    "exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))": False,
    "exactOutputSingle((address,address,uint24,address,uint256,uint256,uint160))": False,
}


def calldata(signature, amount, limit_amount, sqrt_limit, token_in=W, token_out=T, fee=3000):
    with_deadline = SINGLES[signature]
    fields = ["0x" + token_in.hex(), "0x" + token_out.hex(), fee, "0x" + "cc" * 20]
    fields += [2**40] if with_deadline else []
    fields += [amount, limit_amount, sqrt_limit]
    struct_type = signature[signature.index("(") + 1:-1]
    return keccak256(signature.encode())[:4] + abi_encode([struct_type], [tuple(fields)])


@pytest.mark.parametrize("signature", sorted(SINGLES))
@pytest.mark.parametrize("sqrt_limit", [0, 1, 4295128740, 2**96 + 12345, 2**160 - 1])
def test_the_decoder_carries_sqrt_price_limit_as_eth_abi_reads_it(signature, sqrt_limit):
    data = calldata(signature, 10**18, 5, sqrt_limit)
    call = decode_call(data)
    struct_type = signature[signature.index("(") + 1:-1]
    (oracle,) = abi_decode([struct_type], data[4:])
    assert call.args["sqrtPriceLimitX96"] == oracle[-1] == sqrt_limit
    [swap] = call.swaps
    assert swap.sqrt_price_limit == sqrt_limit and swap.protocol == "v3"
    # wrapped in SwapRouter02's multicall(uint256,bytes[]): carried through the unwrap
    outer = keccak256(b"multicall(uint256,bytes[])")[:4] + abi_encode(["uint256", "bytes[]"], [2**40, [data, data]])
    assert [s.sqrt_price_limit for s in decode_call(outer).swaps] == [sqrt_limit, sqrt_limit]


def test_swaps_without_a_limit_carry_zero():
    path = W + (3000).to_bytes(3, "big") + T
    exact_input = keccak256(b"exactInput((bytes,address,uint256,uint256,uint256))")[:4] + abi_encode(
        ["(bytes,address,uint256,uint256,uint256)"], [(path, "0x" + "cc" * 20, 2**40, 10**18, 0)])
    v2 = keccak256(b"swapExactTokensForTokens(uint256,uint256,address[],address,uint256)")[:4] + abi_encode(
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [10**18, 0, ["0x" + W.hex(), "0x" + T.hex()], "0x" + "cc" * 20, 2**40])
    assert [s.sqrt_price_limit for s in decode_call(exact_input).swaps] == [0]
    assert [s.sqrt_price_limit for s in decode_call(v2).swaps] == [0]


def v3pool():
    return V3Pool(P3, W, T, 3000, 60, get_sqrt_ratio_at_tick(0), 10**7, 0, -600, 600)


def brute_force(v2_reserves, pool, top):
    """Best (amount_in, profit) of W -> T -> W through the pair and the pool, either order,
    every input 1 .. top, with the reference math (V3 hops in range)."""
    r0, r1 = v2_reserves
    best = (0, 0)
    for x in range(1, top + 1):
        y = R.amount_out(x, r0, r1)
        if y:
            _, out, _, _, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, pool.tick, y, False,
                                                    pool.fee_pips, pool.tick_spacing, pool.tick_lower, pool.tick_upper)
            if not crosses and out - x > best[1]:
                best = (x, out - x)
        _, y, _, _, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, pool.tick, x, True,
                                              pool.fee_pips, pool.tick_spacing, pool.tick_lower, pool.tick_upper)
        out = R.amount_out(y, r1, r0) if y else 0
        if not crosses and out - x > best[1]:
            best = (x, out - x)
    return best


def pool_after(pool, signed_amount, sqrt_limit):
    paid, got, price, tick, crosses = R.swap_in_range(pool.sqrt_price_x96, pool.liquidity, pool.tick, signed_amount,
                                                      True, 3000, 60, -600, 600, sqrt_limit)
    assert not crosses
    return paid, got, pool._replace(sqrt_price_x96=price, tick=tick)


@pytest.mark.parametrize("victim", [dict(amount_in=100_000), dict(amount_out=90_000, limit=200_000)])
def test_a_binding_limit_stops_the_simulated_swap_where_the_pool_would(victim):
    pool = v3pool()
    signed = victim.get("amount_in") or -victim["amount_out"]
    _, _, unlimited = pool_after(pool, signed, None)
    sqrt_limit = (pool.sqrt_price_x96 + unlimited.sqrt_price_x96) // 2      # halfway: binding
    paid, got, after = pool_after(pool, signed, sqrt_limit)
    assert after.sqrt_price_x96 == sqrt_limit and (paid < abs(signed) if signed > 0 else got < abs(signed))
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), pool], weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=1 << 18))
    [op] = an.analyze(TX, [dict(path=[W, T], v3=True, fees=[3000], sqrt_price_limit=sqrt_limit, **victim)])
    s = an.stats()
    assert (s["v3_simulated"], s["v3_price_limited"], s["v3_skipped"], s["sized_exact"]) == (1, 1, 0, 1)
    assert (op.amount_in, op.profit) == brute_force((10**7, 10**7), after, 70_000)
    assert (op.amount_in, op.profit) != brute_force((10**7, 10**7), unlimited, 70_000)


def test_a_limit_the_swap_never_reaches_changes_nothing():
    pool = v3pool()
    _, _, unlimited = pool_after(pool, 100_000, None)
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), pool], weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=1 << 18))
    free = an.analyze(TX, [dict(path=[W, T], v3=True, amount_in=100_000)])
    loose = an.analyze(TX, [dict(path=[W, T], v3=True, amount_in=100_000,
                                 sqrt_price_limit=unlimited.sqrt_price_x96 - 1)])
    assert [(o.amount_in, o.profit) for o in free] == [(o.amount_in, o.profit) for o in loose] != []
    assert an.stats()["v3_price_limited"] == 0


def test_a_limit_on_the_wrong_side_reverts_in_the_pool():
    pool = v3pool()
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), pool], weth=W)
    an = Analyzer(table, AnalyzerConfig(max_evaluations=1 << 16))
    # W -> T moves the price down: a limit at or above it, or under MIN_SQRT_RATIO, is require(SPL)
    for bad in (pool.sqrt_price_x96, pool.sqrt_price_x96 + 1, 4295128738):
        assert an.analyze(TX, [dict(path=[W, T], v3=True, amount_in=1000, sqrt_price_limit=bad)]) == []
    # T -> W moves it up: a limit at or below it, or at MAX_SQRT_RATIO
    for bad in (pool.sqrt_price_x96, 1461446703485210103287273052203988822378723970342):
        assert an.analyze(TX, [dict(path=[T, W], v3=True, amount_in=1000, sqrt_price_limit=bad)]) == []
    s = an.stats()
    assert (s["would_revert"], s["v3_skipped"], s["v3_simulated"]) == (5, 5, 0)
    with pytest.raises(ValueError, match="uint160"):
        an.analyze(TX, [dict(path=[W, T], v3=True, amount_in=1, sqrt_price_limit=2**160)])


def test_the_pipeline_takes_the_limit_from_the_calldata():
    """decode (nogil, from the raw input) -> analyze: the limit reaches the simulation."""
    pool = v3pool()
    _, _, unlimited = pool_after(pool, 100_000, None)
    sqrt_limit = (pool.sqrt_price_x96 + unlimited.sqrt_price_x96) // 2
    _, _, after = pool_after(pool, 100_000, sqrt_limit)
    data = calldata("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))",
                    100_000, 0, sqrt_limit)
    table = PoolTable([V2Pool(P2, W, T, 10**7, 10**7), pool], weth=W)
    with Pipeline(table, routers_v3=[(ROUTER, 0)], filter_config=FilterConfig(check_nonces=False),
                  analyzer_config=AnalyzerConfig(max_evaluations=1 << 18)) as pipe:
        pipe.feed(TX._replace(input=data))
        pipe.drain()
        s = pipe.stats()["analyzer"]
        ops = pipe.opportunities.get_many(100)
    assert (s["v3_simulated"], s["v3_price_limited"]) == (1, 1)
    assert [(o.amount_in, o.profit) for o in ops] == [brute_force((10**7, 10**7), after, 70_000)]
