"""PositionBook's sizing in C (best_liquidation through amm._aave.LiquidationSizer)
equals the reference path on aave.py (Holding records, user_account_data,
liquidation_amounts to the fixed point): the same opportunities, field for
field, over hundreds of seeded accounts with varied decimals, indexes and
prices; an account past 2**256 raises where the reference raises."""
import random

import pytest

from tallyio.amm.aave import RAY, UINT256_MAX, WAD, ReserveConfig, user_account_data
from tallyio.errors import AaveRevertError
from tallyio.mempool.lending import LendingReserve, PositionBook, _sized

DECIMALS = [18, 6, 8, 18, 2, 0]
POOL = b"\x99" * 20


def _book(rng: random.Random, accounts: int) -> tuple[PositionBook, list[int]]:
    reserves = [LendingReserve(ReserveConfig(bytes([i + 1]) * 20, d, 7000, rng.choice([7500, 8000, 8500]),
                                             rng.choice([10_100, 10_500, 11_000]), rng.choice([0, 1000])),
                               bytes([0x40 + i]) * 20, bytes([0x80 + i]) * 20) for i, d in enumerate(DECIMALS)]
    book = PositionBook(POOL, reserves, eth_asset=0, min_profit_base=1)
    prices = [rng.randrange(10**6, 3 * 10**12) for _ in DECIMALS]
    for i, price in enumerate(prices):
        book.set_price(i, price)
        book.set_reserve_state(i, RAY + rng.randrange(RAY // 5), rng.randrange(RAY // 10),
                               RAY + rng.randrange(RAY // 3), rng.randrange(RAY // 5), 1000)
    for n in range(accounts):
        user = n.to_bytes(20, "big")
        assets = rng.sample(range(len(DECIMALS)), 3)
        value = rng.randrange(10, 100_000) * 10**8
        for c in assets[:rng.choice((1, 2))]:
            book.set_position(user, c, scaled_collateral=value * 10**DECIMALS[c] // prices[c] + rng.randrange(3),
                              scaled_debt=0, use_as_collateral=rng.random() < 0.9)
        debt_value = value * 8000 // rng.randrange(8_000, 16_000)
        for d in assets[2:] + assets[:1] * (rng.random() < 0.2):
            book.set_position(user, d, scaled_collateral=book.scaled(user, d)[0],
                              scaled_debt=debt_value * 10**DECIMALS[d] // prices[d] + rng.randrange(3),
                              use_as_collateral=book.scaled(user, d)[2])
    return book, prices


def _reference_best(book: PositionBook, user: bytes, now_ts: int, base_fee: int, prices=None):
    """The Python sizing PositionBook had before the C path: holdings, user_account_data,
    _sized per pair, the best net profit in the base currency."""
    holdings = book.holdings(user, now_ts, prices)
    hf = user_account_data(holdings).health_factor
    if hf >= WAD:
        return None
    price_of = (lambda i: book.price(i)) if prices is None else (lambda i: prices[i])
    eth_price = price_of(0)
    gas_base = book.gas_estimate * base_fee * eth_price // WAD
    best = None
    for c in holdings:
        if not (c.use_as_collateral and c.collateral and c.reserve.liquidation_threshold):
            continue
        for d in holdings:
            if not d.debt:
                continue
            amounts = _sized(c, d, hf)
            if amounts.debt_to_cover == 0 or amounts.collateral_to_liquidator == 0:
                continue
            net = (amounts.collateral_to_liquidator * c.price // c.reserve.unit
                   - amounts.debt_to_cover * d.price // d.reserve.unit - gas_base)
            if best is None or net > best[0]:
                best = (net, c, d, amounts)
    if best is None or best[0] < book.min_profit_base:
        return None
    net, c, d, amounts = best
    return (d.reserve.asset, c.reserve.asset), amounts.debt_to_cover, amounts.collateral_to_liquidator


def test_best_liquidation_equals_the_reference_path(seed):
    rng = random.Random(seed)
    book, prices = _book(rng, 400)
    now_ts, base_fee = 5000, 3 * 10**9
    compared = found = 0
    for step in range(3):
        moved = [p * rng.randrange(80, 101) // 100 for p in prices]
        for user in book.users():
            op = book.best_liquidation(user, now_ts, 7, base_fee, prices=moved)
            want = _reference_best(book, user, now_ts, base_fee, moved)
            got = None if op is None else (op.token_path, op.amount_in, op.amount_out)
            assert got == want, (user, step)
            compared += 1
            found += op is not None
            # the C sizer and the book's reference helper agree on the health factor and every pair
            sizer_view = book._sized_in_python(user, now_ts, moved)
            assert sizer_view[0] == user_account_data(book.holdings(user, now_ts, moved)).health_factor
    assert found > 20 and compared == 1200


def test_opportunities_carry_the_c_sizing_and_profits(seed):
    rng = random.Random(seed + 1)
    book, prices = _book(rng, 300)
    moved = [p * 85 // 100 for p in prices]
    ops = book.opportunities(5000, 9, 10**9, prices=moved)
    assert ops, "a 15 % drop of every price leaves some account under water"
    for op in ops:
        want = _reference_best(book, op.user, 5000, 10**9, moved)
        assert (op.token_path, op.amount_in, op.amount_out) == want
        assert op.profit_net_of_gas is not None and op.profit_net_of_gas_eth is not None
    nets = [op.profit_net_of_gas for op in ops]
    assert nets == sorted(nets, reverse=True)


def test_an_account_past_uint256_raises_where_the_reference_raises():
    reserve = ReserveConfig(b"\x01" * 20, 0, 7000, 8000, 10500, 0)
    book = PositionBook(POOL, [LendingReserve(reserve, b"\x41" * 20, b"\x81" * 20)])
    book.set_price(0, 10**8)
    book.set_reserve_state(0, 2 * RAY, 0, RAY, 0, 0)
    user = b"\x05" * 20
    book.set_position(user, 0, scaled_collateral=UINT256_MAX // RAY, scaled_debt=10, use_as_collateral=True)
    with pytest.raises(AaveRevertError, match="ray_mul overflow"):
        book.best_liquidation(user, 0, 1)
    with pytest.raises(AaveRevertError, match="ray_mul overflow"):
        book.holdings(user, 0)
    assert book.best_liquidation(b"\x06" * 20, 0, 1) is None   # an account the book never saw
