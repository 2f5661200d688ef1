"""Type stub for the compiled module tallyio.amm._cycle (cycle sizing; C API in _cycle.pxd)."""
from typing import NamedTuple, Sequence

class CycleSize(NamedTuple):
    amount_in: int
    profit: int
    certified: bool
    evaluations: int

def cycle_size(hops: Sequence[tuple[int, int, int]], max_evaluations: int = 4096) -> CycleSize: ...
def best_cycle_input(hops: Sequence[tuple[int, int, int]], max_evaluations: int = 4096) -> tuple[int, int]: ...
