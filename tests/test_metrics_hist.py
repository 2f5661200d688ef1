"""tallyio.metrics.Histogram: HdrHistogram's layout, percentiles against numpy,
merging, coordinated-omission correction against the hdrhistogram package,
saturation, serialisation and bad input."""
import math
import pickle

import hdrh.histogram
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tallyio.errors import MetricError, TallyioError
from tallyio.metrics import Histogram, HistogramSet
from tallyio.metrics._hist import _bench_record_c

HOUR_NS = 3_600_000_000_000
values_ns = st.integers(min_value=0, max_value=HOUR_NS)
# latency-like samples: mostly small, a long tail, ties
samples = st.lists(st.one_of(st.integers(0, 3000), st.integers(0, 10_000_000), values_ns), min_size=1, max_size=400)
digits = st.sampled_from([2, 3])
percents = st.one_of(st.sampled_from([0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]),
                     st.floats(min_value=0.0, max_value=100.0, allow_nan=False))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def hdr_peer(d, highest=HOUR_NS):
    return hdrh.histogram.HdrHistogram(1, highest, d)


# ---- layout ---------------------------------------------------------------------------

@pytest.mark.parametrize("d, highest", [(1, 10_000), (2, HOUR_NS), (3, HOUR_NS), (3, 2**62), (4, 10**9)])
def test_layout_is_hdrhistograms(d, highest, seed):
    """Same number of cells, and every value lands in a cell with the same
    lowest and highest equivalent values as in the hdrhistogram package."""
    h = Histogram(significant_digits=d, highest=highest)
    peer = hdr_peer(d, highest)
    assert len(h.counts()) == peer.counts_len
    rng = np.random.default_rng(seed)
    values = set(rng.integers(0, highest, 300, endpoint=True).tolist())
    values |= {0, 1, 2047, 2048, 2049, 4095, 4096, highest // 3, highest}
    values |= {int(x) for x in np.exp(rng.uniform(0, math.log(highest), 300))}
    for v in sorted(values):
        one = Histogram(significant_digits=d, highest=highest)
        one.record(v)
        cell = one.buckets()
        assert (int(cell.lowest[0]), int(cell.highest[0])) == (
            peer.get_lowest_equivalent_value(v), peer.get_highest_equivalent_value(v)), v
        assert int(np.flatnonzero(one.counts())[0]) == peer._counts_index_for(v)


def test_relative_precision_is_below_the_stated_digits():
    for d in (1, 2, 3, 4):
        h = Histogram(significant_digits=d)
        assert h.relative_precision < 10.0 ** -d


def test_memory_is_constant_and_records_never_allocate_cells():
    h = Histogram(significant_digits=3)
    before = h.nbytes
    h.record_many(np.arange(0, 10**12, 10**7, dtype=np.uint64))
    assert h.nbytes == before == 33_792 * 8
    assert Histogram(significant_digits=2).nbytes == 4_608 * 8


# ---- percentiles against numpy -----------------------------------------------------------

@SETTINGS
@given(xs=samples, p=percents, d=digits)
def test_percentile_agrees_with_numpy_within_stated_precision(xs, p, d):
    h = Histogram(significant_digits=d)
    h.record_many(np.array(xs, dtype=np.uint64))
    got = h.percentile(p)
    arr = np.array(xs, dtype=np.float64)
    if p == 0:
        want = float(arr.min())
        assert want * (1 - h.relative_precision) - 1 <= got <= want
        return
    want = float(np.percentile(arr, p, method="inverted_cdf"))
    # the reported value is the highest of the true value's cell: never below
    # it, above it by less than one cell width (relative precision, or 1 below
    # the unit-resolution range)
    if got < want or got > want + max(1.0, want * h.relative_precision):
        # numpy's rank differs from ours only when p/100*n sits within float
        # noise of an integer (99.9 % of 1000 = 999.0000000000001): then the
        # neighbour rank's value is the answer
        rank = p / 100 * len(xs)
        assert abs(rank - round(rank)) < 1e-6, (got, want, p, len(xs))
        alt = float(np.sort(arr)[max(0, round(rank) - 1)])
        assert alt <= got <= alt + max(1.0, alt * h.relative_precision), (got, alt)


@SETTINGS
@given(xs=samples, d=digits)
def test_count_min_max_sum_mean_are_exact(xs, d):
    h = Histogram(significant_digits=d)
    for x in xs:
        h.record(x)
    assert (h.count, h.min, h.max, h.sum) == (len(xs), min(xs), max(xs), sum(xs))
    assert h.mean == pytest.approx(sum(xs) / len(xs))
    assert int(h.counts().sum()) == len(xs)
    assert h.percentile(100) >= max(xs)


def test_percentile_of_one_to_a_thousand_is_exact():
    h = Histogram()
    h.record_many(np.arange(1, 1001, dtype=np.uint64))
    assert [h.percentile(p) for p in (0, 0.1, 50, 99, 99.9, 100)] == [1, 1, 500, 990, 999, 1000]


# ---- merge ----------------------------------------------------------------------------------

@SETTINGS
@given(parts=st.lists(samples, min_size=1, max_size=6), d=digits)
def test_merged_histograms_equal_one_fed_everything(parts, d):
    whole = Histogram(significant_digits=d)
    merged = Histogram(significant_digits=d)
    for part in parts:
        piece = Histogram(significant_digits=d)
        piece.record_many(np.array(part, dtype=np.uint64))
        whole.record_many(np.array(part, dtype=np.uint64))
        merged.merge(piece)
    assert merged == whole
    assert np.array_equal(merged.counts(), whole.counts())
    for p in (50, 99, 99.9):
        assert merged.percentile(p) == whole.percentile(p)


def test_histogram_set_merges_its_recorders():
    hs = HistogramSet(significant_digits=2)
    members = hs.grow(3)
    for i, m in enumerate(members):
        m.record_many(np.full(10 + i, 1000 * (i + 1), dtype=np.uint64))
    hs.local().record(7)
    merged = hs.merged()
    assert merged.count == 10 + 11 + 12 + 1 and len(hs) == 4
    assert merged.min == 7 and merged.max == 3000


def test_merge_into_itself_doubles():
    h = Histogram()
    h.record_n(5, 3)
    h.merge(h)
    assert h.count == 6 and h.sum == 30


# ---- coordinated omission ------------------------------------------------------------------

def reference_corrected(hist, value, interval):
    """HdrHistogram's recordValueWithExpectedInterval (Java; the C library's
    hdr_record_corrected_value is the same), one record per missing value."""
    hist.record_value(value)
    if interval <= 0 or value <= interval:
        return
    missing = value - interval
    while missing >= interval:
        hist.record_value(missing)
        missing -= interval


def assert_same_as_peer(mine, peer):
    counts = mine.counts()
    peer_counts = np.array([peer.get_count_at_index(i) for i in range(peer.counts_len)], dtype=np.uint64)
    assert np.array_equal(counts, peer_counts)
    assert mine.count == peer.get_total_count()
    if mine.count:
        # the package reports its extremes as cell bounds; ours are exact values in those cells
        assert peer.get_lowest_equivalent_value(mine.min) == peer.get_min_value()
        assert peer.get_highest_equivalent_value(mine.max) == peer.get_max_value()


@SETTINGS
@given(pairs=st.lists(st.tuples(st.integers(0, 2_000_000), st.integers(0, 200_000)), min_size=1, max_size=30),
       d=digits)
def test_record_corrected_matches_hdrhistogram(pairs, d):
    """Same cells as the hdrhistogram package fed HdrHistogram's reference
    sequence; and against the package's own record_corrected_value, which
    records one extra value below the interval (v - k*I, the first one <= I,
    where Java and C stop at the last one >= I) whenever I does not divide v:
    exactly that many values more."""
    mine = Histogram(significant_digits=d)
    reference = hdr_peer(d)
    package = hdr_peer(d)
    for value, interval in pairs:
        mine.record_corrected(value, interval)
        reference_corrected(reference, value, interval)
        package.record_corrected_value(value, interval)
    assert_same_as_peer(mine, reference)
    extra = sum(1 for v, i in pairs if i > 0 and v > i and v % i != 0)
    assert package.get_total_count() - mine.count == extra


def test_record_corrected_sum_and_min_are_exact():
    h = Histogram()
    h.record_corrected(10_000, 1_000)          # 10000, 9000, ..., 1000
    assert h.count == 10 and h.sum == sum(range(1000, 10_001, 1000)) and h.min == 1000


def test_record_corrected_of_a_long_stall_is_bounded_and_exact():
    """A 1 s stall at a 1 ns interval is a billion missing values: counted per
    cell, so it finishes at once, with the exact count and sum."""
    h = Histogram(significant_digits=2)
    h.record_corrected(10**9, 1)
    n = 10**9
    assert h.count == n and h.sum == n * (n + 1) // 2 and (h.min, h.max) == (1, n)
    assert abs(h.percentile(50) - n / 2) <= n / 2 * h.relative_precision


def test_record_corrected_above_highest_saturates_like_record():
    h = Histogram(significant_digits=2, highest=10_000)
    h.record_corrected(25_000, 5_000)           # 25000, 20000, 15000 saturate; 10000, 5000 fit
    assert h.count == 5 and h.saturated == 3 and h.max == 10_000 and h.min == 5_000
    brute = Histogram(significant_digits=2, highest=10_000)
    for v in (25_000, 20_000, 15_000, 10_000, 5_000):
        brute.record(v)
    assert h == brute


def test_record_corrected_many_equals_one_by_one():
    values = np.array([10, 2_000, 50_000, 123_456], dtype=np.uint64)
    a, b = Histogram(), Histogram()
    a.record_corrected_many(values, 1_000)
    for v in values:
        b.record_corrected(int(v), 1_000)
    assert a == b


# ---- edges and bad input ---------------------------------------------------------------------

def test_saturation_keeps_the_worst_samples():
    h = Histogram(significant_digits=2, highest=1_000_000)
    h.record(5_000_000)
    assert (h.count, h.saturated, h.max) == (1, 1, 1_000_000)
    assert h.percentile(100) >= 1_000_000


def test_empty_histogram():
    h = Histogram()
    assert (h.count, h.min, h.max, h.percentile(50), h.sum) == (0, None, None, None, 0)
    assert math.isnan(h.mean)
    assert len(h.buckets().counts) == 0 and len(h.buckets(nonzero=False).counts) == len(h.counts())
    assert "empty" in repr(h)


def test_reset_and_copy():
    h = Histogram()
    h.record_many(np.arange(100, dtype=np.uint64))
    c = h.copy()
    h.reset()
    assert h.count == 0 and c.count == 100 and c.max == 99


def test_buckets_describe_the_cells():
    h = Histogram(significant_digits=2)
    rng = np.random.default_rng(1)
    values = rng.integers(0, 10**9, 5000).astype(np.uint64)
    h.record_many(values)
    b = h.buckets()
    assert int(b.counts.sum()) == 5000 and (b.lowest <= b.highest).all() and (b.highest[:-1] < b.lowest[1:]).all()
    # each value falls inside the cell that counts it
    idx = np.searchsorted(b.highest, values)
    assert (b.lowest[idx] <= values).all() and (values <= b.highest[idx]).all()


def test_count_at_or_below_is_exact_at_cell_boundaries():
    h = Histogram(significant_digits=3)
    h.record_many(np.array([999, 1000, 1001, 5_000_000, 10**12], dtype=np.uint64))
    assert h.count_at_or_below(1000) == 2 and h.count_at_or_below(10**13) == 5


def test_pickle_and_dict_round_trip():
    h = Histogram(significant_digits=2, highest=10**10)
    h.record_many(np.array([1, 10, 10**6, 10**11], dtype=np.uint64))
    again = pickle.loads(pickle.dumps(h))
    assert again == h and again.saturated == 1 and again.highest == 10**10


@pytest.mark.parametrize("bad, error, words", [
    (-1, MetricError, ">= 0"), (2**64, MetricError, "2**64"), (1.5, TypeError, "float"),
    (True, TypeError, "bool"), ("7", TypeError, "str"), (None, TypeError, "NoneType"),
])
def test_bad_values_are_refused_by_name(bad, error, words):
    h = Histogram()
    with pytest.raises(error, match="Histogram.record") as info:
        h.record(bad)
    assert words in str(info.value)
    assert h.count == 0


def test_numpy_integers_are_ints():
    h = Histogram()
    h.record(np.uint64(5)); h.record(np.int32(6))
    assert h.count == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"significant_digits": 0}, "significant_digits"), ({"significant_digits": 5}, "significant_digits"),
    ({"lowest": 0}, "lowest"), ({"highest": 1}, "highest"), ({"highest": 2**63}, r"2\*\*62"),
])
def test_bad_layouts_are_refused_by_name(kwargs, words):
    with pytest.raises(MetricError, match=words):
        Histogram(**kwargs)


def test_merge_of_different_layouts_is_refused_and_changes_nothing():
    a, b = Histogram(significant_digits=2), Histogram(significant_digits=3)
    a.record(1); b.record(2)
    with pytest.raises(MetricError, match="layouts differ"):
        a.merge(b)
    assert a.count == 1
    with pytest.raises(TypeError):
        a.merge(None)


@pytest.mark.parametrize("p", [-0.1, 100.1, float("nan")])
def test_percentile_out_of_range(p):
    h = Histogram(); h.record(1)
    with pytest.raises(MetricError, match="0..100"):
        h.percentile(p)


def test_record_many_needs_a_uint64_array():
    h = Histogram()
    with pytest.raises(TypeError, match="uint64"):
        h.record_many(np.arange(5, dtype=np.float64))
    with pytest.raises(TypeError, match="uint64"):
        h.record_many([1, 2, 3])
    assert h.count == 0


@pytest.mark.parametrize("state", [{}, {"significant_digits": 2}, "x",
                                   {**Histogram().to_dict(), "index": [10**9], "counts": [1]}])
def test_from_dict_refuses_malformed_state(state):
    with pytest.raises(MetricError):
        Histogram.from_dict(state)


def test_metric_error_is_a_tallyio_value_error():
    assert issubclass(MetricError, TallyioError) and issubclass(MetricError, ValueError)


def test_c_level_records_all_land():
    ns_per_record, count = _bench_record_c(100_000)
    assert count == 100_000 and ns_per_record > 0


def test_histogram_set_reuses_the_histograms_of_ended_threads():
    """Thread churn (a pool replacing its threads) keeps memory bounded by the
    threads alive at once, loses nothing, and never gives two live threads
    one histogram."""
    import threading

    hs = HistogramSet(significant_digits=2)
    for _ in range(50):
        t = threading.Thread(target=lambda: [hs.local().record(v) for v in range(10)])
        t.start()
        t.join()
    assert len(hs) == 1 and hs.merged().count == 500
    barrier = threading.Barrier(4)
    owners = []

    def alive_together():
        h = hs.local()
        barrier.wait()                           # all four hold theirs at once
        owners.append(id(h))
        h.record_n(7, 100)

    threads = [threading.Thread(target=alive_together) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(owners)) == 4 and len(hs) == 4
    assert hs.merged().count == 900


def test_record_n_of_zero_records_nothing():
    h = Histogram()
    h.record_n(500, 0)
    assert (h.count, h.min, h.max) == (0, None, None)
    h.record(7)
    assert (h.min, h.max) == (7, 7)
