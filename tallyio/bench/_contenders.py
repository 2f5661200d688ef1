"""The contenders: tallyio and each peer a Python user would otherwise pick,
behind one interface so every workload runs them the same way.

A contender is a context manager: entering starts its threads or processes
(outside any timing), leaving stops them.  Inside:

* ``run_all(work, n)`` runs ``n`` tasks of ``work`` and returns when all are done;
* ``submit(work)`` / ``wait(handles)`` submit one task and wait for many
  (``no_submit`` says why a contender has no per-call submit);
* ``probe()`` submits one task and returns ``(submit-to-start, submit-to-complete)``
  in nanoseconds: start as the task saw its own start, complete when the
  submitting thread learns the task is done (a Future's result, a Pool's
  AsyncResult, or a lock the task releases); ``no_probe`` says why a
  contender cannot run a single task alone.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import threading
from itertools import repeat
from time import perf_counter_ns
from typing import Any, Callable, Sequence

from tallyio.bench._workloads import Work, noop, started_ns
from tallyio.config import SchedulerConfig
from tallyio.scheduler import NumaScheduler
from tallyio.task import Task

#: the issue's workloads are defined for 2 workers on a 2-core machine
WORKERS = 2
#: a probe that never runs is a failure, not a hang
PROBE_TIMEOUT_S = 10.0


class Signal:
    """Records when the task that calls it starts, then lets the submitter,
    blocked in wait(), go on."""

    __slots__ = ("started_ns", "_done")

    def __init__(self) -> None:
        self.started_ns = 0
        self._done = threading.Lock()
        self._done.acquire()

    def __call__(self) -> None:
        self.started_ns = perf_counter_ns()
        self._done.release()

    def wait(self) -> int:
        """Block until the task ran; return the time this thread learnt it."""
        if not self._done.acquire(timeout=PROBE_TIMEOUT_S):
            raise RuntimeError(f"a latency probe did not run within {PROBE_TIMEOUT_S} s")
        return perf_counter_ns()


class SignalTask(Task):
    """A Task that runs a Signal, at ``priority``."""

    __slots__ = ("signal", "_priority")

    def __init__(self, signal: Signal, priority: int = 0) -> None:
        self.signal = signal
        self._priority = priority

    def execute(self) -> None:
        self.signal()

    def priority(self) -> int:
        return self._priority


class Contender:
    """One way to run tasks (the module docstring has the protocol)."""

    name: str
    #: why this contender has no per-call submit (then submit cost is not measured)
    no_submit: str | None = None
    #: why this contender cannot run one task alone (then latency is not measured)
    no_probe: str | None = None

    def __enter__(self) -> Contender:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run_all(self, work: Work, n: int) -> None:
        self.wait([self.submit(work) for _ in repeat(None, n)])

    def submit(self, work: Work) -> Any:
        raise NotImplementedError

    def wait(self, handles: list) -> None:
        raise NotImplementedError

    def probe(self) -> tuple[int, int]:
        raise NotImplementedError


class _FutureContender(Contender):
    """Anything with ``submit(fn) -> Future``."""

    executor: concurrent.futures.Executor

    def submit(self, work: Work) -> concurrent.futures.Future:
        return self.executor.submit(work.fn)

    def wait(self, handles: list) -> None:
        concurrent.futures.wait(handles)

    def probe(self) -> tuple[int, int]:
        start = perf_counter_ns()
        started = self.executor.submit(started_ns).result(PROBE_TIMEOUT_S)
        return started - start, perf_counter_ns() - start


class TallyioTasks(Contender):
    """NumaScheduler.submit_task of a reused Task, then join()."""

    name = "tallyio"

    def __init__(self, workers: int = WORKERS, **config: Any) -> None:
        self._config = SchedulerConfig(workers_per_numa_node=workers, **config)

    def __enter__(self) -> TallyioTasks:
        self.scheduler = NumaScheduler(self._config).start()
        self._signal = Signal()
        self._probe_task = SignalTask(self._signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.scheduler.stop(wait=True)

    def run_all(self, work: Work, n: int) -> None:
        submit, task = self.scheduler.submit_task, work.task
        for _ in repeat(None, n):
            submit(task)
        self.scheduler.join()

    def submit(self, work: Work) -> None:
        return self.scheduler.submit_task(work.task)

    def wait(self, handles: list) -> None:
        self.scheduler.join()

    def probe(self) -> tuple[int, int]:
        start = perf_counter_ns()
        self.scheduler.submit_task(self._probe_task)
        done = self._signal.wait()
        return self._signal.started_ns - start, done - start


class TallyioFutures(_FutureContender):
    """NumaScheduler as a concurrent.futures.Executor: submit(fn) -> Future."""

    name = "tallyio .submit() -> Future"

    def __init__(self, **config: Any) -> None:
        self._config = SchedulerConfig(workers_per_numa_node=WORKERS, **config)

    def __enter__(self) -> TallyioFutures:
        self.executor = NumaScheduler(self._config).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True)


class ThreadPool(_FutureContender):
    def __init__(self, workers: int) -> None:
        self.name = f"ThreadPoolExecutor({workers})"
        self._workers = workers

    def __enter__(self) -> ThreadPool:
        self.executor = concurrent.futures.ThreadPoolExecutor(self._workers)
        # it starts its threads on demand: start them outside the timing
        concurrent.futures.wait([self.executor.submit(_sleep_ms) for _ in range(self._workers)])
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True)


def _sleep_ms() -> None:
    threading.Event().wait(0.001)


class AsyncioLoop(Contender):
    """An asyncio loop running in its own thread, fed by loop.call_soon_threadsafe."""

    name = "asyncio call_soon_threadsafe"

    def __enter__(self) -> AsyncioLoop:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tallyio-bench-loop", daemon=True)
        self._thread.start()
        self._drain()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def _drain(self) -> None:
        # the loop runs callbacks in order: when this one runs, every earlier one has
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        done.wait()

    def run_all(self, work: Work, n: int) -> None:
        call, fn = self.loop.call_soon_threadsafe, work.fn
        for _ in repeat(None, n):
            call(fn)
        self._drain()

    def submit(self, work: Work) -> Any:
        return self.loop.call_soon_threadsafe(work.fn)

    def wait(self, handles: list) -> None:
        self._drain()

    def probe(self) -> tuple[int, int]:
        signal = Signal()
        start = perf_counter_ns()
        self.loop.call_soon_threadsafe(signal)
        done = signal.wait()
        return signal.started_ns - start, done - start


class _ProcessPool(Contender):
    """multiprocessing.Pool(2) from the forkserver context: forking a process
    that runs threads (ours do) is unsafe, and Python 3.14 makes forkserver
    the default anyway."""

    def __enter__(self) -> _ProcessPool:
        import multiprocessing
        self.pool = multiprocessing.get_context("forkserver").Pool(WORKERS)
        self.pool.map(noop, range(4 * WORKERS))      # both processes up and the work module imported
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.close()
        self.pool.join()


class ProcessPoolApply(_ProcessPool):
    name = f"multiprocessing.Pool({WORKERS}) apply_async"

    def submit(self, work: Work) -> Any:
        return self.pool.apply_async(work.fn)

    def wait(self, handles: list) -> None:
        for result in handles:
            result.get(PROBE_TIMEOUT_S)

    def probe(self) -> tuple[int, int]:
        start = perf_counter_ns()
        started = self.pool.apply_async(started_ns).get(PROBE_TIMEOUT_S)
        return started - start, perf_counter_ns() - start


class ProcessPoolMap(_ProcessPool):
    name = f"multiprocessing.Pool({WORKERS}) map"
    no_submit = "map takes a whole iterable: no per-call submit"
    no_probe = "map takes a whole iterable: no single-task latency"

    def run_all(self, work: Work, n: int) -> None:
        self.pool.map(work.fn, range(n))          # its default chunksize: n / (4 x processes)


class Loky(_FutureContender):
    name = f"loky ({WORKERS} processes)"

    def __enter__(self) -> Loky:
        import loky
        self.executor = loky.get_reusable_executor(max_workers=WORKERS)
        concurrent.futures.wait([self.executor.submit(noop) for _ in range(4 * WORKERS)])
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True)


class DaskThreaded(Contender):
    """dask's threaded scheduler: one graph of n independent tasks per get()."""

    name = f"dask threaded ({WORKERS} threads)"
    no_submit = "its scheduler runs a whole graph per get(): no per-call submit"

    def __enter__(self) -> DaskThreaded:
        import dask.threaded
        self._get = dask.threaded.get
        self._get({"warm-up": (noop,)}, "warm-up", num_workers=WORKERS)   # its pool, outside the timing
        return self

    def run_all(self, work: Work, n: int) -> None:
        graph = {i: (work.fn,) for i in range(n)}
        self._get(graph, list(graph), num_workers=WORKERS)

    def probe(self) -> tuple[int, int]:
        start = perf_counter_ns()
        started = self._get({"probe": (started_ns,)}, "probe", num_workers=WORKERS)
        return started - start, perf_counter_ns() - start


def _missing(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install {module})"
    return None


def _process_pools_missing() -> str | None:
    try:
        import multiprocessing
        multiprocessing.get_context("forkserver").Lock()   # needs a working sem_open (/dev/shm)
    except (ImportError, OSError, ValueError) as exc:
        return f"multiprocessing cannot start process pools here ({exc})"
    return None


Factory = Callable[[], Contender]


def peers() -> list[tuple[str, Factory | None, str | None]]:
    """Every peer as ``(name, factory, None)``, or ``(name, None, reason)`` when
    it cannot run on this machine (not installed)."""
    no_processes = _process_pools_missing()
    found: list[tuple[str, Factory | None, str | None]] = [
        (f"ThreadPoolExecutor({n})", lambda n=n: ThreadPool(n), None) for n in (1, 2, 4)]
    found.append((AsyncioLoop.name, AsyncioLoop, None))
    for cls in (ProcessPoolApply, ProcessPoolMap):
        found.append((cls.name, None if no_processes else cls, no_processes))
    found.append((Loky.name, None if _missing("loky") else Loky, _missing("loky")))
    found.append((DaskThreaded.name, None if _missing("dask") else DaskThreaded, _missing("dask")))
    return found


def contenders(mine: Sequence[tuple[str, Factory]], needs: str | None = None
               ) -> tuple[list[tuple[str, Factory]], dict[str, str]]:
    """``mine`` (tallyio's variants) followed by every peer that can run here
    and has what the workload ``needs`` ("submit" or "probe"), and ``{peer:
    reason}`` for those that cannot."""
    runnable = list(mine)
    skipped = {}
    for name, factory, reason in peers():
        lacking = getattr(factory, f"no_{needs}", None) if needs else None
        if factory is None or lacking:
            skipped[name] = reason or lacking or "unavailable"
        else:
            runnable.append((name, factory))
    return runnable, skipped
