"""tallyio.amm.aave: Aave v3 (1.19.3) exact arithmetic, account data and
liquidation sizing.  Hand-worked values follow the Solidity line by line (the
working is in the comments); hypothesis checks the rounding rules against
fractions computed directly."""
from fractions import Fraction
from math import floor

import pytest
from hypothesis import given, settings, strategies as st

from tallyio.amm.aave import (CLOSE_FACTOR_HF_THRESHOLD, HALF_RAY, HALF_WAD, RAY, SECONDS_PER_YEAR, UINT256_MAX,
                              WAD, AccountData, Holding, LiquidationAmounts, ReserveConfig, close_factor,
                              compounded_interest, liquidation_amounts, linear_interest, normalized_debt,
                              normalized_income, percent_div, percent_mul, ray_div, ray_mul, user_account_data,
                              wad_div, wad_mul)
from tallyio.errors import AaveRevertError, TallyioError

WETH = ReserveConfig(b"\x01" * 20, 18, ltv=8000, liquidation_threshold=8250, liquidation_bonus=10500,
                     liquidation_protocol_fee=1000)
WBTC = ReserveConfig(b"\x02" * 20, 8, ltv=7000, liquidation_threshold=7500, liquidation_bonus=10650,
                     liquidation_protocol_fee=1000)
USDC = ReserveConfig(b"\x03" * 20, 6, ltv=7700, liquidation_threshold=8000, liquidation_bonus=10450,
                     liquidation_protocol_fee=1000)
HIGH_LT = ReserveConfig(b"\x04" * 20, 18, ltv=9000, liquidation_threshold=9500, liquidation_bonus=10500,
                        liquidation_protocol_fee=1000)
NO_FEE = ReserveConfig(b"\x05" * 20, 18, ltv=8000, liquidation_threshold=8500, liquidation_bonus=10500,
                       liquidation_protocol_fee=0)
NOT_COLLATERAL = ReserveConfig(b"\x06" * 20, 18, ltv=0, liquidation_threshold=0, liquidation_bonus=0,
                               liquidation_protocol_fee=0)

uint256 = st.integers(0, UINT256_MAX)


def half_up(fraction: Fraction) -> int:
    """Round half up, computed on the fraction itself."""
    return floor(fraction + Fraction(1, 2))


# ---- WadRayMath / PercentageMath, hand-worked ----

def test_hand_worked_rounding():
    # rayMul(1.5 ray, 5): (7.5e27 + 0.5e27) / 1e27 = 8 (7.5 rounds up)
    assert ray_mul(3 * RAY // 2, 5) == 8
    # rayMul(1.5 ray, 3): (4.5e27 + 0.5e27) / 1e27 = 5 (4.5 rounds up, half-up not half-even)
    assert ray_mul(3 * RAY // 2, 3) == 5
    # rayMul(0.5 ray - 1, 1): (0.5e27 - 1 + 0.5e27) / 1e27 = 0 (just under a half)
    assert ray_mul(HALF_RAY - 1, 1) == 0
    # wadDiv(2, 3): (2e18 + 3/2=1) / 3 = 666666666666666667 (0.666.. rounds up)
    assert wad_div(2, 3) == 666666666666666667
    # wadMul(0.5 wad, 1): (0.5e18 + 0.5e18) / 1e18 = 1
    assert wad_mul(HALF_WAD, 1) == 1
    # rayDiv(1, 3 ray): (1e27 + 1.5e27 floor 1.5e27) / 3e27 = 0
    assert ray_div(1, 3 * RAY) == 0
    # percentMul(1, 5000): (5000 + 5000) / 10000 = 1; percentMul(1, 4999) = 9999 / 10000 = 0
    assert percent_mul(1, 5000) == 1
    assert percent_mul(1, 4999) == 0
    # percentDiv(1, 3): (10000 + 3/2=1) / 3 = 3333
    assert percent_div(1, 3) == 3333
    # percentMul(x, 0) = (0 + 5000) / 10000 = 0, no revert (the check is skipped when percentage is 0)
    assert percent_mul(UINT256_MAX, 0) == 0


@pytest.mark.parametrize("fn, half, scale", [(wad_mul, HALF_WAD, WAD), (ray_mul, HALF_RAY, RAY),
                                             (percent_mul, 5000, 10_000)])
def test_mul_overflow_boundary(fn, half, scale):
    # the contracts revert iff a > (2**256 - 1 - half) / b
    b = 12345
    limit = (UINT256_MAX - half) // b
    assert fn(limit, b) == (limit * b + half) // scale
    with pytest.raises(AaveRevertError, match="overflow"):
        fn(limit + 1, b)


@pytest.mark.parametrize("fn, scale", [(wad_div, WAD), (ray_div, RAY), (percent_div, 10_000)])
def test_div_overflow_boundary_and_zero(fn, scale):
    # the contracts revert iff b == 0 or a > (2**256 - 1 - b/2) / scale
    b = 777
    limit = (UINT256_MAX - b // 2) // scale
    assert fn(limit, b) == (limit * scale + b // 2) // b
    with pytest.raises(AaveRevertError, match="overflow"):
        fn(limit + 1, b)
    with pytest.raises(AaveRevertError, match="by zero"):
        fn(1, 0)


def test_bad_operands_are_named():
    with pytest.raises(AaveRevertError, match="a=-1 is not a uint256"):
        wad_mul(-1, 1)
    with pytest.raises(AaveRevertError, match="is not a uint256"):
        ray_mul(1, 2**256)
    with pytest.raises(TypeError, match="b must be an int, got float"):
        ray_div(1, 1.5)
    with pytest.raises(TypeError, match="must be an int, got bool"):
        percent_mul(True, 1)
    err = AaveRevertError("x")
    assert isinstance(err, ValueError) and isinstance(err, TallyioError)


@settings(max_examples=800, deadline=None)
@given(uint256, uint256)
def test_mul_rounding_against_fractions(a, b):
    for fn, scale in ((wad_mul, WAD), (ray_mul, RAY), (percent_mul, 10_000)):
        exact = Fraction(a * b, scale)
        half = scale // 2
        if b != 0 and a * b + half > UINT256_MAX:
            with pytest.raises(AaveRevertError):
                fn(a, b)
        else:
            assert fn(a, b) == half_up(exact)


@settings(max_examples=800, deadline=None)
@given(uint256, st.integers(1, UINT256_MAX) | st.integers(1, 10**30))
def test_div_rounding_against_fractions(a, b):
    for fn, scale in ((wad_div, WAD), (ray_div, RAY), (percent_div, 10_000)):
        if a * scale + b // 2 > UINT256_MAX:
            with pytest.raises(AaveRevertError):
                fn(a, b)
            continue
        got = fn(a, b)
        exact = Fraction(a * scale, b)
        # half up when b is even; when b is odd the quotient is never exactly .5 away, so the same rule holds
        assert got == half_up(exact)


# ---- interest ----

def test_linear_interest_hand_worked():
    # 5% a year for one day: 5e25 * 86400 / 31536000 = 136986301369863013698630.13.. -> floor, + RAY
    assert linear_interest(5 * 10**25, 1000, 1000 + 86400) == RAY + 136986301369863013698630
    assert linear_interest(5 * 10**25, 7, 7) == RAY
    with pytest.raises(AaveRevertError, match="underflow"):
        linear_interest(5 * 10**25, 10, 9)


def test_compounded_interest_hand_worked():
    rate = 3 * 10**25  # 3% a year in ray
    # dt = 1: exp-1 = 0 so the 2nd and 3rd terms vanish: RAY + rate/SECONDS_PER_YEAR
    assert compounded_interest(rate, 0, 1) == RAY + rate // SECONDS_PER_YEAR
    # dt = 2: exp-2 -> 0 (exp > 2 is false) so the 3rd term vanishes; 2nd = 2*1*bp2/2 = bp2
    bp2 = ray_mul(rate, rate) // SECONDS_PER_YEAR**2
    assert compounded_interest(rate, 0, 2) == RAY + 2 * rate // SECONDS_PER_YEAR + bp2
    # dt = 3: 3rd = 3*2*1*bp3/6 = bp3, 2nd = 3*2*bp2/2 = 3*bp2
    bp3 = ray_mul(bp2, rate) // SECONDS_PER_YEAR
    assert compounded_interest(rate, 10, 13) == RAY + 3 * rate // SECONDS_PER_YEAR + 3 * bp2 + bp3
    assert compounded_interest(rate, 5, 5) == RAY


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**27), st.integers(0, 10 * SECONDS_PER_YEAR))
def test_compounded_interest_is_the_truncated_three_term_expansion(rate, dt):
    # (1 + r)^n's binomial terms 1 + n r + n(n-1) r^2/2 + n(n-1)(n-2) r^3/6 with r = rate/year, every term
    # truncated where the contract truncates it: the result sits below the exact 3-term value by < 5 wei-ray
    got = compounded_interest(rate, 0, dt)
    if dt == 0:
        assert got == RAY
        return
    r = Fraction(rate, RAY * SECONDS_PER_YEAR)
    exact = RAY * (1 + dt * r + Fraction(dt * (dt - 1), 2) * r * r
                   + Fraction(dt * (dt - 1) * max(dt - 2, 0), 6) * r ** 3)
    # the truncations (rayMul's rounding and the integer divisions) each lose less than
    # one unit of a power term, multiplied by at most n(n-1)(n-2)/6
    slack = 4 + dt * dt + dt**3
    assert exact - slack <= got <= exact + dt * dt + 1
    assert got >= linear_interest(rate, 0, dt) - 1  # compounding never earns less than simple interest


def test_normalized_indexes():
    index = RAY + RAY // 50  # 1.02
    # same block: the stored index, untouched
    assert normalized_income(index, 10**26, 50, 50) == index
    assert normalized_debt(index, 10**26, 50, 50) == index
    # one year at 10%: linear 1.1 ray; rayMul(1.1 ray, 1.02 ray) = 1.122 ray exactly
    assert normalized_income(index, 10**26, 0, SECONDS_PER_YEAR) == 1122 * 10**24
    assert normalized_debt(index, 10**26, 0, SECONDS_PER_YEAR) == ray_mul(
        compounded_interest(10**26, 0, SECONDS_PER_YEAR), index)


# ---- ReserveConfig / Holding validation ----

@pytest.mark.parametrize("kwargs, message", [
    (dict(asset=b"\x01" * 19), "20-byte address"),
    (dict(decimals=78), "decimals 78 above 77"),
    (dict(ltv=-1), "ltv -1 is negative"),
    (dict(ltv=9000), "ltv 9000 exceeds liquidation_threshold 8500"),
    (dict(liquidation_threshold=10_001, ltv=0), "liquidation_threshold 10001 above 10000"),
    (dict(liquidation_bonus=10_000), "liquidation_bonus 10000 must exceed 10000"),
    (dict(liquidation_bonus=12_000), "exceeds 100%"),
    (dict(ltv=0, liquidation_threshold=0), "liquidation_bonus must be 0"),
    (dict(liquidation_protocol_fee=10_001), "liquidation_protocol_fee 10001 above 10000"),
])
def test_reserve_config_rejects(kwargs, message):
    base = dict(asset=b"\x09" * 20, decimals=18, ltv=8000, liquidation_threshold=8500, liquidation_bonus=10500,
                liquidation_protocol_fee=1000)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ReserveConfig(**base)


def test_reserve_config_types_and_unit():
    with pytest.raises(TypeError, match="decimals must be an int, got str"):
        ReserveConfig(b"\x09" * 20, "18", 0, 0, 0, 0)
    assert USDC.unit == 10**6
    with pytest.raises(TypeError, match="must be a ReserveConfig"):
        Holding("usdc", 1, 1, True, 0)
    with pytest.raises(TypeError, match="use_as_collateral must be a bool"):
        Holding(USDC, 1, 1, 1, 0)
    with pytest.raises(AaveRevertError, match="Holding.debt=-5"):
        Holding(USDC, 1, 1, True, -5)


# ---- calculateUserAccountData ----

def test_account_data_hand_worked():
    holdings = [
        Holding(WETH, 2000 * 10**8, 15 * 10**17, True, 0),   # 1.5e18 * 2000e8 / 1e18 = 3000e8 base
        Holding(WBTC, 30_000 * 10**8, 10**7, True, 0),       # 0.1e8 * 30000e8 / 1e8 = 3000e8 base
        Holding(USDC, 10**8, 0, False, 4500 * 10**6),        # 4500e6 * 1e8 / 1e6 = 4500e8 base debt
    ]
    # avg LT = (3000e8 * 8250 + 3000e8 * 7500) / 6000e8 = 7875; avg ltv = (8000 + 7000) / 2 = 7500
    # HF = wadDiv(percentMul(6000e8, 7875) = 4725e8, 4500e8) = 1.05e18
    # available = percentMul(6000e8, 7500) - 4500e8 = 0
    assert user_account_data(holdings) == AccountData(6000 * 10**8, 4500 * 10**8, 0, 7875, 7500, 105 * 10**16)


def test_account_data_truncates_per_asset_and_the_averages():
    a = ReserveConfig(b"\x0a" * 20, 18, 7000, 8000, 10500, 0)
    b = ReserveConfig(b"\x0b" * 20, 18, 7001, 8001, 10500, 0)
    holdings = [
        Holding(a, 3, 10**18 // 3, True, 0),        # 333333333333333333 * 3 / 1e18 = 0.99.. -> 0 base
        Holding(a, 10**8, 10**10, True, 0),          # 1e10 * 1e8 / 1e18 = 1 base
        Holding(b, 10**8, 2 * 10**10, True, 10**10),  # 2 base collateral, 1 base debt
    ]
    # weighted LT = 0*8000 + 1*8000 + 2*8001 = 24002 -> 24002 // 3 = 8000 (8000.67 truncated)
    # weighted ltv = 7000 + 14002 = 21002 -> 7000; HF = wadDiv(percentMul(3, 8000) = 2, 1) = 2e18
    # available = percentMul(3, 7000) = 2 - 1 = 1
    assert user_account_data(holdings) == AccountData(3, 1, 1, 8000, 7000, 2 * WAD)


def test_account_data_skips_disabled_and_zero_threshold_collateral():
    holdings = [Holding(WETH, 2000 * 10**8, 10**18, False, 0),           # not enabled as collateral
                Holding(NOT_COLLATERAL, 10**8, 10**18, True, 0),        # threshold 0: never collateral
                Holding(USDC, 10**8, 0, False, 10**6)]
    data = user_account_data(holdings)
    # no collateral counted: averages 0 and HF = wadDiv(percentMul(0, 0), 1e8) = 0
    assert data == AccountData(0, 10**8, 0, 0, 0, 0)
    assert data.liquidatable


def test_zero_debt_means_max_health_factor():
    assert user_account_data([]) == AccountData(0, 0, 0, 0, 0, UINT256_MAX)
    data = user_account_data([Holding(WETH, 2000 * 10**8, 10**18, True, 0)])
    # available = percentMul(2000e8, 8000) = 1600e8
    assert data == AccountData(2000 * 10**8, 0, 1600 * 10**8, 8250, 8000, UINT256_MAX)
    assert not data.liquidatable
    # a dust debt worth 0 base is no debt either: 9 wei USDC at 0.001 (1e5) -> 9 * 1e5 / 1e6 = 0
    assert user_account_data([Holding(USDC, 10**5, 0, False, 9)]).health_factor == UINT256_MAX
    # ...while 10 wei are worth 1 base unit: HF = wadDiv(0, 1) = 0
    assert user_account_data([Holding(USDC, 10**5, 0, False, 10)]).health_factor == 0


def test_account_data_rejects_non_holdings_and_overflow():
    with pytest.raises(TypeError, match="Holding records"):
        user_account_data([(WETH, 1, 1, True, 0)])
    with pytest.raises(AaveRevertError, match="balance \\* price: overflow"):
        user_account_data([Holding(WETH, 2**200, 2**100, True, 0)])


# ---- liquidationCall sizing ----

def _at_095():
    # collateral worth 1000e8 base (0.5 of an asset at 2000e8) with LT 9500, debt 1000e6 USDC = 1000e8 base:
    # HF = wadDiv(percentMul(1000e8, 9500) = 950e8, 1000e8) = 0.95e18 exactly
    coll = Holding(HIGH_LT, 2000 * 10**8, 5 * 10**17, True, 0)
    debt = Holding(USDC, 10**8, 0, False, 1000 * 10**6)
    return coll, debt


def test_hf_exactly_095_closes_all_and_the_collateral_cap_binds():
    coll, debt = _at_095()
    hf = user_account_data([coll, debt]).health_factor
    assert hf == CLOSE_FACTOR_HF_THRESHOLD
    assert close_factor(hf) == 10_000
    # close factor 100%: percentMul(1000e6, 10000) = 1000e6
    # base = 1e8 * 1000e6 * 1e18 / (2000e8 * 1e6) = 0.5e18; percentMul(0.5e18, 10500) = 0.525e18 > 0.5e18 held
    # -> collateral = 0.5e18 and debt needed = percentDiv(2000e8 * 0.5e18 * 1e6 / (1e8 * 1e18) = 1000e6, 10500)
    #    = (1000e6 * 1e4 + 5250) / 10500 = 952380952
    # bonus part = 0.5e18 - percentDiv(0.5e18, 10500) = 0.5e18 - 476190476190476190 = 23809523809523810
    # fee = percentMul(23809523809523810, 1000) = 2380952380952381; liquidator gets 0.5e18 - fee
    got = liquidation_amounts(coll, debt, hf, UINT256_MAX)
    assert got == LiquidationAmounts(952380952, 497619047619047619, 2380952380952381)
    assert got.collateral_to_liquidator + got.protocol_fee_collateral == coll.collateral


def test_hf_just_above_095_closes_half():
    coll, debt = _at_095()
    hf = CLOSE_FACTOR_HF_THRESHOLD + 1
    assert close_factor(hf) == 5000
    # max debt = percentMul(1000e6, 5000) = 500e6; base = 0.25e18; with bonus 0.2625e18 (under the 0.5e18 held)
    # bonus part = 0.2625e18 - percentDiv(0.2625e18, 10500) = 0.0125e18; fee 10% = 0.00125e18
    assert liquidation_amounts(coll, debt, hf, UINT256_MAX) == LiquidationAmounts(
        500 * 10**6, 26125 * 10**13, 125 * 10**13)
    # asking for less than the close factor allows: 100e6 -> base 0.05e18, with bonus 0.0525e18, fee 0.00025e18
    assert liquidation_amounts(coll, debt, hf, 100 * 10**6) == LiquidationAmounts(
        100 * 10**6, 5225 * 10**13, 25 * 10**13)


def test_no_protocol_fee_and_decimals():
    # 8-decimal collateral, 18-decimal debt, no fee: debt 1e18 of a 1e8-priced token, HF passed in
    coll = Holding(ReserveConfig(b"\x0c" * 20, 8, 7000, 7500, 11000, 0), 50_000 * 10**8, 10**8, True, 0)
    debt = Holding(NO_FEE, 10**8, 0, False, 40_000 * 10**18)
    # close 50%: 20000e18; base = 1e8 * 20000e18 * 1e8 / (50000e8 * 1e18) = 0.4e8; with bonus 11000: 0.44e8
    assert liquidation_amounts(coll, debt, 9 * 10**17 + 10**17 - 1, UINT256_MAX) == LiquidationAmounts(
        20_000 * 10**18, 44 * 10**6, 0)


def test_liquidation_reverts_like_the_contract():
    coll, debt = _at_095()
    with pytest.raises(AaveRevertError, match="HEALTH_FACTOR_NOT_BELOW_THRESHOLD"):
        liquidation_amounts(coll, debt, WAD, UINT256_MAX)  # HF exactly 1 is not liquidatable
    disabled = Holding(HIGH_LT, 2000 * 10**8, 5 * 10**17, False, 0)
    with pytest.raises(AaveRevertError, match="COLLATERAL_CANNOT_BE_LIQUIDATED"):
        liquidation_amounts(disabled, debt, WAD - 1, UINT256_MAX)
    with pytest.raises(AaveRevertError, match="SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER"):
        liquidation_amounts(coll, Holding(USDC, 10**8, 0, False, 0), WAD - 1, UINT256_MAX)
    with pytest.raises(AaveRevertError, match="collateral price is 0"):
        liquidation_amounts(Holding(HIGH_LT, 0, 10, True, 0), debt, WAD - 1, UINT256_MAX)
    with pytest.raises(TypeError, match="collateral Holding"):
        liquidation_amounts(coll, None, WAD - 1, 1)


reserves = st.sampled_from([WETH, WBTC, USDC, HIGH_LT, NO_FEE])


@settings(max_examples=600, deadline=None)
@given(reserves, reserves, st.integers(1, 10**14), st.integers(1, 10**14), st.integers(0, 10**30),
       st.integers(1, 10**30), st.integers(0, WAD - 1), st.integers(0, 10**31))
def test_liquidation_invariants(cres, dres, cprice, dprice, balance, owed, hf, asked):
    coll = Holding(cres, cprice, balance, True, 0)
    debt = Holding(dres, dprice, 0, False, owed)
    got = liquidation_amounts(coll, debt, hf, asked)
    cap = percent_mul(owed, close_factor(hf))
    assert got.debt_to_cover <= min(asked, cap)
    assert got.collateral_to_liquidator + got.protocol_fee_collateral <= balance
    assert got.protocol_fee_collateral <= got.collateral_to_liquidator or got.collateral_to_liquidator == 0
    # the collateral taken is worth at most the debt paid times the bonus, give or take the roundings: one
    # collateral unit (percentMul) or, when the cap binds, < 1.5 debt units (a floor and a percentDiv) times the bonus
    value_taken = Fraction((got.collateral_to_liquidator + got.protocol_fee_collateral) * cprice, cres.unit)
    value_paid = Fraction(got.debt_to_cover * dprice, dres.unit)
    assert value_taken <= value_paid * Fraction(cres.liquidation_bonus, 10_000) + Fraction(cprice, cres.unit) \
        + Fraction(2 * dprice * cres.liquidation_bonus, dres.unit * 10_000)
    if got.collateral_to_liquidator + got.protocol_fee_collateral < balance:
        assert got.debt_to_cover == min(asked, cap)  # not capped by the collateral: the whole request is served


def test_docs_liquidations_examples_run():
    import doctest
    from pathlib import Path
    doc = Path(__file__).resolve().parent.parent / "docs" / "liquidations.md"
    failed, attempted = doctest.testfile(str(doc), module_relative=False,
                                         optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted >= 10 and failed == 0
