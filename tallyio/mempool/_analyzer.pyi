"""Type stub for tallyio.mempool._analyzer (compiled)."""
from typing import Any, Iterable, Optional, Sequence

from tallyio.eth.types import PendingTx
from tallyio.mempool._opportunity import OpportunityQueue
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.config import AnalyzerConfig
from tallyio.mempool.records import Opportunity
from typing_extensions import disjoint_base

__all__ = ["Analyzer", "COUNTERS"]

COUNTERS: tuple[str, ...]

@disjoint_base
class Analyzer:
    """The backrun analyzer over a PoolTable."""

    table: PoolTable
    config: AnalyzerConfig
    queue: OpportunityQueue
    def __init__(self, table: PoolTable, config: Optional[AnalyzerConfig] = None,
                 queue: Optional[OpportunityQueue] = None) -> None: ...
    def analyze(self, tx: PendingTx, swaps: Sequence[dict[str, Any]], exchange: int = 0,
                base_fee: int = 0, block_number: int = 0) -> list[Opportunity]: ...
    def arbitrage(self, base_fee: int = 0, block_number: int = 0,
                  pools: Optional[Iterable[bytes]] = None) -> list[Opportunity]: ...
    def stats(self) -> dict[str, int]: ...
