"""The tallyio exception hierarchy (the one place it is defined).

Every error raised by tallyio derives from :class:`TallyioError`, and also from
the standard exception a user would already catch for the same situation::

    >>> import queue
    >>> from tallyio.errors import QueueFullError, TallyioError
    >>> issubclass(QueueFullError, queue.Full) and issubclass(QueueFullError, TallyioError)
    True
"""
import queue as _queue

__all__ = [
    "TallyioError",
    "QueueFullError",
    "PoolExhaustedError",
    "BlockError",
    "RoleError",
    "ConfigError",
    "SchedulerNotRunningError",
]


class TallyioError(Exception):
    """Base class of every tallyio error."""


class QueueFullError(TallyioError, _queue.Full):
    """A bounded queue had no room; the item was not accepted."""


class PoolExhaustedError(TallyioError, MemoryError):
    """A :class:`~tallyio.MemoryPool` has no free block left."""


class BlockError(TallyioError, ValueError):
    """A pool block was misused: freed twice, freed to another pool, or used after free."""


class RoleError(TallyioError, RuntimeError):
    """A single-thread role (SPSC producer or consumer, deque owner) was used
    from a second thread while its holder is still alive."""


class ConfigError(TallyioError, ValueError):
    """A configuration field or environment variable has an invalid value."""


class SchedulerNotRunningError(TallyioError, RuntimeError):
    """Work was submitted to a scheduler that is not running."""


# ---- scheduler lifecycle (harden9): stop()/shutdown() with a timeout -------------------

class SchedulerTimeoutError(TallyioError, TimeoutError):
    """``NumaScheduler.stop(timeout=...)`` (or ``shutdown``) gave up waiting:
    tasks were still running.  The message names them; the scheduler keeps
    stopping, and ``stop()`` may be called again."""


__all__ += ["SchedulerTimeoutError"]
