"""NumaScheduler running Python tasks: conservation under load, task results
(SUCCESS/FAILED/RETRY, exceptions, on_error), submit_task's errors, stats()
and the steady-state allocation check.

Placement, priorities and stealing: test_scheduler_placement.py.  The
Executor interface: test_executor.py.  Shutdown and faults:
test_scheduler_faults.py.  Every test asserts behaviour (counts, orders,
identities), never wall-clock time; every scheduler is stopped before the
test ends, so no test leaks worker threads.
"""
import gc
import logging
import math
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from conftest import run_threads, scaled
from schedtools import Count, Gate, assert_identities, make_config, submit_blocking
from tallyio import (NumaScheduler, NumaTopology, QueueFullError,
                     SchedulerNotRunningError, SchedulerStats, Task, TaskResult)
from tallyio.metrics import Histogram
from tallyio.stats import Percentiles, SchedulerMetrics, TaskError, WorkerStats

# every test here runs real worker threads (nogil loops): all of them run under TSan too
pytestmark = [pytest.mark.timeout(60), pytest.mark.concurrency]


class Returns(Task):
    """Returns the values of `results` in turn (the last one again once they run out)."""

    def __init__(self, *results):
        self.results, self.calls = list(results), 0

    def execute(self):
        self.calls += 1
        return self.results[min(self.calls, len(self.results)) - 1]


class Raises(Task):
    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def execute(self):
        self.calls += 1
        raise self.exc


# ---- conservation under load --------------------------------------------------------------

@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("stealing", [True, False], ids=["stealing", "no-stealing"])
def test_stress_every_task_runs_exactly_once(workers, stealing):
    n = scaled(100_000)
    counts = np.zeros(n, dtype=np.int64)
    tasks = [Count(i, counts) for i in range(n)]
    scheduler = NumaScheduler(make_config(workers_per_numa_node=workers, enable_work_stealing=stealing),
                              topology=NumaTopology.uniform(1, 2))
    with scheduler:
        for task in tasks:
            submit_blocking(scheduler, task)
    assert not scheduler.running
    assert np.count_nonzero(counts != 1) == 0, f"ids run != once: {np.flatnonzero(counts != 1)[:10]}"
    stats = scheduler.stats()
    assert_identities(stats)
    m = stats.metrics
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_succeeded) == (n, n, n)
    assert (m.tasks_failed, m.tasks_cancelled, m.tasks_retried) == (0, 0, 0)
    if not stealing:
        assert m.tasks_stolen == 0 and m.steal_attempts == 0
    assert stats.total_queue_size() == 0


@pytest.mark.parametrize("stealing", [True, False], ids=["stealing", "no-stealing"])
def test_stress_two_nodes_two_submitter_threads(stealing):
    """Two nodes of two workers, two threads submitting at once: every id once."""
    n = scaled(100_000)
    counts = np.zeros(n, dtype=np.int64)
    tasks = [Count(i, counts) for i in range(n)]
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2, enable_work_stealing=stealing),
                              topology=NumaTopology.uniform(2, 1))

    def submit_range(lo, hi):
        for task in tasks[lo:hi]:
            submit_blocking(scheduler, task)

    with scheduler:
        run_threads((submit_range, (0, n // 2)), (submit_range, (n // 2, n)))
    assert np.count_nonzero(counts != 1) == 0
    stats = scheduler.stats()
    assert_identities(stats)
    assert stats.metrics.tasks_submitted == n == stats.metrics.tasks_succeeded
    assert {w.node for w in stats.workers} == {0, 1}


class Spawner(Task):
    """Runs once, then submits its two children from inside execute() (onto
    its worker's own deque), down to `depth` 0: a binary tree of tasks."""

    __slots__ = ("scheduler", "node", "depth", "counts")

    def __init__(self, scheduler, node, depth, counts):
        self.scheduler, self.node, self.depth, self.counts = scheduler, node, depth, counts

    def execute(self):
        self.counts[self.node] += 1
        if self.depth:
            for child in (2 * self.node + 1, 2 * self.node + 2):
                self.scheduler.submit_task(Spawner(self.scheduler, child, self.depth - 1, self.counts))


@pytest.mark.parametrize("stealing", [True, False], ids=["stealing", "no-stealing"])
def test_stress_tasks_spawned_inside_tasks_run_exactly_once(stealing):
    """Spawned work goes to the worker's own Chase-Lev deque; thieves take from it."""
    depth = 12 if scaled(100_000) >= 100_000 else 9
    nodes = 2 ** (depth + 1) - 1
    counts = np.zeros(nodes, dtype=np.int64)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2, enable_work_stealing=stealing),
                              topology=NumaTopology.uniform(2, 1))
    with scheduler:
        scheduler.submit_task(Spawner(scheduler, 0, depth, counts))
        assert scheduler.join(30)
    assert np.count_nonzero(counts != 1) == 0
    stats = scheduler.stats()
    assert_identities(stats)
    assert stats.metrics.tasks_submitted == nodes == stats.metrics.tasks_succeeded


class Meet(Task):
    """Waits at a barrier: a round of these completes only if every one of
    them runs at the same time, each on its own worker."""

    __slots__ = ("barrier", "met")

    def __init__(self, barrier, met):
        self.barrier, self.met = barrier, met

    def execute(self):
        try:
            self.barrier.wait(5)
            self.met.append(True)
        except threading.BrokenBarrierError:
            self.met.append(False)


@pytest.mark.parametrize("workers", [2, 4])
def test_idle_workers_all_wake_for_tasks_that_wait_for_each_other(workers):
    """`workers` tasks submitted to an idle scheduler of `workers` workers run
    at once (as on a ThreadPoolExecutor): no worker sleeps on a task queued in
    its inbox while another worker, which was searching when it was
    submitted, ran its own.  Rounds repeat the race between a submit and the
    workers' spin/park; a lost wake-up leaves a round waiting at its barrier."""
    rounds = 30
    met = []
    with NumaScheduler(make_config(workers_per_numa_node=workers)) as scheduler:
        for _ in range(rounds):
            barrier = threading.Barrier(workers)
            for _ in range(workers):
                scheduler.submit_task(Meet(barrier, met))
            assert scheduler.join(30)
            if not all(met):
                break
    assert met.count(False) == 0, f"a round of {workers} tasks could not all run at once"
    assert len(met) == rounds * workers


# ---- task results -------------------------------------------------------------------------

def run_to_end(tasks, **config):
    """Run `tasks` on a fresh 1-worker scheduler; returns (stats, recorded failures)."""
    failures = []
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, **config),
                              on_error=lambda task, exc: failures.append((task, exc)))
    with scheduler:
        for task in tasks:
            scheduler.submit_task(task)
    stats = scheduler.stats()
    assert_identities(stats)
    return stats, failures


def test_none_and_success_count_as_success_failed_as_failure():
    tasks = [Returns(None), Returns(TaskResult.SUCCESS), Returns(TaskResult.FAILED)]
    stats, failures = run_to_end(tasks)
    m = stats.metrics
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_succeeded, m.tasks_failed) == (3, 3, 2, 1)
    assert [t.calls for t in tasks] == [1, 1, 1]
    assert failures == [] and stats.recent_errors == ()  # FAILED is an outcome, not an error


def test_retry_twice_then_success():
    task = Returns(TaskResult.RETRY, TaskResult.RETRY, TaskResult.SUCCESS)
    stats, failures = run_to_end([task], max_retries=3)
    m = stats.metrics
    assert task.calls == 3
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_succeeded, m.tasks_failed) == (1, 1, 1, 0)
    assert m.tasks_retried == 2
    assert failures == []


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_retry_forever_fails_after_max_retries(max_retries):
    task = Returns(TaskResult.RETRY)
    stats, _ = run_to_end([task], max_retries=max_retries)
    m = stats.metrics
    assert task.calls == max_retries + 1
    assert m.tasks_retried == max_retries
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_succeeded, m.tasks_failed) == (1, 1, 0, 1)


def test_retry_of_many_tasks_adds_up():
    tasks = [Returns(*[TaskResult.RETRY] * (i % 5), TaskResult.SUCCESS) for i in range(200)]
    stats, _ = run_to_end(tasks, max_retries=3)
    m = stats.metrics
    # i % 5 == 4 wants 4 retries: 3 are allowed, then it fails
    assert m.tasks_retried == sum(min(i % 5, 3) for i in range(200))
    assert m.tasks_failed == 40 and m.tasks_succeeded == 160
    assert [t.calls for t in tasks] == [min(i % 5, 3) + 1 for i in range(200)]


def test_exception_counts_failed_goes_to_on_error_and_recent_errors_worker_lives():
    boom = ValueError("boom", 7)
    bad = Raises(boom)
    failures = []
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1),
                              on_error=lambda task, exc: failures.append((task, exc)))
    with scheduler:
        scheduler.submit_task(bad)
        assert scheduler.join(10)
        # the worker lives on: later tasks run
        after = [Returns(None) for _ in range(10)]
        for task in after:
            scheduler.submit_task(task)
        assert scheduler.join(10)
        assert [t.calls for t in after] == [1] * 10
        assert failures == [(bad, boom)]
        assert failures[0][1] is boom
        errors = scheduler.stats().recent_errors
        assert errors == (TaskError(bad, boom),)
        assert errors[0].exception.args == ("boom", 7)
    m = scheduler.stats().metrics
    assert (m.tasks_processed, m.tasks_succeeded, m.tasks_failed) == (11, 10, 1)
    assert bad.calls == 1


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()],
                         ids=lambda e: type(e).__name__)
def test_base_exceptions_in_execute_do_not_kill_the_worker(exc):
    bad, good = Raises(exc), Returns(None)
    stats, failures = run_to_end([bad, good])
    assert failures == [(bad, exc)]
    assert good.calls == 1 and stats.metrics.tasks_failed == 1 and stats.metrics.tasks_succeeded == 1


def test_recent_errors_keeps_the_most_recent_32():
    tasks = [Raises(RuntimeError(i)) for i in range(40)]
    stats, failures = run_to_end(tasks)
    assert len(failures) == 40
    assert [e.exception.args[0] for e in stats.recent_errors] == list(range(8, 40))
    assert stats.metrics.tasks_failed == 40


def test_failure_without_on_error_is_logged_on_the_tallyio_logger(caplog):
    caplog.set_level(logging.ERROR, logger="tallyio")
    bad = Raises(ZeroDivisionError("nope"))
    with NumaScheduler(make_config(workers_per_numa_node=1)) as scheduler:
        scheduler.submit_task(bad)
        assert scheduler.join(10)
    records = [r for r in caplog.records if r.name == "tallyio"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert repr(bad) in record.getMessage()
    assert record.exc_info[1] is bad.exc
    assert scheduler.stats().recent_errors[0].exception is bad.exc


def test_on_error_that_raises_goes_to_unraisablehook_and_the_worker_lives(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def on_error(task, exc):
        raise RuntimeError("handler broke")

    bad = Raises(ValueError("first"))
    later = [Returns(None) for _ in range(5)]
    with NumaScheduler(make_config(workers_per_numa_node=1), on_error=on_error) as scheduler:
        scheduler.submit_task(bad)
        assert scheduler.join(10)
        for task in later:
            scheduler.submit_task(task)
        assert scheduler.join(10)
    assert [t.calls for t in later] == [1] * 5
    assert len(seen) == 1
    assert seen[0].exc_type is RuntimeError and str(seen[0].exc_value) == "handler broke"
    assert "failure handler" in seen[0].err_msg
    m = scheduler.stats().metrics
    assert (m.tasks_failed, m.tasks_succeeded) == (1, 5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_on_error_that_raises_with_the_default_hook():
    """The real sys.unraisablehook (pytest's) receives it; nothing escapes into the worker."""
    def on_error(task, exc):
        raise RuntimeError("handler broke")

    task = Returns(None)
    with NumaScheduler(make_config(workers_per_numa_node=1), on_error=on_error) as scheduler:
        scheduler.submit_task(Raises(ValueError("x")))
        scheduler.submit_task(task)
    assert task.calls == 1


@pytest.mark.parametrize("value", ["ok", 1, 3, TaskResult.SUCCESS.value + 0.0, object()],
                         ids=["str", "int-1", "int-3", "float", "object"])
def test_execute_returning_a_wrong_value_fails_with_typeerror(value):
    task = Returns(value)
    stats, failures = run_to_end([task])
    assert stats.metrics.tasks_failed == 1 and stats.metrics.tasks_succeeded == 0
    assert len(failures) == 1 and failures[0][0] is task
    assert isinstance(failures[0][1], TypeError)
    assert repr(value) in str(failures[0][1])


def test_plain_int_results_are_not_taskresults():
    """0 == TaskResult.SUCCESS, but only the members (and None) are results."""
    task = Returns(0)
    stats, failures = run_to_end([task])
    assert stats.metrics.tasks_failed == 1 and isinstance(failures[0][1], TypeError)


# ---- submit_task errors --------------------------------------------------------------------

class NoExecute(Task):
    pass


class WithPriority(Task):
    def __init__(self, value):
        self.value, self.ran = value, False

    def execute(self):
        self.ran = True

    def priority(self):
        return self.value


class WithDuration(WithPriority):
    def priority(self):
        return 0

    def estimated_duration_us(self):
        return self.value


class WithNode(WithPriority):
    def priority(self):
        return 0

    def preferred_node(self):
        return self.value


@pytest.fixture
def running():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1), topology=NumaTopology.uniform(2, 1))
    with scheduler:
        yield scheduler


@pytest.mark.parametrize("item", [5, object(), Task, NoExecute, Task(), NoExecute(), lambda: None],
                         ids=["int", "object", "Task-class", "subclass-class", "Task()", "no-execute",
                              "function"])
def test_submit_task_type_errors(running, item):
    with pytest.raises(TypeError):
        running.submit_task(item)
    assert running.stats().metrics.tasks_submitted == 0


def test_submit_task_type_error_names_the_type(running):
    with pytest.raises(TypeError, match="int"):
        running.submit_task(5)
    with pytest.raises(TypeError, match="NoExecute"):
        running.submit_task(NoExecute())


@pytest.mark.parametrize("value, error", [(256, ValueError), (-1, ValueError), (1000, ValueError),
                                          ("x", TypeError), (True, TypeError), (3.0, TypeError),
                                          (None, TypeError)])
def test_bad_priority_is_rejected_and_nothing_is_queued(running, value, error):
    task = WithPriority(value)
    with pytest.raises(error, match="priority"):
        running.submit_task(task)
    ok = WithPriority(np.int64(255))          # an __index__ integer is fine
    running.submit_task(ok)
    assert running.join(10)
    assert not task.ran and ok.ran
    assert running.stats().metrics.tasks_submitted == 1


def test_priority_that_raises_propagates_and_nothing_is_queued(running):
    class Broken(WithPriority):
        def priority(self):
            raise LookupError("no priority today")

    with pytest.raises(LookupError, match="no priority today"):
        running.submit_task(Broken(0))
    assert running.stats().metrics.tasks_submitted == 0


@pytest.mark.parametrize("value, error", [(-1, ValueError), (float("nan"), ValueError),
                                          ("x", TypeError), (True, TypeError)])
def test_bad_estimated_duration_is_rejected(running, value, error):
    task = WithDuration(value)
    with pytest.raises(error, match="estimated_duration_us"):
        running.submit_task(task)
    assert running.stats().metrics.tasks_submitted == 0


@pytest.mark.parametrize("node", [2, -1, True, "0", 0.0])
def test_unknown_preferred_node_is_a_valueerror(running, node):
    task = WithNode(node)
    with pytest.raises(ValueError, match="preferred_node"):
        running.submit_task(task)
    assert running.stats().metrics.tasks_submitted == 0
    assert not task.ran


def test_preferred_node_accepts_index_integers(running):
    task = WithNode(np.int64(1))
    running.submit_task(task)
    assert running.join(10) and task.ran


def test_submit_before_start_and_after_stop():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1))
    task = Returns(None)
    with pytest.raises(SchedulerNotRunningError, match="not started"):
        scheduler.submit_task(task)
    with scheduler:
        scheduler.submit_task(task)
    with pytest.raises(SchedulerNotRunningError, match="stopped"):
        scheduler.submit_task(task)
    assert isinstance(SchedulerNotRunningError("x"), RuntimeError)
    assert task.calls == 1
    assert scheduler.stats().metrics.tasks_submitted == 1


def test_queue_full_rejects_without_accepting():
    # one worker, 2 slots per band (2 is already a power of two)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, queue_capacity=2))
    gate = Gate()
    accepted, rejected = [], None
    high = WithPriority(255)
    with scheduler:
        try:
            scheduler.submit_task(gate)
            assert gate.started.wait(10)
            for _ in range(10):
                task = Returns(None)
                try:
                    scheduler.submit_task(task)
                except QueueFullError as exc:
                    rejected = task
                    assert "full" in str(exc)
                    break
                accepted.append(task)
            assert rejected is not None, "a 2-slot inbox never filled"
            assert len(accepted) == 2
            stats = scheduler.stats()
            assert stats.metrics.tasks_submitted == 3          # the gate and the two accepted
            assert stats.total_queue_size() == 2
            scheduler.submit_task(high)                        # another band has its own slots
        finally:
            gate.release.set()
        assert scheduler.join(10)
    assert [t.calls for t in accepted] == [1, 1]
    assert rejected.calls == 0 and high.ran
    assert scheduler.stats().metrics.tasks_submitted == 4
    assert_identities(scheduler.stats())


def test_queue_capacity_is_rounded_up_to_a_power_of_two():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, queue_capacity=3))
    gate = Gate()
    with scheduler:
        try:
            scheduler.submit_task(gate)
            assert gate.started.wait(10)
            accepted = 0
            with pytest.raises(QueueFullError):
                for _ in range(10):
                    scheduler.submit_task(Returns(None))
                    accepted += 1
            assert accepted == 4
            assert scheduler.stats().workers[0].capacity == 4 * 9
        finally:
            gate.release.set()
    assert scheduler.stats().metrics.tasks_processed == 5


class TwoGates(Task):
    """Two of these block two workers: each waits until both run."""

    def __init__(self, barrier, release):
        self.barrier, self.release = barrier, release

    def execute(self):
        self.barrier.wait(10)
        assert self.release.wait(10)


def test_queue_full_overflows_to_the_other_workers_inbox_first():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2, queue_capacity=2))
    barrier, release = threading.Barrier(3), threading.Event()
    accepted = []
    with scheduler:
        try:
            scheduler.submit_task(TwoGates(barrier, release))
            scheduler.submit_task(TwoGates(barrier, release))
            barrier.wait(10)               # both workers are inside a gate
            with pytest.raises(QueueFullError):
                for _ in range(20):
                    task = Returns(None)
                    scheduler.submit_task(task)
                    accepted.append(task)
            assert len(accepted) == 4      # 2 slots in each worker's band-0 inbox
            assert [w.queue_size for w in scheduler.stats().workers] == [2, 2]
        finally:
            release.set()
        assert scheduler.join(10)
    assert [t.calls for t in accepted] == [1] * 4
    assert scheduler.stats().metrics.tasks_submitted == 6


# ---- stats() ---------------------------------------------------------------------------------

def test_stats_before_and_after_tasks():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2, queue_capacity=1000),
                              topology=NumaTopology.uniform(2, 1))
    before = scheduler.stats()
    assert isinstance(before, SchedulerStats) and isinstance(before.metrics, SchedulerMetrics)
    assert before.metrics == SchedulerMetrics()
    assert before.elapsed_s == 0.0 and before.throughput() == 0.0
    assert before.average_steal_ratio() == 0.0
    for p in (before.queue_wait_us, before.execution_us):
        assert isinstance(p, Percentiles)
        assert all(math.isnan(v) for v in (p.p50, p.p99, p.p999))
    n = 2000
    counts = np.zeros(n, dtype=np.int64)
    with scheduler:
        for i in range(n):
            submit_blocking(scheduler, Count(i, counts))
        assert scheduler.join(10)
        live = scheduler.stats()
        assert live.elapsed_s > 0
    after = scheduler.stats()
    assert_identities(after)
    assert after.metrics.tasks_processed == n
    assert len(after.workers) == 4
    for i, w in enumerate(after.workers):
        assert isinstance(w, WorkerStats)
        assert w.index == i
        assert w.node == (0 if i < 2 else 1)
        assert w.cpu == -1                     # affinity off
        assert w.capacity == 1024 * 9          # 8 inbox bands and the deque, rounded to 1024
        assert w.queue_size == 0
        assert isinstance(w.busy_ns, int) and w.busy_ns >= 0
        assert w.processed >= 0 and w.stolen >= 0
    assert after.total_capacity() == 4 * 1024 * 9
    assert after.total_queue_size() == 0
    assert 0.0 <= after.average_steal_ratio() <= 1.0
    assert isinstance(after.throughput(), float) and after.throughput() > 0
    # elapsed stops at stop(): two snapshots agree
    assert scheduler.stats().elapsed_s == after.elapsed_s
    for p in (after.queue_wait_us, after.execution_us):
        assert all(math.isfinite(v) and v > 0 for v in (p.p50, p.p99, p.p999))
        assert p.p50 <= p.p99 <= p.p999
    assert sum(w.busy_ns for w in after.workers) > 0


class Sleeps(Task):
    """Runs for at least `seconds` (time.sleep never returns early)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def execute(self):
        time.sleep(self.seconds)
        return TaskResult.SUCCESS


def test_stats_percentiles_come_from_the_workers_histograms():
    """Every task lands once in its worker's wait and exec tio_hist; stats()
    reports the merged histograms' percentiles, so a run of tasks that each take
    >= 3 ms has an execution p50 of >= 3 ms (a lower bound the tasks guarantee,
    not a speed claim; 1 % slack for the tick calibration)."""
    n = 40
    with NumaScheduler(make_config(workers_per_numa_node=2)) as scheduler:
        for _ in range(n):
            submit_blocking(scheduler, Sleeps(0.003))
        assert scheduler.join(30)
    wait, exe = scheduler._core.histograms()
    assert isinstance(wait, Histogram) and isinstance(exe, Histogram)
    assert wait.count == exe.count == n == scheduler.stats().metrics.tasks_processed
    stats = scheduler.stats()
    npt = scheduler._core.ns_per_tick
    assert stats.execution_us == Percentiles.from_histogram(exe, npt)
    assert stats.queue_wait_us == Percentiles.from_histogram(wait, npt)
    assert stats.execution_us.p50 >= 3000 * 0.99
    assert stats.execution_us.p50 <= stats.execution_us.p99 <= stats.execution_us.p999


def test_native_tasks_are_recorded_in_the_histograms_once():
    from tallyio._ext.native_example import NativeBatch
    n = scaled(20_000)
    with NumaScheduler(make_config(workers_per_numa_node=2)) as scheduler:
        batch = NativeBatch(n)
        assert batch.submit(scheduler, many=True) == n
        assert batch.wait(timeout=50)
        assert scheduler.join(10)
    wait, exe = scheduler._core.histograms()
    assert wait.count == exe.count == n
    stats = scheduler.stats()
    assert all(math.isfinite(v) for v in (stats.execution_us.p50, stats.queue_wait_us.p999))


def test_stats_queue_size_counts_queued_tasks():
    with NumaScheduler(make_config(workers_per_numa_node=1)) as scheduler:
        gate = Gate()
        try:
            scheduler.submit_task(gate)
            assert gate.started.wait(10)
            for priority in (0, 0, 100, 255):
                scheduler.submit_task(WithPriority(priority))
            stats = scheduler.stats()
            assert stats.total_queue_size() == 4 == stats.workers[0].queue_size
            # the balancer's load counts the task in hand too (it leaves the
            # counters when it has run)
            assert scheduler.balancer.load(0).tasks in (4, 5)
        finally:
            gate.release.set()
        assert scheduler.join(10)
        assert scheduler.stats().total_queue_size() == 0


def test_stats_from_another_thread_while_tasks_run():
    n = scaled(50_000)
    counts = np.zeros(n, dtype=np.int64)
    done = threading.Event()
    reading = threading.Event()
    seen = []

    def read_stats(scheduler):
        # reads from before the first submit until after the last task ran: at least twice
        # whatever the threads' timing (a loaded machine can run the whole burst between two reads)
        last = -1
        while True:
            finished = done.is_set()
            stats = scheduler.stats()
            processed = stats.metrics.tasks_processed
            assert processed >= last, "tasks_processed went backwards"
            assert all(w.processed >= 0 for w in stats.workers)
            last = processed
            seen.append(processed)
            reading.set()
            if finished:
                return last

    scheduler = NumaScheduler(make_config(workers_per_numa_node=2))
    with scheduler:
        def submit_all():
            try:
                assert reading.wait(30)
                for i in range(n):
                    submit_blocking(scheduler, Count(i, counts))
                assert scheduler.join(30)
            finally:
                done.set()

        run_threads((read_stats, (scheduler,)), (submit_all, ()))
    assert np.count_nonzero(counts != 1) == 0
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == n
    assert_identities(scheduler.stats())


# ---- allocations --------------------------------------------------------------------------

class Noop(Task):
    __slots__ = ()

    def execute(self):
        return None


def _traced_growth(scheduler, task, n, chunk=1000):
    """Net traced bytes and peak above the start, around n submit+execute of one task."""
    gc.collect()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    for _ in range(n // chunk):
        for _ in range(chunk):
            scheduler.submit_task(task)
        scheduler.join()
    gc.collect()
    end, peak = tracemalloc.get_traced_memory()
    return end - start, peak - start


def test_no_python_allocations_per_task_in_steady_state():
    """tracemalloc sees every Python heap allocation (object and raw domains,
    on every thread).  Slack: a few hundred bytes for things that are not per
    task (gc.collect's bookkeeping, a free-list refill, tracemalloc's own
    frames); a per-task allocation would show as >= 16 bytes x 20k = 320 kB
    and would double from 20k to 40k tasks."""
    task = Noop()
    slack = 4096
    with NumaScheduler(make_config(workers_per_numa_node=1)) as scheduler:
        tracemalloc.start()
        try:
            _traced_growth(scheduler, task, 20_000)      # warm-up: caches, histograms, free lists
            net_20k, peak_20k = _traced_growth(scheduler, task, 20_000)
            net_40k, peak_40k = _traced_growth(scheduler, task, 40_000)
        finally:
            tracemalloc.stop()
    assert net_20k <= slack and net_40k <= slack, (net_20k, net_40k)
    assert peak_20k <= slack and peak_40k <= slack, (peak_20k, peak_40k)
    assert scheduler.stats().metrics.tasks_processed == 80_000
