# MpmcQueue test and benchmark helpers (included by _testing.pyx).
#
# Every loop runs without the GIL for its whole length, waits on a StartGate
# first, and backs off (pause -> sched_yield -> short sleeps) when the queue
# is full or empty, because the tests run 8 threads on 2 cores.
#
# Item encoding used by the stress tests: producer p pushes (p << 32) | i for
# i = 0, 1, ..., so conservation and per-producer FIFO can be checked with numpy.
import os as _mpmc_os
import threading as _mpmc_threading

from libc.stdlib cimport malloc as _mpmc_malloc, free as _mpmc_free
from tallyio._ext.common cimport tio_backoff, tio_backoff_reset, tio_backoff_snooze
from tallyio._ext.mpmc cimport (MpmcQueue, tio_mpmc, tio_mpmc_slot, tio_mpmc_new,
                                tio_mpmc_free, tio_mpmc_push, tio_mpmc_pop,
                                tio_mpmc_push_many, tio_mpmc_pop_many)


def mpmc_queue_at(capacity, dtype=object, uint64_t start_pos=0):
    """An empty MpmcQueue whose positions start at `start_pos` (e.g. near
    2**64, to exercise the wrap of the free-running positions)."""
    cdef MpmcQueue q = MpmcQueue(capacity, dtype)
    cdef tio_mpmc *ring = tio_mpmc_new(q.handle.capacity, start_pos)
    if ring == NULL:
        raise MemoryError("mpmc_queue_at: allocation failed")
    tio_mpmc_free(q.handle)          # empty: nothing to release
    q.handle = ring
    return q


def mpmc_positions(MpmcQueue q):
    """(enqueue_pos, dequeue_pos) as stored (single-threaded inspection only)."""
    return (tio_atomic_load_u64_acquire(&q.handle.enqueue_pos),
            tio_atomic_load_u64_acquire(&q.handle.dequeue_pos))


def mpmc_layout():
    """Byte offsets of the hot fields of struct tio_mpmc, and sizes."""
    cdef tio_mpmc probe
    cdef char *base = <char *>&probe
    return {
        "enqueue_pos": <char *>&probe.enqueue_pos - base,
        "dequeue_pos": <char *>&probe.dequeue_pos - base,
        "sizeof": sizeof(tio_mpmc),
        "slot": sizeof(tio_mpmc_slot),
    }


cdef inline uint64_t *_mpmc_out_ptr(uint64_t[::1] out, uint64_t need) except? NULL:
    if out is None:
        return NULL
    if <uint64_t>out.shape[0] < need:
        raise ValueError(f"output array too short: {out.shape[0]} < {need}")
    if need == 0:
        return NULL
    return &out[0]


cdef inline bint _mpmc_stalled(tio_backoff *backoff, uint64_t *since, uint64_t patience_ns) noexcept nogil:
    """Back off once; True when nothing has changed for `patience_ns` (a lost
    item would otherwise hang the test instead of failing it)."""
    cdef uint64_t now
    tio_backoff_snooze(backoff)
    if backoff.step < 16:
        return False
    now = tio_now_ns()
    if since[0] == 0:
        since[0] = now
    return now - since[0] > patience_ns


def mpmc_produce(MpmcQueue q, StartGate gate, uint64_t first, uint64_t count,
                 double patience=30.0):
    """Push first, first+1, ..., first+count-1 one by one, backing off while
    full; gives up after `patience` seconds without progress.
    Returns (t_start_ns, t_end_ns, times_found_full, pushed)."""
    cdef tio_mpmc *ring = q.handle
    cdef uint64_t i = 0, full = 0, t0, t1, since = 0
    cdef uint64_t patience_ns = <uint64_t>(patience * 1e9)
    cdef tio_backoff backoff
    tio_backoff_reset(&backoff)
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        while i < count:
            if tio_mpmc_push(ring, first + i) == TIO_OK:
                i += 1
                tio_backoff_reset(&backoff)
                since = 0
            else:
                full += 1
                if _mpmc_stalled(&backoff, &since, patience_ns):
                    break
        t1 = tio_now_ns()
    return (t0, t1, full, i)


def mpmc_consume(MpmcQueue q, StartGate gate, uint64_t quota, uint64_t[::1] out=None,
                 double patience=30.0):
    """Pop exactly `quota` items one by one, backing off while empty, and
    record them in `out` (if given) in the order taken; gives up after
    `patience` seconds without progress.
    Returns (t_start_ns, t_end_ns, checksum, popped); checksum = sum of items."""
    cdef tio_mpmc *ring = q.handle
    cdef uint64_t *dst = _mpmc_out_ptr(out, quota)
    cdef uint64_t n = 0, v = 0, total = 0, t0, t1, since = 0
    cdef uint64_t patience_ns = <uint64_t>(patience * 1e9)
    cdef tio_backoff backoff
    tio_backoff_reset(&backoff)
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        while n < quota:
            if tio_mpmc_pop(ring, &v) == TIO_OK:
                if dst != NULL:
                    dst[n] = v
                total += v
                n += 1
                tio_backoff_reset(&backoff)
                since = 0
            elif _mpmc_stalled(&backoff, &since, patience_ns):
                break
        t1 = tio_now_ns()
    return (t0, t1, total, n)


def mpmc_produce_many(MpmcQueue q, StartGate gate, uint64_t first, uint64_t count,
                      uint64_t batch, double patience=30.0):
    """Push first .. first+count-1 through tio_mpmc_push_many in batches of up
    to `batch`, backing off while full; gives up after `patience` seconds
    without progress.  Returns (t_start_ns, t_end_ns, calls, pushed)."""
    cdef tio_mpmc *ring = q.handle
    cdef uint64_t i = 0, j, b, k, done, calls = 0, t0, t1, since = 0
    cdef uint64_t patience_ns = <uint64_t>(patience * 1e9)
    cdef bint stalled = False
    cdef tio_backoff backoff
    if batch < 1:
        raise ValueError("batch must be >= 1")
    cdef uint64_t *buf = <uint64_t *>_mpmc_malloc(batch * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    tio_backoff_reset(&backoff)
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        while i < count:
            b = count - i if count - i < batch else batch
            for j in range(b):
                buf[j] = first + i + j
            done = 0
            while done < b:
                k = tio_mpmc_push_many(ring, buf + done, b - done)
                calls += 1
                if k == 0:
                    stalled = _mpmc_stalled(&backoff, &since, patience_ns)
                    if stalled:
                        break
                else:
                    done += k
                    tio_backoff_reset(&backoff)
                    since = 0
            i += done
            if stalled:
                break
        t1 = tio_now_ns()
    _mpmc_free(buf)
    return (t0, t1, calls, i)


def mpmc_consume_many(MpmcQueue q, StartGate gate, uint64_t quota, uint64_t batch,
                      uint64_t[::1] out=None, double patience=30.0):
    """Pop exactly `quota` items through tio_mpmc_pop_many (at most `batch` per
    call), backing off while empty; record them in `out` if given; gives up
    after `patience` seconds without progress.
    Returns (t_start_ns, t_end_ns, checksum, popped)."""
    cdef tio_mpmc *ring = q.handle
    cdef uint64_t *dst = _mpmc_out_ptr(out, quota)
    cdef uint64_t n = 0, k, j, want, total = 0, t0, t1, since = 0
    cdef uint64_t patience_ns = <uint64_t>(patience * 1e9)
    cdef tio_backoff backoff
    if batch < 1:
        raise ValueError("batch must be >= 1")
    cdef uint64_t *buf = <uint64_t *>_mpmc_malloc(batch * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    tio_backoff_reset(&backoff)
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        while n < quota:
            want = quota - n if quota - n < batch else batch
            k = tio_mpmc_pop_many(ring, buf, want)
            if k == 0:
                if _mpmc_stalled(&backoff, &since, patience_ns):
                    break
                continue
            tio_backoff_reset(&backoff)
            since = 0
            for j in range(k):
                total += buf[j]
                if dst != NULL:
                    dst[n + j] = buf[j]
            n += k
        t1 = tio_now_ns()
    _mpmc_free(buf)
    return (t0, t1, total, n)


# ---- C-level benchmark --------------------------------------------------------
def _mpmc_pin(int which):
    """Pin the calling thread to the which-th allowed CPU, when there are >= 2."""
    allowed = sorted(_mpmc_os.sched_getaffinity(0))
    if len(allowed) >= 2:
        _mpmc_os.sched_setaffinity(0, {allowed[which % len(allowed)]})


def _mpmc_run_threads(jobs):
    """Run [(cpu, fn, args), ...] on one thread each; return ns from the first
    start to the last end, and the results."""
    results = [None] * len(jobs)
    errors = []

    def body(index, cpu, fn, args):
        try:
            if cpu is not None:
                _mpmc_pin(cpu)
            results[index] = fn(*args)
        except BaseException as exc:          # surfaced below
            errors.append(exc)

    threads = [_mpmc_threading.Thread(target=body, args=(i,) + tuple(job))
               for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    return end - start, results


def bench_mpmc(n: int = 1_000_000) -> dict:
    """Nanoseconds per operation of the MPMC ring, from nogil loops.

    Cases: "push+pop same thread" (ns per push+pop pair), "1P1C cross-thread
    per item" (pinned to two CPUs), "2P2C per item" (4 threads; on a 2-core
    machine two share each core), "batch of 64 per item" (push_many(64) +
    pop_many(64) on one thread, ns per item), "1P1C batch of 64 per item"
    (cross-thread, pinned).  Every loop checks a checksum of what it moved."""
    cdef uint64_t count = n, i, v = 0, total = 0, t0, t1, k, j
    cdef MpmcQueue q
    cdef tio_mpmc *ring
    cdef uint64_t[64] buf
    cdef uint64_t[64] got
    if count < 128:
        raise ValueError("n must be >= 128")
    out = {}
    expected = int(count) * (int(count) - 1) // 2 % 2**64

    q = MpmcQueue(1024, "uint64")
    ring = q.handle
    with nogil:
        t0 = tio_now_ns()
        for i in range(count):
            tio_mpmc_push(ring, i)
            tio_mpmc_pop(ring, &v)
            total += v
        t1 = tio_now_ns()
    if total != expected:
        raise AssertionError("checksum mismatch in 'push+pop same thread'")
    out["push+pop same thread"] = (t1 - t0) / <double>count

    count = count // 64 * 64
    expected = int(count) * (int(count) - 1) // 2 % 2**64
    total = 0
    with nogil:
        t0 = tio_now_ns()
        i = 0
        while i < count:
            for j in range(64):
                buf[j] = i + j
            tio_mpmc_push_many(ring, buf, 64)
            k = tio_mpmc_pop_many(ring, got, 64)
            for j in range(k):
                total += got[j]
            i += 64
        t1 = tio_now_ns()
    if total != expected:
        raise AssertionError("checksum mismatch in 'batch of 64 per item'")
    out["batch of 64 per item"] = (t1 - t0) / <double>count

    q = MpmcQueue(1024, "uint64")
    gate = StartGate(2)
    ns, res = _mpmc_run_threads([(0, mpmc_produce, (q, gate, 0, count)),
                                 (1, mpmc_consume, (q, gate, count))])
    if res[1][2] != expected:
        raise AssertionError("checksum mismatch in '1P1C cross-thread per item'")
    out["1P1C cross-thread per item"] = ns / count

    q = MpmcQueue(1024, "uint64")
    gate = StartGate(2)
    ns, res = _mpmc_run_threads([(0, mpmc_produce_many, (q, gate, 0, count, 64)),
                                 (1, mpmc_consume_many, (q, gate, count, 64))])
    if res[1][2] != expected:
        raise AssertionError("checksum mismatch in '1P1C batch of 64 per item'")
    out["1P1C batch of 64 per item"] = ns / count

    q = MpmcQueue(1024, "uint64")
    gate = StartGate(4)
    half = count // 2
    ns, res = _mpmc_run_threads([(0, mpmc_produce, (q, gate, 0, half)),
                                 (1, mpmc_produce, (q, gate, half, half)),
                                 (0, mpmc_consume, (q, gate, half)),
                                 (1, mpmc_consume, (q, gate, half))])
    if (res[2][2] + res[3][2]) % 2**64 != expected:
        raise AssertionError("checksum mismatch in '2P2C per item'")
    out["2P2C per item"] = ns / count
    return out
