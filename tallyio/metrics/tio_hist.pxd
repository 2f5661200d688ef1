# cython: language_level=3
"""C declarations of tallyio/_ext/include/tio_hist.h (owned by tallyio.metrics),
with no Python object: code that only records into C histograms (the
scheduler's workers) cimports these and nothing else.

    from tallyio.metrics.tio_hist cimport tio_hist, tio_hist_init, tio_hist_record, tio_hist_destroy
    cdef tio_hist h
    if tio_hist_init(&h, 1, 3600000000000, 2) != TIO_OK: ...   # on the owning thread
    tio_hist_record(&h, elapsed)                                # noexcept nogil, ONE writer
    tio_hist_destroy(&h)

tio_hist.h's header comment states the layout, the precision and the
one-writer protocol.
"""
from libc.stdint cimport uint64_t, int32_t
from tallyio._ext.common cimport tio_atomic_u64

cdef extern from "tio_hist.h" nogil:
    enum:
        TIO_HIST_MIN_DIGITS
        TIO_HIST_MAX_DIGITS
    const uint64_t TIO_HIST_MAX_TRACKABLE
    ctypedef struct tio_hist:
        uint64_t lowest_discernible
        uint64_t highest_trackable
        uint64_t sub_bucket_mask
        int32_t significant_digits
        int32_t unit_magnitude
        int32_t sub_bucket_half_count_magnitude
        int32_t sub_bucket_count
        int32_t sub_bucket_half_count
        int32_t bucket_count
        int32_t counts_len
        tio_atomic_u64 *counts
        tio_atomic_u64 total
        tio_atomic_u64 sum
        tio_atomic_u64 min
        tio_atomic_u64 max
        tio_atomic_u64 saturated
    int tio_hist_init(tio_hist *h, uint64_t lowest, uint64_t highest, int digits)
    void tio_hist_destroy(tio_hist *h)
    bint tio_hist_same_layout(const tio_hist *a, const tio_hist *b)
    int32_t tio_hist_index(const tio_hist *h, uint64_t v)
    uint64_t tio_hist_lowest_at(const tio_hist *h, int32_t index)
    uint64_t tio_hist_highest_at(const tio_hist *h, int32_t index)
    void tio_hist_record(tio_hist *h, uint64_t v)
    void tio_hist_record_n(tio_hist *h, uint64_t v, uint64_t n)
    void tio_hist_record_corrected(tio_hist *h, uint64_t v, uint64_t expected_interval)
    int tio_hist_merge(tio_hist *dst, const tio_hist *src)
    void tio_hist_reset(tio_hist *h)
    uint64_t tio_hist_snapshot(const tio_hist *h, uint64_t *out)
    uint64_t tio_hist_value_at_percentile(const tio_hist *h, double p)
    uint64_t tio_hist_count_at_or_below(const tio_hist *h, uint64_t v)
