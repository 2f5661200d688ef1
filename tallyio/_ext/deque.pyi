"""Type stub for the compiled module tallyio._ext.deque."""
import enum
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = ["Steal", "Stealer", "WorkStealingDeque"]

_DType = type[object] | Literal["object", "O", "uint64", "u8", "<u8", "=u8", "Q"] | type[np.uint64] | np.dtype[Any]

class Steal(enum.IntEnum):
    """Outcome of a steal (SUCCESS is 0: compare, never test truthiness)."""

    EMPTY = 1
    SUCCESS = 0
    RETRY = 3

@final
class WorkStealingDeque:
    """Chase-Lev work-stealing deque, fixed capacity (rounded up to a power of two,
    at most 2**30).  This object is the owner (Worker) side."""

    def __new__(cls, capacity: int, dtype: _DType = ...) -> Self: ...
    @property
    def capacity(self) -> int: ...
    @property
    def dtype(self) -> Literal["object", "uint64"]: ...
    # owner role (one live thread at a time, else RoleError)
    def push(self, item: Any) -> None: ...
    def pop(self) -> Any: ...
    def push_many(self, items: npt.NDArray[np.uint64]) -> int: ...
    def pop_many(self, out: npt.NDArray[np.uint64]) -> int: ...
    # any thread
    def stealer(self) -> Stealer: ...
    def empty(self) -> bool: ...
    def __len__(self) -> int: ...

@final
class Stealer:
    """Thief handle of a WorkStealingDeque (any thread); from WorkStealingDeque.stealer()."""

    def steal(self) -> tuple[Literal[Steal.SUCCESS], Any] | tuple[Literal[Steal.EMPTY, Steal.RETRY], None]: ...
    def steal_batch(self, dest: WorkStealingDeque) -> tuple[Steal, int]: ...
    def empty(self) -> bool: ...
    def __len__(self) -> int: ...
