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
    "ForeignFileError",
    "CorruptFileError",
    "FutureVersionError",
    "StateLockedError",
    "StorageFullError",
    "ReadOnlyStateError",
    "LayoutMismatchError",
    "JournalApplyError",
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


# ---- tallyio.state: the record log, global state and checkpoints -------------

class ForeignFileError(TallyioError, ValueError):
    """A file opened as a record log or checkpoint is not one (wrong magic):
    nothing was read from it and nothing was written to it."""


class CorruptFileError(TallyioError, ValueError):
    """A record log or checkpoint file is truncated or fails its checksum where
    no valid copy is left (a checkpoint with neither slot valid, a log whose
    header is damaged)."""


class FutureVersionError(TallyioError, ValueError):
    """A file was written by a newer format or layout version than this
    tallyio understands; it is left untouched."""


class StateLockedError(TallyioError, BlockingIOError):
    """Another writer (this or another process) holds the exclusive lock on a
    record log or checkpoint file."""


class StorageFullError(TallyioError, OSError):
    """The disk is full or a file-size limit was hit while growing a file; the
    record or checkpoint was not accepted and the last good data is intact."""


class ReadOnlyStateError(TallyioError, PermissionError):
    """A writer was opened where files cannot be created or written (read-only
    directory or file)."""


class LayoutMismatchError(TallyioError, ValueError):
    """A checkpoint holds a state layout (same version) whose size or field
    table differs from the one the caller declared."""


class JournalApplyError(TallyioError, RuntimeError):
    """An event was journaled but ``apply`` raised, so the state no longer
    matches the journal: the store refuses further records and checkpoints;
    reopen it (the journal is replayed) once ``apply`` is fixed."""
