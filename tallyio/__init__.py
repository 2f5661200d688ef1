"""tallyio: lock-free queues, work-stealing deques and a memory pool in nogil
Cython over C11 atomics -- the core of a NUMA-aware task scheduler.

    >>> import tallyio
    >>> q = tallyio.SpscQueue(8)
    >>> q.put_nowait("tick"); q.get_nowait()
    'tick'
"""
from tallyio._version import __version__
from tallyio.errors import (
    BlockError,
    ConfigError,
    PoolExhaustedError,
    QueueFullError,
    RoleError,
    SchedulerNotRunningError,
    TallyioError,
)
from tallyio._ext.spsc import SpscQueue
from tallyio._ext.mpmc import MpmcQueue
from tallyio._ext.deque import Steal, Stealer, WorkStealingDeque
from tallyio._ext.pool import Block, MemoryPool

__all__ = [
    "__version__",
    "SpscQueue",
    "MpmcQueue",
    "WorkStealingDeque",
    "Stealer",
    "Steal",
    "MemoryPool",
    "Block",
    "TallyioError",
    "QueueFullError",
    "PoolExhaustedError",
    "BlockError",
    "RoleError",
    "ConfigError",
    "SchedulerNotRunningError",
]
