"""tallyio.metrics benchmarks: a latency histogram record from Python (1,000
calls per timing) beside prometheus_client's Histogram.observe and the
hdrhistogram package's record_value, and a nogil batch record."""
import numpy as np

from tallyio.metrics import Histogram

CALLS = 1000


class HistogramRecord:
    def setup(self):
        from hdrh.histogram import HdrHistogram
        from prometheus_client import CollectorRegistry
        from prometheus_client import Histogram as PrometheusHistogram

        self.values = [int(v) for v in np.random.default_rng(7).integers(1_000, 5_000_000, CALLS)]
        self.batch = np.asarray(self.values * 100, dtype=np.uint64)
        self.hist = Histogram()
        self.prometheus = PrometheusHistogram("latency_seconds", "latency", registry=CollectorRegistry())
        self.hdr = HdrHistogram(1, 3_600_000_000_000, 3)

    def time_tallyio_record(self):
        record = self.hist.record
        for v in self.values:
            record(v)

    def time_tallyio_record_many(self):
        self.hist.record_many(self.batch)

    def time_prometheus_observe(self):
        observe = self.prometheus.observe
        for v in self.values:
            observe(v / 1e9)

    def time_hdrhistogram_record(self):
        record = self.hdr.record_value
        for v in self.values:
            record(v)
