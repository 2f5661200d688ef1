"""The decoder on real mainnet transactions (shared/data/mainnet, see its README): every
router swap decodes to the fields eth-abi gave (``decoded_input``), multicall-wrapped
ones too, and nothing in 2,841 real transactions crashes or is miscounted."""
import json
from collections import Counter

import pytest

pytest.importorskip("eth_abi")   # eth_strategies builds on the oracle (test extra)

from eth_strategies import expected_swap, swap_view  # noqa: E402
from realparts import mainnet_dir  # noqa: E402
from tallyio.errors import DecodeError  # noqa: E402
from tallyio.eth import DECODE_STATUSES, Decoder, decode_call  # noqa: E402


def _load(name):
    return json.loads((mainnet_dir() / name).read_text())


def _json_value(value):
    """decoded_input's JSON spelling -> tallyio's: big ints come as decimal strings,
    bytes as 0x hex (a V3 path), addresses lowercase hex."""
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _ours(value):
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list):
        return [_ours(v) for v in value]
    return value


@pytest.fixture(scope="module")
def router_calls():
    return _load("router_calls.json")


def test_every_router_swap_decodes_to_decoded_input(router_calls):
    rows = [r for r in router_calls if "decoded_input" in r]
    assert len(rows) == 242
    by_function = Counter()
    for row in rows:
        call = decode_call(row["input"])
        assert call is not None and call.function == row["function"], row["transaction_hash"]
        assert {k: _ours(v) for k, v in call.args.items()} == \
            {k: _json_value(v) for k, v in row["decoded_input"].items()}, row["transaction_hash"]
        assert len(call.swaps) == 1
        assert swap_view(call.swaps[0]) == expected_swap(call.function, call.args)
        by_function[call.function] += 1
    print("\nreal router swaps decoded, by function:", dict(by_function))


def test_multicall_wrapped_swaps_decode_like_their_own_trace_rows(router_calls):
    rows = {(r["transaction_hash"], tuple(r["trace_address"])): r for r in router_calls}
    multicalls = [r for r in router_calls if r["function"].startswith("multicall")]
    assert len(multicalls) == 18
    checked = 0
    for row in multicalls:
        call = decode_call(row["input"])
        assert call.function == "multicall" and len(call.args["data"]) == len(call.inner) + call.skipped
        inner = iter(call.inner)
        for j, element in enumerate(call.args["data"]):
            # each element runs as the multicall's j-th (delegate)call: trace address parent + [j]
            child = rows[(row["transaction_hash"], tuple(row["trace_address"]) + (j,))]
            assert child["input"] == "0x" + element.hex()
            decoded = decode_call(element)
            if decoded is None:
                continue
            wrapped = next(inner)
            # the same call; only the container's effects (deadline, ETH-out) may differ on its swaps
            assert (wrapped.function, wrapped.args, wrapped.inner) == (decoded.function, decoded.args, decoded.inner)
            assert [s.path for s in wrapped.swaps] == [s.path for s in decoded.swaps]
            if "decoded_input" in child:
                assert {k: _ours(v) for k, v in decoded.args.items()} == \
                    {k: _json_value(v) for k, v in child["decoded_input"].items()}
                checked += 1
        assert next(inner, None) is None
        # the multicall's swaps are its inner calls' swaps (unwrapWETH9 marks them ETH-out)
        assert [s.path for s in call.swaps] == [s.path for c in call.inner for s in c.swaps]
        if any(c.function == "unwrapWETH9" for c in call.inner):
            assert all(s.eth_out for s in call.swaps)
    assert checked >= 18
    print(f"\n{checked} multicall-wrapped swaps matched their decoded_input")


def test_no_real_transaction_crashes_and_every_outcome_is_counted():
    txs = _load("block_txs.json")
    assert len(txs) == 2841
    decoder = Decoder()
    outcomes = Counter()
    for tx in txs:
        try:
            call = decoder.decode(tx["input"])
        except DecodeError as exc:   # none expected in mined, successful or reverted, router traffic
            outcomes["malformed:" + exc.reason] += 1
            continue
        if call is None:
            outcomes["unknown"] += 1
            assert tx.get("router_function") is None or "Liquidity" in tx["router_function"]
        else:
            outcomes["decoded"] += 1
            outcomes["swaps"] += len(call.swaps)
            if tx.get("router") is None:
                # the decoder goes by ABI, not by address (the filter knows the routers): a V2
                # fork with Router02's ABI decodes, and so does another periphery contract's
                # multicall, whose inner calls are not swaps we know
                outcomes["decoded, not a listed router"] += 1
                assert call.function.startswith("swap") or (call.function == "multicall" and not call.swaps)
            elif "swap" in tx["router_function"] or tx["router_function"].startswith(("exact", "multicall")):
                assert call.swaps, tx["transaction_hash"]
    stats = decoder.stats()
    assert sum(stats[s] for s in DECODE_STATUSES) == len(txs)
    assert stats["ok"] == outcomes["decoded"] and stats["unknown"] == outcomes["unknown"]
    assert not [k for k in outcomes if k.startswith("malformed")]
    # every router call among these blocks that swaps is decoded
    swaps_expected = sum(1 for tx in txs if tx.get("router_function") and "Liquidity" not in tx["router_function"])
    assert outcomes["decoded"] - outcomes["decoded, not a listed router"] == swaps_expected
    print(f"\nblock_txs.json: {dict(outcomes)}; counters {stats}")


def test_pool_swap_calls_are_not_router_calls():
    """Pair/pool swap calls (internal calls of the routers) are not what the decoder
    decodes: they come back None, counted as unknown, never as malformed."""
    decoder = Decoder()
    for row in _load("pool_swap_calls.json"):
        assert decoder.decode(row["input"]) is None
    assert decoder.stats()["unknown"] == len(_load("pool_swap_calls.json"))
