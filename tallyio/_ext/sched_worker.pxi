# The worker loop: take work (sched_take.pxi), run it (sched_run.pxi),
# rebalance now and then, and when nothing is left search / spin / park through
# sched_sleep.pxi's search_state; leaves when the scheduler stops.  Touches only
# its own worker's state directly.


cdef inline bint gate_quiet(tio_sched *s) noexcept nogil:
    # acquire: pairs with the release in tio_submit_native's gate exit, so the
    # pushes of every native submitter that left the gate are visible
    return (tio_atomic_load_u64_acquire(&s.gate) & ~TIO_GATE_CLOSED) == 0


cdef void worker_loop(tio_worker *w) noexcept nogil:
    """Own queues -> steal -> spin for spin_ticks -> park, until stopped."""
    cdef tio_sched *s = w.sched
    cdef tio_task *t
    cdef uint64_t now, last_end = 0
    cdef uint32_t mode
    cdef search_state look
    look.searching = False
    look.started = 0
    look.spin_window = 0
    while True:
        now = last_end if last_end != 0 else tio_ticks()
        last_end = 0
        t = find_work(w, now)
        if t != NULL:
            work_found(w, &look)
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
        start_looking(w, &look, now)
        no_work_found(w, &look, now)
    stop_looking(w, &look)
    publish_deq(w)
    tio_pool_cache_flush(&w.cache, 0)
    # release: the stopper's acquire load of `exited` sees everything above
    tio_atomic_fetch_add_u32_acqrel(&s.exited, 1)
