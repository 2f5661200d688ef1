"""tallyio: a NUMA-aware work-stealing task scheduler for Python, over lock-free
queues, Chase-Lev deques and a memory pool in nogil Cython and C11 atomics.

    >>> import tallyio
    >>> q = tallyio.SpscQueue(8)
    >>> q.put_nowait("tick"); q.get_nowait()
    'tick'
"""
from tallyio._version import __version__
from tallyio.errors import (
    BlockError,
    ConfigError,
    InvalidArgumentError,
    OutOfMemoryError,
    PoolExhaustedError,
    QueueEmptyError,
    QueueFullError,
    ResourceLimitError,
    RoleError,
    SchedulerNotRunningError,
    SchedulerTimeoutError,
    TallyioError,
    WaitInterruptedError,
)
try:
    from tallyio._ext.spsc import SpscQueue
    from tallyio._ext.mpmc import MpmcQueue
    from tallyio._ext.deque import Steal, Stealer, WorkStealingDeque
    from tallyio._ext.pool import Block, MemoryPool
except ModuleNotFoundError as _missing:
    if not (_missing.name or "").startswith("tallyio._ext"):
        raise
    # say what happened and what to do, as numpy does (the usual cause: Python
    # started inside an unbuilt source checkout, which shadows the installed tallyio)
    from tallyio._missing_core import explain as _explain
    raise ImportError(_explain(_missing), name=_missing.name, path=__file__) from None
from tallyio.task import Task, TaskResult
from tallyio.topology import NumaNode, NumaTopology
from tallyio.config import SchedulerConfig
from tallyio.balancer import Load, LoadBalancer
from tallyio.stats import SchedulerStats
from tallyio.scheduler import NumaScheduler
from tallyio.mempool.records import Opportunity, OpportunityKind

# The engine's faces load on first use (PEP 562), so `import tallyio` stays light for
# users of the scheduler and the queues alone.
_ENGINE_NAMES = ("Engine", "CoreConfig", "Strategy")


def __getattr__(name: str):
    if name in _ENGINE_NAMES:
        import tallyio.engine

        return getattr(tallyio.engine, name)
    raise AttributeError(f"module 'tallyio' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ENGINE_NAMES))


def get_include() -> str:
    """The directory of tallyio's C headers (tio_atomic.h, tio_platform.h,
    tio_status.h), for the ``include_dirs`` of Cython extensions that
    ``cimport`` tallyio's core, as with ``numpy.get_include()``.

    >>> import os, tallyio
    >>> os.path.isfile(os.path.join(tallyio.get_include(), "tio_atomic.h"))
    True
    """
    import os

    return os.path.join(os.path.dirname(__file__), "_ext", "include")


__all__ = [
    "__version__",
    "get_include",
    "SpscQueue",
    "MpmcQueue",
    "WorkStealingDeque",
    "Stealer",
    "Steal",
    "MemoryPool",
    "Block",
    "NumaScheduler",
    "SchedulerConfig",
    "Task",
    "TaskResult",
    "NumaTopology",
    "NumaNode",
    "LoadBalancer",
    "Load",
    "SchedulerStats",
    "TallyioError",
    "QueueFullError",
    "QueueEmptyError",
    "PoolExhaustedError",
    "BlockError",
    "RoleError",
    "ConfigError",
    "SchedulerNotRunningError",
    "SchedulerTimeoutError",
    "ResourceLimitError",
    "InvalidArgumentError",
    "OutOfMemoryError",
    "WaitInterruptedError",
    "Opportunity",
    "OpportunityKind",
    "Engine",
    "CoreConfig",
    "Strategy",
]
