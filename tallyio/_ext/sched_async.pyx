"""The awaitable path's hand-off from the scheduler's workers to an asyncio
event loop (tallyio/_ext/README.md, "Awaitable path", has the protocol).

Owns: ``AsyncCall`` (the record a worker runs for ``NumaScheduler.run`` /
``submit_async``: it calls the function, keeps the outcome and pushes itself
into its loop's port; it is also the awaitable ``submit_async`` returns: a
future-like object asyncio's Task, ``gather``, ``wait``, ``wait_for`` and
``TaskGroup`` accept as a future, without an ``asyncio.Future`` per call;
``AsyncRunCall``, ``run()``'s, is a coroutine too), ``AsyncSubmitter`` (the
C ``submit_async``/``run``), ``LoopPort`` (one per (scheduler, event loop): a
lock-free Treiber stack of finished calls, the one wake-up per batch, and
delivery onto the loop's futures) and ``AsyncCounters`` (the scheduler-wide
counters stats() reads).  Touches nothing of the scheduler core: records reach
the workers through ``SchedulerCore.submit_task`` like any Python task, so
this module needs no worker internals.
"""
import asyncio
import os
import weakref

CancelledError = asyncio.CancelledError
InvalidStateError = asyncio.InvalidStateError

from libc.stdint cimport uint64_t, uintptr_t
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from posix.unistd cimport read, write
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_init_u64, tio_atomic_load_u64_relaxed,
                                  tio_atomic_fetch_add_u64_relaxed)

cdef extern from "tio_atomic.h" nogil:
    uint64_t tio_atomic_exchange_u64_acqrel(tio_atomic_u64 *a, uint64_t v)
    bint tio_atomic_cas_u64_release(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired)

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident()

cdef extern from "Python.h":
    void PyErr_SetObject(object tp, object value)
    void PyErr_WriteUnraisable(object obj)
    int PyObject_GC_IsTracked(object obj)
    void PyObject_GC_Track(object obj)
    void PyObject_GC_UnTrack(object obj)


cdef void report_unraisable(BaseException exc, object where) noexcept:
    """Hand an exception nobody can catch to sys.unraisablehook."""
    PyErr_SetObject(type(exc), exc)
    PyErr_WriteUnraisable(where)

#: how a port wakes its loop: ``call_soon_threadsafe`` once per batch, or an
#: eventfd registered with ``loop.add_reader`` written once per batch
WAKE_CALL_SOON = "call_soon"
WAKE_EVENTFD = "eventfd"

cdef enum:
    # AsyncCall.state: set by the worker (GIL held), read by the loop
    CALL_QUEUED = 0
    CALL_DONE = 1          # ran; result or error set
    CALL_CANCELLED = 2     # its awaiter was cancelled before it started: never ran
    CALL_STOPPED = 3       # cancelled by a cancelling stop before it ran: error set

cdef enum:
    # AsyncCall.fstate: the awaitable's side, touched on its loop's thread
    # (the worker reads it, under the GIL, to skip a call cancelled while queued)
    FUT_PENDING = 0
    FUT_CANCELLED = 1
    FUT_FINISHED = 2


cdef class AsyncCounters:
    """Scheduler-wide counters of the awaitable path (atomics: workers and
    every loop thread add to them; stats() reads them relaxed)."""

    cdef tio_atomic_u64 submitted    # accepted by the scheduler
    cdef tio_atomic_u64 delivered    # outcome (result or exception) set on the awaiter's future
    cdef tio_atomic_u64 dropped      # ran, but the awaiter had been cancelled: result dropped
    cdef tio_atomic_u64 cancelled    # awaiter cancelled before the call started: never ran
    cdef tio_atomic_u64 orphaned     # finished after its loop closed: nobody to deliver to
    cdef tio_atomic_u64 wakeups      # loop wake-ups (one per batch of completions)
    cdef tio_atomic_u64 batches      # batches the loops drained

    def __cinit__(self):
        tio_atomic_init_u64(&self.submitted, 0)
        tio_atomic_init_u64(&self.delivered, 0)
        tio_atomic_init_u64(&self.dropped, 0)
        tio_atomic_init_u64(&self.cancelled, 0)
        tio_atomic_init_u64(&self.orphaned, 0)
        tio_atomic_init_u64(&self.wakeups, 0)
        tio_atomic_init_u64(&self.batches, 0)

    def snapshot(self):
        """The counters as a dict (relaxed reads: a snapshot)."""
        return {
            "submitted": tio_atomic_load_u64_relaxed(&self.submitted),
            "delivered": tio_atomic_load_u64_relaxed(&self.delivered),
            "dropped": tio_atomic_load_u64_relaxed(&self.dropped),
            "cancelled": tio_atomic_load_u64_relaxed(&self.cancelled),
            "orphaned": tio_atomic_load_u64_relaxed(&self.orphaned),
            "wakeups": tio_atomic_load_u64_relaxed(&self.wakeups),
            "batches": tio_atomic_load_u64_relaxed(&self.batches),
        }


cdef inline void track(object call) noexcept:
    """Show a call to the cyclic collector again (see LoopPort.submit: it is
    untracked while the scheduler's queue owns it).  GIL held."""
    if not PyObject_GC_IsTracked(call):
        PyObject_GC_Track(call)


cdef inline void count(tio_atomic_u64 *counter, uint64_t n) noexcept nogil:
    # relaxed RMW: statistics, several threads add; they order nothing
    tio_atomic_fetch_add_u64_relaxed(counter, n)


cdef class AsyncCall:
    """One ``run``/``submit_async`` call on its way through the scheduler
    (internal: NumaScheduler subclasses it with tallyio.Task).  A worker
    calls ``execute()``; the outcome travels to the loop through ``port``.

    On the loop's side it is the awaitable itself: a future-like object
    (``asyncio.isfuture`` is true for it) with ``done``/``result``/
    ``exception``/``cancel``/``add_done_callback`` and the rest of the
    methods asyncio's Task, ``gather``, ``wait``, ``wait_for`` and
    ``TaskGroup`` use.  Unlike an ``asyncio.Future``, the port's batch
    delivery runs its done-callbacks at once (already on the loop, in the
    batch's one callback) instead of scheduling one loop callback each."""

    cdef object fn
    cdef tuple args
    cdef object kwargs              # dict, or None for no keyword arguments
    cdef LoopPort port
    cdef object value               # the call's return value
    cdef object error
    cdef int state                  # CALL_*: the worker's side
    cdef bint is_task               # run_task: result None means TaskResult.SUCCESS
    cdef PyObject *next             # the port's stack link (an owned reference while stacked)
    # the awaitable's side (the loop's thread)
    cdef int fstate                 # FUT_*
    cdef object loop
    cdef object cb0, ctx0           # the first done-callback and its context (the common case: one)
    cdef list more_callbacks        # [(callback, context)] after the first
    cdef object cancel_message
    cdef bint yielded               # send() handed itself out once (the coroutine protocol)
    cdef public bint _asyncio_future_blocking

    def execute(self):
        """Run the call on a worker (GIL held) and push the outcome to the
        loop's port.  An awaiter cancelled before this started: the call never
        runs and counts as cancelled."""
        cdef LoopPort port = self.port
        cdef AsyncCounters counters = port.counters
        # a cross-thread read of the awaitable's state, under the GIL: a
        # cancel that lands after this check lets the call run and drops its result
        if self.fstate == FUT_CANCELLED:
            track(self)                       # the queue lets go of it here
            self.state = CALL_CANCELLED
            count(&counters.cancelled, 1)
            self.fn = self.args = self.kwargs = None
            return port.cancel_marker
        try:
            if self.kwargs is None:
                self.value = self.fn(*self.args)
            else:
                self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.error = exc
        self.fn = self.args = self.kwargs = None
        self.state = CALL_DONE
        if self.error is not None:
            port.push(self)
            return port.failed
        if self.is_task:
            outcome = self.value
            if outcome is None:
                self.value = port.success
            port.push(self)
            return outcome if outcome is port.failed else None
        port.push(self)
        return None

    def stop_cancelled(self, error):
        """A cancelling stop took this call out of the queues before it ran:
        its awaiter gets ``error``."""
        self.error = error
        self.state = CALL_STOPPED
        self.fn = self.args = self.kwargs = None
        self.port.push(self)

    # ---- the awaitable (its loop's thread) ------------------------------------

    cdef int settle(self) except -1:
        """The port's drain: the outcome reaches the awaiter; False if it had
        been cancelled meanwhile (the outcome is dropped)."""
        track(self)                           # back with the loop (LoopPort.submit)
        if self.fstate != FUT_PENDING:
            self.value = self.error = None
            return 0
        if self.error is not None and isinstance(self.error, StopIteration):
            # a generator's return would swallow it (PEP 479), as asyncio futures refuse it
            self.error = RuntimeError(f"the call raised {self.error!r}, which an awaitable cannot carry")
        self.fstate = FUT_FINISHED
        self.run_callbacks(False)
        return 1

    cdef void run_callbacks(self, bint schedule):
        """The done-callbacks, in order, each in its context: called now
        (the port's batch, already a loop callback) or scheduled with
        call_soon (cancel(), as asyncio does).  A callback that raises goes
        to the loop's exception handler; the others still run."""
        cdef object cb = self.cb0, ctx = self.ctx0
        cdef list more = self.more_callbacks
        cdef object interrupt = None
        self.cb0 = self.ctx0 = self.more_callbacks = None
        if cb is None:
            return
        loop = self.loop
        if schedule:
            loop.call_soon(cb, self, context=ctx)
            if more is not None:
                for cb, ctx in more:
                    loop.call_soon(cb, self, context=ctx)
            return
        interrupt = self.call_one(cb, ctx, interrupt)
        if more is not None:
            for cb, ctx in more:
                interrupt = self.call_one(cb, ctx, interrupt)
        if interrupt is not None:
            raise interrupt

    cdef object call_one(self, object cb, object ctx, object interrupt):
        try:
            if ctx is None:
                cb(self)
            else:
                ctx.run(cb, self)
        except (SystemExit, KeyboardInterrupt) as exc:
            # finish the batch first: the others' outcomes are not lost
            return interrupt if interrupt is not None else exc
        except BaseException as exc:
            self.loop.call_exception_handler({
                "message": f"Exception in callback {cb!r} of {self!r}", "exception": exc, "future": self})
        return interrupt

    def __await__(self):
        if self.fstate == FUT_PENDING:
            self._asyncio_future_blocking = True
            yield self
        if self.fstate == FUT_PENDING:
            raise RuntimeError("await wasn't used with future")
        return self.result_()

    def __iter__(self):
        return self.__await__()

    cdef object result_(self):
        if self.fstate == FUT_CANCELLED:
            raise self._make_cancelled_error()
        if self.error is not None:
            raise self.error
        return self.value

    def result(self):
        """The call's return value; its exception is raised here
        (``CancelledError`` if cancelled, ``InvalidStateError`` if not done)."""
        if self.fstate == FUT_PENDING:
            raise InvalidStateError("Result is not ready.")
        return self.result_()

    def exception(self):
        """The exception the call raised, or None."""
        if self.fstate == FUT_PENDING:
            raise InvalidStateError("Exception is not set.")
        if self.fstate == FUT_CANCELLED:
            raise self._make_cancelled_error()
        return self.error

    def done(self):
        return self.fstate != FUT_PENDING

    def cancelled(self):
        return self.fstate == FUT_CANCELLED

    def get_loop(self):
        return self.loop

    def cancel(self, msg=None):
        """Cancel the await: True if it was pending.  A worker that has not
        started the call skips it; one that has runs it to the end and the
        result is dropped."""
        if self.fstate != FUT_PENDING:
            return False
        self.fstate = FUT_CANCELLED
        self.cancel_message = msg
        self.run_callbacks(True)
        return True

    def _make_cancelled_error(self):
        if self.cancel_message is None:
            return CancelledError()
        return CancelledError(self.cancel_message)

    def add_done_callback(self, fn, *, context=None):
        """``fn(self)`` once done (scheduled at once if done already)."""
        if self.fstate != FUT_PENDING:
            self.loop.call_soon(fn, self, context=context)
        elif self.cb0 is None:
            self.cb0 = fn
            self.ctx0 = context
        elif self.more_callbacks is None:
            self.more_callbacks = [(fn, context)]
        else:
            self.more_callbacks.append((fn, context))

    def remove_done_callback(self, fn):
        """Remove every registration of ``fn``; how many were removed."""
        cdef int removed = 0
        cdef list kept = []
        if self.cb0 is not None and self.cb0 == fn:
            removed += 1
            self.cb0 = self.ctx0 = None
        elif self.cb0 is not None:
            kept.append((self.cb0, self.ctx0))
            self.cb0 = self.ctx0 = None
        if self.more_callbacks is not None:
            for cb, ctx in self.more_callbacks:
                if cb == fn:
                    removed += 1
                else:
                    kept.append((cb, ctx))
            self.more_callbacks = None
        if kept:
            self.cb0, self.ctx0 = kept[0]
            if len(kept) > 1:
                self.more_callbacks = kept[1:]
        return removed

    def __repr__(self):
        fn = self.fn
        state = ("pending", "cancelled", "finished")[self.fstate]
        return f"<run({getattr(fn, '__qualname__', fn)!r}) {state}>"


cdef class AsyncRunCall(AsyncCall):
    """The ``AsyncCall`` that ``run()`` returns: also a coroutine (send /
    throw / close), so ``gather`` and ``wait_for`` take it as a future (no
    Task per call) while ``TaskGroup.create_task`` / ``asyncio.create_task``
    drive it as a coroutine.  (``submit_async``'s plain ``AsyncCall`` is not
    one: ``asyncio.wait`` refuses coroutines.)"""

    def send(self, value):
        """One step of the call as a coroutine: yields itself (blocking)
        until done, then stops with the result (or raises its exception)."""
        if self.fstate == FUT_PENDING:
            if self.yielded:
                raise RuntimeError("await wasn't used with future")
            self.yielded = True
            self._asyncio_future_blocking = True
            return self
        raise StopIteration(self.result_())

    def throw(self, typ, val=None, tb=None):
        """An exception thrown into the awaiting coroutine (a Task's
        cancellation): a call still pending is cancelled with it."""
        if self.fstate == FUT_PENDING:
            self.cancel()
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        if tb is not None:
            val = val.with_traceback(tb)
        raise val

    def close(self):
        """A coroutine closed before it finished: a pending call is cancelled."""
        if self.fstate == FUT_PENDING:
            self.cancel()


cdef class LoopPort:
    """Where the workers leave finished calls for one event loop.

    Workers push with one CAS onto a Treiber stack; the push that finds the
    stack empty wakes the loop, once, and the loop takes the whole batch with
    one exchange (README: "Awaitable path")."""

    cdef tio_atomic_u64 head        # PyObject* of the last pushed AsyncCall, or 0
    cdef object loop_ref            # weakref to the loop: a port never keeps its loop alive
    cdef readonly str wake_mode
    cdef AsyncCounters counters
    cdef object call_type           # the AsyncCall + Task subclass to create
    cdef object run_type            # the AsyncRunCall + Task subclass (run())
    cdef object submit_task         # SchedulerCore.submit_task
    cdef object submit_timeout
    cdef object cancel_marker, failed, success
    cdef object drain_callback      # self.drain, bound once
    cdef int efd                    # eventfd (WAKE_EVENTFD) or -1
    cdef bint closed                # loop seen closed: later pushes are orphaned at once
    cdef object __weakref__         # the scheduler keeps its ports in a WeakSet

    def __cinit__(self):
        tio_atomic_init_u64(&self.head, 0)
        self.efd = -1

    def __init__(self, loop, AsyncCounters counters, call_type, submit_task, submit_timeout,
                 cancel_marker, task_result, str wake_mode=WAKE_CALL_SOON, run_type=None):
        if not issubclass(call_type, AsyncCall):
            raise TypeError(f"call_type must subclass AsyncCall, got {call_type!r}")
        if run_type is not None and not issubclass(run_type, AsyncRunCall):
            raise TypeError(f"run_type must subclass AsyncRunCall, got {run_type!r}")
        if wake_mode not in (WAKE_CALL_SOON, WAKE_EVENTFD):
            raise ValueError(f"wake_mode must be {WAKE_CALL_SOON!r} or {WAKE_EVENTFD!r}, got {wake_mode!r}")
        self.loop_ref = weakref.ref(loop)
        self.counters = counters
        self.call_type = call_type
        self.run_type = run_type
        self.submit_task = submit_task
        self.submit_timeout = submit_timeout
        self.cancel_marker = cancel_marker
        self.failed = task_result.FAILED
        self.success = task_result.SUCCESS
        self.drain_callback = self.drain
        self.wake_mode = wake_mode
        if wake_mode == WAKE_EVENTFD:
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                loop.add_reader(fd, self.drain_callback)
            except BaseException:
                os.close(fd)
                raise
            self.efd = fd

    def __dealloc__(self):
        # no call can be stacked here: each stacked call holds a reference to us
        if self.efd >= 0:
            os.close(self.efd)
            self.efd = -1

    # ---- the loop thread: submitting ------------------------------------------

    cpdef submit(self, loop, fn, tuple args, kwargs, bint is_task=False, bint coroutine=False):
        """The awaitable (an ``AsyncCall``; an ``AsyncRunCall`` with
        ``coroutine``) on ``loop`` (this port's loop, running in this thread)
        for ``fn(*args, **kwargs)`` run on a worker."""
        cdef AsyncCall call
        if coroutine and self.run_type is not None:
            call = self.run_type()
        else:
            call = self.call_type()
        call.fn = fn
        call.args = args
        call.kwargs = kwargs if kwargs else None
        call.loop = loop
        call.port = self
        call.is_task = is_task
        # A queued call is owned by the scheduler's queue (a reference the
        # collector cannot see, so it is reachable from outside whatever it
        # holds): traversing it in every collection is pure cost, and a burst
        # of 100k gathered calls paid ~40 % of its submit time in full
        # collections over them.  Untracked here, tracked again when it comes
        # back to the loop (settle, take_orphans) or the queue drops it
        # unrun (execute's cancelled path).  An untracked object is never
        # freed early: only a cycle through it waits until it is tracked.
        PyObject_GC_UnTrack(call)
        try:
            self.submit_task(call, True, self.submit_timeout)
        except BaseException:
            track(call)
            raise
        count(&self.counters.submitted, 1)
        return call

    # ---- the workers: pushing -------------------------------------------------

    cdef void push(self, AsyncCall call):
        """Leave a finished call for the loop (GIL held, but lock-free: the
        loop takes batches with an exchange, other workers push with a CAS).
        The push that found the stack empty wakes the loop."""
        cdef uint64_t old = tio_atomic_load_u64_relaxed(&self.head)
        Py_INCREF(call)                       # the stack's reference; drain() takes it
        while True:
            call.next = <PyObject *><uintptr_t>old
            # release: the loop's acquire exchange sees the call's outcome
            if tio_atomic_cas_u64_release(&self.head, &old, <uint64_t><uintptr_t><PyObject *>call):
                break
        if old == 0:
            self.wake()

    cdef void wake(self):
        cdef uint64_t one = 1
        cdef Py_ssize_t _n              # read/write are warn_unused_result; the outcome is not needed
        count(&self.counters.wakeups, 1)
        loop = self.loop_ref()
        if self.closed or loop is None or loop.is_closed():
            self.closed = True
            self.take_orphans()
            return
        if self.efd >= 0:
            # with the GIL held: detach() (loop thread, GIL held) closes the
            # fd, so it cannot close it under this write.  A non-blocking
            # eventfd write fails only when its counter would overflow: the
            # loop is readable already then
            _n = write(self.efd, &one, sizeof(one))
            return
        try:
            loop.call_soon_threadsafe(self.drain_callback)
        except RuntimeError:
            # closed between the check and the call
            self.closed = True
            self.take_orphans()
        except Exception as exc:
            report_unraisable(exc, self.drain_callback)

    # ---- the loop thread: delivering -------------------------------------------

    cdef PyObject *take_all(self):
        """The whole stack, oldest first (each entry an owned reference)."""
        cdef PyObject *node
        cdef PyObject *fifo = NULL
        cdef PyObject *nxt
        # acquire: pairs with the pushers' release CAS
        node = <PyObject *><uintptr_t>tio_atomic_exchange_u64_acqrel(&self.head, 0)
        while node != NULL:                   # reverse: the stack is newest first
            nxt = (<AsyncCall>node).next
            (<AsyncCall>node).next = fifo
            fifo = node
            node = nxt
        return fifo

    def drain(self):
        """Deliver every finished call to its future (the loop's callback:
        one per batch).  Returns how many calls it took."""
        cdef uint64_t buf
        cdef Py_ssize_t _n              # read/write are warn_unused_result; the outcome is not needed
        cdef PyObject *node
        cdef PyObject *nxt
        cdef AsyncCall call
        cdef uint64_t taken = 0, delivered = 0, dropped = 0
        cdef object interrupt = None
        if self.efd >= 0:
            # reset the eventfd before taking the stack: a push after this
            # read writes again, so its wake-up is never lost
            _n = read(self.efd, &buf, sizeof(buf))
        node = self.take_all()
        if node != NULL:
            count(&self.counters.batches, 1)
        while node != NULL:
            call = <AsyncCall>node
            Py_DECREF(call)                   # the stack's reference (call keeps ours)
            nxt = call.next
            call.next = NULL
            node = nxt
            taken += 1
            try:
                if call.settle():
                    delivered += 1
                else:                         # its awaiter was cancelled meanwhile
                    dropped += 1
            except BaseException as exc:
                # a callback's Ctrl+C: the rest of the batch still reaches its awaiters
                if interrupt is None:
                    interrupt = exc
                delivered += 1
        count(&self.counters.delivered, delivered)
        count(&self.counters.dropped, dropped)
        if interrupt is not None:
            raise interrupt
        return taken

    cdef void take_orphans(self):
        """The loop is closed: count whatever is stacked as orphaned."""
        cdef PyObject *node = self.take_all()
        cdef PyObject *nxt
        cdef AsyncCall call
        cdef uint64_t n = 0
        while node != NULL:
            call = <AsyncCall>node
            track(call)
            nxt = call.next
            call.next = NULL
            call.value = call.error = None
            call.cb0 = call.ctx0 = call.more_callbacks = None
            node = nxt
            n += 1
            Py_DECREF(call)
        count(&self.counters.orphaned, n)

    def collect_if_closed(self):
        """If the loop is closed, count what is stacked as orphaned (stats()
        and stop() call it: a loop closed after its last wake-up was sent
        never drains).  Returns True if the loop is closed."""
        loop = self.loop_ref()
        if self.closed or loop is None or loop.is_closed():
            self.closed = True
            self.take_orphans()
            return True
        return False

    def detach(self):
        """Stop listening on the loop (its thread, or a closed loop): remove
        the eventfd reader.  Calls finishing later still wake it, through
        call_soon_threadsafe."""
        loop = self.loop_ref()
        if self.efd >= 0:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self.efd)
            os.close(self.efd)
            self.efd = -1
        self.wake_mode = WAKE_CALL_SOON

    @property
    def pending(self):
        """True while finished calls wait in the stack."""
        return tio_atomic_load_u64_relaxed(&self.head) != 0

    def __repr__(self):
        return f"<LoopPort {self.wake_mode} for {self.loop_ref()!r}>"


_get_running_loop = asyncio.get_running_loop


cdef class AsyncSubmitter:
    """``NumaScheduler.submit_async`` (and ``run``) in C: the running loop's
    port (from a one-entry cache, else ``port_for(loop)``), then
    ``LoopPort.submit``; no Python frame per call.  Outside a running loop it
    raises ``RuntimeError``, or, given ``outside``, returns
    ``outside(fn, args, kwargs)`` (``run`` returns a coroutine that submits
    when it is awaited)."""

    cdef object port_for
    cdef object outside
    cdef str name
    cdef bint coroutine             # hand out AsyncRunCall (run())
    cdef tuple cache                # (loop, port, thread id): one read, never torn

    def __init__(self, port_for, outside, str name, bint coroutine=False):
        self.port_for = port_for
        self.outside = outside
        self.name = name
        self.coroutine = coroutine
        self.cache = (None, None, 0)

    def __call__(self, fn, /, *args, **kwargs):
        cdef LoopPort port
        cdef tuple cache
        if not callable(fn):
            raise TypeError(f"{self.name}() needs a callable, got {fn!r}")
        cache = self.cache
        loop = cache[0]
        # asyncio's get_running_loop costs a getpid() syscall on Python 3.11
        # (~5 % of a gathered burst): an asyncio loop whose _thread_id is this
        # thread is running here, so it is the running loop (one per thread)
        if loop is not None and cache[2] == PyThread_get_thread_ident() and \
                getattr(loop, "_thread_id", None) == cache[2]:
            return (<LoopPort>cache[1]).submit(loop, fn, args, kwargs, False, self.coroutine)
        try:
            loop = _get_running_loop()
        except RuntimeError:
            if self.outside is None:
                raise
            return self.outside(fn, args, kwargs)
        cache = self.cache
        if cache[0] is loop:
            port = cache[1]
        else:
            port = self.port_for(loop)
            self.cache = (loop, port, PyThread_get_thread_ident())
        return port.submit(loop, fn, args, kwargs, False, self.coroutine)

    def __repr__(self):
        return f"<{self.name} of the awaitable path>"
