"""asv latency tracks for NumaScheduler (2 workers), in microseconds.

Submit-to-start latency at low load: one task at a time, the submitter takes
time.perf_counter_ns() just before the submit call and the task takes it again
as it starts.  Two regimes:

* spinning workers (spin_us=1e6): the next submit comes as soon as the
  previous task ran, so the workers are still spinning;
* parked workers (spin_us=0): 2 ms between submits, every worker is asleep.

ThreadPoolExecutor(2) and an asyncio loop in another thread fed by
call_soon_threadsafe run the same probes, as peers.  PriorityIsolation
tracks priority-255 probes while another thread keeps priority-0 no-ops
queued.

Each class measures everything once, in setup_cache; the track_* methods
return its percentiles (params: contender and percentile).
"""
import asyncio
import concurrent.futures
import threading
import time
from itertools import repeat
from time import perf_counter_ns

import numpy as np

from tallyio import NumaScheduler, SchedulerConfig, Task

CONTENDERS = ["tallyio", "ThreadPoolExecutor", "asyncio"]
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}
TIMEOUT_S = 10.0


class _Probe:
    """Records when it starts; the submitter waits for it."""

    __slots__ = ("started_ns", "done")

    def __init__(self):
        self.started_ns = 0
        self.done = threading.Lock()
        self.done.acquire()

    def __call__(self):
        self.started_ns = perf_counter_ns()
        self.done.release()


class _ProbeTask(Task):
    __slots__ = ("probe",)

    def __init__(self, probe):
        self.probe = probe

    def execute(self):
        self.probe()


class _UrgentProbeTask(_ProbeTask):
    __slots__ = ()

    def priority(self):
        return 255


class _Noop(Task):
    __slots__ = ()

    def execute(self):
        pass


def _noop():
    pass


def _latencies_us(submit, item, probe, probes, gap_s):
    out = []
    for i in range(probes + 10):            # the first 10 warm up
        start = perf_counter_ns()
        submit(item)
        if not probe.done.acquire(timeout=TIMEOUT_S):
            raise RuntimeError("a latency probe never ran")
        if i >= 10:
            out.append((probe.started_ns - start) / 1000.0)
        if gap_s:
            time.sleep(gap_s)
    return {name: float(np.percentile(out, q)) for name, q in PERCENTILES.items()}


def _measure(contender, probes, gap_s, spin_us):
    probe = _Probe()
    if contender == "tallyio":
        config = SchedulerConfig(workers_per_numa_node=2, spin_us=spin_us)
        with NumaScheduler(config) as scheduler:
            return _latencies_us(scheduler.submit_task, _ProbeTask(probe), probe, probes, gap_s)
    if contender == "ThreadPoolExecutor":
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return _latencies_us(pool.submit, probe, probe, probes, gap_s)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        return _latencies_us(loop.call_soon_threadsafe, probe, probe, probes, gap_s)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class SubmitToStart:
    """p50/p99/p99.9 submit-to-start latency, spinning and parked workers."""

    params = (CONTENDERS, list(PERCENTILES))
    param_names = ["contender", "percentile"]

    def setup_cache(self):
        return {contender: {"spinning": _measure(contender, 1000, 0.0, spin_us=1e6),
                            "parked": _measure(contender, 150, 0.002, spin_us=0.0)}
                for contender in CONTENDERS}

    def track_spinning_us(self, cache, contender, percentile):
        return cache[contender]["spinning"][percentile]
    track_spinning_us.unit = "us"

    def track_parked_us(self, cache, contender, percentile):
        return cache[contender]["parked"][percentile]
    track_parked_us.unit = "us"


class PriorityIsolation:
    """Submit-to-start of priority-255 tasks while another thread tops the
    scheduler up with priority-0 no-ops whenever fewer than 1000 are queued."""

    params = ["p50", "p99"]
    param_names = ["percentile"]

    def setup_cache(self):
        probe = _Probe()
        with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
            balancer, workers = scheduler.balancer, range(scheduler.worker_count)
            stop = threading.Event()

            def backlog():
                return sum(balancer.load(i).tasks for i in workers)

            def flood():
                noop, submit = _Noop(), scheduler.submit_task
                while not stop.is_set():
                    if backlog() < 1000:
                        for _ in repeat(None, 500):
                            submit(noop)
                    else:
                        time.sleep(0.00005)

            flooder = threading.Thread(target=flood, daemon=True)
            flooder.start()
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while backlog() < 1000:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the flood never filled the queues")
                    time.sleep(0.0005)
                return _latencies_us(scheduler.submit_task, _UrgentProbeTask(probe), probe, 200, 0.0005)
            finally:
                stop.set()
                flooder.join()

    def track_priority_255_us(self, cache, percentile):
        return cache[percentile]
    track_priority_255_us.unit = "us"
