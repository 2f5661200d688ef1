"""NumaScheduler: NUMA-aware, CPU-pinned workers with work stealing, a load
balancer and priorities, running Python ``Task`` subclasses (with the GIL,
in batches) and native nogil C functions; also a ``concurrent.futures.Executor``.

    >>> from tallyio import NumaScheduler, SchedulerConfig, Task
    >>> class Square(Task):
    ...     def __init__(self, x, out): self.x, self.out = x, out
    ...     def execute(self): self.out.append(self.x * self.x)
    >>> out = []
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
    ...     for x in range(5):
    ...         scheduler.submit_task(Square(x, out))
    ...     print(scheduler.submit(pow, 2, 10).result())
    1024
    >>> sorted(out)
    [0, 1, 4, 9, 16]

The machinery (records, queues, the worker loop, the sleep protocol) lives in
tallyio/_ext/scheduler.pyx; tallyio/_ext/README.md ("Scheduler") documents it.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import numbers
import operator
import os
import sys
import threading
import time
import warnings
import weakref
from typing import Any, Awaitable, Callable, TypeVar

from tallyio._ext.sched_async import (WAKE_CALL_SOON, WAKE_EVENTFD, AsyncCall, AsyncCounters, AsyncRunCall,
                                      AsyncSubmitter, LoopPort)
from tallyio._ext.sched_future import FutureCall, FutureCondition, FutureSubmitter
from tallyio._ext.scheduler import SchedulerCore
from tallyio.balancer import LoadBalancer
from tallyio.config import SchedulerConfig
from tallyio.errors import SchedulerNotRunningError, SchedulerTimeoutError
from tallyio.stats import Percentiles, SchedulerMetrics, SchedulerStats, TaskError, WorkerStats
from tallyio.task import Task, TaskResult
from tallyio.topology import NumaNode, NumaTopology, format_range_list

__all__ = ["NumaScheduler"]

T = TypeVar("T")
log = logging.getLogger("tallyio")

#: how many failed tasks stats().recent_errors keeps
RECENT_ERRORS = 32

_CANCELLED = object()     # _CallTask.execute() returns it for a future cancelled while queued


class Future(concurrent.futures.Future):
    """The ``concurrent.futures.Future`` that ``NumaScheduler.submit`` returns:
    the standard class and behaviour; its condition is a ``FutureCondition``
    (tallyio/_ext/sched_future.pyx: a C RLock, no Python frame to take it),
    and ``submit`` fills its fields from a template instead of calling this."""

    def __init__(self) -> None:   # noqa: D107 -- the base's fields, set directly
        self._condition = FutureCondition()
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []


_PENDING = concurrent.futures._base.PENDING


class _CallTask(FutureCall, Task):
    """submit(fn, *args, **kwargs) as a Task: FutureCall (tallyio/_ext/sched_future.pyx)
    runs the call and settles its Future with no Python frame."""

    __slots__ = ()


class _AsyncCall(AsyncCall, Task):
    """submit_async() as a Task: AsyncCall (tallyio/_ext/sched_async.pyx)
    runs the call and hands the outcome to its event loop's port."""

    __slots__ = ()


class _AsyncRun(AsyncRunCall, Task):
    """run() as a Task: the same, and a coroutine too (AsyncRunCall)."""

    __slots__ = ()


#: how a LoopPort wakes its loop once per batch (see docs/asyncio.md, "Wake-ups")
ASYNC_WAKE_MODES = (WAKE_CALL_SOON, WAKE_EVENTFD)


# every scheduler still alive, for fork and interpreter exit
_live: weakref.WeakSet[NumaScheduler] = weakref.WeakSet()


def _map_chunk(fn: Callable[..., T], *columns: list) -> list[T]:
    """One chunk of ``map_async``, run on a worker (``map`` loops in C)."""
    return list(map(fn, *columns))


def _after_fork_in_child() -> None:
    for scheduler in list(_live):
        scheduler._forked = True
        scheduler._core.mark_forked()


def _say(line: str) -> None:
    """One line on stderr, for a person watching the program end."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):   # no stderr, or a closed one: nobody to tell
        pass


def _stop_all_at_exit() -> None:
    """Interpreter exit: drain every live scheduler (the accepted work runs),
    saying so in one line when tasks are left; the first Ctrl+C cancels the
    queued tasks and leaves the running ones behind (README: "Stopping")."""
    for scheduler in list(_live):
        try:
            scheduler._stop_at_exit()
        except BaseException:       # noqa: BLE001 -- exit must go on; report and continue
            try:
                log.exception("tallyio: stopping %r at interpreter exit failed", scheduler)
            except BaseException:   # noqa: BLE001
                pass


os.register_at_fork(after_in_child=_after_fork_in_child)
# threading._register_atexit runs before the interpreter joins threads (the hook
# concurrent.futures uses); atexit.register would run too late to stop workers
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_stop_all_at_exit)
else:  # pragma: no cover - other interpreters
    import atexit
    atexit.register(_stop_all_at_exit)


def _check_timeout(name: str, timeout: Any) -> float | None:
    """None, or a finite number of seconds >= 0 (numpy numbers too)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{name} must be None or a number of seconds >= 0, got {timeout!r}")
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be None or a number of seconds >= 0, got {timeout!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be None or a finite number of seconds >= 0, got {timeout!r}")
    return value


def _node_index_in(node_ids: list[int], node_id: Any) -> int:
    """Index of NUMA node id ``node_id`` (an int, numpy integers too) in ``node_ids``."""
    if not isinstance(node_id, bool):
        try:
            index = operator.index(node_id)
        except TypeError:
            pass
        else:
            if index in node_ids:
                return node_ids.index(index)
    raise ValueError(f"node {node_id!r} is not one of this scheduler's nodes {node_ids}")


def _run_worker(core: SchedulerCore, worker_cpus: list[int], index: int,
                report: Callable[[BaseException | None], None], owner: NumaScheduler) -> None:
    """Body of worker thread ``index``: pin, then run the core's worker loop."""
    del owner                 # held by the Thread while it runs (see start())
    cpu = worker_cpus[index]
    if cpu >= 0:
        try:
            os.sched_setaffinity(0, {cpu})       # this thread only (Linux: pid 0 = caller)
        except (OSError, ValueError, OverflowError):   # a CPU id this kernel rejects
            worker_cpus[index] = -1
    core.worker_main(index, report)


def _weakly(scheduler: NumaScheduler, method: str) -> Callable[..., Any]:
    """``scheduler.method`` through a weak reference (AsyncSubmitter calls it
    once per new loop; a bound method would make a cycle)."""
    ref = weakref.ref(scheduler)

    def call(*args: Any) -> Any:
        target = ref()
        if target is None:
            raise SchedulerNotRunningError("the NumaScheduler behind this call was dropped")
        return getattr(target, method)(*args)
    return call


class _FailureReporter:
    """The core's on_failure: reaches the scheduler through a weak reference,
    so the core does not keep its scheduler alive (a cycle only the cyclic GC
    frees).  Its repr names the user's on_error, which unraisable reports show."""

    __slots__ = ("scheduler_ref",)

    def __init__(self, scheduler: NumaScheduler) -> None:
        self.scheduler_ref = weakref.ref(scheduler)

    def __call__(self, task: Task, exc: BaseException) -> None:
        scheduler = self.scheduler_ref()
        if scheduler is None:      # a task finishing after its scheduler was dropped
            log.error("tallyio: task %r failed", task, exc_info=exc)
            return
        scheduler._record_failure(task, exc)

    def __repr__(self) -> str:
        scheduler = self.scheduler_ref()
        handler = None if scheduler is None else scheduler._on_error
        return f"<on_error handler {handler!r} of {scheduler!r}>"


class NumaScheduler(concurrent.futures.Executor):
    """Runs tasks on NUMA-aware, CPU-pinned worker threads.

    ``config`` (default ``SchedulerConfig()``) sets workers per node, queue
    capacity, stealing, affinity and the rest.  ``topology`` (default
    ``NumaTopology.detect()``) may be injected, e.g. ``NumaTopology.uniform(4, 2)``
    to lay workers out as on a four-node machine; CPUs the process may not use
    leave their workers unpinned (with one warning at ``start()``).
    ``on_error(task, exception)`` is called on the worker thread, with the GIL,
    for every task whose ``execute()`` raised.

    Call ``start()`` (or use ``with``) before submitting.  ``submit_task`` is
    the fast path (no Future); ``submit``/``map``/``shutdown`` are the
    ``concurrent.futures.Executor`` interface, so ``asyncio``'s
    ``loop.run_in_executor(scheduler, fn)`` works too.  ``submit()`` waits
    for room when the queues are full, at most ``submit_timeout`` seconds
    (None, the default: no limit), then raises ``QueueFullError``.

    From a coroutine, ``await scheduler.run(fn, *args)`` (or
    ``run_task(task)``) runs on the workers and delivers results to the
    event loop in batches, one loop wake-up per batch; ``submit_async`` is
    the same returning the loop's ``asyncio.Future`` (docs/asyncio.md).
    ``async_wake`` picks how a batch wakes its loop: ``"call_soon"`` (one
    ``call_soon_threadsafe``) or ``"eventfd"`` (an eventfd registered with
    ``loop.add_reader``, Linux).
    """

    def __init__(self, config: SchedulerConfig | None = None, *,
                 topology: NumaTopology | None = None,
                 on_error: Callable[[Task, BaseException], Any] | None = None,
                 submit_timeout: float | None = None, async_wake: str = WAKE_CALL_SOON) -> None:
        if async_wake not in ASYNC_WAKE_MODES:
            raise ValueError(f"async_wake must be one of {ASYNC_WAKE_MODES}, got {async_wake!r}")
        if config is None:
            config = SchedulerConfig()
        if not isinstance(config, SchedulerConfig):
            raise TypeError(f"config must be a SchedulerConfig, got {type(config).__name__}")
        if topology is None:
            topology = NumaTopology.detect()
        if not isinstance(topology, NumaTopology):
            raise TypeError(f"topology must be a NumaTopology, got {type(topology).__name__}")
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable, got {on_error!r}")
        self._submit_timeout = _check_timeout("submit_timeout", submit_timeout)
        if not config.numa_enabled:
            cpus = topology.all_cpus()
            topology = NumaTopology([NumaNode(0, cpus, None, {0: 10})])
        self.config = config
        self.topology = topology
        self._on_error = on_error
        self._nodes = topology.cpu_nodes()
        self._node_ids = [node.id for node in self._nodes]
        self.config = config = config.for_nodes(self._nodes)   # auto workers; memory/thread check before allocating
        self._layout = self._plan_workers()
        self._core = SchedulerCore(
            [(node_index, cpu, groups) for node_index, cpu, groups in self._layout],
            self._node_ids, config.queue_capacity,
            stealing=config.enable_work_stealing, steal_batch=config.steal_batch,
            max_retries=config.max_retries, gil_batch=config.gil_batch,
            gil_batch_us=config.gil_batch_us, spin_us=config.spin_us,
            aging_us=config.aging_us, threshold=config.load_balance_threshold,
            task_type=Task, task_result=TaskResult)
        self._core.on_failure = _FailureReporter(self)
        self._core.cancel_marker = _CANCELLED
        # the fast path: submit_task is the C method itself, not a Python wrapper
        # around it (saves a Python call, ~60 ns, per task)
        self.submit_task = self._core.submit_task
        # and submit() is FutureSubmitter (tallyio/_ext/sched_future.pyx): no
        # Python frame between the caller and the queue
        self._submitter = FutureSubmitter(_CallTask, Future, self._core.submit_task, self._submit_timeout,
                                          _CANCELLED, TaskResult)
        if type(self).submit is NumaScheduler.submit:     # a subclass's own submit() stays in charge
            self.submit = self._submitter
        # the awaitable path's entry points in C too (AsyncSubmitter)
        # (through a weak reference: the scheduler stays free of reference cycles)
        port_for, run_when_awaited = _weakly(self, "_port_for"), _weakly(self, "_run_when_awaited")
        self._submit_async = AsyncSubmitter(port_for, None, "submit_async")
        self._run = AsyncSubmitter(port_for, run_when_awaited, "run", True)
        if type(self).submit_async is NumaScheduler.submit_async:
            self.submit_async = self._submit_async
        if type(self).run is NumaScheduler.run:
            self.run = self._run
        self._recent_errors: collections.deque[TaskError] = collections.deque(maxlen=RECENT_ERRORS)
        self._threads: list[threading.Thread] = []
        self._worker_cpus: list[int] = [cpu for _, cpu, _ in self._layout]
        # re-entrant: a task run by _finish's sweep may itself call stop()
        self._lock = threading.RLock()
        self._state = "new"            # new -> running -> stopping -> stopped
        self._forked = False           # set in a forked child: its workers do not exist
        self._abandoned = False        # the user gave up waiting for running tasks: exit does not wait
        self._started_at = self._stopped_at = 0.0
        self._balancer = LoadBalancer(self)
        # the awaitable path: one LoopPort per event loop (tallyio/_ext/README.md, "Awaitable path")
        self._async_counters = AsyncCounters()
        self._ports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPort] = weakref.WeakKeyDictionary()
        self._all_ports: weakref.WeakSet[LoopPort] = weakref.WeakSet()   # with calls stranded in them too
        self._port_cache: tuple[Any, Any] = (None, None)     # (loop, port): one read, never torn
        self._ports_lock = threading.Lock()
        self._async_wake = async_wake

    # ---- layout -------------------------------------------------------------------

    def _plan_workers(self) -> list[tuple[int, int, list[list[int]]]]:
        """(node index, cpu or -1, victim groups) per worker, ordered by node.
        Victims: the other workers of the same node first, then the workers of
        the other nodes grouped by distance (nearest first)."""
        per_node = self.config.workers_per_numa_node
        affinity = self.config.enable_cpu_affinity
        workers: list[tuple[int, int]] = []
        for node_index, node in enumerate(self._nodes):
            for k in range(per_node):
                workers.append((node_index, node.cpus[k % len(node.cpus)] if affinity else -1))
        of_node: dict[int, list[int]] = collections.defaultdict(list)
        for i, (node_index, _) in enumerate(workers):
            of_node[node_index].append(i)
        layout = []
        for i, (node_index, cpu) in enumerate(workers):
            groups = [[j for j in of_node[node_index] if j != i]]
            here = self._nodes[node_index].id
            by_distance: dict[int, list[int]] = collections.defaultdict(list)
            for other_index, other in enumerate(self._nodes):
                if other_index != node_index:
                    by_distance[self.topology.distance(here, other.id)].extend(of_node[other_index])
            groups.extend(by_distance[d] for d in sorted(by_distance))
            layout.append((node_index, cpu, [g for g in groups if g]))
        return layout

    def _workers_of_node(self, node_id: int) -> list[int]:
        node_index = self._node_index(node_id)
        return [i for i, (n, _, _) in enumerate(self._layout) if n == node_index]

    def _node_index(self, node_id: int) -> int:
        return _node_index_in(self._node_ids, node_id)

    # ---- life cycle -----------------------------------------------------------------

    def start(self) -> NumaScheduler:
        """Start the workers; returns self.  Each worker pins itself to its CPU
        (when affinity is on) before it allocates its queues.  Starting a
        running scheduler does nothing; a stopped one cannot be restarted."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise SchedulerNotRunningError("a stopped NumaScheduler cannot be restarted; create a new one")
            self._warn_unusable_cpus()
            n = len(self._layout)
            ready = threading.Semaphore(0)
            errors: list[BaseException] = []

            def report(error: BaseException | None) -> None:
                if error is not None:
                    errors.append(error)
                ready.release()

            for i in range(n):
                # the running thread keeps the scheduler alive through its
                # kwargs (dropped when it ends), never through a frame: a
                # failed task's traceback reaches the worker's frames through
                # f_back and is kept in recent_errors (a cycle otherwise)
                thread = threading.Thread(target=_run_worker, args=(self._core, self._worker_cpus, i, report),
                                          kwargs={"owner": self}, name=f"tallyio-worker-{i}", daemon=True)
                self._threads.append(thread)
                thread.start()
            for _ in range(n):
                ready.acquire()
            if errors:
                # close before letting the workers in: they leave at once and
                # never look at the queues the failed worker could not allocate
                self._core.close(True)
            self._core.mark_started()
            self._started_at = time.perf_counter()
            self._state = "running" if not errors else "stopping"
            _live.add(self)
        if errors:
            self._finish()
            raise errors[0]
        return self

    def _warn_unusable_cpus(self) -> None:
        if not self.config.enable_cpu_affinity:
            return
        allowed = os.sched_getaffinity(0)
        unusable = sorted({cpu for cpu in self._worker_cpus if cpu not in allowed})
        if unusable:
            warnings.warn(f"tallyio: CPUs {format_range_list(unusable)} of the topology are not available "
                          f"to this process (allowed: {format_range_list(allowed)}); "
                          "their workers run unpinned", RuntimeWarning, stacklevel=3)
            self._worker_cpus = [cpu if cpu in allowed else -1 for cpu in self._worker_cpus]

    def stop(self, wait: bool = True, *, cancel_pending: bool = False,
             timeout: float | None = None) -> None:
        """Stop accepting work, then finish.

        ``wait=True`` returns once the workers have ended: with
        ``cancel_pending=False`` every accepted task has run (tasks running
        during the drain may still submit: that work is part of it); with
        ``cancel_pending=True`` the tasks still queued are cancelled (counted
        in ``tasks_cancelled``, their futures cancelled).  ``timeout``
        (seconds): raise ``SchedulerTimeoutError`` naming the tasks still
        running if the workers have not ended by then; the scheduler goes on
        stopping, and ``stop()`` may be called again.  Stopping twice is
        harmless.  Called from inside a task (or a future's callback) it does
        not wait for its own worker: the remaining tasks finish after the
        current one returns.

        Ctrl+C while waiting cancels the queued tasks and waits for the
        running ones to return; a second Ctrl+C stops waiting for them (they
        are left behind, and interpreter exit does not wait for them either).
        Then KeyboardInterrupt is re-raised."""
        limit = _check_timeout("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit
        with self._lock:
            state = self._state
            if state == "new":
                self._state = "stopped"
                self._core.close(cancel_pending)
                return
            if state == "running":
                self._state = "stopping"
        if state == "running" or cancel_pending:
            self._core.close(cancel_pending)
        # from inside a task our own worker cannot be joined from itself
        waits = wait and threading.current_thread() not in self._threads
        if not waits and state == "running":
            # a helper thread finishes the stop once the workers have left
            threading.Thread(target=self._finish, name="tallyio-stop", daemon=True).start()
        try:
            if cancel_pending:
                # cancel what waits in the queues now, as ThreadPoolExecutor's
                # shutdown(cancel_futures=True) does: a running task that never
                # returns must not keep queued futures pending
                self._core.cancel_queued(self._cancel_task)
            if not waits:
                return
            if not self._finish(deadline):
                # the user has seen what hangs: interpreter exit will not wait for it again
                self._abandoned = True
                raise SchedulerTimeoutError(self._still_running(f"stop() gave up after {limit:g} s"))
        except KeyboardInterrupt:
            if not waits:
                raise
            # Ctrl+C can land in any call of the wait, not only inside join():
            # cancel what is queued, wait for the running tasks (a second
            # Ctrl+C stops that wait), then re-raise the first
            try:
                self._core.close(True)
                cancelled = self._core.cancel_queued(self._cancel_task)
                soon = time.monotonic() + 0.5
                if not self._finish(soon if deadline is None else min(soon, deadline)):
                    running = self.worker_count - self._core.workers_exited()
                    if running > 0 and (deadline is None or time.monotonic() < deadline):
                        _say(f"tallyio: Ctrl+C: cancelled {cancelled} queued task(s); waiting for "
                             f"{running} running task(s) of {self!r}; press Ctrl+C again to leave them behind")
                    self._finish(deadline)
            except KeyboardInterrupt:
                self._abandon("Ctrl+C")
            raise

    def _abandon(self, why: str) -> None:
        """The user stopped waiting for the running tasks: cancel what is
        still queued (safe while workers run) and leave the rest behind."""
        self._abandoned = True
        self._core.close(True)
        try:
            cancelled = self._core.cancel_queued(self._cancel_task)
        except KeyboardInterrupt:      # yet another Ctrl+C: the queues are empty by now
            cancelled = 0
        running = self.worker_count - self._core.workers_exited()
        if running > 0:
            _say(f"tallyio: {why}: cancelled {cancelled} queued task(s); leaving {running} running "
                 f"task(s) of {self!r} behind")

    def _finish(self, deadline: float | None = None) -> bool:
        """Wait until every worker has left its loop, then settle anything
        left in the queues.  False if ``deadline`` (time.monotonic()) passed first."""
        if not self._wait_workers_exited(deadline):
            return False
        with self._lock:
            if self._state == "stopped":
                return True
            try:
                self._core.sweep(self._core.cancelling, self._cancel_task)
                self._collect_orphans()
                self._port_cache = (None, None)
            finally:
                # a Ctrl+C from a cancel callback is re-raised only after the
                # sweep settled every record: the stop is complete either way
                self._stopped_at = time.perf_counter()
                self._state = "stopped"
                _live.discard(self)
        return True

    def _wait_workers_exited(self, deadline: float | None = None) -> bool:
        # The core's count of exited workers decides, not Thread.is_alive(): on
        # CPython < 3.13 a join() interrupted by Ctrl+C releases the tstate lock
        # of a thread that still runs and marks it stopped (threading's
        # bpo-45274 branch), and sweeping the queues under a live worker races
        # with it.  In a forked child the workers do not exist.
        if self._forked:
            return True
        while self._core.workers_exited() < len(self._threads):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            alive = [thread for thread in self._threads if thread.is_alive()]
            if alive:
                alive[0].join(0.05)
            else:
                time.sleep(0.001)     # marked stopped too early (see above): poll the count
        for thread in self._threads:
            thread.join()             # each has left its loop: only returning is left
        return True

    def _still_running(self, what: str) -> str:
        """``what``, then which tasks are still running and how many are queued."""
        running = self._core.running_tasks()
        busy = self.worker_count - self._core.workers_exited()
        named = ", ".join(f"worker {i}: {task!r}" for i, task in running[:5])
        if len(running) > 5:
            named += f", and {len(running) - 5} more"
        others = busy - len(running)
        if others > 0:
            named += (", " if named else "") + f"{others} worker(s) in a native task or between tasks"
        queued = max(0, self._core.outstanding() - busy)
        return f"{what}: {busy} of {self.worker_count} worker(s) still running ({named}); about {queued} task(s) queued"

    def _stop_at_exit(self) -> None:
        """Interpreter exit (see _stop_all_at_exit)."""
        if self._forked or self._state == "new":
            self.stop(wait=True)
            return
        if self._abandoned:     # a stop() timed out or was interrupted twice
            self._abandon("interpreter exit")
            return
        with self._lock:
            state = self._state
            if state == "running":
                self._state = "stopping"
        try:
            pending = self._core.outstanding() if state in ("running", "stopping") else 0
            if pending and self._core.cancelling:
                _say(f"tallyio: waiting for {pending} running task(s) of {self!r} before exit; "
                     "press Ctrl+C to leave them behind")
            elif pending:
                _say(f"tallyio: draining {pending} unfinished task(s) of {self!r} before exit; "
                     "press Ctrl+C to cancel the queued ones")
            self._core.close(self._core.cancelling)
            self._finish()
        except KeyboardInterrupt:
            # the first Ctrl+C here: nothing queued runs any more; tasks in
            # hand get a moment to return, then are left behind (daemon threads)
            try:
                self._core.close(True)
                cancelled = self._core.cancel_queued(self._cancel_task)
                if self._finish(time.monotonic() + 0.25):
                    _say(f"tallyio: Ctrl+C: cancelled {cancelled} queued task(s) of {self!r}")
                    return
            except KeyboardInterrupt:
                pass
            self._abandon("Ctrl+C at exit")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False,
                 timeout: float | None = None) -> None:
        """``concurrent.futures.Executor.shutdown``: ``stop(wait, cancel_pending=cancel_futures, timeout=timeout)``."""
        self.stop(wait, cancel_pending=cancel_futures, timeout=timeout)

    def __enter__(self) -> NumaScheduler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop(wait=True)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._state == "running"

    # ---- submitting ------------------------------------------------------------------

    def submit_task(self, task: Task, block: bool = False,
                    timeout: float | None = None) -> None:  # replaced per instance by the C method
        """Queue ``task`` on a worker chosen by the load balancer: the fast path, no Future.

        Raises ``TypeError`` for anything that is not a Task (or a Task that does
        not override execute()), ``ValueError``/``TypeError`` for a bad
        ``priority()`` (0..255) and ``SchedulerNotRunningError`` before start()
        and after stop().  When the chosen inbox and its overflow (the other
        workers' inboxes) are full: ``block=False`` (the default) raises
        ``QueueFullError`` at once; ``block=True`` waits, without holding the
        GIL or spinning, until a slot frees or ``timeout`` seconds passed
        (``QueueFullError`` then), as ``queue.Queue.put`` does.  A task that
        raised was not accepted.  Called from inside a task it queues on the
        same worker and never blocks (the worker would wait for itself)."""
        self._core.submit_task(task, block, timeout)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; returns a concurrent.futures.Future.
        On full queues it waits for room (``submit_timeout``, then
        ``QueueFullError``); from inside a task it never waits.  (Replaced per
        instance by the C ``FutureSubmitter``, which does exactly this.)"""
        return self._submitter(fn, *args, **kwargs)

    # ---- the awaitable path (docs/asyncio.md; tallyio/_ext/README.md, "Awaitable path") ----

    def submit_async(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; returns a future of the
        running event loop (call it from a coroutine or a loop callback).

        The future is a light future-like object (``asyncio.isfuture`` is
        true: ``await``, ``gather``, ``wait``, ``wait_for``, ``as_completed``,
        ``cancel``, ``add_done_callback``, ``result`` work as on an
        ``asyncio.Future``), not an ``asyncio.Future``: the result (or the
        exception ``fn`` raised) reaches it on the loop, in a batch with the
        other calls that finished meanwhile, and its done-callbacks run in
        that batch's one loop callback instead of being scheduled one by one.
        Cancelling the future before a worker starts the call means it never
        runs (counted in ``stats().metrics.async_cancelled``); once started it
        runs to the end and its result is dropped (``async_dropped``).  Raises
        ``RuntimeError`` outside a running loop, ``SchedulerNotRunningError``
        when the scheduler does not accept work; on full queues it waits for
        room as ``submit()`` does (``submit_timeout``).

        >>> import asyncio
        >>> from tallyio import NumaScheduler, SchedulerConfig
        >>> async def main(scheduler):
        ...     return await asyncio.gather(*(scheduler.submit_async(pow, 2, k) for k in range(4)))
        >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
        ...     asyncio.run(main(scheduler))
        [1, 2, 4, 8]
        """
        return self._submit_async(fn, *args, **kwargs)    # AsyncSubmitter (sched_async.pyx)

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]:
        """``await scheduler.run(fn, *args, **kwargs)``: ``fn``'s return value,
        computed on a worker; an exception inside is raised here.

        Inside a running loop it queues the call at once and returns the same
        light future as ``submit_async``, which is also a coroutine: ``gather``
        and ``wait_for`` take it as a future (no Task per call), and
        ``TaskGroup.create_task`` / ``asyncio.create_task`` drive it as a
        coroutine.  Called outside a running loop (``asyncio.run(scheduler.run(fn))``)
        it returns a coroutine that submits when it first runs.

        >>> import asyncio
        >>> from tallyio import NumaScheduler, SchedulerConfig
        >>> async def main(scheduler):
        ...     async with asyncio.TaskGroup() as group:
        ...         first = group.create_task(scheduler.run(sum, [1, 2, 3]))
        ...         second = group.create_task(scheduler.run(max, 4, 9))
        ...     return first.result(), second.result(), await asyncio.gather(scheduler.run(abs, -5))
        >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
        ...     asyncio.run(main(scheduler))
        ...     asyncio.run(scheduler.run(pow, 2, 5))
        (6, 9, [5])
        32
        """
        return self._run(fn, *args, **kwargs)              # AsyncSubmitter (sched_async.pyx)

    async def _run_when_awaited(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        """run() called outside a running loop: submit once the coroutine runs on one."""
        return await self._submit_async(fn, *args, **kwargs)

    async def map_async(self, fn: Callable[..., T], /, *iterables: Any, chunksize: int | None = None) -> list[T]:
        """``await scheduler.map_async(fn, xs, ...)``: ``[fn(x, ...) for x, ... in
        zip(xs, ...)]`` computed on the workers, in order.  The bulk form of
        ``run``: the calls go in chunks of ``chunksize`` (default: enough for
        about four chunks per worker), one asyncio future per chunk, so
        asyncio's per-await bookkeeping is paid per chunk, not per call.

        The first exception a call raises is raised here (the other chunks
        still run; their results are dropped).  Cancelling the await cancels
        the chunks no worker has started: those never run.  The iterables are
        read whole on the loop's thread first (like ``Executor.map``), and
        the shortest one ends the map.

        >>> import asyncio
        >>> from tallyio import NumaScheduler, SchedulerConfig
        >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
        ...     asyncio.run(scheduler.map_async(pow, [2, 3, 4], [5, 2, 1]))
        [32, 9, 4]
        """
        if not callable(fn):
            raise TypeError(f"map_async() needs a callable, got {fn!r}")
        if not iterables:
            raise TypeError("map_async() needs at least one iterable")
        if chunksize is not None and (type(chunksize) is not int or chunksize < 1):
            raise ValueError(f"chunksize must be a positive int or None, got {chunksize!r}")
        columns = [list(iterable) for iterable in iterables]
        n = min(len(column) for column in columns)
        if n == 0:
            return []
        size = chunksize or -(-n // (4 * max(1, self.worker_count)))
        submit = self.submit_async
        chunks = [submit(_map_chunk, fn, *[column[i:i + size] for column in columns]) for i in range(0, n, size)]
        results: list[T] = []
        for part in await asyncio.gather(*chunks):
            results.extend(part)
        return results

    def submit_task_async(self, task: Task) -> asyncio.Future[TaskResult]:
        """Run ``task.execute()`` once on a worker; returns a future (as
        ``submit_async`` does) of its ``TaskResult`` (None counts as ``SUCCESS``; ``RETRY`` is handed
        to the awaiter, not re-queued).  The call runs at the default priority."""
        if not isinstance(task, Task):
            raise TypeError(f"submit_task_async() needs a tallyio.Task, got {type(task).__name__}")
        if type(task).execute is Task.execute:
            raise TypeError(f"{type(task).__name__} does not override Task.execute()")
        loop = asyncio.get_running_loop()
        cached = self._port_cache
        port = cached[1] if cached[0] is loop else self._port_for(loop)
        return port.submit(loop, task.execute, (), None, True)

    async def run_task(self, task: Task) -> TaskResult:
        """``await scheduler.run_task(task)``: ``task.execute()`` on a worker;
        its ``TaskResult`` (see ``submit_task_async``), or the exception it raised.

        >>> import asyncio
        >>> from tallyio import NumaScheduler, SchedulerConfig, Task
        >>> class Hello(Task):
        ...     def execute(self): print("hello from a worker")
        >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
        ...     asyncio.run(scheduler.run_task(Hello()))
        hello from a worker
        <TaskResult.SUCCESS: 0>
        """
        return await self.submit_task_async(task)

    def _port_for(self, loop: asyncio.AbstractEventLoop) -> LoopPort:
        """This loop's port (made on first use, on the loop's thread)."""
        with self._ports_lock:
            port = self._ports.get(loop)
            if port is None:
                mode = self._async_wake
                if mode == WAKE_EVENTFD and not hasattr(os, "eventfd"):
                    mode = WAKE_CALL_SOON
                try:
                    port = LoopPort(loop, self._async_counters, _AsyncCall, self._core.submit_task,
                                    self._submit_timeout, _CANCELLED, TaskResult, mode, _AsyncRun)
                except NotImplementedError:      # a loop without add_reader
                    port = LoopPort(loop, self._async_counters, _AsyncCall, self._core.submit_task,
                                    self._submit_timeout, _CANCELLED, TaskResult, WAKE_CALL_SOON, _AsyncRun)
                self._ports[loop] = port
                self._all_ports.add(port)
            self._port_cache = (loop, port)
            return port

    def _collect_orphans(self) -> None:
        """Count as orphaned the finished calls left for loops that closed
        before draining them (the port keeps them; nothing else would)."""
        for port in list(self._all_ports):
            port.collect_if_closed()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished (or was
        cancelled), its error reporting (``on_error``) included.  Returns
        False if ``timeout`` seconds passed first.  Ctrl+C interrupts it.  In a
        forked child, where the inherited scheduler has no workers, it raises
        ``SchedulerNotRunningError`` at once."""
        limit = _check_timeout("timeout", timeout)
        if self._forked:
            raise SchedulerNotRunningError(
                f"this NumaScheduler was inherited by a forked child process (pid {os.getpid()}); "
                "its workers do not exist here, so join() would never return: create a new "
                "scheduler in the child")
        return self._core.wait_idle(-1.0 if limit is None else limit)

    # ---- errors -------------------------------------------------------------------------

    def _record_failure(self, task: Task, exc: BaseException) -> None:
        self._recent_errors.append(TaskError(task, exc))
        if self._on_error is None:
            log.error("tallyio: task %r failed", task, exc_info=exc)
            return
        self._on_error(task, exc)

    @staticmethod
    def _cancel_task(task: Task) -> None:
        if isinstance(task, AsyncCall):
            # its awaiter gets an error, never a hang
            task.stop_cancelled(SchedulerNotRunningError(
                "the scheduler was stopped with cancel_pending=True before this call ran"))
            return
        if isinstance(task, _CallTask):
            # the done-callbacks run inside cancel(); whatever they raise, the
            # future must reach CANCELLED_AND_NOTIFIED (wait()/as_completed())
            try:
                task.future.cancel()
            finally:
                task.future.set_running_or_notify_cancel()
                del task.future._done_callbacks[:]   # ran; the list is out of the GC (sched_future.pyx)

    # ---- reading ------------------------------------------------------------------------

    @property
    def balancer(self) -> LoadBalancer:
        """The LoadBalancer view of this scheduler's load counters."""
        return self._balancer

    @property
    def worker_count(self) -> int:
        """Number of worker threads: workers_per_numa_node x nodes with CPUs."""
        return len(self._layout)

    def stats(self) -> SchedulerStats:
        """A snapshot of the counters, per-worker rows and latency percentiles.
        Reading never stops the workers."""
        core = self._core
        self._collect_orphans()
        rows = [core.worker_row(i) for i in range(core.nworkers)]
        per_worker_capacity = core.capacity * (core.bands + 1)
        workers = tuple(
            WorkerStats(index=i, node=self._node_ids[r["node_index"]], cpu=self._worker_cpus[i],
                        queue_size=r["queue_size"], capacity=per_worker_capacity,
                        processed=r["processed"], stolen=r["stolen"], busy_ns=r["busy_ns"])
            for i, r in enumerate(rows))

        def total(key: str) -> int:
            return sum(r[key] for r in rows)

        metrics = SchedulerMetrics(
            tasks_submitted=total("submitted"), tasks_processed=total("processed"),
            tasks_succeeded=total("succeeded"), tasks_failed=total("failed"),
            tasks_retried=total("retried"), tasks_stolen=total("stolen"),
            steal_attempts=total("steal_attempts"), tasks_cancelled=total("cancelled"),
            tasks_migrated=total("migrated"), wakeups=core.wakeups,
            **{("loop_wakeups" if key == "wakeups" else f"async_{key}"): value
               for key, value in self._async_counters.snapshot().items() if key != "batches"})
        wait_hist, exec_hist = core.histograms()
        npt = core.ns_per_tick
        if self._started_at == 0.0:
            elapsed = 0.0
        else:
            elapsed = (self._stopped_at or time.perf_counter()) - self._started_at
        return SchedulerStats(
            metrics=metrics, workers=workers, elapsed_s=elapsed,
            queue_wait_us=Percentiles.from_histogram(wait_hist, npt),
            execution_us=Percentiles.from_histogram(exec_hist, npt),
            recent_errors=tuple(self._recent_errors))

    def __repr__(self) -> str:
        return (f"<NumaScheduler {self._state}: {len(self._layout)} workers on "
                f"{len(self._nodes)} node(s)>")
