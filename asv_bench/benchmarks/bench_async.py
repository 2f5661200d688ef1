"""asv benchmarks for NumaScheduler's awaitable path and Executor face (2 workers).

* N calls gathered from one coroutine: ``submit_async`` (default loop,
  eventfd wake-ups, uvloop when installed), ``run`` coroutines, ``map_async`` (one future per chunk),
  ``loop.run_in_executor`` with ThreadPoolExecutor(2) and with the scheduler,
  and asyncio's own ``call_soon_threadsafe`` handing the calls to a loop
  thread; for no-op, ~5 us pure-Python and sha256-of-16-KiB calls;
* ``submit() -> Future`` then ``wait`` next to ThreadPoolExecutor(2);
* track_*: calls delivered per loop wake-up.

setup() makes the loop and the executor (outside the timing), teardown()
closes them; number = 1 because one run is already thousands of calls.
"""
import asyncio
import concurrent.futures
import hashlib
import threading
from itertools import repeat

from tallyio import NumaScheduler, SchedulerConfig

try:
    import uvloop
except ImportError:
    uvloop = None

N = {"noop": 100_000, "python": 20_000, "sha256": 4000}
DATA = bytes(range(256)) * 64


def _noop():
    pass


def _python():
    total = 0
    for i in range(200):
        total += i
    return total


def _sha256():
    hashlib.sha256(DATA).digest()


def _apply(fn):
    return fn()


WORK = {"noop": _noop, "python": _python, "sha256": _sha256}
PATHS = ["submit_async", "submit_async_eventfd", "submit_async_uvloop", "run_coroutines", "map_async",
         "run_in_executor_threadpool", "run_in_executor_tallyio", "call_soon_threadsafe"]


def _scheduler(n, wake="call_soon"):
    capacity = max(8192, 1 << ((n // 2) - 1).bit_length())
    return NumaScheduler(SchedulerConfig(workers_per_numa_node=2, queue_capacity=capacity),
                         async_wake=wake).start()


class AwaitableGathered:
    """N calls gathered from one coroutine, by path and workload."""

    params = (PATHS, list(WORK))
    param_names = ["path", "work"]
    number = 1
    repeat = (3, 5, 30.0)
    timeout = 300

    def setup(self, path, work):
        if path == "submit_async_uvloop" and uvloop is None:
            raise NotImplementedError("uvloop is not installed")
        self.n, self.fn = N[work], WORK[work]
        self.loop = uvloop.new_event_loop() if path == "submit_async_uvloop" else asyncio.new_event_loop()
        self.scheduler = self.executor = self.thread = None
        if path == "run_in_executor_threadpool":
            self.executor = concurrent.futures.ThreadPoolExecutor(2)
            concurrent.futures.wait([self.executor.submit(_noop) for _ in range(2)])
        elif path == "call_soon_threadsafe":
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
        else:
            self.scheduler = _scheduler(self.n, "eventfd" if path == "submit_async_eventfd" else "call_soon")

    def teardown(self, path, work):
        if self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
        self.loop.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.scheduler is not None:
            self.scheduler.stop()

    def time_gathered(self, path, work):
        n, fn = self.n, self.fn
        if path == "call_soon_threadsafe":
            call = self.loop.call_soon_threadsafe
            for _ in repeat(None, n):
                call(fn)
            done = threading.Event()
            call(done.set)
            done.wait()
            return
        scheduler, executor = self.scheduler, self.executor

        async def main():
            if path.startswith("submit_async"):
                submit = scheduler.submit_async
                await asyncio.gather(*[submit(fn) for _ in repeat(None, n)])
            elif path == "run_coroutines":
                run = scheduler.run
                await asyncio.gather(*[run(fn) for _ in repeat(None, n)])
            elif path == "map_async":
                await scheduler.map_async(_apply, repeat(fn, n))
            else:
                call = asyncio.get_running_loop().run_in_executor
                target = executor if executor is not None else scheduler
                await asyncio.gather(*[call(target, fn) for _ in repeat(None, n)])

        self.loop.run_until_complete(main())


class AwaitableWakeups:
    """Calls delivered per loop wake-up, N no-op calls gathered."""

    number = 1
    repeat = 1
    timeout = 300

    def track_calls_per_wakeup(self):
        n = N["noop"]
        with _scheduler(n) as scheduler:
            async def main():
                await asyncio.gather(*[scheduler.submit_async(_noop) for _ in repeat(None, n)])
            asyncio.run(main())
            m = scheduler.stats().metrics
        return m.async_delivered / max(1, m.loop_wakeups)

    track_calls_per_wakeup.unit = "calls"


class FutureSubmitWait:
    """50k no-op submit() -> concurrent.futures.Future, then wait()."""

    params = ["tallyio", "threadpool"]
    param_names = ["executor"]
    number = 1
    repeat = (3, 5, 30.0)
    timeout = 300

    def setup(self, executor):
        if executor == "tallyio":
            self.executor = _scheduler(50_000)
        else:
            self.executor = concurrent.futures.ThreadPoolExecutor(2)
            concurrent.futures.wait([self.executor.submit(_noop) for _ in range(2)])

    def teardown(self, executor):
        self.executor.shutdown(wait=True)

    def time_submit_wait(self, executor):
        submit = self.executor.submit
        concurrent.futures.wait([submit(_noop) for _ in repeat(None, 50_000)])
