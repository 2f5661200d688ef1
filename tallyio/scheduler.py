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

import collections
import concurrent.futures
import logging
import os
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Iterable, TypeVar

from tallyio._ext.scheduler import SchedulerCore
from tallyio.balancer import LoadBalancer
from tallyio.config import SchedulerConfig
from tallyio.errors import SchedulerNotRunningError
from tallyio.stats import (Percentiles, SchedulerMetrics, SchedulerStats, TaskError, WorkerStats,
                           percentiles_from_histogram)
from tallyio.task import Task, TaskResult
from tallyio.topology import NumaNode, NumaTopology, format_range_list

__all__ = ["NumaScheduler"]

T = TypeVar("T")
log = logging.getLogger("tallyio")

#: how many failed tasks stats().recent_errors keeps
RECENT_ERRORS = 32

_CANCELLED = object()     # _CallTask.execute() returns it for a future cancelled while queued


class _CallTask(Task):
    """submit(fn, *args, **kwargs) as a Task that settles a Future."""

    __slots__ = ("fn", "args", "kwargs", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict,
                 future: concurrent.futures.Future) -> None:
        self.fn, self.args, self.kwargs, self.future = fn, args, kwargs, future

    def execute(self) -> Any:
        if not self.future.set_running_or_notify_cancel():
            return _CANCELLED
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            self = None        # noqa: F841 -- break the frame <-> exception cycle, as ThreadPoolExecutor does
            return TaskResult.FAILED
        self.future.set_result(result)
        return TaskResult.SUCCESS

    def __repr__(self) -> str:
        return f"<submit({getattr(self.fn, '__qualname__', self.fn)!r})>"


# every scheduler still alive, for fork and interpreter exit
_live: weakref.WeakSet[NumaScheduler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for scheduler in list(_live):
        scheduler._forked = True
        scheduler._core.mark_forked()


def _stop_all_at_exit() -> None:
    for scheduler in list(_live):
        try:
            scheduler.stop(wait=True)
        except BaseException:       # exit must go on; report and continue
            log.exception("tallyio: stopping %r at interpreter exit failed", scheduler)


os.register_at_fork(after_in_child=_after_fork_in_child)
# threading._register_atexit runs before the interpreter joins threads (the hook
# concurrent.futures uses); atexit.register would run too late to stop workers
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_stop_all_at_exit)
else:  # pragma: no cover - other interpreters
    import atexit
    atexit.register(_stop_all_at_exit)


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
    ``loop.run_in_executor(scheduler, fn)`` works too.
    """

    def __init__(self, config: SchedulerConfig | None = None, *,
                 topology: NumaTopology | None = None,
                 on_error: Callable[[Task, BaseException], Any] | None = None) -> None:
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
        self._core.on_failure = self._record_failure
        self._core.cancel_marker = _CANCELLED
        # the fast path: submit_task is the C method itself, not a Python wrapper
        # around it (saves a Python call, ~60 ns, per task)
        self.submit_task = self._core.submit_task
        self._recent_errors: collections.deque[TaskError] = collections.deque(maxlen=RECENT_ERRORS)
        self._threads: list[threading.Thread] = []
        self._worker_cpus: list[int] = [cpu for _, cpu, _ in self._layout]
        # re-entrant: a task run by _finish's sweep may itself call stop()
        self._lock = threading.RLock()
        self._state = "new"            # new -> running -> stopping -> stopped
        self._forked = False           # set in a forked child: its workers do not exist
        self._started_at = self._stopped_at = 0.0
        self._balancer = LoadBalancer(self)

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
        if isinstance(node_id, bool) or not isinstance(node_id, int) or node_id not in self._node_ids:
            raise ValueError(f"node {node_id!r} is not one of this scheduler's nodes {self._node_ids}")
        return self._node_ids.index(node_id)

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
                thread = threading.Thread(target=self._worker_thread, args=(i, report),
                                          name=f"tallyio-worker-{i}", daemon=True)
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

    def _worker_thread(self, index: int, report: Callable[[BaseException | None], None]) -> None:
        cpu = self._worker_cpus[index]
        if cpu >= 0:
            try:
                os.sched_setaffinity(0, {cpu})       # this thread only (Linux: pid 0 = caller)
            except (OSError, ValueError, OverflowError):   # a CPU id this kernel rejects
                self._worker_cpus[index] = -1
        self._core.worker_main(index, report)

    def stop(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting work, then finish.

        ``wait=True`` returns once the workers have ended: with
        ``cancel_pending=False`` every accepted task has run; with
        ``cancel_pending=True`` the tasks still queued are cancelled (counted in
        ``tasks_cancelled``, their futures cancelled).  Stopping twice is
        harmless.  Called from inside a task (or a future's callback) it does
        not wait for its own worker: the remaining tasks finish after the
        current one returns.  Ctrl+C while waiting switches to cancelling the
        queued tasks, finishes the stop, and re-raises KeyboardInterrupt."""
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
        if not wait or threading.current_thread() in self._threads:
            # from inside a task: our own worker cannot be joined from itself;
            # a helper thread finishes the stop once the workers have left
            if state == "running":
                threading.Thread(target=self._finish, name="tallyio-stop", daemon=True).start()
            return
        try:
            self._finish()
        except KeyboardInterrupt:
            # Ctrl+C can land in any call of the wait, not only inside join():
            # cancel what is queued, finish the stop (a second Ctrl+C aborts
            # that), then re-raise
            self._core.close(True)
            self._finish()
            raise

    def _finish(self) -> None:
        """Wait until every worker has left its loop, then settle anything left in the queues."""
        self._wait_workers_exited()
        with self._lock:
            if self._state == "stopped":
                return
            self._core.sweep(self._core.cancelling, self._cancel_task)
            self._stopped_at = time.perf_counter()
            self._state = "stopped"
            _live.discard(self)

    def _wait_workers_exited(self) -> None:
        # The core's count of exited workers decides, not Thread.is_alive(): on
        # CPython < 3.13 a join() interrupted by Ctrl+C releases the tstate lock
        # of a thread that still runs and marks it stopped (threading's
        # bpo-45274 branch), and sweeping the queues under a live worker races
        # with it.  In a forked child the workers do not exist.
        if self._forked:
            return
        while self._core.workers_exited() < len(self._threads):
            alive = [thread for thread in self._threads if thread.is_alive()]
            if alive:
                alive[0].join(0.05)
            else:
                time.sleep(0.001)     # marked stopped too early (see above): poll the count
        for thread in self._threads:
            thread.join()             # each has left its loop: only returning is left

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``concurrent.futures.Executor.shutdown``: ``stop(wait, cancel_pending=cancel_futures)``."""
        self.stop(wait, cancel_pending=cancel_futures)

    def __enter__(self) -> NumaScheduler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop(wait=True)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._state == "running"

    # ---- submitting ------------------------------------------------------------------

    def submit_task(self, task: Task) -> None:  # replaced per instance by the C method
        """Queue ``task`` on a worker chosen by the load balancer: the fast path, no Future.

        Raises ``TypeError`` for anything that is not a Task (or a Task that does
        not override execute()), ``ValueError``/``TypeError`` for a bad
        ``priority()`` (0..255), ``QueueFullError`` when the chosen inbox and its
        overflow (the other workers' inboxes) are full -- the task is then not
        accepted -- and ``SchedulerNotRunningError`` before start() and after
        stop().  Called from inside a task it queues on the same worker."""
        self._core.submit_task(task)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; returns a concurrent.futures.Future."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {fn!r}")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._core.submit_task(_CallTask(fn, args, kwargs, future))
        return future

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished (or was cancelled).
        Returns False if ``timeout`` seconds passed first.  Ctrl+C interrupts it."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or >= 0, got {timeout!r}")
        return self._core.wait_idle(-1.0 if timeout is None else float(timeout))

    # ---- errors -------------------------------------------------------------------------

    def _record_failure(self, task: Task, exc: BaseException) -> None:
        self._recent_errors.append(TaskError(task, exc))
        if self._on_error is None:
            log.error("tallyio: task %r failed", task, exc_info=exc)
            return
        self._on_error(task, exc)

    def _cancel_task(self, task: Task) -> None:
        if isinstance(task, _CallTask):
            task.future.cancel()
            task.future.set_running_or_notify_cancel()

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
            tasks_migrated=total("migrated"), wakeups=core.wakeups)
        wait_hist, exec_hist = core.histograms()
        npt = core.ns_per_tick
        if self._started_at == 0.0:
            elapsed = 0.0
        else:
            elapsed = (self._stopped_at or time.perf_counter()) - self._started_at
        return SchedulerStats(
            metrics=metrics, workers=workers, elapsed_s=elapsed,
            queue_wait_us=Percentiles(*percentiles_from_histogram(wait_hist.sum(axis=0), npt)),
            execution_us=Percentiles(*percentiles_from_histogram(exec_hist.sum(axis=0), npt)),
            recent_errors=tuple(self._recent_errors))

    def __repr__(self) -> str:
        return (f"<NumaScheduler {self._state}: {len(self._layout)} workers on "
                f"{len(self._nodes)} node(s)>")
