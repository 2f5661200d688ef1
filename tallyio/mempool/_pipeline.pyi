"""Type stub for tallyio.mempool._pipeline (compiled)."""
import os
from typing import Any, Iterable, Optional, Union

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool._filter import TxFilter
from tallyio.mempool._opportunity import OpportunityQueue
from tallyio.mempool._pools import PoolTable
from tallyio.mempool._ring import PendingRing
from tallyio.mempool.config import AnalyzerConfig, FilterConfig
from tallyio.mempool.records import Opportunity
from typing_extensions import disjoint_base

__all__ = ["Pipeline"]

_Target = Union[bytes, tuple[bytes, int]]
_Record = Union[PendingTx, BlockHeader, SyncEvent]

@disjoint_base
class Pipeline:
    """decode -> filter -> analyze on a NumaScheduler's workers."""

    table: PoolTable
    filter: TxFilter
    ring: PendingRing
    opportunities: OpportunityQueue
    scheduler: Any
    analyzer_config: AnalyzerConfig
    blocks: int
    syncs: int
    unknown_records: int
    def __init__(self, table: PoolTable, *, scheduler: Any = None,
                 filter_config: Optional[FilterConfig] = None,
                 analyzer_config: Optional[AnalyzerConfig] = None,
                 routers_v2: Iterable[_Target] = ..., routers_v3: Iterable[_Target] = ...,
                 universal_routers: Iterable[_Target] = ..., ring_capacity: int = 4096,
                 opportunity_capacity: int = 1024, workers: Optional[int] = None,
                 inline_analysis: bool = False) -> None: ...
    def feed(self, record: _Record) -> None: ...
    def __call__(self, record: _Record) -> None: ...
    def run(self, source: Iterable[_Record]) -> int: ...
    def replay_file(self, path: str | os.PathLike[str]) -> dict[str, Any]: ...
    def scan_arbitrage(self) -> int: ...
    def drain(self, timeout: float = 60.0) -> None: ...
    def next_opportunity(self, timeout: Optional[float] = None) -> Optional[Opportunity]: ...
    def stats(self) -> dict[str, dict[str, int]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Pipeline": ...
    def __exit__(self, *exc: object) -> None: ...
