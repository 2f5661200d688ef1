"""Type stub for tallyio.mempool._pools (compiled)."""
from typing import Iterable, Optional, Union

import numpy as np
import numpy.typing as npt

from tallyio.eth.types import SyncEvent
from tallyio.mempool.records import V2Pool, V3Pool, V3PoolEvent
from typing_extensions import disjoint_base

__all__ = ["PoolTable"]

SNAPSHOT_MAGIC: bytes
SNAPSHOT_MAGIC_V3: bytes

@disjoint_base
class PoolTable:
    """The pool table (V2 pairs and V3 pools): numpy arrays, token graph, precomputed cycles."""

    tokens: npt.NDArray[np.int32]
    fee_bps: npt.NDArray[np.uint32]
    exchange: npt.NDArray[np.uint32]
    reserves: npt.NDArray[np.float64]
    reserves_exact: npt.NDArray[np.uint64]
    kind: npt.NDArray[np.uint8]
    fee_pips: npt.NDArray[np.uint32]
    v3_sqrt_price: npt.NDArray[np.uint64]
    v3_liquidity: npt.NDArray[np.uint64]
    v3_ticks: npt.NDArray[np.int32]
    v3_range_ok: npt.NDArray[np.uint8]
    v3_events_applied: int
    v3_events_unknown: int
    v3_range_lost: int
    cycle_len: npt.NDArray[np.uint8]
    cycle_pools: npt.NDArray[np.int32]
    cycle_tokens_in: npt.NDArray[np.int32]
    pool_addresses: list[bytes]
    token_addresses: list[bytes]
    syncs_applied: int
    syncs_unknown: int
    cycles_truncated: int
    def __init__(self, pools: Iterable[Union[V2Pool, V3Pool]], weth: Optional[bytes] = None, *,
                 max_cycles: int = 1_000_000) -> None: ...
    def __len__(self) -> int: ...
    @property
    def cycle_count(self) -> int: ...
    @property
    def weth(self) -> Optional[bytes]: ...
    def index_of(self, address: bytes) -> int: ...
    def reserves_of(self, address: bytes) -> tuple[int, int]: ...
    def pool(self, index: int) -> Union[V2Pool, V3Pool]: ...
    def pools(self) -> list[Union[V2Pool, V3Pool]]: ...
    def v3_in_range(self, address: bytes) -> bool: ...
    def v3_pool(self, exchange: int, token_a: bytes, token_b: bytes, fee_pips: int) -> Optional[bytes]: ...
    def apply_v3_event(self, event: V3PoolEvent) -> bool: ...
    def pair(self, exchange: int, token_a: bytes, token_b: bytes) -> Optional[bytes]: ...
    def cycles_through(self, address: bytes) -> list[list[tuple[bytes, bytes, bytes]]]: ...
    def cycle(self, c: int) -> list[tuple[bytes, bytes, bytes]]: ...
    def apply_sync(self, event: SyncEvent) -> bool: ...
    def stats(self) -> dict[str, int]: ...
    def to_bytes(self) -> bytes: ...
    @classmethod
    def from_bytes(cls, data: bytes) -> "PoolTable": ...
