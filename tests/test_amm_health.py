"""tallyio.amm.health.HealthMatrix: its exact account data equals
aave.user_account_data over thousands of seeded random accounts, liquidatable()
equals the brute-force exact set, and the incremental refresh (events, prices,
indexes) equals a full recompute."""
import random

import numpy as np
import pytest

from conftest import scaled
from tallyio.amm.aave import (RAY, UINT256_MAX, WAD, Holding, ReserveConfig, normalized_debt, normalized_income,
                              percent_mul, ray_mul, user_account_data)
from tallyio.amm.health import HealthMatrix

RESERVES = [
    ReserveConfig(bytes([1]) * 20, 18, 8000, 8250, 10500, 1000),   # WETH-like
    ReserveConfig(bytes([2]) * 20, 8, 7000, 7500, 10650, 1000),    # WBTC-like
    ReserveConfig(bytes([3]) * 20, 6, 7700, 8000, 10450, 1000),    # USDC-like
    ReserveConfig(bytes([4]) * 20, 18, 0, 0, 0, 0),                # borrow-only
    ReserveConfig(bytes([5]) * 20, 6, 7500, 8000, 10500, 0),
    ReserveConfig(bytes([6]) * 20, 18, 6000, 7000, 11000, 2000),
    ReserveConfig(bytes([7]) * 20, 2, 5000, 6500, 11500, 1000),    # 2 decimals: big rounding per unit
    ReserveConfig(bytes([8]) * 20, 24, 7000, 7800, 10800, 500),
]
#: two re-sums' worth of rounding error: 8 terms, each within an ulp, twice
RESUM_ERROR = 32 * 2.0**-53
BASE_PRICES = [2000 * 10**8, 30_000 * 10**8, 10**8, 5 * 10**8, 10**8, 12 * 10**8, 3 * 10**8, 7 * 10**7]


def _random_position(rng: random.Random, reserve: ReserveConfig) -> tuple[int, int, bool]:
    """A scaled position of 0 .. ~1e6 tokens, sometimes dust, sometimes empty."""
    unit = reserve.unit

    def amount() -> int:
        kind = rng.random()
        if kind < 0.35:
            return 0
        if kind < 0.45:
            return rng.randrange(1, 1000)  # dust: the truncations matter
        return rng.randrange(1, 10**6 * unit)

    return amount(), amount() if rng.random() < 0.4 else 0, rng.random() < 0.8


def _indexes(rng: random.Random) -> tuple[int, int]:
    income = normalized_income(RAY + rng.randrange(0, RAY // 5), rng.randrange(0, RAY // 10), 0,
                               rng.randrange(0, 10**7))
    debt = normalized_debt(RAY + rng.randrange(0, RAY // 3), rng.randrange(0, RAY // 5), 0, rng.randrange(0, 10**7))
    return income, debt


def _build(rng: random.Random, accounts: int):
    matrix = HealthMatrix(RESERVES, capacity=7)  # small: the arrays grow many times
    for a, price in enumerate(BASE_PRICES):
        matrix.set_price(a, price)
        matrix.set_indexes(a, *_indexes(rng))
    book = {}
    for i in range(accounts):
        slot = matrix.add_account(i.to_bytes(20, "big"))
        assert slot == i
        for a, reserve in enumerate(RESERVES):
            if rng.random() < 0.5:
                position = _random_position(rng, reserve)
                matrix.set_position(slot, a, *position)
                book[slot, a] = position
    return matrix, book


def _brute_force(matrix: HealthMatrix, book: dict, slot: int):
    """user_account_data from the test's own book of scaled positions."""
    holdings = []
    for a, reserve in enumerate(RESERVES):
        collateral, debt, enabled = book.get((slot, a), (0, 0, False))
        income, debt_index = matrix.indexes(a)
        if collateral or debt:
            holdings.append(Holding(reserve, matrix.price(a), ray_mul(collateral, income), enabled,
                                    ray_mul(debt, debt_index)))
    return user_account_data(holdings)


def _check_drift_bound(matrix: HealthMatrix, before: list) -> None:
    """The incremental price/index updates moved each account's float sums by
    cell * (new - old factor): they differ from a re-sum by no more than the
    drift bound they added to the slack sum (so the screen's slack covers it)."""
    for slot, (numerator, denominator, slack_sum, _) in enumerate(before):
        fresh = matrix._sums(slot)
        if not all(np.isfinite([numerator, denominator, slack_sum, fresh[0], fresh[1], fresh[2]])):
            continue  # a balance past float32: inf, re-summed on every update
        drift = slack_sum - fresh[2] + RESUM_ERROR * fresh[2]
        assert drift >= 0.0, (slot, slack_sum, fresh[2])
        # besides the drift, each re-sum of <= 8 positive terms is within 8 ulps of the real sum
        for name, value, resummed in (("numerator", numerator, fresh[0]), ("denominator", denominator, fresh[1])):
            assert abs(value - resummed) <= drift + RESUM_ERROR * abs(resummed), (slot, name, value, resummed, drift)


def _check_everything(matrix: HealthMatrix, book: dict) -> set:
    exact = {}
    for slot in range(len(matrix)):
        data = _brute_force(matrix, book, slot)
        assert matrix.account_data(slot) == data, slot
        exact[slot] = data
    brute = {slot for slot, data in exact.items() if data.health_factor < WAD}
    assert set(matrix.liquidatable().tolist()) == brute
    incremental = matrix.health_factors()
    sums = [matrix._sums(slot) for slot in range(len(matrix))]
    matrix.refresh_all()
    _check_drift_bound(matrix, sums)
    # the float health factor is a close image of the exact one when the collateral that counts and the debt
    # dwarf the per-asset roundings (up to 1.5e6 base units for the 2-decimal reserve) and the 1 bp
    # truncation of the weighted threshold
    for slot, data in exact.items():
        if data.total_debt_base > 10**12 and percent_mul(data.total_collateral_base,
                                                         data.current_liquidation_threshold) > 10**12:
            assert incremental[slot] == pytest.approx(data.health_factor / WAD, rel=3e-4)
        if data.total_debt_base == 0 and not any(book.get((slot, a), (0, 0))[1] for a in range(len(RESERVES))):
            assert incremental[slot] == np.inf
    return brute


def test_exact_data_and_liquidatable_match_brute_force(seed):
    rng = random.Random(seed)
    matrix, book = _build(rng, scaled(3000, minimum=1500))
    # move prices until a good share of accounts is under water, checking at each step
    liquidatable_seen = 0
    for _ in range(4):
        for a, base in enumerate(BASE_PRICES):
            matrix.set_price(a, max(1, int(base * rng.uniform(0.3, 1.6))))
        liquidatable_seen += len(_check_everything(matrix, book))
    assert liquidatable_seen > 0


def test_incremental_events_equal_full_recompute(seed):
    rng = random.Random(seed + 1)
    matrix, book = _build(rng, 400)
    for _ in range(scaled(4000, minimum=2000)):
        kind = rng.random()
        slot, a = rng.randrange(len(matrix)), rng.randrange(len(RESERVES))
        collateral, debt, enabled = book.get((slot, a), (0, 0, False))
        if kind < 0.6:
            d_collateral = rng.randrange(-collateral, 10**6 * RESERVES[a].unit) if rng.random() < 0.7 else 0
            d_debt = rng.randrange(-debt, 10**5 * RESERVES[a].unit) if rng.random() < 0.5 else 0
            matrix.apply_delta(slot, a, d_collateral, d_debt)
            book[slot, a] = (collateral + d_collateral, debt + d_debt, enabled)
        elif kind < 0.7:
            matrix.set_collateral_enabled(slot, a, not enabled)
            book[slot, a] = (collateral, debt, not enabled)
        elif kind < 0.8:
            matrix.set_indexes(a, *_indexes(rng))
        elif kind < 0.9:
            matrix.set_price(a, max(1, int(BASE_PRICES[a] * rng.uniform(0.3, 1.6))))
        else:
            position = _random_position(rng, RESERVES[a])
            matrix.set_position(slot, a, *position)
            book[slot, a] = position
    _check_everything(matrix, book)


def test_the_screen_decides_nothing_near_one():
    # an account exactly at the boundary: HF = 1e18 exactly is NOT liquidatable, 1 wei more debt makes it so
    reserve = ReserveConfig(b"\x01" * 20, 18, 7000, 8000, 10500, 0)
    matrix = HealthMatrix([reserve, RESERVES[2]])
    matrix.set_price(0, 10**8)
    matrix.set_price(1, 10**8)
    slot = matrix.add_account(b"\x0a" * 20)
    # collateral 1000 tokens = 1000e8 base, threshold 80%: 800e8; debt 800 USDC = 800e8 base -> HF = 1e18
    matrix.set_position(slot, 0, 1000 * 10**18, 0, True)
    matrix.set_position(slot, 1, 0, 800 * 10**6, False)
    assert matrix.account_data(slot).health_factor == WAD
    assert matrix.health_factors()[slot] == pytest.approx(1.0, rel=1e-6)  # float32 cells
    assert matrix.liquidatable().tolist() == []
    # 1 wei of USDC more is worth 100 base wei: HF = wadDiv(800e8, 800e8 + 100) < 1e18
    matrix.apply_delta(slot, 1, 0, 1)
    assert matrix.account_data(slot).health_factor < WAD
    assert matrix.liquidatable().tolist() == [slot]
    # float says ~1 - 1.25e-10: the exact path, not the float, made the call either way
    matrix.apply_delta(slot, 1, 0, -1)
    assert matrix.liquidatable().tolist() == []


def test_dust_debt_is_not_liquidatable_even_when_the_float_says_so():
    # 9 wei of a 6-decimal asset at 1e5 is worth 0 base (truncated): exact HF = max, float HF = 0
    matrix = HealthMatrix([RESERVES[2]])
    matrix.set_price(0, 10**5)
    slot = matrix.add_account(b"\x0b" * 20)
    matrix.set_position(slot, 0, 0, 9, False)
    assert matrix.health_factors()[slot] == 0.0
    assert matrix.account_data(slot).health_factor == UINT256_MAX
    assert matrix.liquidatable().tolist() == []


def test_addresses_slots_and_errors():
    matrix = HealthMatrix(RESERVES[:2], capacity=1)
    a = matrix.add_account(b"\x01" * 20)
    b = matrix.add_account(b"\x02" * 20)
    assert (a, b) == (0, 1) and len(matrix) == 2 and matrix.n_assets == 2
    assert matrix.add_account(b"\x01" * 20) == a  # known address: its slot
    assert matrix.slot_of(b"\x02" * 20) == b and matrix.slot_of(b"\x03" * 20) is None
    assert matrix.address_of(b) == b"\x02" * 20
    with pytest.raises(ValueError, match="20 bytes"):
        matrix.add_account(b"\x01")
    with pytest.raises(IndexError, match="slot 5 out of range"):
        matrix.set_position(5, 0, 1, 1, True)
    with pytest.raises(IndexError, match="asset index 2 out of range"):
        matrix.apply_delta(0, 2, 1, 1)
    with pytest.raises(IndexError, match="asset index 9 out of range"):
        matrix.set_price(9, 1)
    with pytest.raises(ValueError, match="scaled_collateral must be >= 0"):
        matrix.set_position(0, 0, -1, 0, True)
    with pytest.raises(TypeError, match="d_scaled_debt must be an int"):
        matrix.apply_delta(0, 0, 1, 1.0)
    with pytest.raises(ValueError, match="signed 256-bit"):
        matrix.apply_delta(0, 0, 2**255, 0)
    with pytest.raises(TypeError, match="reserves\\[1\\] must be a ReserveConfig"):
        HealthMatrix([RESERVES[0], "usdc"])
    with pytest.raises(ValueError, match="at least one reserve"):
        HealthMatrix([])
    with pytest.raises(ValueError, match="price=-1 is not a uint256"):
        matrix.set_price(0, -1)
    # a delta below zero is refused and changes nothing, the other balance included
    matrix.set_position(a, 0, 10, 20, True)
    with pytest.raises(ValueError, match="leaves \\[0, 2\\*\\*256\\)"):
        matrix.apply_delta(a, 0, 5, -21)
    assert matrix.position(a, 0) == (10, 20, True)
    matrix.set_position(a, 1, UINT256_MAX, 0, True)
    with pytest.raises(ValueError, match="leaves"):
        matrix.apply_delta(a, 1, 1, 0)
    matrix.apply_delta(a, 0, -10, -20)
    assert matrix.position(a, 0) == (0, 0, True)
    assert matrix.positions(a) == [(1, UINT256_MAX, 0, True)]


def test_holdings_feed_liquidation_sizing():
    from tallyio.amm.aave import liquidation_amounts
    matrix = HealthMatrix(RESERVES[:3])
    for a, price in enumerate(BASE_PRICES[:3]):
        matrix.set_price(a, price)
    matrix.set_indexes(0, RAY + RAY // 100, RAY)
    slot = matrix.add_account(b"\x0c" * 20)
    matrix.set_position(slot, 0, 10**18, 0, True)
    matrix.set_position(slot, 2, 0, 1700 * 10**6, False)
    weth, usdc = matrix.holdings(slot)
    assert weth.collateral == 101 * 10**16  # ray_mul(1e18, 1.01 ray)
    hf = matrix.account_data(slot).health_factor
    assert hf < WAD
    sized = liquidation_amounts(weth, usdc, hf, UINT256_MAX)
    assert sized.debt_to_cover == 850 * 10**6


def test_balances_past_float32_are_screened_in_and_decided_exactly():
    # 2**130 units of a 0-decimal token is 1.4e39 tokens: past float32 (3.4e38), the cell is inf;
    # the screen lets the exact path decide (debt worth 2**130 base against no collateral: HF 0)
    whole = ReserveConfig(b"\x0f" * 20, 0, 7000, 8000, 10500, 0)
    matrix = HealthMatrix([whole, RESERVES[2]])
    matrix.set_price(0, 1)
    matrix.set_price(1, 10**8)
    slot = matrix.add_account(b"\x0d" * 20)
    matrix.set_position(slot, 0, 0, 2**130, False)
    assert matrix.account_data(slot).health_factor == 0
    assert matrix.liquidatable().tolist() == [slot]
    # and huge collateral against a real debt: float numerator inf, exact HF far above 1
    other = matrix.add_account(b"\x0e" * 20)
    matrix.set_position(other, 0, 2**130, 0, True)
    matrix.set_position(other, 1, 0, 10**6, False)
    assert np.isinf(matrix.health_factors()[other])
    assert matrix.account_data(other).health_factor > WAD
    assert matrix.liquidatable().tolist() == [slot]


def test_many_price_updates_stay_within_the_slack_and_the_periodic_resum_drops_the_drift(seed):
    # more incremental updates than REFRESH_EVERY (4096): the periodic re-sum of every row runs, and
    # at every check the exact decisions equal the brute force and the drift bound holds
    rng = random.Random(seed + 2)
    matrix, book = _build(rng, 60)
    for step in range(5000):
        a = rng.randrange(len(RESERVES))
        if step % 7 == 0:
            matrix.set_indexes(a, *_indexes(rng))
        else:
            matrix.set_price(a, max(1, int(BASE_PRICES[a] * rng.uniform(0.2, 2.0))))
        if step % 1250 == 0:
            _check_everything(matrix, book)
    _check_everything(matrix, book)


def test_a_column_with_infinite_cells_and_rows_with_one_are_resummed_not_drifted():
    whole = ReserveConfig(b"\x0f" * 20, 0, 7000, 8000, 10500, 0)
    matrix = HealthMatrix([whole, RESERVES[2], RESERVES[0]])
    for a, price in enumerate([1, 10**8, 2000 * 10**8]):
        matrix.set_price(a, price)
    huge = matrix.add_account(b"\x01" * 20)
    matrix.set_position(huge, 0, 2**130, 0, True)            # an infinite collateral cell in column 0
    matrix.set_position(huge, 1, 0, 10**6, False)
    plain = matrix.add_account(b"\x02" * 20)
    matrix.set_position(plain, 1, 0, 1600 * 10**6, False)
    matrix.set_position(plain, 2, 10**18, 0, True)
    for price in (2, 3, 1):                                   # column 0 has an inf cell: its holders re-summed
        assert matrix.set_price(0, price) == 1
    for price in (2100, 1700, 1900):                          # column 2 is finite: incremental, but the
        assert matrix.set_price(2, price * 10**8) == 1        # row with an inf cell elsewhere is re-summed
        assert matrix.set_price(1, 10**8 + price) == 2
        assert np.isinf(matrix.health_factors()[huge])
        assert np.isfinite(matrix.health_factors()[plain])
    # the exact path decides both: the huge account is far above 1, the plain one is below 1 at 1900
    assert matrix.liquidatable().tolist() == [plain]
    assert matrix.account_data(plain).health_factor < WAD < matrix.account_data(huge).health_factor
    # (1 WETH at 1900 x 82.5 % against 1600 USDC: the float agrees with the exact value closely)
    assert matrix.health_factors()[plain] == pytest.approx(matrix.account_data(plain).health_factor / WAD, rel=1e-6)
    # the infinite cell goes away: every later update is incremental again, and equals a re-sum
    matrix.set_position(huge, 0, 10**6, 0, True)
    matrix.set_price(2, 1800 * 10**8)
    matrix.set_price(2, 1900 * 10**8)
    sums = [matrix._sums(slot) for slot in range(len(matrix))]
    matrix.refresh_all()
    _check_drift_bound(matrix, sums)


def test_the_c_confirmation_hands_overflowing_accounts_to_the_reference():
    # a collateral balance past 2**256 (rayMul of the scaled balance overflows): the C confirmation cannot decide,
    # the reference does, and it raises where the contract reverts
    matrix = HealthMatrix(RESERVES[:3])
    for a, price in enumerate(BASE_PRICES[:3]):
        matrix.set_price(a, price)
    slot = matrix.add_account(b"\x09" * 20)
    matrix.set_position(slot, 0, 2**200, 0, True)
    matrix.set_position(slot, 2, 0, 10**6, False)
    liquidatable, undecided = matrix._confirm(np.array([slot]))
    assert (liquidatable, undecided) == ([], [slot])
    from tallyio.errors import AaveRevertError
    with pytest.raises(AaveRevertError, match="ray_mul overflow"):
        matrix.liquidatable()
    with pytest.raises(IndexError, match="slot 7 out of range"):
        matrix._confirm([7])
    with pytest.raises(ValueError, match="threshold 10001 outside"):
        matrix._set_exact(0, 1, RAY, RAY, 1, 10_001)
    assert matrix._confirm(np.array([], dtype=np.int64)) == ([], [])
