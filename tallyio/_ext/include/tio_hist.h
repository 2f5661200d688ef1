/*
 * tio_hist.h -- HDR-style log-linear latency histograms (owned by tallyio.metrics).
 *
 * Owns: struct tio_hist and every function on it.  Touches: only the memory of
 * the histograms it is handed.  Atomics only through tio_atomic.h.
 *
 * Layout (HdrHistogram's, Gil Tene): values are integers (nanoseconds by
 * convention, but the histogram does not care).  With d significant digits the
 * histogram keeps `sub_bucket_count` = the smallest power of two >= 2 * 10^d
 * linear sub-buckets per bucket; bucket 0 covers [0, sub_bucket_count) with
 * unit resolution, and bucket b >= 1 covers [half << b, half << (b+1)) with
 * resolution 1 << b, where half = sub_bucket_count / 2.  So any recorded
 * value v lands in a cell whose width is at most v / half, i.e. a relative
 * error below 1 / half: 1/128 = 0.78 % at d = 2, 1/1024 = 0.098 % at d = 3
 * (both under 10^-d).  Memory is constant: counts_len = (bucket_count + 1) *
 * half cells of 8 bytes, fixed at init (d = 3, values up to one hour in ns:
 * 33,792 cells, 264 KiB; d = 2: 4,608 cells, 36 KiB).  A record is a clz, two
 * shifts and five owner-only load/store pairs: constant cost, no allocation.
 *
 * Concurrency protocol: ONE WRITER per histogram, any number of readers.
 *   - Every cell (counts and the summary: total, sum, min, max, saturated) is a
 *     tio_atomic_u64.  The owner updates a cell with a relaxed load followed by a
 *     relaxed store (no read-modify-write instruction: nobody else writes it, so
 *     the load always returns the owner's own last store -- C11 5.1.2.4
 *     coherence: a thread's load is never older than its own earlier store to
 *     the same object).  Readers use relaxed loads.
 *   - Race-freedom under C11: every access to a shared cell is atomic, so there
 *     is no data race (5.1.2.4p25 defines a data race only between
 *     non-atomic conflicting accesses), hence no undefined behaviour, on any
 *     architecture, and ThreadSanitizer has nothing to report.  On x86-64 and
 *     AArch64 a relaxed 64-bit load/store is a plain mov/ldr/str: the atomics
 *     cost nothing on the record path.
 *   - What a reader may see: each cell's value is one the owner really stored
 *     (no torn 64-bit values), never ahead of the owner and never going back
 *     (read-read coherence), but different cells may be seen at slightly
 *     different moments (no ordering between relaxed operations on different
 *     objects).  So a snapshot taken while the owner records is "slightly
 *     stale": it misses some of the most recent records, and `total` may
 *     disagree with the sum of the counts by those in flight.  Readers that need
 *     percentiles therefore use the sum of the counts THEY read
 *     (tio_hist_value_at_percentile does), which is always self-consistent.
 *     Once the owner has stopped and the reader synchronised with it (a thread
 *     join, a release/acquire handoff, the GIL) the snapshot is exact.
 *   - Only the owner writes: tio_hist_record*, tio_hist_merge(dst, .) and
 *     tio_hist_reset(h) are owner operations (merge reads its source with
 *     relaxed loads, so the source may be another thread's live histogram).
 *     A reset from a non-owner while the owner records would be no data race
 *     either, but could lose the reset or a record; the Python layer only does
 *     it when told the owner is quiescent.
 *
 * Coordinated omission: tio_hist_record_corrected(h, v, interval) records v
 * and then, as HdrHistogram (Java and C) do, the values the stalled
 * measurements would have seen: v - interval, v - 2*interval, ... down to the
 * last one >= interval.  Instead of one record per missing value (a 1 s stall
 * at a 1 us interval would be a million records) it adds each run of missing
 * values that share a cell in one step, so the cost is bounded by the number
 * of cells, and the result is identical.
 */
#ifndef TIO_HIST_H
#define TIO_HIST_H

#include <stdint.h>
#include "tio_atomic.h"
#include "tio_platform.h"
#include "tio_status.h"

#define TIO_HIST_MIN_DIGITS 1
#define TIO_HIST_MAX_DIGITS 4
/* values above this cannot be tracked (keeps every shift below 64 bits) */
#define TIO_HIST_MAX_TRACKABLE (1ull << 62)

typedef struct tio_hist {
    /* ---- layout: written by tio_hist_init only, read-only afterwards ---- */
    uint64_t lowest_discernible;   /* 2^unit_magnitude: resolution of bucket 0 */
    uint64_t highest_trackable;    /* larger values are recorded as this one, and counted in `saturated` */
    uint64_t sub_bucket_mask;      /* (sub_bucket_count - 1) << unit_magnitude */
    int32_t significant_digits;
    int32_t unit_magnitude;
    int32_t sub_bucket_half_count_magnitude;
    int32_t sub_bucket_count;
    int32_t sub_bucket_half_count;
    int32_t bucket_count;
    int32_t counts_len;
    int32_t reserved;
    tio_atomic_u64 *counts;        /* counts_len cells, cache-line aligned */
    /* ---- summary: owner-written (relaxed load + relaxed store), read by anyone ---- */
    tio_atomic_u64 total;          /* values recorded */
    tio_atomic_u64 sum;            /* sum of the values recorded (as clamped), modulo 2^64 */
    tio_atomic_u64 min;            /* smallest value recorded; UINT64_MAX when empty */
    tio_atomic_u64 max;            /* largest value recorded (as clamped); 0 when empty */
    tio_atomic_u64 saturated;      /* values that were above highest_trackable */
} tio_hist;

/* ---- layout arithmetic (pure functions of the read-only layout) ----------- */

static inline int32_t tio_hist_index(const tio_hist *h, uint64_t v) {
    /* bucket: how far the highest set bit of v sits above the sub-bucket range
     * (or'ing the mask makes every value of bucket 0 land on bucket 0) */
    int32_t pow2ceiling = 64 - __builtin_clzll(v | h->sub_bucket_mask);
    int32_t bucket = pow2ceiling - h->unit_magnitude - (h->sub_bucket_half_count_magnitude + 1);
    int32_t sub = (int32_t)(v >> (bucket + h->unit_magnitude));
    /* buckets >= 1 only use their upper half of sub-buckets (the lower half
     * overlaps the previous bucket), so each bucket adds `half` cells */
    return ((bucket + 1) << h->sub_bucket_half_count_magnitude) + (sub - h->sub_bucket_half_count);
}

/* Smallest value that lands in cell `index`. */
static inline uint64_t tio_hist_lowest_at(const tio_hist *h, int32_t index) {
    int32_t bucket = (index >> h->sub_bucket_half_count_magnitude) - 1;
    int32_t sub = (index & (h->sub_bucket_half_count - 1)) + h->sub_bucket_half_count;
    if (bucket < 0) {
        sub -= h->sub_bucket_half_count;
        bucket = 0;
    }
    return (uint64_t)sub << (bucket + h->unit_magnitude);
}

/* Largest value that lands in cell `index`. */
static inline uint64_t tio_hist_highest_at(const tio_hist *h, int32_t index) {
    int32_t bucket = (index >> h->sub_bucket_half_count_magnitude) - 1;
    if (bucket < 0) bucket = 0;
    return tio_hist_lowest_at(h, index) + (1ull << (bucket + h->unit_magnitude)) - 1;
}

/* ---- setup --------------------------------------------------------------- */

/* Initialise `h` for values in [0, highest] with `digits` significant decimal
 * digits; values below `lowest` share one cell of width 2^floor(log2(lowest)).
 * TIO_OK, TIO_INVALID (bad argument: lowest < 1, highest < 2 * lowest, highest
 * > 2^62, digits outside 1..4) or TIO_NOMEM.  Call on the owning thread: the
 * zeroing first-touches the cells on its NUMA node. */
static inline int tio_hist_init(tio_hist *h, uint64_t lowest, uint64_t highest, int digits) {
    uint64_t single_unit_limit = 2, smallest_untrackable;
    int32_t magnitude = 0, buckets;
    memset(h, 0, sizeof(*h));
    if (lowest < 1 || highest < 2 * lowest || highest > TIO_HIST_MAX_TRACKABLE ||
        digits < TIO_HIST_MIN_DIGITS || digits > TIO_HIST_MAX_DIGITS)
        return TIO_INVALID;
    for (int i = 0; i < digits; i++) single_unit_limit *= 10;           /* 2 * 10^digits */
    while ((1ull << magnitude) < single_unit_limit) magnitude++;          /* ceil(log2) */
    h->significant_digits = digits;
    h->unit_magnitude = 63 - __builtin_clzll(lowest);                     /* floor(log2) */
    h->lowest_discernible = 1ull << h->unit_magnitude;
    h->highest_trackable = highest;
    h->sub_bucket_half_count_magnitude = magnitude - 1;
    h->sub_bucket_count = 1 << magnitude;
    h->sub_bucket_half_count = h->sub_bucket_count / 2;
    h->sub_bucket_mask = ((uint64_t)h->sub_bucket_count - 1) << h->unit_magnitude;
    /* buckets needed so that `highest` is trackable */
    smallest_untrackable = (uint64_t)h->sub_bucket_count << h->unit_magnitude;
    buckets = 1;
    while (smallest_untrackable <= highest) {
        smallest_untrackable <<= 1;
        buckets++;
    }
    h->bucket_count = buckets;
    h->counts_len = (buckets + 1) * h->sub_bucket_half_count;
    h->counts = (tio_atomic_u64 *)tio_aligned_calloc(TIO_CACHE_LINE, (size_t)h->counts_len * sizeof(tio_atomic_u64));
    if (h->counts == NULL) return TIO_NOMEM;
    for (int32_t i = 0; i < h->counts_len; i++) tio_atomic_init_u64(&h->counts[i], 0);
    tio_atomic_init_u64(&h->total, 0);
    tio_atomic_init_u64(&h->sum, 0);
    tio_atomic_init_u64(&h->min, UINT64_MAX);
    tio_atomic_init_u64(&h->max, 0);
    tio_atomic_init_u64(&h->saturated, 0);
    return TIO_OK;
}

static inline void tio_hist_destroy(tio_hist *h) {
    tio_aligned_free(h->counts);
    h->counts = NULL;
    h->counts_len = 0;
}

/* 1 when a and b have the same cells (their counts can be added). */
static inline int tio_hist_same_layout(const tio_hist *a, const tio_hist *b) {
    return a->unit_magnitude == b->unit_magnitude &&
           a->sub_bucket_half_count_magnitude == b->sub_bucket_half_count_magnitude &&
           a->counts_len == b->counts_len && a->highest_trackable == b->highest_trackable;
}

/* ---- owner operations ------------------------------------------------------ */

/* owner-only increment: relaxed load of our own last store, relaxed store */
static inline void tio_hist_cell_add(tio_atomic_u64 *cell, uint64_t n) {
    tio_atomic_store_u64_relaxed(cell, tio_atomic_load_u64_relaxed(cell) + n);
}

/* Record `n` occurrences of value `v` already known to be <= highest_trackable. */
static inline void tio_hist_add_at(tio_hist *h, int32_t index, uint64_t v, uint64_t n, uint64_t sum_add, uint64_t smallest) {
    tio_hist_cell_add(&h->counts[index], n);
    tio_hist_cell_add(&h->total, n);
    tio_hist_cell_add(&h->sum, sum_add);
    if (smallest < tio_atomic_load_u64_relaxed(&h->min)) tio_atomic_store_u64_relaxed(&h->min, smallest);
    if (v > tio_atomic_load_u64_relaxed(&h->max)) tio_atomic_store_u64_relaxed(&h->max, v);
}

/* Record `n` occurrences of `v`.  A value above highest_trackable is recorded
 * as highest_trackable and counted in `saturated` (a latency recorder must not
 * drop the worst samples, nor fail on the hot path). */
static inline void tio_hist_record_n(tio_hist *h, uint64_t v, uint64_t n) {
    if (TIO_UNLIKELY(n == 0)) return;               /* folded away for record(): n == 1 */
    if (TIO_UNLIKELY(v > h->highest_trackable)) {
        v = h->highest_trackable;
        tio_hist_cell_add(&h->saturated, n);
    }
    tio_hist_add_at(h, tio_hist_index(h, v), v, n, v * n, v);
}

static inline void tio_hist_record(tio_hist *h, uint64_t v) {
    tio_hist_record_n(h, v, 1);
}

/* v + (v - I) + ... over k terms, modulo 2^64 (the halving happens before the
 * product so nothing but the true result's own overflow can wrap it) */
static inline uint64_t tio_hist_series_sum(uint64_t top, uint64_t interval, uint64_t k) {
    uint64_t pairs = (k % 2 == 0) ? (k / 2) * (k - 1) : k * ((k - 1) / 2);   /* k(k-1)/2 */
    return k * top - interval * pairs;
}

/* Record `v` measured by a loop that should have taken a measurement every
 * `expected_interval`, plus the measurements a stall of length v hid from it
 * (Gil Tene's coordinated-omission correction, HdrHistogram's
 * recordValueWithExpectedInterval): v - I, v - 2I, ..., down to the last value
 * >= I.  expected_interval 0 records v alone.  Cost bounded by the number of
 * cells the missing values span, not by v / I. */
static inline void tio_hist_record_corrected(tio_hist *h, uint64_t v, uint64_t expected_interval) {
    uint64_t interval = expected_interval, x, k, lo, top;
    int32_t index;
    tio_hist_record(h, v);
    if (interval == 0 || v <= interval) return;
    x = v - interval;                                   /* the largest missing value */
    while (x >= interval) {
        if (x > h->highest_trackable) {
            /* the missing values above the range, all recorded as highest_trackable */
            k = (x - h->highest_trackable - 1) / interval + 1;
            if (k > (x - interval) / interval + 1) k = (x - interval) / interval + 1;
            top = h->highest_trackable;
            tio_hist_cell_add(&h->saturated, k);
            tio_hist_add_at(h, tio_hist_index(h, top), top, k, top * k, top);
            x -= k * interval;
            continue;
        }
        /* the run x, x - I, ... that stays in x's cell and >= I */
        index = tio_hist_index(h, x);
        lo = tio_hist_lowest_at(h, index);
        if (lo < interval) lo = interval;
        k = (x - lo) / interval + 1;
        tio_hist_add_at(h, index, x, k, tio_hist_series_sum(x, interval, k), x - (k - 1) * interval);
        x -= k * interval;
    }
}

/* Add every count of `src` into `dst` (same layout: TIO_INVALID otherwise).
 * Owner operation on dst; src is read with relaxed loads, so it may be another
 * thread's live histogram (its slightly stale snapshot is what gets added). */
static inline int tio_hist_merge(tio_hist *dst, const tio_hist *src) {
    uint64_t c, total = 0, smallest, largest;
    if (!tio_hist_same_layout(dst, src)) return TIO_INVALID;
    for (int32_t i = 0; i < src->counts_len; i++) {
        c = tio_atomic_load_u64_relaxed(&src->counts[i]);
        if (c) {
            tio_hist_cell_add(&dst->counts[i], c);
            total += c;
        }
    }
    if (total == 0) return TIO_OK;
    tio_hist_cell_add(&dst->total, total);
    tio_hist_cell_add(&dst->sum, tio_atomic_load_u64_relaxed(&src->sum));
    tio_hist_cell_add(&dst->saturated, tio_atomic_load_u64_relaxed(&src->saturated));
    smallest = tio_atomic_load_u64_relaxed(&src->min);
    largest = tio_atomic_load_u64_relaxed(&src->max);
    if (smallest < tio_atomic_load_u64_relaxed(&dst->min)) tio_atomic_store_u64_relaxed(&dst->min, smallest);
    if (largest > tio_atomic_load_u64_relaxed(&dst->max)) tio_atomic_store_u64_relaxed(&dst->max, largest);
    return TIO_OK;
}

/* Forget everything recorded.  Owner operation (see the protocol above). */
static inline void tio_hist_reset(tio_hist *h) {
    for (int32_t i = 0; i < h->counts_len; i++) tio_atomic_store_u64_relaxed(&h->counts[i], 0);
    tio_atomic_store_u64_relaxed(&h->total, 0);
    tio_atomic_store_u64_relaxed(&h->sum, 0);
    tio_atomic_store_u64_relaxed(&h->min, UINT64_MAX);
    tio_atomic_store_u64_relaxed(&h->max, 0);
    tio_atomic_store_u64_relaxed(&h->saturated, 0);
}

/* ---- reader operations (any thread) ---------------------------------------- */

/* Copy the counts into out[counts_len]; returns their sum (the snapshot's own
 * total, consistent with the copied counts). */
static inline uint64_t tio_hist_snapshot(const tio_hist *h, uint64_t *out) {
    uint64_t total = 0;
    for (int32_t i = 0; i < h->counts_len; i++) {
        out[i] = tio_atomic_load_u64_relaxed(&h->counts[i]);
        total += out[i];
    }
    return total;
}

/* The nearest-rank percentile: the smallest recorded value v such that at
 * least ceil(p/100 * n) of the n values are <= v (numpy's
 * percentile(method="inverted_cdf")), reported as the highest value of its
 * cell, so never below the true value and above it by less than one cell
 * width (relative error < 1 / sub_bucket_half_count).  p <= 0 gives the lowest
 * value of the first non-empty cell.  0 when empty. */
static inline uint64_t tio_hist_value_at_percentile(const tio_hist *h, double p) {
    uint64_t total = 0, rank, seen = 0;
    double want;
    for (int32_t i = 0; i < h->counts_len; i++) total += tio_atomic_load_u64_relaxed(&h->counts[i]);
    if (total == 0) return 0;
    if (p > 100.0) p = 100.0;
    /* ceil(p/100 * total), forgiving float noise below 1e-9 of a rank: 99.9 %
     * of 1000 values is rank 999, although 99.9 / 100 * 1000 = 999.0000000000001 */
    want = p / 100.0 * (double)total - 1e-9;
    rank = want <= 0.0 ? 0 : (uint64_t)want;
    if ((double)rank < want) rank++;
    if (rank == 0) rank = 1;
    for (int32_t i = 0; i < h->counts_len; i++) {
        seen += tio_atomic_load_u64_relaxed(&h->counts[i]);
        if (seen >= rank) return p <= 0.0 ? tio_hist_lowest_at(h, i) : tio_hist_highest_at(h, i);
    }
    /* the owner recorded between our two passes: the last non-empty cell */
    for (int32_t i = h->counts_len - 1; i >= 0; i--)
        if (tio_atomic_load_u64_relaxed(&h->counts[i])) return tio_hist_highest_at(h, i);
    return 0;
}

/* How many recorded values are certainly <= v: the counts of every cell whose
 * highest value is <= v (exact when v + 1 starts a cell, e.g. any v below
 * sub_bucket_count).  For Prometheus' cumulative `le` buckets. */
static inline uint64_t tio_hist_count_at_or_below(const tio_hist *h, uint64_t v) {
    uint64_t total = 0;
    int32_t last;
    if (v >= h->highest_trackable) last = h->counts_len - 1;
    else {
        last = tio_hist_index(h, v);
        if (tio_hist_highest_at(h, last) > v) last--;
    }
    for (int32_t i = 0; i <= last; i++) total += tio_atomic_load_u64_relaxed(&h->counts[i]);
    return total;
}

#endif /* TIO_HIST_H */
