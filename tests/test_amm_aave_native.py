"""tallyio.amm._aave: the C liquidation sizing equals tallyio.amm.aave's
reference (line by line from LiquidationLogic) on hypothesis-generated inputs,
every overflow boundary of each checked step on both sides, and the collateral
cap binding; the batch entries (size_liquidations, LiquidationSizer) equal the
reference per pair and per account."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from tallyio.amm._aave import LiquidationSizer, liquidation_amounts, size_liquidations, sized_liquidation
from tallyio.amm.aave import (CLOSE_FACTOR_HF_THRESHOLD, RAY, UINT256_MAX, WAD, Holding, LiquidationAmounts,
                              ReserveConfig, normalized_debt, normalized_income, ray_mul, user_account_data)
from tallyio.amm.aave import liquidation_amounts as reference
from tallyio.errors import AaveRevertError

MAX = UINT256_MAX

# values where a checked step flips between fitting and reverting, for the factors it multiplies by
BOUNDARIES = sorted({0, 1, 2, 5000, 9999, 10**4, 10**18, 10**27, 2**64 - 1, 2**64, 2**128, 2**255, MAX - 1, MAX,
                     (MAX - 5000) // 5000, (MAX - 5000) // 5000 + 1, (MAX - 5000) // 10**4, (MAX - 5000) // 10**4 + 1,
                     MAX // 10**4, MAX // 10**4 + 1, MAX // 10500, MAX // 10500 + 1, MAX // 10**18, MAX // 10**18 + 1})


def _outcome(fn, *args):
    """The result, or ('revert', the message's words before the first colon)."""
    try:
        return fn(*args)
    except AaveRevertError as exc:
        return ("revert", str(exc).split(":")[0])


@st.composite
def reserves(draw):
    decimals = draw(st.sampled_from([0, 2, 6, 8, 18, 24, 40, 77]) | st.integers(0, 77))
    if draw(st.integers(0, 9)) == 0:
        return ReserveConfig(b"\x07" * 20, decimals, 0, 0, 0, 0)             # never collateral
    threshold = draw(st.integers(1, 9800))
    # PoolConfigurator: bonus above 100 %, threshold * bonus <= 100 %
    top = max(10_001, (10**8 + 5000) // threshold)
    while (threshold * top + 5000) // 10**4 > 10**4:
        top -= 1
    bonus = draw(st.integers(10_001, max(10_001, min(top, 30_000))))
    if (threshold * bonus + 5000) // 10**4 > 10**4:
        threshold = 1
    fee = draw(st.sampled_from([0, 1, 1000, 5000, 10_000]) | st.integers(0, 10_000))
    return ReserveConfig(b"\x07" * 20, decimals, threshold, threshold, bonus, fee)


amounts = st.integers(0, 10**30) | st.integers(0, MAX) | st.sampled_from(BOUNDARIES)
health_factors = (st.integers(0, 2 * WAD) | st.sampled_from([0, 1, CLOSE_FACTOR_HF_THRESHOLD - 1,
                                                             CLOSE_FACTOR_HF_THRESHOLD,
                                                             CLOSE_FACTOR_HF_THRESHOLD + 1, WAD - 1, WAD, MAX])
                  | st.integers(0, MAX))


@st.composite
def pairs(draw):
    creserve, dreserve = draw(reserves()), draw(reserves())
    collateral = Holding(creserve, draw(amounts), draw(amounts), draw(st.booleans() | st.just(True)), 0)
    debt = Holding(dreserve, draw(amounts), 0, False, draw(amounts))
    hf = draw(health_factors)
    cover = draw(amounts | st.just(MAX))
    # aim a checked product at its edge: the cover that puts debtPrice * cover * collateralUnit at 2**256 - 1
    edge = draw(st.integers(0, 3))
    if edge == 1 and debt.price:
        cover = min(MAX, MAX // (debt.price * creserve.unit) + draw(st.integers(-1, 1)))
    elif edge == 2 and collateral.price:
        # the balance that puts collateralPrice * balance * debtUnit at 2**256 - 1 (the capped path's product)
        balance = max(0, min(MAX, MAX // (collateral.price * dreserve.unit) + draw(st.integers(-1, 1))))
        collateral = Holding(creserve, collateral.price, balance, collateral.use_as_collateral, 0)
    return collateral, debt, hf, max(0, cover)


@settings(max_examples=3000, deadline=None)
@given(pairs())
def test_liquidation_amounts_equals_the_reference(pair):
    collateral, debt, hf, cover = pair
    assert _outcome(liquidation_amounts, collateral, debt, hf, cover) == _outcome(reference, collateral, debt, hf,
                                                                                  cover)


def _reference_sized(collateral, debt, hf):
    """PositionBook's fixed point, on the reference."""
    amounts = reference(collateral, debt, hf, MAX)
    for _ in range(8):
        if amounts.debt_to_cover == 0:
            return amounts
        again = reference(collateral, debt, hf, amounts.debt_to_cover)
        if again == amounts:
            return amounts
        amounts = again
    raise AaveRevertError("no fixed point")


@settings(max_examples=1500, deadline=None)
@given(pairs())
def test_sized_liquidation_equals_the_reference_fixed_point(pair):
    collateral, debt, hf, _ = pair
    assert _outcome(sized_liquidation, collateral, debt, hf) == _outcome(_reference_sized, collateral, debt, hf)


def _realistic_pair(rng: random.Random):
    decimals = rng.choice([0, 2, 6, 8, 18, 24])
    creserve = ReserveConfig(b"\x01" * 20, decimals, 7000, rng.choice([7500, 8000, 8250, 9500]),
                             rng.choice([10_100, 10_450, 10_500, 10_500]), rng.choice([0, 1000, 2000]))
    dreserve = ReserveConfig(b"\x02" * 20, rng.choice([0, 6, 8, 18]), 7000, 8000, 10_500, 1000)
    collateral = Holding(creserve, rng.randrange(1, 10**12), rng.randrange(0, 10**6 * creserve.unit), True, 0)
    debt = Holding(dreserve, rng.randrange(1, 10**12), 0, False, rng.randrange(1, 10**6 * dreserve.unit))
    return collateral, debt, rng.randrange(0, WAD)


def test_every_branch_is_reached_and_equal(seed):
    """A seeded sweep that counts the branches it went through: the cap binding,
    the protocol fee on and off, both close factors, and every revert of the
    sizing (each overflow on both sides of its edge), all equal to the reference."""
    rng = random.Random(seed)
    seen: dict = {}
    for _ in range(4000):
        collateral, debt, hf = _realistic_pair(rng)
        cover = rng.choice([MAX, rng.randrange(0, debt.debt + 2)])
        got = _outcome(liquidation_amounts, collateral, debt, hf, cover)
        assert got == _outcome(reference, collateral, debt, hf, cover)
        if isinstance(got, LiquidationAmounts):
            capped = got.collateral_to_liquidator + got.protocol_fee_collateral == collateral.collateral \
                and got.debt_to_cover < min(cover, debt.debt)
            seen["cap binds" if capped else "cap free"] = seen.get("cap binds" if capped else "cap free", 0) + 1
            seen["close 100%" if hf <= CLOSE_FACTOR_HF_THRESHOLD else "close 50%"] = 1
            seen["fee" if got.protocol_fee_collateral else "no fee"] = 1
    coll_r = ReserveConfig(b"\x01" * 20, 18, 8000, 8000, 10_500, 1000)
    debt_r = ReserveConfig(b"\x02" * 20, 6, 8000, 8000, 10_500, 1000)
    hf = WAD // 2
    cases = []
    for delta in (-1, 0, 1):
        # percentMul(debt, 10000): debt * 10000 + 5000 at the edge
        cases.append((Holding(coll_r, 1, 1, True, 0), Holding(debt_r, 1, 0, False, (MAX - 5000) // 10**4 + delta), hf,
                      1))
        # debtPrice * cover * collateralUnit at the edge
        cases.append((Holding(coll_r, 1, MAX, True, 0), Holding(debt_r, 7, 0, False, 10**60), hf,
                      MAX // (7 * 10**18) + delta))
        # collateralPrice * debtUnit at the edge
        cases.append((Holding(coll_r, MAX // 10**6 + delta, MAX, True, 0), Holding(debt_r, 1, 0, False, 10), hf, 1))
        # percentMul(base, bonus) at the edge: base = cover (prices and units equal)
        same = ReserveConfig(b"\x03" * 20, 0, 8000, 8000, 10_500, 0)
        cases.append((Holding(same, 1, MAX, True, 0), Holding(same, 1, 0, False, MAX // 10**4),
                      hf, (MAX - 5000) // 10_500 + delta))
        # the cap binds and collateralPrice * balance * debtUnit sits at the edge: with 0-decimal tokens,
        # debt price 1e4, collateral price 1e5 and the largest debt percentMul takes, the base collateral is
        # ~MAX / 1e5 and 5 % more binds a balance of MAX // 1e5 (+1 overflows)
        whole = ReserveConfig(b"\x05" * 20, 0, 8000, 8000, 10_500, 0)
        top_debt = (MAX - 5000) // 10**4
        cases.append((Holding(whole, 10**5, MAX // 10**5 + delta, True, 0), Holding(whole, 10**4, 0, False, top_debt),
                      hf, MAX))
        # the cap binds and percentDiv(cap value, bonus) sits at the edge: collateral price 2, debt price 1,
        # so the capped value is 2 * balance against (MAX - 5250) // 1e4
        edge = (MAX - 5250) // 10**4
        cases.append((Holding(whole, 2, edge // 2 + delta, True, 0), Holding(whole, 1, 0, False, top_debt), hf, MAX))
    cases.append((Holding(coll_r, 0, 10, True, 0), Holding(debt_r, 1, 0, False, 10), hf, MAX))       # 0 coll price
    cases.append((Holding(coll_r, 1, 1, True, 0), Holding(debt_r, 0, 0, False, 10**30), hf, MAX))    # 0 debt price
    cases.append((Holding(coll_r, 1, 1, True, 0), Holding(debt_r, 1, 0, False, 10), WAD, MAX))       # HF = 1
    cases.append((Holding(coll_r, 1, 1, False, 0), Holding(debt_r, 1, 0, False, 10), hf, MAX))      # not enabled
    cases.append((Holding(coll_r, 1, 1, True, 0), Holding(debt_r, 1, 0, False, 0), hf, MAX))        # no debt
    reverts = set()
    for collateral, debt, hf_case, cover in cases:
        got = _outcome(liquidation_amounts, collateral, debt, hf_case, cover)
        assert got == _outcome(reference, collateral, debt, hf_case, cover), (collateral, debt, hf_case, cover)
        if isinstance(got, tuple) and got and got[0] == "revert":
            reverts.add(got[1])
    assert seen.get("cap binds", 0) > 10 and seen.get("cap free", 0) > 10
    assert {"close 100%", "close 50%", "fee", "no fee"} <= set(seen)
    # (debtPrice * collateralUnit, a zero debt price and the fee's percentDiv/percentMul cannot revert once the
    # steps before them passed: each is bounded by a product already checked; the C keeps their checks anyway)
    assert {"percent_mul overflow", "debtPrice * debtToCover * collateralUnit", "collateralPrice * debtUnit",
            "collateralPrice * collateral * debtUnit", "percent_div overflow",
            "division by zero (panic 0x12)", "HEALTH_FACTOR_NOT_BELOW_THRESHOLD (45)",
            "COLLATERAL_CANNOT_BE_LIQUIDATED (46)", "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER (47)"} <= reverts, reverts


def test_batch_equals_one_by_one(seed):
    rng = random.Random(seed)
    triples = [_realistic_pair(rng) for _ in range(300)]
    triples.append((triples[0][0], triples[0][1], WAD))   # reverts: returned, the others still sized
    batch = size_liquidations(triples)
    assert len(batch) == len(triples)
    for (collateral, debt, hf), got in zip(triples, batch):
        want = _outcome(_reference_sized, collateral, debt, hf)
        if isinstance(got, AaveRevertError):
            assert want == ("revert", str(got).split(":")[0])
        else:
            assert got == want
    assert isinstance(batch[-1], AaveRevertError)
    assert size_liquidations([]) == []


def test_bad_input_gets_a_clear_error():
    r = ReserveConfig(b"\x07" * 20, 18, 8000, 8500, 10500, 0)
    c, d = Holding(r, 10**8, 10**18, True, 0), Holding(r, 10**8, 0, False, 10**18)
    with pytest.raises(TypeError, match="collateral Holding and a debt Holding"):
        liquidation_amounts(c, (1, 2), WAD // 2, 1)
    with pytest.raises(TypeError, match="debt_to_cover must be an int"):
        liquidation_amounts(c, d, WAD // 2, 1.5)
    with pytest.raises(AaveRevertError, match="debt_to_cover=-1 is not a uint256"):
        liquidation_amounts(c, d, WAD // 2, -1)
    with pytest.raises(AaveRevertError, match="health_factor=.* is not a uint256"):
        sized_liquidation(c, d, 2**256)
    with pytest.raises(TypeError, match="health_factor must be an int"):
        sized_liquidation(c, d, None)
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a"):
        size_liquidations([(c, d)])
    with pytest.raises(ValueError, match="1 to 64 reserves"):
        LiquidationSizer([])
    with pytest.raises(TypeError, match=r"reserves\[0\] must be a ReserveConfig"):
        LiquidationSizer(["weth"])
    sizer = LiquidationSizer([r])
    assert sizer.n_assets == 1
    with pytest.raises(ValueError, match="one value per reserve"):
        sizer.size_accounts([1, 2], [RAY], [RAY], [])
    with pytest.raises(ValueError, match="one entry per reserve"):
        sizer.size_accounts([1], [RAY], [RAY], [([1, 2], [0], [True])])
    with pytest.raises(TypeError, match=r"accounts\[0\] must be"):
        sizer.size_accounts([1], [RAY], [RAY], [([1], [0])])
    with pytest.raises(ValueError, match="must be >= 0"):
        sizer.size_accounts([1], [RAY], [RAY], [([-1], [0], [True])])
    assert sizer.size_accounts([1], [RAY], [RAY], []) == []


SIZER_RESERVES = [
    ReserveConfig(bytes([1]) * 20, 18, 8000, 8250, 10500, 1000),
    ReserveConfig(bytes([2]) * 20, 8, 7000, 7500, 10650, 1000),
    ReserveConfig(bytes([3]) * 20, 6, 7700, 8000, 10450, 1000),
    ReserveConfig(bytes([4]) * 20, 18, 0, 0, 0, 0),
    ReserveConfig(bytes([5]) * 20, 2, 5000, 6500, 11500, 0),
]


def _reference_account(prices, incomes, debt_indexes, account):
    """What PositionBook.best_liquidation computed per account in Python: the
    holdings, the exact health factor, every enabled collateral x debt sized."""
    coll, debt, flags = account
    try:
        holdings = [(a, Holding(SIZER_RESERVES[a], prices[a], ray_mul(coll[a], incomes[a]), flags[a],
                                ray_mul(debt[a], debt_indexes[a])))
                    for a in range(len(SIZER_RESERVES)) if coll[a] or debt[a]]
        hf = user_account_data([h for _, h in holdings]).health_factor
        if hf >= WAD:
            return hf, []
        out = []
        for ci, c in holdings:
            if not (c.use_as_collateral and c.collateral and c.reserve.liquidation_threshold):
                continue
            for di, d in holdings:
                if d.debt:
                    out.append((ci, di, _reference_sized(c, d, hf)))
        return hf, out
    except AaveRevertError:
        return None


def test_sizer_equals_the_reference_per_account(seed):
    rng = random.Random(seed)
    n = len(SIZER_RESERVES)
    prices = [2000 * 10**8, 30_000 * 10**8, 10**8, 5 * 10**8, 3 * 10**8]
    incomes = [normalized_income(RAY + rng.randrange(RAY // 5), rng.randrange(RAY // 10), 0, 10**6)
               for _ in range(n)]
    debt_indexes = [normalized_debt(RAY + rng.randrange(RAY // 3), rng.randrange(RAY // 5), 0, 10**6)
                    for _ in range(n)]
    accounts = []
    for _ in range(600):
        coll = [rng.randrange(0, 10**4 * r.unit) if rng.random() < 0.4 else 0 for r in SIZER_RESERVES]
        debt = [rng.randrange(0, 10**4 * r.unit) if rng.random() < 0.3 else 0 for r in SIZER_RESERVES]
        flags = [rng.random() < 0.85 for _ in SIZER_RESERVES]
        accounts.append((coll, debt, flags))
    # past 2**256 somewhere: the reference raises, the sizer hands the account back (None)
    accounts.append(([MAX] + [0] * (n - 1), [0, 0, 10**6, 0, 0], [True] * n))
    accounts.append(([0] * n, [0] * n, [False] * n))                       # nothing held: HF max, no pairs
    results = LiquidationSizer(SIZER_RESERVES).size_accounts(prices, incomes, debt_indexes, accounts)
    liquidatable = 0
    for account, got in zip(accounts, results):
        assert got == _reference_account(prices, incomes, debt_indexes, account), account
        liquidatable += got is not None and got[0] < WAD
    assert results[-2] is None and results[-1] == (MAX, [])
    assert liquidatable > 50   # the sweep really sized pairs
