"""Tasks and helpers shared by the scheduler tests (test_scheduler*.py,
test_executor.py)."""
import threading

from tallyio import NumaScheduler, QueueFullError, SchedulerConfig, SchedulerStats, Task


def make_config(**overrides) -> SchedulerConfig:
    """Affinity off unless a test is about it: pinning is tested on its own,
    and the tests should not depend on which CPUs this process may use."""
    overrides.setdefault("enable_cpu_affinity", False)
    return SchedulerConfig(**overrides)


def submit_blocking(scheduler: NumaScheduler, task: Task) -> None:
    """submit_task, waiting (without holding the GIL) while the queues are full."""
    while True:
        try:
            scheduler.submit_task(task)
            return
        except QueueFullError:
            scheduler.join(0.001)


def assert_identities(stats: SchedulerStats) -> None:
    """The identities stats.py promises once a scheduler has stopped."""
    m = stats.metrics
    assert m.tasks_submitted == m.tasks_processed + m.tasks_cancelled, m
    assert m.tasks_processed == m.tasks_succeeded + m.tasks_failed, m
    assert sum(w.processed for w in stats.workers) == m.tasks_processed


class Count(Task):
    """Adds one to its slot of a shared array each time it runs."""

    __slots__ = ("i", "counts")

    def __init__(self, i, counts):
        self.i, self.counts = i, counts

    def execute(self):
        self.counts[self.i] += 1


class Gate(Task):
    """Blocks its worker until released: holds work back in the queues.
    ``node``: the NUMA node id it asks to run on (None: anywhere)."""

    def __init__(self, node=None):
        self.node = node
        self.started, self.release = threading.Event(), threading.Event()
        self.finished = False

    def execute(self):
        self.started.set()
        assert self.release.wait(10), "gate never released"
        self.finished = True

    def preferred_node(self):
        return self.node
