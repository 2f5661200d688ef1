"""Metrics worth looking at: native HDR-style latency histograms, a registry of
counters, gauges and histograms, Prometheus exposition and the HTML run report.

Beside the data flow: any stage may record into it; it imports no engine stage.

>>> from tallyio.metrics import Registry, MetricsServer, write_report
>>> reg = Registry(process=False)
>>> lat = reg.histogram("decode_latency_seconds", "decode latency").local()   # this thread's recorder
>>> for ns in (900, 1_200, 45_000):
...     lat.record(ns)
>>> reg.snapshot()["histograms"]["decode_latency_seconds"]["percentiles"]["p50"]
1200
"""
from tallyio.metrics._hist import Buckets, Histogram, HistogramSet
from tallyio.metrics._cells import CounterCell, GaugeCell
from tallyio.metrics.registry import DEFAULT_BUCKETS_NS, Counter, Gauge, HistogramFamily, Registry, metric_key
from tallyio.metrics.exposition import MetricsServer, generate_text
from tallyio.metrics.report import add_report_command, add_report_option, write_report

__all__ = ["Histogram", "HistogramSet", "Buckets", "CounterCell", "GaugeCell", "Registry", "Counter", "Gauge",
           "HistogramFamily", "DEFAULT_BUCKETS_NS", "metric_key", "MetricsServer", "generate_text",
           "write_report", "add_report_command", "add_report_option"]
