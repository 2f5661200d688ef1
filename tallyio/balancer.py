"""LoadBalancer: the Python face of the load counters the C core keeps per worker.

Each worker's load is the number of tasks queued on it and the sum of their
``estimated_duration_us()``, kept in atomics that submitters, the worker and
thieves update.  Placement (done in C on every submit) picks the least loaded
node per worker, or the task's preferred node, then the less loaded of two
random workers there.  A busy worker whose load exceeds the least loaded one
by more than ``load_balance_threshold`` (as a share of its own load) hands
half the difference over.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from tallyio.scheduler import NumaScheduler

__all__ = ["LoadBalancer", "Load"]


class Load(NamedTuple):
    """Queued work: tasks and their estimated microseconds."""

    tasks: int
    estimated_us: int


class LoadBalancer:
    """Reads (never changes) the load of a NumaScheduler's workers and nodes.

    >>> from tallyio import NumaScheduler, SchedulerConfig
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as s:
    ...     b = s.balancer
    ...     b.load(0).tasks >= 0, 0.0 <= b.imbalance() <= 1.0, b.select_worker() in (0, 1)
    (True, True, True)
    """

    def __init__(self, scheduler: NumaScheduler) -> None:
        self._scheduler = scheduler
        self._core = scheduler._core

    def load(self, worker: int) -> Load:
        """Load of worker index ``worker`` (0 .. workers - 1): its queued tasks,
        counting each until it has run (the one running included)."""
        tasks, us = self._core.load(self._worker_index(worker))
        return Load(tasks, us)

    def node_load(self, node: int) -> Load:
        """Queued load of NUMA node id ``node``: the sum over its workers."""
        indices = self._scheduler._workers_of_node(node)
        tasks = us = 0
        for i in indices:
            t, u = self._core.load(i)
            tasks += t
            us += u
        return Load(tasks, us)

    def imbalance(self) -> float:
        """(max - min) / max of the workers' queued microseconds; 0.0 when idle."""
        loads = [self._core.load(i)[1] for i in range(self._core.nworkers)]
        top = max(loads)
        return (top - min(loads)) / top if top else 0.0

    def select_worker(self, preferred_node: int | None = None) -> int:
        """The worker index a submit would go to now (preferred_node: a NUMA node id)."""
        if preferred_node is None:
            return self._core.select_worker(-1)
        return self._core.select_worker(self._scheduler._node_index(preferred_node))

    def _worker_index(self, worker: int) -> int:
        if isinstance(worker, bool) or not isinstance(worker, int):
            raise TypeError(f"worker must be an int index, got {worker!r}")
        if not 0 <= worker < self._core.nworkers:
            raise IndexError(f"worker {worker} does not exist (this scheduler has {self._core.nworkers})")
        return worker
