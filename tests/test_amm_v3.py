"""V3 math within a tick range against the pure-Python transcription of v3-core 1.0.1
(tallyio.amm.reference): TickMath over the whole tick range and at every boundary,
SqrtPriceMath and SwapMath on random and edge inputs (the revert paths included), and
one step of the pool's swap loop.  The real V3 data is used for what it can show
without the pools' state (see test_real_v3_swaps_...)."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from realparts import mainnet_dir
from tallyio.amm import (MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, compute_swap_step,
                         get_amount0_delta, get_amount1_delta, get_next_sqrt_price_from_input,
                         get_next_sqrt_price_from_output, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio,
                         v3_swap_within_range)
from tallyio.amm import reference as ref
from tallyio.errors import AmmError, AmmOverflowError

U160 = (1 << 160) - 1
U128 = (1 << 128) - 1
PRICE = st.one_of(st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1), st.integers(1, U160),
                  st.sampled_from([1, MIN_SQRT_RATIO, 2**96, MAX_SQRT_RATIO - 1, U160]),
                  st.integers(MIN_TICK, MAX_TICK).map(ref.sqrt_ratio_at_tick))
LIQUIDITY = st.one_of(st.integers(0, U128), st.integers(1, 2**80), st.sampled_from([0, 1, U128]))
AMOUNT = st.one_of(st.integers(0, 2**256 - 1), st.integers(0, 2**128), st.integers(0, 2**64),
                   st.sampled_from([0, 1, U160, U160 + 1, 2**255, 2**256 - 1]))
FEE = st.one_of(st.sampled_from([0, 100, 500, 3000, 10000, 999999]), st.integers(0, 999999))


def same(ours, theirs, *args):
    """Both return the same value, or both revert (we with AmmError)."""
    try:
        expected = theirs(*args)
    except ref.Revert:
        with pytest.raises(AmmError):
            ours(*args)
        return
    assert ours(*args) == expected


def test_tick_math_endpoints():
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    for bad in (MIN_TICK - 1, MAX_TICK + 1):
        with pytest.raises(AmmError) as info:
            get_sqrt_ratio_at_tick(bad)
        assert info.value.reason == "T"
    for bad in (MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0):
        with pytest.raises(AmmError) as info:
            get_tick_at_sqrt_ratio(bad)
        assert info.value.reason == "R"


@settings(max_examples=1000, deadline=None)
@given(st.integers(MIN_TICK, MAX_TICK))
def test_sqrt_ratio_at_tick_equals_tick_math(tick):
    assert get_sqrt_ratio_at_tick(tick) == ref.sqrt_ratio_at_tick(tick)


def test_every_power_of_two_tick_and_neighbours():
    # each bit of |tick| selects one factor of the table: test each alone and with its neighbours
    for bit in range(20):
        for t in (1 << bit) - 1, 1 << bit, (1 << bit) + 1:
            for tick in (t, -t):
                if MIN_TICK <= tick <= MAX_TICK:
                    assert get_sqrt_ratio_at_tick(tick) == ref.sqrt_ratio_at_tick(tick), tick


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
                 st.integers(MIN_TICK, MAX_TICK - 1).flatmap(
                     lambda t: st.sampled_from([ref.sqrt_ratio_at_tick(t), ref.sqrt_ratio_at_tick(t + 1) - 1,
                                                ref.sqrt_ratio_at_tick(t) + 1]))))
def test_tick_at_sqrt_ratio_equals_tick_math(price):
    tick = get_tick_at_sqrt_ratio(price)
    assert tick == ref.tick_at_sqrt_ratio(price)
    assert get_sqrt_ratio_at_tick(tick) <= price < get_sqrt_ratio_at_tick(tick + 1)


@settings(max_examples=600, deadline=None)
@given(PRICE, LIQUIDITY, AMOUNT, st.booleans())
def test_next_sqrt_price(price, liquidity, amount, zero_for_one):
    same(get_next_sqrt_price_from_input, ref.next_sqrt_price_from_input, price, liquidity, amount, zero_for_one)
    same(get_next_sqrt_price_from_output, ref.next_sqrt_price_from_output, price, liquidity, amount, zero_for_one)


@settings(max_examples=600, deadline=None)
@given(PRICE, PRICE, LIQUIDITY, st.booleans())
def test_amount_deltas(a, b, liquidity, round_up):
    same(get_amount0_delta, ref.amount0_delta, a, b, liquidity, round_up)
    same(get_amount1_delta, ref.amount1_delta, a, b, liquidity, round_up)


@settings(max_examples=800, deadline=None)
@given(PRICE, PRICE, LIQUIDITY, st.one_of(st.integers(-2**255, 2**255 - 1), st.integers(-2**100, 2**100)), FEE)
def test_compute_swap_step(current, target, liquidity, remaining, fee):
    same(compute_swap_step, ref.compute_swap_step, current, target, liquidity, remaining, fee)


def _step_case():
    """A pool state, a swap and the step's end tick, mostly valid, sometimes not."""
    @st.composite
    def build(draw):
        tick = draw(st.integers(MIN_TICK + 1, MAX_TICK - 1))
        price = draw(st.integers(ref.sqrt_ratio_at_tick(tick), ref.sqrt_ratio_at_tick(tick + 1) - 1))
        zero_for_one = draw(st.booleans())
        spacing = draw(st.sampled_from([1, 10, 60, 200]))
        distance = draw(st.integers(0, 300)) * spacing
        tick_next = tick - distance if zero_for_one else tick + 1 + distance
        limit_tick = draw(st.integers(MIN_TICK, MAX_TICK))
        limit = draw(st.one_of(st.just(ref.sqrt_ratio_at_tick(limit_tick)),
                               st.just(MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1),
                               st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO)))
        liquidity = draw(st.one_of(st.integers(1, 2**100), st.integers(0, U128)))
        amount = draw(st.one_of(st.integers(-2**120, 2**120), st.integers(-2**255, 2**255 - 1)))
        fee = draw(FEE)
        return price, liquidity, amount, zero_for_one, fee, limit, tick_next
    return build()


@settings(max_examples=1000, deadline=None)
@given(_step_case())
def test_swap_step_equals_the_pool_loop_body(case):
    try:
        expected = ref.swap_within_range(*case)
    except ref.Revert:
        with pytest.raises(AmmError):
            v3_swap_within_range(*case)
        return
    got = v3_swap_within_range(*case)
    assert (got.amount0, got.amount1, got.sqrt_price_x96, got.tick, got.crosses_tick) == expected
    assert got.amount_in - got.fee_amount >= 0 and got.amount_out >= 0


def test_within_range_and_crossing():
    price, liquidity = get_sqrt_ratio_at_tick(0), 10**21
    small = v3_swap_within_range(price, liquidity, 10**15, True, 3000, MIN_SQRT_RATIO + 1, -60)
    assert not small.crosses_tick and small.amount0 == 10**15 and small.amount1 < 0
    assert small.tick == -1                   # the price fell just below tick 0
    big = v3_swap_within_range(price, liquidity, 10**30, True, 3000, MIN_SQRT_RATIO + 1, -60)
    assert big.crosses_tick and big.sqrt_price_x96 == get_sqrt_ratio_at_tick(-60) and big.tick == -61
    # the limit stops it before the tick: complete, not crossing
    limit = get_sqrt_ratio_at_tick(-30)
    capped = v3_swap_within_range(price, liquidity, 10**30, True, 3000, limit, -60)
    assert not capped.crosses_tick and capped.sqrt_price_x96 == limit and capped.amount0 < 10**30


@pytest.mark.parametrize("args, reason", [
    ((2**96, 10**18, 0, True, 3000, MIN_SQRT_RATIO + 1, -60), "AS"),
    ((2**96, 10**18, 10, True, 3000, 2**96, -60), "SPL"),
    ((2**96, 10**18, 10, True, 3000, MIN_SQRT_RATIO, -60), "SPL"),
    ((2**96, 10**18, 10, False, 3000, MAX_SQRT_RATIO, 60), "SPL"),
])
def test_pool_requires(args, reason):
    with pytest.raises(AmmError) as info:
        v3_swap_within_range(*args)
    assert info.value.reason == reason


@pytest.mark.parametrize("call, exc, words", [
    (lambda: v3_swap_within_range(2**160, 1, 1, True, 3000, 1, 0), ValueError, "sqrt_price_x96 must be < 2**160"),
    (lambda: v3_swap_within_range(2**96, 2**128, 1, True, 3000, 1, 0), ValueError, "liquidity must be < 2**128"),
    (lambda: v3_swap_within_range(2**96, 1, 2**255, True, 3000, 1, 0), ValueError,
     "amount_specified must be an int256"),
    (lambda: v3_swap_within_range(2**96, 1, 1, True, 10**6, 1, 0), ValueError,
     "fee_pips must be an int in [0, 1000000)"),
    (lambda: v3_swap_within_range(2**96, 1, 1, True, 3000, 1, 2**23), ValueError, "tick_next must fit an int24"),
    (lambda: get_sqrt_ratio_at_tick(1.5), TypeError, "tick must be an int"),
])
def test_bad_arguments_name_what_was_wrong(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_overflow_is_its_own_error():
    with pytest.raises(AmmOverflowError):
        get_next_sqrt_price_from_input(U160, U128, 2**256 - 1, False)   # price past 2**160


def test_real_v3_swaps_are_consistent_with_one_step_semantics(capsys):
    """pool_swap_calls.json has each UniswapV3Pool.swap's arguments and its real (amount0, amount1),
    but not the pool's price, liquidity or ticks before the swap, so the price math cannot be
    replayed from it.  What it does pin down is the step accounting: an exact-input swap that
    ended before its price limit spent exactly amount_specified on its input side (fee included),
    as v3_swap_within_range reports; every swap's signs follow zero_for_one."""
    calls = json.loads((mainnet_dir() / "pool_swap_calls.json").read_text())
    v3 = [c for c in calls if c["function"] == "UniswapV3Pool.swap" and not c["error"]]
    exact_in_full = 0
    for call in v3:
        args = call["decoded_input"]
        amount0, amount1 = (int(a) for a in call["decoded_output"])
        specified = int(args["amountSpecified"])
        paid, received = (amount0, amount1) if args["zeroForOne"] else (amount1, amount0)
        assert paid > 0 and received <= 0, call["transaction_hash"]
        if specified > 0 and paid == specified:
            exact_in_full += 1
        elif specified < 0:
            assert -received <= -specified      # never more out than asked
    with capsys.disabled():
        print(f"\nV3 pool swaps: {len(v3)} checked for sign and exact-input accounting "
              f"({exact_in_full} exact-input swaps spent exactly amount_specified); price math not "
              f"replayable without pool state")
    assert len(v3) > 50 and exact_in_full > 0
