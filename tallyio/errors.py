"""The tallyio exception hierarchy (the one place it is defined).

The rule:

* every error tallyio raises for a condition of its own -- a full or empty
  queue, an exhausted pool, a role held by another thread, a scheduler that is
  not running, a status code of the C core, a file, a node, a decode -- derives
  from :class:`TallyioError`, and also from the standard exception a user would
  already catch for the same situation (``except queue.Empty`` keeps working);
* a wrong argument (wrong type, out of range: a capacity of 0, a dtype that is
  not object/uint64, a negative timeout) raises the plain ``TypeError``,
  ``ValueError`` or ``OverflowError`` any Python function raises, as the
  stdlib's :mod:`queue` does;
* an exception raised by a signal handler during a wait (``KeyboardInterrupt``
  on Ctrl+C) passes through unchanged: it is the user's, not tallyio's.

    >>> import queue
    >>> from tallyio.errors import QueueEmptyError, QueueFullError, TallyioError
    >>> issubclass(QueueFullError, queue.Full) and issubclass(QueueFullError, TallyioError)
    True
    >>> issubclass(QueueEmptyError, queue.Empty) and issubclass(QueueEmptyError, TallyioError)
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
    "ResourceLimitError",
    "DecodeError",
    "AmmError",
    "AmmOverflowError",
    "MetricError",
    "SchedulerTimeoutError",
    "ForeignFileError",
    "CorruptFileError",
    "FutureVersionError",
    "StateLockedError",
    "StorageFullError",
    "ReadOnlyStateError",
    "LayoutMismatchError",
    "RpcError",
    "NodeConnectionError",
    "DevnetError",
    "JournalApplyError",
    "QueueEmptyError",
    "InvalidArgumentError",
    "OutOfMemoryError",
    "WaitInterruptedError",
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


# ---- scheduler limits (polish9: tallyio.resources) ----------------------------------

class ResourceLimitError(ConfigError, MemoryError):
    """A configuration valid field by field needs, as a whole, more memory or
    threads than this machine can ever give (raised before anything is
    allocated; the message names the fields, the need and the limit)."""
# ---- tallyio.devnet and the node source (tallyio.mempool.node) ----
# ---- tallyio.eth (calldata decoding) ----

class DecodeError(TallyioError, ValueError):
    """Calldata of a function the decoder knows is malformed; ``reason`` names the
    check that failed (``truncated``, ``bad_offset``, ``bad_length``, ``bad_value``,
    ``bad_path``, ``path_too_long``, ``too_deep``, ``too_many_swaps``,
    ``too_many_calls``, ``commands_mismatch``) and ``function`` the outer call."""

    def __init__(self, message: str, reason: str = "", function: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.function = function


# ---- tallyio.amm: exact pool math ----------------------------------------------------------

class AmmError(TallyioError, ValueError):
    """A pool-math call that the contract itself would revert.  ``reason`` is the
    library's require() message (``INSUFFICIENT_INPUT_AMOUNT``,
    ``INSUFFICIENT_OUTPUT_AMOUNT``, ``INSUFFICIENT_LIQUIDITY``, ``INVALID_PATH``...)
    or the name of the check that failed."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class AmmOverflowError(AmmError, OverflowError):
    """An intermediate of the pool math needs more than 256 bits: SafeMath /
    FullMath would revert on chain."""
# ---- tallyio.metrics -------------------------------------------------------------

class MetricError(TallyioError, ValueError):
    """A metric was misused: a negative or non-finite value, histograms of
    different layouts merged, an invalid metric or label name, labels that do
    not match the metric's, or one name registered twice with another type."""
# ---- scheduler lifecycle (harden9): stop()/shutdown() with a timeout -------------------

class SchedulerTimeoutError(TallyioError, TimeoutError):
    """``NumaScheduler.stop(timeout=...)`` (or ``shutdown``) gave up waiting:
    tasks were still running.  The message names them; the scheduler keeps
    stopping, and ``stop()`` may be called again."""


__all__ += ["SchedulerTimeoutError"]


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


# ---- tallyio.devnet and the node source (tallyio.mempool.node) ----

class RpcError(TallyioError, RuntimeError):
    """A JSON-RPC node answered a call with an error (``code``, ``message``,
    ``data`` as the node sent them) or with something that is not JSON-RPC."""

    def __init__(self, method: str, message: str, code: int | None = None, data: object = None):
        self.method, self.code, self.data = method, code, data
        self.node_message = message
        super().__init__(f"{method}: {message}" + (f" (code {code})" if code is not None else "")
                         + (f" data={data!r}" if data is not None else ""))


class NodeConnectionError(TallyioError, ConnectionError):
    """The node could not be reached, or the connection broke mid-call."""


class DevnetError(TallyioError, RuntimeError):
    """The local test chain (anvil) could not be found, started or used; the
    message names what was wrong and ends with the tail of anvil's log."""
    def __reduce__(self):  # keep reason and function across pickling (worker processes)
        return type(self), (str(self), self.reason, self.function)
class JournalApplyError(TallyioError, RuntimeError):
    """An event was journaled but ``apply`` raised, so the state no longer
    matches the journal: the store refuses further records and checkpoints;
    reopen it (the journal is replayed) once ``apply`` is fixed."""
# ---- tallyio._ext (api10): the status codes of the C core that had no tallyio class ----

class QueueEmptyError(TallyioError, _queue.Empty):
    """A queue or deque had no item to take (``get_nowait``, ``get`` that timed
    out, ``pop``); ``except queue.Empty`` catches it too."""


class InvalidArgumentError(TallyioError, ValueError):
    """A call of the C API (``TIO_INVALID``) was given an argument it refuses:
    a priority outside 0..255, a NULL function, a call from a thread that is
    not a worker."""


class OutOfMemoryError(TallyioError, MemoryError):
    """The C core could not allocate memory while setting a structure up
    (``TIO_NOMEM``)."""


class WaitInterruptedError(TallyioError, InterruptedError):
    """A blocking wait of the C core was interrupted (``TIO_INTERRUPTED``)
    without a Python exception of its own to report; when a signal handler
    raised one (``KeyboardInterrupt``), that exception propagates instead."""


__all__ += ["QueueEmptyError", "InvalidArgumentError", "OutOfMemoryError", "WaitInterruptedError"]


# ---- tallyio.engine (execution): keys and the node executor ----

class SignerError(TallyioError, ValueError):
    """A private key could not be loaded, or a transaction could not be signed
    (a field missing or out of range, the signer closed). The message names
    what was wrong and never carries the key or a password."""


class KeystoreError(SignerError):
    """An encrypted keystore file could not be opened: missing, not a v3
    keystore, or the password is wrong (the MAC does not match)."""


__all__ += ["SignerError", "KeystoreError"]
# ---- tallyio.engine (breaker) ----

class BreakerOpenError(TallyioError, RuntimeError):
    """A circuit breaker refused a call: it is open, or half-open with its
    probe budget spent.  ``breaker`` is the breaker's name, ``state`` the
    ``BreakerState`` it was in."""

    def __init__(self, breaker: str, state: object, message: str | None = None):
        self.breaker, self.state = breaker, state
        name = getattr(state, "name", str(state))
        super().__init__(message or f"circuit breaker {breaker!r} is {name}: call refused")

    def __reduce__(self):  # keep breaker and state across pickling (worker processes)
        return type(self), (self.breaker, self.state, str(self))


__all__ += ["BreakerOpenError"]
# ---- tallyio.backtest ----

class CorruptSegmentError(TallyioError, ValueError):
    """A backtest segment file cannot be replayed: missing, not a record log,
    damaged, or not what its manifest says.  ``path`` names the file, ``reason``
    says what was wrong; the backtest reports it and goes on with the others."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"corrupt segment {path}: {reason}")

    def __reduce__(self):  # keep path and reason across pickling (worker processes)
        return type(self), (self.path, self.reason)


__all__ += ["CorruptSegmentError"]


# ---- tallyio.amm (aave): Aave v3's exact arithmetic ----

class AaveRevertError(TallyioError, ValueError):
    """An Aave v3 computation would revert on chain: a WadRayMath/PercentageMath
    overflow or division by zero, checked arithmetic leaving uint256, or a
    liquidationCall rejected by ValidationLogic (the message names Aave's error
    and the values)."""


__all__ += ["AaveRevertError"]
