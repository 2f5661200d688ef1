"""The metrics benchmark group runs (smoke sizes) and yields figures with the
peers and targets the brief asks for; no timing is asserted."""
from tallyio.bench import _metrics
from tallyio.bench._progress import Progress


def test_metrics_bench_smoke():
    sections = _metrics.sections("smoke")
    tracker = Progress(None, sections=len(sections))
    figures = []
    for name, measure in sections:
        tracker.section(name)
        figures += measure(tracker)
    by_case = {f.case: f for f in figures}
    c_level = [f for f in figures if f.group == "C level, histogram"]
    assert len(c_level) == 2 and all(f.targets and f.samples for f in c_level)
    record = by_case["Histogram.record (one value)"]
    assert set(record.peers) == {_metrics.PROMETHEUS, _metrics.HDRHISTOGRAM}
    assert [t.peer for t in record.targets] == [_metrics.PROMETHEUS, _metrics.HDRHISTOGRAM]
    assert all(len(s) == 2 for s in record.peers.values()) and len(record.samples) == 2
    assert _metrics.PROMETHEUS_COUNTER in by_case["labelled counter inc(1)"].peers
    assert by_case["Histogram.record_many, per value"].samples
