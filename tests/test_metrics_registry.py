"""tallyio.metrics.Registry: names and labels, counters and gauges, histogram
families, process figures from psutil, sliding-window rates, snapshot."""
import math
import os
import threading

import psutil
import pytest

from conftest import run_threads
from tallyio.errors import MetricError
from tallyio.metrics import Registry
from tallyio.metrics._cells import CounterCell, GaugeCell


def test_counters_with_labels():
    reg = Registry(process=False)
    c = reg.counter("tx_received", "received", labels=("source", "kind"))
    c.labels("ws", "swap").inc()
    c.labels(source="ws", kind="swap").inc(4)
    c.labels(source="http", kind="swap").inc(2)
    snap = reg.snapshot()["counters"]
    assert snap == {'tx_received{source="ws",kind="swap"}': 5, 'tx_received{source="http",kind="swap"}': 2}


def test_declaring_twice_returns_the_same_family_and_conflicts_are_refused():
    reg = Registry(process=False)
    a = reg.counter("x", labels=("a",))
    assert reg.counter("x", labels=("a",)) is a
    with pytest.raises(MetricError, match="already registered as a counter"):
        reg.gauge("x", labels=("a",))
    with pytest.raises(MetricError, match="already registered"):
        reg.counter("x", labels=("b",))


@pytest.mark.parametrize("name, labels, words", [
    ("9lives", (), "invalid metric name"), ("a-b", (), "invalid metric name"), ("", (), "invalid metric name"),
    ("ok", ("bad-label",), "invalid label name"), ("ok", ("__reserved",), "invalid label name"),
    ("ok", ("a", "a"), "repeated"), ("process_threads", (), "reserved"),
])
def test_bad_names_are_refused(name, labels, words):
    with pytest.raises(MetricError, match=words):
        Registry(process=False).counter(name, labels=labels)


def test_le_is_reserved_for_histograms():
    with pytest.raises(MetricError, match="'le' is reserved"):
        Registry(process=False).histogram("lat_seconds", labels=("le",))


def test_wrong_label_use_is_refused():
    reg = Registry(process=False)
    c = reg.counter("c", labels=("a", "b"))
    with pytest.raises(MetricError, match="expected 2 values"):
        c.labels("x")
    with pytest.raises(MetricError, match="expected labels"):
        c.labels(a="x", z="y")
    with pytest.raises(MetricError, match="use .labels"):
        c.inc()
    with pytest.raises(MetricError, match="has no labels"):
        reg.counter("plain").labels("x")


def test_counter_only_goes_up():
    cell = CounterCell()
    with pytest.raises(MetricError, match="only goes up"):
        cell.inc(-1)
    with pytest.raises(TypeError, match="must be an int"):
        cell.inc(0.5)
    with pytest.raises(TypeError, match="must be an int"):
        cell.inc(True)
    cell.inc(2**64 - 1)
    with pytest.raises(MetricError, match="2\\*\\*64"):
        cell.inc()
    assert cell.value == 2**64 - 1


def test_gauges():
    g = GaugeCell()
    g.set(5); g.inc(2.5); g.dec()
    assert g.value == 6.5
    for bad in (float("nan"), float("inf")):
        with pytest.raises(MetricError, match="finite"):
            g.set(bad)
    with pytest.raises(TypeError, match="must be a number"):
        g.set("3")
    depth = [7]
    g.set_function(lambda: depth[0])
    depth[0] = 9
    assert g.value == 9.0
    with pytest.raises(TypeError, match="callable"):
        g.set_function(3)


@pytest.mark.concurrency
def test_counter_increments_from_many_threads_are_never_lost():
    """Python threads incrementing one counter (one C addition under the GIL
    each, where `x += 1` on an attribute can lose updates)."""
    reg = Registry(process=False)
    c = reg.counter("hits")
    n = 200_000

    def hammer():
        inc = c.inc
        for _ in range(n):
            inc()

    run_threads(*[(hammer, ())] * 4)
    assert c.value == 4 * n


def test_histogram_family_records_per_thread_and_merges():
    reg = Registry(process=False)
    lat = reg.histogram("decode_latency_seconds", labels=("stage",), significant_digits=2)
    child = lat.labels(stage="decode")
    both = threading.Barrier(2)

    def record(values):
        rec = child.local()
        both.wait()                  # alive at once: each has its own recorder
        for v in values:
            rec.record(v)

    run_threads((record, (range(1000, 2000),)), (record, (range(5000, 6000),)))
    merged = child.merged()
    assert merged.count == 2000 and merged.min == 1000 and merged.max == 5999 and len(child) == 2


def test_histogram_buckets_must_increase():
    with pytest.raises(MetricError, match="buckets_ns"):
        Registry(process=False).histogram("a_seconds", buckets_ns=(10, 5))


def test_process_figures_come_from_psutil():
    reg = Registry()
    stats = reg.process_stats()
    me = psutil.Process(os.getpid())
    assert stats["process_resident_memory_bytes"] > 1e6
    assert abs(stats["process_resident_memory_bytes"] - me.memory_info().rss) < 64 * 2**20
    assert stats["process_threads"] >= 1 and stats["process_cpu_seconds_total"] > 0
    assert reg.snapshot()["process"].keys() == stats.keys()


def test_rates_over_sliding_windows():
    reg = Registry(process=False)
    done = reg.counter("done", labels=("q",))
    errors = reg.counter("errors", labels=("q",))
    t = 0.0
    for second in range(120):                       # 100/s for a minute, then 300/s
        done.labels(q="a").inc(100 if second < 60 else 300)
        errors.labels(q="a").inc(1 if second < 60 else 30)
        t += 1.0
        reg.sample(now=t)
    assert reg.rate("done", window=10.0, q="a") == pytest.approx(300.0)
    # a window longer than the history spans all of it: first sample at t=1 (100 done), last at t=120
    assert reg.rate("done", window=120.0, q="a") == pytest.approx((60 * 100 + 60 * 300 - 100) / 119)
    assert reg.error_rate("errors", "done", window=10.0, q="a") == pytest.approx(0.1)
    assert reg.error_rate("errors", "done", window=200.0, q="a") == pytest.approx(
        (60 + 60 * 30 - 1) / (6000 + 60 * 300 - 100))
    rates = reg.snapshot()["rates"]['done{q="a"}']
    assert rates["1s"] == pytest.approx(300.0) and rates["10s"] == pytest.approx(300.0)


def test_rates_before_two_samples_are_nan_and_windows_must_be_positive():
    reg = Registry(process=False)
    reg.counter("done").inc()
    assert math.isnan(reg.rate("done"))
    reg.sample(now=1.0)
    assert math.isnan(reg.rate("done"))
    with pytest.raises(MetricError, match="window"):
        reg.rate("done", window=0)
    assert math.isnan(reg.error_rate("done", "done"))


def test_history_is_bounded():
    reg = Registry(process=False, history=5)
    reg.counter("c")
    for i in range(20):
        reg.sample(now=float(i))
    times, values = reg.history()["c"]
    assert times == [15.0, 16.0, 17.0, 18.0, 19.0]


def test_background_sampling_thread_starts_and_stops():
    reg = Registry()
    reg.counter("c").inc()
    reg.start_sampling(0.01)
    with pytest.raises(MetricError, match="already"):
        reg.start_sampling(0.01)
    event = threading.Event()
    event.wait(0.1)
    reg.stop_sampling()
    times, _ = reg.history()["c"]
    assert len(times) >= 2 and times == sorted(times)
    assert "process_resident_memory_bytes" in reg.history()
    assert not any(t.name == "tallyio-metrics-sampler" for t in threading.enumerate())
    with pytest.raises(MetricError, match="interval"):
        reg.start_sampling(0)


def test_snapshot_shape():
    reg = Registry(process=False)
    reg.gauge("depth").set(3)
    h = reg.histogram("lat_seconds")
    snap = reg.snapshot()
    assert snap["gauges"] == {"depth": 3.0}
    lat = snap["histograms"]["lat_seconds"]
    assert lat["count"] == 0 and lat["percentiles"]["p50"] is None
    h.record(1234)
    snap = reg.snapshot(percentiles=(50,))
    assert snap["histograms"]["lat_seconds"]["percentiles"] == {"p50": 1234}
    assert snap["histograms"]["lat_seconds"]["mean"] == 1234.0


def test_histogram_function_exports_a_histogram_kept_elsewhere():
    from prometheus_client.parser import text_string_to_metric_families

    from tallyio.metrics import Histogram, generate_text

    reg = Registry(process=False)
    kept = Histogram(significant_digits=2)
    reg.histogram_function("sched_wait_seconds", lambda: kept, "queue wait")
    kept.record_n(3_000, 10)
    families = {f.name: f for f in text_string_to_metric_families(generate_text(reg))}
    count = [s.value for s in families["sched_wait_seconds"].samples if s.name.endswith("_count")]
    assert count == [10]
    reg.sample(now=0.0); kept.record_n(3_000, 5); reg.sample(now=1.0)
    assert reg.rate("sched_wait_seconds", window=1.0) == 5.0
    with pytest.raises(TypeError, match="callable"):
        reg.histogram_function("other_seconds", 3)
    reg.histogram_function("bad_seconds", lambda: "nope")
    with pytest.raises(MetricError, match="must return a tallyio.metrics.Histogram"):
        reg.snapshot()
