"""The metrics registry: named counters, gauges and native histograms with
labels, the process's CPU and memory (psutil), and rates over sliding windows
from periodic samples (owned by tallyio.metrics; reads nothing of the engine).

Histograms hold nanoseconds (``HistogramSet``: one recorder per thread);
exposition converts them to seconds, so name them ``*_seconds``.

>>> reg = Registry(process=False)
>>> received = reg.counter("tx_received", "pending transactions received", labels=("source",))
>>> received.labels(source="ws").inc(3)
>>> latency = reg.histogram("decode_latency_seconds", "decode latency")
>>> latency.record(1_500)                       # nanoseconds
>>> snap = reg.snapshot()
>>> snap["counters"]['tx_received{source="ws"}'], snap["histograms"]["decode_latency_seconds"]["count"]
(3, 1)
"""
from __future__ import annotations

import bisect
import math
import os
import re
import threading
import time
from collections import deque
from typing import Callable, Iterable, Iterator

from tallyio.errors import MetricError
from tallyio.metrics._cells import CounterCell, GaugeCell
from tallyio.metrics._hist import DEFAULT_HIGHEST, Histogram, HistogramSet

__all__ = ["Registry", "Counter", "Gauge", "HistogramFamily", "DEFAULT_BUCKETS_NS", "metric_key"]

#: Prometheus ``le`` bounds of exported histograms, in nanoseconds: 100 ns to
#: 10 s (prometheus_client's defaults start at 5 ms, too coarse for a hot path)
DEFAULT_BUCKETS_NS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
                      500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
                      100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000,
                      5_000_000_000, 10_000_000_000)
#: sliding windows (seconds) of the rates in ``snapshot()``
SNAPSHOT_WINDOWS = (1.0, 10.0, 60.0)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def metric_key(name: str, labels: dict[str, str] | tuple[tuple[str, str], ...] = ()) -> str:
    """``name{a="x",b="y"}``: how snapshots and history name one labelled metric.

    >>> metric_key("tx_total", {"source": "ws"})
    'tx_total{source="ws"}'
    """
    pairs = labels.items() if isinstance(labels, dict) else labels
    if not pairs:
        return name
    return name + "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Family:
    """A named metric with fixed label names; one child per label values."""

    kind = ""

    def __init__(self, name: str, help: str, labels: tuple[str, ...]):
        self.name = name
        self.help = help
        self.labelnames = labels
        self._children: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()
        if not labels:
            self._default = self._child_for(())

    def _new_child(self):
        raise NotImplementedError

    def _child_for(self, values: tuple[str, ...]):
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.get(values)
                if child is None:
                    child = self._children[values] = self._new_child()
        return child

    def labels(self, *values: object, **by_name: object):
        """The child for these label values (positional, or by name).

        >>> reg = Registry(process=False)
        >>> c = reg.counter("drops", labels=("queue",)); c.labels("spsc").inc(); c.labels(queue="spsc").value
        1
        """
        if not self.labelnames:
            raise MetricError(f"{self.name} has no labels")
        if values and by_name:
            raise MetricError(f"{self.name}.labels: give label values by position or by name, not both")
        if by_name:
            if set(by_name) != set(self.labelnames):
                raise MetricError(f"{self.name}.labels: expected labels {list(self.labelnames)}, got {sorted(by_name)}")
            values = tuple(by_name[n] for n in self.labelnames)
        if len(values) != len(self.labelnames):
            raise MetricError(f"{self.name}.labels: expected {len(self.labelnames)} values "
                              f"({list(self.labelnames)}), got {len(values)}")
        return self._child_for(tuple(str(v) for v in values))

    def children(self) -> Iterator[tuple[dict[str, str], object]]:
        """(labels as a dict, child) for every child, in creation order."""
        with self._lock:
            items = list(self._children.items())
        for values, child in items:
            yield dict(zip(self.labelnames, values)), child

    def _unlabelled(self):
        if self.labelnames:
            raise MetricError(f"{self.name} has labels {list(self.labelnames)}: use .labels(...) first")
        return self._default


class Counter(_Family):
    """A family of integer counters (``labels(...)`` gives a ``CounterCell``)."""

    kind = "counter"

    def _new_child(self):
        return CounterCell()

    def inc(self, amount: int = 1) -> None:
        self._unlabelled().inc(amount)

    @property
    def value(self) -> int:
        return self._unlabelled().value


class Gauge(_Family):
    """A family of gauges (``labels(...)`` gives a ``GaugeCell``)."""

    kind = "gauge"

    def _new_child(self):
        return GaugeCell()

    def set(self, value: float) -> None:
        self._unlabelled().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._unlabelled().dec(amount)

    def set_function(self, fn: Callable[[], float]) -> None:
        self._unlabelled().set_function(fn)

    @property
    def value(self) -> float:
        return self._unlabelled().value


class HistogramFamily(_Family):
    """A family of latency histograms in nanoseconds; each child is a
    ``HistogramSet`` (one native recorder per thread, merged on read)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: tuple[str, ...], *, significant_digits: int,
                 highest: int, buckets_ns: tuple[int, ...]):
        self.significant_digits = significant_digits
        self.highest = highest
        if not buckets_ns or list(buckets_ns) != sorted(set(buckets_ns)) or buckets_ns[0] <= 0:
            raise MetricError(f"{name}: buckets_ns must be increasing positive nanoseconds, got {buckets_ns!r}")
        self.buckets_ns = tuple(int(b) for b in buckets_ns)
        super().__init__(name, help, labels)

    def _new_child(self):
        return HistogramSet(significant_digits=self.significant_digits, highest=self.highest)

    def record(self, value_ns: int) -> None:
        """Record into the calling thread's recorder (``local().record``)."""
        self._unlabelled().record(value_ns)

    def local(self) -> Histogram:
        """The calling thread's recorder: keep it in a variable on hot paths."""
        return self._unlabelled().local()

    def merged(self) -> Histogram:
        return self._unlabelled().merged()


class _HistogramFromFunction:
    """A histogram child read by calling a function (a HistogramFamily made by
    ``Registry.histogram_function``): ``merged()`` is ``fn()``."""

    def __init__(self, fn: Callable[[], Histogram]):
        self._fn = fn

    def merged(self) -> Histogram:
        h = self._fn()
        if not isinstance(h, Histogram):
            raise MetricError(f"a histogram function must return a tallyio.metrics.Histogram, got {type(h).__name__}")
        return h


class _ProcessStats:
    """CPU and memory of this process, read through psutil at collect time."""

    def __init__(self):
        import psutil
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)     # starts the interval the first read measures
        self._lock = threading.Lock()

    def read(self) -> dict[str, float]:
        with self._lock:
            p = self._process
            with p.oneshot():
                cpu = p.cpu_times()
                memory = p.memory_info()
                out = {
                    "process_cpu_seconds_total": cpu.user + cpu.system,
                    "process_cpu_percent": p.cpu_percent(None),
                    "process_resident_memory_bytes": float(memory.rss),
                    "process_virtual_memory_bytes": float(memory.vms),
                    "process_threads": float(p.num_threads()),
                    "process_start_time_seconds": p.create_time(),
                }
                try:
                    out["process_open_fds"] = float(p.num_fds())
                except (AttributeError, OSError):    # not on every platform
                    pass
        return out


PROCESS_HELP = {
    "process_cpu_seconds_total": ("counter", "User and system CPU time spent, in seconds."),
    "process_cpu_percent": ("gauge", "CPU use since the previous read, in percent of one core."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_threads": ("gauge", "Number of OS threads of the process."),
    "process_start_time_seconds": ("gauge", "Start time of the process since the Unix epoch, in seconds."),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
}


class Registry:
    """Named metrics with labels, the process's CPU and memory, and history.

    ``sample()`` (or a background ``start_sampling(interval)``) appends the
    value of every counter, gauge, histogram count and process figure to a
    bounded history; ``rate()`` and ``error_rate()`` read sliding windows of
    it, and the run report draws it.

    >>> reg = Registry(process=False)
    >>> done = reg.counter("tasks_done"); failed = reg.counter("tasks_failed")
    >>> reg.sample(now=0.0); done.inc(100); failed.inc(5); reg.sample(now=10.0)
    >>> reg.rate("tasks_done", window=10.0), reg.error_rate("tasks_failed", "tasks_done", window=10.0)
    (10.0, 0.05)
    """

    def __init__(self, *, process: bool = True, history: int = 3600):
        if history < 2:
            raise MetricError(f"history must keep at least 2 samples, got {history}")
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()
        self._process = _ProcessStats() if process else None
        self._history_len = history
        self._history: dict[str, deque[tuple[float, float]]] = {}
        self._history_lock = threading.Lock()
        self._sampler: threading.Thread | None = None
        self._stop_sampling = threading.Event()
        self.started = time.time()

    # ---- declaring metrics ------------------------------------------------------

    def _declare(self, cls, name: str, help: str, labels: Iterable[str], **options) -> _Family:
        labels = tuple(labels)
        if not isinstance(name, str) or not _NAME.match(name):
            raise MetricError(f"invalid metric name {name!r}: letters, digits, '_' and ':', not starting with a digit")
        for label in labels:
            if not isinstance(label, str) or not _LABEL.match(label) or label.startswith("__"):
                raise MetricError(f"{name}: invalid label name {label!r}")
            if cls is HistogramFamily and label == "le":
                raise MetricError(f"{name}: 'le' is reserved for histogram buckets")
        if len(set(labels)) != len(labels):
            raise MetricError(f"{name}: repeated label names {list(labels)}")
        if name in PROCESS_HELP:
            raise MetricError(f"{name} is reserved for the process metrics")
        with self._lock:
            existing = self._families.get(name)
            if existing is not None:
                if type(existing) is not cls or existing.labelnames != labels:
                    raise MetricError(f"{name} is already registered as a {existing.kind} with labels "
                                      f"{list(existing.labelnames)}")
                return existing
            family = self._families[name] = cls(name, help, labels, **options)
            return family

    def counter(self, name: str, help: str = "", labels: Iterable[str] = ()) -> Counter:
        """The counter family ``name`` (made on first call, the same one after)."""
        return self._declare(Counter, name, help, labels)

    def gauge(self, name: str, help: str = "", labels: Iterable[str] = ()) -> Gauge:
        """The gauge family ``name`` (made on first call, the same one after)."""
        return self._declare(Gauge, name, help, labels)

    def histogram(self, name: str, help: str = "", labels: Iterable[str] = (), *, significant_digits: int = 3,
                  highest: int = DEFAULT_HIGHEST, buckets_ns: Iterable[int] = DEFAULT_BUCKETS_NS) -> HistogramFamily:
        """The latency histogram family ``name`` (nanoseconds; exported in seconds
        with ``buckets_ns`` as its ``le`` bounds)."""
        return self._declare(HistogramFamily, name, help, labels, significant_digits=significant_digits,
                             highest=highest, buckets_ns=tuple(buckets_ns))

    def histogram_function(self, name: str, fn: Callable[[], Histogram], help: str = "", *,
                           buckets_ns: Iterable[int] = DEFAULT_BUCKETS_NS) -> HistogramFamily:
        """A histogram read by calling ``fn()`` at each scrape, sample and report:
        for histograms kept elsewhere (a scheduler's merged queue-wait
        histogram), exported like any other.

        >>> reg = Registry(process=False)
        >>> kept = Histogram(); kept.record(2_000)
        >>> _ = reg.histogram_function("sched_wait_seconds", lambda: kept, "queue wait")
        >>> reg.snapshot()["histograms"]["sched_wait_seconds"]["count"]
        1
        """
        if not callable(fn):
            raise TypeError(f"{name}: histogram_function needs a callable returning a Histogram, "
                            f"got {type(fn).__name__}")
        family = self._declare(HistogramFamily, name, help, (), significant_digits=3, highest=DEFAULT_HIGHEST,
                               buckets_ns=tuple(buckets_ns))
        with family._lock:
            family._default = family._children[()] = _HistogramFromFunction(fn)
        return family

    def families(self) -> list[_Family]:
        with self._lock:
            return list(self._families.values())

    def process_stats(self) -> dict[str, float]:
        """The process figures (empty if the registry was made with process=False)."""
        return self._process.read() if self._process else {}

    # ---- history and sliding windows ------------------------------------------------

    def sample(self, now: float | None = None) -> None:
        """Append the current value of every counter, gauge, histogram count and
        process figure to the history, at time ``now`` (default: time.monotonic())."""
        t = time.monotonic() if now is None else float(now)
        values: list[tuple[str, float]] = []
        for family in self.families():
            for labels, child in family.children():
                key = metric_key(family.name, labels)
                if isinstance(family, HistogramFamily):
                    values.append((key + ":count", float(child.merged().count)))
                else:
                    values.append((key, float(child.value)))
        values.extend(self.process_stats().items())
        with self._history_lock:
            for key, value in values:
                series = self._history.get(key)
                if series is None:
                    series = self._history[key] = deque(maxlen=self._history_len)
                series.append((t, value))

    def history(self) -> dict[str, tuple[list[float], list[float]]]:
        """``{key: (times, values)}`` of every sampled series (histograms as ``key:count``)."""
        with self._history_lock:
            return {key: ([t for t, _ in s], [v for _, v in s]) for key, s in self._history.items()}

    def _window(self, key: str, window: float) -> tuple[float, float] | None:
        """(change of the value, elapsed seconds) over the last ``window`` seconds of samples."""
        if not window > 0:
            raise MetricError(f"window must be > 0 seconds, got {window}")
        with self._history_lock:
            series = self._history.get(key)
            points = list(series) if series else []
        if len(points) < 2:
            return None
        t_last, v_last = points[-1]
        times = [t for t, _ in points]
        # the oldest sample inside the window, or the one just before it if none is
        i = bisect.bisect_left(times, t_last - window)
        i = min(i, len(points) - 2)
        t_first, v_first = points[i]
        if t_last <= t_first:
            return None
        return v_last - v_first, t_last - t_first

    def rate(self, name: str, window: float = 10.0, **labels: str) -> float:
        """Per-second increase of a counter (or histogram count) over the last
        ``window`` seconds of samples; NaN until two samples exist."""
        key = metric_key(name, {k: str(v) for k, v in labels.items()})
        if key not in self._history and key + ":count" in self._history:
            key += ":count"
        change = self._window(key, window)
        return math.nan if change is None else change[0] / change[1]

    def error_rate(self, errors: str, total: str, window: float = 10.0, **labels: str) -> float:
        """Errors per event over the last ``window`` seconds: the increase of
        counter ``errors`` over the increase of counter ``total``; NaN when
        nothing happened."""
        suffix = {k: str(v) for k, v in labels.items()}
        e = self._window(metric_key(errors, suffix), window)
        n = self._window(metric_key(total, suffix), window)
        if e is None or n is None or n[0] <= 0:
            return math.nan
        return e[0] / n[0]

    def start_sampling(self, interval: float = 1.0) -> None:
        """Call ``sample()`` every ``interval`` seconds on a daemon thread."""
        if not interval > 0:
            raise MetricError(f"sampling interval must be > 0 seconds, got {interval}")
        if self._sampler is not None and self._sampler.is_alive():
            raise MetricError("sampling already started")
        self._stop_sampling.clear()

        def loop() -> None:
            while not self._stop_sampling.is_set():
                self.sample()
                self._stop_sampling.wait(interval)

        self._sampler = threading.Thread(target=loop, name="tallyio-metrics-sampler", daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        """Stop the sampling thread (takes one last sample)."""
        if self._sampler is not None:
            self._stop_sampling.set()
            self._sampler.join()
            self._sampler = None
            self.sample()

    # ---- reading everything -------------------------------------------------------------

    def snapshot(self, percentiles: Iterable[float] = (50.0, 90.0, 99.0, 99.9, 99.99)) -> dict:
        """Every metric as plain data: counters, gauges, histograms (count, sum,
        min, max, mean and percentiles in nanoseconds), the process figures and
        per-second rates of each counter over 1, 10 and 60 s of samples."""
        ps = tuple(percentiles)
        out: dict = {"time": time.time(), "uptime_s": time.time() - self.started,
                     "counters": {}, "gauges": {}, "histograms": {}, "rates": {}, "help": {}}
        for family in self.families():
            out["help"][family.name] = family.help
            for labels, child in family.children():
                key = metric_key(family.name, labels)
                if isinstance(family, Counter):
                    out["counters"][key] = child.value
                    rates = {f"{w:g}s": self.rate(family.name, w, **labels) for w in SNAPSHOT_WINDOWS}
                    out["rates"][key] = {k: v for k, v in rates.items() if not math.isnan(v)}
                elif isinstance(family, Gauge):
                    out["gauges"][key] = child.value
                else:
                    h = child.merged()
                    out["histograms"][key] = {
                        "count": h.count, "sum": h.sum, "min": h.min, "max": h.max,
                        "mean": None if h.count == 0 else h.mean, "saturated": h.saturated,
                        "percentiles": {f"p{p:g}": h.percentile(p) for p in ps},
                    }
        out["process"] = self.process_stats()
        return out
