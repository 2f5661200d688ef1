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

import operator
from typing import TYPE_CHECKING, Any, NamedTuple

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
        # no reference to the scheduler itself: the scheduler holds its
        # balancer, and a cycle would leave a stopped scheduler (and its
        # queues) to the cyclic GC.  The core and the node layout suffice.
        self._core = scheduler._core
        self._node_ids = list(scheduler._node_ids)
        self._workers_of = {node_id: scheduler._workers_of_node(node_id) for node_id in self._node_ids}

    def load(self, worker: int) -> Load:
        """Load of worker index ``worker`` (0 .. workers - 1): its queued tasks,
        counting each until it has run (the one running included)."""
        tasks, us = self._core.load(self._worker_index(worker))
        return Load(tasks, us)

    def node_load(self, node: int) -> Load:
        """Queued load of NUMA node id ``node``: the sum over its workers."""
        indices = self._workers_of[self._node_id(node)]
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
        return self._core.select_worker(self._node_ids.index(self._node_id(preferred_node)))

    def _node_id(self, node: Any) -> int:
        """A NUMA node id of this scheduler (ints, numpy integers too)."""
        if not isinstance(node, bool):
            try:
                node_id = operator.index(node)
            except TypeError:
                pass
            else:
                if node_id in self._workers_of:
                    return node_id
        raise ValueError(f"node {node!r} is not one of this scheduler's nodes {self._node_ids}")

    def _worker_index(self, worker: Any) -> int:
        if isinstance(worker, bool):
            raise TypeError(f"worker must be an int index, got {worker!r}")
        try:
            worker = operator.index(worker)
        except TypeError:
            raise TypeError(f"worker must be an int index, got {worker!r}") from None
        if not 0 <= worker < self._core.nworkers:
            raise IndexError(f"worker {worker} does not exist (this scheduler has {self._core.nworkers})")
        return worker
