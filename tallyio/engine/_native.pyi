"""Type stub for tallyio.engine._native (compiled): native strategy hooks."""
from typing_extensions import disjoint_base
from typing import Any, List

from tallyio.engine.records import SwapAction
from tallyio.engine.strategy import Strategy, StrategyContext
from tallyio.mempool.records import Opportunity

__all__ = ["NativeHooks", "NativeStrategy", "fill_opportunity_calls"]

@disjoint_base
class NativeHooks:
    """Holds a tio_strategy_hooks (C function pointer + state)."""

    name: str

def call_hook(hooks: NativeHooks, op: Opportunity, router: bytes) -> List[SwapAction]: ...
def fill_opportunity_calls(hooks: NativeHooks, op: Opportunity, n: int) -> int: ...

class NativeStrategy(Strategy):
    hooks: NativeHooks
    def __init__(self, hooks: NativeHooks) -> None: ...
    def on_opportunity(self, opportunity: Opportunity, ctx: StrategyContext) -> List[Any]: ...
