"""Uniswap V2 math (tallyio.amm.get_amount_out & co) against a Python transcription
of UniswapV2Library.sol with SafeMath, at the edges, and against every successful
V2 router swap of the real mainnet data."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from realparts import mainnet_dir
from tallyio.amm import get_amount_in, get_amount_out, get_amounts_in, get_amounts_out
from tallyio.errors import AmmError, AmmOverflowError, TallyioError

M256 = 1 << 256
U112 = (1 << 112) - 1


class Revert(Exception):
    pass


def _safe(value):
    """SafeMath: a result past 2**256 - 1 reverts."""
    if value >= M256:
        raise Revert("overflow")
    return value


def ref_amount_out(amount_in, reserve_in, reserve_out, keep=997, base=1000):
    """UniswapV2Library.getAmountOut, line by line."""
    if amount_in <= 0:
        raise Revert("INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise Revert("INSUFFICIENT_LIQUIDITY")
    amount_in_with_fee = _safe(amount_in * keep)
    numerator = _safe(amount_in_with_fee * reserve_out)
    denominator = _safe(_safe(reserve_in * base) + amount_in_with_fee)
    return numerator // denominator


def ref_amount_in(amount_out, reserve_in, reserve_out, keep=997, base=1000):
    """UniswapV2Library.getAmountIn, line by line."""
    if amount_out <= 0:
        raise Revert("INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise Revert("INSUFFICIENT_LIQUIDITY")
    numerator = _safe(_safe(reserve_in * amount_out) * base)
    if amount_out >= reserve_out:
        raise Revert("OUTPUT_EXCEEDS_RESERVE")   # ds-math-sub-underflow, or division by zero
    denominator = _safe((reserve_out - amount_out) * keep)
    return _safe(numerator // denominator + 1)


def _fraction(fee_bps):
    return (1000 - fee_bps // 10, 1000) if fee_bps % 10 == 0 else (10000 - fee_bps, 10000)


def _ours_or_revert(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except AmmOverflowError:
        return "overflow"
    except AmmError as exc:
        return exc.reason


def _ref_or_revert(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Revert as exc:
        return str(exc)


AMOUNT = st.one_of(st.integers(0, 2**128), st.integers(0, M256 - 1), st.sampled_from([0, 1, 2, U112, M256 - 1]))
RESERVE = st.one_of(st.integers(0, U112), st.sampled_from([0, 1, 2, 1000, U112]), st.integers(0, M256 - 1))
FEE = st.one_of(st.just(30), st.integers(0, 9999), st.sampled_from([0, 5, 20, 25, 30, 100, 9999]))


@settings(max_examples=600, deadline=None)
@given(AMOUNT, RESERVE, RESERVE, FEE)
def test_get_amount_out_equals_the_library(amount, reserve_in, reserve_out, fee):
    keep, base = _fraction(fee)
    expected = _ref_or_revert(ref_amount_out, amount, reserve_in, reserve_out, keep, base)
    assert _ours_or_revert(get_amount_out, amount, reserve_in, reserve_out, fee_bps=fee) == expected


@settings(max_examples=600, deadline=None)
@given(AMOUNT, RESERVE, RESERVE, FEE)
def test_get_amount_in_equals_the_library(amount, reserve_in, reserve_out, fee):
    keep, base = _fraction(fee)
    expected = _ref_or_revert(ref_amount_in, amount, reserve_in, reserve_out, keep, base)
    assert _ours_or_revert(get_amount_in, amount, reserve_in, reserve_out, fee_bps=fee) == expected


@settings(max_examples=600, deadline=None)
@given(st.integers(1, 2**128), st.integers(1, U112), st.integers(1, U112), st.integers(0, 9999))
def test_basis_point_form_equals_the_reduced_fraction(amount, reserve_in, reserve_out, fee):
    # (10000-f)x R / (10000 r + (10000-f)x) is (997 x R)/(1000 r + 997 x) for f = 30 with every term
    # times 10: the same floor.  So fee_bps=30 is Uniswap's 997/1000 exactly, for every input in range.
    general = ref_amount_out(amount, reserve_in, reserve_out, 10000 - fee, 10000)
    assert get_amount_out(amount, reserve_in, reserve_out, fee_bps=fee) == general
    if fee == 30:
        assert general == ref_amount_out(amount, reserve_in, reserve_out, 997, 1000)


def test_edges():
    assert get_amount_out(1, U112, U112) == 0
    assert get_amount_out(1, 1, U112) == ref_amount_out(1, 1, U112)
    assert get_amount_out(U112, U112, U112) == ref_amount_out(U112, U112, U112)
    assert get_amount_out(M256 // 997 // U112, 1, U112) == ref_amount_out(M256 // 997 // U112, 1, U112)
    assert get_amount_in(U112 - 1, U112, U112) == ref_amount_in(U112 - 1, U112, U112)
    assert get_amount_in(1, U112, U112) == 2          # floor(...)= 1, +1: the library's rounding
    with pytest.raises(AmmOverflowError):              # amountIn.mul(997) overflows
        get_amount_out(M256 - 1, 1, 1)
    with pytest.raises(AmmOverflowError) as info:
        get_amount_out(2**200, 2**100, 2**100)        # amountInWithFee.mul(reserveOut) overflows
    assert isinstance(info.value, OverflowError) and isinstance(info.value, TallyioError)


@pytest.mark.parametrize("call, reason", [
    (lambda: get_amount_out(0, 1, 1), "INSUFFICIENT_INPUT_AMOUNT"),
    (lambda: get_amount_out(1, 0, 1), "INSUFFICIENT_LIQUIDITY"),
    (lambda: get_amount_out(1, 1, 0), "INSUFFICIENT_LIQUIDITY"),
    (lambda: get_amount_in(0, 1, 1), "INSUFFICIENT_OUTPUT_AMOUNT"),
    (lambda: get_amount_in(5, 10, 5), "OUTPUT_EXCEEDS_RESERVE"),
    (lambda: get_amount_in(6, 10, 5), "OUTPUT_EXCEEDS_RESERVE"),
    (lambda: get_amounts_out(1, []), "INVALID_PATH"),
    (lambda: get_amounts_out(1, [(10, 10)] * 17), "INVALID_PATH"),
    (lambda: get_amounts_out(10, [(10, 10), (0, 10)]), "INSUFFICIENT_LIQUIDITY"),
])
def test_require_failures_are_clear_errors(call, reason):
    with pytest.raises(AmmError) as info:
        call()
    assert info.value.reason == reason and reason in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: get_amount_out(-1, 1, 1), ValueError, "amount_in must be >= 0"),
    (lambda: get_amount_out(1, M256, 1), ValueError, "reserve_in must be < 2**256"),
    (lambda: get_amount_out(1.0, 1, 1), TypeError, "amount_in must be an int"),
    (lambda: get_amount_out(1, 1, 1, fee_bps=10000), ValueError, "fee_bps must be in [0, 10000)"),
    (lambda: get_amount_out(1, 1, 1, fee_bps=-1), ValueError, "fee_bps must be in [0, 10000)"),
    (lambda: get_amount_out(1, 1, 1, fee_bps=0.3), TypeError, "fee_bps must be an int"),
    (lambda: get_amounts_out(1, [(1, 2, 3)]), TypeError, "reserves_path[0] must be a (reserve_in, reserve_out)"),
    (lambda: get_amounts_out(1, 5), TypeError, "reserves_path must be a sequence"),
    (lambda: get_amounts_out(1, [(1, 2)], fee_bps=[30, 30]), ValueError, "fee_bps has 2 entries for 1 hops"),
    (lambda: get_amounts_out(1, [(1, 2), (3, -4)]), ValueError, "reserves_path[1][1] (reserve_out) must be >= 0"),
])
def test_bad_arguments_name_what_was_wrong(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


PATH = st.lists(st.tuples(st.integers(1, U112), st.integers(1, U112), st.integers(0, 9999)), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**120), PATH)
def test_paths_are_the_hops_in_order(amount, path):
    reserves = [(a, b) for a, b, _ in path]
    fees = [f for _, _, f in path]
    expected = [amount]
    try:
        for (a, b), f in zip(reserves, fees):
            expected.append(ref_amount_out(expected[-1], a, b, *_fraction(f)))
    except Revert as exc:
        assert _ours_or_revert(get_amounts_out, amount, reserves, fees) == str(exc)
        return
    assert get_amounts_out(amount, reserves, fees) == expected
    # and backwards: the inputs getAmountsIn asks for
    out = expected[-1]
    if out == 0:
        return
    back = [out]
    try:
        for (a, b), f in zip(reversed(reserves), reversed(fees)):
            back.insert(0, ref_amount_in(back[0], a, b, *_fraction(f)))
    except Revert as exc:
        assert _ours_or_revert(get_amounts_in, out, reserves, fees) == str(exc)
        return
    assert get_amounts_in(out, reserves, fees) == back


# ---- real mainnet swaps ---------------------------------------------------------------------

EXACT_IN = {"swapExactTokensForTokens", "swapExactETHForTokens", "swapExactTokensForETH"}
EXACT_OUT = {"swapTokensForExactTokens", "swapETHForExactTokens", "swapTokensForExactETH"}


def _v2_router_swaps():
    calls = json.loads((mainnet_dir() / "router_calls.json").read_text())
    return [c for c in calls if c.get("router", "").startswith(("UniswapV2Router", "SushiSwapRouter"))
            and c["function"].startswith("swap")]


def _reserves_along(call, backwards):
    """(reserve_in, reserve_out) per hop from the getReserves the router read, in call order:
    a pair's token0 is the lower address, and getReserves returns (reserve0, reserve1).
    getAmountsIn walks the path from its end, so an exact-output swap read them last hop first."""
    path = [a.lower() for a in call["decoded_input"]["path"]]
    reads = call["child_getReserves"][::-1] if backwards else call["child_getReserves"]
    assert len(reads) == len(path) - 1, call["transaction_hash"]
    hops = []
    for i, read in enumerate(reads):
        r0, r1 = int(read["reserves"][0]), int(read["reserves"][1])
        hops.append((r0, r1) if path[i] < path[i + 1] else (r1, r0))
    return hops


def test_every_successful_v2_router_swap_reproduces_exactly(capsys):
    swaps = _v2_router_swaps()
    reproduced, checked, fee_on_transfer, reverted = 0, 0, 0, 0
    for call in swaps:
        if call["error"]:
            reverted += 1
            continue
        if "SupportingFeeOnTransferTokens" in call["function"]:
            fee_on_transfer += 1      # these return no amounts: nothing to compare
            continue
        assert call["function"] in EXACT_IN | EXACT_OUT, call["function"]
        amounts = [int(a) for a in call["decoded_output"][0]]
        hops = _reserves_along(call, backwards=call["function"] in EXACT_OUT)
        if call["function"] in EXACT_IN:
            ours = get_amounts_out(amounts[0], hops)
        else:
            ours = get_amounts_in(amounts[-1], hops)
        checked += 1
        assert ours == amounts, (call["transaction_hash"], call["function"], ours, amounts)
        reproduced += 1
    with capsys.disabled():
        print(f"\nV2 router swaps: {reproduced}/{checked} successful swaps reproduced exactly "
              f"({fee_on_transfer} fee-on-transfer without amounts, {reverted} reverted, of {len(swaps)})")
    assert checked >= 149 and reproduced == checked   # the data holds 149 such swaps
