# The public C API (declared in scheduler.pxd): tio_sched_of,
# tio_submit_native(_many) and tio_spawn_native.  Touches the submission gate,
# the task pool and, through sched_placement.pxi / the worker's own deque, the
# queues; wakes workers through sched_sleep.pxi.


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
        if s.stealing and idle_wake_needed(idle):
            notify_one(s, NULL)
    else:
        w.spawns_to_idle_check -= 1
    return TIO_OK
