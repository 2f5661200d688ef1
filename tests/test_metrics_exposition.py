"""Prometheus exposition: scrape the /metrics endpoint over HTTP and parse it
with prometheus_client's own parser."""
import json
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tallyio.metrics import DEFAULT_BUCKETS_NS, MetricsServer, Registry
from tallyio.metrics.exposition import CONTENT_TYPE


def scrape(server):
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
def registry():
    reg = Registry()
    reg.counter("tx_received", "pending transactions received", labels=("source",)).labels(source="ws").inc(7)
    reg.counter("tx_dropped", 'dropped: queue "full"\nor stale', labels=("why",)).labels(why='a"b\\c\nd').inc(2)
    reg.gauge("queue_depth", "items waiting", labels=("queue",)).labels(queue="spsc").set(12)
    return reg


def test_scrape_parses_with_prometheus_client(registry):
    lat = registry.histogram("decode_latency_seconds", "decode latency", labels=("stage",))
    rng = np.random.default_rng(7)
    values = np.exp(rng.uniform(np.log(50), np.log(5e9), 20_000)).astype(np.uint64)
    lat.labels(stage="decode").local().record_many(values)
    with MetricsServer(registry) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        families = scrape(server)

    received = families["tx_received"]
    assert received.type == "counter"
    assert [(s.name, s.labels, s.value) for s in received.samples] == [("tx_received_total", {"source": "ws"}, 7)]
    dropped = families["tx_dropped"]
    assert dropped.documentation == 'dropped: queue "full"\nor stale'
    assert dropped.samples[0].labels == {"why": 'a"b\\c\nd'}         # escaping round-trips
    assert families["queue_depth"].samples[0].value == 12.0

    hist = families["decode_latency_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name.endswith("_bucket")]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds[:-1] == [b / 1e9 for b in DEFAULT_BUCKETS_NS] and bounds[-1] == float("inf")
    assert bounds[0] < 1e-6                                   # microsecond scale, not prometheus_client's 5 ms
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == len(values)
    # each bucket holds the values at or below its bound, to the histogram's precision
    for bound_ns, got in zip(DEFAULT_BUCKETS_NS, counts):
        exact = int((values <= bound_ns).sum())
        near = int((values <= bound_ns * (1 - 1e-3)).sum())
        assert near <= got <= exact, (bound_ns, near, got, exact)
    total = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}
    assert total["decode_latency_seconds_count"] == len(values)
    assert total["decode_latency_seconds_sum"] == pytest.approx(values.sum(dtype=np.float64) / 1e9)

    assert families["process_resident_memory_bytes"].samples[0].value > 1e6
    assert families["process_cpu_seconds"].type == "counter"


def test_snapshot_endpoint_and_404(registry):
    with MetricsServer(registry) as server:
        base = server.url.rsplit("/", 1)[0]
        with urllib.request.urlopen(base + "/snapshot", timeout=10) as response:
            snap = json.loads(response.read())
        assert snap["counters"]['tx_received{source="ws"}'] == 7
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/nope", timeout=10)
        assert info.value.code == 404
        info.value.close()


def test_stop_closes_the_port(registry):
    server = MetricsServer(registry).start()
    port = server.port
    server.stop()
    server.stop()                                              # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_bad_port_and_taken_port(registry):
    with pytest.raises(ValueError, match="port"):
        MetricsServer(registry, port=70000)
    with MetricsServer(registry) as first:
        with pytest.raises(OSError):
            MetricsServer(registry, port=first.port).start()
        with pytest.raises(RuntimeError, match="already started"):
            first.start()


def test_scrapes_while_threads_record(registry):
    """Scrapes in a loop while a thread records in nogil batches: every scrape
    parses, and the count only grows."""
    lat = registry.histogram("exec_latency_seconds")
    stop = threading.Event()
    batch = np.arange(1000, 1000 + 4096, dtype=np.uint64)

    def record():
        rec = lat.local()
        while not stop.is_set():
            rec.record_many(batch)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        with MetricsServer(registry) as server:
            seen = []
            for _ in range(10):
                family = scrape(server)["exec_latency_seconds"]
                count = [s.value for s in family.samples if s.name.endswith("_count")][0]
                inf = [s.value for s in family.samples if s.labels.get("le") == "+Inf"][0]
                assert inf == count
                seen.append(count)
    finally:
        stop.set()
        writer.join()
    assert seen == sorted(seen)
    assert lat.merged().count % 4096 == 0


def test_a_failing_gauge_fails_the_scrape_with_500_and_the_server_lives(registry):
    broken = registry.gauge("broken_depth")

    def explode():
        raise RuntimeError("queue closed")

    broken.set_function(explode)
    with MetricsServer(registry) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url, timeout=10)
        assert info.value.code == 500 and "queue closed" in info.value.reason
        info.value.close()
        broken.set(1)
        assert scrape(server)["broken_depth"].samples[0].value == 1.0
