"""pytest-benchmark micro-benchmarks: the per-call cost of submitting work to a
NumaScheduler (2 workers) from Python, next to ThreadPoolExecutor(2).submit
(same group).

Each round times OPS submits of a no-op while the workers run them; the
pedantic setup, untimed, waits before every round until the previous round's
tasks ran, so every round starts from empty queues.  Figures are per OPS
submits.  Run and compare as described in test_bench_core.py:

    pytest benchmarks/test_bench_scheduler.py --benchmark-autosave
    pytest benchmarks/test_bench_scheduler.py --benchmark-compare
"""
import concurrent.futures
from itertools import repeat

import pytest

from tallyio import NumaScheduler, SchedulerConfig, Task

OPS = 1000
ROUNDS = 50


class Noop(Task):
    __slots__ = ()

    def execute(self):
        pass


def noop():
    pass


@pytest.fixture
def scheduler():
    with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as s:
        yield s


@pytest.fixture
def thread_pool():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        concurrent.futures.wait([pool.submit(noop) for _ in range(8)])   # its threads exist before round 1
        yield pool


@pytest.mark.timeout(120)
@pytest.mark.benchmark(group="submit a no-op, x1000 (workers running)")
@pytest.mark.parametrize("kind", ["NumaScheduler.submit_task", "NumaScheduler.submit (Future)"])
def test_scheduler_submit(benchmark, scheduler, kind):
    task = Noop()
    futures = []
    if kind == "NumaScheduler.submit_task":
        submit_task = scheduler.submit_task

        def run():
            for _ in repeat(None, OPS):
                submit_task(task)
    else:
        submit = scheduler.submit

        def run():
            futures.extend(submit(noop) for _ in repeat(None, OPS))

    def drain():
        scheduler.join()
        futures.clear()

    benchmark.pedantic(run, setup=drain, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert scheduler.join(timeout=60)
    metrics = scheduler.stats().metrics
    assert metrics.tasks_submitted == metrics.tasks_succeeded > 0


@pytest.mark.timeout(120)
@pytest.mark.benchmark(group="submit a no-op, x1000 (workers running)")
def test_thread_pool_submit(benchmark, thread_pool):
    futures = []
    submit = thread_pool.submit

    def run():
        futures.extend(submit(noop) for _ in repeat(None, OPS))

    def drain():
        concurrent.futures.wait(futures)
        futures.clear()

    benchmark.pedantic(run, setup=drain, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    done, _ = concurrent.futures.wait(futures, timeout=60)
    assert all(f.result() is None for f in done) and len(done) == len(futures)
