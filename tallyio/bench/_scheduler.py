"""The ``scheduler`` group: NumaScheduler with 2 workers against the peers
(``_contenders``) on the same workloads, each contender set up outside its
timing, alternating within every repetition.

Workloads: no-op tasks, ~5 us pure-Python tasks, GIL-releasing tasks
(hashlib.sha256 of 16 KiB), native nogil tasks (tallyio only), the cost of
one submit call, submit-to-start and submit-to-complete latency one task at a
time (back to back with spinning workers, and at low load with parked
workers), priority isolation under a flood, and memory (tracemalloc, RSS).
The number of tasks is fixed per workload and the same for every contender
(a thread pool's throughput depends on it).
"""
from __future__ import annotations

import gc
import os
import statistics
import threading
import time
import tracemalloc
from dataclasses import dataclass
from itertools import repeat
from time import perf_counter_ns
from typing import Any, Callable, Sequence

import numpy as np

from tallyio.bench import _async
from tallyio.bench._contenders import (WORKERS, PROBE_TIMEOUT_S, Contender, Factory, Signal, SignalTask,
                                      TallyioFutures, TallyioTasks, ThreadPool, contenders)
from tallyio.bench._figures import Figure, Measure, Target, alternate, figures_for
from tallyio.bench._progress import Progress
from tallyio.bench._workloads import NOOP, PYTHON_WORK, SHA256, Work, noop
from tallyio.scheduler import NumaScheduler


@dataclass(frozen=True)
class _Sizes:
    reps: int
    noop_tasks: int          # tasks per throughput run, no-op work
    python_tasks: int        # tasks per throughput run, ~5 us of Python each
    sha_tasks: int           # tasks per throughput run, sha256 of 16 KiB each
    submit_batch: int        # submits per timed batch
    submit_batches: int      # batches per repetition (the sample is their median)
    native_tasks: int        # native tasks per run
    spin_probes: int         # latency probes back to back (spinning workers)
    parked_probes: int       # latency probes at low load (LOW_LOAD_GAP_S apart)
    priority_probes: int     # priority-255 probes under the flood
    alloc_tasks: int         # tasks traced by tracemalloc
    rss_tasks: int           # tasks over which RSS is sampled (10 samples)


SIZES = {
    "full": _Sizes(reps=5, noop_tasks=100_000, python_tasks=20_000, sha_tasks=4000, submit_batch=1000,
                   submit_batches=20, native_tasks=2_000_000, spin_probes=3000, parked_probes=300,
                   priority_probes=1000, alloc_tasks=100_000, rss_tasks=10_000_000),
    "quick": _Sizes(reps=3, noop_tasks=20_000, python_tasks=5000, sha_tasks=2000, submit_batch=1000,
                    submit_batches=5, native_tasks=1_000_000, spin_probes=1000, parked_probes=100,
                    priority_probes=300, alloc_tasks=50_000, rss_tasks=1_000_000),
    "smoke": _Sizes(reps=2, noop_tasks=500, python_tasks=200, sha_tasks=50, submit_batch=100,
                    submit_batches=2, native_tasks=10_000, spin_probes=20, parked_probes=10,
                    priority_probes=20, alloc_tasks=2000, rss_tasks=20_000),
}

LOW_LOAD_GAP_S = 0.002      # pause between low-load probes, long enough for every worker to park
PRIORITY_GAP_S = 0.0005     # pause between priority probes
FLOOD_LOW, FLOOD_BURST = 1000, 500   # top the flood up by a burst whenever fewer are queued
FLOOD_NATIVE_WORK_ITERS = 1000       # ~2.5 us per native flood task here, so 1000 queued last a while
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))

Section = tuple[str, Callable[[Progress], list[Figure]]]


def _burst_capacity(n: int) -> int:
    # a burst from one thread outruns the workers (they wait for the submitter's
    # GIL), so each worker's inbox must hold its share of the whole burst
    return max(8192, 1 << max(1, (-(-n // WORKERS) - 1).bit_length()))


def _tallyio_variants(n: int) -> list[tuple[str, Factory]]:
    capacity = _burst_capacity(n)
    return [("tallyio", lambda: TallyioTasks(queue_capacity=capacity)),
            (TallyioFutures.name, lambda: TallyioFutures(queue_capacity=capacity))]


def _inside(factory: Factory, body: Callable[[Contender], dict[str, float]]) -> Measure:
    """A measurement that sets the contender up, runs ``body`` and tears it down;
    only ``body`` times anything."""
    def measure() -> dict[str, float]:
        with factory() as contender:
            return body(contender)
    return measure


# ---- throughput: no-op, ~5 us Python, sha256 ---------------------------------------------------

def _rate(work: Work, n: int) -> Callable[[Contender], dict[str, float]]:
    def body(contender: Contender) -> dict[str, float]:
        start = perf_counter_ns()
        contender.run_all(work, n)
        return {"rate": n * 1e9 / (perf_counter_ns() - start)}
    return body


def _serial(fn: Callable[[Any], Any], n: int) -> Measure:
    def measure() -> dict[str, float]:
        start = perf_counter_ns()
        for _ in repeat(None, n):
            fn()
        elapsed = perf_counter_ns() - start
        return {"rate": n * 1e9 / elapsed, "us_per_call": elapsed / n / 1000}
    return measure


def _plain_threads(fn: Callable[[Any], Any], n: int) -> Measure:
    """WORKERS hand-written threads, n / WORKERS calls each: the ceiling for
    work that releases the GIL."""
    def share(count: int) -> None:
        for _ in repeat(None, count):
            fn()

    def measure() -> dict[str, float]:
        threads = [threading.Thread(target=share, args=(n // WORKERS + (i < n % WORKERS),)) for i in range(WORKERS)]
        start = perf_counter_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"rate": n * 1e9 / (perf_counter_ns() - start)}
    return measure


SERIAL = "serial loop in this thread"
PLAIN_THREADS = f"{WORKERS} threading.Threads, n/{WORKERS} calls each"


def _throughput(title: str, work: Work, n: int, s: _Sizes, progress: Progress, *, baseline: bool = False,
                plain_threads: bool = False, targets: Sequence[Target] = ()) -> list[Figure]:
    runnable, skipped = contenders(_tallyio_variants(n))
    measures = [(name, _inside(factory, _rate(work, n))) for name, factory in runnable]
    if baseline:
        measures.insert(0, (SERIAL, _serial(work.fn, n)))
    if plain_threads:
        measures.append((PLAIN_THREADS, _plain_threads(work.fn, n)))
    samples = alternate(measures, s.reps, progress)
    group = f"Scheduler: {n:,} {title}, submitted from one thread and completed, {WORKERS} workers"
    figures = figures_for(group, samples, [("rate", "tasks per second")], unit="tasks/s", higher_is_better=True,
                          targets={"rate": list(targets)}, skipped_peers=skipped)
    if baseline:
        figures += figures_for(group, samples, [("us_per_call", "serial loop, time per task")], unit="us",
                               higher_is_better=False, mine=SERIAL)
    return figures


def _noop_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        return _throughput("no-op Python tasks (tallyio: submit_task of one reused Task, then join())", NOOP,
                           s.noop_tasks, s, progress,
                           targets=[Target(1.5e6), Target(10.0, peer=ThreadPool(WORKERS).name)])
    return "no-op tasks", run


def _python_work_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        return _throughput("pure-Python tasks of ~5 us (they hold the GIL: nothing runs them faster "
                           "than one thread, processes aside)", PYTHON_WORK, s.python_tasks, s, progress,
                           baseline=True)
    return "~5 us Python tasks", run


def _sha256_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        # the ratio to the serial loop is the speedup; 2 workers on 2 cores can reach ~2x
        return _throughput("hashlib.sha256 of 16 KiB tasks (they release the GIL)", SHA256, s.sha_tasks, s,
                           progress, baseline=True, plain_threads=True, targets=[Target(1.7, peer=SERIAL)])
    return "GIL-releasing tasks", run


# ---- submit cost ---------------------------------------------------------------------------------

def _submit_cost(s: _Sizes) -> Callable[[Contender], dict[str, float]]:
    def body(contender: Contender) -> dict[str, float]:
        """Median over the batches of the per-call cost of `submit_batch`
        submits; waiting for a batch to run is outside the timing."""
        submit, per_call = contender.submit, []
        for _ in range(s.submit_batches):
            start = perf_counter_ns()
            handles = [submit(NOOP) for _ in repeat(None, s.submit_batch)]
            per_call.append((perf_counter_ns() - start) / s.submit_batch)
            contender.wait(handles)
        return {"submit": statistics.median(per_call)}
    return body


def _submit_cost_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        runnable, skipped = contenders(_tallyio_variants(s.submit_batch), needs="submit")
        samples = alternate([(name, _inside(factory, _submit_cost(s))) for name, factory in runnable], s.reps,
                            progress)
        group = (f"Scheduler: cost of one submit call of a no-op, workers running (median over "
                 f"{s.submit_batches} batches of {s.submit_batch:,}; tallyio: submit_task)")
        return figures_for(group, samples, [("submit", "ns per call")], unit="ns", higher_is_better=False,
                           targets={"submit": [Target(150.0)]}, skipped_peers=skipped)
    return "submit cost", run


# ---- native nogil tasks --------------------------------------------------------------------------

def _native_example() -> Any:
    """tallyio._ext.native_example, or None when the build left it out."""
    try:
        from tallyio._ext import native_example
    except ImportError:
        return None
    return native_example


def _native_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        group = f"Scheduler: native nogil tasks (tallyio._ext.native_example), {WORKERS} workers, tallyio only"
        modes = [("submit", "submitted from one thread, tio_submit_native per task"),
                 ("submit_many", "submitted from one thread, tio_submit_native_many (64 per call)"),
                 ("spawn", "spawned on the workers (tio_spawn_native), one root task")]
        native_example = _native_example()
        if native_example is None:
            return [Figure(group, label, unit="tasks/s", higher_is_better=True, skipped="native_example not built")
                    for _, label in modes]

        def body(contender: Contender) -> dict[str, float]:
            scheduler = contender.scheduler  # type: ignore[attr-defined]
            return {mode: native_example.measure_native_throughput(scheduler, s.native_tasks, mode=mode)
                    for mode, _ in modes}

        samples = alternate([("tallyio", _inside(TallyioTasks, body))], s.reps, progress)
        return figures_for(group, samples, modes, unit="tasks/s", higher_is_better=True,
                           targets={mode: [Target(20e6)] for mode, _ in modes})
    return "native tasks", run


# ---- submit-to-start and submit-to-complete latency ------------------------------------------------

def _percentiles_us(latencies_ns: Sequence[int]) -> dict[str, float]:
    values = np.asarray(latencies_ns, dtype=np.float64) / 1000.0
    return {key: float(np.percentile(values, q)) for key, q in PERCENTILES}


def _latencies(probes: int, gap_s: float) -> Callable[[Contender], dict[str, float]]:
    """One task at a time, ``probes`` times: the next submit comes right after
    the previous task completed (plus ``gap_s``).  The first few probes warm
    up and are dropped."""
    def body(contender: Contender) -> dict[str, float]:
        warmup = min(10, probes)
        to_start, to_complete = [], []
        for i in range(probes + warmup):
            start, complete = contender.probe()
            if i >= warmup:
                to_start.append(start)
                to_complete.append(complete)
            if gap_s:
                time.sleep(gap_s)
        result = {f"start {k}": v for k, v in _percentiles_us(to_start).items()}
        result.update({f"complete {k}": v for k, v in _percentiles_us(to_complete).items()})
        return result
    return body


def _latency_figures(group: str, mine: list[tuple[str, Factory]], probes: int, gap_s: float, s: _Sizes,
                     progress: Progress, targets: dict[str, list[Target]] | None = None) -> list[Figure]:
    runnable, skipped = contenders(mine, needs="probe")
    samples = alternate([(name, _inside(factory, _latencies(probes, gap_s))) for name, factory in runnable],
                        s.reps, progress)
    cases = [(f"{kind} {key}", f"submit-to-{kind} {key}") for kind in ("start", "complete") for key, _ in PERCENTILES]
    return figures_for(group, samples, cases, unit="us", higher_is_better=False, targets=targets,
                       skipped_peers=skipped)


def _back_to_back_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        group = (f"Scheduler: latency of one task at a time, back to back, {WORKERS} workers spinning "
                 f"(tallyio: spin_us=1e6; {s.spin_probes:,} probes; complete = the submitter learns it)")
        return _latency_figures(group, [("tallyio", lambda: TallyioTasks(spin_us=1e6))], s.spin_probes, 0.0, s,
                                progress, targets={"start p50": [Target(5.0)], "start p99": [Target(20.0)]})
    return "latency, back to back", run


def _low_load_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        group = (f"Scheduler: latency at low load, one task every {LOW_LOAD_GAP_S * 1e3:g} ms, {WORKERS} workers "
                 f"(tallyio: default config, workers parked between tasks; {s.parked_probes:,} probes)")
        return _latency_figures(group, [("tallyio", TallyioTasks)], s.parked_probes, LOW_LOAD_GAP_S, s, progress)
    return "latency, low load", run


# ---- priority isolation -------------------------------------------------------------------------

def _flood(top_up: Callable[[], Any], backlog: Callable[[], int], stop: threading.Event) -> None:
    """Keep at least FLOOD_LOW tasks queued until `stop` is set."""
    while not stop.is_set():
        if backlog() < FLOOD_LOW:
            top_up()
        else:
            time.sleep(0.0001)


def _under_flood(top_up: Callable[[], Any], backlog: Callable[[], int], submit: Callable[[Any], Any],
                 probe_item: Any, signal: Signal, probes: int) -> dict[str, float]:
    """Submit-to-start of `probe_item` (which runs `signal`) while another
    thread keeps the queues flooded; also the queue depth each probe met."""
    stop = threading.Event()
    flooder = threading.Thread(target=_flood, args=(top_up, backlog, stop), name="tallyio-bench-flood", daemon=True)
    flooder.start()
    try:
        # the queues are full before the first probe; on a machine so loaded (or slowed, as
        # under a sanitizer) that the workers drain faster than one thread can submit, the
        # probes go ahead at whatever depth the flood keeps: the "depth" figure reports it
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while backlog() < FLOOD_LOW and time.monotonic() < deadline:
            time.sleep(0.0005)
        depth, latencies = [], []
        for _ in range(probes):
            depth.append(backlog())
            start = perf_counter_ns()
            submit(probe_item)
            signal.wait()
            latencies.append(signal.started_ns - start)
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


def _scheduler_backlog(scheduler: NumaScheduler) -> Callable[[], int]:
    balancer, workers = scheduler.balancer, range(scheduler.worker_count)
    return lambda: sum(balancer.load(i).tasks for i in workers)


def _priority_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        native_example = _native_example()

        def tallyio(contender: Contender) -> dict[str, float]:
            scheduler, signal = contender.scheduler, Signal()  # type: ignore[attr-defined]
            return _under_flood(_burst(scheduler.submit_task, NOOP.task), _scheduler_backlog(scheduler),
                                scheduler.submit_task, SignalTask(signal, priority=255), signal, s.priority_probes)

        def native_flood(contender: Contender) -> dict[str, float]:
            # the flood is native tasks (~2.5 us each) submitted without the GIL, so
            # the probe competes with no Python work: what is left is its own path
            # (placement, band order, getting the GIL and a CPU)
            scheduler, signal = contender.scheduler, Signal()  # type: ignore[attr-defined]

            def top_up() -> None:
                native_example.NativeBatch(FLOOD_BURST, work_iters=FLOOD_NATIVE_WORK_ITERS).submit(scheduler)
            return _under_flood(top_up, _scheduler_backlog(scheduler), scheduler.submit_task,
                                SignalTask(signal, priority=255), signal, s.priority_probes)

        def thread_pool(contender: Contender) -> dict[str, float]:
            # no priorities: the probe queues behind the flood; a tenth of the probes
            # shows that (each one waits for the whole backlog)
            executor, signal = contender.executor, Signal()  # type: ignore[attr-defined]
            backlog = executor._work_queue.qsize   # stdlib internal: the queued work items
            return _under_flood(_burst(executor.submit, noop), backlog, executor.submit, signal, signal,
                                max(5, s.priority_probes // 10))

        # diagnostics: the flood made of native tasks, with 2 workers (both cores
        # busy) and with 1 worker (a core left to the probing and flooding threads)
        diagnostics = {f"native flood, {workers} worker{'s' if workers > 1 else ''}": workers
                       for workers in (WORKERS, 1)} if native_example is not None else {}
        tpe = ThreadPool(WORKERS).name
        measures = [("tallyio", _inside(TallyioTasks, tallyio)),
                    (tpe, _inside(lambda: ThreadPool(WORKERS), thread_pool))]
        measures += [(name, _inside(lambda w=workers: TallyioTasks(workers=w), native_flood))
                     for name, workers in diagnostics.items()]
        samples = alternate(measures, s.reps, progress)
        # the words before the parenthesis name the figure in the summary table
        group = (f"Scheduler: priority-255 tasks under a priority-0 flood (submit-to-start of priority-255 "
                 f"Python tasks while another thread floods priority-0 no-ops, a burst of {FLOOD_BURST} whenever "
                 f"fewer than {FLOOD_LOW:,} are queued, {WORKERS} workers; the peers have no priorities)")
        head_to_head = {name: samples[name] for name in ("tallyio", tpe)}
        figures = figures_for(group, head_to_head, [("p50", "p50"), ("p99", "p99")], unit="us",
                              higher_is_better=False, targets={"p99": [Target(50.0)]})
        for name in diagnostics:
            # not peers: the same probes under a flood that never takes the GIL
            figures += figures_for(group, {name: samples[name]}, [("p50", f"p50, {name}"), ("p99", f"p99, {name}")],
                                   unit="us", higher_is_better=False, mine=name)
        # the flood's depth is context, not a contest: one row per contender, no ratio
        for name, by_case in samples.items():
            figures.append(Figure(group, f"queued when a probe is submitted, {name}", by_case["depth"], unit="tasks"))
        return figures
    return "priority isolation", run


# ---- memory ---------------------------------------------------------------------------------------

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


MEMORY_GROUP = f"Scheduler: memory, one reused no-op Task, {WORKERS} workers"


def _tracemalloc_section(s: _Sizes) -> Section:
    """tracemalloc over a steady-state run, net of what the measuring loop
    itself allocates (the same loop with a do-nothing submit)."""
    def run(progress: Progress) -> list[Figure]:
        chunk = min(1000, s.alloc_tasks)

        def traced(contender: Contender) -> dict[str, float]:
            scheduler = contender.scheduler  # type: ignore[attr-defined]
            task, submit, join = NOOP.task, scheduler.submit_task, scheduler.join
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

        samples = alternate([("tallyio", _inside(TallyioTasks, traced))], 1, progress)
        figures = figures_for(MEMORY_GROUP, samples,
                              [("blocks", f"tracemalloc, {s.alloc_tasks:,} tasks: blocks still allocated per task")],
                              unit="blocks/task", higher_is_better=False, targets={"blocks": [Target(0.001)]})
        figures += figures_for(MEMORY_GROUP, samples,
                               [("peak", f"tracemalloc, {s.alloc_tasks:,} tasks: peak bytes above the loop's own")],
                               unit="B", higher_is_better=False, targets={"peak": [Target(0.0)]})
        return figures
    return "memory: tracemalloc", run


def _rss_section(s: _Sizes) -> Section:
    """RSS sampled ten times over a long run."""
    def run(progress: Progress) -> list[Figure]:
        step = s.rss_tasks // 10
        rss_chunk = min(8192, step)

        def rss(contender: Contender) -> dict[str, float]:
            scheduler = contender.scheduler  # type: ignore[attr-defined]
            task, submit, join = NOOP.task, scheduler.submit_task, scheduler.join
            marks = []
            for sample in range(10):
                progress.step(f"RSS over {s.rss_tasks:,} tasks ({sample * step:,} done)")
                for _ in range(step // rss_chunk):
                    for _ in repeat(None, rss_chunk):
                        submit(task)
                    join()
                marks.append(_rss_bytes())
            mib = 1024 * 1024
            return {"first": marks[0] / mib, "last": marks[-1] / mib, "growth": (marks[-1] - marks[0]) / mib}

        samples = alternate([("tallyio", _inside(TallyioTasks, rss))], 1, progress)
        return figures_for(MEMORY_GROUP, samples, [("first", f"RSS after {step:,} tasks"),
                                                   ("last", f"RSS after {s.rss_tasks:,} tasks"),
                                                   ("growth", "RSS growth between the two")],
                           unit="MiB", higher_is_better=False, targets={"growth": [Target(1.0)]})
    return "memory: RSS", run


def sections(mode: str) -> list[Section]:
    """The scheduler group's sections for ``mode`` (smoke, quick, full), in order."""
    s = SIZES[mode]
    return [_noop_section(s), _python_work_section(s), _sha256_section(s), _submit_cost_section(s),
            _native_section(s), _back_to_back_section(s), _low_load_section(s), _priority_section(s),
            _tracemalloc_section(s), _rss_section(s)] + _async.sections(mode)
