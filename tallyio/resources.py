"""What a scheduler layout costs, and what this machine can give: the memory and
thread check that runs before a :class:`~tallyio.NumaScheduler` allocates
anything, so a setting that cannot fit ends in a clear
:class:`~tallyio.errors.ResourceLimitError` instead of the kernel's OOM killer.

Owns: the byte estimate of a scheduler (it mirrors the allocations of
``tallyio/_ext/scheduler.pyx``: keep the two in step) and the reading of the
machine's limits (RAM, cgroup memory limit, thread limits).  Touches nothing
else; imports only the errors.

    >>> from tallyio.resources import scheduler_memory_bytes
    >>> scheduler_memory_bytes(workers=4, queue_capacity=8192) // 2**20   # the default layout, in MiB
    15
"""
from __future__ import annotations

import os
import resource
from typing import NamedTuple

from tallyio.errors import ResourceLimitError

__all__ = ["SchedulerFootprint", "scheduler_footprint", "scheduler_memory_bytes", "machine_memory_bytes",
           "machine_thread_limit", "check_scheduler_fits"]

# ---- the allocations of tallyio/_ext/scheduler.pyx, per worker (see SchedulerCore.__init__
# and worker_main); sizes of the C structs on x86-64 / aarch64 (LP64) -----------------
BANDS = 8                    # TIO_BANDS: one MPMC inbox ring per priority band
MPMC_SLOT_BYTES = 16         # tio_mpmc_slot: sequence + value
MPMC_HEADER_BYTES = 3 * 128  # tio_mpmc: three cache lines
DEQUE_SLOT_BYTES = 8         # one tio_atomic_u64 per Chase-Lev slot
DEQUE_HEADER_BYTES = 3 * 128
TASK_RECORD_BYTES = 32 + 5   # tio_task (32 bytes, stride 32) + the pool's next[] (4) and state[] (1)
POOL_CACHE_RECORDS = 32      # TIO_POOL_CACHE_SIZE: records a thread's magazine may hold
STASH_BYTES = 1024 * 8       # TIO_STASH_MAX pointers
HISTOGRAM_BYTES = 2 * 58368  # wait and exec histograms: a tio_hist each (tallyio/_ext/include/tio_hist.h)
WORKER_STRUCT_BYTES = 2048   # tio_worker: padded cache lines, counters, the magazine
# per victim: a uint32 in the C victim list, and a list slot (8) in the Python layout
VICTIM_BYTES = 4 + 8
# Python side of a worker: its threading.Thread, frames, the committed part of its stack
PYTHON_WORKER_BYTES = 64 * 1024

_NO_LIMIT = 1 << 60          # cgroup v1 writes "no limit" as a huge number


class SchedulerFootprint(NamedTuple):
    """Bytes a scheduler layout needs, by what they hold."""

    queues: int      #: the inbox rings (8 bands) and the deque of every worker
    records: int     #: one task record per queue slot, plus the per-thread caches
    victims: int     #: steal lists: every worker lists every other worker
    per_worker: int  #: fixed costs: worker state, histograms, stash, Python thread

    @property
    def total(self) -> int:
        return self.queues + self.records + self.victims + self.per_worker


def _pow2_at_least(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


def scheduler_footprint(workers: int, queue_capacity: int) -> SchedulerFootprint:
    """The bytes ``workers`` workers with ``queue_capacity`` slots per queue
    allocate (capacity rounded up to a power of two, as the core does).
    O(1): callable with any sizes, before anything is allocated.

    >>> f = scheduler_footprint(workers=4, queue_capacity=2**24)
    >>> round(f.total / 2**30, 1), round(f.queues / f.total, 2)
    (29.3, 0.29)
    """
    capacity = _pow2_at_least(queue_capacity)
    queues = workers * (BANDS * (MPMC_HEADER_BYTES + capacity * MPMC_SLOT_BYTES)
                        + DEQUE_HEADER_BYTES + capacity * DEQUE_SLOT_BYTES)
    records = (workers * (BANDS + 1) * capacity + (workers + 1) * POOL_CACHE_RECORDS) * TASK_RECORD_BYTES
    victims = workers * max(0, workers - 1) * VICTIM_BYTES
    per_worker = workers * (WORKER_STRUCT_BYTES + STASH_BYTES + HISTOGRAM_BYTES + PYTHON_WORKER_BYTES)
    return SchedulerFootprint(queues, records, victims, per_worker)


def scheduler_memory_bytes(workers: int, queue_capacity: int) -> int:
    """Total of :func:`scheduler_footprint`."""
    return scheduler_footprint(workers, queue_capacity).total


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None    # "max" (cgroup v2: no limit) -> None


def machine_memory_bytes() -> tuple[int, str] | None:
    """``(bytes, what)``: the memory this process can ever have -- the smaller
    of the machine's RAM and its cgroup's memory limit -- and a phrase saying
    which one it is; ``None`` when the platform does not say.

    >>> limit = machine_memory_bytes()
    >>> limit is None or (limit[0] > 0 and "RAM" in limit[1] or "cgroup" in limit[1])
    True
    """
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = 0
    best: tuple[int, str] | None = (physical, f"this machine's {_gib(physical)} of RAM") if physical > 0 else None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_int(path)
        if limit is not None and 0 < limit < _NO_LIMIT and (best is None or limit < best[0]):
            best = (limit, f"the {_gib(limit)} memory limit of this process's cgroup ({path})")
    return best


def machine_thread_limit() -> tuple[int, str] | None:
    """``(threads, what)``: the most threads this process may start, from
    ``RLIMIT_NPROC`` and ``/proc/sys/kernel/threads-max`` (the smaller), or
    ``None`` when neither sets a limit."""
    best: tuple[int, str] | None = None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    except (ValueError, OSError, AttributeError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY and soft > 0:
        best = (soft, f"the process limit RLIMIT_NPROC={soft} (ulimit -u)")
    threads_max = _read_int("/proc/sys/kernel/threads-max")
    if threads_max and (best is None or threads_max < best[0]):
        best = (threads_max, f"the kernel's threads-max={threads_max}")
    return best


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_scheduler_fits(*, workers_per_numa_node: int, nodes: int, queue_capacity: int) -> None:
    """Raise :class:`~tallyio.errors.ResourceLimitError` (a ``ConfigError``
    and a ``MemoryError``) naming the fields, the need and the machine's
    limit when ``workers_per_numa_node`` workers on each of ``nodes`` nodes
    with ``queue_capacity`` slots per queue need more memory or threads than
    this machine can ever give.  O(1); allocates nothing.

    >>> check_scheduler_fits(workers_per_numa_node=2, nodes=1, queue_capacity=8192)
    >>> check_scheduler_fits(workers_per_numa_node=1024, nodes=64, queue_capacity=2**22)
    Traceback (most recent call last):
    ...
    tallyio.errors.ResourceLimitError: NumaScheduler: workers_per_numa_node=1024 x 64 node(s) = 65536 workers with queue_capacity=4194304 need about 120124.0 GiB, more than ...
    """  # noqa: E501 (the doctest's expected output is verbatim)
    workers = workers_per_numa_node * nodes
    footprint = scheduler_footprint(workers, queue_capacity)
    layout = (f"workers_per_numa_node={workers_per_numa_node} x {nodes} node(s) = {workers} workers "
              f"with queue_capacity={queue_capacity}")
    memory = machine_memory_bytes()
    if memory is not None and footprint.total > memory[0]:
        raise ResourceLimitError(
            f"NumaScheduler: {layout} need about {_gib(footprint.total)}, more than {memory[1]}: "
            f"{_gib(footprint.queues)} of queues ({BANDS} priority bands + a deque per worker, each of "
            f"{_pow2_at_least(queue_capacity)} slots), {_gib(footprint.records)} of task records (one per slot), "
            f"{_gib(footprint.victims)} of steal lists (workers squared) and {_gib(footprint.per_worker)} of "
            f"per-worker state; lower queue_capacity or workers_per_numa_node")
    threads = machine_thread_limit()
    if threads is not None and workers > threads[0]:
        raise ResourceLimitError(f"NumaScheduler: {layout} need {workers} threads, more than {threads[1]}; "
                                 f"lower workers_per_numa_node (or use numa_enabled=False / fewer nodes)")
