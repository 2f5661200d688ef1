"""Tasks: what users subclass to run work on a NumaScheduler."""
from __future__ import annotations

import enum

__all__ = ["Task", "TaskResult"]


class TaskResult(enum.IntEnum):
    """What ``Task.execute()`` reports.  Returning None counts as SUCCESS.

    >>> TaskResult.RETRY
    <TaskResult.RETRY: 2>
    """

    SUCCESS = 0
    FAILED = 1
    #: run the task again later, at most ``SchedulerConfig.max_retries`` times
    RETRY = 2


class Task:
    """A unit of work for a NumaScheduler: subclass it and override ``execute()``.

    ``priority()`` (0..255, higher runs first), ``estimated_duration_us()``
    (feeds the load balancer) and ``preferred_node()`` (a NUMA node id, or
    None for the least loaded node) are optional.  The scheduler looks these
    methods up on the class: one it does not override costs nothing per
    submit.

    An exception raised by ``execute()`` counts as a failure, is handed to the
    scheduler's ``on_error`` callback and kept in ``stats().recent_errors``;
    the worker carries on.

    >>> class Add(Task):
    ...     def __init__(self, a, b, out):
    ...         self.a, self.b, self.out = a, b, out
    ...     def execute(self):
    ...         self.out.append(self.a + self.b)
    ...     def priority(self):
    ...         return 5
    >>> out = []
    >>> Add(2, 3, out).execute(); out
    [5]
    """

    __slots__ = ()

    def execute(self) -> TaskResult | None:
        """Do the work.  Return None or a TaskResult."""
        raise NotImplementedError(f"{type(self).__name__} must override execute()")

    def priority(self) -> int:
        """0..255; higher runs first.  Default 0."""
        return 0

    def estimated_duration_us(self) -> float:
        """Expected run time in microseconds, for load balancing.  Default 100."""
        return 100

    def preferred_node(self) -> int | None:
        """NUMA node id to run on, or None (the least loaded node).  Default None."""
        return None
