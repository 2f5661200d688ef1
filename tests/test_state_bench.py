"""The state benchmark group runs in smoke mode and yields a figure per case
(measured, not skipped), peers measured in the same repetitions."""
import math

from tallyio.bench._progress import Progress
from tallyio.bench._state import sections


def test_state_bench_smoke_sections_produce_figures():
    secs = sections("smoke")
    assert len(secs) >= 6
    figures = []
    for _name, measure in secs:
        figures += measure(Progress(None, sections=len(secs)))
    assert len(figures) >= 12
    for f in figures:
        assert f.skipped is None and f.samples and all(math.isfinite(s) and s > 0 for s in f.samples), f
    by_group = {f.group for f in figures}
    assert any("lmdb" in p for f in figures for p in f.peers)
    assert any("sqlite3" in p for f in figures for p in f.peers)
    assert "C level: seqlock read of one 64-byte record" in by_group
