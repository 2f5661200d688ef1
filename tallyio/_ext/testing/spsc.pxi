# SpscQueue test and benchmark helpers (included by _testing.pyx).
#
# Each spsc_* helper releases the GIL for its whole loop and drives the C API
# directly, so a producer helper and a consumer helper started on two Python
# threads really run at once.  Loops that find the ring full/empty back off
# (pause, then sched_yield, then short sleeps): this VM has 2 cores and the
# tests may run more threads than that.
import os as _spsc_os
import threading as _spsc_threading

from libc.stdlib cimport malloc as _spsc_malloc, free as _spsc_free
from tallyio._ext.common cimport tio_backoff, tio_backoff_reset, tio_backoff_snooze
from tallyio._ext.spsc cimport (SpscQueue, tio_spsc, tio_spsc_new, tio_spsc_free,
                                tio_spsc_push, tio_spsc_pop, tio_spsc_push_many,
                                tio_spsc_pop_many, tio_spsc_size)

# A helper that sees no progress for this long gives up and reports what it
# got, so a lost item fails the test instead of hanging it.
cdef uint64_t SPSC_STALL_NS = 20000000000ULL


def spsc_layout(SpscQueue q):
    """Byte offsets of the ring's fields from the start of its allocation
    (the test checks each index sits on its own 128-byte line)."""
    cdef tio_spsc *r = q.handle
    cdef char *base = <char *>r
    return {
        "base_mod_line": <uintptr_t>base % 128,
        "capacity": <char *>&r.capacity - base,
        "tail": <char *>&r.tail - base,
        "head_cache": <char *>&r.head_cache - base,
        "head": <char *>&r.head - base,
        "tail_cache": <char *>&r.tail_cache - base,
        "slots": <char *>r.slots - base,
        "header_size": sizeof(tio_spsc),
    }


def spsc_c_new_accepts(uint64_t capacity):
    """Whether tio_spsc_new accepts `capacity` (it needs a power of two no
    larger than TIO_SPSC_MAX_CAPACITY); a ring it builds starts empty."""
    cdef tio_spsc *ring = tio_spsc_new(capacity, 12345)
    if ring == NULL:
        return False
    cdef bint empty = tio_spsc_size(ring) == 0
    tio_spsc_free(ring)
    if not empty:
        raise AssertionError("a new ring is not empty")
    return True


def spsc_produce(SpscQueue q, uint64_t first, uint64_t n, StartGate gate):
    """Push first, first+1, ..., first+n-1 one by one (nogil).

    Returns the number of items pushed (n unless it stalled)."""
    cdef tio_spsc *ring = q.handle
    cdef uint64_t i = 0
    cdef uint64_t stalled_since = 0
    cdef tio_backoff backoff
    with nogil:
        gate.wait()
        tio_backoff_reset(&backoff)
        while i < n:
            if tio_spsc_push(ring, first + i) == TIO_OK:
                i += 1
                if backoff.step != 0:
                    tio_backoff_reset(&backoff)
                    stalled_since = 0
            else:
                if stalled_since == 0:
                    stalled_since = tio_now_ns()
                elif tio_now_ns() - stalled_since > SPSC_STALL_NS:
                    break
                tio_backoff_snooze(&backoff)
    return i


def spsc_consume_check(SpscQueue q, uint64_t first, uint64_t n, StartGate gate):
    """Pop n items one by one (nogil), checking the i-th is first + i.

    Returns {"received", "misordered", "first_bad_position", "first_bad_item"}
    (first_bad_* are -1 when every item was in order)."""
    cdef tio_spsc *ring = q.handle
    cdef uint64_t i = 0, item = 0, misordered = 0
    cdef int64_t bad_pos = -1
    cdef uint64_t bad_item = 0
    cdef uint64_t stalled_since = 0
    cdef tio_backoff backoff
    with nogil:
        gate.wait()
        tio_backoff_reset(&backoff)
        while i < n:
            if tio_spsc_pop(ring, &item) == TIO_OK:
                if item != first + i:
                    misordered += 1
                    if bad_pos < 0:
                        bad_pos = <int64_t>i
                        bad_item = item
                i += 1
                if backoff.step != 0:
                    tio_backoff_reset(&backoff)
                    stalled_since = 0
            else:
                if stalled_since == 0:
                    stalled_since = tio_now_ns()
                elif tio_now_ns() - stalled_since > SPSC_STALL_NS:
                    break
                tio_backoff_snooze(&backoff)
    return {"received": i, "misordered": misordered, "first_bad_position": bad_pos,
            "first_bad_item": bad_item if bad_pos >= 0 else -1}


def spsc_produce_batches(SpscQueue q, uint64_t first, uint64_t n, uint64_t max_chunk,
                         uint64_t seed, StartGate gate):
    """Push first .. first+n-1 with push_many in chunks of 1..max_chunk
    (pseudo-random lengths from `seed`), retrying the unaccepted suffix.

    Returns the number of items pushed (n unless it stalled)."""
    if max_chunk < 1:
        raise ValueError("max_chunk must be >= 1")
    cdef uint64_t *buf = <uint64_t *>_spsc_malloc(max_chunk * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    cdef tio_spsc *ring = q.handle
    cdef uint64_t sent = 0, want, got, k, draw = 0
    cdef uint64_t stalled_since = 0
    cdef tio_backoff backoff
    with nogil:
        gate.wait()
        tio_backoff_reset(&backoff)
        while sent < n:
            draw += 1
            want = 1 + mix64(seed + draw) % max_chunk
            if want > n - sent:
                want = n - sent
            for k in range(want):
                buf[k] = first + sent + k
            got = tio_spsc_push_many(ring, buf, want)
            sent += got
            if got != 0:
                tio_backoff_reset(&backoff)
                stalled_since = 0
            else:
                if stalled_since == 0:
                    stalled_since = tio_now_ns()
                elif tio_now_ns() - stalled_since > SPSC_STALL_NS:
                    break
                tio_backoff_snooze(&backoff)
    _spsc_free(buf)
    return sent


def spsc_consume_batches_check(SpscQueue q, uint64_t first, uint64_t n, uint64_t max_chunk,
                               uint64_t seed, StartGate gate):
    """Pop n items with pop_many in chunks of up to 1..max_chunk, checking
    the i-th is first + i.  Returns the same dict as spsc_consume_check."""
    if max_chunk < 1:
        raise ValueError("max_chunk must be >= 1")
    cdef uint64_t *buf = <uint64_t *>_spsc_malloc(max_chunk * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    cdef tio_spsc *ring = q.handle
    cdef uint64_t i = 0, want, got, k, draw = 0, misordered = 0
    cdef int64_t bad_pos = -1
    cdef uint64_t bad_item = 0
    cdef uint64_t stalled_since = 0
    cdef tio_backoff backoff
    with nogil:
        gate.wait()
        tio_backoff_reset(&backoff)
        while i < n:
            draw += 1
            want = 1 + mix64(seed ^ (draw * 0x9e3779b97f4a7c15ULL)) % max_chunk
            if want > n - i:
                want = n - i
            got = tio_spsc_pop_many(ring, buf, want)
            for k in range(got):
                if buf[k] != first + i + k:
                    misordered += 1
                    if bad_pos < 0:
                        bad_pos = <int64_t>(i + k)
                        bad_item = buf[k]
            i += got
            if got != 0:
                tio_backoff_reset(&backoff)
                stalled_since = 0
            else:
                if stalled_since == 0:
                    stalled_since = tio_now_ns()
                elif tio_now_ns() - stalled_since > SPSC_STALL_NS:
                    break
                tio_backoff_snooze(&backoff)
    _spsc_free(buf)
    return {"received": i, "misordered": misordered, "first_bad_position": bad_pos,
            "first_bad_item": bad_item if bad_pos >= 0 else -1}


# ---- benchmarks -------------------------------------------------------------
cdef struct _spsc_bench_slot:
    uint64_t start_ns
    uint64_t end_ns
    uint64_t checksum
    uint64_t count


cdef void _spsc_bench_producer(tio_spsc *ring, uint64_t n, uint64_t batch,
                               _spsc_bench_slot *res) noexcept nogil:
    cdef uint64_t i = 0, k, got, want
    cdef uint64_t buf[64]
    cdef tio_backoff backoff
    tio_backoff_reset(&backoff)
    res.start_ns = tio_now_ns()
    if batch <= 1:
        while i < n:
            if tio_spsc_push(ring, i) == TIO_OK:
                i += 1
                backoff.step = 0
            else:
                tio_backoff_snooze(&backoff)
    else:
        while i < n:
            want = batch if n - i > batch else n - i
            for k in range(want):
                buf[k] = i + k
            got = tio_spsc_push_many(ring, buf, want)
            # the suffix that did not fit is rewritten next round
            i += got
            if got != 0:
                backoff.step = 0
            else:
                tio_backoff_snooze(&backoff)
    res.end_ns = tio_now_ns()
    res.count = i


cdef void _spsc_bench_consumer(tio_spsc *ring, uint64_t n, uint64_t batch,
                               _spsc_bench_slot *res) noexcept nogil:
    cdef uint64_t i = 0, k, got, item = 0, sum = 0, bad = 0
    cdef uint64_t buf[64]
    cdef tio_backoff backoff
    tio_backoff_reset(&backoff)
    res.start_ns = tio_now_ns()
    if batch <= 1:
        while i < n:
            if tio_spsc_pop(ring, &item) == TIO_OK:
                bad += item != i
                sum += item
                i += 1
                backoff.step = 0
            else:
                tio_backoff_snooze(&backoff)
    else:
        while i < n:
            got = tio_spsc_pop_many(ring, buf, batch)
            for k in range(got):
                bad += buf[k] != i + k
                sum += buf[k]
            i += got
            if got != 0:
                backoff.step = 0
            else:
                tio_backoff_snooze(&backoff)
    res.end_ns = tio_now_ns()
    res.count = i
    res.checksum = sum if bad == 0 else 0


def _spsc_bench_side(SpscQueue q, uint64_t n, uint64_t batch, bint producer, int cpu,
                     StartGate gate, uint64_t[::1] result):
    """Thread body for the cross-thread cases: pin, wait at the gate, run."""
    cdef _spsc_bench_slot res
    if cpu >= 0:
        _spsc_os.sched_setaffinity(0, {cpu})
    with nogil:
        gate.wait()
        if producer:
            _spsc_bench_producer(q.handle, n, batch, &res)
        else:
            _spsc_bench_consumer(q.handle, n, batch, &res)
    result[0] = res.start_ns
    result[1] = res.end_ns
    result[2] = res.checksum if not producer else 0
    result[3] = res.count


def _spsc_cross_thread_ns(uint64_t n, uint64_t batch, uint64_t capacity):
    import numpy as np
    if batch > 64:
        raise ValueError("batch must be <= 64")
    q = SpscQueue(capacity, dtype="uint64")
    gate = StartGate(2)
    allowed = sorted(_spsc_os.sched_getaffinity(0))
    cpus = (allowed[0], allowed[1]) if len(allowed) >= 2 else (-1, -1)
    res_p = np.zeros(4, dtype=np.uint64)
    res_c = np.zeros(4, dtype=np.uint64)
    tp = _spsc_threading.Thread(target=_spsc_bench_side, args=(q, n, batch, True, cpus[0], gate, res_p))
    tc = _spsc_threading.Thread(target=_spsc_bench_side, args=(q, n, batch, False, cpus[1], gate, res_c))
    tp.start(); tc.start()
    tp.join(); tc.join()
    expected = (n * (n - 1) // 2) % 2**64
    if int(res_p[3]) != n or int(res_c[3]) != n or int(res_c[2]) != expected:
        raise AssertionError(f"bench_spsc cross-thread: lost or misordered items "
                             f"(sent {int(res_p[3])}, got {int(res_c[3])}, checksum {int(res_c[2])} != {expected})")
    start = min(int(res_p[0]), int(res_c[0]))
    end = max(int(res_p[1]), int(res_c[1]))
    return (end - start) / n


def bench_spsc(n: int, capacity: int = 8192) -> dict:
    """C-level SpscQueue costs in ns per item, from nogil loops, on a ring of
    `capacity` slots (default 8192, the scheduler's default queue capacity).

    * push+pop same thread: one push and one pop per item on one thread;
    * push_many+pop_many same thread, batch of 64: per item;
    * cross-thread per item: a producer thread pushes n items one by one, a
      consumer thread pops them (pinned to two CPUs when available); the
      time from the first start to the last finish, per item;
    * cross-thread batch of 64: the same with push_many/pop_many of 64.
    Every case checks the items it moved (order and checksum)."""
    cdef uint64_t count = n
    if count < 64:
        raise ValueError("bench_spsc needs n >= 64")
    cdef SpscQueue q = SpscQueue(capacity, dtype="uint64")
    cdef tio_spsc *ring = q.handle
    cdef uint64_t i, k, item = 0, sum = 0, t0, t1, t2, t3, expected
    cdef uint64_t buf[64]
    cdef uint64_t out[64]
    cdef uint64_t rounds = count // 64
    with nogil:
        t0 = tio_now_ns()
        for i in range(count):
            tio_spsc_push(ring, i)
            tio_spsc_pop(ring, &item)
            sum += item
        t1 = tio_now_ns()
        for i in range(rounds):
            for k in range(64):
                buf[k] = i * 64 + k
            tio_spsc_push_many(ring, buf, 64)
            tio_spsc_pop_many(ring, out, 64)
            for k in range(64):
                sum += out[k]
        t2 = tio_now_ns()
    expected = count * (count - 1) // 2 + (rounds * 64) * (rounds * 64 - 1) // 2
    if sum != expected:
        raise AssertionError(f"bench_spsc same-thread: checksum {sum} != {expected}")
    return {
        "push+pop same thread": <double>(t1 - t0) / count,
        "push_many+pop_many same thread, batch of 64 per item": <double>(t2 - t1) / (rounds * 64),
        "cross-thread per item": _spsc_cross_thread_ns(count, 1, capacity),
        "cross-thread batch of 64 per item": _spsc_cross_thread_ns(count, 64, capacity),
    }
