"""Type stub for tallyio.engine._native_example (compiled): an example native strategy."""
from typing_extensions import Self, disjoint_base
from tallyio.engine._native import NativeHooks

@disjoint_base
class ExampleCycleHooks(NativeHooks):
    def __new__(cls, min_profit: int = 1) -> Self: ...
    @property
    def calls(self) -> int: ...
