"""The Executor face's per-call machinery: ``NumaScheduler.submit(fn)`` ->
``concurrent.futures.Future`` without a Python frame on either side.

Owns: ``FutureCondition`` (the Future's ``_condition``: a C RLock whose
acquire/release/``with`` are C calls, waited on through threading.Condition's
own ``wait``/``notify`` code), ``FutureCall`` (the record a worker runs: it
marks the future running, calls the function and settles the future by
writing its fields under its condition, as ``set_result`` would, with no
Python frame) and ``FutureSubmitter`` (``NumaScheduler.submit`` itself: builds
the future and the record and queues it through ``SchedulerCore.submit_task``).
Touches only the public fields of ``concurrent.futures.Future`` that its own
methods, ``wait()`` and ``as_completed()`` read (``_condition``, ``_state``,
``_result``, ``_exception``, ``_waiters``, ``_done_callbacks``), always under
the future's condition, so the Future contract (cancel before start, waiters,
callbacks after the state change, outside the lock) holds.
"""
cimport cython
import collections
import concurrent.futures
import _thread
import threading

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)

_RLock = _thread.RLock
_deque = collections.deque
_rlock_acquire = _thread.RLock.acquire
_rlock_release = _thread.RLock.release
_LOGGER = concurrent.futures._base.LOGGER
_Future = concurrent.futures.Future

cdef object PENDING = concurrent.futures._base.PENDING
cdef object RUNNING = concurrent.futures._base.RUNNING
cdef object CANCELLED = concurrent.futures._base.CANCELLED
cdef object CANCELLED_AND_NOTIFIED = concurrent.futures._base.CANCELLED_AND_NOTIFIED
cdef object FINISHED = concurrent.futures._base.FINISHED


# Not tracked by the cyclic GC: it references an RLock and (once waited on) a
# deque of threading's waiter locks, neither of which can lead back to it.
# The profile of submit()+wait() had the GC at ~27 % of the run: every
# tracked object a submit allocates brings the next collection closer.
@cython.no_gc
cdef class FutureCondition:
    """A ``threading.Condition`` over a C ``RLock``, built in one C call.

    ``acquire``/``release``/``with`` go straight to the lock (threading's
    Condition binds eight attributes per instance for that; a Future builds
    one condition per submit); ``wait``/``notify``/``notify_all``/``wait_for``
    are threading.Condition's own code, which reads ``_waiters`` and the
    lock's ``_release_save``/``_acquire_restore``/``_is_owned`` below."""

    cdef readonly object _lock
    cdef object waiters             # threading's waiter locks; made on the first wait()

    def __cinit__(self):
        self._lock = _RLock()

    @property
    def _waiters(self):
        if self.waiters is None:
            self.waiters = _deque()
        return self.waiters

    def acquire(self, blocking=True, timeout=-1):
        return self._lock.acquire(blocking, timeout)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return _rlock_acquire(self._lock)

    def __exit__(self, *exc_info):
        _rlock_release(self._lock)

    def _release_save(self):
        return self._lock._release_save()

    def _acquire_restore(self, state):
        self._lock._acquire_restore(state)

    def _is_owned(self):
        return self._lock._is_owned()

    wait = threading.Condition.wait
    wait_for = threading.Condition.wait_for
    notify = threading.Condition.notify
    notify_all = threading.Condition.notify_all

    def __repr__(self):
        return f"<FutureCondition({self._lock!r}, {0 if self.waiters is None else len(self.waiters)})>"


cdef inline void lock(FutureCondition cond):
    _rlock_acquire(cond._lock)


cdef inline void unlock(FutureCondition cond):
    _rlock_release(cond._lock)


# Not tracked by the cyclic GC either (see FutureCondition): only the
# scheduler's queue record refers to it, and execute() drops its references
@cython.no_gc
cdef class FutureCall:
    """One ``submit(fn, *args, **kwargs)`` on its way through the scheduler
    (internal: NumaScheduler subclasses it with tallyio.Task).  ``execute()``
    runs on a worker with the GIL: set_running_or_notify_cancel, the call,
    then set_result / set_exception, each as one C sequence under the
    future's condition."""

    cdef object fn
    cdef tuple args
    cdef object kwargs              # dict, or None for no keyword arguments
    cdef readonly object future
    cdef FutureCondition cond       # future._condition
    cdef bint ran
    cdef object cancel_marker, failed

    def execute(self):
        """Run the call (a worker, GIL held) and settle the future."""
        cdef FutureCondition cond = self.cond
        cdef object fut = self.future
        cdef object result = None
        cdef object error = None
        cdef object state
        if self.ran:
            raise RuntimeError(f"{self!r} ran twice")
        self.ran = True
        # set_running_or_notify_cancel
        lock(cond)
        try:
            state = fut._state
            if state is CANCELLED or state == CANCELLED:
                fut._state = CANCELLED_AND_NOTIFIED
                for waiter in list(fut._waiters):
                    waiter.add_cancelled(fut)
                # cancel() notified the condition and ran the callbacks already
                self.fn = self.args = self.kwargs = None
                del fut._done_callbacks[:]
                return self.cancel_marker
            if not (state is PENDING or state == PENDING):
                _LOGGER.critical("Future %s in unexpected state: %s", id(fut), state)
                raise RuntimeError("Future in unexpected state")
            fut._state = RUNNING
        finally:
            unlock(cond)
        try:
            if self.kwargs is None:
                result = self.fn(*self.args)
            else:
                result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            error = exc
        self.fn = self.args = self.kwargs = None
        # set_result / set_exception
        lock(cond)
        try:
            if error is None:
                fut._result = result
            else:
                fut._exception = error
            fut._state = FINISHED
            waiters = fut._waiters
            if waiters:
                if error is None:
                    for waiter in list(waiters):
                        waiter.add_result(fut)
                else:
                    for waiter in list(waiters):
                        waiter.add_exception(fut)
            if cond.waiters:
                cond.notify_all()
        finally:
            unlock(cond)
        callbacks = fut._done_callbacks
        if callbacks:
            for callback in list(callbacks):
                try:
                    callback(fut)
                except Exception:
                    _LOGGER.exception("exception calling callback for %r", fut)
            # add_done_callback on a done future calls at once, never appends:
            # nobody reads the list again, and emptying it breaks a
            # future <-> closure cycle the GC cannot see (the list is untracked)
            del callbacks[:]
        if error is not None:
            error = None        # the frame <-> exception cycle, as ThreadPoolExecutor breaks it
            return self.failed
        return None

    def __repr__(self):
        fn = self.fn
        return f"<submit({getattr(fn, '__qualname__', fn)!r})>"


cdef class FutureSubmitter:
    """``NumaScheduler.submit``: ``submitter(fn, *args, **kwargs)`` queues
    ``fn`` and returns its ``concurrent.futures.Future`` (of ``future_type``,
    a Future subclass whose instances get their fields here instead of
    through ``__init__``: no Python frame)."""

    cdef object call_type           # the FutureCall + Task subclass to create
    cdef object future_type
    cdef object submit_task         # SchedulerCore.submit_task
    cdef object timeout
    cdef object cancel_marker, failed
    cdef object new_object

    def __init__(self, call_type, future_type, submit_task, timeout, cancel_marker, task_result):
        if not issubclass(call_type, FutureCall):
            raise TypeError(f"call_type must subclass FutureCall, got {call_type!r}")
        if not issubclass(future_type, _Future):
            raise TypeError(f"future_type must subclass concurrent.futures.Future, got {future_type!r}")
        self.call_type = call_type
        self.future_type = future_type
        self.submit_task = submit_task
        self.timeout = timeout
        self.cancel_marker = cancel_marker
        self.failed = task_result.FAILED
        self.new_object = object.__new__

    def __call__(self, fn, /, *args, **kwargs):
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {fn!r}")
        cdef FutureCall call = self.call_type()
        # the Python subclass (FutureCall + tallyio.Task) made it GC-tracked:
        # untrack it, as FutureCall's no_gc says (nothing it holds leads back
        # to it); its dealloc's own untrack is then a no-op
        PyObject_GC_UnTrack(<void *>call)
        cdef FutureCondition cond = FutureCondition.__new__(FutureCondition)
        fut = self.new_object(self.future_type)
        fut._condition = cond
        fut._state = PENDING
        fut._result = None
        fut._exception = None
        # the two lists stay out of the cyclic GC too (one tracked object per
        # submit is left: the future).  _waiters only ever holds wait()'s and
        # as_completed()'s waiters, which they remove before returning;
        # _done_callbacks may hold a closure over the future, so execute()
        # (or the cancelling stop) empties it once the callbacks ran: no
        # cycle through either outlives the call
        waiters = []
        callbacks = []
        PyObject_GC_UnTrack(<void *>waiters)
        PyObject_GC_UnTrack(<void *>callbacks)
        fut._waiters = waiters
        fut._done_callbacks = callbacks
        call.fn = fn
        call.args = args
        call.kwargs = kwargs if kwargs else None
        call.future = fut
        call.cond = cond
        call.cancel_marker = self.cancel_marker
        call.failed = self.failed
        self.submit_task(call, True, self.timeout)
        return fut
