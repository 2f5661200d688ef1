"""asv benchmarks for NumaScheduler, over the worker count (1 and 2).

* no-op Python tasks: N submitted from one thread with submit_task (one
  reused Task), then join(), next to ThreadPoolExecutor with as many workers;
  track_* report the steals such a run causes;
* the cost of submit_task / submit() per call, workers running;
* tasks that release the GIL (hashlib.sha256 of 16 KiB), parallel versus a
  serial loop of the same hashes (as in pandas' asv_bench/benchmarks/gil.py);
* native nogil tasks through tallyio._ext.native_example (skipped when that
  module is not built): near no-op throughput, and tasks doing real work
  without the GIL on 1 versus 2 workers (workers=1 is the serial run).

setup() starts the scheduler (outside the timing) and teardown() stops it.
Every timed run ends with the scheduler idle again, so runs do not leak work
into each other; number = 1 because one run is already thousands of tasks.
"""
import concurrent.futures
import hashlib
import os
from itertools import repeat

from tallyio import NumaScheduler, SchedulerConfig, Task

try:
    from tallyio._ext import native_example
except ImportError:  # built by the package's own setup; absent in old commits
    native_example = None

WORKERS = [1, 2]


class _Noop(Task):
    __slots__ = ()

    def execute(self):
        pass


class _Sha256(Task):
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def execute(self):
        hashlib.sha256(self.data).digest()


def _noop():
    pass


def _start(workers, **config):
    return NumaScheduler(SchedulerConfig(workers_per_numa_node=workers, **config)).start()


class NoopThroughput:
    """N no-op Python tasks submitted from one thread and completed."""

    params = WORKERS
    param_names = ["workers"]
    number = 1
    repeat = (5, 20, 10.0)
    N = 20_000

    def setup(self, workers):
        # each inbox holds the whole burst: the submitter keeps the GIL while it submits
        self.scheduler = _start(workers, queue_capacity=32768)
        self.task = _Noop()
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        concurrent.futures.wait([self.pool.submit(_noop) for _ in range(4 * workers)])

    def teardown(self, workers):
        self.scheduler.stop()
        self.pool.shutdown()

    def _run(self):
        submit, task = self.scheduler.submit_task, self.task
        for _ in repeat(None, self.N):
            submit(task)
        self.scheduler.join()

    def time_submit_task_and_join(self, workers):
        self._run()

    def time_thread_pool_submit_and_wait(self, workers):
        submit = self.pool.submit
        concurrent.futures.wait([submit(_noop) for _ in repeat(None, self.N)])

    def track_tasks_stolen(self, workers):
        before = self.scheduler.stats().metrics.tasks_stolen
        self._run()
        return self.scheduler.stats().metrics.tasks_stolen - before
    track_tasks_stolen.unit = "tasks"

    def track_steal_attempts(self, workers):
        before = self.scheduler.stats().metrics.steal_attempts
        self._run()
        return self.scheduler.stats().metrics.steal_attempts - before
    track_steal_attempts.unit = "attempts"


class SubmitCost:
    """1000 submits per call while the workers run them (number = 1: asv runs
    setup before every sample, so each sample starts with idle workers and
    empty queues; teardown waits for the tasks)."""

    params = WORKERS
    param_names = ["workers"]
    number = 1
    repeat = (10, 50, 10.0)

    def setup(self, workers):
        self.scheduler = _start(workers)
        self.task = _Noop()
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        concurrent.futures.wait([self.pool.submit(_noop) for _ in range(4 * workers)])

    def teardown(self, workers):
        self.scheduler.stop()
        self.pool.shutdown()

    def time_submit_task(self, workers):
        submit, task = self.scheduler.submit_task, self.task
        for _ in repeat(None, 1000):
            submit(task)

    def time_submit_with_future(self, workers):
        submit = self.scheduler.submit
        for _ in repeat(None, 1000):
            submit(_noop)

    def time_thread_pool_submit(self, workers):
        submit = self.pool.submit
        for _ in repeat(None, 1000):
            submit(_noop)


class Sha256ParallelVsSerial:
    """hashlib.sha256 of 16 KiB (it releases the GIL), N times: on the
    scheduler's workers versus a serial loop in this thread."""

    params = WORKERS
    param_names = ["workers"]
    number = 1
    repeat = (5, 20, 10.0)
    N = 400

    def setup(self, workers):
        self.data = os.urandom(16 * 1024)
        self.scheduler = _start(workers)
        self.task = _Sha256(self.data)
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)

    def teardown(self, workers):
        self.scheduler.stop()
        self.pool.shutdown()

    def time_parallel_tallyio(self, workers):
        submit, task = self.scheduler.submit_task, self.task
        for _ in repeat(None, self.N):
            submit(task)
        self.scheduler.join()

    def time_parallel_thread_pool(self, workers):
        data, sha256 = self.data, hashlib.sha256
        concurrent.futures.wait([self.pool.submit(sha256, data) for _ in repeat(None, self.N)])

    def time_serial(self, workers):
        data, sha256 = self.data, hashlib.sha256
        for _ in repeat(None, self.N):
            sha256(data).digest()


class NativeThroughput:
    """Native nogil tasks (tallyio._ext.native_example): N near no-ops
    submitted from one thread (one tio_submit_native per task, or
    tio_submit_native_many) or spawned on the workers from one root task;
    tracks tasks per second, submission to the last task done."""

    params = (WORKERS, ["submit", "submit_many", "spawn"])
    param_names = ["workers", "mode"]
    N = 200_000

    def setup(self, workers, mode):
        if native_example is None:
            raise NotImplementedError("tallyio._ext.native_example is not built")
        self.scheduler = _start(workers)

    def teardown(self, workers, mode):
        self.scheduler.stop()

    def track_tasks_per_second(self, workers, mode):
        return native_example.measure_native_throughput(self.scheduler, self.N, mode=mode)
    track_tasks_per_second.unit = "tasks/s"


class NativeWork:
    """N native tasks that each do WORK rounds of an integer mix without the
    GIL (NativeBatch's count_task), submitted from this thread ("submit") or
    spawned on the workers as a tree ("spawn", stolen by idle workers).  The
    workers param makes the parallel-versus-serial pair: workers=1 runs the
    same work on one core.  Each task stores its mix result, so the work is
    kept; teardown checks that every task ran exactly once."""

    params = (WORKERS, ["submit", "spawn"])
    param_names = ["workers", "mode"]
    number = 1          # a NativeBatch runs once: setup makes a fresh one per sample
    repeat = (5, 20, 10.0)
    N = 20_000
    WORK = 2_000

    def setup(self, workers, mode):
        if native_example is None:
            raise NotImplementedError("tallyio._ext.native_example is not built")
        self.scheduler = _start(workers)
        # spawn_tree makes its own batch (one root task) inside the run
        self.batch = native_example.NativeBatch(self.N, work_iters=self.WORK) if mode == "submit" else None

    def teardown(self, workers, mode):
        try:
            if self.batch is not None and self.batch.accepted:
                if not self.batch.wait(timeout=60.0):
                    raise RuntimeError(f"native tasks still running: {self.batch!r}")
                counts = self.batch.counts()
                if counts.min() != 1 or counts.max() != 1:
                    raise RuntimeError(f"native tasks ran {counts.min()}..{counts.max()} times, not once")
        finally:
            self.scheduler.stop()

    def _run(self, mode):
        if mode == "submit":
            self.batch.submit(self.scheduler)
        else:
            self.batch = native_example.spawn_tree(self.scheduler, self.N, work_iters=self.WORK)
        self.batch.wait()

    def time_run(self, workers, mode):
        self._run(mode)

    def track_tasks_stolen(self, workers, mode):
        before = self.scheduler.stats().metrics.tasks_stolen
        self._run(mode)
        return self.scheduler.stats().metrics.tasks_stolen - before
    track_tasks_stolen.unit = "tasks"
