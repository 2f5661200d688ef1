"""Side-by-side benchmarks of tallyio's core against what a Python user would
otherwise pick, measured in one process run, alternating the contenders.

    tallyio bench            # full run
    tallyio bench --quick    # fewer, shorter repetitions
    tallyio bench --smoke    # tiny sizes: proves every benchmark runs (CI)
    tallyio bench --json out.json

Two kinds of figures, reported separately (DESIGN.md):

* C level: nanoseconds per operation measured inside nogil loops
  (``tallyio._ext._testing.bench_*``), the cost seen by Cython code and the
  future scheduler;
* Python level: the cost per call from Python, each tallyio figure next to
  its stdlib peer (``queue.SimpleQueue``, ``collections.deque``, ``bytearray``)
  with the ratio peer/tallyio (> 1 means tallyio is faster).

Every figure is the median of several repetitions; the spread is (max-min)/median.
"""
from __future__ import annotations

import collections
import json
import os
import platform
import queue
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Figure", "run", "machine_description", "format_table"]


@dataclass
class Figure:
    """One measured figure: the median of `samples` (ns per operation)."""

    group: str
    case: str
    samples: list = field(default_factory=list)
    peer: str | None = None
    peer_samples: list = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    @property
    def peer_median(self) -> float | None:
        return statistics.median(self.peer_samples) if self.peer_samples else None

    @property
    def ratio(self) -> float | None:
        """Peer time over tallyio time: > 1 means tallyio is faster."""
        if not self.peer_samples or not self.median:
            return None
        return self.peer_median / self.median


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


def _per_call_ns(fn: Callable[[int], None], calls: int) -> float:
    start = time.perf_counter_ns()
    fn(calls)
    return (time.perf_counter_ns() - start) / calls


# ---- Python-level contenders: each runs `calls` iterations of one round trip
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


def run(*, quick: bool = False, smoke: bool = False,
        progress: Callable[[str], None] | None = None) -> dict:
    """Run every benchmark and return ``{"machine": ..., "figures": [...]}``.

    >>> result = run(smoke=True)
    >>> sorted(result) == ["figures", "machine"] and len(result["figures"]) > 0
    True
    """
    from tallyio._ext import _testing

    reps = 2 if smoke else (5 if quick else 9)
    shrink = 1000 if smoke else (4 if quick else 1)
    say = progress or (lambda msg: None)
    figures: list[Figure] = []

    # C level: each bench_<component>(n) returns {case: ns per op}
    c_ops = max(1000, 2_000_000 // shrink)
    for component in ("spsc", "mpmc", "deque", "pool"):
        fn = getattr(_testing, f"bench_{component}")
        by_case: dict[str, Figure] = {}
        for rep in range(reps):
            say(f"C level: {component} (repetition {rep + 1}/{reps})")
            for case, ns in fn(c_ops).items():
                by_case.setdefault(case, Figure(f"C level, {component}", case)).samples.append(ns)
        figures.extend(by_case.values())

    # Python level, alternating tallyio and the peer within each repetition
    for case, mine, peer_name, peer, calls in PYTHON_CASES:
        fig = Figure("Python level, per call", case, peer=peer_name)
        n = max(100, calls // shrink)
        for rep in range(reps):
            say(f"Python level: {case} (repetition {rep + 1}/{reps})")
            fig.samples.append(_per_call_ns(mine, n))
            fig.peer_samples.append(_per_call_ns(peer, n))
        figures.append(fig)
    for case, fn, items in BATCH_CASES:
        fig = Figure("Python level, batch", case)
        n = max(4096, items // shrink)
        for rep in range(reps):
            say(f"Python level: {case} (repetition {rep + 1}/{reps})")
            fig.samples.append(_per_call_ns(fn, n))
        figures.append(fig)
    return {"machine": machine_description(), "figures": figures}


def format_table(result: dict) -> str:
    """The figures as a plain-text table, grouped, with ratios to the peers."""
    lines = []
    m = result["machine"]
    lines.append(f"tallyio {m['tallyio']} on {m['cpu']} ({m['usable_cpus']} usable CPUs, "
                 f"{m['numa_nodes']} NUMA node(s)), Python {m['python']}")
    lines.append("median ns per operation over repetitions; spread = (max-min)/median; "
                 "ratio = peer/tallyio (> 1: tallyio faster)")
    figures = result["figures"]
    width = max(len(f.case) for f in figures) + 2
    group = None
    for f in figures:
        if f.group != group:
            group = f.group
            has_peer = any(g.peer for g in figures if g.group == group)
            lines.append("")
            lines.append(group)
            header = f"  {'case':<{width}} {'ns/op':>9} {'spread':>7}"
            if has_peer:
                header += f"   {'peer':<30} {'ns/op':>9} {'ratio':>6}"
            lines.append(header)
        row = f"  {f.case:<{width}} {f.median:>9.1f} {f.spread:>6.0%}"
        if f.peer:
            row += f"   {f.peer:<30} {f.peer_median:>9.1f} {f.ratio:>6.2f}"
        lines.append(row)
    return "\n".join(lines)


def to_json(result: dict) -> str:
    figs = []
    for f in result["figures"]:
        d = asdict(f)
        d.update(median_ns=f.median, spread=f.spread, peer_median_ns=f.peer_median, ratio=f.ratio)
        figs.append(d)
    return json.dumps({"machine": result["machine"], "figures": figs}, indent=2)
