"""A user's Cython extension (built as tests/conftest.build_user_extension
builds one) records into native histograms from nogil code, both into a
Python Histogram's cells and into a tio_hist it owns (as a scheduler worker
would), and hands the latter to Python with histogram_from_c."""
import numpy as np

from conftest import build_user_extension
from tallyio.metrics import Histogram

SOURCE = '''
from libc.stdint cimport uint64_t
from tallyio.metrics._hist cimport Histogram, histogram_from_c
from tallyio.metrics.tio_hist cimport tio_hist, tio_hist_init, tio_hist_record, tio_hist_destroy

cdef class Worker:
    """Owns a raw tio_hist, like a scheduler worker's wait/exec histograms."""
    cdef tio_hist h
    def __cinit__(self, int digits):
        if tio_hist_init(&self.h, 1, 1 << 40, digits) != 0:
            raise MemoryError()
    def __dealloc__(self):
        tio_hist_destroy(&self.h)
    def run(self, uint64_t n):
        cdef uint64_t i
        with nogil:
            for i in range(n):
                tio_hist_record(&self.h, (i * 7919) % 1000003)
    def snapshot(self):
        return histogram_from_c(&self.h)

def record_into(Histogram hist, uint64_t n):
    cdef uint64_t i
    with nogil:
        for i in range(n):
            tio_hist_record(&hist.h, (i * 7919) % 1000003)
'''


def test_user_extension_records_from_nogil_code(tmp_path, monkeypatch):
    ext = build_user_extension(tmp_path, "hist_user", SOURCE, monkeypatch)
    n = 200_000
    expected = Histogram(significant_digits=2, highest=1 << 40)
    expected.record_many((np.arange(n, dtype=np.uint64) * 7919) % 1000003)

    worker = ext.Worker(2)
    worker.run(n)
    snap = worker.snapshot()
    assert isinstance(snap, Histogram) and snap == expected

    mine = Histogram(significant_digits=2, highest=1 << 40)
    ext.record_into(mine, n)
    assert mine == expected
