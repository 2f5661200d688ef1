"""Per-thread histograms recorded concurrently in nogil loops while a reader
merges them: every value is counted exactly once, and a live read is never
torn or ahead of the writers."""
import threading

import numpy as np
import pytest

from conftest import run_threads, scaled
from tallyio.metrics import Histogram, HistogramSet

WRITERS = 3


@pytest.mark.concurrency
@pytest.mark.timeout(300)
def test_concurrent_nogil_recording_then_merge_counts_every_value_once(seed):
    n = scaled(600_000, minimum=20_000)          # values per writer
    rng = np.random.default_rng(seed)
    data = [np.exp(rng.uniform(0, np.log(1e10), n)).astype(np.uint64) for _ in range(WRITERS)]
    hs = HistogramSet(significant_digits=3)
    chunk = 4096
    done = []
    started = threading.Barrier(WRITERS)

    def writer(values):
        rec = hs.local()                          # this thread's own histogram: one writer each
        started.wait()                            # all alive at once, so none inherits an ended one's
        for start in range(0, len(values), chunk):
            rec.record_many(values[start:start + chunk])   # nogil loop
        done.append(1)
        return rec.count

    def reader():
        """Merge while the writers run: counts only grow, never pass the total,
        and each snapshot's cells add up to its own count."""
        last, reads = 0, 0
        while len(done) < WRITERS or reads < 3:
            merged = hs.merged()
            count = merged.count
            assert last <= count <= WRITERS * n
            assert int(merged.counts().sum()) == count
            if count:
                assert merged.percentile(100) >= merged.percentile(50)
            last, reads = count, reads + 1
        return reads

    results = run_threads(*[(writer, (d,)) for d in data], (reader, ()))
    assert results[:WRITERS] == [n] * WRITERS
    assert results[WRITERS] >= 3
    assert len(hs) == WRITERS

    merged = hs.merged()
    assert merged.count == WRITERS * n
    single = Histogram(significant_digits=3)
    for d in data:
        single.record_many(d)
    assert merged == single
    assert merged.sum == sum(int(d.sum(dtype=np.uint64)) for d in data) % 2**64


@pytest.mark.concurrency
@pytest.mark.timeout(300)
def test_reader_of_a_live_histogram_sees_a_consistent_prefix():
    """One writer records 1, 2, 3, ... into one histogram; a reader thread's
    percentile(100) and count are never ahead of what was written, and the
    final read is exact."""
    n = scaled(2_000_000, minimum=50_000)
    values = np.arange(1, n + 1, dtype=np.uint64)
    h = Histogram(significant_digits=2)
    finished = []

    def writer():
        for start in range(0, n, 8192):
            h.record_many(values[start:start + 8192])
        finished.append(1)

    def reader():
        seen = 0
        while not finished:
            c = h.count
            assert seen <= c <= n
            seen = c
            counts = h.counts()
            assert int(counts.sum()) <= n
        return seen

    run_threads((writer, ()), (reader, ()))
    assert h.count == n and h.max == n and h.min == 1
