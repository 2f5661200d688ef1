# cython: language_level=3
"""nogil loops over tallyio.state's C API, for the concurrency tests and the
``state`` benchmark group: a seqlock writer hammering records against
checking readers, workers pushing thread-local updates against a merging
writer, and timed merge + checkpoint / seqlock-read loops.

Owns nothing; touches only the objects it is given.

    >>> from tallyio.state import GlobalState, StateLayout
    >>> st = GlobalState(StateLayout(1, {"t": ([("a", "u8"), ("b", "u8")], 4)}))
    >>> flag = Flag()
    >>> seqlock_hammer(st, "t", 4, flag, 100)
    100
    >>> seqlock_check_reads(st, "t", 4, 1000, flag, 1)[0]     # torn reads
    0
"""
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_init_u64, tio_atomic_load_u64_acquire,
                                  tio_atomic_fetch_add_u64_acqrel, tio_now_ns, tio_cpu_relax,
                                  TIO_OK)
from tallyio.state._native cimport (GlobalState, LocalState, CheckpointFile, _Table,
                                    tio_state_record, tio_state_write, tio_seqlock_read,
                                    tio_state_merge, tio_local_push_op, tio_local_count, tio_op_word, tio_ckpt_write,
                                    TIO_OP_ADD, TIO_OP_SET)

__all__ = ["Flag", "seqlock_hammer", "seqlock_check_reads", "push_adds", "merge_until",
           "bench_seqlock_read_ns", "bench_merge_checkpoint"]

cdef class Flag:
    """A shared counter threads raise when done (acquire/release)."""
    cdef tio_atomic_u64 v

    def __cinit__(self):
        tio_atomic_init_u64(&self.v, 0)

    def raise_(self, uint64_t n=1):
        tio_atomic_fetch_add_u64_acqrel(&self.v, n)

    @property
    def value(self):
        return tio_atomic_load_u64_acquire(&self.v)


cdef inline uint64_t _pattern(uint64_t it, uint32_t word) noexcept nogil:
    return it * <uint64_t>0x9E3779B97F4A7C15 + word


def seqlock_hammer(GlobalState st, str table, uint64_t nrecords, Flag done, uint64_t max_writes):
    """Writer: write ``it = 1, 2, ...`` into record ``it % nrecords`` (word 1
    = it, word j = it * golden + j) until ``done`` is raised or max_writes;
    returns the number of writes."""
    cdef _Table t = st._table(table)
    cdef uint32_t nw = t.record_words, j
    cdef uint64_t it = 0
    cdef uint64_t buf[256]
    cdef uint64_t *rec
    if nrecords == 0 or nrecords > t.capacity:
        raise ValueError("nrecords out of range")
    with nogil:
        while it < max_writes and tio_atomic_load_u64_acquire(&done.v) == 0:
            it += 1
            rec = tio_state_record(&st.st, t.table_id, it % nrecords)
            buf[1] = it
            for j in range(2, nw):
                buf[j] = _pattern(it, j)
            tio_state_write(&st.st, rec, buf, nw)
    return it


def seqlock_check_reads(GlobalState st, str table, uint64_t nrecords, uint64_t min_reads,
                        Flag done, uint64_t seed):
    """Reader: seqlock-read ``min_reads`` random records, then raise
    ``done`` (which stops seqlock_hammer). Checks each record is whole: every word from one write,
    the sequence equal to twice the writes of that record so far, versions
    never going backwards. Returns (torn, reads, retries, changes_seen)."""
    cdef _Table t = st._table(table)
    cdef uint32_t nw = t.record_words, j
    cdef uint64_t buf[256]
    cdef uint64_t x = seed | 1, i, it, reads = 0, retries = 0, torn = 0, changes = 0, writes
    cdef uint64_t *last = <uint64_t *>calloc(nrecords, 8)
    if last == NULL:
        raise MemoryError()
    with nogil:
        while reads < min_reads:
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            i = x % nrecords
            retries += tio_seqlock_read(tio_state_record(&st.st, t.table_id, i), buf, nw)
            reads += 1
            it = buf[1]
            if it == 0:
                # never written: all zero
                for j in range(0, nw):
                    if buf[j] != 0:
                        torn += 1
                        break
                continue
            if it % nrecords != i:
                torn += 1
                continue
            writes = (it - i) // nrecords + (1 if i > 0 else 0)
            if buf[0] != 2 * writes:
                torn += 1
                continue
            for j in range(2, nw):
                if buf[j] != _pattern(it, j):
                    torn += 1
                    break
            if it < last[i]:
                torn += 1
            elif it > last[i]:
                changes += 1
                last[i] = it
    free(last)
    done.raise_()
    return torn, reads, retries, changes


def push_adds(LocalState loc, str table, str field, uint64_t nrecords, uint64_t n):
    """Worker: queue ``n`` updates ``record[k % nrecords].field += 1`` from a
    nogil loop (spinning while the ring is full) and count each in counter 0;
    returns n."""
    cdef _Table t = loc.owner._table(table)
    word, _kind = loc.owner._field(t, field)
    cdef uint32_t w = word
    cdef uint64_t k = 0
    if nrecords == 0 or nrecords > t.capacity or loc.l.ncounters < 1:
        raise ValueError("nrecords out of range or no counter")
    with nogil:
        while k < n:
            if tio_local_push_op(&loc.l, tio_op_word(TIO_OP_ADD, t.table_id, w, k % nrecords), 1) == TIO_OK:
                k += 1
                tio_local_count(&loc.l, 0, 1)
            else:
                tio_cpu_relax()
    return k


def merge_until(GlobalState st, Flag done, uint64_t workers):
    """Writer: merge in a nogil loop until ``done`` reaches ``workers``, then
    once more; returns the number of changes applied."""
    cdef uint64_t applied = 0
    with nogil:
        while tio_atomic_load_u64_acquire(&done.v) < workers:
            applied += tio_state_merge(&st.st, st._local_ptrs, st._nlocals, st._counters_table)
        applied += tio_state_merge(&st.st, st._local_ptrs, st._nlocals, st._counters_table)
    return applied


def bench_seqlock_read_ns(GlobalState st, str table, uint64_t index, uint64_t n):
    """Nanoseconds per seqlock read of one record from C (n reads, nogil);
    returns (ns_per_read, checksum) -- the checksum keeps the loop alive."""
    cdef _Table t = st._table(table)
    cdef uint64_t buf[256]
    cdef uint64_t _i, sum = 0, t0, t1
    cdef uint64_t *rec = st._record(t, index)
    cdef uint32_t nw = t.record_words
    with nogil:
        t0 = tio_now_ns()
        for _i in range(n):
            tio_seqlock_read(rec, buf, nw)
            sum += buf[1] + buf[0]
        t1 = tio_now_ns()
    return (t1 - t0) / <double>n, sum


def bench_merge_checkpoint(GlobalState st, LocalState loc, CheckpointFile ck, str table, str field,
                           uint64_t updates, uint64_t iterations, uint64_t[:, ::1] out_ns,
                           bint full_copy):
    """Each iteration: the worker queues ``updates`` SETs (untimed), then the
    writer merges and checkpoints (timed: out_ns[i, 0] = merge ns, out_ns[i,
    1] = checkpoint ns). ``full_copy`` marks every block dirty first (the
    worst case); otherwise only the updated records' blocks are copied."""
    cdef _Table t = st._table(table)
    word, _kind = st._field(t, field)
    cdef uint32_t w = word
    cdef uint64_t i, k, t0, t1, t2, b
    cdef int rc = TIO_OK, s
    if <uint64_t>out_ns.shape[0] < iterations or out_ns.shape[1] < 2:
        raise ValueError("out_ns must be (iterations, 2)")
    with nogil:
        for i in range(iterations):
            for k in range(updates):
                tio_local_push_op(&loc.l, tio_op_word(TIO_OP_SET, t.table_id, w,
                                                      (i * updates + k) % t.capacity), i)
            if full_copy:
                for s in range(2):
                    for b in range(st.st.nblocks):
                        st.st.dirty[s][b >> 6] |= (<uint64_t>1) << (b & 63)
            t0 = tio_now_ns()
            tio_state_merge(&st.st, st._local_ptrs, st._nlocals, st._counters_table)
            t1 = tio_now_ns()
            rc = tio_ckpt_write(&ck.c, &st.st, i, NULL, 0, t1)
            t2 = tio_now_ns()
            out_ns[i, 0] = t1 - t0
            out_ns[i, 1] = t2 - t1
            if rc != TIO_OK:
                break
    if rc != TIO_OK:
        raise RuntimeError(f"checkpoint failed with status {rc}")
    return iterations
