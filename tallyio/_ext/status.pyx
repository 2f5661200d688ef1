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


cdef int raise_status(int status, str what) except -1:
    """Raise the exception for `status`; `what` names the object, e.g.
    'SpscQueue(capacity=64)'.  Always returns -1 with an exception set."""
    if status == TIO_FULL:
        raise QueueFullError(f"{what} is full")
    if status == TIO_EMPTY:
        raise QueueEmptyError(f"{what} is empty")
    if status == TIO_EXHAUSTED:
        raise PoolExhaustedError(f"{what} has no free block")
    if status == TIO_DOUBLE_FREE:
        raise BlockError(f"{what}: block freed twice")
    if status == TIO_FOREIGN:
        raise BlockError(f"{what}: block does not belong to this pool")
    if status == TIO_NOMEM:
        raise OutOfMemoryError(f"{what}: out of memory")
    if status == TIO_INVALID:
        raise InvalidArgumentError(f"{what}: invalid argument")
    if status == TIO_INTERRUPTED:
        if PyErr_Occurred() != NULL:
            return -1          # the signal handler's own exception (KeyboardInterrupt...) goes on
        raise WaitInterruptedError(f"{what}: wait interrupted by a signal")
    if status == TIO_CLOSED:
        raise SchedulerNotRunningError(f"{what} is not running")
    if status == TIO_RETRY:
        raise TallyioError(f"{what}: lost a race (retry); this is a tallyio bug if it escapes")
    raise TallyioError(f"{what}: unexpected status {status}")


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
