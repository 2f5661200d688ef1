"""Type stub for tallyio.mempool._filter (compiled)."""
from typing import Iterable, Optional, Union

from tallyio.eth.types import PendingTx
from tallyio.mempool.config import FilterConfig
from typing_extensions import disjoint_base

__all__ = ["TxFilter", "FilterConfig", "VERDICTS", "TARGET_KINDS"]

VERDICTS: tuple[str, ...]
TARGET_KINDS: dict[str, int]

_Target = Union[bytes, tuple[bytes, int]]

@disjoint_base
class TxFilter:
    """The pending-transaction filter."""

    config: FilterConfig
    def __init__(self, config: Optional[FilterConfig] = None, *,
                 routers_v2: Iterable[_Target] = ..., routers_v3: Iterable[_Target] = ...,
                 universal_routers: Iterable[_Target] = ..., pools_v2: Iterable[_Target] = ...,
                 pools_v3: Iterable[_Target] = ...) -> None: ...
    def target(self, address: bytes) -> Optional[tuple[str, int]]: ...
    def check(self, tx: PendingTx) -> str: ...
    def stats(self) -> dict[str, int]: ...
