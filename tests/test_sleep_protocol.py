"""The park/wake protocol (tallyio/_ext/README.md, "Parking and waking"): no
wake-up is ever lost, a submit does not wake anyone while a worker spins, and
an idle scheduler parks every worker.

A lost wake-up shows up as a task that stays queued while every worker sleeps:
``join(timeout)`` then returns False.  The timeouts are generous (a slow,
sanitized run must not fail them); they bound a hang, they do not time anything.
"""
import threading

import pytest

from conftest import scaled
from tallyio import NumaScheduler, NumaTopology, QueueFullError, SchedulerConfig, Task

pytestmark = [pytest.mark.concurrency, pytest.mark.timeout(120)]

HANG = 10.0   # seconds: only a lost wake-up (or a deadlock) gets near this


class Count(Task):
    __slots__ = ("hits",)

    def __init__(self, hits):
        self.hits = hits

    def execute(self):
        self.hits.append(1)


def _wait_all_parked(scheduler, workers):
    """Until every worker sleeps (the spin window is 0, so this is quick)."""
    for _ in range(100_000):
        searching, sleeping = scheduler._core.idle_word
        if sleeping == workers and searching == 0:
            return
        threading.Event().wait(0.0005)
    raise AssertionError(f"workers did not park: idle word {scheduler._core.idle_word}")


@pytest.mark.parametrize("stealing", [True, False], ids=["stealing", "no-stealing"])
@pytest.mark.parametrize("topology", [None, NumaTopology.uniform(2, 1)], ids=["1node", "2nodes"])
def test_a_single_submit_always_wakes_a_parked_worker(stealing, topology):
    """Park every worker, submit one task, it must run; many rounds, so the
    submit races each phase of a worker going to sleep."""
    rounds = scaled(2000, minimum=50)
    config = SchedulerConfig(workers_per_numa_node=2, spin_us=0, enable_work_stealing=stealing,
                             enable_cpu_affinity=False)
    hits = []
    with NumaScheduler(config, topology=topology) as scheduler:
        for r in range(rounds):
            if r % 10 == 0:
                _wait_all_parked(scheduler, scheduler.worker_count)   # the pure parked case
            scheduler.submit_task(Count(hits))
            assert scheduler.join(HANG), f"round {r}: a task stayed queued (lost wake-up?)"
    assert len(hits) == rounds


def test_submits_from_several_threads_never_strand_a_task():
    """Bursts from 3 submitter threads while workers keep parking (spin 0)."""
    per_thread = scaled(3000, minimum=100)
    config = SchedulerConfig(workers_per_numa_node=2, spin_us=0, enable_cpu_affinity=False)
    hits = []
    with NumaScheduler(config) as scheduler:
        def submitter():
            for i in range(per_thread):
                scheduler.submit_task(Count(hits))
                if i % 64 == 0:
                    threading.Event().wait(0.0002)     # let the workers park between bursts
        threads = [threading.Thread(target=submitter) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert scheduler.join(HANG)
    assert len(hits) == 3 * per_thread


def test_an_idle_scheduler_parks_every_worker():
    config = SchedulerConfig(workers_per_numa_node=2, spin_us=100, enable_cpu_affinity=False)
    with NumaScheduler(config) as scheduler:
        _wait_all_parked(scheduler, 2)
        hits = []
        scheduler.submit_task(Count(hits))
        assert scheduler.join(HANG) and hits == [1]
        _wait_all_parked(scheduler, 2)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_at_most_half_the_workers_spin_and_the_rest_park(workers):
    """A spinning worker on every core leaves a blocked submitter no core to
    wake up on: at most max(1, workers // 2) spin, the rest park at once, even
    with a spin window of a minute.  Tasks still run exactly once."""
    cap = max(1, workers // 2)
    config = SchedulerConfig(workers_per_numa_node=workers, spin_us=60e6, enable_cpu_affinity=False)
    hits = []
    with NumaScheduler(config) as scheduler:
        for round_ in range(3):
            if round_:
                for _ in range(scaled(2000, minimum=200)):
                    scheduler.submit_task(Count(hits))
                assert scheduler.join(HANG)
            settled = (cap, workers - cap)       # (searching, sleeping)
            for _ in range(50_000):
                if scheduler._core.idle_word == settled:
                    break
                threading.Event().wait(0.0002)
            # a worker passes through "searching" on its way to park, so only
            # the settled state is checked, and that it stays settled
            later = set()
            for _ in range(100):
                later.add(scheduler._core.idle_word)
                threading.Event().wait(0.0002)
            assert later == {settled}, f"round {round_}: expected {settled} for good, saw {sorted(later)}"
    assert len(hits) == 2 * scaled(2000, minimum=200)


def test_a_flood_costs_a_handful_of_wake_ups_not_one_per_task():
    """Submits wake a parked worker only when no worker is searching, so a
    flood of tasks (workers busy or spinning) makes a few futex wakes, not
    one per task."""
    n = scaled(100_000, minimum=5000)
    config = SchedulerConfig(workers_per_numa_node=2, spin_us=50, enable_cpu_affinity=False)
    hits = []
    with NumaScheduler(config) as scheduler:
        _wait_all_parked(scheduler, 2)
        task = Count(hits)
        for _ in range(n):
            try:
                scheduler.submit_task(task)
            except QueueFullError:        # the workers need the GIL we hold: let them drain
                assert scheduler.join(HANG)
                scheduler.submit_task(task)
        assert scheduler.join(HANG)
        wakeups = scheduler.stats().metrics.wakeups
    assert len(hits) == n
    assert 1 <= wakeups <= 50, wakeups
