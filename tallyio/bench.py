"""Side-by-side benchmarks of tallyio against what a Python user would
otherwise pick, measured in one process run, alternating the contenders.

    tallyio bench                      # full run, every group
    tallyio bench --quick              # fewer, shorter repetitions (about a minute)
    tallyio bench --smoke              # tiny sizes: proves every benchmark runs (CI)
    tallyio bench --group scheduler    # one group only (core, scheduler)
    tallyio bench --json out.json

Groups:

* ``core``: the queues, the deque and the pool.  C-level figures are
  nanoseconds per operation inside nogil loops (``tallyio._ext._testing.bench_*``);
  Python-level figures are the cost per call from Python next to the stdlib
  peer (``queue.SimpleQueue``, ``collections.deque``, ``bytearray``).
* ``scheduler``: ``NumaScheduler`` with 2 workers against
  ``concurrent.futures.ThreadPoolExecutor(2)`` and an asyncio loop running in
  another thread fed by ``loop.call_soon_threadsafe``: no-op task throughput,
  the cost of one submit, GIL-releasing tasks (``hashlib.sha256`` of 16 KiB)
  against a serial loop, native nogil tasks (``tallyio._ext.native_example``),
  submit-to-start latency with spinning and with parked workers, priority
  isolation under a flood, and memory (tracemalloc, RSS).

Every figure is the median of several repetitions; the spread is
(max-min)/median; within a repetition the contenders run one after the
other, each set up (threads started) outside its timing.  The ratio of a
peer says how many times better tallyio's figure is (> 1: tallyio better),
whichever way the unit points.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import gc
import hashlib
import json
import math
import os
import platform
import queue
import statistics
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from itertools import repeat
from time import perf_counter_ns
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from tallyio.config import SchedulerConfig
from tallyio.scheduler import NumaScheduler
from tallyio.task import Task

__all__ = ["Figure", "Target", "GROUPS", "run", "machine_description", "format_table", "to_json"]

#: the benchmark groups `run` knows, in the order they run
GROUPS = ("core", "scheduler")

# the workloads are defined for 2 workers on a 2-core machine
WORKERS = 2
TPE_NAME = f"ThreadPoolExecutor({WORKERS})"
ASYNCIO_NAME = "asyncio call_soon_threadsafe"


# ---- figures ----------------------------------------------------------------------------

@dataclass
class Target:
    """A goal for a figure: its median (or, with ``peer``, its ratio to that
    peer) must reach ``bound``, in the direction the figure's unit points."""

    bound: float
    peer: str | None = None

    def met(self, figure: Figure) -> bool | None:
        if figure.skipped or not figure.samples:
            return None
        if self.peer is not None:
            ratio = figure.ratio(self.peer)
            return None if ratio is None else ratio >= self.bound
        if figure.higher_is_better:
            return figure.median >= self.bound
        return figure.median <= self.bound

    def describe(self, figure: Figure) -> str:
        if self.peer is not None:
            return f">= {self.bound:g}x {self.peer}"
        return f"{'>=' if figure.higher_is_better else '<='} {_format_value(self.bound, figure.unit)}"


@dataclass
class Figure:
    """One measured figure: tallyio's ``samples`` (one per repetition, in
    ``unit``) and each peer's samples from the same repetitions.

    >>> f = Figure("g", "no-op tasks", [2e6, 3e6, 2.5e6], unit="tasks/s", higher_is_better=True,
    ...            peers={"ThreadPoolExecutor(2)": [1e5, 1.2e5, 1e5]})
    >>> f.median, round(f.ratio("ThreadPoolExecutor(2)"), 1)
    (2500000.0, 25.0)
    """

    group: str
    case: str
    samples: list[float] = field(default_factory=list)
    unit: str = "ns/op"
    higher_is_better: bool = False
    #: peer name -> samples, measured in the same repetitions as `samples`
    peers: dict[str, list[float]] = field(default_factory=dict)
    #: why the figure could not be measured (then `samples` is empty)
    skipped: str | None = None
    targets: list[Target] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def spread(self) -> float:
        return _spread(self.samples)

    def peer_median(self, peer: str) -> float:
        return statistics.median(self.peers[peer])

    def peer_spread(self, peer: str) -> float:
        return _spread(self.peers[peer])

    def ratio(self, peer: str) -> float | None:
        """How many times better tallyio's median is than ``peer``'s (> 1: tallyio better)."""
        if not self.samples or not self.peers.get(peer):
            return None
        mine, theirs = self.median, self.peer_median(peer)
        better, worse = (mine, theirs) if self.higher_is_better else (theirs, mine)
        return better / worse if worse else None


def _spread(samples: Sequence[float]) -> float:
    if not samples:
        return math.nan
    middle = statistics.median(samples)
    return (max(samples) - min(samples)) / middle if middle else 0.0


def machine_description() -> dict:
    """CPU model, core count, NUMA nodes, Python and tallyio versions."""
    import tallyio

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nodes = len([d for d in os.listdir("/sys/devices/system/node") if d.startswith("node")])
    except OSError:
        nodes = 1
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numa_nodes": nodes,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "tallyio": tallyio.__version__,
    }


def _alternate(contenders: Sequence[tuple[str, Callable[[], Mapping[str, float]]]], reps: int,
               say: Callable[[str], None], label: str) -> dict[str, dict[str, list[float]]]:
    """Run each contender once per repetition, one after the other, ``reps``
    times.  A contender returns ``{case: value}``; the result is
    ``{contender: {case: [value per repetition]}}``."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name, _ in contenders}
    for rep in range(reps):
        for name, measure in contenders:
            say(f"{label}: {name} (repetition {rep + 1}/{reps})")
            for case, value in measure().items():
                samples[name].setdefault(case, []).append(value)
    return samples


def _figures(group: str, samples: dict[str, dict[str, list[float]]], cases: Sequence[tuple[str, str]], *,
             unit: str, higher_is_better: bool, mine: str = "tallyio",
             targets: Mapping[str, list[Target]] | None = None) -> list[Figure]:
    """One Figure per ``(key, case label)``: ``mine``'s samples for that key,
    every other contender that measured the key as a peer."""
    figures = []
    for key, label in cases:
        peers = {name: by_case[key] for name, by_case in samples.items() if name != mine and key in by_case}
        figures.append(Figure(group, label, samples[mine][key], unit=unit, higher_is_better=higher_is_better,
                              peers=peers, targets=list((targets or {}).get(key, []))))
    return figures


# ---- core: Python-level contenders, each runs `calls` iterations of one round trip ----

def _per_call_ns(fn: Callable[[int], None], calls: int) -> float:
    start = perf_counter_ns()
    fn(calls)
    return (perf_counter_ns() - start) / calls


def _spsc_roundtrip(calls: int) -> None:
    from tallyio import SpscQueue
    q = SpscQueue(1024)
    put, get, item = q.put_nowait, q.get_nowait, object()
    for _ in range(calls):
        put(item)
        get()


def _mpmc_roundtrip(calls: int) -> None:
    from tallyio import MpmcQueue
    q = MpmcQueue(1024)
    put, get, item = q.put_nowait, q.get_nowait, object()
    for _ in range(calls):
        put(item)
        get()


def _simplequeue_roundtrip(calls: int) -> None:
    q = queue.SimpleQueue()
    put, get, item = q.put, q.get, object()
    for _ in range(calls):
        put(item)
        get()


def _deque_push_pop(calls: int) -> None:
    from tallyio import WorkStealingDeque
    d = WorkStealingDeque(1024)
    push, pop, item = d.push, d.pop, object()
    for _ in range(calls):
        push(item)
        pop()


def _collections_deque_append_pop(calls: int) -> None:
    d = collections.deque()
    push, pop, item = d.append, d.pop, object()
    for _ in range(calls):
        push(item)
        pop()


def _pool_alloc_free(calls: int) -> None:
    from tallyio import MemoryPool
    pool = MemoryPool(256, 64)
    alloc, free = pool.alloc, pool.free
    for _ in range(calls):
        free(alloc())


def _bytearray_256(calls: int) -> None:
    for _ in range(calls):
        bytearray(256)


def _batch(cls_name: str) -> Callable[[int], None]:
    def run_batch(items: int) -> None:
        import tallyio
        cls = getattr(tallyio, cls_name)
        q = cls(4096, dtype="uint64")
        src = np.arange(4096, dtype=np.uint64)
        out = np.empty(4096, dtype=np.uint64)
        put, get = q.put_many, q.get_many
        for _ in range(max(1, items // 4096)):
            put(src)
            get(out)
    return run_batch


def _deque_batch(items: int) -> None:
    from tallyio import WorkStealingDeque
    d = WorkStealingDeque(4096, dtype="uint64")
    src = np.arange(4096, dtype=np.uint64)
    out = np.empty(4096, dtype=np.uint64)
    for _ in range(max(1, items // 4096)):
        d.push_many(src)
        d.pop_many(out)


PYTHON_CASES = [
    # (case, tallyio contender, peer name, peer contender, calls per repetition)
    ("SpscQueue put_nowait+get_nowait", _spsc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("MpmcQueue put_nowait+get_nowait", _mpmc_roundtrip, "queue.SimpleQueue put+get", _simplequeue_roundtrip, 200_000),
    ("WorkStealingDeque push+pop", _deque_push_pop, "collections.deque append+pop", _collections_deque_append_pop, 200_000),
    ("MemoryPool alloc+free (256 B)", _pool_alloc_free, "bytearray(256)", _bytearray_256, 200_000),
]
BATCH_CASES = [
    ("SpscQueue put_many+get_many, per item", _batch("SpscQueue"), 4096 * 400),
    ("MpmcQueue put_many+get_many, per item", _batch("MpmcQueue"), 4096 * 400),
    ("WorkStealingDeque push_many+pop_many, per item", _deque_batch, 4096 * 400),
]


def _core_figures(mode: str, say: Callable[[str], None]) -> list[Figure]:
    from tallyio._ext import _testing

    reps = {"smoke": 2, "quick": 5, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    figures: list[Figure] = []

    # C level: each bench_<component>(n) returns {case: ns per op}
    c_ops = max(1000, 2_000_000 // shrink)
    for component in ("spsc", "mpmc", "deque", "pool"):
        fn = getattr(_testing, f"bench_{component}")
        samples = _alternate([("tallyio", lambda: fn(c_ops))], reps, say, f"C level: {component}")
        cases = [(case, case) for case in samples["tallyio"]]
        figures += _figures(f"C level, {component}", samples, cases, unit="ns/op", higher_is_better=False)

    # Python level, alternating tallyio and the peer within each repetition
    for case, mine, peer_name, peer, calls in PYTHON_CASES:
        n = max(100, calls // shrink)
        samples = _alternate([("tallyio", lambda: {case: _per_call_ns(mine, n)}),
                              (peer_name, lambda: {case: _per_call_ns(peer, n)})],
                             reps, say, f"Python level: {case}")
        figures += _figures("Python level, per call", samples, [(case, case)], unit="ns/op", higher_is_better=False)
    for case, fn, items in BATCH_CASES:
        n = max(4096, items // shrink)
        samples = _alternate([("tallyio", lambda: {case: _per_call_ns(fn, n)})], reps, say, f"Python level: {case}")
        figures += _figures("Python level, batch", samples, [(case, case)], unit="ns/op", higher_is_better=False)
    return figures


# ---- scheduler: sizes ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sizes:
    reps: int
    noop_tasks: int          # a: tasks per throughput run (the issue fixes 100k)
    submit_batch: int        # b: submits per timed batch
    submit_batches: int      # b: batches per repetition (the sample is their median)
    sha_tasks: int           # c: hashes per run
    native_tasks: int        # d: native tasks per run
    spin_probes: int         # e: latency probes, spinning workers
    parked_probes: int       # e: latency probes, parked workers (2 ms apart)
    priority_probes: int     # f: priority-255 probes under the flood
    alloc_tasks: int         # g: tasks traced by tracemalloc
    rss_tasks: int           # g: tasks over which RSS is sampled (10 samples)


_SIZES = {
    "full": _Sizes(reps=9, noop_tasks=100_000, submit_batch=1000, submit_batches=40, sha_tasks=4000,
                   native_tasks=2_000_000, spin_probes=5000, parked_probes=500, priority_probes=1000,
                   alloc_tasks=100_000, rss_tasks=10_000_000),
    "quick": _Sizes(reps=5, noop_tasks=100_000, submit_batch=1000, submit_batches=20, sha_tasks=2000,
                    native_tasks=1_000_000, spin_probes=2000, parked_probes=200, priority_probes=300,
                    alloc_tasks=100_000, rss_tasks=1_000_000),
    "smoke": _Sizes(reps=2, noop_tasks=1000, submit_batch=100, submit_batches=3, sha_tasks=50,
                    native_tasks=10_000, spin_probes=50, parked_probes=10, priority_probes=20,
                    alloc_tasks=2000, rss_tasks=20_000),
}

PARKED_GAP_S = 0.002        # e: pause between probes, long enough for every worker to park
PRIORITY_GAP_S = 0.0005     # f: pause between priority probes
FLOOD_LOW, FLOOD_BURST = 1000, 500   # f: top the flood up by a burst whenever fewer are queued
FLOOD_NATIVE_WORK_ITERS = 1000       # f: ~2.5 us per native flood task here, so 1000 queued last a while
SHA_BYTES = 16 * 1024       # c: above hashlib's 2 KiB threshold, so it releases the GIL
PROBE_TIMEOUT_S = 10.0      # a probe that never runs is a failure, not a hang


# ---- scheduler: tasks and contenders -------------------------------------------------------

def _noop() -> None:
    pass


class _LatencyProbe:
    """A callable that records when it starts running, then lets the
    submitter, blocked in wait(), go on."""

    __slots__ = ("started_ns", "_done")

    def __init__(self) -> None:
        self.started_ns = 0
        self._done = threading.Lock()
        self._done.acquire()

    def __call__(self) -> None:
        self.started_ns = perf_counter_ns()
        self._done.release()

    def wait(self) -> None:
        if not self._done.acquire(timeout=PROBE_TIMEOUT_S):
            raise RuntimeError(f"a latency probe did not run within {PROBE_TIMEOUT_S} s")


class _NoopTask(Task):
    __slots__ = ()

    def execute(self) -> None:
        pass


class _Sha256Task(Task):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def execute(self) -> None:
        hashlib.sha256(self.data).digest()


class _ProbeTask(Task):
    __slots__ = ("probe",)

    def __init__(self, probe: _LatencyProbe) -> None:
        self.probe = probe

    def execute(self) -> None:
        self.probe()


class _UrgentProbeTask(_ProbeTask):
    __slots__ = ()

    def priority(self) -> int:
        return 255


@contextlib.contextmanager
def _tallyio(workers: int = WORKERS, **config: Any) -> Iterator[NumaScheduler]:
    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=workers, **config)).start()
    try:
        yield scheduler
    finally:
        scheduler.stop(wait=True)


@contextlib.contextmanager
def _thread_pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    executor = concurrent.futures.ThreadPoolExecutor(WORKERS)
    try:
        # it starts its threads on demand: start them outside the timing
        concurrent.futures.wait([executor.submit(time.sleep, 0.001) for _ in range(WORKERS)])
        yield executor
    finally:
        executor.shutdown(wait=True)


@contextlib.contextmanager
def _loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tallyio-bench-loop", daemon=True)
    thread.start()
    try:
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        ran.wait()
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _next_pow2(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


# ---- a. no-op throughput ------------------------------------------------------------------

def _noop_capacity(n: int) -> int:
    # a burst from one thread outruns the workers (they wait for the submitter's
    # GIL), so each worker's inbox must hold its share of the whole burst
    return max(8192, _next_pow2(-(-n // WORKERS)))


def _throughput_tallyio(n: int) -> dict[str, float]:
    with _tallyio(queue_capacity=_noop_capacity(n)) as scheduler:
        task, submit = _NoopTask(), scheduler.submit_task
        for _ in repeat(None, min(n, 1000)):
            submit(task)
        scheduler.join()
        start = perf_counter_ns()
        for _ in repeat(None, n):
            submit(task)
        scheduler.join()
        return {"noop": n * 1e9 / (perf_counter_ns() - start)}


def _throughput_thread_pool(n: int) -> dict[str, float]:
    with _thread_pool() as executor:
        submit = executor.submit
        start = perf_counter_ns()
        futures = [submit(_noop) for _ in repeat(None, n)]
        concurrent.futures.wait(futures)
        return {"noop": n * 1e9 / (perf_counter_ns() - start)}


def _throughput_asyncio(n: int) -> dict[str, float]:
    with _loop_thread() as loop:
        done = threading.Event()
        call = loop.call_soon_threadsafe
        start = perf_counter_ns()
        for _ in repeat(None, n - 1):
            call(_noop)
        call(done.set)          # the loop runs callbacks in order: the last one ends the run
        done.wait()
        return {"noop": n * 1e9 / (perf_counter_ns() - start)}


# ---- b. submit cost ------------------------------------------------------------------------

def _batch_median_ns(submit: Callable[[Any], Any], item: Any, drain: Callable[[list], Any],
                     batch: int, batches: int) -> float:
    """Median over `batches` of the per-call cost of `batch` submits (the
    list comprehension is the same for every contender); `drain` waits, outside
    the timing, until the batch has run."""
    per_call = []
    for _ in range(batches):
        start = perf_counter_ns()
        handles = [submit(item) for _ in repeat(None, batch)]
        per_call.append((perf_counter_ns() - start) / batch)
        drain(handles)
    return statistics.median(per_call)


def _submit_cost_tallyio(s: _Sizes) -> dict[str, float]:
    with _tallyio() as scheduler:
        task = _NoopTask()
        return {"submit": _batch_median_ns(scheduler.submit_task, task, lambda _: scheduler.join(),
                                           s.submit_batch, s.submit_batches)}


def _submit_cost_thread_pool(s: _Sizes) -> dict[str, float]:
    with _thread_pool() as executor:
        return {"submit": _batch_median_ns(executor.submit, _noop, concurrent.futures.wait,
                                           s.submit_batch, s.submit_batches)}


def _submit_cost_asyncio(s: _Sizes) -> dict[str, float]:
    with _loop_thread() as loop:
        def drain(_: list) -> None:
            done = threading.Event()
            loop.call_soon_threadsafe(done.set)
            done.wait()
        return {"submit": _batch_median_ns(loop.call_soon_threadsafe, _noop, drain,
                                           s.submit_batch, s.submit_batches)}


# ---- c. GIL-releasing tasks -------------------------------------------------------------

def _sha256_figures(s: _Sizes, say: Callable[[str], None]) -> list[Figure]:
    """hashlib.sha256 of 16 KiB, n times: a serial loop, then tallyio, a thread
    pool and two plain threads; each parallel run's speedup is over the serial
    loop of the same repetition."""
    data = os.urandom(SHA_BYTES)
    n = s.sha_tasks
    sha256 = hashlib.sha256
    serial_ns: list[float] = []

    def serial() -> dict[str, float]:
        start = perf_counter_ns()
        for _ in repeat(None, n):
            sha256(data).digest()
        serial_ns.append(perf_counter_ns() - start)
        return {"us_per_hash": serial_ns[-1] / n / 1000}

    def speedup(elapsed_ns: int) -> dict[str, float]:
        return {"speedup": serial_ns[-1] / elapsed_ns}

    def hash_once() -> None:
        sha256(data).digest()

    def tallyio() -> dict[str, float]:
        with _tallyio() as scheduler:
            task, submit = _Sha256Task(data), scheduler.submit_task
            start = perf_counter_ns()
            for _ in repeat(None, n):
                submit(task)
            scheduler.join()
            return speedup(perf_counter_ns() - start)

    def thread_pool() -> dict[str, float]:
        with _thread_pool() as executor:
            start = perf_counter_ns()
            concurrent.futures.wait([executor.submit(hash_once) for _ in repeat(None, n)])
            return speedup(perf_counter_ns() - start)

    def plain_threads() -> dict[str, float]:
        def share(count: int) -> None:
            for _ in repeat(None, count):
                sha256(data).digest()
        threads = [threading.Thread(target=share, args=(n // WORKERS + (i < n % WORKERS),))
                   for i in range(WORKERS)]
        start = perf_counter_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return speedup(perf_counter_ns() - start)

    threads_name = f"{WORKERS} threading.Threads, n/{WORKERS} each"
    samples = _alternate([("serial", serial), ("tallyio", tallyio), (TPE_NAME, thread_pool),
                          (threads_name, plain_threads)], s.reps, say, "GIL-releasing tasks")
    group = f"Scheduler: hashlib.sha256 of 16 KiB x {n:,} (releases the GIL), {WORKERS} workers"
    serial_figure = _figures(group, samples, [("us_per_hash", "serial loop, time per hash")],
                             unit="us", higher_is_better=False, mine="serial")
    speedups = _figures(group, samples, [("speedup", "tallyio, speedup over the serial loop")],
                        unit="x", higher_is_better=True, targets={"speedup": [Target(1.7)]})
    return serial_figure + speedups


# ---- d. native nogil tasks ---------------------------------------------------------------

def _native_figures(s: _Sizes, say: Callable[[str], None]) -> list[Figure]:
    group = f"Scheduler: native nogil tasks (tallyio._ext.native_example), {WORKERS} workers"
    modes = [("submit", "submitted from one thread, tio_submit_native per task"),
             ("submit_many", "submitted from one thread, tio_submit_native_many (64 per call)"),
             ("spawn", "spawned on the workers (tio_spawn_native), one root task")]
    native_example = _native_example()
    if native_example is None:
        return [Figure(group, label, unit="tasks/s", higher_is_better=True,
                       skipped="native_example not built") for _, label in modes]
    n = s.native_tasks

    def tallyio() -> dict[str, float]:
        with _tallyio() as scheduler:
            return {mode: native_example.measure_native_throughput(scheduler, n, mode=mode) for mode, _ in modes}

    samples = _alternate([("tallyio", tallyio)], s.reps, say, "native tasks")
    return _figures(group, samples, modes, unit="tasks/s", higher_is_better=True,
                    targets={mode: [Target(20e6)] for mode, _ in modes})


def _native_example() -> Any:
    """tallyio._ext.native_example, or None when the build left it out."""
    try:
        from tallyio._ext import native_example
    except ImportError:
        return None
    return native_example


# ---- e. submit-to-start latency -----------------------------------------------------------

PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


def _percentiles_us(latencies_ns: Sequence[int]) -> dict[str, float]:
    values = np.asarray(latencies_ns, dtype=np.float64) / 1000.0
    return {key: float(np.percentile(values, q)) for key, q in PERCENTILES}


def _probe_latencies(submit: Callable[[Any], Any], item: Any, probe: _LatencyProbe,
                     probes: int, gap_s: float) -> list[int]:
    """Submit `item` (which runs `probe`) `probes` times, one at a time: the
    next submit comes right after the previous probe ran (plus `gap_s`).
    Latency: perf_counter_ns() just before the submit call to the probe's own
    perf_counter_ns() as it starts.  The first few probes warm up and are
    dropped."""
    warmup = min(10, probes)
    latencies = []
    for i in range(probes + warmup):
        start = perf_counter_ns()
        submit(item)
        probe.wait()
        if i >= warmup:
            latencies.append(probe.started_ns - start)
        if gap_s:
            time.sleep(gap_s)
    return latencies


def _latency_contenders(probes: int, gap_s: float, spin_us: float) -> list[tuple[str, Callable[[], dict[str, float]]]]:
    def tallyio() -> dict[str, float]:
        probe = _LatencyProbe()
        with _tallyio(spin_us=spin_us) as scheduler:
            task = _ProbeTask(probe)
            return _percentiles_us(_probe_latencies(scheduler.submit_task, task, probe, probes, gap_s))

    def thread_pool() -> dict[str, float]:
        probe = _LatencyProbe()
        with _thread_pool() as executor:
            return _percentiles_us(_probe_latencies(executor.submit, probe, probe, probes, gap_s))

    def asyncio_loop() -> dict[str, float]:
        probe = _LatencyProbe()
        with _loop_thread() as loop:
            return _percentiles_us(_probe_latencies(loop.call_soon_threadsafe, probe, probe, probes, gap_s))

    return [("tallyio", tallyio), (TPE_NAME, thread_pool), (ASYNCIO_NAME, asyncio_loop)]


def _latency_figures(s: _Sizes, say: Callable[[str], None]) -> list[Figure]:
    figures = []
    spinning = _alternate(_latency_contenders(s.spin_probes, 0.0, spin_us=1e6), s.reps, say,
                          "latency, spinning workers")
    group = (f"Scheduler: submit-to-start latency, one task at a time, {WORKERS} workers spinning "
             f"(spin_us=1e6; next submit as soon as the previous task ran; {s.spin_probes:,} probes)")
    figures += _figures(group, spinning, [(key, key) for key, _ in PERCENTILES], unit="us",
                        higher_is_better=False, targets={"p50": [Target(5.0)], "p99": [Target(20.0)]})
    parked = _alternate(_latency_contenders(s.parked_probes, PARKED_GAP_S, spin_us=0.0), s.reps, say,
                        "latency, parked workers")
    group = (f"Scheduler: submit-to-start latency, one task at a time, {WORKERS} workers parked "
             f"(spin_us=0; {PARKED_GAP_S * 1000:g} ms between submits; {s.parked_probes:,} probes)")
    figures += _figures(group, parked, [(key, key) for key, _ in PERCENTILES], unit="us", higher_is_better=False)
    return figures


# ---- f. priority isolation ---------------------------------------------------------------

def _flood(top_up: Callable[[], Any], backlog: Callable[[], int], stop: threading.Event) -> None:
    """Call `top_up` whenever fewer than FLOOD_LOW tasks are queued, until
    `stop` is set."""
    while not stop.is_set():
        if backlog() < FLOOD_LOW:
            top_up()
        else:
            time.sleep(0.00005)       # gives the GIL away, as a real producer would


def _under_flood(top_up: Callable[[], Any], backlog: Callable[[], int], submit: Callable[[Any], Any],
                 probe_item: Any, probe: _LatencyProbe, probes: int) -> dict[str, float]:
    """Submit-to-start percentiles of `probes` probes submitted one at a time
    (PRIORITY_GAP_S apart) while another thread floods; also the median number
    of tasks queued as a probe was submitted ("depth")."""
    stop = threading.Event()
    flooder = threading.Thread(target=_flood, args=(top_up, backlog, stop), name="tallyio-bench-flood",
                               daemon=True)
    flooder.start()
    try:
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while backlog() < FLOOD_LOW:           # the queues are full before the first probe
            if time.monotonic() > deadline:
                raise RuntimeError("the flood never filled the queues")
            time.sleep(0.0005)
        depth = []
        latencies = []
        for _ in range(probes):
            depth.append(backlog())
            start = perf_counter_ns()
            submit(probe_item)
            probe.wait()
            latencies.append(probe.started_ns - start)
            time.sleep(PRIORITY_GAP_S)
    finally:
        stop.set()
        flooder.join()
    result = _percentiles_us(latencies)
    result["depth"] = float(statistics.median(depth))
    return result


def _burst(submit: Callable[[Any], Any], item: Any) -> Callable[[], None]:
    def top_up() -> None:
        for _ in repeat(None, FLOOD_BURST):
            submit(item)
    return top_up


def _priority_figures(s: _Sizes, say: Callable[[str], None]) -> list[Figure]:
    native_example = _native_example()

    def scheduler_backlog(scheduler: NumaScheduler) -> Callable[[], int]:
        balancer, workers = scheduler.balancer, range(scheduler.worker_count)
        return lambda: sum(balancer.load(i).tasks for i in workers)

    def tallyio() -> dict[str, float]:
        probe = _LatencyProbe()
        with _tallyio() as scheduler:
            return _under_flood(_burst(scheduler.submit_task, _NoopTask()), scheduler_backlog(scheduler),
                                scheduler.submit_task, _UrgentProbeTask(probe), probe, s.priority_probes)

    def native_flood(workers: int) -> Callable[[], dict[str, float]]:
        # the flood is native tasks (~2.5 us each) submitted without the GIL, so
        # the probe competes with no Python work: what is left is its own path
        # (placement, band order, getting the GIL and a CPU)
        def measure() -> dict[str, float]:
            probe = _LatencyProbe()
            with _tallyio(workers) as scheduler:
                def top_up() -> None:
                    native_example.NativeBatch(FLOOD_BURST, work_iters=FLOOD_NATIVE_WORK_ITERS).submit(scheduler)
                return _under_flood(top_up, scheduler_backlog(scheduler), scheduler.submit_task,
                                    _UrgentProbeTask(probe), probe, s.priority_probes)
        return measure

    def thread_pool() -> dict[str, float]:
        # no priorities: the probe queues behind the flood; a tenth of the probes
        # shows that (each one waits for the whole backlog)
        probe = _LatencyProbe()
        with _thread_pool() as executor:
            backlog = executor._work_queue.qsize   # stdlib internal: the queued work items
            return _under_flood(_burst(executor.submit, _noop), backlog, executor.submit, probe, probe,
                                max(5, s.priority_probes // 10))

    # diagnostics: the flood made of native tasks, with 2 workers (both cores
    # busy) and with 1 worker (a core left to the probing and flooding threads)
    diagnostics = {f"native flood, {workers} worker{'s' if workers > 1 else ''}": workers
                   for workers in (WORKERS, 1)} if native_example is not None else {}
    contenders = [("tallyio", tallyio), (TPE_NAME, thread_pool)]
    contenders += [(name, native_flood(workers)) for name, workers in diagnostics.items()]
    samples = _alternate(contenders, s.reps, say, "priority isolation")
    group = (f"Scheduler: submit-to-start of priority-255 Python tasks while another thread floods priority-0 "
             f"no-ops (a burst of {FLOOD_BURST} whenever fewer than {FLOOD_LOW:,} are queued), {WORKERS} workers")
    head_to_head = {name: samples[name] for name in ("tallyio", TPE_NAME)}
    figures = _figures(group, head_to_head, [("p50", "p50"), ("p99", "p99")], unit="us", higher_is_better=False,
                       targets={"p99": [Target(50.0)]})
    for name in diagnostics:
        # not peers: the same probes under a flood that never takes the GIL
        figures += _figures(group, {name: samples[name]}, [("p50", f"p50, {name}"), ("p99", f"p99, {name}")],
                            unit="us", higher_is_better=False, mine=name)
    # the flood's depth is context, not a contest: one row per contender, no ratio
    for name, by_case in samples.items():
        figures.append(Figure(group, f"queued when a probe is submitted, {name}", by_case["depth"], unit="tasks"))
    return figures


# ---- g. memory --------------------------------------------------------------------------------

def _traced_run(submit: Callable[[Any], Any], item: Any, join: Callable[[], Any], n: int,
                chunk: int) -> tuple[int, int]:
    """(net live blocks, peak traced bytes above the start) over `n` submits
    in chunks of `chunk`, each chunk joined; tracemalloc is running."""
    gc.collect()
    before = tracemalloc.take_snapshot()
    start_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(n // chunk):
        for _ in repeat(None, chunk):
            submit(item)
        join()
    _, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    net = sum(d.count_diff for d in after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "filename"))
    return net, peak - start_bytes


def _rss_bytes() -> int:
    """This process's resident set size now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_figures(s: _Sizes, say: Callable[[str], None]) -> list[Figure]:
    """tracemalloc over a steady-state run, net of what the measuring loop
    itself allocates (the same loop with a do-nothing submit), and RSS sampled
    ten times over a long run."""
    group = f"Scheduler: memory, one reused no-op Task, {WORKERS} workers"
    chunk = min(1000, s.alloc_tasks)

    def traced() -> dict[str, float]:
        with _tallyio() as scheduler:
            task, submit, join = _NoopTask(), scheduler.submit_task, scheduler.join
            for _ in repeat(None, chunk):         # steady state: caches filled, the task's type learnt
                submit(task)
            join()
            tracemalloc.start()
            try:
                harness_net, harness_peak = _traced_run(callable, task, bool, s.alloc_tasks, chunk)
                net, peak = _traced_run(submit, task, join, s.alloc_tasks, chunk)
            finally:
                tracemalloc.stop()
        return {"blocks": (net - harness_net) / s.alloc_tasks, "peak": peak - harness_peak}

    samples = _alternate([("tallyio", traced)], 1, say, "memory: tracemalloc")
    figures = _figures(group, samples, [("blocks", f"tracemalloc, {s.alloc_tasks:,} tasks: blocks still allocated per task")],
                       unit="blocks/task", higher_is_better=False, targets={"blocks": [Target(0.001)]})
    figures += _figures(group, samples, [("peak", f"tracemalloc, {s.alloc_tasks:,} tasks: peak bytes above the loop's own")],
                        unit="B", higher_is_better=False, targets={"peak": [Target(0.0)]})

    def rss() -> dict[str, float]:
        step = s.rss_tasks // 10
        rss_chunk = min(8192, step)
        marks = []
        with _tallyio() as scheduler:
            task, submit, join = _NoopTask(), scheduler.submit_task, scheduler.join
            for sample in range(10):
                say(f"memory: RSS over {s.rss_tasks:,} tasks ({sample * step:,} done)")
                for _ in range(step // rss_chunk):
                    for _ in repeat(None, rss_chunk):
                        submit(task)
                    join()
                marks.append(_rss_bytes())
        mib = 1024 * 1024
        return {"first": marks[0] / mib, "last": marks[-1] / mib, "growth": (marks[-1] - marks[0]) / mib}

    samples = _alternate([("tallyio", rss)], 1, say, "memory: RSS")
    step = s.rss_tasks // 10
    figures += _figures(group, samples, [("first", f"RSS after {step:,} tasks"),
                                         ("last", f"RSS after {s.rss_tasks:,} tasks"),
                                         ("growth", "RSS growth between the two")],
                        unit="MiB", higher_is_better=False, targets={"growth": [Target(1.0)]})
    return figures


# ---- scheduler group ----------------------------------------------------------------------

def _scheduler_figures(mode: str, say: Callable[[str], None]) -> list[Figure]:
    s = _SIZES[mode]
    figures: list[Figure] = []

    n = s.noop_tasks
    samples = _alternate([("tallyio", lambda: _throughput_tallyio(n)),
                          (TPE_NAME, lambda: _throughput_thread_pool(n)),
                          (ASYNCIO_NAME, lambda: _throughput_asyncio(n))], s.reps, say, "no-op tasks")
    group = (f"Scheduler: {n:,} no-op Python tasks submitted from one thread and completed, {WORKERS} workers "
             f"(tallyio: submit_task of one reused Task, queue_capacity={_noop_capacity(n)}, then join())")
    figures += _figures(group, samples, [("noop", "tasks per second")], unit="tasks/s", higher_is_better=True,
                        targets={"noop": [Target(1.5e6), Target(10.0, peer=TPE_NAME)]})

    samples = _alternate([("tallyio", lambda: _submit_cost_tallyio(s)),
                          (TPE_NAME, lambda: _submit_cost_thread_pool(s)),
                          (ASYNCIO_NAME, lambda: _submit_cost_asyncio(s))], s.reps, say, "submit cost")
    group = (f"Scheduler: cost of one submit call, workers running (median over {s.submit_batches} batches "
             f"of {s.submit_batch:,}; tallyio: submit_task)")
    figures += _figures(group, samples, [("submit", "ns per call")], unit="ns", higher_is_better=False,
                        targets={"submit": [Target(150.0)]})

    figures += _sha256_figures(s, say)
    figures += _native_figures(s, say)
    figures += _latency_figures(s, say)
    figures += _priority_figures(s, say)
    figures += _memory_figures(s, say)
    return figures


# ---- running and reporting --------------------------------------------------------------

def run(*, quick: bool = False, smoke: bool = False, groups: Sequence[str] = GROUPS,
        progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark ``groups`` and return ``{"machine", "mode", "figures"}``.

    >>> result = run(smoke=True, groups=["core"])
    >>> sorted(result) == ["figures", "machine", "mode"] and len(result["figures"]) > 0
    True
    """
    if quick and smoke:
        raise ValueError("choose one of quick and smoke")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ValueError(f"groups must be a non-empty selection of {GROUPS}, got {list(groups)!r}")
    mode = "smoke" if smoke else "quick" if quick else "full"
    say = progress or (lambda msg: None)
    figures: list[Figure] = []
    if "core" in groups:
        figures += _core_figures(mode, say)
    if "scheduler" in groups:
        figures += _scheduler_figures(mode, say)
    return {"machine": machine_description(), "mode": mode, "figures": figures}


def _format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "tasks/s":
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"
    if unit in ("B", "tasks"):
        return f"{value:,.0f} {unit}"
    if unit == "blocks/task":
        return f"{value:.4f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} {unit.split('/')[0]}"


def format_table(result: dict) -> str:
    """The figures as a plain-text table, grouped, each peer on its own row
    under tallyio's figure with its ratio, then the targets met or missed."""
    lines = []
    m = result["machine"]
    lines.append(f"tallyio {m['tallyio']} on {m['cpu']} ({m['usable_cpus']} usable CPUs, "
                 f"{m['numa_nodes']} NUMA node(s)), Python {m['python']}; {result.get('mode', 'full')} run")
    lines.append("median over repetitions; spread = (max-min)/median; ratio = how many times better "
                 "tallyio's figure is than the peer's (> 1: tallyio better)")
    figures = result["figures"]
    group = None
    for f in figures:
        if f.group != group:
            group = f.group
            members = [g for g in figures if g.group == group]
            width = max(len(g.case) for g in members) + 2
            peer_width = max([len(p) for g in members for p in g.peers] + [4]) + 2
            has_peer = any(g.peers for g in members)
            lines.append("")
            lines.append(group)
            header = f"  {'case':<{width}} {'median':>12} {'spread':>7}"
            if has_peer:
                header += f"   {'peer':<{peer_width}} {'median':>12} {'spread':>7} {'ratio':>7}"
            lines.append(header)
        if f.skipped:
            lines.append(f"  {f.case:<{width}} skipped: {f.skipped}")
            continue
        row = f"  {f.case:<{width}} {_format_value(f.median, f.unit):>12} {f.spread:>6.0%}"
        for k, peer in enumerate(f.peers):
            peer_cells = (f"   {peer:<{peer_width}} {_format_value(f.peer_median(peer), f.unit):>12} "
                          f"{f.peer_spread(peer):>6.0%} {f.ratio(peer) or math.nan:>7.2f}")
            lines.append((row if k == 0 else " " * len(row)) + peer_cells)
        if not f.peers:
            lines.append(row)
        for target in f.targets:
            met = target.met(f)
            verdict = "met" if met else "MISSED"
            lines.append(f"      target {target.describe(f)}: {verdict}")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    """Every figure (samples, medians, spreads, ratios, targets) and the machine, as JSON."""
    def clean(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else value

    figures = []
    for f in result["figures"]:
        figures.append({
            "group": f.group, "case": f.case, "unit": f.unit, "higher_is_better": f.higher_is_better,
            "skipped": f.skipped, "samples": f.samples, "median": clean(f.median), "spread": clean(f.spread),
            "peers": [{"name": p, "samples": f.peers[p], "median": f.peer_median(p),
                       "spread": f.peer_spread(p), "ratio": f.ratio(p)} for p in f.peers],
            "targets": [{"target": t.describe(f), "met": t.met(f)} for t in f.targets],
        })
    return json.dumps({"machine": result["machine"], "mode": result.get("mode"), "figures": figures}, indent=2)
