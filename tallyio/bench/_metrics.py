"""The ``metrics`` group: the native histogram's record cost from C (ns per
record in a nogil loop) and per call from Python next to
``prometheus_client.Histogram.observe`` and the ``hdrhistogram`` package's
``record_value`` (the peers run in the same repetitions), the batch record,
and a registry counter next to ``prometheus_client.Counter.inc``.

Every contender records the same 4096 values (log-uniform over 100 ns .. 10 ms,
cycled) through the same loop, so only the call differs; prometheus_client
gets them pre-converted to seconds (its unit) so the conversion is not
charged to it.
"""
from __future__ import annotations

from time import perf_counter_ns
from typing import Callable

import numpy as np

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

PROMETHEUS = "prometheus_client.Histogram.observe"
HDRHISTOGRAM = "hdrhistogram record_value"
PROMETHEUS_COUNTER = "prometheus_client.Counter.inc"


def _values(n: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(2024)
    return np.exp(rng.uniform(np.log(100), np.log(1e7), n)).astype(np.uint64)


def _per_call_ns(record: Callable[[object], object], values: list, calls: int) -> float:
    """ns per call of ``record`` over ``calls`` calls cycling through ``values``."""
    rounds = max(1, calls // len(values))
    start = perf_counter_ns()
    for _ in range(rounds):
        for v in values:
            record(v)
    return (perf_counter_ns() - start) / (rounds * len(values))


def _peers_available() -> dict[str, str]:
    """Peer name -> why it cannot run (empty when both are installed)."""
    missing = {}
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        missing[PROMETHEUS] = "prometheus_client is not installed (pip install prometheus_client)"
    try:
        import hdrh.histogram  # noqa: F401
    except ImportError:
        missing[HDRHISTOGRAM] = "hdrhistogram is not installed (pip install hdrhistogram)"
    return missing


def sections(mode: str) -> list[Section]:
    """The metrics group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 5, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    result: list[Section] = []

    def c_level(progress: Progress) -> list[Figure]:
        from tallyio.metrics._hist import _bench_record_c
        n = max(10_000, 20_000_000 // shrink)

        def measure() -> dict[str, float]:
            out = {}
            for digits in (2, 3):
                ns, count = _bench_record_c(n, digits)
                if count != n:
                    raise RuntimeError(f"C bench recorded {count} values, expected {n}")
                out[f"record, {digits} digits"] = ns
            return out

        samples = alternate([("tallyio", measure)], reps, progress)
        cases = [(case, case) for case in samples["tallyio"]]
        return figures_for("C level, histogram", samples, cases, unit="ns/op", higher_is_better=False,
                           targets={case: [Target(30.0)] for case, _ in cases})
    result.append(("C level: Histogram record", c_level))

    def python_record(progress: Progress) -> list[Figure]:
        from tallyio.metrics import Histogram
        values = [int(v) for v in _values()]
        seconds = [v / 1e9 for v in values]
        calls = max(4096, 400_000 // shrink)
        skipped = _peers_available()
        contenders = []
        mine = Histogram(significant_digits=3)
        contenders.append(("tallyio", lambda: {"record": _per_call_ns(mine.record, values, calls)}))
        if PROMETHEUS not in skipped:
            import prometheus_client
            peer = prometheus_client.Histogram("bench_latency_seconds", "bench",
                                               registry=prometheus_client.CollectorRegistry())
            contenders.append((PROMETHEUS, lambda: {"record": _per_call_ns(peer.observe, seconds, calls)}))
        if HDRHISTOGRAM not in skipped:
            import hdrh.histogram
            hdr = hdrh.histogram.HdrHistogram(1, 3_600_000_000_000, 3)
            contenders.append((HDRHISTOGRAM, lambda: {"record": _per_call_ns(hdr.record_value, values, calls)}))
        samples = alternate(contenders, reps, progress)
        targets = [Target(10.0, peer=p) for p in (PROMETHEUS, HDRHISTOGRAM) if p not in skipped]
        return figures_for("Python level, per call", samples, [("record", "Histogram.record (one value)")],
                           unit="ns/op", higher_is_better=False, targets={"record": targets},
                           skipped_peers=skipped)
    result.append(("Python level: Histogram.record", python_record))

    def python_batch(progress: Progress) -> list[Figure]:
        from tallyio.metrics import Histogram
        values = _values()
        items = max(4096, 4096 * 2000 // shrink)
        h = Histogram(significant_digits=3)

        def batch() -> dict[str, float]:
            rounds = max(1, items // len(values))
            start = perf_counter_ns()
            for _ in range(rounds):
                h.record_many(values)
            return {"record_many": (perf_counter_ns() - start) / (rounds * len(values))}

        samples = alternate([("tallyio", batch)], reps, progress)
        return figures_for("Python level, batch", samples, [("record_many", "Histogram.record_many, per value")],
                           unit="ns/op", higher_is_better=False)
    result.append(("Python level: Histogram.record_many", python_batch))

    def counter(progress: Progress) -> list[Figure]:
        from tallyio.metrics import Registry
        calls = max(4096, 400_000 // shrink)
        cell = Registry(process=False).counter("bench_events", labels=("q",)).labels(q="a")
        ones = [1] * 4096
        contenders = [("tallyio", lambda: {"inc": _per_call_ns(cell.inc, ones, calls)})]
        skipped = {k: v for k, v in _peers_available().items() if k == PROMETHEUS}
        if not skipped:
            import prometheus_client
            peer = prometheus_client.Counter("bench_events", "bench", ["q"],
                                             registry=prometheus_client.CollectorRegistry()).labels(q="a")
            contenders.append((PROMETHEUS_COUNTER, lambda: {"inc": _per_call_ns(peer.inc, ones, calls)}))
        samples = alternate(contenders, reps, progress)
        return figures_for("Python level, per call", samples, [("inc", "labelled counter inc(1)")],
                           unit="ns/op", higher_is_better=False,
                           skipped_peers={PROMETHEUS_COUNTER: skipped[PROMETHEUS]} if skipped else {})
    result.append(("Python level: counter inc", counter))
    return result
