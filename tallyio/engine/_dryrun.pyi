"""Type stub for tallyio.engine._dryrun (compiled): the dry run's native core."""
from typing_extensions import disjoint_base
from typing import Any, Callable, Optional, Sequence, Tuple

from tallyio.eth.types import PendingTx
from tallyio.mempool import PoolTable

__all__ = ["DryRunCore"]

@disjoint_base
class DryRunCore:
    @property
    def deferred(self) -> int: ...
    def __init__(self, table: PoolTable, routers: dict[bytes, int]) -> None: ...
    def run(self, actions: Sequence[Any], trigger_key: Optional[bytes] = None,
            pending: Optional[Callable[[bytes], Optional[PendingTx]]] = None
            ) -> Optional[Tuple[Tuple[Optional[int], ...], int, int, int]]: ...
