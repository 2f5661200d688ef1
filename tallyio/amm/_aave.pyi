"""Type stub for the compiled module tallyio.amm._aave (Aave v3 liquidation sizing in C; C API in _aave.pxd)."""
from typing import Any, Iterable, Sequence

from typing_extensions import Self, disjoint_base

from tallyio.amm.aave import Holding, LiquidationAmounts, ReserveConfig
from tallyio.errors import AaveRevertError

__all__ = ["liquidation_amounts", "sized_liquidation", "size_liquidations", "LiquidationSizer"]

def liquidation_amounts(collateral: Holding, debt: Holding, health_factor: int,
                        debt_to_cover: int) -> LiquidationAmounts: ...
def sized_liquidation(collateral: Holding, debt: Holding, health_factor: int) -> LiquidationAmounts: ...
def size_liquidations(
    pairs: Iterable[tuple[Holding, Holding, int]]) -> list[LiquidationAmounts | AaveRevertError]: ...

@disjoint_base
class LiquidationSizer:
    def __new__(cls, reserves: Sequence[ReserveConfig], *args: Any, **kwargs: Any) -> Self: ...
    @property
    def n_assets(self) -> int: ...
    def set_market(self, prices: Sequence[int], incomes: Sequence[int], debt_indexes: Sequence[int]) -> None: ...
    def size_account(self, scaled_collateral: Sequence[int], scaled_debt: Sequence[int],
                     flags: Sequence[bool]) -> tuple[int, list[tuple[int, int, LiquidationAmounts]]] | None: ...
    def best_liquidations(
        self, accounts: Iterable[tuple[Sequence[int], Sequence[int], Sequence[bool]]],
    ) -> list[tuple[int, int, int, int, int, int, int] | None]: ...
    def size_accounts(
        self, prices: Sequence[int], incomes: Sequence[int], debt_indexes: Sequence[int],
        accounts: Iterable[tuple[Sequence[int], Sequence[int], Sequence[bool]]],
    ) -> list[tuple[int, list[tuple[int, int, LiquidationAmounts]]] | None]: ...
