"""Snapshots of a NumaScheduler's counters: what ``NumaScheduler.stats()`` returns.

Counters live in C, one cache line per worker, and are merged on read; reading
never stops the workers, so a snapshot taken while tasks run is only
approximately consistent.  After ``stop()`` these identities hold exactly::

    metrics.tasks_submitted == metrics.tasks_processed + metrics.tasks_cancelled
    metrics.tasks_processed == metrics.tasks_succeeded + metrics.tasks_failed

and for the awaitable path (``run``/``submit_async``), once every loop that
used it has drained or closed::

    metrics.async_submitted == (metrics.async_delivered + metrics.async_dropped
                                + metrics.async_cancelled + metrics.async_orphaned)
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SchedulerMetrics", "WorkerStats", "Percentiles", "TaskError", "SchedulerStats"]


@dataclass(frozen=True)
class SchedulerMetrics:
    """Scheduler-wide counters (sums over workers)."""

    tasks_submitted: int = 0     #: accepted by submit_task/submit/native submit (retries not counted)
    tasks_processed: int = 0     #: finished: succeeded + failed
    tasks_succeeded: int = 0
    tasks_failed: int = 0        #: raised, returned FAILED, or ran out of retries
    tasks_retried: int = 0       #: re-queues after TaskResult.RETRY
    tasks_stolen: int = 0        #: tasks moved by an idle worker's steal
    steal_attempts: int = 0      #: victims probed by idle workers
    tasks_cancelled: int = 0     #: cancelled at a cancelling stop, or futures cancelled before they ran
    tasks_migrated: int = 0      #: tasks handed to a less loaded worker by the rebalancer
    wakeups: int = 0             #: parked workers woken (one futex syscall each)
    # ---- the awaitable path (NumaScheduler.run / submit_async) ----
    async_submitted: int = 0     #: calls accepted from coroutines
    async_delivered: int = 0     #: results or exceptions set on the awaiter's future
    async_dropped: int = 0       #: ran, but the awaiter was cancelled meanwhile: result dropped
    async_cancelled: int = 0     #: awaiter cancelled before the call started: it never ran
    async_orphaned: int = 0      #: finished after its event loop closed: counted, not delivered
    loop_wakeups: int = 0        #: event-loop wake-ups, one per batch of completions


@dataclass(frozen=True)
class WorkerStats:
    """One worker's row."""

    index: int
    node: int            #: NUMA node id
    cpu: int             #: the CPU it is pinned to, or -1
    queue_size: int      #: tasks queued in its inbox bands and deque
    capacity: int        #: slots in its inbox bands and deque
    processed: int
    stolen: int
    busy_ns: int         #: time spent running tasks


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in microseconds (NaN when nothing was measured)."""

    p50: float
    p99: float
    p999: float

    @classmethod
    def from_histogram(cls, hist, ns_per_tick: float) -> "Percentiles":
        """p50, p99, p99.9 of a ``tallyio.metrics.Histogram`` of ticks, in
        microseconds (each the highest value equivalent to the one at that rank,
        so at most one cell -- 0.78 % at 2 significant digits -- pessimistic);
        NaN when ``hist`` is None or empty.

        >>> from tallyio.metrics import Histogram
        >>> h = Histogram(significant_digits=2)
        >>> h.record_n(10, 99); h.record(1000)
        >>> p = Percentiles.from_histogram(h, 1000.0)   # 1 tick = 1 us
        >>> p.p50, p.p999 > p.p99
        (10.0, True)
        >>> Percentiles.from_histogram(None, 1.0).p50 != Percentiles.from_histogram(None, 1.0).p50  # NaN
        True
        """
        if hist is None or hist.count == 0:
            nan = float("nan")
            return cls(nan, nan, nan)
        return cls(*(hist.percentile(q) * ns_per_tick / 1000.0 for q in (50.0, 99.0, 99.9)))


@dataclass(frozen=True)
class TaskError:
    """A task that failed with an exception (kept in ``stats().recent_errors``)."""

    task: object
    exception: BaseException


@dataclass(frozen=True)
class SchedulerStats:
    """A snapshot of a NumaScheduler (see the module docstring)."""

    metrics: SchedulerMetrics
    workers: tuple[WorkerStats, ...]
    elapsed_s: float                     #: seconds between start() and now (or stop)
    queue_wait_us: Percentiles           #: submit -> start of execution
    execution_us: Percentiles            #: start -> end of execution
    recent_errors: tuple[TaskError, ...] = field(default=())

    def total_queue_size(self) -> int:
        """Tasks queued across every worker."""
        return sum(w.queue_size for w in self.workers)

    def total_capacity(self) -> int:
        """Queue slots across every worker."""
        return sum(w.capacity for w in self.workers)

    def average_steal_ratio(self) -> float:
        """Share of processed tasks that an idle worker stole (0.0 .. 1.0)."""
        processed = self.metrics.tasks_processed
        return min(1.0, self.metrics.tasks_stolen / processed) if processed else 0.0

    def throughput(self) -> float:
        """Tasks processed per second since start()."""
        return self.metrics.tasks_processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<SchedulerStats {len(self.workers)} workers, {m.tasks_processed:,} processed "
                f"({m.tasks_failed:,} failed, {m.tasks_cancelled:,} cancelled), "
                f"{self.total_queue_size():,} queued, {_duration_us(self.elapsed_s * 1e6)}>")

    def __str__(self) -> str:
        """A few lines for people: counters, rates, latency percentiles with
        three significant digits, and one row per worker (the first
        ``STR_WORKER_ROWS``).

        >>> stats = SchedulerStats(
        ...     metrics=SchedulerMetrics(tasks_submitted=1000, tasks_processed=990, tasks_succeeded=985,
        ...                              tasks_failed=5, tasks_cancelled=10, tasks_stolen=120,
        ...                              steal_attempts=400, wakeups=7),
        ...     workers=(WorkerStats(0, 0, 0, 0, 73728, 500, 60, 2_000_000),
        ...              WorkerStats(1, 0, 1, 3, 73728, 490, 60, 1_500_000)),
        ...     elapsed_s=0.5, queue_wait_us=Percentiles(51.699307161469806, 120.4, 3071.9),
        ...     execution_us=Percentiles(4.25, float("nan"), float("nan")))
        >>> print(stats)
        SchedulerStats: 990 tasks processed in 500 ms (1.98k tasks/s), 3 queued of 147,456 slots
          tasks        submitted 1,000  succeeded 985  failed 5  cancelled 10  retried 0
          stealing     120 stolen (12.1 % of processed) in 400 attempts; 0 migrated; 7 wake-ups
          queue wait   p50 51.7 us  p99 120 us  p99.9 3.07 ms
          execution    p50 4.25 us  p99 -  p99.9 -
          worker  node  cpu  queued  processed  stolen   busy
               0     0    0       0        500      60  2 ms
               1     0    1       3        490      60  1.5 ms
        >>> repr(stats)
        '<SchedulerStats 2 workers, 990 processed (5 failed, 10 cancelled), 3 queued, 500 ms>'
        """
        m = self.metrics
        lines = [
            f"SchedulerStats: {m.tasks_processed:,} tasks processed in {_duration_us(self.elapsed_s * 1e6)} "
            f"({_count(self.throughput())} tasks/s), {self.total_queue_size():,} queued of "
            f"{self.total_capacity():,} slots",
            f"  tasks        submitted {m.tasks_submitted:,}  succeeded {m.tasks_succeeded:,}  "
            f"failed {m.tasks_failed:,}  cancelled {m.tasks_cancelled:,}  retried {m.tasks_retried:,}",
            f"  stealing     {m.tasks_stolen:,} stolen ({self.average_steal_ratio() * 100:.3g} % of processed) "
            f"in {m.steal_attempts:,} attempts; {m.tasks_migrated:,} migrated; {m.wakeups:,} wake-ups",
            f"  queue wait   {_percentiles(self.queue_wait_us)}",
            f"  execution    {_percentiles(self.execution_us)}",
        ]
        if m.async_submitted:
            lines.append(f"  awaitable    submitted {m.async_submitted:,}  delivered {m.async_delivered:,}  "
                         f"dropped {m.async_dropped:,}  cancelled {m.async_cancelled:,}  "
                         f"orphaned {m.async_orphaned:,}; {m.loop_wakeups:,} loop wake-ups")
        if self.recent_errors:
            last = self.recent_errors[-1]
            lines.append(f"  errors       {len(self.recent_errors)} recent, last: {last.exception!r} "
                         f"in {_short(repr(last.task))}")
        rows = [("worker", "node", "cpu", "queued", "processed", "stolen", "busy")]
        rows += [(str(w.index), str(w.node), str(w.cpu), f"{w.queue_size:,}", f"{w.processed:,}",
                  f"{w.stolen:,}", _duration_us(w.busy_ns / 1000.0)) for w in self.workers[:STR_WORKER_ROWS]]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if len(self.workers) > STR_WORKER_ROWS:
            lines.append(f"  ... and {len(self.workers) - STR_WORKER_ROWS} more workers (stats.workers has them all)")
        return "\n".join(lines)


#: str(SchedulerStats) shows at most this many worker rows
STR_WORKER_ROWS = 16


def _duration_us(us: float) -> str:
    """Three significant digits in us, ms or s; '-' for NaN (nothing measured)."""
    if us != us:
        return "-"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} us"


def _percentiles(p: Percentiles) -> str:
    return f"p50 {_duration_us(p.p50)}  p99 {_duration_us(p.p99)}  p99.9 {_duration_us(p.p999)}"


def _count(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
