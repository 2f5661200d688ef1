"""The scheduler core behind tallyio.NumaScheduler (see scheduler.pxd for the
structures and the public C API, and tallyio/_ext/README.md, "Scheduler", for
the protocols and their invariants).

The Python layer (tallyio/scheduler.py) owns the threads, the configuration and
the Executor interface; this module owns everything a task touches on its way
from submit to completion: the task record, placement, the worker loop, the
sleep protocol, stealing, counters and histograms.

This file keeps SchedulerCore (the Python face: setup, submit, stop, stats);
the core's body is split by responsibility into the sched_*.pxi files
included below (one extension module: the thread-local worker pointer and
cross-file inlining rely on it), the idle word's encoding is in
sched_idle.pxd and the external C declarations in sched_externs.pxd.
"""
import numbers
import os

from tallyio.metrics.tio_hist cimport (tio_hist_init, tio_hist_record, tio_hist_destroy,
                                       TIO_HIST_MAX_TRACKABLE)
from tallyio.metrics._hist cimport histogram_from_c
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from tallyio._ext.common cimport (TIO_OK, TIO_FULL, TIO_RETRY, TIO_INVALID, TIO_CLOSED, TIO_LIKELY,
                                  TIO_UNLIKELY, tio_atomic_u64, tio_atomic_init_u64,
                                  tio_atomic_init_u32, tio_atomic_load_u64_relaxed,
                                  tio_atomic_load_u64_acquire, tio_atomic_load_u64_fenced_relaxed,
                                  tio_atomic_store_u64_relaxed, tio_atomic_store_u64_release,
                                  tio_atomic_fetch_add_u64_relaxed,
                                  tio_atomic_fetch_sub_u64_relaxed, tio_atomic_fetch_add_u64_seqcst,
                                  tio_atomic_fetch_add_u64_acqrel, tio_atomic_fetch_or_u64_seqcst,
                                  tio_atomic_load_u32_relaxed, tio_atomic_load_u32_acquire,
                                  tio_atomic_load_u32_fenced_relaxed, tio_atomic_store_u32_release,
                                  tio_atomic_store_u32_seqcst, tio_atomic_cas_u32_seqcst,
                                  tio_atomic_fetch_or_u32_seqcst, tio_atomic_fetch_and_u32_seqcst,
                                  tio_atomic_fetch_add_u32_acqrel, tio_atomic_wait_u32,
                                  tio_atomic_wake_u32, tio_fence_seqcst, tio_cpu_relax, tio_now_ns,
                                  tio_ticks, tio_next_pow2, tio_aligned_calloc, tio_aligned_free,
                                  TIO_CACHE_LINE, wait_while_busy, WAIT_SLICE_NS)
from tallyio._ext.mpmc cimport (tio_mpmc_new, tio_mpmc_free, tio_mpmc_push, tio_mpmc_push_many,
                                tio_mpmc_pop, tio_mpmc_pop_many, tio_mpmc_size)
from tallyio._ext.deque cimport (tio_deque_new, tio_deque_free, tio_deque_push, tio_deque_pop,
                                 tio_deque_steal, tio_deque_len)
from tallyio._ext.pool cimport (tio_pool_cache, tio_pool_new, tio_pool_free_all, tio_pool_alloc,
                                tio_pool_free, tio_pool_cache_init, tio_pool_cache_alloc,
                                tio_pool_cache_free, tio_pool_cache_flush, TIO_POOL_CACHE_SIZE)
from tallyio._ext.status cimport raise_status, exception_for
from tallyio._ext.sched_idle cimport (idle_searching, idle_sleeping, idle_wake_needed,
                                      idle_begin_search, idle_end_search, idle_to_sleeping,
                                      idle_to_searching, idle_end_sleep)
from tallyio._ext.sched_externs cimport (tio_tls_worker, tio_tls_rng, __builtin_clzll, sched_yield,
                                         tio_write_unraisable, PyErr_Restore, TIO_DEBUG_ASSERT,
                                         TIO_DEBUG_ENABLED)
from cpython.exc cimport PyErr_CheckSignals

cdef enum:
    PUBLISH_EVERY = 16        # owner publishes deq_* every this many tasks (fewer shared-line writes)
    REBALANCE_EVERY = 64      # a worker checks the imbalance every this many tasks
    NATIVE_EST_US = 1         # load estimate of a native task
    MAX_EST_US = 1 << 30


# The core's body, one file per responsibility (each opens with what it owns
# and may touch); the order only keeps related code together: Cython resolves
# module-level cdef functions in any order.
include "sched_counters.pxi"
include "sched_placement.pxi"
include "sched_take.pxi"
include "sched_run.pxi"
include "sched_rebalance.pxi"
include "sched_sleep.pxi"
include "sched_worker.pxi"
include "sched_stopping.pxi"
include "sched_capi.pxi"


# ---- tick calibration ------------------------------------------------------------------

cdef double _ns_per_tick = 0.0

cdef double ns_per_tick():
    """Nanoseconds per tio_ticks() tick, measured once per process (5 ms)."""
    global _ns_per_tick
    cdef uint64_t t0, k0, t1, k1
    if _ns_per_tick == 0.0:
        with nogil:
            t0 = tio_now_ns()
            k0 = tio_ticks()
            t1 = t0
            while t1 - t0 < 5000000:
                t1 = tio_now_ns()
            k1 = tio_ticks()
        _ns_per_tick = <double>(t1 - t0) / <double>(k1 - k0) if k1 > k0 else 1.0
    return _ns_per_tick


# ---- the Python face of the core ------------------------------------------------------

cdef class SchedulerCore:
    """The C scheduler behind tallyio.NumaScheduler (internal: use NumaScheduler).

    Built from a layout computed by tallyio.scheduler: ``workers`` is a list of
    ``(node_index, cpu, victim_groups)`` ordered by node, where victim_groups
    lists worker indices to steal from, nearest group first."""

    def __cinit__(self):
        self.s = NULL

    def __init__(self, list workers, list node_ids, uint64_t capacity, *,
                 bint stealing, uint32_t steal_batch, uint32_t max_retries,
                 uint32_t gil_batch, double gil_batch_us, double spin_us,
                 double aging_us, double threshold, task_type, task_result):
        cdef uint32_t n = len(workers), i, g, k, nnodes = len(node_ids)
        cdef tio_sched *s
        cdef tio_worker *w
        cdef double npt = ns_per_tick()
        cdef uint64_t total_blocks
        if self.s != NULL:
            raise RuntimeError("SchedulerCore is already initialised")
        if n == 0 or nnodes == 0:
            raise ValueError("a scheduler needs at least one worker and one node")
        if capacity < 2 or capacity > (1 << 24):
            raise ValueError(f"capacity {capacity} is outside 2..2**24")
        capacity = tio_next_pow2(capacity)
        if steal_batch < 1 or steal_batch > TIO_STASH_MAX:
            raise ValueError(f"steal_batch {steal_batch} is outside 1..{TIO_STASH_MAX}")
        s = <tio_sched *>tio_aligned_calloc(TIO_CACHE_LINE, sizeof(tio_sched))
        if s == NULL:
            raise MemoryError("scheduler state")
        self.s = s
        s.nworkers = n
        s.nnodes = nnodes
        s.capacity = capacity
        s.stealing = stealing
        s.steal_batch = steal_batch
        s.max_retries = max_retries
        s.gil_batch = gil_batch
        s.gil_batch_ticks = <uint64_t>(gil_batch_us * 1000.0 / npt)
        s.spin_ticks = <uint64_t>(spin_us * 1000.0 / npt)
        s.max_spinners = max(1, n // 2)        # as tokio: half the workers search at most
        s.aging_ticks = <uint64_t>(aging_us * 1000.0 / npt)
        s.threshold = threshold
        s.ns_per_tick = npt
        s.core = <PyObject *>self
        tio_atomic_init_u64(&s.idle, 0)
        tio_atomic_init_u64(&s.gate, 0)
        tio_atomic_init_u32(&s.mode, TIO_MODE_RUNNING)
        tio_atomic_init_u32(&s.exited, 0)
        tio_atomic_init_u32(&s.go, 0)
        tio_atomic_init_u64(&s.wakeups, 0)
        tio_atomic_init_u64(&s.stopper_cancelled, 0)
        tio_atomic_init_u64(&s.room_waiters, 0)
        tio_atomic_init_u32(&s.room_seq, 0)
        s.workers = <tio_worker **>calloc(n, sizeof(tio_worker *))
        s.node_first = <uint32_t *>calloc(nnodes + 1, sizeof(uint32_t))
        if s.workers == NULL or s.node_first == NULL:
            raise MemoryError("scheduler state")
        # records: one per queue slot (8 bands + the deque per worker), plus
        # what the per-thread caches may hold, so a free slot always has a record
        total_blocks = <uint64_t>n * (TIO_BANDS + 1) * capacity + (n + 1) * TIO_POOL_CACHE_SIZE
        if total_blocks > 0xFFFFFFF0ULL:
            raise ValueError(f"{n} workers x {capacity} slots need more than 2**32 task records; "
                             "lower queue_capacity")
        s.pool = tio_pool_new(sizeof(tio_task), total_blocks, 8)
        if s.pool == NULL:
            raise MemoryError(f"task records ({total_blocks} x {sizeof(tio_task)} bytes)")
        tio_pool_cache_init(&self.submit_cache, s.pool)
        for i in range(n):
            node, cpu, groups = workers[i]
            if not (0 <= node < nnodes) or (i > 0 and node < s.workers[i - 1].node):
                raise ValueError("workers must be ordered by node, with node indices in range")
            w = <tio_worker *>tio_aligned_calloc(TIO_CACHE_LINE, sizeof(tio_worker))
            if w == NULL:
                raise MemoryError("worker state")
            s.workers[i] = w
            w.sched = s
            w.index = i
            w.node = node
            w.cpu = cpu
            w.rng = 0x9E3779B97F4A7C15ULL * (i + 1)
            flat = [v for group in groups for v in group]
            w.nvictims = len(flat)
            w.nvictim_groups = len(groups)
            w.victims = <uint32_t *>calloc(len(flat) + 1, sizeof(uint32_t))
            w.victim_group_end = <uint32_t *>calloc(len(groups) + 1, sizeof(uint32_t))
            if w.victims == NULL or w.victim_group_end == NULL:
                raise MemoryError("worker state")
            for k in range(len(flat)):
                if not (0 <= flat[k] < n) or flat[k] == i:
                    raise ValueError(f"worker {i}: bad victim {flat[k]}")
                w.victims[k] = flat[k]
            k = 0
            for g in range(len(groups)):
                k += len(groups[g])
                w.victim_group_end[g] = k
        for i in range(n):
            s.node_first[s.workers[i].node + 1] = i + 1
        for i in range(1, nnodes + 1):
            if s.node_first[i] < s.node_first[i - 1]:
                s.node_first[i] = s.node_first[i - 1]
        self.node_index_of = {nid: k for k, nid in enumerate(node_ids)}
        self.task_type = task_type
        self.task_result = task_result
        self.success = task_result.SUCCESS
        self.failed = task_result.FAILED
        self.retry = task_result.RETRY
        self.default_execute = task_type.execute
        self.default_priority = task_type.priority
        self.default_duration = task_type.estimated_duration_us
        self.default_node = task_type.preferred_node
        self.cached_type = None
        self.learned_types = {}
        self.submit_rng = 0x2545F4914F6CDD1DULL

    def __dealloc__(self):
        cdef tio_sched *s = self.s
        cdef uint32_t i
        cdef int b
        cdef tio_worker *w
        if s == NULL:
            return
        if self.started and tio_atomic_load_u32_acquire(&s.exited) < s.nworkers and not self.forked:
            # worker threads still run (they hold a reference to us, so this
            # cannot happen through refcounting); never free under them
            return
        if self.forked:
            return      # the child's copy: other threads' state was mid-flight; leak it
        self._release_queued()
        if s.workers != NULL:
            for i in range(s.nworkers):
                w = s.workers[i]
                if w == NULL:
                    continue
                for b in range(TIO_BANDS):
                    if w.inbox[b] != NULL:
                        tio_mpmc_free(w.inbox[b])
                if w.local != NULL:
                    tio_deque_free(w.local)
                free(w.stash)
                free(w.victims)
                free(w.victim_group_end)
                tio_hist_destroy(&w.wait_hist)
                tio_hist_destroy(&w.exec_hist)
                tio_aligned_free(w)
            free(s.workers)
        free(s.node_first)
        if s.pool != NULL:
            tio_pool_free_all(s.pool)
        tio_aligned_free(s)
        self.s = NULL

    cdef void _release_queued(self):
        """DECREF the Python tasks still queued (a core dropped without a
        stop, e.g. start() failed half way)."""
        cdef tio_task *t
        while True:
            t = self._take_any()
            if t == NULL:
                return
            if t.kind == TIO_TASK_PYTHON:
                Py_DECREF(<object>t.arg)
            tio_pool_free(self.s.pool, t)

    cdef tio_task *_take_any(self):
        """Take any queued record from any worker (only when no worker runs:
        carries and stashes are worker-private)."""
        cdef tio_sched *s = self.s
        cdef tio_worker *w
        cdef uint32_t i
        for i in range(s.nworkers):
            w = s.workers[i]
            if w == NULL:
                continue
            if w.carry != NULL:
                t = w.carry
                w.carry = NULL
                return taken_by_stopper(w, t)
            if w.stash_count > 0:
                return taken_by_stopper(w, take_stash(w))
        return self._take_shared()

    cdef tio_task *_take_shared(self):
        """Take a record from any worker's inbox or deque: safe while workers
        still run (the inboxes are MPMC rings; on a deque we are a thief)."""
        cdef tio_sched *s = self.s
        cdef tio_worker *w
        cdef uint64_t item
        cdef uint32_t i, b
        cdef int st
        for i in range(s.nworkers):
            w = s.workers[i]
            if w == NULL:
                continue
            if w.local != NULL:
                st = tio_deque_steal(w.local, &item)
                while st == TIO_RETRY:
                    st = tio_deque_steal(w.local, &item)
                if st == TIO_OK:
                    return taken_by_stopper(w, <tio_task *><uintptr_t>item)
            for b in range(TIO_BANDS - 1, -1, -1):
                if w.inbox[b] != NULL and tio_mpmc_pop(w.inbox[b], &item) == TIO_OK:
                    return taken_by_stopper(w, <tio_task *><uintptr_t>item)
        return NULL

    cdef void _cancel_record(self, tio_task *t, object on_cancel, list interrupted):
        """Count t cancelled by the stopper and free it; ``on_cancel(task)``
        for a Python task.  Safe while workers still run: only RMW counters
        of the scheduler are touched.  A callback that raises is reported
        (sys.unraisablehook) and the sweep goes on; a KeyboardInterrupt (a
        Ctrl+C landing in a callback) is kept in ``interrupted`` for the
        caller to re-raise once everything is settled."""
        cdef tio_sched *s = self.s
        cdef object task
        if t.kind == TIO_TASK_PYTHON:
            task = <object>t.arg
            Py_DECREF(task)                  # the record's reference (task holds one)
            tio_pool_free(s.pool, t)
            if on_cancel is not None:
                try:
                    on_cancel(task)
                except KeyboardInterrupt as exc:
                    if interrupted:
                        report_unraisable(exc, "while cancelling a tallyio task", on_cancel)
                    else:
                        interrupted.append(exc)
                except BaseException as exc:
                    report_unraisable(exc, "while cancelling a tallyio task", on_cancel)
        else:
            tio_pool_free(s.pool, t)
        # acq_rel RMW: workers may run; join()'s acquire load sees the callback's effects
        tio_atomic_fetch_add_u64_acqrel(&s.stopper_cancelled, 1)

    # ---- life cycle (driven by tallyio.scheduler.NumaScheduler) ----------------------

    def worker_main(self, uint32_t index, ready):
        """Body of worker thread `index`: allocate the worker's queues on this
        (already pinned) thread, so first-touch places them on its node, call
        ``ready(error_or_None)``, then run the loop until the scheduler stops."""
        global tio_tls_worker
        cdef tio_sched *s = self.s
        cdef tio_worker *w = s.workers[index]
        cdef int b
        cdef uint64_t now
        cdef bint ok = True
        with nogil:
            w.local = tio_deque_new(s.capacity)
            ok = w.local != NULL
            for b in range(TIO_BANDS):
                w.inbox[b] = tio_mpmc_new(s.capacity, 0)
                ok = ok and w.inbox[b] != NULL
            w.stash = <tio_task **>calloc(TIO_STASH_MAX, sizeof(tio_task *))
            # 2 significant digits (cells <= 0.78 % wide, against 12.5 % before), up to 2**62 ticks
            ok = ok and tio_hist_init(&w.wait_hist, 1, TIO_HIST_MAX_TRACKABLE, 2) == TIO_OK
            ok = ok and tio_hist_init(&w.exec_hist, 1, TIO_HIST_MAX_TRACKABLE, 2) == TIO_OK
            ok = ok and w.stash != NULL
            tio_pool_cache_init(&w.cache, s.pool)
            now = tio_ticks()
            for b in range(TIO_BANDS + 1):
                w.band_age_tick[b] = now
        if not ok:
            tio_atomic_fetch_add_u32_acqrel(&s.exited, 1)
            ready(MemoryError(f"worker {index}: cannot allocate its queues "
                              f"({TIO_BANDS} x {s.capacity} slots)"))
            return
        ready(None)
        with nogil:
            # acquire: pairs with mark_started's release; every worker's queues exist
            while tio_atomic_load_u32_acquire(&s.go) == 0:
                tio_atomic_wait_u32(&s.go, 0, 0)
            if tio_atomic_load_u32_acquire(&s.mode) == TIO_MODE_CANCEL:
                # start() failed (some worker has no queues): leave untouched
                tio_pool_cache_flush(&w.cache, 0)
                tio_atomic_fetch_add_u32_acqrel(&s.exited, 1)
            else:
                tio_tls_worker = <void *>w     # no-cython-lint (the C thread-local, not a local)
                worker_loop(w)
                tio_tls_worker = NULL          # no-cython-lint (the C thread-local, not a local)

    def mark_started(self):
        """Every worker reported ready: let them into their loops."""
        self.started = True
        # release: pairs with the acquire in worker_main
        tio_atomic_store_u32_release(&self.s.go, 1)
        tio_atomic_wake_u32(&self.s.go, 0x7FFFFFFF)

    def mark_forked(self):
        """Called in a forked child: the worker threads do not exist there."""
        self.forked = True

    def close(self, bint cancel):
        """Stop accepting work.  Returns once no native submitter is inside the
        gate, so every accepted task is in a queue; then wakes every worker."""
        cdef tio_sched *s = self.s
        cdef uint32_t mode = TIO_MODE_CANCEL if cancel else TIO_MODE_DRAIN
        if s == NULL:
            return
        if tio_atomic_load_u32_relaxed(&s.mode) < mode:
            tio_atomic_store_u32_seqcst(&s.mode, mode)
        # submitters blocked on a full queue wake up and see the new mode
        tio_atomic_fetch_add_u32_acqrel(&s.room_seq, 1)
        tio_atomic_wake_u32(&s.room_seq, 0x7FFFFFFF)
        if self.forked:
            return      # no worker threads here; a parent's submitter may have been mid-gate
        with nogil:
            tio_atomic_fetch_or_u64_seqcst(&s.gate, TIO_GATE_CLOSED)
            while not gate_quiet(s):
                sched_yield()
            if self.started:
                notify_all(s)

    def workers_exited(self):
        return tio_atomic_load_u32_acquire(&self.s.exited) if self.s != NULL else 0

    def sweep(self, bint cancel, on_cancel):
        """After every worker thread has ended: settle what is still queued.
        cancel: count each as cancelled (``on_cancel(task)`` for Python tasks);
        otherwise run it here (a task handed between workers while they left).
        Returns (ran, cancelled).  Whatever a callback raises, every record is
        settled first; a KeyboardInterrupt from a callback is re-raised then."""
        cdef tio_sched *s = self.s
        cdef tio_task *t
        cdef tio_worker *w0
        cdef uint64_t ran = 0, cancelled = 0
        cdef list interrupted = []
        if s == NULL or self.forked:
            return (0, 0)
        w0 = s.workers[0]
        if TIO_DEBUG_ENABLED:
            # the workers have exited; with the GIL held no Python submitter is
            # mid-push, and a quiet gate means no native one is
            TIO_DEBUG_ASSERT(not gate_quiet(s) or hints_cover_rings(s))
        while True:
            t = self._take_any()
            if t == NULL:
                break
            if cancel:
                cancelled += 1
                self._cancel_record(t, on_cancel, interrupted)
            else:
                ran += 1
                # the workers are gone: run on this thread, accounted to worker 0
                if t.kind == TIO_TASK_NATIVE:
                    with nogil:
                        t.fn(t.arg)
                    counter_add(&w0.stats.succeeded, 1)
                    counter_add_release(&w0.stats.processed, 1)
                    tio_pool_free(s.pool, t)
                else:
                    self._run_python_here(w0, t)
        publish_deq(w0)
        if interrupted:
            raise interrupted[0]
        return (ran, cancelled)

    def cancel_queued(self, on_cancel):
        """After close(cancel=True), while workers may still be running their
        last task: cancel what waits in the inboxes and deques now (the
        workers' private carry and stash are left to sweep()).  Returns how
        many were cancelled; a KeyboardInterrupt from a callback is re-raised
        once the queues are empty."""
        cdef tio_task *t
        cdef uint64_t cancelled = 0
        cdef list interrupted = []
        if self.s == NULL or self.forked or not self.started:
            return 0
        if tio_atomic_load_u32_acquire(&self.s.mode) != TIO_MODE_CANCEL:
            raise RuntimeError("cancel_queued() needs close(cancel=True) first")
        while True:
            t = self._take_shared()
            if t == NULL:
                break
            cancelled += 1
            self._cancel_record(t, on_cancel, interrupted)
        if interrupted:
            raise interrupted[0]
        return cancelled

    cdef void _run_python_here(self, tio_worker *w, tio_task *t):
        # run_python frees into w's cache; after the workers ended the cache
        # is ours, and flushing it returns the block to the pool
        tio_pool_cache_init(&w.cache, self.s.pool)
        # taken_by_stopper already took t off the load; run_python's
        # account_done counts it on w again: cancel that in w's private
        # (unpublished) part, which is ours now that the workers ended
        w.deq_tasks_local -= 1
        w.deq_us_local -= t.est_us
        run_python(self, w, t)
        tio_pool_cache_flush(&w.cache, 0)

    # ---- submitting -------------------------------------------------------------------

    def submit_task(self, task, bint block=False, timeout=None):
        """Queue ``task`` (a tallyio.Task) on a worker; no Future.

        Raises TypeError for a non-Task, ValueError for a priority outside
        0..255 and SchedulerNotRunningError when the scheduler does not accept
        work.  A full queue (the chosen inbox and its overflow): with
        ``block=False`` QueueFullError at once; with ``block=True`` wait
        (without the GIL) until a slot frees, at most ``timeout`` seconds
        (None: no limit), then QueueFullError.  Either way a task that raised
        was not accepted."""
        cdef tio_sched *s = self.s
        cdef tio_task *t
        cdef void *block_ptr = NULL
        cdef tio_worker *w
        cdef tio_worker *me = <tio_worker *>tio_tls_worker
        cdef int priority, duration, node = -1, st
        cdef bint wants_node, called = False
        cdef uint64_t est
        cdef object tp = type(task)
        if me != NULL and me.sched != s:
            me = NULL                         # a worker of another scheduler: an ordinary submitter
        if TIO_UNLIKELY(not self.started or self.forked or
                        tio_atomic_load_u32_relaxed(&s.mode) != TIO_MODE_RUNNING):
            self._check_accepting(me)
        if tp is not self.cached_type:
            self._overrides_of(tp)
            called = True                     # learning a type may run Python code, too
        # read the one-entry cache at once, with no Python code in between:
        # an override called below may let another thread re-fill it
        priority = self.cached_priority
        duration = self.cached_duration
        wants_node = self.cached_node
        # the overrides run Python code: another thread, or a signal handler,
        # may stop the scheduler meanwhile, so the mode is checked again below
        if priority < 0:
            priority = self._call_priority(task)
            called = True
        if duration < 0:
            est = self._call_duration(task)
            called = True
        else:
            est = <uint64_t>duration
        if wants_node:
            node = self._call_node(task)
            called = True
        # From here until the record is queued no Python code runs and the GIL
        # is held: a stop() (whose close() stores the mode holding the GIL) is
        # entirely before or entirely after us (README: "Stopping").
        if called and TIO_UNLIKELY(tio_atomic_load_u32_relaxed(&s.mode) != TIO_MODE_RUNNING):
            self._check_accepting(me)
        if TIO_UNLIKELY(tio_pool_cache_alloc(&self.submit_cache, &block_ptr) != TIO_OK):
            block_ptr = NULL
        t = <tio_task *>block_ptr
        if t != NULL:
            t.fn = NULL
            t.arg = <void *>task
            t.submit_tick = tio_ticks()
            t.est_us = <uint32_t>est
            t.attempts = 0
            t.priority = <uint8_t>priority
            t.kind = TIO_TASK_PYTHON
        if me != NULL:
            # inside a task on one of our workers: its own deque / inbox.
            # Never blocks: a worker waiting for room in its own queues waits forever.
            if t == NULL:
                raise_status(TIO_FULL, "NumaScheduler (no free task record)")
            Py_INCREF(task)                   # the record's reference (README: ownership)
            st = spawn_record(me, t)      # frees t itself when full
            if st != TIO_OK:
                Py_DECREF(task)
                raise _queue_full_error(
                    "NumaScheduler worker's own queues are full (a submit from inside a "
                    "task never blocks: its worker would wait for itself)")
            return
        if TIO_LIKELY(t != NULL):
            Py_INCREF(task)                   # the record's reference (README: ownership)
            w = push_placed(self.s, t, priority, node, &self.submit_rng)
            if TIO_LIKELY(w != NULL):
                return
            Py_DECREF(task)
        if not block:
            if t != NULL:
                tio_pool_cache_free(&self.submit_cache, t)
            raise _queue_full_error(
                f"NumaScheduler is full (every inbox of priority band {priority >> TIO_BAND_SHIFT}); "
                "submit_task(task, block=True) waits for room")
        self._submit_waiting(task, t, priority, est, node, timeout)

    cdef int _submit_waiting(self, object task, tio_task *t, int priority, uint64_t est,
                             int node, object timeout) except -1:
        """submit_task(block=True) on a full scheduler: wait for room.

        Counted in room_waiters, the submitter reads room_seq, fences, retries
        the push, and sleeps on room_seq (futex, GIL released) if it is still
        full.  A worker that freed slots fences and bumps room_seq when it
        sees a waiter (notify_room), so a wake-up is never lost; slices of at
        most 20 ms honour Ctrl+C.  Every retry happens with the GIL held after
        a mode check, so a stop() in between refuses the task instead of
        losing it.  t may be NULL (no free record yet)."""
        cdef tio_sched *s = self.s
        cdef uint64_t deadline = 0, now, wait_ns
        cdef uint32_t seq
        cdef void *block_ptr = NULL
        cdef double seconds = -1.0
        cdef bint accepted = False
        if timeout is not None:
            seconds = timeout_seconds(timeout)
            deadline = tio_now_ns() + <uint64_t>(seconds * 1e9)
        # seq_cst RMW: in the seq_cst order before our fence (see notify_room)
        tio_atomic_fetch_add_u64_seqcst(&s.room_waiters, 1)
        try:
            while True:
                # acquire: pairs with notify_room's bump
                seq = tio_atomic_load_u32_acquire(&s.room_seq)
                tio_fence_seqcst()
                if tio_atomic_load_u32_relaxed(&s.mode) != TIO_MODE_RUNNING:
                    self._check_accepting(NULL)
                if t == NULL and tio_pool_cache_alloc(&self.submit_cache, &block_ptr) == TIO_OK:
                    t = <tio_task *>block_ptr
                    t.fn = NULL
                    t.arg = <void *>task
                    t.est_us = <uint32_t>est
                    t.attempts = 0
                    t.priority = <uint8_t>priority
                    t.kind = TIO_TASK_PYTHON
                if t != NULL:
                    t.submit_tick = tio_ticks()   # queue wait starts when it is queued
                    Py_INCREF(task)               # the record's reference (README: ownership)
                    if push_placed(self.s, t, priority, node, &self.submit_rng) != NULL:
                        accepted = True
                        return 0
                    Py_DECREF(task)
                now = tio_now_ns()
                wait_ns = WAIT_SLICE_NS
                if seconds >= 0:
                    if now >= deadline:
                        raise _queue_full_error(
                            f"NumaScheduler stayed full for {seconds:g} s (every inbox of priority "
                            f"band {priority >> TIO_BAND_SHIFT}); the task was not accepted")
                    if deadline - now < wait_ns:
                        wait_ns = deadline - now
                with nogil:
                    tio_atomic_wait_u32(&s.room_seq, seq, wait_ns)
                PyErr_CheckSignals()
        finally:
            tio_atomic_fetch_add_u64_seqcst(&s.room_waiters, <uint64_t>0 - 1)
            if not accepted and t != NULL:
                tio_pool_cache_free(&self.submit_cache, t)

    cdef int _check_accepting(self, tio_worker *me) except -1:
        """Raise unless the scheduler accepts work from this caller: running,
        or draining and the caller is a task of one of its workers (spawned
        work is part of the accepted work a drain finishes)."""
        if self.started and not self.forked and me != NULL and \
                tio_atomic_load_u32_relaxed(&self.s.mode) == TIO_MODE_DRAIN:
            return 0
        if self.started and not self.forked and \
                tio_atomic_load_u32_relaxed(&self.s.mode) == TIO_MODE_RUNNING:
            return 0
        return self._raise_not_running()

    cdef int _overrides_of(self, object tp) except -1:
        """Fill the one-entry cache for tp, from the learned types or by
        learning it.  The four fields are written with no Python code in
        between, so a reader that saw cached_type see its own values."""
        cdef tuple known = self.learned_types.get(tp)
        if known is None:
            self._learn_type(tp)
            return 0
        self.cached_priority = known[0]
        self.cached_duration = known[1]
        self.cached_node = known[2]
        self.cached_type = tp
        return 0

    cdef int _learn_type(self, object tp) except -1:
        cdef int priority, duration
        cdef bint node
        if not issubclass(tp, self.task_type):
            raise TypeError(f"submit_task() needs a tallyio.Task, got {tp.__name__} "
                            f"(use submit(fn, *args) for plain callables)")
        if tp.execute is self.default_execute:
            raise TypeError(f"{tp.__name__} does not override Task.execute()")
        # looked up into locals first: attribute lookups may run Python code
        # (a metaclass, a descriptor) and let another submitter in
        priority = -1 if tp.priority is not self.default_priority else 0
        duration = -1 if tp.estimated_duration_us is not self.default_duration else 100
        node = tp.preferred_node is not self.default_node
        if len(self.learned_types) >= 256:
            self.learned_types.clear()      # classes made on the fly must not pile up
        self.learned_types[tp] = (priority, duration, node)
        self.cached_priority = priority
        self.cached_duration = duration
        self.cached_node = node
        self.cached_type = tp
        return 0

    cdef int _call_priority(self, object task) except -1:
        p = task.priority()
        if type(p) is not int:
            if isinstance(p, bool) or not hasattr(p, "__index__"):
                raise TypeError(f"{type(task).__name__}.priority() returned {p!r}; expected an int in 0..255")
            p = p.__index__()
        if p < 0 or p > 255:
            raise ValueError(f"{type(task).__name__}.priority() returned {p}; expected an int in 0..255")
        return p

    cdef uint64_t _call_duration(self, object task) except? 0xFFFFFFFFFFFFFFFF:
        d = task.estimated_duration_us()
        if type(d) is not int and type(d) is not float:
            # numpy integers and floats (and any other int-like) count as a Python int / float would
            if isinstance(d, bool):
                d = None
            elif hasattr(d, "__index__"):
                d = d.__index__()
            elif isinstance(d, float) or isinstance(d, numbers.Real):
                d = float(d)
            else:
                d = None
            if d is None:
                raise TypeError(f"{type(task).__name__}.estimated_duration_us() returned "
                                f"{task.estimated_duration_us()!r}; expected a number of microseconds >= 0")
        if not (d >= 0):
            raise ValueError(f"{type(task).__name__}.estimated_duration_us() returned {d}; "
                             "expected a number of microseconds >= 0")
        return <uint64_t>min(d, MAX_EST_US)

    cdef int _call_node(self, object task) except -2:
        n = task.preferred_node()
        if n is None:
            return -1
        # integers only, as for priority(): 0.0 == 0 would otherwise find node 0
        idx = None
        if not isinstance(n, bool) and hasattr(n, "__index__"):
            idx = self.node_index_of.get(n.__index__())
        if idx is None:
            raise ValueError(f"{type(task).__name__}.preferred_node() returned {n!r}; "
                             f"expected None or one of the scheduler's nodes {sorted(self.node_index_of)}")
        return idx

    cdef int _raise_not_running(self) except -1:
        cdef uint32_t mode = tio_atomic_load_u32_relaxed(&self.s.mode)
        if self.forked:
            raise exception_for(TIO_CLOSED,
                f"this NumaScheduler was inherited by a forked child process (pid {os.getpid()}); "
                "its workers do not exist here: create a new scheduler in the child")
        if not self.started and mode == TIO_MODE_RUNNING:
            raise exception_for(TIO_CLOSED, "NumaScheduler is not running (not started: call start())")
        if self.started and tio_atomic_load_u32_acquire(&self.s.exited) < self.s.nworkers:
            if mode == TIO_MODE_DRAIN:
                raise exception_for(TIO_CLOSED,
                    "NumaScheduler is not running (stopping: it is draining the tasks it accepted "
                    "and takes new work only from those tasks)")
            raise exception_for(TIO_CLOSED,
                "NumaScheduler is not running (stopping: it is cancelling its queued tasks)")
        raise exception_for(TIO_CLOSED, "NumaScheduler is not running (stopped)")

    # ---- reading (stats, balancer) ----------------------------------------------------

    @property
    def nworkers(self):
        return self.s.nworkers

    @property
    def nnodes(self):
        return self.s.nnodes

    @property
    def capacity(self):
        """Slots per inbox band and per deque (a power of two)."""
        return self.s.capacity

    @property
    def cancelling(self):
        """True once close(cancel=True) was called."""
        return tio_atomic_load_u32_relaxed(&self.s.mode) == TIO_MODE_CANCEL

    @property
    def bands(self):
        return TIO_BANDS

    @property
    def ns_per_tick(self):
        return self.s.ns_per_tick

    @property
    def wakeups(self):
        """Parked workers woken so far (each one a futex syscall)."""
        return tio_atomic_load_u64_relaxed(&self.s.wakeups)

    @property
    def idle_word(self):
        """(searching, sleeping) workers right now."""
        cdef uint64_t v = tio_atomic_load_u64_relaxed(&self.s.idle)
        return (idle_searching(v), idle_sleeping(v))

    def worker_row(self, uint32_t i):
        """Counters of worker i as a dict (relaxed reads: a snapshot)."""
        cdef tio_worker *w
        cdef uint64_t queued = 0
        cdef int b
        if i >= self.s.nworkers:
            raise IndexError(f"worker {i} does not exist (this scheduler has {self.s.nworkers})")
        w = self.s.workers[i]
        if w.local != NULL:
            queued = tio_deque_len(w.local)
            for b in range(TIO_BANDS):
                queued += tio_mpmc_size(w.inbox[b])
        return {
            "node_index": w.node,
            "cpu": w.cpu,
            "queue_size": queued,
            "submitted": tio_atomic_load_u64_relaxed(&w.submitted) + tio_atomic_load_u64_relaxed(&w.spawned),
            "processed": tio_atomic_load_u64_relaxed(&w.stats.processed),
            "succeeded": tio_atomic_load_u64_relaxed(&w.stats.succeeded),
            "failed": tio_atomic_load_u64_relaxed(&w.stats.failed),
            "retried": tio_atomic_load_u64_relaxed(&w.stats.retried),
            "stolen": tio_atomic_load_u64_relaxed(&w.stats.stolen),
            "steal_attempts": tio_atomic_load_u64_relaxed(&w.stats.steal_attempts),
            # the stopper's cancellations are shown on worker 0's row
            "cancelled": tio_atomic_load_u64_relaxed(&w.stats.cancelled)
                         + (tio_atomic_load_u64_relaxed(&self.s.stopper_cancelled) if i == 0 else 0),
            "migrated": tio_atomic_load_u64_relaxed(&w.stats.migrated),
            "busy_ns": int(tio_atomic_load_u64_relaxed(&w.stats.busy_ticks) * self.s.ns_per_tick),
        }

    def histograms(self):
        """(wait, exec): tallyio.metrics.Histogram of ticks, merged over the
        workers (a snapshot: workers may be recording meanwhile); (None, None)
        before any worker was set up."""
        cdef uint32_t n = self.s.nworkers, i
        cdef tio_worker *w
        wait = exe = None
        for i in range(n):
            w = self.s.workers[i]
            if w == NULL or w.wait_hist.counts == NULL:
                continue
            if wait is None:
                wait, exe = histogram_from_c(&w.wait_hist), histogram_from_c(&w.exec_hist)
            else:
                wait.merge(histogram_from_c(&w.wait_hist))
                exe.merge(histogram_from_c(&w.exec_hist))
        return wait, exe

    def load(self, uint32_t i):
        """(queued tasks, queued estimated microseconds) of worker i."""
        if i >= self.s.nworkers:
            raise IndexError(f"worker {i} does not exist (this scheduler has {self.s.nworkers})")
        return (worker_queued_tasks(self.s.workers[i]), worker_queued_us(self.s.workers[i]))

    def select_worker(self, int node_index):
        """The worker the balancer would choose now (node_index -1: any)."""
        return choose_worker(self.s, node_index, &self.submit_rng)

    def outstanding(self):
        """Tasks submitted (or spawned) and not yet finished or cancelled."""
        cdef uint64_t sub = 0, done = 0
        cdef uint32_t i
        cdef tio_worker *w
        for i in range(self.s.nworkers):
            w = self.s.workers[i]
            sub += tio_atomic_load_u64_acquire(&w.submitted) + tio_atomic_load_u64_acquire(&w.spawned)
            done += tio_atomic_load_u64_acquire(&w.stats.processed) + tio_atomic_load_u64_acquire(&w.stats.cancelled)
        done += tio_atomic_load_u64_acquire(&self.s.stopper_cancelled)
        return int(sub - done) if sub > done else 0

    def running_tasks(self):
        """[(worker index, task)] for the Python tasks inside execute() now.
        Read with the GIL held, as running_task is written: each task is
        alive (its record holds a reference until the field is cleared)."""
        cdef uint32_t i
        cdef tio_worker *w
        out = []
        for i in range(self.s.nworkers):
            w = self.s.workers[i]
            if w != NULL and w.running_task != NULL:
                out.append((i, <object>w.running_task))
        return out

    def wait_idle(self, double timeout):
        """Block (without the GIL) until every submitted task finished or was
        cancelled; timeout < 0: no limit.  Returns True when idle, False on
        timeout.  wait_while_busy (common.pxd) takes the GIL back every
        WAIT_SLICE_NS to honour Ctrl+C."""
        return wait_while_busy(all_tasks_settled, <void *>self.s, TIO_RETRY, timeout) == TIO_OK
