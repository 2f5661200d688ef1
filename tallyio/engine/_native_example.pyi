"""Type stub for tallyio.engine._native_example (compiled): an example native strategy."""
from tallyio.engine._native import NativeHooks

class ExampleCycleHooks(NativeHooks):
    def __init__(self, min_profit: int = 1) -> None: ...
    @property
    def calls(self) -> int: ...
