# cython: language_level=3
"""Native HDR-style latency histograms: the C API of tio_hist.h and the
Python face ``Histogram`` (owned by tallyio.metrics; touches nothing else).

C API (cimport it from other Cython code; every record is ``noexcept nogil``,
constant cost, never allocates):

    from tallyio.metrics._hist cimport Histogram, tio_hist, tio_hist_record
    cdef Histogram hist = Histogram(significant_digits=2)   # Python object owns the cells
    cdef tio_hist *h = &hist.h                               # keep `hist` alive meanwhile
    with nogil:
        tio_hist_record(h, elapsed_ns)                       # ONE writer thread per histogram

Protocol (tio_hist.h has the argument): one writer per histogram updates every
cell with a relaxed load + relaxed store; readers (percentile, merge source,
snapshot) use relaxed loads and see a slightly stale but never torn view.
"""
from tallyio.metrics.tio_hist cimport *
from tallyio.metrics.tio_hist cimport tio_hist


cdef class Histogram:
    cdef tio_hist h
    cdef object __weakref__


# A new Histogram of src's layout holding a snapshot of src's values: how
# Cython code that keeps its own tio_hist (a scheduler worker's) hands it to
# Python.  src may be recording on another thread meanwhile.
cdef Histogram histogram_from_c(const tio_hist *src)
