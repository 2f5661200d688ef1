"""The scheduler group's awaitable-path sections (``tallyio bench --group
scheduler``): NumaScheduler's ``submit_async`` / ``run`` gathered from one
coroutine against ``loop.run_in_executor`` (ThreadPoolExecutor(2) and the
scheduler itself) and asyncio's own ``call_soon_threadsafe`` handing work to a
loop thread; ``submit() -> Future`` then ``wait`` against ThreadPoolExecutor(2);
and await-to-result latency one call at a time.

Every contender is set up outside its timing and they alternate within each
repetition (``alternate``), so ratios come from one run.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from itertools import repeat
from time import perf_counter_ns
from typing import Any, Callable

import numpy as np

from tallyio.bench._contenders import WORKERS, AsyncioLoop, TallyioFutures, ThreadPool
from tallyio.bench._figures import Figure, Measure, Target, alternate, figures_for
from tallyio.bench._progress import Progress
from tallyio.bench._workloads import NOOP, PYTHON_WORK, SHA256, Work
from tallyio.config import SchedulerConfig
from tallyio.scheduler import NumaScheduler

try:
    import uvloop
except ImportError:     # the uvloop contender is listed as skipped
    uvloop = None

Section = tuple[str, Callable[[Progress], list[Figure]]]

MINE = "tallyio await submit_async (gathered)"
RUN_CORO = "tallyio await run() (gathered: a future to gather, no Task per call)"
MAP = "tallyio await map_async (one future per chunk)"
MINE_EVENTFD = "tallyio submit_async, eventfd wake-ups"
MINE_UVLOOP = "tallyio submit_async on uvloop"
EXECUTOR_TPE = f"loop.run_in_executor(ThreadPoolExecutor({WORKERS}))"
EXECUTOR_TALLYIO = "loop.run_in_executor(NumaScheduler)"
CALL_SOON = AsyncioLoop.name
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


@dataclass(frozen=True)
class _Sizes:
    reps: int
    noop_calls: int
    python_calls: int
    sha_calls: int
    future_tasks: int
    latency_probes: int


SIZES = {
    "full": _Sizes(reps=5, noop_calls=100_000, python_calls=20_000, sha_calls=4000, future_tasks=50_000,
                   latency_probes=2000),
    "quick": _Sizes(reps=3, noop_calls=20_000, python_calls=5000, sha_calls=2000, future_tasks=20_000,
                    latency_probes=500),
    "smoke": _Sizes(reps=2, noop_calls=500, python_calls=200, sha_calls=50, future_tasks=500,
                    latency_probes=20),
}


def _scheduler(n: int, wake: str = "call_soon") -> NumaScheduler:
    # room for the whole burst: the submitter outruns the workers
    capacity = max(8192, 1 << max(1, (-(-n // WORKERS) - 1).bit_length()))
    return NumaScheduler(SchedulerConfig(workers_per_numa_node=WORKERS, queue_capacity=capacity),
                         async_wake=wake).start()


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _gathered(kind: str, fn: Callable[[Any], Any], n: int, wake: str = "call_soon",
              loop_kind: str = "asyncio") -> Measure:
    """``n`` calls of ``fn`` gathered from one coroutine; the rate counts from
    the first submit to the last result in the coroutine."""
    def measure() -> dict[str, float]:
        loop = _new_loop(loop_kind)
        executor: Any = None
        scheduler = None
        try:
            if kind == "tpe":
                executor = concurrent.futures.ThreadPoolExecutor(WORKERS)
                concurrent.futures.wait([executor.submit(fn) for _ in range(WORKERS)])
            else:
                scheduler = _scheduler(n, wake)

            async def main() -> int:
                if kind == "submit_async":
                    submit = scheduler.submit_async
                    start = perf_counter_ns()
                    await asyncio.gather(*[submit(fn) for _ in repeat(None, n)])
                elif kind == "run":
                    run = scheduler.run
                    start = perf_counter_ns()
                    await asyncio.gather(*[run(fn) for _ in repeat(None, n)])
                elif kind == "map_async":
                    # the same n calls (the workloads take one ignored argument)
                    start = perf_counter_ns()
                    await scheduler.map_async(fn, repeat(None, n))
                else:
                    call = asyncio.get_running_loop().run_in_executor
                    target = executor if kind == "tpe" else scheduler
                    start = perf_counter_ns()
                    await asyncio.gather(*[call(target, fn) for _ in repeat(None, n)])
                return perf_counter_ns() - start

            elapsed = loop.run_until_complete(main())
            result = {"rate": n * 1e9 / elapsed}
            if scheduler is not None and kind == "submit_async":
                m = scheduler.stats().metrics
                result["calls_per_wakeup"] = m.async_delivered / max(1, m.loop_wakeups)
            return result
        finally:
            loop.close()
            if executor is not None:
                executor.shutdown(wait=True)
            if scheduler is not None:
                scheduler.stop()
    return measure


def _call_soon(fn: Callable[[Any], Any], n: int) -> Measure:
    work = Work(fn, None)  # type: ignore[arg-type]

    def measure() -> dict[str, float]:
        with AsyncioLoop() as contender:
            start = perf_counter_ns()
            contender.run_all(work, n)
            return {"rate": n * 1e9 / (perf_counter_ns() - start)}
    return measure


def _throughput(title: str, work: Work, n: int, s: _Sizes, progress: Progress) -> list[Figure]:
    measures: list[tuple[str, Measure]] = [
        (MINE, _gathered("submit_async", work.fn, n)),
        (RUN_CORO, _gathered("run", work.fn, n)),
        (MAP, _gathered("map_async", work.fn, n)),
        (MINE_EVENTFD, _gathered("submit_async", work.fn, n, wake="eventfd")),
        (EXECUTOR_TPE, _gathered("tpe", work.fn, n)),
        (EXECUTOR_TALLYIO, _gathered("executor", work.fn, n)),
        (CALL_SOON, _call_soon(work.fn, n)),
    ]
    skipped = {}
    if uvloop is not None:
        measures.insert(3, (MINE_UVLOOP, _gathered("submit_async", work.fn, n, loop_kind="uvloop")))
    else:
        skipped[MINE_UVLOOP] = "uvloop is not installed"
    samples = alternate(measures, s.reps, progress)
    group = (f"Scheduler, awaitable path: {n:,} {title} gathered from one coroutine, {WORKERS} workers "
             "(the loop thread submits and receives)")
    targets = {"rate": [Target(10.0, peer=EXECUTOR_TPE), Target(3.0, peer=CALL_SOON)]}
    figures = figures_for(group, samples, [("rate", "calls per second")], unit="calls/s",
                          higher_is_better=True, mine=MINE, targets=targets, skipped_peers=skipped)
    figures += figures_for(group, {MINE: samples[MINE]}, [("calls_per_wakeup", "calls delivered per loop wake-up")],
                           unit="calls", higher_is_better=True, mine=MINE)
    # await run(fn) gathered (issue 11's figure): the same light future, made by run()
    per_call = {name: samples[name] for name in (RUN_CORO, EXECUTOR_TPE, CALL_SOON)}
    figures += figures_for(f"{group}; await run()", per_call, [("rate", "calls per second")], unit="calls/s",
                           higher_is_better=True, mine=RUN_CORO, targets=targets)
    # the bulk form against the same peers: asyncio's per-await bookkeeping paid per chunk
    bulk = {name: samples[name] for name in (MAP, EXECUTOR_TPE, CALL_SOON)}
    figures += figures_for(f"{group}; bulk: map_async", bulk, [("rate", "calls per second")], unit="calls/s",
                           higher_is_better=True, mine=MAP, targets=targets)
    return figures


def _noop_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        return _throughput("no-op calls", NOOP, s.noop_calls, s, progress)
    return "awaitable path: no-op calls", run


def _python_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        return _throughput("~5 us pure-Python calls", PYTHON_WORK, s.python_calls, s, progress)
    return "awaitable path: ~5 us Python calls", run


def _sha_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        return _throughput("hashlib.sha256 of 16 KiB calls (GIL released)", SHA256, s.sha_calls, s, progress)
    return "awaitable path: sha256 calls", run


# ---- submit() -> concurrent.futures.Future, then wait ------------------------------------------

def _futures(factory: Callable[[], Any], n: int) -> Measure:
    def measure() -> dict[str, float]:
        with factory() as contender:
            submit, fn = contender.executor.submit, NOOP.fn
            start = perf_counter_ns()
            concurrent.futures.wait([submit(fn) for _ in repeat(None, n)])
            return {"rate": n * 1e9 / (perf_counter_ns() - start)}
    return measure


def _futures_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        n = s.future_tasks
        capacity = max(8192, 1 << max(1, (-(-n // WORKERS) - 1).bit_length()))
        measures = [(TallyioFutures.name, _futures(lambda: TallyioFutures(queue_capacity=capacity), n)),
                    (ThreadPool(WORKERS).name, _futures(lambda: ThreadPool(WORKERS), n))]
        samples = alternate(measures, s.reps, progress)
        group = (f"Scheduler: {n:,} no-op submit(fn) -> concurrent.futures.Future, then wait(), "
                 f"{WORKERS} workers")
        return figures_for(group, samples, [("rate", "tasks per second")], unit="tasks/s", higher_is_better=True,
                           mine=TallyioFutures.name,
                           targets={"rate": [Target(3.0, peer=ThreadPool(WORKERS).name)]})
    return "submit() -> Future, then wait", run


# ---- await-to-result latency, one call at a time ---------------------------------------------

def _latency(kind: str, probes: int) -> Measure:
    def measure() -> dict[str, float]:
        loop = asyncio.new_event_loop()
        executor: Any = None
        scheduler = _scheduler(1) if kind != "tpe" else None
        if kind == "tpe":
            executor = concurrent.futures.ThreadPoolExecutor(WORKERS)
        try:
            async def main() -> list[int]:
                run_in = asyncio.get_running_loop().run_in_executor
                fn = NOOP.fn
                out = []
                for i in range(probes + 10):
                    start = perf_counter_ns()
                    if kind == "submit_async":
                        await scheduler.submit_async(fn)
                    else:
                        await run_in(executor if kind == "tpe" else scheduler, fn)
                    if i >= 10:      # the first few warm up
                        out.append(perf_counter_ns() - start)
                return out

            values = np.asarray(loop.run_until_complete(main()), dtype=np.float64) / 1000.0
            return {key: float(np.percentile(values, q)) for key, q in PERCENTILES}
        finally:
            loop.close()
            if executor is not None:
                executor.shutdown(wait=True)
            if scheduler is not None:
                scheduler.stop()
    return measure


def _latency_section(s: _Sizes) -> Section:
    def run(progress: Progress) -> list[Figure]:
        measures = [(MINE, _latency("submit_async", s.latency_probes)),
                    (EXECUTOR_TPE, _latency("tpe", s.latency_probes)),
                    (EXECUTOR_TALLYIO, _latency("executor", s.latency_probes))]
        samples = alternate(measures, s.reps, progress)
        group = (f"Scheduler, awaitable path: await-to-result latency of one no-op call at a time, "
                 f"{WORKERS} workers (default config: workers park between calls; {s.latency_probes:,} probes)")
        return figures_for(group, samples, [(key, f"await-to-result {key}") for key, _ in PERCENTILES],
                           unit="us", higher_is_better=False, mine=MINE)
    return "awaitable path: latency", run


def sections(mode: str) -> list[Section]:
    """The awaitable-path sections for ``mode`` (smoke, quick, full), in order."""
    s = SIZES[mode]
    return [_noop_section(s), _python_section(s), _sha_section(s), _futures_section(s), _latency_section(s)]
