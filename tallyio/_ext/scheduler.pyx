# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The scheduler core behind tallyio.NumaScheduler (see scheduler.pxd for the
structures and the public C API, and tallyio/_ext/README.md, "Scheduler", for
the protocols and their invariants).

The Python layer (tallyio/scheduler.py) owns the threads, the configuration and
the Executor interface; this module owns everything a task touches on its way
from submit to completion: the task record, placement, the worker loop, the
sleep protocol, stealing, counters and histograms.
"""
import numbers
import os
import sys
import threading


from tallyio.metrics.tio_hist cimport (tio_hist_init, tio_hist_record, tio_hist_destroy,
                                      TIO_HIST_MAX_TRACKABLE)
from tallyio.metrics._hist cimport histogram_from_c
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from tallyio._ext.common cimport (
    TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY, TIO_EXHAUSTED, TIO_NOMEM, TIO_INVALID,
    TIO_CLOSED, TIO_LIKELY, TIO_UNLIKELY,
    tio_atomic_u64, tio_atomic_u32,
    tio_atomic_init_u64, tio_atomic_init_u32,
    tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
    tio_atomic_load_u64_fenced_relaxed,
    tio_atomic_store_u64_relaxed, tio_atomic_store_u64_release, tio_atomic_fetch_add_u64_relaxed,
    tio_atomic_fetch_sub_u64_relaxed, tio_atomic_fetch_add_u64_seqcst, tio_atomic_fetch_add_u64_acqrel,
    tio_atomic_fetch_or_u64_seqcst,
    tio_atomic_load_u32_relaxed, tio_atomic_load_u32_acquire,
    tio_atomic_load_u32_fenced_relaxed,
    tio_atomic_store_u32_relaxed, tio_atomic_store_u32_release,
    tio_atomic_store_u32_seqcst, tio_atomic_cas_u32_seqcst,
    tio_atomic_fetch_or_u32_seqcst, tio_atomic_fetch_and_u32_seqcst,
    tio_atomic_fetch_add_u32_acqrel,
    tio_atomic_wait_u32, tio_atomic_wake_u32, tio_fence_seqcst,
    tio_cpu_relax, tio_now_ns, tio_ticks, tio_next_pow2, tio_aligned_calloc,
    tio_aligned_free, TIO_CACHE_LINE,
)
from tallyio._ext.mpmc cimport (tio_mpmc, tio_mpmc_new, tio_mpmc_free, tio_mpmc_push,
                                tio_mpmc_push_many, tio_mpmc_pop, tio_mpmc_pop_many, tio_mpmc_size)
from tallyio._ext.deque cimport (tio_deque, tio_deque_new, tio_deque_free, tio_deque_push,
                                 tio_deque_pop, tio_deque_steal, tio_deque_len,
                                 TIO_DEQUE_MAX_CAPACITY)
from tallyio._ext.pool cimport (tio_pool, tio_pool_cache, tio_pool_new, tio_pool_free_all,
                                tio_pool_alloc, tio_pool_free, tio_pool_cache_init,
                                tio_pool_cache_alloc, tio_pool_cache_free,
                                tio_pool_cache_flush, tio_pool_in_use, TIO_POOL_CACHE_SIZE)
from tallyio._ext.status cimport raise_status

cdef extern from *:
    """
    /* The worker running on this thread (NULL elsewhere): lets submit_task()
     * and tio_spawn_native() called from inside a task use the worker's own
     * deque without a lookup. */
    /* initial-exec: no __tls_get_addr call per submit, and ThreadSanitizer
     * does not misreport glibc's reuse of dynamic TLS blocks (16 bytes of the
     * static TLS surplus glibc reserves for dlopen'ed modules) */
    static __thread __attribute__((tls_model("initial-exec"))) void *tio_tls_worker = NULL;
    static __thread __attribute__((tls_model("initial-exec"))) uint64_t tio_tls_rng = 0;
    """
    void *tio_tls_worker
    uint64_t tio_tls_rng
    int __builtin_clzll(unsigned long long x) nogil

cdef enum:
    PUBLISH_EVERY = 16        # owner publishes deq_* every this many tasks (fewer shared-line writes)
    REBALANCE_EVERY = 64      # a worker checks the imbalance every this many tasks
    NATIVE_EST_US = 1         # load estimate of a native task
    MAX_EST_US = 1 << 30


# ---- small helpers -----------------------------------------------------------

cdef inline uint64_t rng_next(uint64_t *state) noexcept nogil:
    """xorshift64*: cheap, good enough to pick victims and candidates."""
    cdef uint64_t x = state[0]
    if x == 0:
        x = 0x9E3779B97F4A7C15ULL ^ <uint64_t><uintptr_t>state
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * 0x2545F4914F6CDD1DULL


cdef inline void counter_add(tio_atomic_u64 *c, uint64_t v) noexcept nogil:
    # relaxed load + store: owner-written counter (one writer), read by stats()
    tio_atomic_store_u64_relaxed(c, tio_atomic_load_u64_relaxed(c) + v)


cdef inline void counter_add_release(tio_atomic_u64 *c, uint64_t v) noexcept nogil:
    # release store (one writer): a task's completion counters.  join()'s
    # acquire loads pair with it, so everything the task (and its error
    # reporting) did is visible once join() sees it counted.
    tio_atomic_store_u64_release(c, tio_atomic_load_u64_relaxed(c) + v)


# ---- back-pressure: waking submitters blocked on full queues (README: "Blocking submit")

cdef inline void notify_room(tio_sched *s) noexcept nogil:
    """Called by a worker after it took records out of queues: if a
    submitter waits for a free slot, wake it.  The fence pairs with the one a
    waiting submitter makes between counting itself in room_waiters and
    retrying its push: either its retry sees the slot we freed, or we see it
    counted and bump room_seq (its futex_wait then returns at once).  With
    nobody waiting this is one fence and one load of a line nobody writes."""
    tio_fence_seqcst()
    # fenced_relaxed: ordered after our pops by the fence above
    if TIO_UNLIKELY(tio_atomic_load_u64_fenced_relaxed(&s.room_waiters) != 0):
        tio_atomic_fetch_add_u32_acqrel(&s.room_seq, 1)
        tio_atomic_wake_u32(&s.room_seq, 0x7FFFFFFF)


cdef inline uint64_t worker_queued_us(tio_worker *w) noexcept nogil:
    """Queued estimated microseconds (never negative: enq is counted before
    the push, deq/out after the pop)."""
    # relaxed: load figures are estimates, they order nothing
    cdef uint64_t deq = tio_atomic_load_u64_relaxed(&w.deq_us) + tio_atomic_load_u64_relaxed(&w.out_us)
    cdef uint64_t enq = tio_atomic_load_u64_relaxed(&w.enq_us) + tio_atomic_load_u64_relaxed(&w.own_enq_us)
    if <int64_t>(enq - deq) < 0:
        return 0
    return enq - deq


cdef inline uint64_t worker_queued_tasks(tio_worker *w) noexcept nogil:
    cdef uint64_t deq = tio_atomic_load_u64_relaxed(&w.deq_tasks) + tio_atomic_load_u64_relaxed(&w.out_tasks)
    cdef uint64_t enq = tio_atomic_load_u64_relaxed(&w.enq_tasks) + tio_atomic_load_u64_relaxed(&w.own_enq_tasks)
    if <int64_t>(enq - deq) < 0:
        return 0
    return enq - deq


# ---- placement (the load balancer) ----------------------------------------------

cdef inline uint64_t node_queued_us(tio_sched *s, uint32_t node) noexcept nogil:
    cdef uint64_t total = 0
    cdef uint32_t i
    for i in range(s.node_first[node], s.node_first[node + 1]):
        total += worker_queued_us(s.workers[i])
    return total


cdef uint32_t choose_worker(tio_sched *s, int node, uint64_t *rng) noexcept nogil:
    """Least-loaded node (per worker), unless `node` names one; then the less
    loaded of two random workers there (power of two choices)."""
    cdef uint32_t n, first, count, i, j
    cdef uint64_t best = 0, load, r
    cdef uint64_t best_w = 1, w_count
    if node < 0 or <uint32_t>node >= s.nnodes:
        node = 0
        if s.nnodes > 1:
            # compare load per worker: best/best_w > load/w_count
            for n in range(s.nnodes):
                w_count = s.node_first[n + 1] - s.node_first[n]
                load = node_queued_us(s, n)
                if n == 0 or load * best_w < best * w_count:
                    best = load
                    best_w = w_count
                    node = n
    first = s.node_first[node]
    count = s.node_first[node + 1] - first
    if count == 1:
        return first
    r = rng_next(rng)
    i = <uint32_t>(r % count)
    j = (i + 1 + <uint32_t>((r >> 32) % (count - 1))) % count
    if worker_queued_us(s.workers[first + j]) < worker_queued_us(s.workers[first + i]):
        return first + j
    return first + i


# ---- pushing a record ---------------------------------------------------------------

cdef inline int push_inbox(tio_worker *w, tio_task *t) noexcept nogil:
    """Put t into w's inbox band for its priority.  TIO_OK or TIO_FULL.  The
    caller fences and sets the band hint (publish_hint) afterwards."""
    # relaxed RMWs: load estimates.  Counted before the push so a concurrent
    # pop can never make the load look negative.
    tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, 1)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_us, t.est_us)
    if TIO_UNLIKELY(tio_mpmc_push(w.inbox[t.priority >> TIO_BAND_SHIFT], <uint64_t><uintptr_t>t) != TIO_OK):
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_us, t.est_us)
        return TIO_FULL
    return TIO_OK


cdef inline void publish_hint(tio_worker *w, uint32_t band) noexcept nogil:
    """After the push and a seq_cst fence: make sure the owner will look at band.
    The fence pairs with the one in take_band() after the owner clears a bit:
    either the owner's re-check sees our item or we see the cleared bit."""
    cdef uint32_t bit = 1u << band
    # fenced_relaxed: ordered after our push by the caller's tio_fence_seqcst
    if not (tio_atomic_load_u32_fenced_relaxed(&w.band_hint) & bit):
        tio_atomic_fetch_or_u32_seqcst(&w.band_hint, bit)


cdef tio_worker *push_with_overflow(tio_sched *s, uint32_t target, tio_task *t) noexcept nogil:
    """Push into the target's inbox; if that band is full, into the same band
    of the other workers (same node first).  Returns the worker that took it,
    or NULL when every one is full (t was not queued)."""
    cdef tio_worker *w = s.workers[target]
    cdef uint32_t node, k, i, first, count
    if TIO_LIKELY(push_inbox(w, t) == TIO_OK):
        return w
    node = w.node
    first = s.node_first[node]
    count = s.node_first[node + 1] - first
    for k in range(1, count):
        i = first + (target - first + k) % count
        if push_inbox(s.workers[i], t) == TIO_OK:
            return s.workers[i]
    for i in range(s.nworkers):
        if s.workers[i].node != node and push_inbox(s.workers[i], t) == TIO_OK:
            return s.workers[i]
    return NULL


# ---- the sleep protocol (README: "Parking and waking") ------------------------------

cdef bint wake_worker(tio_sched *s, tio_worker *w) noexcept nogil:
    """Move w from SLEEPING to NOTIFIED (as a searcher) and wake its thread.
    False if w was not sleeping."""
    cdef uint32_t expected = TIO_SLEEPING
    # seq_cst CAS: exactly one of (this waker, another waker, w cancelling its
    # own sleep) moves w out of SLEEPING, and so adjusts the idle word once
    if not tio_atomic_cas_u32_seqcst(&w.sleep_state, &expected, TIO_NOTIFIED):
        return False
    # seq_cst: one sleeper fewer, one searcher more, in one step, so a
    # submitter never sees the woken worker as neither
    tio_atomic_fetch_add_u64_seqcst(&s.idle, TIO_IDLE_SEARCHING - TIO_IDLE_SLEEPING)
    tio_atomic_wake_u32(&w.sleep_state, 1)
    # relaxed RMW: a statistic; wake-ups are rare (that is the point)
    tio_atomic_fetch_add_u64_relaxed(&s.wakeups, 1)
    return True


cdef void notify_one(tio_sched *s, tio_worker *prefer) noexcept nogil:
    """Called after a push and a seq_cst fence.  Wake one sleeper unless a
    worker is searching (it will find the item) or nobody sleeps: so a submit
    makes no syscall while any worker spins or all are busy."""
    cdef uint64_t idle
    cdef uint32_t k, i, start
    if not s.stealing:
        # Without stealing only the target can run the item: wake it if it
        # sleeps.  fenced_relaxed: ordered after the push by the caller's fence;
        # pairs with the fence in park() after it announced SLEEPING.
        if prefer != NULL and tio_atomic_load_u32_fenced_relaxed(&prefer.sleep_state) == TIO_SLEEPING:
            wake_worker(s, prefer)
        return
    # fenced_relaxed: after the caller's fence (pairs with park()'s fence)
    idle = tio_atomic_load_u64_fenced_relaxed(&s.idle)
    if (idle & 0xFFFFFFFFULL) != 0 or (idle >> 32) == 0:
        return
    if prefer != NULL and wake_worker(s, prefer):
        return
    start = prefer.index if prefer != NULL else 0
    for k in range(s.nworkers):
        i = (start + k) % s.nworkers
        if wake_worker(s, s.workers[i]):
            return


cdef void notify_all(tio_sched *s) noexcept nogil:
    cdef uint32_t i
    for i in range(s.nworkers):
        if s.workers[i] != NULL:
            wake_worker(s, s.workers[i])


# ---- taking work -----------------------------------------------------------------------

cdef inline tio_task *take_band(tio_worker *w, uint32_t band, uint64_t now) noexcept nogil:
    """Pop from own inbox band; on EMPTY clear its hint bit and look once more
    (the fence pairs with the one between a pusher's push and publish_hint)."""
    cdef uint64_t item
    cdef uint32_t bit = 1u << band
    if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
        w.band_age_tick[band] = now
        return <tio_task *><uintptr_t>item
    tio_atomic_fetch_and_u32_seqcst(&w.band_hint, ~bit)
    tio_fence_seqcst()
    if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
        # more may follow: keep looking at this band
        tio_atomic_fetch_or_u32_seqcst(&w.band_hint, bit)
        w.band_age_tick[band] = now
        return <tio_task *><uintptr_t>item
    w.band_age_tick[band] = now
    return NULL


cdef inline tio_task *take_deque(tio_worker *w, uint64_t now) noexcept nogil:
    cdef uint64_t item
    if tio_deque_pop(w.local, &item) == TIO_OK:
        w.band_age_tick[TIO_BANDS] = now
        return <tio_task *><uintptr_t>item
    w.band_age_tick[TIO_BANDS] = now
    return NULL


cdef inline tio_task *take_stash(tio_worker *w) noexcept nogil:
    cdef tio_task *t = w.stash[w.stash_head]
    w.stash_head += 1
    w.stash_count -= 1
    if w.stash_count == 0:
        w.stash_head = 0
    return t


cdef tio_task *take_own(tio_worker *w, uint64_t now) noexcept nogil:
    """Next record from this worker's own sources, or NULL.

    Order: the carried item; stolen items (stash) unless a higher band waits;
    inbox bands 7..1; the deque (spawned band-0 work); inbox band 0.  Aging: a
    lower source that has waited longer than aging_ticks goes first."""
    cdef tio_task *t
    cdef uint32_t hint, band
    cdef int top, b
    cdef bint deque_busy
    cdef tio_sched *s = w.sched
    if w.carry != NULL:
        t = w.carry
        w.carry = NULL
        return t
    # relaxed: a hint; the pop that follows synchronizes with the pusher
    hint = tio_atomic_load_u32_relaxed(&w.band_hint)
    top = -1 if hint == 0 else 63 - __builtin_clzll(<unsigned long long>hint)
    if w.stash_count > 0 and <int>w.stash_band >= top:
        return take_stash(w)
    deque_busy = tio_deque_len(w.local) > 0
    # aging: with two or more sources waiting, serve the lowest one that has
    # waited too long (band 0, then the deque, then bands 1..)
    if (hint & (hint - 1)) != 0 or (deque_busy and hint > 1):
        if (hint & 1) and now - w.band_age_tick[0] > s.aging_ticks:
            t = take_band(w, 0, now)
            if t != NULL:
                return t
        if deque_busy and top > 0 and now - w.band_age_tick[TIO_BANDS] > s.aging_ticks:
            t = take_deque(w, now)
            if t != NULL:
                return t
        for b in range(1, TIO_BANDS):
            if b < top and (hint >> b) & 1 and now - w.band_age_tick[b] > s.aging_ticks:
                t = take_band(w, <uint32_t>b, now)
                if t != NULL:
                    return t
    while hint > 1:
        band = 63 - __builtin_clzll(<unsigned long long>hint)
        t = take_band(w, band, now)
        if t != NULL:
            return t
        hint &= ~(1u << band)
    if deque_busy:
        t = take_deque(w, now)
        if t != NULL:
            return t
    if hint & 1:
        t = take_band(w, 0, now)
        if t != NULL:
            return t
    if w.stash_count > 0:
        return take_stash(w)
    return NULL


cdef tio_task *take_own_unhinted(tio_worker *w, uint64_t now) noexcept nogil:
    """Like take_own but looks at every band whatever the hints say: the
    re-check before parking must see any item a pusher published before its
    fence, even if that pusher has not set the hint bit yet."""
    cdef tio_task *t = take_own(w, now)
    cdef uint64_t item
    cdef int band
    if t != NULL:
        return t
    for band in range(TIO_BANDS - 1, -1, -1):
        if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
            tio_atomic_fetch_or_u32_seqcst(&w.band_hint, 1u << band)
            return <tio_task *><uintptr_t>item
    return NULL


cdef tio_task *steal_from(tio_worker *w, tio_worker *v) noexcept nogil:
    """Take work from victim v: a batch from its deque into ours, else a batch
    from its highest non-empty inbox band into our stash.  Returns one record
    to run now, or NULL."""
    cdef tio_sched *s = w.sched
    cdef uint64_t item, n, k, got, i, room, moved_us = 0
    cdef tio_task *t
    cdef int band, st
    cdef uint64_t limit = s.steal_batch
    counter_add(&w.stats.steal_attempts, 1)
    # 1. its deque (spawned work), oldest first, one CAS per item
    n = tio_deque_len(v.local)
    # room in our deque (only we push into it, so it cannot shrink meanwhile);
    # the first item stolen is run at once, not pushed
    room = s.capacity - tio_deque_len(w.local) + 1
    if n > 0 and room > 1:
        k = (n + 1) // 2
        if k > limit:
            k = limit
        if k > room:
            k = room
        got = 0
        t = NULL
        while got < k:
            st = tio_deque_steal(v.local, &item)
            if st == TIO_RETRY:
                continue
            if st != TIO_OK:
                break
            got += 1
            moved_us += (<tio_task *><uintptr_t>item).est_us
            if t == NULL:
                t = <tio_task *><uintptr_t>item
            else:
                tio_deque_push(w.local, item)     # cannot fail: k <= room
        if got > 0:
            account_steal(w, v, got, moved_us)
            return t
    # 2. its inbox, highest band first, into our private stash
    if w.stash_count > 0:
        return NULL     # one stolen batch at a time
    for band in range(TIO_BANDS - 1, -1, -1):
        n = tio_mpmc_size(v.inbox[band])
        if n == 0:
            continue
        k = (n + 1) // 2
        if k > limit:
            k = limit
        got = tio_mpmc_pop_many(v.inbox[band], <uint64_t *>w.stash, k)
        if got == 0:
            continue
        for i in range(got):
            moved_us += w.stash[i].est_us
        w.stash_head = 0
        w.stash_count = <uint32_t>got
        w.stash_band = <uint32_t>band
        account_steal(w, v, got, moved_us)
        return take_stash(w)
    return NULL


cdef inline void account_steal(tio_worker *w, tio_worker *v, uint64_t n, uint64_t us) noexcept nogil:
    # relaxed RMWs: load estimates (see push_inbox)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, n)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_us, us)
    tio_atomic_fetch_add_u64_relaxed(&v.out_tasks, n)
    tio_atomic_fetch_add_u64_relaxed(&v.out_us, us)
    counter_add(&w.stats.stolen, n)


cdef tio_task *steal_work(tio_worker *w) noexcept nogil:
    """Victims in w.victims order: groups by distance (same node first), a
    random starting point inside each group."""
    cdef tio_sched *s = w.sched
    cdef uint32_t g, first, end, count, k, start
    cdef tio_task *t
    if not s.stealing:
        return NULL
    first = 0
    for g in range(w.nvictim_groups):
        end = w.victim_group_end[g]
        count = end - first
        if count > 0:
            start = <uint32_t>(rng_next(&w.rng) % count)
            for k in range(count):
                t = steal_from(w, s.workers[w.victims[first + (start + k) % count]])
                if t != NULL:
                    return t
        first = end
    return NULL


cdef inline tio_task *find_work(tio_worker *w, uint64_t now) noexcept nogil:
    cdef tio_task *t = take_own(w, now)
    if t == NULL:
        t = steal_work(w)
    return t


# ---- running tasks ------------------------------------------------------------------

cdef inline void account_done(tio_worker *w, tio_task *t) noexcept nogil:
    """The owner took t out of its queues for good (ran, retried or cancelled)."""
    w.deq_tasks_local += 1
    w.deq_us_local += t.est_us
    w.since_publish += 1
    if w.since_publish >= PUBLISH_EVERY:
        publish_deq(w)


cdef inline void publish_deq(tio_worker *w) noexcept nogil:
    # relaxed: load estimates; batched so submitters reading our load miss
    # the cache line at most once every PUBLISH_EVERY tasks
    if w.since_publish == 0:
        return
    tio_atomic_store_u64_relaxed(&w.deq_tasks, tio_atomic_load_u64_relaxed(&w.deq_tasks) + w.deq_tasks_local)
    tio_atomic_store_u64_relaxed(&w.deq_us, tio_atomic_load_u64_relaxed(&w.deq_us) + w.deq_us_local)
    w.deq_tasks_local = 0
    w.deq_us_local = 0
    w.since_publish = 0
    # slots were freed since the last publish: every 16 native tasks, and
    # whenever the worker starts searching, parks or leaves
    notify_room(w.sched)


cdef inline uint64_t run_native(tio_worker *w, tio_task *t, uint64_t start) noexcept nogil:
    """Run t; ``start`` is the worker loop's tick from just before it looked
    for t.  Returns the end tick, which the loop reuses as its next ``now``:
    one rdtsc per task instead of three."""
    cdef uint64_t end
    tio_hist_record(&w.wait_hist, start - t.submit_tick if start > t.submit_tick else 0)
    w.task_start_tick = start
    t.fn(t.arg)
    end = tio_ticks()
    tio_hist_record(&w.exec_hist, end - start)
    counter_add(&w.stats.busy_ticks, end - start)
    counter_add(&w.stats.succeeded, 1)
    counter_add_release(&w.stats.processed, 1)
    account_done(w, t)
    tio_pool_cache_free(&w.cache, t)
    return end


cdef int requeue_self(tio_worker *w, tio_task *t) noexcept nogil:
    """Put a RETRY task back on its own worker.  TIO_OK or TIO_FULL."""
    # read before the push: a thief may take t from our inbox, run and free it
    cdef uint32_t band = t.priority >> TIO_BAND_SHIFT
    if push_inbox(w, t) == TIO_OK:
        tio_fence_seqcst()
        publish_hint(w, band)
        return TIO_OK
    if band == 0:
        tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_add_u64_relaxed(&w.enq_us, t.est_us)
        if tio_deque_push(w.local, <uint64_t><uintptr_t>t) == TIO_OK:
            return TIO_OK
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_us, t.est_us)
    return TIO_FULL


cdef extern from *:
    """
    /* Report the current exception through sys.unraisablehook with our own
     * message, as CPython does for errors in __del__ ("Exception ignored
     * <message>: <obj>").  The hook gets a real UnraisableHookArgs; a hook
     * that itself fails is handled (printed) by CPython. */
    static void tio_write_unraisable(const char *message, PyObject *obj) {
    #if PY_VERSION_HEX >= 0x030D0000
        PyErr_FormatUnraisable("Exception ignored %s: %R", message, obj);
    #else
        _PyErr_WriteUnraisableMsg(message, obj);
    #endif
    }
    """
    void tio_write_unraisable(const char *message, PyObject *obj)
    void PyErr_Restore(PyObject *tp, PyObject *value, PyObject *tb)


cdef void report_unraisable(BaseException exc, const char *message, object obj) noexcept:
    """Hand an exception nobody can catch to sys.unraisablehook, so it is
    never silently dropped and never escapes into a worker or a sweep.
    message reads after "Exception ignored ", e.g. "in tallyio's failure handler"."""
    cdef object tp = type(exc)
    cdef object tb = exc.__traceback__
    # PyErr_Restore steals one reference of each
    Py_INCREF(tp)
    Py_INCREF(exc)
    if tb is not None:
        Py_INCREF(tb)
        PyErr_Restore(<PyObject *>tp, <PyObject *>exc, <PyObject *>tb)
    else:
        PyErr_Restore(<PyObject *>tp, <PyObject *>exc, NULL)
    tio_write_unraisable(message, <PyObject *>obj)


cdef void run_python(SchedulerCore core, tio_worker *w, tio_task *t):
    """Run one Python task with the GIL held and settle its record.  Never
    raises: a failing execute() is counted and reported through on_failure."""
    cdef object task = <object>t.arg
    cdef object result = None
    cdef object error = None
    cdef uint64_t start = tio_ticks()
    cdef uint64_t end
    cdef tio_sched *s = w.sched
    tio_hist_record(&w.wait_hist, start - t.submit_tick)
    w.task_start_tick = start
    # this record's slot was freed when it was popped: a blocked submitter
    # may use it (it takes the GIL after this batch)
    notify_room(s)
    w.running_task = <PyObject *>task        # borrowed: the record owns a reference until below
    try:
        result = task.execute()
    except BaseException as exc:
        error = exc
    w.running_task = NULL
    end = tio_ticks()
    tio_hist_record(&w.exec_hist, end - start)
    counter_add(&w.stats.busy_ticks, end - start)
    account_done(w, t)                           # out of our queues (a retry re-enters them)
    if error is None:
        if result is None or result is core.success:
            counter_add(&w.stats.succeeded, 1)
        elif result is core.retry:
            if t.attempts < s.max_retries:
                t.attempts += 1
                counter_add(&w.stats.retried, 1)
                if requeue_self(w, t) == TIO_OK:
                    return                       # the record (and its reference) live on
                # no room to retry: it fails, and says why
                error = _queue_full_error(f"no room to re-queue {task!r} for a retry")
            counter_add(&w.stats.failed, 1)
        elif result is core.failed:
            counter_add(&w.stats.failed, 1)
        elif result is core.cancel_marker:
            Py_DECREF(task)                      # the record's reference
            tio_pool_cache_free(&w.cache, t)
            counter_add_release(&w.stats.cancelled, 1)
            return
        else:
            counter_add(&w.stats.failed, 1)
            error = TypeError(f"{type(task).__name__}.execute() returned {result!r}; "
                              f"expected a TaskResult or None")
    else:
        counter_add(&w.stats.failed, 1)
    Py_DECREF(task)                              # the record's reference
    tio_pool_cache_free(&w.cache, t)
    if error is not None and core.on_failure is not None:
        try:
            core.on_failure(task, error)
        except BaseException as exc:
            report_unraisable(exc, "in tallyio's failure handler", core.on_failure)
    # counted processed only now: join() returns once every task it waits
    # for has finished, its error reporting included (release: join's
    # acquire load sees everything above)
    counter_add_release(&w.stats.processed, 1)


cdef double timeout_seconds(object timeout) except -1.0:
    """A timeout in seconds >= 0 (ints, floats, numpy numbers); a clear error otherwise."""
    cdef double value
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise TypeError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"timeout must be None or a finite number of seconds >= 0, got {timeout!r}")
    return value


def _queue_full_error(str message):
    from tallyio.errors import QueueFullError
    return QueueFullError(message)


cdef void run_python_batch(tio_worker *w, tio_task *t) noexcept with gil:
    """Hold the GIL for a batch of Python tasks: until gil_batch tasks ran,
    gil_batch_ticks passed, the next item is native (left in w.carry) or there
    is nothing more in this worker's own queues."""
    cdef SchedulerCore core = <SchedulerCore>w.sched.core
    cdef tio_sched *s = w.sched
    cdef uint64_t start = tio_ticks()
    cdef uint64_t now
    cdef uint32_t count = 0
    while True:
        run_python(core, w, t)
        count += 1
        now = tio_ticks()
        if count >= s.gil_batch or now - start >= s.gil_batch_ticks:
            return
        if tio_atomic_load_u32_relaxed(&s.mode) == TIO_MODE_CANCEL:
            return
        t = take_own(w, now)
        if t == NULL:
            return
        if t.kind != TIO_TASK_PYTHON:
            w.carry = t
            return


cdef inline uint64_t run_task(tio_worker *w, tio_task *t, uint64_t now) noexcept nogil:
    """Run t; returns the end tick of a native task, 0 after Python tasks."""
    if t.kind == TIO_TASK_NATIVE:
        return run_native(w, t, now)
    run_python_batch(w, t)
    return 0


# ---- rebalancing ---------------------------------------------------------------

cdef void maybe_rebalance(tio_worker *w) noexcept nogil:
    """Every REBALANCE_EVERY tasks: if this worker is the most loaded and the
    imbalance (max - min) / max passes the threshold, hand half the difference
    (from its lowest non-empty band) to the least loaded worker.  Works with
    stealing off, too: it is the only way work moves then."""
    cdef tio_sched *s = w.sched
    cdef uint64_t mine, least = 0, load, item, moved = 0, moved_us = 0, goal
    cdef uint32_t i, least_i, est_us
    cdef int band
    cdef bint no_room = False
    cdef tio_worker *dst
    cdef tio_task *t
    w.since_rebalance = 0
    # w.carry must be free: it takes the one task that may fit nowhere else below
    if s.nworkers < 2 or w.carry != NULL or tio_atomic_load_u32_relaxed(&s.mode) != TIO_MODE_RUNNING:
        return
    mine = worker_queued_us(w)
    if mine == 0:
        return
    least_i = s.nworkers
    for i in range(s.nworkers):
        if s.workers[i] == w:
            continue
        load = worker_queued_us(s.workers[i])
        if load > mine:
            return                                   # the busiest one rebalances
        if least_i == s.nworkers or load < least:
            least = load
            least_i = i
    if <double>(mine - least) <= s.threshold * <double>mine:
        return
    dst = s.workers[least_i]
    goal = (mine - least) // 2
    for band in range(TIO_BANDS):
        while moved_us < goal:
            if tio_mpmc_pop(w.inbox[band], &item) != TIO_OK:
                break
            t = <tio_task *><uintptr_t>item
            # read before the push: once in dst's inbox, t may run, be freed
            # and be reused for another task at any moment
            est_us = t.est_us
            if push_inbox(dst, t) != TIO_OK:
                # no room there: keep it, back in our own band (still counted in
                # our load, so no push_inbox), which has room for what we just
                # took unless a pusher filled it: then in w.carry (free, above)
                if tio_mpmc_push(w.inbox[band], item) != TIO_OK:
                    w.carry = t
                no_room = True
                break
            moved += 1
            moved_us += est_us
        if no_room or moved_us >= goal:
            break
    if moved:
        tio_atomic_fetch_add_u64_relaxed(&w.out_tasks, moved)
        tio_atomic_fetch_add_u64_relaxed(&w.out_us, moved_us)
        counter_add(&w.stats.migrated, moved)
        tio_fence_seqcst()
        for band in range(TIO_BANDS):
            if tio_mpmc_size(dst.inbox[band]) > 0:
                publish_hint(dst, band)
        if tio_atomic_load_u32_fenced_relaxed(&dst.sleep_state) == TIO_SLEEPING:
            wake_worker(s, dst)


# ---- the worker loop ------------------------------------------------------------

cdef inline bint gate_quiet(tio_sched *s) noexcept nogil:
    # acquire: pairs with the release in tio_submit_native's gate exit, so the
    # pushes of every native submitter that left the gate are visible
    return (tio_atomic_load_u64_acquire(&s.gate) & ~TIO_GATE_CLOSED) == 0


cdef inline void leave_searching(tio_worker *w) noexcept nogil:
    """Searching -> running.  The last searcher to find work wakes another
    worker if there is visibly more work, so a burst is not left to one worker.
    "More work" includes the other workers' queues: a submitter that saw this
    worker searching skipped its wake-up, counting on it to find the item, but
    it may have found another one (its own) while the item waits in the inbox
    of a sleeping worker."""
    cdef tio_sched *s = w.sched
    cdef uint64_t prev = tio_atomic_fetch_add_u64_seqcst(&s.idle, <uint64_t>0 - TIO_IDLE_SEARCHING)
    if (prev & 0xFFFFFFFFULL) == 1:
        pass_on_wake_up(w)


cdef void pass_on_wake_up(tio_worker *w) noexcept nogil:
    """Called by the last searcher when it stops searching with a task in
    hand (leave_searching, or park's re-check finding its own work): wake a
    sleeper if work is queued anywhere, on behalf of the submitters that saw
    it searching and skipped their wake-up."""
    cdef tio_sched *s = w.sched
    cdef uint64_t idle
    # the fence pairs with a submitter's fence between its push and its
    # idle-word load: either it saw no searcher (and woke a worker itself) or
    # the scan below sees its item
    tio_fence_seqcst()
    # fenced_relaxed: after the fence above
    idle = tio_atomic_load_u64_fenced_relaxed(&s.idle)
    if (idle & 0xFFFFFFFFULL) != 0 or (idle >> 32) == 0:
        return          # another searcher will look, or nobody sleeps
    if has_more_work(w) or (s.stealing and work_queued_elsewhere(s, w)):
        notify_one(s, NULL)


cdef bint work_queued_elsewhere(tio_sched *s, tio_worker *me) noexcept nogil:
    """Does another worker's inbox or deque hold work?  Looks at the rings,
    not at band_hint: a submitter sets the hint only after its fence."""
    cdef uint32_t i
    cdef int b
    cdef tio_worker *v
    for i in range(s.nworkers):
        v = s.workers[i]
        if v == me:
            continue
        if tio_deque_len(v.local) > 0:
            return True
        for b in range(TIO_BANDS):
            if tio_mpmc_size(v.inbox[b]) > 0:
                return True
    return False


cdef bint has_more_work(tio_worker *w) noexcept nogil:
    """Does w visibly hold more queued work (beyond the task it just took)?
    Looks at the rings, not at band_hint: a bit stays set after its band's
    last item was taken, until the owner finds the band empty."""
    cdef uint32_t hint = tio_atomic_load_u32_relaxed(&w.band_hint)
    cdef int b
    if w.stash_count > 0 or tio_deque_len(w.local) > 0:
        return True
    for b in range(TIO_BANDS):
        if (hint >> b) & 1 and tio_mpmc_size(w.inbox[b]) > 0:
            return True
    return False


cdef bint park(tio_worker *w) noexcept nogil:
    """Called by a searching worker whose spin window passed.  Sleeps until
    woken, unless work shows up during the re-check (left in w.carry) or the
    scheduler is stopping.  Returns True if the worker is now counted as a
    searcher, False if it is running (w.carry holds its next record)."""
    cdef tio_sched *s = w.sched
    cdef uint32_t expected
    cdef uint64_t prev
    cdef tio_task *t
    publish_deq(w)
    # 1. announce.  seq_cst store before the idle RMW: a waker that sees us in
    #    the sleeping count (its idle load is after ours in the seq_cst order)
    #    finds SLEEPING when it CASes our state.
    tio_atomic_store_u32_seqcst(&w.sleep_state, TIO_SLEEPING)
    prev = tio_atomic_fetch_add_u64_seqcst(&s.idle, TIO_IDLE_SLEEPING - TIO_IDLE_SEARCHING)
    # 2. the fence pairs with every pusher's fence between its push and its
    #    load of the idle word (or of our sleep_state): either the pusher sees
    #    us sleeping and wakes someone, or our re-check below sees its item.
    tio_fence_seqcst()
    t = take_own_unhinted(w, tio_ticks())
    if t == NULL:
        t = steal_work(w)
    if t != NULL or tio_atomic_load_u32_acquire(&s.mode) != TIO_MODE_RUNNING:
        # 3a. do not sleep.  Cancel our announcement, unless a waker already
        #     did (it moved us to NOTIFIED and counted us as a searcher).
        expected = TIO_SLEEPING
        if tio_atomic_cas_u32_seqcst(&w.sleep_state, &expected, TIO_AWAKE):
            if t != NULL:
                tio_atomic_fetch_add_u64_seqcst(&s.idle, <uint64_t>0 - TIO_IDLE_SLEEPING)
                w.carry = t
                if (prev & 0xFFFFFFFFULL) == 1:
                    # we were the last searcher and found our own work: a
                    # submitter counting on us may have queued elsewhere
                    pass_on_wake_up(w)
                return False
            tio_atomic_fetch_add_u64_seqcst(&s.idle, TIO_IDLE_SEARCHING - TIO_IDLE_SLEEPING)
            return True
        tio_atomic_store_u32_release(&w.sleep_state, TIO_AWAKE)
        if t != NULL:
            w.carry = t
            leave_searching(w)
            return False
        return True
    # 3b. sleep until a waker moves us to NOTIFIED (the futex returns at once
    #     if the state changed before we got there; spurious returns loop)
    while tio_atomic_load_u32_acquire(&w.sleep_state) == TIO_SLEEPING:
        tio_atomic_wait_u32(&w.sleep_state, TIO_SLEEPING, 0)
    tio_atomic_store_u32_release(&w.sleep_state, TIO_AWAKE)
    return True


cdef void worker_loop(tio_worker *w) noexcept nogil:
    """Own queues -> steal -> spin for spin_ticks -> park, until stopped."""
    cdef tio_sched *s = w.sched
    cdef tio_task *t
    cdef uint64_t now, search_start = 0, last_end = 0, spin_window = 0, prev
    cdef bint searching = False
    cdef uint32_t mode
    while True:
        now = last_end if last_end != 0 else tio_ticks()
        last_end = 0
        t = find_work(w, now)
        if t != NULL:
            if searching:
                searching = False
                leave_searching(w)
            if TIO_UNLIKELY(tio_atomic_load_u32_relaxed(&s.mode) == TIO_MODE_CANCEL):
                w.carry = t          # handed to the stopper's sweep
                break
            last_end = run_task(w, t, now)
            w.since_rebalance += 1
            if TIO_UNLIKELY(w.since_rebalance >= REBALANCE_EVERY):
                maybe_rebalance(w)
            continue
        # nothing anywhere we can reach
        mode = tio_atomic_load_u32_acquire(&s.mode)
        if mode == TIO_MODE_CANCEL:
            break
        if mode == TIO_MODE_DRAIN and gate_quiet(s):
            # no submitter is inside the gate, so nothing new can arrive: one
            # last look after the gate check, then leave
            t = find_work(w, tio_ticks())
            if t == NULL:
                break
            w.carry = t
            continue
        if not searching:
            searching = True
            search_start = now
            # seq_cst: a submitter reading the idle word after its fence sees
            # us searching and skips the wake-up syscall
            prev = tio_atomic_fetch_add_u64_seqcst(&s.idle, TIO_IDLE_SEARCHING)
            publish_deq(w)
            # max_spinners others search already: park now and leave the core
            # to the threads that submit (a spinning worker on every core
            # starves them: ms tails for a woken submitter on 2 vCPUs)
            spin_window = s.spin_ticks if (prev & 0xFFFFFFFFULL) < s.max_spinners else 0
        if now - search_start < spin_window:
            # spin: PAUSE for the first half of the window, then yield the core
            if now - search_start < spin_window // 2:
                for _ in range(32):
                    tio_cpu_relax()
            else:
                sched_yield()
            continue
        searching = park(w)
        search_start = tio_ticks()
        # woken as a searcher (counted in idle): spin only if at most
        # max_spinners searchers, us included.  relaxed: a stale count only
        # changes how long we spin, never whether a wake-up is lost
        spin_window = s.spin_ticks if (tio_atomic_load_u64_relaxed(&s.idle) & 0xFFFFFFFFULL) <= s.max_spinners else 0
    if searching:
        tio_atomic_fetch_add_u64_seqcst(&s.idle, <uint64_t>0 - TIO_IDLE_SEARCHING)
    publish_deq(w)
    tio_pool_cache_flush(&w.cache, 0)
    # release: the stopper's acquire load of `exited` sees everything above
    tio_atomic_fetch_add_u32_acqrel(&s.exited, 1)


cdef extern from "<sched.h>" nogil:
    int sched_yield()


# ---- public C API ------------------------------------------------------------------------

cdef tio_sched *tio_sched_of(object scheduler) except NULL:
    """The tio_sched of a started NumaScheduler (or of its SchedulerCore)."""
    cdef SchedulerCore core
    cdef object candidate = getattr(scheduler, "_core", scheduler)
    if not isinstance(candidate, SchedulerCore):
        raise TypeError(f"expected a NumaScheduler, got {type(scheduler).__name__}")
    core = <SchedulerCore>candidate
    if not core.started or core.forked:
        raise_status(TIO_CLOSED, "NumaScheduler")
    return core.s


cdef inline void fill_native(tio_task *t, tio_native_fn fn, void *arg, int priority,
                             uint64_t tick) noexcept nogil:
    t.fn = fn
    t.arg = arg
    t.submit_tick = tick
    t.est_us = NATIVE_EST_US
    t.attempts = 0
    t.priority = <uint8_t>priority
    t.kind = TIO_TASK_NATIVE


cdef int tio_submit_native(tio_sched *s, tio_native_fn fn, void *arg,
                           int priority, int preferred_node) noexcept nogil:
    """Submit fn(arg) to run on a worker without the GIL.  Any thread, no GIL
    needed.  preferred_node: a node index (0..nnodes-1) or -1.  Returns TIO_OK,
    TIO_FULL (every inbox for that priority is full, or no record is free),
    TIO_CLOSED (not running) or TIO_INVALID (priority outside 0..255, fn NULL)."""
    cdef void *block
    cdef tio_task *t
    cdef tio_worker *w
    cdef uint64_t rng
    cdef int st = TIO_OK
    global tio_tls_rng
    if fn == NULL or priority < 0 or priority > 255:
        return TIO_INVALID
    # seq_cst: the gate RMW is ordered with stop()'s fetch_or of CLOSED: either
    # stop sees us inside (and waits) or we see CLOSED
    if tio_atomic_fetch_add_u64_seqcst(&s.gate, 1) & TIO_GATE_CLOSED:
        tio_atomic_fetch_sub_u64_relaxed(&s.gate, 1)
        return TIO_CLOSED
    if tio_pool_alloc(s.pool, &block) != TIO_OK:
        st = TIO_FULL
    else:
        t = <tio_task *>block
        fill_native(t, fn, arg, priority, tio_ticks())
        if tio_tls_rng == 0:
            tio_tls_rng = <uint64_t><uintptr_t>&rng ^ tio_ticks()
        w = push_with_overflow(s, choose_worker(s, preferred_node, &tio_tls_rng), t)
        if w == NULL:
            tio_pool_free(s.pool, block)
            st = TIO_FULL
        else:
            tio_atomic_fetch_add_u64_relaxed(&w.submitted, 1)
            tio_fence_seqcst()
            publish_hint(w, <uint32_t>priority >> TIO_BAND_SHIFT)
            notify_one(s, w)
    # release half of the RMW: our push happens-before a stopper that sees the
    # gate quiet (gate_quiet's acquire)
    tio_atomic_fetch_add_u64_seqcst(&s.gate, <uint64_t>0 - 1)
    return st


cdef enum:
    SUBMIT_CHUNK = 64         # records per placement, push, fence and wake-up check


cdef int tio_submit_native_many(tio_sched *s, tio_native_fn fn, void **args, uint64_t n,
                                int priority, int preferred_node, uint64_t *accepted) noexcept nogil:
    """Submit fn(args[i]) for i < n, SUBMIT_CHUNK records at a time: one gate
    entry, then per chunk one placement, one ring CAS (tio_mpmc_push_many),
    one fence and at most one wake-up.  accepted[0] = how many went in (a
    prefix of args).  TIO_OK (all), TIO_FULL (retry the rest later),
    TIO_CLOSED, TIO_INVALID."""
    cdef tio_pool_cache cache
    cdef uint64_t items[SUBMIT_CHUNK]
    cdef uint64_t done = 0, k, i, pushed, tick
    cdef void *block
    cdef tio_worker *w
    cdef uint32_t band = <uint32_t>priority >> TIO_BAND_SHIFT
    cdef int st = TIO_OK
    cdef uint64_t rng
    global tio_tls_rng
    accepted[0] = 0
    if fn == NULL or priority < 0 or priority > 255:
        return TIO_INVALID
    # seq_cst: as in tio_submit_native
    if tio_atomic_fetch_add_u64_seqcst(&s.gate, 1) & TIO_GATE_CLOSED:
        tio_atomic_fetch_sub_u64_relaxed(&s.gate, 1)
        return TIO_CLOSED
    if tio_tls_rng == 0:
        tio_tls_rng = <uint64_t><uintptr_t>&rng ^ tio_ticks()
    tio_pool_cache_init(&cache, s.pool)      # a private magazine: one CAS per 16 records
    tick = tio_ticks()
    while done < n:
        k = n - done if n - done < SUBMIT_CHUNK else SUBMIT_CHUNK
        for i in range(k):
            if tio_pool_cache_alloc(&cache, &block) != TIO_OK:
                k = i
                break
            fill_native(<tio_task *>block, fn, args[done + i], priority, tick)
            items[i] = <uint64_t><uintptr_t>block
        if k == 0:
            st = TIO_FULL
            break
        w = s.workers[choose_worker(s, preferred_node, &tio_tls_rng)]
        # relaxed RMWs: load estimates, counted before the push (see push_inbox)
        tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, k)
        tio_atomic_fetch_add_u64_relaxed(&w.enq_us, k * NATIVE_EST_US)
        pushed = 0
        while pushed < k:
            i = tio_mpmc_push_many(w.inbox[band], &items[pushed], k - pushed)
            if i == 0:
                break
            pushed += i
        if pushed < k:
            tio_atomic_fetch_sub_u64_relaxed(&w.enq_tasks, k - pushed)
            tio_atomic_fetch_sub_u64_relaxed(&w.enq_us, (k - pushed) * NATIVE_EST_US)
            for i in range(pushed, k):
                tio_pool_cache_free(&cache, <void *><uintptr_t>items[i])
        if pushed > 0:
            tio_atomic_fetch_add_u64_relaxed(&w.submitted, pushed)
            tio_fence_seqcst()
            publish_hint(w, band)
            notify_one(s, w)
        done += pushed
        if pushed < k:
            st = TIO_FULL
            break
    tio_pool_cache_flush(&cache, 0)
    accepted[0] = done
    # release half of the RMW: see tio_submit_native
    tio_atomic_fetch_add_u64_seqcst(&s.gate, <uint64_t>0 - 1)
    return st


cdef int tio_spawn_native(tio_native_fn fn, void *arg) noexcept nogil:
    """From inside a task running on a worker: push fn(arg) (priority 0) onto
    this worker's own deque, where it runs next or is stolen by an idle worker.
    TIO_OK, TIO_FULL, or TIO_INVALID when not called on a worker thread."""
    cdef tio_worker *w = <tio_worker *>tio_tls_worker
    cdef void *block
    cdef tio_task *t
    if w == NULL or fn == NULL:
        return TIO_INVALID
    if tio_pool_cache_alloc(&w.cache, &block) != TIO_OK:
        return TIO_FULL
    t = <tio_task *>block
    # the parent's start tick, not a fresh rdtsc (~10 ns): the child's queue
    # wait then includes the parent's run time up to this spawn
    fill_native(t, fn, arg, 0, w.task_start_tick)
    return spawn_record(w, t)


cdef int spawn_record(tio_worker *w, tio_task *t) noexcept nogil:
    """Queue a record created on worker w: band 0 onto its deque, higher bands
    (or a full deque) into its own inbox.  No fence: the owner runs it if no
    one else does, so a missed wake-up delays nothing that matters."""
    cdef tio_sched *s = w.sched
    cdef uint64_t idle
    cdef uint32_t band = t.priority >> TIO_BAND_SHIFT
    cdef int st = TIO_FULL
    if band == 0:
        # owner-only counters: a plain load+store, no locked RMW per spawn
        counter_add(&w.own_enq_tasks, 1)
        counter_add(&w.own_enq_us, t.est_us)
        if tio_deque_push(w.local, <uint64_t><uintptr_t>t) == TIO_OK:
            st = TIO_OK
        else:
            counter_add(&w.own_enq_tasks, <uint64_t>0 - 1)
            counter_add(&w.own_enq_us, <uint64_t>0 - t.est_us)
    if st != TIO_OK:
        st = push_inbox(w, t)
        if st != TIO_OK:
            tio_pool_cache_free(&w.cache, t)
            return TIO_FULL
        tio_fence_seqcst()
        publish_hint(w, band)
    counter_add(&w.spawned, 1)
    # relaxed: only a hint whether idle workers could help (see docstring).
    # Every 8th spawn: the idle word's line moves between cores whenever a
    # worker starts or stops searching, so loading it per spawn costs a miss.
    if w.spawns_to_idle_check == 0:
        w.spawns_to_idle_check = 7
        idle = tio_atomic_load_u64_relaxed(&s.idle)
        if s.stealing and (idle & 0xFFFFFFFFULL) == 0 and (idle >> 32) != 0:
            notify_one(s, NULL)
    else:
        w.spawns_to_idle_check -= 1
    return TIO_OK


cdef inline tio_worker *push_placed(tio_sched *s, tio_task *t, int priority, int node,
                                    uint64_t *rng) noexcept nogil:
    """Place and push a submitted record; on success count it, fence,
    publish the band hint and wake a worker if needed.  NULL: every inbox of
    its band is full (t was not queued).  Inline: it is the fast path."""
    cdef tio_worker *w = push_with_overflow(s, choose_worker(s, node, rng), t)
    if TIO_UNLIKELY(w == NULL):
        return NULL
    # relaxed RMW: a counter; stats() and join() read it
    tio_atomic_fetch_add_u64_relaxed(&w.submitted, 1)
    # the fence orders our push before the hint and idle-word loads (README)
    tio_fence_seqcst()
    publish_hint(w, <uint32_t>priority >> TIO_BAND_SHIFT)
    notify_one(s, w)
    return w


cdef inline tio_task *taken_by_stopper(tio_worker *w, tio_task *t) noexcept nogil:
    """The stopper took t out of w's queues: off w's load (RMW counters, as a
    thief's: w may still be running)."""
    tio_atomic_fetch_add_u64_relaxed(&w.out_tasks, 1)
    tio_atomic_fetch_add_u64_relaxed(&w.out_us, t.est_us)
    return t


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
                tio_tls_worker = <void *>w
                worker_loop(w)
                tio_tls_worker = NULL

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
                wait_ns = 20000000
                if seconds >= 0:
                    if now >= deadline:
                        raise _queue_full_error(
                            f"NumaScheduler stayed full for {seconds:g} s (every inbox of priority "
                            f"band {priority >> TIO_BAND_SHIFT}); the task was not accepted")
                    if deadline - now < wait_ns:
                        wait_ns = deadline - now
                with nogil:
                    tio_atomic_wait_u32(&s.room_seq, seq, wait_ns)
                check_signals()
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
        from tallyio.errors import SchedulerNotRunningError
        cdef uint32_t mode = tio_atomic_load_u32_relaxed(&self.s.mode)
        if self.forked:
            raise SchedulerNotRunningError(
                f"this NumaScheduler was inherited by a forked child process (pid {os.getpid()}); "
                "its workers do not exist here: create a new scheduler in the child")
        if not self.started and mode == TIO_MODE_RUNNING:
            raise SchedulerNotRunningError("NumaScheduler is not running (not started: call start())")
        if self.started and tio_atomic_load_u32_acquire(&self.s.exited) < self.s.nworkers:
            if mode == TIO_MODE_DRAIN:
                raise SchedulerNotRunningError(
                    "NumaScheduler is not running (stopping: it is draining the tasks it accepted "
                    "and takes new work only from those tasks)")
            raise SchedulerNotRunningError(
                "NumaScheduler is not running (stopping: it is cancelling its queued tasks)")
        raise SchedulerNotRunningError("NumaScheduler is not running (stopped)")

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
        return (int(v & 0xFFFFFFFFULL), int(v >> 32))

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
        timeout.  Takes the GIL back every 20 ms to honour Ctrl+C."""
        cdef uint64_t deadline = 0, slice_end, now, sleep_ns = 1000
        cdef bint idle = False
        cdef timespec ts
        if timeout >= 0:
            deadline = tio_now_ns() + <uint64_t>(timeout * 1e9)
        while True:
            with nogil:
                now = tio_now_ns()
                slice_end = now + 20000000
                while True:
                    idle = self._idle_nogil()
                    if idle:
                        break
                    now = tio_now_ns()
                    if now >= slice_end or (deadline != 0 and now >= deadline):
                        break
                    ts.tv_sec = 0
                    ts.tv_nsec = <long>sleep_ns
                    nanosleep(&ts, NULL)
                    if sleep_ns < 100000:
                        sleep_ns *= 2
            if idle:
                return True
            if deadline != 0 and now >= deadline:
                return False
            check_signals()

    cdef bint _idle_nogil(self) noexcept nogil:
        cdef uint64_t sub = 0, done = 0
        cdef uint32_t i
        cdef tio_worker *w
        for i in range(self.s.nworkers):
            w = self.s.workers[i]
            # acquire: pairs with nothing in particular; counts only
            sub += tio_atomic_load_u64_acquire(&w.submitted) + tio_atomic_load_u64_acquire(&w.spawned)
            done += tio_atomic_load_u64_acquire(&w.stats.processed) + tio_atomic_load_u64_acquire(&w.stats.cancelled)
        # acquire: pairs with the stopper's acq_rel count in _cancel_record
        done += tio_atomic_load_u64_acquire(&self.s.stopper_cancelled)
        return done >= sub


cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int nanosleep(const timespec *req, timespec *rem)

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

cdef inline int check_signals() except -1:
    return PyErr_CheckSignals()
