# cython: language_level=3
# Owns: ReplayFeeder, the native replay source: it walks a recording's memory map without the
# GIL, pushes its pending transactions into a Pipeline's ring in batches (one worker wake-up
# per batch), applies blocks and Syncs, and paces a realtime replay by the recorded times.
# Touches: tallyio.state's record log (recordlog.py checks the file headers, _recordlog.pxd
# walks the records), Pipeline's raw-record C API (_pipeline.pxd), and recording.py's decode()
# for the record kinds it does not apply itself (they go through Pipeline.feed in Python).
"""The native replay feeder: a recording into a Pipeline at 200k+ transactions/s, or paced.

``ReplayFeeder(pipeline, path).run()`` is ``pipeline.run(ReplaySource(path))`` without a
Python object per record: the record log is read in place (the same checks as
``RecordReader``: type, sequence, length, CRC-32), each PENDING_TX payload is filtered
and copied into the pipeline's ring from C, and the workers are woken once per batch of
up to 32 accepted transactions (never per record: a wake-up costs tens of microseconds).
BLOCK_HEADER and SYNC_EVENT records wait at the pipeline's block barrier and are applied
in C as ``feed`` applies them, so the opportunities are the same as the Python path's.
Every other kind (a V3 pool event, a kind added later) is handed back to Python: decoded
by ``tallyio.mempool.recording.decode`` and given to ``Pipeline.feed`` in its turn.

* Full speed (``realtime=False``): time comes from the records; when the ring is full the
  feeder waits for the workers (backpressure) instead of dropping: a replay at full
  speed analyzes every transaction, on every run.
* ``realtime=True``: each record is due at ``start + (its ts - the first ts)`` on the
  monotonic clock (``clock``); the feeder sleeps (without the GIL, ``clock_nanosleep`` to
  the absolute time, its thread's timer slack at 1 ns for the run) until ``spin_ns``
  before the next record is due, then spins to it, and feeds everything already due as
  one batch.  Before each wait, what it queued is analyzed: on its own thread when slot 0
  is idle and at most a batch waits (``inline_analysis``: no worker wake-up, which costs
  more than the analysis), else by the workers.  A live stream's ring drops its oldest
  record when full (counted), as a node source's does.

    >>> from tallyio.mempool import Pipeline
    >>> from tallyio.mempool.recording import ReplaySource, embedded_recording
    >>> path, golden = embedded_recording()
    >>> routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    >>> def replay(native):
    ...     with Pipeline(ReplaySource(path).pool_table(), routers_v2=routers, workers=1) as pipe:
    ...         if native:
    ...             with ReplayFeeder(pipe, path) as feeder:
    ...                 info = feeder.run()
    ...         else:
    ...             info = pipe.run(ReplaySource(path))
    ...         return info, sorted(op[:6] for op in pipe.opportunities.get_many(1 << 16))
    >>> (info, mine), (_, theirs) = replay(True), replay(False)
    >>> info["end"], info["records"], mine == theirs, len(mine) > 0
    ('end of log', 211, True, True)
"""
import mmap
import os

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy
from posix.time cimport timespec

from tallyio._ext.common cimport (
    tio_atomic_u64, tio_atomic_init_u64, tio_atomic_load_u64_relaxed, tio_atomic_store_u64_relaxed,
    tio_atomic_load_u64_acquire, tio_atomic_store_u64_release, tio_now_ns, tio_backoff,
    tio_backoff_reset, tio_backoff_snooze, tio_cpu_relax,
)
from tallyio.mempool._pipeline cimport (
    Pipeline, pipe_state, pipe_feed_raw, pipe_kick, pipe_drain_inline, pipe_finish, BATCH, PIPE_ACCEPTED, PIPE_BAD,
    REC_PENDING_TX, REC_BLOCK_HEADER, REC_POOL_SNAPSHOT,
)
from tallyio.mempool._ring cimport tio_dropring_queued
from tallyio.mempool._u256py cimport u256_to_int
from tallyio._ext.u256 cimport tio_u256, tio_u256_from_be32
from tallyio.state._recordlog cimport (tio_rlog_cursor, tio_rlog_record, tio_rlog_open, tio_rlog_peek,
                                       tio_rlog_advance, TIO_RLOG_OK, TIO_RLOG_END, tio_le32, tio_le64,
                                       rlog_check_header, rlog_segment_files)

from tallyio.eth.types import PendingTx

__all__ = ["ReplayFeeder", "replay_items"]

cdef extern from "<time.h>" nogil:
    int clock_nanosleep(int clockid, int flags, const timespec *request, timespec *remain)
    enum:
        CLOCK_MONOTONIC
        TIMER_ABSTIME

cdef extern from *:
    """
    /* The calling thread's timer slack (Linux: prctl PR_SET/GET_TIMERSLACK): how late the
     * kernel may fire its sleeps to merge wake-ups; 50 us by default.  Elsewhere a no-op
     * returning -1 (nothing to restore). */
    #if defined(__linux__)
    #include <sys/prctl.h>
    static long tio_feeder_set_timerslack(long ns) {
        long old = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        if (old < 0 || prctl(PR_SET_TIMERSLACK, (unsigned long)ns, 0, 0, 0) != 0) return -1;
        return old;
    }
    #else
    static long tio_feeder_set_timerslack(long ns) { (void)ns; return -1; }
    #endif
    """
    long tio_feeder_set_timerslack(long ns) nogil

cdef enum:
    # why feeder_loop returned to Python
    FEED_END = 0            # no more records (every segment read)
    FEED_INVALID = 1        # a torn or damaged record: where the recording ends
    FEED_STOPPED = 2        # stop() was called
    PAUSE_FALLBACK = 3      # the record at the cursor is not applied natively: Python feeds it
    PAUSE_BARRIER = 4       # lockstep: pending transactions came, the record at the cursor is not one
    PAUSE_BLOCK = 5         # a block header was just applied (on_block)
    PAUSE_TICK = 6          # a chance for Python to look at should_stop()
    PAUSE_LENDING_TX = 7    # a pending transaction to the lending hook's address was just fed (on_lending_tx)

    SLEEP_SLICE_NS = 2000000        # a realtime wait re-checks stop() at least this often
    TIMER_SLACK_NS = 1              # a realtime run's timer slack (the kernel's default is 50 us)
    TICK_SLACK_NS = 1000000         # a realtime tick (should_stop) only this long before a record is due
    SPIN_NS = 30000                 # realtime: the default spin before a due record (ReplayFeeder's spin_ns)
    TICK_RECORDS = 65536            # full speed: a tick every this many records
    LOOKUP = 65536                  # accepted transactions remembered for pending_tx (the engine's dry run)
    TX_PAYLOAD_HEAD = 202           # recording.py's _TX_HEAD.size


cdef struct feeder_state:
    pipe_state *pipe
    tio_rlog_cursor cur
    tio_rlog_record rec          # the record at the cursor when a pause returned (PAUSE_BLOCK: the last one)
    uint64_t segment             # index of the segment being read (the lookup's offsets carry it)
    bint realtime
    bint backpressure            # full speed: wait for room in the ring instead of dropping
    bint lockstep                # pause before a non-pending record when pending ones came since
    bint pause_blocks            # pause after each block header (on_block)
    bint pending_since           # pending transactions fed since the last barrier pause
    uint64_t native_mask         # bit t set: record type t (1..3) applied in C
    uint64_t skip_until          # pending transactions among the first skip_until items are skipped
    uint64_t items               # PendingTx / BlockHeader / SyncEvent / other decodable records seen
    uint64_t clock_started
    uint64_t first_ts
    uint64_t start_wall
    uint64_t tick_ns             # realtime: return PAUSE_TICK while waiting at most this often
    uint64_t last_tick
    uint64_t batch_n             # accepted since the last kick
    uint64_t spin_ns             # realtime: spin (not sleep) the last spin_ns before a record is due
    bint inline_analysis         # realtime: analyze what is queued on this thread before a wait
    tio_atomic_u64 stop
    # counters (the feeder's thread writes them; read after run, or approximately)
    uint64_t records             # valid records walked (every type)
    uint64_t pending
    uint64_t accepted
    uint64_t skipped
    uint64_t fallback
    uint64_t kicks
    uint64_t sleeps
    uint64_t waits_for_room
    uint64_t inline_drains       # batches this thread analyzed itself (no worker woken)
    uint64_t spins               # realtime waits that ended spinning
    # accepted transactions: hash[0:8] and (segment << 48 | payload offset), newest last
    tio_atomic_u64 *lk_key
    tio_atomic_u64 *lk_where
    tio_atomic_u64 lk_n
    # the lending hook (issue 15): pending transactions to this address also go to Python
    bint lending_watch
    uint8_t lending_to[20]


cdef inline void batch_done(feeder_state *f) noexcept nogil:
    if f.batch_n:
        pipe_kick(f.pipe)
        f.kicks += 1
        f.batch_n = 0


cdef inline void flush_before_wait(feeder_state *f) noexcept nogil:
    """Realtime, the next record not due yet: what is queued is analyzed now, on this
    thread when slot 0 is idle (no wake-up: the wait absorbs the work), else by a worker."""
    if f.batch_n:
        if f.inline_analysis and pipe_drain_inline(f.pipe):
            f.inline_drains += 1
            f.batch_n = 0
        else:
            batch_done(f)


cdef void sleep_until(uint64_t due) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = <long>(due // 1000000000)
    ts.tv_nsec = <long>(due % 1000000000)
    # an EINTR returns early: the loop looks at the clock again
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)


cdef inline void remember(feeder_state *f, const tio_rlog_record *rec) noexcept nogil:
    cdef uint64_t n = tio_atomic_load_u64_relaxed(&f.lk_n)
    cdef uint64_t key
    memcpy(&key, rec.payload, 8)
    # relaxed stores, published by the release store of lk_n: a reader (pending_tx, another
    # thread) that sees a torn pair checks the full hash at the offset before using it
    tio_atomic_store_u64_relaxed(&f.lk_key[n % LOOKUP], key)
    tio_atomic_store_u64_relaxed(&f.lk_where[n % LOOKUP],
                                 (f.segment << 48) | (rec.offset + 24))
    tio_atomic_store_u64_release(&f.lk_n, n + 1)


cdef inline bint lending_tx(const feeder_state *f, const tio_rlog_record *rec) noexcept nogil:
    """A PENDING_TX payload whose ``to`` (offset 52, has_to at 72) is the lending hook's address."""
    return (rec.length >= TX_PAYLOAD_HEAD and rec.payload[72] != 0
            and memcmp(rec.payload + 52, f.lending_to, 20) == 0)


cdef int feeder_loop(feeder_state *f) noexcept nogil:
    """Feed records until one needs Python (a pause), the recording ends or stop()."""
    cdef tio_rlog_record *rec = &f.rec
    cdef uint64_t now, due, wake, cap = f.pipe.ring.capacity
    cdef int status
    cdef tio_backoff backoff
    while True:
        # relaxed: a flag; the pipeline's own atomics order the records
        if tio_atomic_load_u64_relaxed(&f.stop):
            batch_done(f)
            return FEED_STOPPED
        status = tio_rlog_peek(&f.cur, rec)
        if status != TIO_RLOG_OK:
            batch_done(f)
            return FEED_END if status == TIO_RLOG_END else FEED_INVALID
        if rec.type == REC_POOL_SNAPSHOT:
            f.records += 1
            tio_rlog_advance(&f.cur, rec)
            continue
        if f.realtime:
            if not f.clock_started:
                f.clock_started = 1
                f.first_ts = rec.ts
                f.start_wall = tio_now_ns()
            due = f.start_wall + (rec.ts - f.first_ts if rec.ts > f.first_ts else 0)
            now = tio_now_ns()
            if now < due:
                if f.batch_n:
                    flush_before_wait(f)    # what is queued is analyzed before we wait
                    now = tio_now_ns()
                    if now >= due:
                        continue
                # a tick needs the GIL: only with 1 ms of slack (the consumer may hold it)
                if f.tick_ns and due - now >= TICK_SLACK_NS and now - f.last_tick >= f.tick_ns:
                    f.last_tick = now
                    return PAUSE_TICK
                if due - now <= f.spin_ns:
                    # the last stretch spun, not slept: a sleep wakes tens of microseconds
                    # late here (timer and scheduler), a spin within a clock read
                    f.spins += 1
                    while tio_now_ns() < due:
                        tio_cpu_relax()
                    continue
                wake = due - f.spin_ns
                if wake - now > SLEEP_SLICE_NS:
                    wake = now + SLEEP_SLICE_NS
                f.sleeps += 1
                sleep_until(wake)
                continue                    # stop() and the clock again
        if rec.type != REC_PENDING_TX and f.lockstep and f.pending_since:
            batch_done(f)
            return PAUSE_BARRIER
        if rec.type >= 64 or not (f.native_mask >> rec.type) & 1:
            batch_done(f)
            return PAUSE_FALLBACK
        f.records += 1
        f.items += 1
        if rec.type == REC_PENDING_TX:
            f.pending += 1
            if f.items <= f.skip_until:
                f.skipped += 1
                tio_rlog_advance(&f.cur, rec)
                continue
            f.pending_since = 1
            if f.backpressure and tio_dropring_queued(f.pipe.ring) >= cap:
                batch_done(f)
                pipe_kick(f.pipe)
                f.waits_for_room += 1
                tio_backoff_reset(&backoff)
                while tio_dropring_queued(f.pipe.ring) >= cap:
                    tio_backoff_snooze(&backoff)
            if pipe_feed_raw(f.pipe, rec.type, rec.payload, rec.length) == PIPE_ACCEPTED:
                f.accepted += 1
                remember(f, rec)
                f.batch_n += 1
                if f.batch_n >= BATCH:
                    batch_done(f)
            tio_rlog_advance(&f.cur, rec)
            # the lending hook: one predictable branch per transaction when off
            if f.lending_watch and lending_tx(f, rec):
                batch_done(f)
                return PAUSE_LENDING_TX
        else:
            batch_done(f)                   # a barrier: the workers take what is queued first
            status = pipe_feed_raw(f.pipe, rec.type, rec.payload, rec.length)
            tio_rlog_advance(&f.cur, rec)
            if rec.type == REC_BLOCK_HEADER and f.pause_blocks and status != PIPE_BAD:
                return PAUSE_BLOCK
        if not f.realtime and f.tick_ns and f.records % TICK_RECORDS == 0:
            batch_done(f)
            return PAUSE_TICK


cdef class ReplayFeeder:
    """Feeds a recording (``tallyio.mempool.Recorder``'s file, one segment or several) to a
    ``Pipeline`` from a nogil loop; see the module doc.

    ``realtime``: pace by the recorded times (False: full speed, with backpressure).
    ``skip_pending``: pending transactions among the first ``skip_pending`` items (the
    records ``ReplaySource`` yields) are not fed: a resumed replay's already-settled ones.
    ``native_kinds``: the record types applied in C (default PENDING_TX, BLOCK_HEADER,
    SYNC_EVENT); the others, and these when left out, go through ``decode`` and ``feed``.
    ``spin_ns`` (realtime, 0 .. 2 ms): the last stretch before a due record is spun, not
    slept (a sleep wakes tens of microseconds late on a VM); longer waits sleep.
    ``inline_analysis`` (realtime): analyze what is queued on the feeder's thread before a
    wait when slot 0 is idle (False: always wake a worker).

    The feeder's thread is the pipeline's watcher while ``run`` runs: nothing else may
    ``feed`` it meanwhile.  ``stop()`` may be called from any thread."""

    cdef feeder_state *f
    cdef readonly Pipeline pipeline
    cdef readonly object path
    cdef readonly bint realtime
    cdef list _maps
    cdef list _bufs
    cdef list _segments
    cdef object _fallback_pending
    cdef readonly str end_reason
    cdef bint _running

    def __cinit__(self, *args, **kwargs):
        self.f = NULL

    def __init__(self, Pipeline pipeline not None, path, *, realtime=False, skip_pending=0,
                 native_kinds=(1, 2, 3), spin_ns=SPIN_NS, inline_analysis=True):
        from tallyio.state.recordlog import HEADER_SIZE
        if not isinstance(realtime, bool):
            raise TypeError(f"ReplayFeeder: realtime must be a bool, got {type(realtime).__name__}")
        if isinstance(skip_pending, bool) or not isinstance(skip_pending, int) or skip_pending < 0:
            raise ValueError(f"ReplayFeeder: skip_pending must be an int >= 0, got {skip_pending!r}")
        if isinstance(spin_ns, bool) or not isinstance(spin_ns, int) or not 0 <= spin_ns <= SLEEP_SLICE_NS:
            raise ValueError(f"ReplayFeeder: spin_ns must be an int in 0 .. {SLEEP_SLICE_NS}, got {spin_ns!r}")
        if not isinstance(inline_analysis, bool):
            raise TypeError(f"ReplayFeeder: inline_analysis must be a bool, got {type(inline_analysis).__name__}")
        mask = 0
        for kind in native_kinds:
            if kind not in (1, 2, 3):
                raise ValueError(f"ReplayFeeder: native_kinds holds record types 1, 2 and 3 "
                                 f"(PENDING_TX, BLOCK_HEADER, SYNC_EVENT), got {kind!r}")
            mask |= 1 << int(kind)
        if pipeline.closed:
            raise RuntimeError("ReplayFeeder: the pipeline is closed")
        self.pipeline = pipeline
        self.path = path
        self.realtime = realtime
        self.end_reason = "not read yet"
        self._fallback_pending = {}
        self._maps = []
        self._bufs = []
        files = rlog_segment_files(path)
        self._segments = []
        for p in files:                    # (path, first_seq, size): headers checked now
            with open(p, "rb") as fh:
                first = rlog_check_header(fh.read(HEADER_SIZE), str(p))
                self._segments.append((p, first, os.fstat(fh.fileno()).st_size))
        self.f = <feeder_state *>calloc(1, sizeof(feeder_state))
        if self.f == NULL:
            raise MemoryError("ReplayFeeder: out of memory")
        self.f.lk_key = <tio_atomic_u64 *>calloc(LOOKUP, sizeof(tio_atomic_u64))
        self.f.lk_where = <tio_atomic_u64 *>calloc(LOOKUP, sizeof(tio_atomic_u64))
        if self.f.lk_key == NULL or self.f.lk_where == NULL:
            raise MemoryError("ReplayFeeder: out of memory")
        self.f.pipe = pipeline.pipe
        self.f.realtime = realtime
        self.f.backpressure = not realtime
        self.f.native_mask = mask
        self.f.skip_until = skip_pending
        self.f.spin_ns = spin_ns
        self.f.inline_analysis = inline_analysis
        tio_atomic_init_u64(&self.f.stop, 0)
        tio_atomic_init_u64(&self.f.lk_n, 0)

    def start_clock(self):
        """Realtime: start the clock now (``run`` starts it at the first record otherwise),
        so ``clock`` is known before the first record is fed.  Returns ``clock``."""
        from tallyio.state.recordlog import RecordReader, RecordType
        if not self.f.clock_started:
            first = 0
            for record in RecordReader(self.path):
                if record.type != RecordType.POOL_SNAPSHOT:
                    first = record.ts
                    break
            self.f.first_ts = first
            self.f.start_wall = tio_now_ns()
            self.f.clock_started = 1
        return self.clock

    @property
    def clock(self):
        """``(first recorded ns, monotonic ns it is paced from)``: a record stamped ``t``
        is due at ``clock[1] + t - clock[0]``; None before a realtime replay started."""
        if not self.realtime or not self.f.clock_started:
            return None
        return (self.f.first_ts, self.f.start_wall)

    def stop(self):
        """Make ``run`` return soon (any thread; a realtime wait is cut short within 2 ms)."""
        if self.f != NULL:
            tio_atomic_store_u64_relaxed(&self.f.stop, 1)

    def run(self, *, on_barrier=None, on_block=None, should_stop=None, lending_to=None, on_lending_tx=None,
            on_other=None):
        """Feed the whole recording (or until ``stop()``), then, unless stopped, scan the
        last Syncs' standing cycles and wait until every queued transaction is analyzed.

        ``on_barrier(position)``: lockstep; called before a block header or Sync that
        follows pending transactions (``position``: the items before it); returning
        False stops the run.  ``on_block(header)``: each BlockHeader once applied.
        ``should_stop()``: looked at between batches (a realtime replay: while waiting,
        at most every 20 ms); True stops the run.

        The lending hook (issue 15; both optional): ``on_lending_tx(tx)`` is called with
        each pending transaction to ``lending_to`` (20 bytes: an Aave market's oracle) right
        after the C loop fed it to the pipeline; ``on_other(item)`` is offered each record
        the C loop hands back (a RAW_LOG, a LENDING_SNAPSHOT) before ``Pipeline.feed``:
        returning True keeps it from the pipeline.  Off, the swap path pays one branch per
        transaction.  Returns the counters (``stats()``)."""
        cdef int why
        cdef long old_slack = -1
        if self.f == NULL:
            raise RuntimeError("ReplayFeeder is closed")
        if self._running:
            raise RuntimeError("ReplayFeeder.run: already running (one feeder thread)")
        if self.pipeline.closed:
            raise RuntimeError("ReplayFeeder.run: the pipeline is closed")
        from tallyio.mempool.recording import decode
        if lending_to is not None:
            if not (isinstance(lending_to, bytes) and len(lending_to) == 20) or not callable(on_lending_tx):
                raise ValueError("ReplayFeeder.run: lending_to is a 20-byte address and needs on_lending_tx")
            memcpy(self.f.lending_to, <const char *>lending_to, 20)
        self.f.lending_watch = lending_to is not None
        self._running = True
        self.f.lockstep = on_barrier is not None
        self.f.pause_blocks = on_block is not None
        self.f.tick_ns = 20000000 if should_stop is not None else 0
        feed = self.pipeline.feed
        stopped = False
        self.end_reason = "end of log"
        if self.realtime:
            # this thread's sleeps fire on time (restored below: run may be any thread)
            old_slack = tio_feeder_set_timerslack(TIMER_SLACK_NS)
        try:
            expect = None
            for p, first, size in self._segments:
                if expect is not None and first != expect:
                    self.end_reason = f"gap: {p} starts at {first}, expected {expect}"
                    break
                expect = first
                if size <= 64:
                    continue
                with open(p, "rb") as fh:
                    mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
                self._maps.append(mm)
                buf = memoryview(mm).cast("B")
                self._bufs.append(buf)
                self.f.segment = len(self._bufs) - 1
                self._open_segment(buf, size, first)
                while True:
                    if should_stop is not None and should_stop():
                        stopped = True
                        break
                    with nogil:
                        why = feeder_loop(self.f)
                    if why == PAUSE_FALLBACK:
                        payload = bytes(buf[self.f.rec.offset + 24:self.f.rec.offset + 24 + self.f.rec.length])
                        rtype = self.f.rec.type
                        tio_rlog_advance(&self.f.cur, &self.f.rec)
                        self.f.records += 1
                        self._fallback(decode(rtype, payload), feed, on_other)
                    elif why == PAUSE_BARRIER:
                        self.f.pending_since = 0
                        if on_barrier(self.f.items) is False:
                            stopped = True
                    elif why == PAUSE_LENDING_TX:
                        on_lending_tx(decode(REC_PENDING_TX,
                                             bytes(buf[self.f.rec.offset + 24:self.f.rec.offset + 24
                                                       + self.f.rec.length])))
                    elif why == PAUSE_BLOCK:
                        on_block(decode(REC_BLOCK_HEADER,
                                        bytes(buf[self.f.rec.offset + 24:self.f.rec.offset + 24
                                                  + self.f.rec.length])))
                    elif why == FEED_STOPPED:
                        stopped = True
                    elif why == FEED_INVALID:
                        tail = bytes(buf[self.f.cur.offset:size])
                        if tail.count(0) != len(tail):
                            self.end_reason = f"torn or invalid record at {p} offset {self.f.cur.offset}"
                        break
                    elif why == FEED_END:
                        break
                    if stopped:
                        break
                expect = self.f.cur.expect_seq
                if stopped or self.end_reason != "end of log":
                    break
            if stopped:
                self.end_reason = "stopped"
            else:
                with nogil:
                    pipe_finish(self.f.pipe)
        finally:
            self._running = False
            if old_slack >= 0:
                tio_feeder_set_timerslack(old_slack)
        return self.stats()

    cdef _open_segment(self, buf, uint64_t size, uint64_t first):
        cdef const uint8_t[::1] view = buf
        tio_rlog_open(&self.f.cur, &view[0], size, 64, first)

    def _fallback(self, item, feed, on_other=None):
        """A record the C loop hands back: decoded here, fed as ReplaySource's items are
        (unless ``on_other`` took it)."""
        if item is None:
            return                               # another application's record
        self.f.items += 1
        self.f.fallback += 1
        if on_other is not None and on_other(item):
            return
        if type(item) is PendingTx:
            self.f.pending += 1
            if self.f.items <= self.f.skip_until:
                self.f.skipped += 1
                return
            self.f.pending_since = 1
            remembered = self._fallback_pending
            remembered[item.hash] = item
            if len(remembered) > LOOKUP:
                del remembered[next(iter(remembered))]
        feed(item)

    def pending_tx(self, bytes tx_hash not None):
        """The PendingTx with this hash among the last 65,536 the pipeline accepted from
        this recording (read back from the file), or None (any thread)."""
        cdef uint64_t n, k, key, where, seg, off, lo
        cdef const uint8_t[::1] view
        if len(tx_hash) != 32:
            raise ValueError(f"pending_tx: a transaction hash is 32 bytes, got {len(tx_hash)}")
        if self.f == NULL:
            return None
        item = self._fallback_pending.get(tx_hash)
        if item is not None:
            return item
        from tallyio.mempool.recording import decode
        memcpy(&key, <const char *>tx_hash, 8)
        # acquire: pairs with remember()'s release store of lk_n
        n = tio_atomic_load_u64_acquire(&self.f.lk_n)
        lo = n - LOOKUP if n > LOOKUP else 0
        k = n
        while k > lo:
            k -= 1
            if tio_atomic_load_u64_relaxed(&self.f.lk_key[k % LOOKUP]) != key:
                continue
            where = tio_atomic_load_u64_relaxed(&self.f.lk_where[k % LOOKUP])
            seg, off = where >> 48, where & ((<uint64_t>1 << 48) - 1)
            if seg >= <uint64_t>len(self._bufs):
                continue
            view = self._bufs[seg]
            if off + 202 > <uint64_t>view.shape[0] or memcmp(&view[off], <const char *>tx_hash, 32) != 0:
                continue
            length = int.from_bytes(bytes(view[off - 20:off - 16]), "little")
            return decode(REC_PENDING_TX, bytes(view[off:off + length]))
        return None

    def stats(self):
        """``records`` (walked, every type), ``items`` (what ReplaySource would yield),
        ``pending``, ``accepted`` (queued by the C loop), ``skipped`` (skip_pending),
        ``fallback`` (fed through Python), ``kicks`` (worker wake-ups asked: once per
        batch), ``sleeps`` (realtime waits), ``waits_for_room`` (backpressure),
        ``inline_drains`` (realtime: batches this thread analyzed itself), ``spins``
        (realtime waits that ended in a spin), ``end``."""
        if self.f == NULL:
            return {"end": self.end_reason}
        return {"records": self.f.records, "items": self.f.items, "pending": self.f.pending,
                "accepted": self.f.accepted, "skipped": self.f.skipped, "fallback": self.f.fallback,
                "kicks": self.f.kicks, "sleeps": self.f.sleeps, "waits_for_room": self.f.waits_for_room,
                "inline_drains": self.f.inline_drains, "spins": self.f.spins, "end": self.end_reason}

    def close(self):
        """Unmap the recording (pending_tx returns None afterwards).  Not while run runs."""
        if self._running:
            raise RuntimeError("ReplayFeeder.close: run() is running (stop() it first)")
        if self.f != NULL:
            free(self.f.lk_key)
            free(self.f.lk_where)
            free(self.f)
            self.f = NULL
        for buf in self._bufs:
            buf.release()
        self._bufs = []
        for mm in self._maps:
            mm.close()
        self._maps = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        if self.f != NULL:
            free(self.f.lk_key)
            free(self.f.lk_where)
            free(self.f)
            self.f = NULL


# ---- ReplaySource's read path: the same walk, a Python item per record ---------------------

cdef object be_int(const uint8_t *p):
    cdef tio_u256 v
    tio_u256_from_be32(&v, p)
    return u256_to_int(&v)


cdef object pending_from_payload(const uint8_t *p, uint64_t n):
    """recording.py's PENDING_TX payload -> PendingTx, or None when it does not parse
    (the caller lets recording.decode raise its error)."""
    cdef uint32_t n_in, n_raw
    if n < TX_PAYLOAD_HEAD:
        return None
    n_in = tio_le32(p + 194)
    n_raw = tio_le32(p + 198)
    if <uint64_t>TX_PAYLOAD_HEAD + n_in + n_raw != n:
        return None
    return PendingTx(PyBytes_FromStringAndSize(<const char *>p, 32),
                     PyBytes_FromStringAndSize(<const char *>p + 32, 20),
                     PyBytes_FromStringAndSize(<const char *>p + 52, 20) if p[72] else None,
                     tio_le64(p + 74), be_int(p + 90), tio_le64(p + 82), be_int(p + 122), be_int(p + 154),
                     PyBytes_FromStringAndSize(<const char *>p + TX_PAYLOAD_HEAD, n_in), p[73],
                     tio_le64(p + 186),
                     PyBytes_FromStringAndSize(<const char *>p + TX_PAYLOAD_HEAD + n_in, n_raw))


def replay_items(path, dict end=None):
    """``(timestamp, item)`` for each item of a recording, in order, as ``ReplaySource``
    yields them (pool snapshots and other applications' records left out): the records
    walked by the native cursor, a PENDING_TX built in C, every other kind decoded by
    ``recording.decode``.  ``end["end"]`` says where it stopped (RecordReader's words).

    >>> from tallyio.mempool.recording import embedded_recording
    >>> sum(1 for _ in replay_items(embedded_recording()[0]))
    210
    """
    from tallyio.mempool.recording import decode
    from tallyio.state.recordlog import HEADER_SIZE
    cdef tio_rlog_cursor cur
    cdef tio_rlog_record rec
    cdef const uint8_t[::1] view
    cdef int status
    files = rlog_segment_files(path)
    if end is None:
        end = {}
    end["end"] = "not read yet"
    expect = None
    for p in files:
        with open(p, "rb") as fh:
            first = rlog_check_header(fh.read(HEADER_SIZE), str(p))
            size = os.fstat(fh.fileno()).st_size
            if expect is not None and first != expect:
                end["end"] = f"gap: {p} starts at {first}, expected {expect}"
                return
            expect = first
            if size <= HEADER_SIZE:
                continue
            mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
        try:
            view = mm
            tio_rlog_open(&cur, &view[0], size, HEADER_SIZE, first)
            while True:
                status = tio_rlog_peek(&cur, &rec)
                if status != TIO_RLOG_OK:
                    break
                tio_rlog_advance(&cur, &rec)
                if rec.type == REC_POOL_SNAPSHOT:
                    continue
                item = None
                if rec.type == REC_PENDING_TX:
                    item = pending_from_payload(rec.payload, rec.length)
                if item is None:
                    item = decode(rec.type, PyBytes_FromStringAndSize(<const char *>rec.payload, rec.length))
                    if item is None:
                        continue
                yield rec.ts, item
            expect = cur.expect_seq
            if status != TIO_RLOG_END and mm[cur.offset:size].count(0) != size - cur.offset:
                end["end"] = f"torn or invalid record at {p} offset {cur.offset}"
                return
        finally:
            view = None
            mm.close()
    end["end"] = "end of log"
