"""Metrics worth looking at: native HDR-style latency histograms, a registry of
counters, gauges and histograms, Prometheus exposition and the HTML run report.

Beside the data flow: any stage may record into it; it imports no engine stage.
"""
