"""Status codes -> exceptions: the only such mapping in tallyio.  Owns
nothing else (role claims and argument checks live in tallyio._ext.checks);
every exception it raises derives from tallyio.errors.TallyioError, except
the one a signal handler raised during a wait, which passes through as is."""
from tallyio.errors import (QueueFullError, QueueEmptyError, PoolExhaustedError, BlockError,
                            TallyioError, SchedulerNotRunningError, InvalidArgumentError,
                            OutOfMemoryError, WaitInterruptedError)
from tallyio._ext.common cimport (TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY, TIO_EXHAUSTED,
                                  TIO_DOUBLE_FREE, TIO_FOREIGN, TIO_NOMEM, TIO_INVALID,
                                  TIO_INTERRUPTED, TIO_CLOSED)

cdef extern from "Python.h":
    void *PyErr_Occurred()


# status -> (exception class, what the message says after the object's name)
cdef dict _EXCEPTION_OF = {
    TIO_FULL: (QueueFullError, " is full"),
    TIO_EMPTY: (QueueEmptyError, " is empty"),
    TIO_EXHAUSTED: (PoolExhaustedError, " has no free block"),
    TIO_DOUBLE_FREE: (BlockError, ": block freed twice"),
    TIO_FOREIGN: (BlockError, ": block does not belong to this pool"),
    TIO_NOMEM: (OutOfMemoryError, ": out of memory"),
    TIO_INVALID: (InvalidArgumentError, ": invalid argument"),
    TIO_INTERRUPTED: (WaitInterruptedError, ": wait interrupted by a signal"),
    TIO_CLOSED: (SchedulerNotRunningError, " is not running"),
    TIO_RETRY: (TallyioError, ": lost a race (retry); this is a tallyio bug if it escapes"),
}


cdef object exception_for(int status, str message):
    """The exception (not raised) for `status`, carrying `message` verbatim:
    for callers that explain the condition themselves (the scheduler's "its
    own queues are full", "not started: call start()") or hand the exception
    on instead of raising it (a task's failure callback)."""
    entry = _EXCEPTION_OF.get(status)
    if entry is None:
        return TallyioError(f"{message} (unexpected status {status})")
    return entry[0](message)


cdef int raise_status(int status, str what) except -1:
    """Raise the exception for `status`; `what` names the object, e.g.
    'SpscQueue(capacity=64)'.  Always returns -1 with an exception set."""
    if status == TIO_INTERRUPTED and PyErr_Occurred() != NULL:
        return -1              # the signal handler's own exception (KeyboardInterrupt...) goes on
    entry = _EXCEPTION_OF.get(status)
    if entry is None:
        raise TallyioError(f"{what}: unexpected status {status}")
    raise entry[0](what + entry[1])


def raise_for_status(int status, str what):
    """Raise the exception tallyio maps `status` (a TIO_* code) to; for code
    that gets a status from the C API through Python.

    >>> from tallyio._ext.status import raise_for_status, FULL
    >>> raise_for_status(FULL, "MyQueue(capacity=8)")
    Traceback (most recent call last):
    ...
    tallyio.errors.QueueFullError: MyQueue(capacity=8) is full
    """
    raise_status(status, what)


# The status codes, for Python code that meets them (tests, raise_for_status).
OK = TIO_OK
EMPTY = TIO_EMPTY
FULL = TIO_FULL
RETRY = TIO_RETRY
EXHAUSTED = TIO_EXHAUSTED
DOUBLE_FREE = TIO_DOUBLE_FREE
FOREIGN = TIO_FOREIGN
NOMEM = TIO_NOMEM
INVALID = TIO_INVALID
INTERRUPTED = TIO_INTERRUPTED
CLOSED = TIO_CLOSED
