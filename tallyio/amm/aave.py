"""Aave v3 exact arithmetic on Python integers, line by line from ``@aave/core-v3``
1.19.3 (the version the tests deploy): WadRayMath, PercentageMath, MathUtils'
interest, ReserveLogic's normalized income/debt, GenericLogic's
calculateUserAccountData (what ``Pool.getUserAccountData`` returns) and
LiquidationLogic's sizing of a ``liquidationCall``.

Owns no state and does no I/O; touches nothing outside this module but
``tallyio.errors``.  Every function reverts where the contract reverts, by
raising ``AaveRevertError`` (a ``ValueError``) naming the operation and the
values.  Not modelled (say so before relying on it): eMode categories, stable
debt, isolation mode, the price oracle sentinel, paused/inactive reserves.

>>> ray_mul(3 * RAY // 2, 5)          # 7.5 rounds half up
8
>>> percent_mul(10_001, 5000)         # 5000.5 rounds half up
5001
>>> usdc = ReserveConfig(asset=b"\\x01" * 20, decimals=6, ltv=7500, liquidation_threshold=8000,
...                      liquidation_bonus=10500, liquidation_protocol_fee=1000)
>>> weth = ReserveConfig(asset=b"\\x02" * 20, decimals=18, ltv=8000, liquidation_threshold=8250,
...                      liquidation_bonus=10500, liquidation_protocol_fee=1000)
>>> coll = Holding(weth, price=2000 * 10**8, collateral=10**18, use_as_collateral=True, debt=0)
>>> debt = Holding(usdc, price=10**8, collateral=0, use_as_collateral=False, debt=1700 * 10**6)
>>> data = user_account_data([coll, debt])
>>> data.health_factor
970588235294117647
>>> liquidation_amounts(coll, debt, data.health_factor, 2**256 - 1)
LiquidationAmounts(debt_to_cover=850000000, collateral_to_liquidator=444125000000000000, \
protocol_fee_collateral=2125000000000000)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tallyio.errors import AaveRevertError

__all__ = ["WAD", "HALF_WAD", "RAY", "HALF_RAY", "PERCENTAGE_FACTOR", "UINT256_MAX", "SECONDS_PER_YEAR",
           "HEALTH_FACTOR_LIQUIDATION_THRESHOLD", "CLOSE_FACTOR_HF_THRESHOLD",
           "DEFAULT_LIQUIDATION_CLOSE_FACTOR", "MAX_LIQUIDATION_CLOSE_FACTOR",
           "wad_mul", "wad_div", "ray_mul", "ray_div", "percent_mul", "percent_div",
           "linear_interest", "compounded_interest", "normalized_income", "normalized_debt",
           "ReserveConfig", "Holding", "AccountData", "user_account_data", "account_data_of_rows",
           "LiquidationAmounts", "close_factor", "liquidation_amounts", "AaveRevertError"]

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10**4
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2
UINT256_MAX = 2**256 - 1
SECONDS_PER_YEAR = 365 * 24 * 3600
#: ValidationLogic: a position is liquidatable when its health factor is strictly below 1 (wad).
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD
#: LiquidationLogic 1.19.3: at or below this health factor the whole debt may be covered.
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5000
MAX_LIQUIDATION_CLOSE_FACTOR = 10000


def _uint(name: str, value: object) -> int:
    """``value`` as a uint256, or a clear error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= UINT256_MAX:
        raise AaveRevertError(f"{name}={value} is not a uint256")
    return value


def _checked(op: str, value: int) -> int:
    """Solidity 0.8's checked arithmetic: a result outside uint256 reverts."""
    if not 0 <= value <= UINT256_MAX:
        raise AaveRevertError(f"{op}: {'overflow' if value > 0 else 'underflow'} (panic 0x11)")
    return value


# ---- WadRayMath / PercentageMath: half-up rounding, revert when a*b+half would overflow ----

def wad_mul(a: int, b: int) -> int:
    """WadRayMath.wadMul: ``(a*b + WAD/2) / WAD``.

    >>> wad_mul(WAD // 2, 3)
    2
    """
    a, b = _uint("a", a), _uint("b", b)
    if b != 0 and a > (UINT256_MAX - HALF_WAD) // b:
        raise AaveRevertError(f"wad_mul overflow: {a} * {b}")
    return (a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """WadRayMath.wadDiv: ``(a*WAD + b/2) / b``; reverts when ``b`` is 0.

    >>> wad_div(1, 3)
    333333333333333333
    """
    a, b = _uint("a", a), _uint("b", b)
    if b == 0:
        raise AaveRevertError("wad_div by zero")
    if a > (UINT256_MAX - b // 2) // WAD:
        raise AaveRevertError(f"wad_div overflow: {a} / {b}")
    return (a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    """WadRayMath.rayMul: ``(a*b + RAY/2) / RAY``.

    >>> ray_mul(10**6, RAY + RAY // 3)
    1333333
    """
    a, b = _uint("a", a), _uint("b", b)
    if b != 0 and a > (UINT256_MAX - HALF_RAY) // b:
        raise AaveRevertError(f"ray_mul overflow: {a} * {b}")
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    """WadRayMath.rayDiv: ``(a*RAY + b/2) / b``; reverts when ``b`` is 0.

    >>> ray_div(10**6, 2 * RAY)
    500000
    """
    a, b = _uint("a", a), _uint("b", b)
    if b == 0:
        raise AaveRevertError("ray_div by zero")
    if a > (UINT256_MAX - b // 2) // RAY:
        raise AaveRevertError(f"ray_div overflow: {a} / {b}")
    return (a * RAY + b // 2) // b


def percent_mul(value: int, percentage: int) -> int:
    """PercentageMath.percentMul (percentage in bps): ``(value*p + 5000) / 10000``.

    >>> percent_mul(3, 5000)
    2
    """
    value, percentage = _uint("value", value), _uint("percentage", percentage)
    if percentage != 0 and value > (UINT256_MAX - HALF_PERCENTAGE_FACTOR) // percentage:
        raise AaveRevertError(f"percent_mul overflow: {value} * {percentage}")
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """PercentageMath.percentDiv: ``(value*10000 + p/2) / p``; reverts when ``p`` is 0.

    >>> percent_div(105, 10500)
    100
    """
    value, percentage = _uint("value", value), _uint("percentage", percentage)
    if percentage == 0:
        raise AaveRevertError("percent_div by zero")
    if value > (UINT256_MAX - percentage // 2) // PERCENTAGE_FACTOR:
        raise AaveRevertError(f"percent_div overflow: {value} / {percentage}")
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage


# ---- MathUtils / ReserveLogic: interest and the normalized indexes ----

def _elapsed(last_ts: int, now_ts: int) -> int:
    _uint("last_ts", last_ts)
    _uint("now_ts", now_ts)
    return _checked(f"now_ts - last_ts ({now_ts} - {last_ts})", now_ts - last_ts)


def linear_interest(rate_ray: int, last_ts: int, now_ts: int) -> int:
    """MathUtils.calculateLinearInterest: ``RAY + rate * dt / SECONDS_PER_YEAR`` (ray).

    >>> linear_interest(RAY // 10, 0, SECONDS_PER_YEAR // 2)   # 10% a year, half a year
    1050000000000000000000000000
    """
    rate_ray = _uint("rate_ray", rate_ray)
    result = _checked("rate * dt", rate_ray * _elapsed(last_ts, now_ts)) // SECONDS_PER_YEAR
    return _checked("RAY + interest", RAY + result)


def compounded_interest(rate_ray: int, last_ts: int, now_ts: int) -> int:
    """MathUtils.calculateCompoundedInterest: the binomial expansion's first three
    terms of ``(1 + rate/SECONDS_PER_YEAR) ** dt`` (ray), each term truncated as
    the contract truncates it.

    >>> compounded_interest(RAY // 10, 0, SECONDS_PER_YEAR)    # 10% a year, one year
    1105162042821782412575504000
    """
    rate_ray = _uint("rate_ray", rate_ray)
    exp = _elapsed(last_ts, now_ts)
    if exp == 0:
        return RAY
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate_ray, rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate_ray) // SECONDS_PER_YEAR
    second_term = _checked("second term", exp * exp_minus_one * base_power_two) // 2
    third_term = _checked("third term", exp * exp_minus_one * exp_minus_two * base_power_three) // 6
    first_term = _checked("rate * exp", rate_ray * exp) // SECONDS_PER_YEAR
    return _checked("compounded interest", RAY + first_term + second_term + third_term)


def normalized_income(liquidity_index: int, liquidity_rate: int, last_update_ts: int, now_ts: int) -> int:
    """ReserveLogic.getNormalizedIncome: the stored index when updated this block,
    else ``rayMul(linear_interest(rate), index)``.  ``ray_mul(scaled, it)`` is the
    aToken ``balanceOf``.

    >>> normalized_income(RAY, RAY // 10, 0, SECONDS_PER_YEAR)
    1100000000000000000000000000
    """
    liquidity_index = _uint("liquidity_index", liquidity_index)
    if last_update_ts == now_ts:
        return liquidity_index
    return ray_mul(linear_interest(liquidity_rate, last_update_ts, now_ts), liquidity_index)


def normalized_debt(variable_borrow_index: int, variable_borrow_rate: int, last_update_ts: int,
                    now_ts: int) -> int:
    """ReserveLogic.getNormalizedDebt: the stored index when updated this block,
    else ``rayMul(compounded_interest(rate), index)``.  ``ray_mul(scaled, it)`` is
    the variable debt token's ``balanceOf``.

    >>> normalized_debt(RAY, RAY // 10, 100, 100)
    1000000000000000000000000000
    """
    variable_borrow_index = _uint("variable_borrow_index", variable_borrow_index)
    if last_update_ts == now_ts:
        return variable_borrow_index
    return ray_mul(compounded_interest(variable_borrow_rate, last_update_ts, now_ts), variable_borrow_index)


# ---- reserves, holdings, account data ----

@dataclass(frozen=True)
class ReserveConfig:
    """One reserve's risk parameters as configured (ReserveConfiguration's fields),
    in bps: ``liquidation_bonus`` includes the principal (10500 is a 5% bonus).
    Validated with PoolConfigurator's rules (ltv <= threshold; a collateral's
    bonus above 100% and threshold * bonus <= 100%; a non-collateral's bonus 0).

    >>> ReserveConfig(b"\\x01" * 20, 6, 8000, 7000, 10500, 0)
    Traceback (most recent call last):
    ...
    ValueError: ReserveConfig 0x0101010101010101010101010101010101010101: ltv 8000 exceeds liquidation_threshold 7000
    """

    asset: bytes
    decimals: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    liquidation_protocol_fee: int

    def __post_init__(self) -> None:
        if not isinstance(self.asset, bytes) or len(self.asset) != 20:
            raise ValueError(f"ReserveConfig.asset must be a 20-byte address, got {self.asset!r}")
        where = f"ReserveConfig 0x{self.asset.hex()}"
        for field in ("decimals", "ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{where}: {field} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{where}: {field} {value} is negative")
        # 10**decimals is computed unchecked on chain: above 77 it would wrap.
        if self.decimals > 77:
            raise ValueError(f"{where}: decimals {self.decimals} above 77 (10**decimals must fit 256 bits)")
        if self.liquidation_threshold > PERCENTAGE_FACTOR:
            raise ValueError(f"{where}: liquidation_threshold {self.liquidation_threshold} above 10000 bps")
        if self.ltv > self.liquidation_threshold:
            raise ValueError(f"{where}: ltv {self.ltv} exceeds liquidation_threshold {self.liquidation_threshold}")
        if self.liquidation_threshold != 0:
            if self.liquidation_bonus <= PERCENTAGE_FACTOR:
                raise ValueError(f"{where}: liquidation_bonus {self.liquidation_bonus} must exceed 10000 bps "
                                 f"(it includes the principal: 10500 is a 5% bonus)")
            if percent_mul(self.liquidation_threshold, self.liquidation_bonus) > PERCENTAGE_FACTOR:
                raise ValueError(f"{where}: liquidation_threshold {self.liquidation_threshold} x liquidation_bonus "
                                 f"{self.liquidation_bonus} exceeds 100%")
        elif self.liquidation_bonus != 0:
            raise ValueError(f"{where}: liquidation_bonus must be 0 when liquidation_threshold is 0")
        if self.liquidation_protocol_fee > PERCENTAGE_FACTOR:
            raise ValueError(f"{where}: liquidation_protocol_fee {self.liquidation_protocol_fee} above 10000 bps")

    @property
    def unit(self) -> int:
        """``10 ** decimals``: one whole token in its smallest units."""
        return 10 ** self.decimals


@dataclass(frozen=True)
class Holding:
    """One account's position in one reserve at the current timestamp:
    ``collateral`` is the aToken balance and ``debt`` the variable debt balance,
    both in underlying units (``ray_mul(scaled, normalized index)``); ``price``
    the oracle's price in the base currency (8 decimals on the usual oracles)."""

    reserve: ReserveConfig
    price: int
    collateral: int
    use_as_collateral: bool
    debt: int

    def __post_init__(self) -> None:
        if not isinstance(self.reserve, ReserveConfig):
            raise TypeError(f"Holding.reserve must be a ReserveConfig, got {type(self.reserve).__name__}")
        for field in ("price", "collateral", "debt"):
            _uint(f"Holding.{field}", getattr(self, field))
        if not isinstance(self.use_as_collateral, bool):
            raise TypeError(f"Holding.use_as_collateral must be a bool, got {type(self.use_as_collateral).__name__}")


@dataclass(frozen=True)
class AccountData:
    """``Pool.getUserAccountData``'s six values: totals in the base currency,
    ltv and liquidation threshold as collateral-weighted averages in bps, the
    health factor in wad (``UINT256_MAX`` without debt)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int

    @property
    def liquidatable(self) -> bool:
        """True when ``liquidationCall`` accepts this account (health factor < 1)."""
        return self.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD


def user_account_data(holdings: Iterable[Holding]) -> AccountData:
    """GenericLogic.calculateUserAccountData + calculateAvailableBorrows, without
    eMode: per asset ``balance * price / 10**decimals`` truncated, the weighted
    sums divided once at the end, ``HF = wadDiv(percentMul(collateral, avgLT), debt)``.
    A holding counts as collateral only when enabled and its threshold is not 0.

    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 0)
    >>> user_account_data([Holding(r, 3 * 10**8, 10**18, True, 10**18)])
    AccountData(total_collateral_base=300000000, total_debt_base=300000000, available_borrows_base=0, \
current_liquidation_threshold=8500, ltv=8000, health_factor=850000000000000000)
    """
    rows = []
    for h in holdings:
        if not isinstance(h, Holding):
            raise TypeError(f"user_account_data takes Holding records, got {type(h).__name__}")
        rows.append((h.reserve, h.price, h.collateral, h.use_as_collateral, h.debt))
    return account_data_of_rows(rows)


def account_data_of_rows(rows: Iterable[tuple[ReserveConfig, int, int, bool, int]]) -> AccountData:
    """``user_account_data`` on ``(reserve, price, collateral, use_as_collateral,
    debt)`` tuples whose values the caller already holds as uint256 (no Holding
    records built: the path ``HealthMatrix`` confirms candidates with).

    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 0)
    >>> account_data_of_rows([(r, 3 * 10**8, 10**18, True, 10**18)]).health_factor
    850000000000000000
    """
    total_collateral = total_debt = weighted_ltv = weighted_threshold = 0
    for reserve, price, collateral, enabled, debt in rows:
        unit = reserve.unit
        if enabled and reserve.liquidation_threshold != 0:
            value = _checked("balance * price", collateral * price) // unit
            total_collateral = _checked("total collateral", total_collateral + value)
            weighted_ltv = _checked("avg ltv sum", weighted_ltv + value * reserve.ltv)
            weighted_threshold = _checked("avg threshold sum",
                                          weighted_threshold + value * reserve.liquidation_threshold)
        if debt != 0:
            value = _checked("debt * price", debt * price) // unit
            total_debt = _checked("total debt", total_debt + value)
    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_threshold = weighted_threshold // total_collateral if total_collateral else 0
    if total_debt == 0:
        health_factor = UINT256_MAX
    else:
        health_factor = wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
    borrowable = percent_mul(total_collateral, avg_ltv)
    available = borrowable - total_debt if borrowable > total_debt else 0
    return AccountData(total_collateral, total_debt, available, avg_threshold, avg_ltv, health_factor)


# ---- liquidation sizing ----

@dataclass(frozen=True)
class LiquidationAmounts:
    """What one ``liquidationCall`` moves: ``debt_to_cover`` the debt asset the
    liquidator pays (the LiquidationCall event's ``debtToCover``),
    ``collateral_to_liquidator`` the collateral it receives (the event's
    ``liquidatedCollateralAmount``), ``protocol_fee_collateral`` the collateral
    sent to the treasury out of the bonus."""

    debt_to_cover: int
    collateral_to_liquidator: int
    protocol_fee_collateral: int


def close_factor(health_factor: int) -> int:
    """The share of the debt one liquidation may cover, in bps: 50% above a
    health factor of 0.95, 100% at or below it (1.19.3 has no small-position rule).

    >>> close_factor(CLOSE_FACTOR_HF_THRESHOLD), close_factor(CLOSE_FACTOR_HF_THRESHOLD + 1)
    (10000, 5000)
    """
    health_factor = _uint("health_factor", health_factor)
    return DEFAULT_LIQUIDATION_CLOSE_FACTOR if health_factor > CLOSE_FACTOR_HF_THRESHOLD \
        else MAX_LIQUIDATION_CLOSE_FACTOR


def liquidation_amounts(collateral: Holding, debt: Holding, health_factor: int,
                        debt_to_cover: int) -> LiquidationAmounts:
    """LiquidationLogic.executeLiquidationCall's sizing: the close factor caps the
    debt, ``base = debtPrice * debt * collUnit / (collPrice * debtUnit)``, the
    bonus ``percentMul(base, bonus)``, capped by the collateral balance (then the
    debt needed is ``percentDiv`` back from it), and the protocol fee taken from
    the bonus part.  Pass ``UINT256_MAX`` as ``debt_to_cover`` for "as much as
    allowed".  Raises ``AaveRevertError`` where the call reverts (health factor
    not below 1, collateral not enabled, no debt).

    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 0)
    >>> liquidation_amounts(Holding(r, 10**8, 10**18, False, 0), Holding(r, 10**8, 0, False, 10**18),
    ...                     WAD - 1, 10**18)
    Traceback (most recent call last):
    ...
    tallyio.errors.AaveRevertError: COLLATERAL_CANNOT_BE_LIQUIDATED (46): ... use_as_collateral is False
    """
    if not isinstance(collateral, Holding) or not isinstance(debt, Holding):
        raise TypeError("liquidation_amounts takes a collateral Holding and a debt Holding")
    debt_to_cover = _uint("debt_to_cover", debt_to_cover)
    # _calculateDebt, then ValidationLogic.validateLiquidationCall, in the contract's order
    max_liquidatable = percent_mul(debt.debt, close_factor(health_factor))
    actual_debt = min(debt_to_cover, max_liquidatable)
    if health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise AaveRevertError(f"HEALTH_FACTOR_NOT_BELOW_THRESHOLD (45): health factor {health_factor} >= 1e18")
    if collateral.reserve.liquidation_threshold == 0 or not collateral.use_as_collateral:
        raise AaveRevertError(
            f"COLLATERAL_CANNOT_BE_LIQUIDATED (46): collateral 0x{collateral.reserve.asset.hex()} liquidation "
            f"threshold is {collateral.reserve.liquidation_threshold} and use_as_collateral is "
            f"{collateral.use_as_collateral}")
    if debt.debt == 0:
        raise AaveRevertError(f"SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER (47): no debt in 0x{debt.reserve.asset.hex()}")
    # _calculateAvailableCollateralToLiquidate
    coll_unit, debt_unit = collateral.reserve.unit, debt.reserve.unit
    bonus = collateral.reserve.liquidation_bonus
    numerator = _checked("debtPrice * debtToCover * collateralUnit", debt.price * actual_debt * coll_unit)
    denominator = _checked("collateralPrice * debtUnit", collateral.price * debt_unit)
    if denominator == 0:
        raise AaveRevertError("division by zero (panic 0x12): the collateral price is 0")
    max_collateral = percent_mul(numerator // denominator, bonus)
    if max_collateral > collateral.collateral:
        collateral_amount = collateral.collateral
        numerator = _checked("collateralPrice * collateral * debtUnit",
                             collateral.price * collateral_amount * debt_unit)
        denominator = _checked("debtPrice * collateralUnit", debt.price * coll_unit)
        if denominator == 0:
            raise AaveRevertError("division by zero (panic 0x12): the debt price is 0")
        debt_needed = percent_div(numerator // denominator, bonus)
    else:
        collateral_amount, debt_needed = max_collateral, actual_debt
    fee_bps = collateral.reserve.liquidation_protocol_fee
    if fee_bps == 0:
        return LiquidationAmounts(debt_needed, collateral_amount, 0)
    bonus_collateral = collateral_amount - percent_div(collateral_amount, bonus)
    fee = percent_mul(bonus_collateral, fee_bps)
    return LiquidationAmounts(debt_needed, collateral_amount - fee, fee)
