"""PositionBook.opportunities() sizes every liquidatable account in ONE C call
(``LiquidationSizer.best_liquidations``); these tests hold it to the per-account
path (``best_liquidation``: ``size_account`` per user, the best pair picked in
Python) -- the same opportunities, field for field, in the same order -- over
Hypothesis-drawn books (decimals, indexes, prices, positions, a pending price, gas),
and check the batch call's own contract (None where the reference decides, bad
input named)."""
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tallyio.amm._aave import LiquidationSizer
from tallyio.amm.aave import RAY, ReserveConfig
from tallyio.errors import AaveRevertError
from tallyio.mempool.lending import LendingReserve, PositionBook

from test_lending_sizing import _book


def per_account(book, now_ts, block, base_fee, prices=None, among=None):
    """The per-account path opportunities() took before the batch: best_liquidation per user."""
    ops = []
    for user in book.liquidatable(now_ts, prices, among=among):
        op = book.best_liquidation(user, now_ts, block, base_fee, prices=prices)
        if op is not None:
            ops.append(op)
    ops.sort(key=lambda o: -(o.profit_net_of_gas if o.profit_net_of_gas is not None else o.profit))
    return ops


def same(a, b):
    return [op._replace(detected_ns=0) for op in a] == [op._replace(detected_ns=0) for op in b]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), accounts=st.integers(1, 120), base_fee=st.sampled_from([0, 10**9, 3 * 10**10]),
       drop=st.integers(50, 100), asset=st.integers(0, 5), now=st.integers(1000, 1000 + 86400 * 365))
def test_the_batch_equals_the_per_account_path(seed, accounts, base_fee, drop, asset, now):
    book, prices = _book(random.Random(seed), accounts)
    moved = list(prices)
    moved[asset] = prices[asset] * drop // 100
    for at in (None, moved):
        batch = book.opportunities(now, 7, base_fee, prices=at)
        assert same(batch, per_account(book, now, 7, base_fee, prices=at))


def test_the_batch_finds_opportunities_and_keeps_min_profit(seed):
    book, prices = _book(random.Random(seed), 400)
    ops = book.opportunities(2000, 3, 10**9)
    assert ops, "the seeded book has accounts under water"
    assert same(ops, per_account(book, 2000, 3, 10**9))
    book.min_profit_base = 10**30            # nothing reaches it: every account left out, as per account
    assert book.opportunities(2000, 3, 10**9) == [] == per_account(book, 2000, 3, 10**9)


def test_best_liquidations_hands_back_an_account_past_uint256():
    weth = ReserveConfig(b"\x01" * 20, 18, 8000, 8250, 10500, 1000)
    usdc = ReserveConfig(b"\x02" * 20, 6, 7500, 8000, 10450, 1000)
    sizer = LiquidationSizer([weth, usdc])
    with pytest.raises(RuntimeError, match="set_market first"):
        sizer.best_liquidations([])
    sizer.set_market([1900 * 10**8, 10**8], [RAY, RAY], [RAY, RAY])
    assert sizer.best_liquidations([]) == []
    huge = 2**200
    result = sizer.best_liquidations([([huge, 0], [0, huge], [True, False]),
                                      ([10**18, 0], [0, 1600 * 10**6], [True, False])])
    assert result[0] is None
    hf, c, d, debt, collateral, got, paid = result[1]
    assert (c, d) == (0, 1) and hf < 10**18
    [(hf2, pairs)] = sizer.size_accounts([1900 * 10**8, 10**8], [RAY, RAY], [RAY, RAY],
                                         [([10**18, 0], [0, 1600 * 10**6], [True, False])])
    assert hf2 == hf and (debt, collateral) == (pairs[0][2].debt_to_cover, pairs[0][2].collateral_to_liquidator)
    assert got == collateral * 1900 * 10**8 // 10**18 and paid == debt * 10**8 // 10**6
    with pytest.raises(ValueError, match=r"accounts\[0\] needs one entry per reserve"):
        sizer.best_liquidations([([1], [0, 1], [True, False])])
    with pytest.raises(TypeError, match=r"accounts\[0\] must be"):
        sizer.best_liquidations([5])


def test_an_account_the_batch_hands_back_is_sized_on_the_per_account_path(seed):
    """best_liquidations answers None for an account where an intermediate passes 2**256 - 1 (shown
    above on the sizer); the book then sizes that account with best_liquidation. Such an account
    also fails the screen's exact confirmation first (it raises there, like the chain), so the book
    cannot be brought to that branch with real balances: a sizer wrapper answering None for every
    other account stands in for the fault (the one stand-in of this file)."""
    book, _ = _book(random.Random(seed), 300)
    expected = per_account(book, 2000, 3, 10**9)
    real = LiquidationSizer([r.config for r in book.reserves])

    class HandsBack:
        def set_market(self, *args):
            real.set_market(*args)

        def size_account(self, *args):
            return real.size_account(*args)

        def best_liquidations(self, accounts):
            results = real.best_liquidations(accounts)
            return [None if k % 2 else r for k, r in enumerate(results)]

    book.__dict__["_liquidation_sizer"] = (HandsBack(), [r.config.unit for r in book.reserves], [None, None])
    assert expected and same(book.opportunities(2000, 3, 10**9), expected)


def test_a_book_with_an_account_past_uint256_raises_as_the_per_account_path():
    reserves = [LendingReserve(ReserveConfig(bytes([i + 1]) * 20, 18, 7000, 8000, 10500, 1000),
                               bytes([0x40 + i]) * 20, bytes([0x80 + i]) * 20) for i in range(2)]
    book = PositionBook(b"\x99" * 20, reserves)
    book.set_price(0, 10**8)
    book.set_price(1, 10**8)
    book.set_position(b"\x01" * 20, 0, scaled_collateral=10**18, scaled_debt=0, use_as_collateral=True)
    book.set_position(b"\x01" * 20, 1, scaled_collateral=0, scaled_debt=2 * 10**18, use_as_collateral=False)
    assert same(book.opportunities(0, 1), per_account(book, 0, 1, 0))
    book.set_position(b"\x02" * 20, 0, scaled_collateral=2**250, scaled_debt=0, use_as_collateral=True)
    book.set_position(b"\x02" * 20, 1, scaled_collateral=0, scaled_debt=2**251, use_as_collateral=False)
    with pytest.raises(AaveRevertError, match="ray_mul overflow"):
        per_account(book, 0, 1, 0)
    with pytest.raises(AaveRevertError, match="ray_mul overflow"):
        book.opportunities(0, 1)
