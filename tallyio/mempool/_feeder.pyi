"""Type stub for tallyio.mempool._feeder (compiled)."""
import os
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool._pipeline import Pipeline
from typing_extensions import Self, disjoint_base

__all__ = ["ReplayFeeder", "replay_items"]

@disjoint_base
class ReplayFeeder:
    """Feeds a recording to a Pipeline from a nogil loop."""

    pipeline: Pipeline
    path: Any
    realtime: bool
    end_reason: str
    def __init__(
        self,
        pipeline: Pipeline,
        path: Union[str, os.PathLike[str]],
        *,
        realtime: bool = False,
        skip_pending: int = 0,
        native_kinds: Iterable[int] = (1, 2, 3),
        spin_ns: int = 30000,
        inline_analysis: bool = True,
    ) -> None: ...
    def start_clock(self) -> Optional[tuple[int, int]]: ...
    @property
    def clock(self) -> Optional[tuple[int, int]]: ...
    def stop(self) -> None: ...
    def run(
        self,
        *,
        on_barrier: Optional[Callable[[int], Any]] = None,
        on_block: Optional[Callable[[BlockHeader], Any]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        lending_to: Optional[bytes] = None,
        on_lending_tx: Optional[Callable[[PendingTx], Any]] = None,
        on_other: Optional[Callable[[Any], Any]] = None,
    ) -> dict[str, Any]: ...
    def pending_tx(self, tx_hash: bytes) -> Optional[PendingTx]: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

def replay_items(
    path: Union[str, os.PathLike[str]], end: Optional[dict[str, str]] = None
) -> Iterator[tuple[int, Union[PendingTx, BlockHeader, SyncEvent, Any]]]: ...
