"""Health factors of many Aave v3 accounts at once: ``HealthMatrix``, accounts x
reserves, with exact scaled balances in the native store
(``tallyio.amm._health``), float64 health factors refreshed incrementally for a
screen, and every decision (``account_data``, ``liquidatable``) taken on the
exact integer path of ``tallyio.amm.aave``.

Owns the matrix and the per-reserve exact state (prices, normalized indexes);
touches nothing else.  One writer at a time (the engine's state thread); not
thread-safe.

>>> from tallyio.amm.aave import RAY, ReserveConfig
>>> weth = ReserveConfig(b"\\x01" * 20, 18, 8000, 8250, 10500, 1000)
>>> usdc = ReserveConfig(b"\\x02" * 20, 6, 7500, 8000, 10450, 1000)
>>> m = HealthMatrix([weth, usdc])
>>> m.set_price(0, 2000 * 10**8); m.set_price(1, 10**8)
0
0
>>> alice = m.add_account(b"\\xaa" * 20)
>>> m.set_position(alice, 0, 10**18, 0, True)            # 1 WETH supplied as collateral
>>> m.set_position(alice, 1, 0, 1600 * 10**6, False)     # 1600 USDC borrowed
>>> round(float(m.health_factors()[alice]), 6)           # 2000 * 0.825 / 1600
1.03125
>>> m.set_price(0, 1900 * 10**8)                          # WETH drops: alice's row is refreshed
1
>>> m.account_data(alice).health_factor                   # exact: 1900e8 * 0.825 / 1600e8
979687500000000000
>>> m.liquidatable().tolist()
[0]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tallyio.amm._health import HealthCore
from tallyio.amm.aave import (HEALTH_FACTOR_LIQUIDATION_THRESHOLD, RAY, UINT256_MAX, AccountData, Holding,
                              ReserveConfig, account_data_of_rows, ray_mul)

__all__ = ["HealthMatrix"]


def _uint(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{name}={value} is not a uint256")
    return value


class HealthMatrix(HealthCore):
    """Accounts x ``reserves``: exact scaled balances, float64 health factors.

    Native methods (``tallyio.amm._health.HealthCore``): ``add_account(address)
    -> slot``, ``slot_of``, ``address_of``, ``set_position(slot, asset_index,
    scaled_collateral, scaled_debt, use_as_collateral)``, ``apply_delta(slot,
    asset_index, d_scaled_collateral, d_scaled_debt)``, ``set_collateral_enabled``,
    ``position``, ``positions``, ``health_factors()``, ``refresh_all()``.
    Prices start at 0 and indexes at 1 ray until set.
    """

    def __init__(self, reserves: Sequence[ReserveConfig], capacity: int = 1024):
        reserves = tuple(reserves)
        for i, reserve in enumerate(reserves):
            if not isinstance(reserve, ReserveConfig):
                raise TypeError(f"reserves[{i}] must be a ReserveConfig, got {type(reserve).__name__}")
        self.reserves = reserves
        self._prices = [0] * len(reserves)
        self._incomes = [RAY] * len(reserves)
        self._debt_indexes = [RAY] * len(reserves)
        for asset in range(len(reserves)):
            self._install(asset)

    def _install(self, asset: int) -> int:
        reserve, price = self.reserves[asset], self._prices[asset]
        unit = reserve.unit
        self._set_exact(asset, price, self._incomes[asset], self._debt_indexes[asset], unit,
                        reserve.liquidation_threshold)
        # the native cells are in whole tokens: the values are per token
        return self._set_asset(asset, self._incomes[asset] * price / RAY, self._debt_indexes[asset] * price / RAY,
                               reserve.liquidation_threshold / 10_000, price / (2 * unit) + 1.0)

    def _check_asset_index(self, asset_index: int) -> None:
        if isinstance(asset_index, bool) or not isinstance(asset_index, int):
            raise TypeError(f"asset_index must be an int, got {type(asset_index).__name__}")
        if not 0 <= asset_index < len(self.reserves):
            raise IndexError(f"asset index {asset_index} out of range (the matrix has {len(self.reserves)} reserves)")

    def set_price(self, asset_index: int, price: int) -> int:
        """The oracle price of one reserve (base currency units); refreshes only
        the accounts holding it and returns how many that was."""
        self._check_asset_index(asset_index)
        self._prices[asset_index] = _uint("price", price)
        return self._install(asset_index)

    def set_indexes(self, asset_index: int, income: int, debt: int) -> int:
        """One reserve's normalized income and variable debt indexes (ray, as
        ``aave.normalized_income`` / ``normalized_debt`` give them at the
        current timestamp); refreshes the accounts holding it."""
        self._check_asset_index(asset_index)
        self._incomes[asset_index] = _uint("income", income)
        self._debt_indexes[asset_index] = _uint("debt", debt)
        return self._install(asset_index)

    def price(self, asset_index: int) -> int:
        """The price last set for one reserve."""
        self._check_asset_index(asset_index)
        return self._prices[asset_index]

    def indexes(self, asset_index: int) -> tuple[int, int]:
        """``(income, debt)`` normalized indexes last set for one reserve."""
        self._check_asset_index(asset_index)
        return self._incomes[asset_index], self._debt_indexes[asset_index]

    def holdings(self, slot: int) -> list[Holding]:
        """The account's positions as ``aave.Holding`` records (balances in
        underlying units: ``ray_mul(scaled, index)``), in reserve order; feed
        one to ``aave.liquidation_amounts``."""
        return [Holding(self.reserves[a], self._prices[a], ray_mul(collateral, self._incomes[a]), enabled,
                        ray_mul(debt, self._debt_indexes[a]))
                for a, collateral, debt, enabled in self.positions(slot)]

    def account_data(self, slot: int) -> AccountData:
        """``Pool.getUserAccountData`` for the account, exact (no eMode)."""
        reserves, prices, incomes, debt_indexes = self.reserves, self._prices, self._incomes, self._debt_indexes
        return account_data_of_rows([(reserves[a], prices[a], ray_mul(collateral, incomes[a]), enabled,
                                      ray_mul(debt, debt_indexes[a]))
                                     for a, collateral, debt, enabled in self.positions(slot)])

    def liquidatable(self) -> np.ndarray:
        """Slots (int64, ascending) whose exact health factor is below 1: the
        float screen proposes, the exact integer path decides each one (in C,
        GenericLogic on 256-bit integers; an account whose computation passes
        2**256 - 1 is decided by ``account_data``, which raises where the
        contract reverts)."""
        keep, undecided = self._confirm(self._screen())
        if undecided:
            keep = sorted(keep + [slot for slot in undecided
                                  if self.account_data(slot).health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD])
        return np.asarray(keep, dtype=np.int64)
